//! Case logic: the seeds' flows, one case per conversation and order.
//!
//! A case moves through seed 001's six steps: soothe, verify,
//! offer, negotiate, resolve, record. [`plan`] takes the case as it stands, the analysed
//! message and the time, and returns what to say (template steps), what to do (actions) and
//! the case after this message. Pure: no I/O, the time is an argument.

use std::path::Path;

use aho_corasick::{AhoCorasick, MatchKind};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::{
    Analysis,
    catalog::LoadError,
    event::InboundEvent,
    facts::{self, Parcel, Refund, Returns, Shipping},
    money::Money,
    normalize::Normalizer,
    policy::Policy,
};

/// Where a case stands (seed 001's flow).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Soothe: the first answer.
    #[default]
    Soothe,
    /// Verify: waiting for evidence or details.
    Verify,
    /// Offer: a solution offered.
    Offer,
    /// Negotiate: the buyer turned an offer down; the next one is on the table.
    Negotiate,
    /// Resolve: agreed or answered.
    Resolve,
    /// Record: handed to a person or closed for the record.
    Record,
}

/// The part-time triage groups (seed 002).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    /// Reception group: FAQs and first contact.
    #[default]
    Reception,
    /// Returns/refunds group.
    ReturnsRefunds,
    /// Exceptions group: wrong/missing items, disputes, logistics exceptions.
    Exceptions,
}

/// What happens to a draft.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    /// Sent by the bot.
    Auto,
    /// Queued for an agent.
    Review,
    /// A person (supervisor) takes over.
    Escalate,
}

/// A case's state, carried from message to message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Case {
    /// The conversation.
    pub conversation_id: String,
    /// The order, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    /// Flow stage.
    pub stage: Stage,
    /// Triage group.
    pub group: Group,
    /// The intent whose flow the case follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<String>,
    /// Every intent seen so far.
    #[serde(default)]
    pub intents: Vec<String>,
    /// The buyer sent a photo or video.
    #[serde(default)]
    pub evidence_received: bool,
    /// The buyer said how the food was stored.
    #[serde(default)]
    pub storage_known: bool,
    /// Offers made so far, in order (`compensation`, `exchange`, `return`, `reship`, …).
    #[serde(default)]
    pub offers: Vec<String>,
    /// A person has been asked to take over.
    #[serde(default)]
    pub escalated: bool,
    /// The leading template step of the previous reply (not repeated word for word).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_step: Option<String>,
    /// Messages seen.
    #[serde(default)]
    pub turns: u32,
    /// Promises made so far and still standing, one per kind (the latest): a later reply
    /// quotes them instead of making a new one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub promises: Vec<Promised>,
}

/// A promise made earlier in the conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Promised {
    /// What was promised (`ship`, `refund`, …, as in [`Action::Promise`]).
    pub what: String,
    /// When it is due.
    pub due_at: Timestamp,
}

/// Something the edges must do or track.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    /// The reply asks the buyer for something.
    Ask {
        /// `photo`, `storage`, `new_address`.
        what: &'static str,
    },
    /// A solution offered.
    Offer {
        /// `compensation`, `reship`, `partial_refund`, `exchange`, `return`.
        offer: &'static str,
        /// Its amount, when it has one.
        #[serde(skip_serializing_if = "Option::is_none")]
        amount: Option<Money>,
        /// Within the bot role's authority; otherwise a supervisor must grant it.
        within_authority: bool,
    },
    /// Change the order's address (ordering account only).
    AddressChange {
        /// The order.
        #[serde(skip_serializing_if = "Option::is_none")]
        order_id: Option<String>,
        /// The new address, as the buyer wrote it.
        new_address: String,
    },
    /// Try to stop a shipped parcel.
    Intercept {
        /// The order.
        #[serde(skip_serializing_if = "Option::is_none")]
        order_id: Option<String>,
    },
    /// A promise the reply makes, to be kept by `due_at`.
    Promise {
        /// `refund`, `reship`, `callback`, `gift`, `address_change`, `invoice`, `ship`, `compensation`.
        what: &'static str,
        /// When it is due.
        due_at: Timestamp,
    },
    /// A person takes over.
    Escalate {
        /// Why (English, no buyer data).
        reasons: Vec<String>,
    },
    /// Someone should phone the buyer.
    CallRequest {
        /// The call script for the case.
        script: Vec<String>,
        /// The earliest allowed call time (buyer-local window).
        #[serde(skip_serializing_if = "Option::is_none")]
        next_allowed_at: Option<String>,
    },
}

/// What the case logic decides for one message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// Template steps (`intent.step`), in reply order; empty: no reply (a person looks).
    pub steps: Vec<String>,
    /// The route before the guard and the shop's auto settings have their say.
    pub route: Route,
    /// Only FAQ-type answers may go out automatically.
    pub faq: bool,
    /// Actions.
    pub actions: Vec<Action>,
    /// The case after this message.
    pub case: Case,
    /// Variables for the templates that only the case logic knows.
    pub vars: PlanVars,
    /// What an automatic reply would need and the data lacks (`order.paid_at`,
    /// `message.single_request`, …); not empty means a person reviews the draft.
    pub needs: Vec<String>,
}

