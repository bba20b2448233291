//! Drafting: one inbound event → intents, the case step, a reply from the templates, the
//! guard's verdict and the route. The [`Assistant`] holds everything loaded from the data
//! files; [`Assistant::draft`] is pure (the time is an argument) so the CLI, the replay, the
//! service and the console all call the same code.

use std::path::Path;

use jiff::Timestamp;
use minijinja::{Value, value::Serde};
use serde::Serialize;
use serde_json::json;

use super::{
    IntentHit, Understanding,
    case::{self, Action, Case, Dialogue, Group, Plan, Route, Stage},
    catalog::LoadError,
    event::InboundEvent,
    guard::{EditorAuthority, Guard, GuardContext, Protected, Verdict},
    money::Money,
    schedule::History,
    templates::{Templates, fnv1a},
};
use crate::config::Settings;

/// Everything drafting needs, loaded and validated.
pub struct Assistant {
    /// Normalizer, intents, entities.
    pub understanding: Understanding,
    /// Outgoing-text rules.
    pub guard: Guard,
    /// Reply templates.
    pub templates: Templates,
    /// Follow-up cues.
    pub dialogue: Dialogue,
    /// The shop's configuration.
    pub settings: Settings,
    /// The templates directory these were loaded from (the console loads its pages there).
    pub templates_dir: std::path::PathBuf,
}

/// The result of drafting one message: the contract of `shouhou draft`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Draft {
    /// Intents found, sorted by score.
    pub intents: Vec<IntentHit>,
    /// `auto`, `review` or `escalate`.
    pub route: Route,
    /// The reply, or null when a person must write it.
    pub reply: Option<String>,
    /// Actions and promises.
    pub actions: Vec<Action>,
    /// The guard's verdict on the reply.
    pub guard: Verdict,
    /// The triage group.
    pub group: Group,
    /// The case stage after this message.
    pub stage: Stage,
    /// Template steps used.
    pub steps: Vec<String>,
    /// The case after this message (feed it to the next message of the conversation).
    pub case: Case,
}

impl Assistant {
    /// Loads intents from `intents`, templates and guard from `templates`, config from `config`.
    ///
    /// # Errors
    /// The first invalid file, with its key and problem.
    pub fn load(intents: &Path, templates: &Path, config: &Path) -> Result<Self, LoadError> {
        let understanding = Understanding::load(intents)?;
        let settings = Settings::load(config)?;
        let normalizer = &understanding.catalog.normalizer;
        let guard = Guard::load(&templates.join("guard.toml"), normalizer)?;
        let dialogue = Dialogue::load(&intents.join("dialogue.toml"), normalizer)?;
        let fixture = fixture_context(&settings);
        let templates_dir = templates.to_owned();
        let templates = Templates::load(templates, case::STEPS, &fixture, &guard, normalizer)?;
        Ok(Self { understanding, guard, templates, dialogue, settings, templates_dir })
    }

    /// Drafts the answer to `event` in a case that stands at `case`, at time `now`.
    #[must_use]
    pub fn draft(&self, case: &Case, event: &InboundEvent, now: Timestamp) -> Draft {
        let analysis = self.understanding.analyze(&event.text);
        let signals = self.dialogue.signals(&analysis.normalized);
        let plan: Plan =
            case::plan(&case::Input { case, event, analysis: &analysis, signals, settings: &self.settings, now });
        let mut actions = plan.actions.clone();
        let orderer = event.from_orderer();
        let ctx = self.context(event, &plan, orderer, now);
        let seed = fnv1a(event.conversation_id.as_bytes());
        let mut parts = Vec::new();
        for step in &plan.steps {
            match self.templates.render(step, &ctx, seed, analysis.tone.traditional) {
                Ok(t) => parts.push(t),
                // A template that loaded always renders with a full context; if one does not,
                // a person writes the reply rather than the buyer getting half of one.
                Err(_) => parts.clear(),
            }
        }
        let reply = (!parts.is_empty() && parts.len() == plan.steps.len()).then(|| parts.join(""));
        if plan.route == Route::Escalate && plan.steps.iter().any(|s| s.starts_with("complaint.")) {
            actions.push(self.call_request(&ctx, now));
        }
        let guard = match &reply {
            Some(text) => self.guard.check(
                text,
                &self.guard_context(event, &actions, Some(now)),
                &self.understanding.catalog.normalizer,
            ),
            None => Verdict { verdict: "pass", findings: Vec::new() },
        };
        let mut route = self.route(&plan, &analysis.intents, reply.is_some(), guard.passed());
        // A step written for the orderer, asked by an account known not to be the orderer (a
        // family member, say): the reply renders without order data, but a person sends it.
        let other_account = event.order.as_ref().and_then(|o| o.buyer_account_id.as_ref()).is_some() && !orderer;
        if route == Route::Auto
            && other_account
            && plan.steps.iter().any(|s| self.templates.recipient(s) == Some(super::templates::Recipient::Orderer))
        {
            route = Route::Review;
        }
        Draft {
            intents: analysis.intents,
            route,
            reply,
            actions,
            guard,
            group: plan.case.group,
            stage: plan.case.stage,
            steps: plan.steps,
            case: plan.case,
        }
    }

    /// The guard for an outgoing text in the context of `event` (`check`, the bot's own text).
    #[must_use]
    pub fn check(&self, text: &str, event: Option<&InboundEvent>) -> Verdict {
        let ctx = event.map_or_else(GuardContext::default, |e| self.guard_context(e, &[], None));
        self.guard.check(text, &ctx, &self.understanding.catalog.normalizer)
    }

