//! Drafting: one inbound event → intents, the case step, a reply from the templates, the
//! guard's verdict and the route. The [`Assistant`] holds everything loaded from the data
//! files; [`Assistant::draft`] is pure (the time is an argument) so the CLI, the replay, the
//! service and the console all call the same code.

use std::path::Path;

use jiff::Timestamp;
use minijinja::{Value, value::Serde};
use serde::Serialize;
use serde_json::json;

use super::policy::Policy;
use super::{
    IntentHit, Understanding,
    case::{self, Action, Case, Dialogue, Group, Plan, Route, Stage},
    catalog::LoadError,
    event::InboundEvent,
    guard::{Guard, GuardContext, Protected, Verdict},
    money::Money,
    schedule::History,
    templates::{Templates, fnv1a},
};

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
    pub settings: Policy,
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
    /// What an automatic reply would need that the order, refund, parcel or message does not
    /// give (`order.paid_at`, `order.logistics.tracking_no`, `message.single_request`, …);
    /// when not empty the draft waits for a person. Omitted when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub needs: Vec<String>,
}

impl Assistant {
    /// Loads intents from `intents`, templates and guard from `templates`, and drafts under the
    /// shop's `settings` (`Assistant::load`, in `crate::config`, reads them from the config file).
    ///
    /// # Errors
    /// The first invalid file, with its key and problem.
    pub fn load_with(intents: &Path, templates: &Path, settings: Policy) -> Result<Self, LoadError> {
        let understanding = Understanding::load(intents)?;
        let normalizer = &understanding.catalog.normalizer;
        let guard = Guard::load(&templates.join("guard.toml"), normalizer)?;
        let dialogue = Dialogue::load(&intents.join("dialogue.toml"), normalizer)?;
        let fixtures = [fixture_context(&settings), sparse_fixture_context(&settings)];
        let templates_dir = templates.to_owned();
        let templates = Templates::load(templates, case::STEPS, &fixtures, &guard, normalizer)?;
        Ok(Self { understanding, guard, templates, dialogue, settings, templates_dir })
    }