/// Template variables decided by the case logic.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PlanVars {
    /// Whole days between signing and the message, or -1.
    pub days_since_signed: i64,
    /// The ship deadline a `shipping_urge` step states, when it states one.
    pub ship_due: Option<Timestamp>,
    /// That deadline is the order's own date (`ship_by`), not the shop's SLA.
    pub ship_due_by_order: bool,
    /// Whole hours since the parcel's latest tracking event, when it is stuck.
    pub stuck_hours: Option<i64>,
    /// Earlier promises this reply quotes instead of renewing them: kind and due time.
    pub promised: Vec<(String, Timestamp)>,
}

/// Follow-up cue words (`intents/dialogue.toml`).
pub struct Dialogue {
    cues: AhoCorasick,
    kinds: Vec<Cue>,
    courtesy: AhoCorasick,
    earlier_promise: Option<AhoCorasick>,
    request: Option<AhoCorasick>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Cue {
    Accept,
    Refuse,
    Storage,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DialogueFile {
    accept: Vec<String>,
    refuse: Vec<String>,
    storage: Vec<String>,
    courtesy: Vec<String>,
    #[serde(default)]
    earlier_promise: Vec<String>,
    #[serde(default)]
    request: Vec<String>,
}

/// What a follow-up message says about the case.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Signals {
    /// Accepts an offer.
    pub accepted: bool,
    /// Turns an offer down.
    pub refused: bool,
    /// Tells how food was stored.
    pub storage: bool,
    /// Nothing but greetings, thanks and acknowledgements.
    pub courtesy_only: bool,
    /// Refers to something the shop said or showed before.
    pub earlier_promise: bool,
    /// Asks for something besides what the intents found cover (set by the drafting step,
    /// which knows the intents' evidence).
    pub other_request: bool,
}

impl Dialogue {
    /// Loads `dialogue.toml`.
    ///
    /// # Errors
    /// Missing or invalid file, unknown keys, empty cue.
    pub fn load(path: &Path, normalizer: &Normalizer) -> Result<Self, LoadError> {
        let err = |key: &str, problem: String| LoadError { file: path.to_owned(), key: key.to_owned(), problem };
        let raw = std::fs::read_to_string(path).map_err(|e| err("-", format!("cannot read: {e}")))?;
        let file: DialogueFile = toml::from_str(&raw).map_err(|e| err("-", e.message().to_owned()))?;
        let mut pats = Vec::new();
        let mut kinds = Vec::new();
        for (name, list, kind) in [
            ("accept", &file.accept, Cue::Accept),
            ("refuse", &file.refuse, Cue::Refuse),
            ("storage", &file.storage, Cue::Storage),
        ] {
            for (i, w) in list.iter().enumerate() {
                let n = normalizer.normalize(w).text;
                if n.is_empty() {
                    return Err(err(&format!("{name}[{i}]"), "empty cue".into()));
                }
                pats.push(n);
                kinds.push(kind);
            }
        }
        let cues = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&pats)
            .map_err(|e| err("-", e.to_string()))?;
        let list = |name: &str, words: &[String]| -> Result<Option<AhoCorasick>, LoadError> {
            let mut pats = Vec::new();
            for (i, w) in words.iter().enumerate() {
                let n = normalizer.normalize(w).text;
                if n.is_empty() {
                    return Err(err(&format!("{name}[{i}]"), "empty cue".into()));
                }
                pats.push(n);
            }
            if pats.is_empty() {
                return Ok(None);
            }
            AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(&pats)
                .map(Some)
                .map_err(|e| err(name, e.to_string()))
        };
        let courtesy =
            list("courtesy", &file.courtesy)?.ok_or_else(|| err("courtesy", "needs at least one word".into()))?;
        let earlier_promise = list("earlier_promise", &file.earlier_promise)?;
        let request = list("request", &file.request)?;
        Ok(Self { cues, kinds, courtesy, earlier_promise, request })
    }

    /// Whether a normalized text is nothing but courtesy words: once they are taken out, no
    /// letter or digit is left.
    #[must_use]
    pub fn courtesy_only(&self, normalized: &str) -> bool {
        let mut rest = String::with_capacity(normalized.len());
        let mut at = 0;
        for m in self.courtesy.find_iter(normalized) {
            rest.push_str(&normalized[at..m.start()]);
            at = m.end();
        }
        rest.push_str(&normalized[at..]);
        !normalized.trim().is_empty() && !rest.chars().any(char::is_alphanumeric)
    }

    /// Whether a normalized text asks for something (`request` cues): used on what is left of
    /// a message once the found intents' own words are taken out.
    #[must_use]
    pub fn asks_more(&self, normalized: &str) -> bool {
        self.request.as_ref().is_some_and(|r| r.is_match(normalized))
    }