    /// The guard for an agent's edit: as [`Assistant::check`], plus the editor's authority
    /// (`role`, a key of `[authority]`; an unknown role may grant nothing) and the call window
    /// at `now` for callback promises.
    #[must_use]
    pub fn check_edit(&self, text: &str, event: Option<&InboundEvent>, role: &str, now: Timestamp) -> Verdict {
        let mut ctx = event.map_or_else(GuardContext::default, |e| self.guard_context(e, &[], Some(now)));
        let a = self.settings.authority.get(role).copied();
        ctx.authority = Some(EditorAuthority {
            role: role.to_owned(),
            max_amount: a.map_or(Money(0), |a| a.max_amount),
            max_percent: a.map_or(0, |a| a.max_percent),
            order_total: event.and_then(|e| e.order.as_ref()).and_then(super::event::Order::total_money),
        });
        if event.is_none() {
            ctx.callback_opens_in_minutes = Some(self.callback_opens_in_minutes(now));
        }
        self.guard.check(text, &ctx, &self.understanding.catalog.normalizer)
    }

    /// Minutes from `now` until a call may be made (0 while the window is open).
    fn callback_opens_in_minutes(&self, now: Timestamp) -> u32 {
        let d = self.settings.calls.check(now, &self.settings.timezone, &History::default());
        d.next_allowed_at
            .map_or(0, |z| (z.timestamp().duration_since(now).as_secs().max(0) / 60).try_into().unwrap_or(u32::MAX))
    }

    fn route(&self, plan: &Plan, intents: &[IntentHit], has_reply: bool, guard_pass: bool) -> Route {
        if plan.route == Route::Escalate {
            return Route::Escalate;
        }
        if !has_reply || !guard_pass {
            return Route::Review;
        }
        let s = &self.settings;
        let auto = plan.route == Route::Auto
            && plan.faq
            && s.auto_enabled
            && !intents.is_empty()
            && intents.iter().all(|h| s.auto_intents.contains(&h.id) && h.score >= s.auto_threshold);
        if auto { Route::Auto } else { Route::Review }
    }

    fn guard_context(&self, event: &InboundEvent, actions: &[Action], now: Option<Timestamp>) -> GuardContext {
        let order = event.order.as_ref();
        let r = order.and_then(|o| o.receiver.as_ref());
        let protected = Protected {
            names: r.and_then(|r| r.name.clone()).into_iter().collect(),
            phones: r.and_then(|r| r.phone.clone()).into_iter().collect(),
            addresses: r.and_then(|r| r.address.clone()).into_iter().collect(),
        };
        let min_promise_hours = now.and_then(|now| {
            actions
                .iter()
                .filter_map(|a| match a {
                    Action::Promise { due_at, .. } => Some(due_at.duration_since(now).as_hours().max(0) as u32),
                    _ => None,
                })
                .min()
        });
        let divert_allowed =
            event.platform.as_ref().is_some_and(|p| self.settings.guard.divert_allowed_channels.contains(p));
        GuardContext {
            recipient_is_orderer: event.from_orderer(),
            protected,
            return_qualifies: !order.is_some_and(super::event::Order::all_excluded_from_no_reason),
            min_promise_hours,
            divert_allowed,
            authority: None,
            callback_opens_in_minutes: now.map(|n| self.callback_opens_in_minutes(n)),
        }
    }

    fn context(&self, event: &InboundEvent, plan: &Plan, orderer: bool, now: Timestamp) -> Value {
        let s = &self.settings;
        let callback = s.calls.callback(now, &s.timezone, s.sla.callback_hours);
        let when = self.templates.callback_when(&callback.when).unwrap_or_default();
        let mut v = json!({
            "shop": {"name": s.shop.name, "agent_name": s.shop.agent_name},
            "sla": s.sla,
            "amounts": {"compensation": s.wrong_item_keep.to_string()},
            "callback": {"when": when},
            "case": {
                "storage_known": plan.case.storage_known,
                "evidence_received": plan.case.evidence_received,
                "days_since_signed": plan.vars.days_since_signed,
            },
        });
        // Order data only ever reaches templates for the ordering account; `anyone` steps are
        // refused at load if they reference it, and the context lacks it besides.
        if orderer {
            let o = event.order.as_ref();
            v["order"] = json!({
                "order_id": o.and_then(|o| o.order_id.clone()).unwrap_or_default(),
                "item": o.and_then(|o| o.items.first()).map(|i| i.title.clone()).unwrap_or_default(),
                "refund_status": o.and_then(|o| o.refund_status.clone()).unwrap_or_default(),
            });
            v["new_address"] = json!(
                plan.actions
                    .iter()
                    .find_map(|a| match a {
                        Action::AddressChange { new_address, .. } => Some(new_address.clone()),
                        _ => None,
                    })
                    .unwrap_or_default()
            );
        }
        Value::from(Serde(&v))
    }

    fn call_request(&self, ctx: &Value, now: Timestamp) -> Action {
        let decision = self.settings.calls.check(now, &self.settings.timezone, &History::default());
        Action::CallRequest {
            script: self.templates.call_script(ctx).unwrap_or_default(),
            next_allowed_at: decision
                .next_allowed_at
                .map(|z| z.timestamp().display_with_offset(z.offset()).to_string()),
        }
    }
}

/// The context every template variant is validated with (fake data).
#[must_use]
pub fn fixture_context(s: &Settings) -> Value {
    Value::from(Serde(json!({
        "shop": {"name": s.shop.name, "agent_name": s.shop.agent_name},
        "sla": s.sla,
        "amounts": {"compensation": s.wrong_item_keep.to_string()},
        "callback": {"when": format!("{}h", s.sla.callback_hours)},
        "case": {"storage_known": false, "evidence_received": false, "days_since_signed": 2},
        "order": {"order_id": "1000000000000000001", "item": "fixture item", "refund_status": "wait_seller_agree"},
        "new_address": "fixture address",
    })))
}