    /// Drafts the answer to `event` in a case that stands at `case`, at time `now`.
    #[must_use]
    pub fn draft(&self, case: &Case, event: &InboundEvent, now: Timestamp) -> Draft {
        let analysis = self.understanding.analyze(&event.text);
        let mut signals = self.dialogue.signals(&analysis.normalized);
        signals.other_request = self.asks_more(&event.text, &analysis.intents);
        let plan: Plan =
            case::plan(&case::Input { case, event, analysis: &analysis, signals, settings: &self.settings, now });
        let mut actions = plan.actions.clone();
        let orderer = event.from_orderer();
        let ctx = self.context(event, &plan, orderer);
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
                &self.guard_context(event, &actions, now),
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
            needs: plan.needs,
        }
    }

    /// Whether the message asks for something besides what the found intents' own words say:
    /// their evidence is blanked out and the rest is looked at for request cues.
    fn asks_more(&self, text: &str, intents: &[IntentHit]) -> bool {
        if intents.is_empty() {
            return false;
        }
        let mut chars: Vec<char> = text.chars().collect();
        for e in intents.iter().flat_map(|h| &h.evidence) {
            for c in chars.iter_mut().take(e.span[1]).skip(e.span[0]) {
                *c = ' ';
            }
        }
        let rest: String = chars.into_iter().collect();
        self.dialogue.asks_more(&self.understanding.catalog.normalizer.normalize(&rest).text)
    }

    /// The guard for an outgoing text in the context of `event` (an agent's edit, `check`).
    #[must_use]
    pub fn check(&self, text: &str, event: Option<&InboundEvent>) -> Verdict {
        let ctx = event.map_or_else(GuardContext::default, |e| self.guard_context(e, &[], Timestamp::UNIX_EPOCH));
        self.guard.check(text, &ctx, &self.understanding.catalog.normalizer)
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

    fn guard_context(&self, event: &InboundEvent, actions: &[Action], now: Timestamp) -> GuardContext {
        let order = event.order.as_ref();
        let r = order.and_then(|o| o.receiver.as_ref());
        let protected = Protected {
            names: r.and_then(|r| r.name.clone()).into_iter().collect(),
            phones: r.and_then(|r| r.phone.clone()).into_iter().collect(),
            addresses: r.and_then(|r| r.address.clone()).into_iter().collect(),
        };
        let min_promise_hours = actions
            .iter()
            .filter_map(|a| match a {
                Action::Promise { due_at, .. } => Some(due_at.duration_since(now).as_hours().max(0) as u32),
                _ => None,
            })
            .min();
        GuardContext {
            recipient_is_orderer: event.from_orderer(),
            protected,
            return_qualifies: !order.is_some_and(super::event::Order::all_excluded_from_no_reason),
            min_promise_hours,
        }
    }

    fn context(&self, event: &InboundEvent, plan: &Plan, orderer: bool) -> Value {
        let s = &self.settings;
        let mut v = json!({
            "shop": {"name": s.shop.name, "agent_name": s.shop.agent_name},
            "sla": s.sla,
            "amounts": {"compensation": s.wrong_item_keep.to_string()},
            "case": {
                "storage_known": plan.case.storage_known,
                "evidence_received": plan.case.evidence_received,
                "days_since_signed": plan.vars.days_since_signed,
            },
        });
        // Order data only ever reaches templates for the ordering account; `anyone` steps are
        // refused at load if they reference it, and the context lacks it besides.
        let tz = &s.timezone;
        if !plan.vars.promised.is_empty() {
            let promised: serde_json::Map<String, serde_json::Value> =
                plan.vars.promised.iter().map(|(w, t)| (w.clone(), when(*t, tz))).collect();
            v["promised"] = serde_json::Value::Object(promised);
        }
        if orderer {
            let o = event.order.as_ref();
            v["order"] = json!({
                "order_id": o.and_then(|o| o.order_id.clone()).unwrap_or_default(),
                "item": o.and_then(|o| o.items.first()).map(|i| i.title.clone()).unwrap_or_default(),
                "refund_status": o.and_then(|o| o.refund_status.clone()).unwrap_or_default(),
            });
            // Facts, present only when the data has them (a template that states one must
            // test `is defined`; strict rendering refuses the rest).
            let fact = |v: &mut serde_json::Value, k: &str, x: Option<serde_json::Value>| {
                if let Some(x) = x {
                    v["order"][k] = x;
                }
            };
            let nonempty = |x: &Option<String>| x.as_deref().map(str::trim).filter(|x| !x.is_empty()).map(|x| json!(x));
            if let Some(o) = o {
                fact(
                    &mut v,
                    "refund_amount",
                    o.refund_amount.as_deref().and_then(|a| Money::parse(a).ok()).map(|m| json!(m.to_string())),
                );
                fact(&mut v, "refund_to", nonempty(&o.refund_to));
                fact(&mut v, "paid_at", o.paid_at.map(|t| when(t, tz)));
                fact(&mut v, "shipped_at", o.shipped_at.map(|t| when(t, tz)));
                fact(&mut v, "signed_at", o.signed_at.map(|t| when(t, tz)));
                if let Some(l) = &o.logistics {
                    let mut lv = json!({});
                    for (k, x) in [
                        ("carrier", nonempty(&l.carrier)),
                        ("tracking_no", nonempty(&l.tracking_no)),
                        ("last_event", nonempty(&l.last_event)),
                        ("last_event_at", l.last_event_at.map(|t| when(t, tz))),
                    ] {
                        if let Some(x) = x {
                            lv[k] = x;
                        }
                    }
                    v["order"]["logistics"] = lv;
                }
            }
            fact(&mut v, "ship_due", plan.vars.ship_due.map(|t| when(t, tz)));
            if plan.vars.ship_due.is_some() {
                v["order"]["ship_due_by_order"] = json!(plan.vars.ship_due_by_order);
            }
            fact(&mut v, "stuck_hours", plan.vars.stuck_hours.map(|h| json!(h)));
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

/// The fixture context without any optional fact (no times, parcel, refund amount, earlier
/// promise): the branches of a template for missing facts are validated with it.
#[must_use]
pub fn sparse_fixture_context(s: &Policy) -> Value {
    Value::from(Serde(json!({
        "shop": {"name": s.shop.name, "agent_name": s.shop.agent_name},
        "sla": s.sla,
        "amounts": {"compensation": s.wrong_item_keep.to_string()},
        "case": {"storage_known": false, "evidence_received": false, "days_since_signed": -1},
        "order": {"order_id": "", "item": "", "refund_status": ""},
        "new_address": "",
    })))
}

/// A time as templates state it, in the shop's time zone: `month`, `day` and `hm` ("20:00").
fn when(t: Timestamp, tz: &jiff::tz::TimeZone) -> serde_json::Value {
    let z = t.to_zoned(tz.clone());
    json!({"month": z.month(), "day": z.day(), "hm": z.strftime("%H:%M").to_string()})
}

/// The context every template variant is validated with (fake data).
#[must_use]
pub fn fixture_context(s: &Policy) -> Value {
    Value::from(Serde(json!({
        "shop": {"name": s.shop.name, "agent_name": s.shop.agent_name},
        "sla": s.sla,
        "amounts": {"compensation": s.wrong_item_keep.to_string()},
        "case": {"storage_known": false, "evidence_received": false, "days_since_signed": 2},
        "order": {
            "order_id": "1000000000000000001", "item": "fixture item", "refund_status": "wait_seller_agree",
            "refund_amount": "39.9", "refund_to": "fixture wallet",
            "paid_at": {"month": 11, "day": 20, "hm": "20:00"},
            "shipped_at": {"month": 11, "day": 21, "hm": "10:00"},
            "signed_at": {"month": 11, "day": 23, "hm": "15:00"},
            "ship_due": {"month": 11, "day": 22, "hm": "20:00"}, "ship_due_by_order": false,
            "stuck_hours": 50,
            "logistics": {"carrier": "fixture carrier", "tracking_no": "SF0000000000", "last_event": "fixture event",
                          "last_event_at": {"month": 11, "day": 21, "hm": "18:00"}},
        },
        "promised": {"ship": {"month": 11, "day": 22, "hm": "20:00"}, "refund": {"month": 11, "day": 22, "hm": "20:00"}},
        "new_address": "fixture address",
    })))
}