    /// Reads the signals of a normalized message. A refusal wins over an acceptance it
    /// contains (a negated "may" holds the plain "may").
    #[must_use]
    pub fn signals(&self, normalized: &str) -> Signals {
        let mut s = Signals::default();
        for m in self.cues.find_iter(normalized) {
            match self.kinds[m.pattern().as_usize()] {
                Cue::Accept => s.accepted = true,
                Cue::Refuse => s.refused = true,
                Cue::Storage => s.storage = true,
            }
        }
        if s.refused {
            s.accepted = false;
        }
        s.courtesy_only = self.courtesy_only(normalized);
        s.earlier_promise = self.earlier_promise.as_ref().is_some_and(|a| a.is_match(normalized));
        s
    }
}

/// Intents in the order their flow leads a multi-intent reply: escalations first, then the
/// problems the shop must fix, then questions, then courtesy.
const PRIORITY: [&str; 18] = [
    "complaint",
    "human_agent",
    "rotten_food",
    "wrong_item",
    "damaged_item",
    "missing_item",
    "quality_issue",
    "address_change",
    "order_info_query",
    "not_received",
    "gift_missing",
    "price_difference",
    "no_reason_return",
    "refund_progress",
    "shipping_urge",
    "return_howto",
    "invoice",
    "greeting",
];

/// Intents that hand the conversation to a person: they lead a reply and never become the
/// case's flow.
const ESCALATING: [&str; 2] = ["complaint", "human_agent"];

/// The acknowledgement used instead of repeating a step.
const NOTED: &str = "common.noted";

/// Intents that continue a case's flow instead of starting their own when they come after it
/// ("no, I don't like this colour" after a wrong-item offer is a refusal, not a no-reason return).
const SOFT: [&str; 3] = ["no_reason_return", "greeting", "return_howto"];

/// Every `intent.step` the case logic can ask the templates for.
pub const STEPS: &[&str] = &[
    "rotten_food.ask_evidence",
    "rotten_food.ask_photo",
    "rotten_food.offer",
    "rotten_food.escalate",
    "rotten_food.also",
    "wrong_item.offer_compensation",
    "wrong_item.offer_exchange",
    "wrong_item.offer_return",
    "wrong_item.confirm_compensation",
    "wrong_item.also",
    "address_change.confirm",
    "address_change.ask_address",
    "address_change.intercept",
    "address_change.other_account",
    "address_change.also",
    "order_info_query.orderer",
    "order_info_query.other_account",
    "order_info_query.also",
    "no_reason_return.conditions",
    "no_reason_return.excluded",
    "no_reason_return.late",
    "no_reason_return.also",
    "damaged_item.ask_photo",
    "damaged_item.offer",
    "damaged_item.also",
    "missing_item.ask_photo",
    "missing_item.offer",
    "missing_item.also",
    "quality_issue.ask_photo",
    "quality_issue.offer",
    "quality_issue.also",
    "not_received.in_transit",
    "not_received.untracked",
    "not_received.stuck",
    "not_received.signed_not_received",
    "not_received.check",
    "not_received.also",
    "shipping_urge.unpaid",
    "shipping_urge.answer",
    "shipping_urge.promised",
    "shipping_urge.earlier_promise",
    "shipping_urge.late",
    "shipping_urge.shipped",
    "shipping_urge.closed",
    "shipping_urge.check",
    "shipping_urge.also",
    "refund_progress.answer",
    "refund_progress.none",
    "refund_progress.status",
    "refund_progress.also",
    "return_howto.answer",
    "return_howto.also",
    "invoice.answer",
    "invoice.also",
    "price_difference.answer",
    "price_difference.also",
    "gift_missing.answer",
    "gift_missing.also",
    "complaint.escalate",
    "complaint.also",
    "human_agent.handoff",
    "human_agent.also",
    "greeting.reply",
    NOTED,
];

/// Everything the case logic looks at for one message.
pub struct Input<'a> {
    /// The case before this message.
    pub case: &'a Case,
    /// The message.
    pub event: &'a InboundEvent,
    /// Its analysis.
    pub analysis: &'a Analysis,
    /// Follow-up signals.
    pub signals: Signals,
    /// The shop.
    pub settings: &'a Policy,
    /// Now.
    pub now: Timestamp,
}

/// One intent's flow result.
struct Part {
    step: &'static str,
    route: Route,
    group: Group,
    faq: bool,
    stage: Stage,
    actions: Vec<Action>,
    offer: Option<&'static str>,
    /// Facts the step states that the data lacks.
    needs: Vec<&'static str>,
    vars: PlanVars,
}

impl Part {
    fn new(step: &'static str, group: Group, stage: Stage) -> Self {
        Self {
            step,
            route: Route::Review,
            group,
            faq: false,
            stage,
            actions: Vec::new(),
            offer: None,
            needs: Vec::new(),
            vars: PlanVars::default(),
        }
    }

    fn needs(mut self, needs: impl IntoIterator<Item = &'static str>) -> Self {
        self.needs.extend(needs);
        self
    }
}

/// Promise kinds a later reply quotes instead of renewing (their templates read `promised.*`).
pub const QUOTED: [&str; 2] = ["ship", "refund"];

/// The need named when a message asks for more than one thing, or for more than courtesy
/// where only courtesy would be answered.
pub const SINGLE_REQUEST: &str = "message.single_request";
/// The need named when the buyer cites a promise this conversation holds no record of.
pub const EARLIER_PROMISE: &str = "conversation.earlier_promise";

fn limits(s: &Policy) -> facts::Limits {
    facts::Limits { ship_hours: s.sla.ship_hours, stuck_hours: s.stuck_hours, return_days: RETURN_DAYS }
}

/// Days after signing a no-reason return is open (Consumer Protection Law art. 25).
pub const RETURN_DAYS: u32 = 7;

/// Decides the reply plan for one message.
#[must_use]
pub fn plan(input: &Input<'_>) -> Plan {
    let mut case = input.case.clone();
    case.turns += 1;
    if case.conversation_id.is_empty() {
        case.conversation_id.clone_from(&input.event.conversation_id);
    }
    if let Some(id) = input.event.order.as_ref().and_then(|o| o.order_id.clone()) {
        case.order_id = Some(id);
    }
    if input.event.has_visual_evidence() {
        case.evidence_received = true;
    }
    if input.signals.storage {
        case.storage_known = true;
    }
    let found: Vec<&'static str> = input.analysis.intents.iter().map(|h| h.id).collect();
    for id in &found {
        if !case.intents.iter().any(|i| i == id) {
            case.intents.push((*id).to_owned());
        }
    }

    let mut order: Vec<&'static str> = PRIORITY.iter().copied().filter(|p| found.contains(p)).collect();
    // A follow-up inside a running flow continues it.
    let continuing = case.primary.as_deref().and_then(|p| PRIORITY.iter().copied().find(|x| *x == p));
    if let Some(p) = continuing {
        let only_soft = order.iter().all(|i| SOFT.contains(i));
        let follow_up = input.signals.accepted
            || input.signals.refused
            || input.signals.storage
            || input.event.has_visual_evidence();
        if only_soft && (follow_up || order.is_empty()) || order.contains(&p) {
            order.retain(|i| *i != p && !SOFT.contains(i));
            // Escalations still lead the reply; the running flow comes right after them.
            let at = order.iter().take_while(|i| ESCALATING.contains(*i)).count();
            order.insert(at, p);
        }
    }
    if order.is_empty() {
        return Plan {
            steps: Vec::new(),
            route: Route::Review,
            faq: false,
            actions: Vec::new(),
            case,
            vars: vars(input),
            needs: Vec::new(),
        };
    }
    if let Some(first) = order.iter().find(|i| !ESCALATING.contains(*i) && **i != "greeting") {
        case.primary = Some((*first).to_owned());
    }

    let mut steps = Vec::new();
    let mut actions = Vec::new();
    let mut route = Route::Auto;
    let mut faq = true;
    let mut group = Group::Reception;
    let mut needs: Vec<&'static str> = Vec::new();
    let mut pv = vars(input);
    // An automatic answer answers one request: a second one in the message, or anything but
    // courtesy where a greeting would be answered, needs a person.
    let requests = order.iter().filter(|i| **i != "greeting").count();
    if requests > 1 || input.signals.other_request || (order[0] == "greeting" && !input.signals.courtesy_only) {
        needs.push(SINGLE_REQUEST);
    }
    // Facts dated after the message are not current: nothing is sent on them without a person.
    if let Some(o) = input.event.order.as_ref() {
        let last_event = o.logistics.as_ref().and_then(|l| l.last_event_at);
        for (t, name) in [
            (o.paid_at, "order.paid_at"),
            (o.shipped_at, "order.shipped_at"),
            (o.signed_at, "order.signed_at"),
            (last_event, "order.logistics.last_event_at"),
        ] {
            if t.is_some_and(|t| t > input.now) {
                needs.push(name);
            }
        }
    }
    for (i, intent) in order.iter().enumerate().take(3) {
        let part = flow(intent, input, &case);
        if i == 0 {
            steps.push(part.step.to_owned());
            case.stage = part.stage;
            if let Some(o) = part.offer {
                case.offers.push(o.to_owned());
            }
        } else {
            steps.push(format!("{intent}.also"));
        }
        if *intent == "greeting" && i > 0 {
            steps.pop();
            continue;
        }
        route = route.max(part.route);
        faq &= part.faq;
        group = group.max(part.group);
        for n in part.needs {
            if !needs.contains(&n) {
                needs.push(n);
            }
        }
        pv.ship_due = pv.ship_due.or(part.vars.ship_due);
        pv.ship_due_by_order |= part.vars.ship_due_by_order;
        pv.stuck_hours = pv.stuck_hours.or(part.vars.stuck_hours);
        pv.promised.extend(part.vars.promised);
        for a in part.actions {
            if !actions.contains(&a) {
                actions.push(a);
            }
        }
    }
    // The same step again with nothing new (more photos, "ok, be quick"): acknowledge instead of
    // repeating the whole answer, and make no promise twice.
    if steps.len() == 1 && input.case.last_step.as_deref() == Some(steps[0].as_str()) && route != Route::Escalate {
        steps = vec![NOTED.to_owned()];
        actions.retain(|a| !matches!(a, Action::Promise { .. } | Action::Offer { .. }));
        if case.offers.len() >= 2 && case.offers[case.offers.len() - 1] == case.offers[case.offers.len() - 2] {
            case.offers.pop();
        }
        faq = false;
    } else {
        case.last_step = steps.first().cloned();
    }
    // A promise already standing is quoted, not renewed: the new one is dropped and the
    // templates see the earlier due time (for the kinds whose templates quote it).
    actions.retain(|a| match a {
        Action::Promise { what, .. } if QUOTED.contains(what) => {
            match case.promises.iter().find(|p| p.what == *what && p.due_at > input.now) {
                Some(p) => {
                    if !pv.promised.iter().any(|(w, _)| w == what) {
                        pv.promised.push(((*what).to_owned(), p.due_at));
                    }
                    false
                }
                None => true,
            }
        }
        _ => true,
    });
    // Only the quoted kinds are kept: the others are renewed by each reply that makes them.
    for a in &actions {
        if let Action::Promise { what, due_at } = a
            && QUOTED.contains(what)
        {
            case.promises.retain(|p| p.what != *what);
            case.promises.push(Promised { what: (*what).to_owned(), due_at: *due_at });
        }
    }
    if route == Route::Escalate {
        case.escalated = true;
        case.stage = Stage::Record;
    }
    if route == Route::Auto && !needs.is_empty() {
        route = Route::Review;
    }
    // A draft that could never go out on its own (not an FAQ answer) names only missing facts.
    if !faq {
        needs.retain(|n| *n != SINGLE_REQUEST);
    }
    case.group = case.group.max(group);
    Plan { steps, route, faq, actions, case, vars: pv, needs: needs.into_iter().map(str::to_owned).collect() }
}

fn vars(input: &Input<'_>) -> PlanVars {
    PlanVars { days_since_signed: days_since_signed(input).unwrap_or(-1), ..PlanVars::default() }
}

/// Days between signing and the message, from the order or from what the buyer says
/// ("signed for a week ago").
fn days_since_signed(input: &Input<'_>) -> Option<i64> {
    if let Some(signed) = input.event.order.as_ref().and_then(|o| o.signed_at) {
        let d = input.now.duration_since(signed);
        return Some(d.as_secs().max(0) / 86_400);
    }
    input
        .analysis
        .entities
        .durations
        .iter()
        .find(|d| matches!(d.since.as_deref(), Some("signed" | "received")))
        .map(|d| d.days.floor() as i64)
}

fn promise(input: &Input<'_>, what: &'static str, hours: u32) -> Action {
    let due_at = input.now.checked_add(SignedDuration::from_hours(i64::from(hours))).unwrap_or(input.now);
    Action::Promise { what, due_at }
}

fn offer(input: &Input<'_>, what: &'static str, amount: Option<Money>) -> Action {
    let total = input.event.order.as_ref().and_then(super::event::Order::total_money);
    let within_authority = amount.is_none_or(|a| a <= input.settings.bot_authority().limit(total));
    Action::Offer { offer: what, amount, within_authority }
}

/// The most expensive item's price (the perishable ones when there are any), or the total.
fn item_price(input: &Input<'_>) -> Option<Money> {
    let order = input.event.order.as_ref()?;
    let price = |i: &super::event::Item| i.price.as_deref().and_then(|p| Money::parse(p).ok());
    let fresh = order.items.iter().filter(|i| i.category.as_deref() == Some("fresh")).filter_map(price).max();
    fresh.or_else(|| order.items.iter().filter_map(price).max()).or_else(|| order.total_money())
}

fn flow(intent: &str, input: &Input<'_>, case: &Case) -> Part {
    let s = input.settings;
    let sla = s.sla;
    let orderer = input.event.from_orderer();
    match intent {
        "rotten_food" => {
            if !case.evidence_received {
                let mut p = Part::new(
                    if case.storage_known { "rotten_food.ask_photo" } else { "rotten_food.ask_evidence" },
                    Group::Exceptions,
                    Stage::Verify,
                );
                p.actions.push(Action::Ask { what: "photo" });
                if !case.storage_known {
                    p.actions.push(Action::Ask { what: "storage" });
                }
                return p;
            }
            let price = item_price(input);
            let late = days_since_signed(input).is_some_and(|d| d > i64::from(s.rotten_late_days));
            let cheap = price.is_some_and(|p| p <= s.cheap_item_max);
            if !cheap && late {
                let mut p = Part::new("rotten_food.escalate", Group::Exceptions, Stage::Negotiate);
                p.route = Route::Escalate;
                let mut reasons = vec![format!(
                    "item price {} above the cheap limit {}",
                    price.map_or("unknown".into(), |p| p.to_string()),
                    s.cheap_item_max
                )];
                if let Some(d) = days_since_signed(input) {
                    reasons.push(format!("reported {d} days after signing (limit {})", s.rotten_late_days));
                }
                p.actions.push(Action::Escalate { reasons });
                p.actions.push(promise(input, "callback", sla.callback_hours));
                return p;
            }
            let mut p = Part::new("rotten_food.offer", Group::Exceptions, Stage::Offer);
            p.actions.push(offer(input, "reship", None));
            p.actions.push(offer(input, "partial_refund", None));
            p.actions.push(promise(input, "reship", sla.reship_hours));
            if !cheap {
                // Not late but not cheap either: a person confirms the offer.
                p.route = Route::Review;
            }
            p.offer = Some("reship");
            p
        }
        "wrong_item" => {
            let last = case.offers.last().map(String::as_str);
            let sig = input.signals;
            if sig.accepted && last == Some("compensation") {
                let mut p = Part::new("wrong_item.confirm_compensation", Group::Exceptions, Stage::Resolve);
                p.actions.push(promise(input, "compensation", sla.refund_hours));
                return p;
            }
            let next = match (sig.refused, last) {
                (true, Some("compensation")) => "exchange",
                (true, Some("exchange")) => "return",
                (_, Some(o)) if case.primary.as_deref() == Some("wrong_item") && !case.offers.is_empty() => {
                    if o == "compensation" {
                        "compensation"
                    } else if o == "exchange" {
                        "exchange"
                    } else {
                        "return"
                    }
                }
                _ => "compensation",
            };
            match next {
                "compensation" => {
                    let mut p = Part::new("wrong_item.offer_compensation", Group::Exceptions, Stage::Offer);
                    let a = offer(input, "compensation", Some(s.wrong_item_keep));
                    if matches!(a, Action::Offer { within_authority: false, .. }) {
                        p.route = Route::Escalate;
                        p.actions.push(Action::Escalate {
                            reasons: vec!["compensation above the bot role's authority".into()],
                        });
                    }
                    p.actions.push(a);
                    p.offer = Some("compensation");
                    p
                }
                "exchange" => {
                    let mut p = Part::new("wrong_item.offer_exchange", Group::Exceptions, Stage::Negotiate);
                    p.actions.push(offer(input, "exchange", None));
                    p.actions.push(promise(input, "reship", sla.reship_hours));
                    p.offer = Some("exchange");
                    p
                }
                _ => {
                    let mut p = Part::new("wrong_item.offer_return", Group::ReturnsRefunds, Stage::Negotiate);
                    p.actions.push(offer(input, "return", None));
                    p.actions.push(promise(input, "refund", sla.refund_hours));
                    p.offer = Some("return");
                    p
                }
            }
        }
        "address_change" => {
            if !orderer {
                return Part::new("address_change.other_account", Group::Reception, Stage::Verify);
            }
            let order = input.event.order.as_ref();
            let order_id = order.and_then(|o| o.order_id.clone());
            let Some(addr) = input.analysis.entities.new_address.as_ref() else {
                let mut p = Part::new("address_change.ask_address", Group::Reception, Stage::Verify);
                p.actions.push(Action::Ask { what: "new_address" });
                return p;
            };
            let change = Action::AddressChange { order_id: order_id.clone(), new_address: addr.text.clone() };
            if order.is_some_and(super::event::Order::shipped) {
                let mut p = Part::new("address_change.intercept", Group::Exceptions, Stage::Offer);
                p.actions.push(change);
                p.actions.push(Action::Intercept { order_id });
                p.actions.push(promise(input, "callback", sla.callback_hours));
                return p;
            }
            let mut p = Part::new("address_change.confirm", Group::Reception, Stage::Resolve);
            p.actions.push(change);
            p.actions.push(promise(input, "address_change", sla.address_change_hours));
            p
        }
        "order_info_query" => {
            if orderer {
                Part::new("order_info_query.orderer", Group::Reception, Stage::Resolve)
            } else {
                Part::new("order_info_query.other_account", Group::Reception, Stage::Verify)
            }
        }
        "no_reason_return" => match facts::returns(input.event.order.as_ref(), input.now, limits(s)) {
            Returns::Excluded => Part::new("no_reason_return.excluded", Group::ReturnsRefunds, Stage::Negotiate),
            Returns::Late { .. } => Part::new("no_reason_return.late", Group::ReturnsRefunds, Stage::Negotiate),
            Returns::Open => faq_part("no_reason_return.conditions", Group::ReturnsRefunds, None),
            Returns::Unknown(need) => {
                faq_part("no_reason_return.conditions", Group::ReturnsRefunds, None).needs([need])
            }
        },
        "damaged_item" | "missing_item" | "quality_issue" => {
            let group = if intent == "quality_issue" { Group::ReturnsRefunds } else { Group::Exceptions };
            let (ask, off) = match intent {
                "damaged_item" => ("damaged_item.ask_photo", "damaged_item.offer"),
                "missing_item" => ("missing_item.ask_photo", "missing_item.offer"),
                _ => ("quality_issue.ask_photo", "quality_issue.offer"),
            };
            if !case.evidence_received {
                let mut p = Part::new(ask, group, Stage::Verify);
                p.actions.push(Action::Ask { what: "photo" });
                return p;
            }
            let mut p = Part::new(off, group, Stage::Offer);
            let what = if intent == "quality_issue" { "exchange" } else { "reship" };
            p.actions.push(offer(input, what, None));
            p.actions.push(promise(input, "reship", sla.reship_hours));
            p.offer = Some(what);
            p
        }
        "not_received" => match if input.event.order.is_some() && !orderer {
            Shipping::Unknown("order.buyer_account_id")
        } else {
            facts::shipping(input.event.order.as_ref(), input.now, limits(s))
        } {
            // Not shipped yet: what the buyer waits for is the shipment.
            Shipping::Due { .. } | Shipping::Late { .. } | Shipping::Unpaid => flow("shipping_urge", input, case),
            Shipping::Sent(parcel) => not_received(input, parcel),
            Shipping::Closed => Part::new("not_received.check", Group::Exceptions, Stage::Verify),
            Shipping::Unknown(need) => {
                let mut p = Part::new("not_received.check", Group::Exceptions, Stage::Verify).needs([need]);
                p.actions.push(promise(input, "callback", sla.callback_hours));
                p
            }
        },
        "shipping_urge" => shipping_urge(input, case),
        "refund_progress" => {
            // The latest refund status (from the Taobao message service or the adapter) answers
            // the question itself; only the ordering account may hear it.
            let order = input.event.order.as_ref().filter(|_| orderer);
            match facts::refund(order) {
                Refund::Unknown(need) => {
                    let need = if orderer || input.event.order.is_none() { need } else { "order.buyer_account_id" };
                    let mut p = Part::new("refund_progress.answer", Group::ReturnsRefunds, Stage::Verify).needs([need]);
                    p.actions.push(promise(input, "callback", sla.callback_hours));
                    p
                }
                Refund::NotRequested => faq_part("refund_progress.none", Group::ReturnsRefunds, None),
                Refund::WaitingShop | Refund::Approved | Refund::Returning => faq_part(
                    "refund_progress.status",
                    Group::ReturnsRefunds,
                    Some(promise(input, "refund", sla.refund_hours)),
                ),
                Refund::Refunded => faq_part("refund_progress.status", Group::ReturnsRefunds, None),
                // A refund that was turned down or closed needs a person to look at it.
                Refund::Stopped => Part::new("refund_progress.status", Group::ReturnsRefunds, Stage::Verify),
            }
        }
        "return_howto" => match facts::returns(input.event.order.as_ref(), input.now, limits(s)) {
            // Nothing in the order can go back without a reason: say so kindly, a person follows.
            Returns::Excluded => Part::new("no_reason_return.excluded", Group::ReturnsRefunds, Stage::Negotiate),
            Returns::Unknown(need) if need != "order.signed_at" => {
                faq_part("return_howto.answer", Group::ReturnsRefunds, None).needs([need])
            }
            _ => faq_part("return_howto.answer", Group::ReturnsRefunds, None),
        },
        "invoice" => faq_part("invoice.answer", Group::Reception, Some(promise(input, "invoice", sla.invoice_hours))),
        "greeting" => faq_part("greeting.reply", Group::Reception, None),
        "price_difference" => {
            let mut p = Part::new("price_difference.answer", Group::ReturnsRefunds, Stage::Verify);
            p.actions.push(promise(input, "callback", sla.callback_hours));
            p
        }
        "gift_missing" => {
            let mut p = Part::new("gift_missing.answer", Group::Exceptions, Stage::Resolve);
            p.actions.push(promise(input, "gift", sla.gift_hours));
            p
        }
        "complaint" => {
            let mut p = Part::new("complaint.escalate", Group::Exceptions, Stage::Record);
            p.route = Route::Escalate;
            p.actions.push(Action::Escalate { reasons: vec!["buyer threatens a complaint or bad review".into()] });
            p.actions.push(promise(input, "callback", sla.callback_hours));
            p
        }
        _ => {
            // human_agent
            let mut p = Part::new("human_agent.handoff", Group::Reception, Stage::Record);
            p.route = Route::Escalate;
            p.actions.push(Action::Escalate { reasons: vec!["buyer asks for a person".into()] });
            p.actions.push(promise(input, "callback", sla.callback_hours));
            p
        }
    }
}

/// `shipping_urge`: the answer follows the order's state; a deadline is stated only when the
/// order gives one, and a deadline already promised in this conversation is quoted.
fn shipping_urge(input: &Input<'_>, case: &Case) -> Part {
    let s = input.settings;
    let order = input.event.order.as_ref();
    let earlier = case.promises.iter().find(|p| p.what == "ship");
    // The order's facts are told only to the account that placed it.
    let state = if order.is_some() && !input.event.from_orderer() {
        Shipping::Unknown("order.buyer_account_id")
    } else {
        facts::shipping(order, input.now, limits(s))
    };
    // The conversation's own promise counts like the order's deadline: past it is late.
    let state = match (state, earlier) {
        (Shipping::Due { due, .. }, Some(p)) if p.due_at <= input.now => Shipping::Late { due: due.min(p.due_at) },
        (st, _) => st,
    };
    match state {
        Shipping::Unknown(need) => {
            let mut p = Part::new("shipping_urge.check", Group::Reception, Stage::Verify).needs([need]);
            p.actions.push(promise(input, "callback", s.sla.callback_hours));
            p
        }
        Shipping::Unpaid => faq_part("shipping_urge.unpaid", Group::Reception, None),
        Shipping::Closed => Part::new("shipping_urge.closed", Group::Reception, Stage::Verify),
        Shipping::Late { due } => {
            let mut p = Part::new("shipping_urge.late", Group::Exceptions, Stage::Record);
            p.route = Route::Escalate;
            let hours = input.now.duration_since(due).as_hours();
            p.actions.push(Action::Escalate {
                reasons: vec![format!("not shipped {hours} h after the ship deadline; no new ship promise was made")],
            });
            p.actions.push(promise(input, "callback", s.sla.callback_hours));
            p
        }
        Shipping::Due { due, by_order } => {
            if let Some(p) = earlier.filter(|p| p.due_at > input.now) {
                // Promised before: quote that promise, make no new one.
                let mut part = faq_part("shipping_urge.promised", Group::Reception, None);
                part.vars.promised.push(("ship".to_owned(), p.due_at));
                return part;
            }
            if input.signals.earlier_promise {
                // The buyer cites a promise this conversation has no record of: a person checks
                // what was said before anything new is promised.
                let mut p = Part::new("shipping_urge.earlier_promise", Group::Reception, Stage::Verify)
                    .needs([EARLIER_PROMISE]);
                p.actions.push(promise(input, "callback", s.sla.callback_hours));
                return p;
            }
            let mut p =
                faq_part("shipping_urge.answer", Group::Reception, Some(Action::Promise { what: "ship", due_at: due }));
            p.vars.ship_due = Some(due);
            p.vars.ship_due_by_order = by_order;
            p
        }
        // Signed for, or stuck: the buyer's question is now where the parcel is.
        Shipping::Sent(parcel @ (Parcel::Signed | Parcel::Stuck { .. })) => not_received(input, parcel),
        Shipping::Sent(parcel) => {
            let mut p = faq_part("shipping_urge.shipped", Group::Reception, None);
            if let Some(o) = order {
                p.needs.extend(facts::missing_tracking(o));
            }
            if parcel == Parcel::Untracked && !p.needs.contains(&"order.logistics.last_event_at") {
                p.needs.push("order.logistics.last_event_at");
            }
            p
        }
    }
}

/// `not_received` for a shipped parcel.
fn not_received(input: &Input<'_>, parcel: Parcel) -> Part {
    let sla = input.settings.sla;
    let order = input.event.order.as_ref();
    let mut p = match parcel {
        Parcel::Signed => Part::new("not_received.signed_not_received", Group::Exceptions, Stage::Verify),
        Parcel::Stuck { hours } => {
            let mut p = Part::new("not_received.stuck", Group::Exceptions, Stage::Verify);
            p.vars.stuck_hours = Some(hours);
            p
        }
        Parcel::Moving => Part::new("not_received.in_transit", Group::Exceptions, Stage::Verify),
        Parcel::Untracked => Part::new("not_received.untracked", Group::Exceptions, Stage::Verify)
            .needs(["order.logistics.last_event_at"]),
    };
    if matches!(parcel, Parcel::Moving | Parcel::Stuck { .. })
        && let Some(o) = order
    {
        p.needs.extend(facts::missing_tracking(o));
    }
    p.actions.push(promise(input, "callback", sla.callback_hours));
    p
}

fn faq_part(step: &'static str, group: Group, promise: Option<Action>) -> Part {
    let mut p = Part::new(step, group, Stage::Resolve);
    p.faq = true;
    p.route = Route::Auto;
    p.actions.extend(promise);
    p
}
