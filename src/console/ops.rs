//! The console's other pages: calls, promises, "try it", stats and per-intent autonomy.
//! Time-dependent views take the time as an argument (`calls_view`, `autonomy_view`) so tests
//! can fix it; the handlers read the clock.

use std::{collections::BTreeMap, sync::Arc};

use axum::{
    Extension, Form,
    extract::{Path as UrlPath, Query, State},
    http::StatusCode,
    response::{IntoResponse, Redirect},
};
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Console, Fail, Page, Sess, fmt_ms, segments};
use crate::{
    domain::role::Role,
    domain::{
        case::Case,
        catalog::INTENT_IDS,
        event::InboundEvent,
        schedule::{CallDecision, History},
    },
    state::now_ms,
    store::{
        StoreError,
        audit::audit_stmt,
        autonomy,
        calls::{self, CallAttempts, CallStatus},
        drafts::{self, DraftStatus},
        inbox,
        promises::{self, PromiseStatus},
    },
};

// ---------------------------------------------------------------------------------------------
// Calls

#[derive(Deserialize, Default)]
pub(super) struct CallsQuery {
    /// Show the page as at this time (RFC 3339), for planning; calls are always checked at the
    /// real time when placed.
    #[serde(default)]
    at: String,
    #[serde(default)]
    msg: String,
}

/// A call with its attempt times read.
struct Call {
    id: i64,
    shop: String,
    conv: String,
    attempts: i64,
    times: Vec<Timestamp>,
    script: Vec<String>,
    status: CallStatus,
    draft_id: i64,
}

impl From<CallAttempts> for Call {
    fn from(r: CallAttempts) -> Self {
        let times: Vec<i64> = serde_json::from_str(&r.attempt_times).unwrap_or_default();
        Self {
            id: r.id,
            shop: r.shop_id,
            conv: r.conversation_id,
            attempts: r.attempts,
            times: times.into_iter().filter_map(|t| Timestamp::from_millisecond(t).ok()).collect(),
            script: serde_json::from_str(&r.script).unwrap_or_default(),
            status: r.status,
            draft_id: r.draft_id,
        }
    }
}

fn history(attempts: i64, times: &[Timestamp]) -> History {
    let mut h = History::from_times(times.to_vec());
    h.count = h.count.max(u32::try_from(attempts).unwrap_or(u32::MAX));
    h
}

fn decision(c: &Console, at: Timestamp, attempts: i64, times: &[Timestamp]) -> CallDecision {
    c.settings().calls.check(at, c.tz(), &history(attempts, times))
}

/// The calls page as at `at`.
async fn calls_view(c: &Console, me: &Sess, at: Timestamp, msg: &str) -> Page {
    let tz = c.tz();
    let mut items = Vec::new();
    for call in calls::with_attempts(&c.shared.store).await?.into_iter().map(Call::from) {
        let Call { id, shop, conv, attempts, times, script, status, draft_id } = call;
        let d = decision(c, at, attempts, &times);
        items.push(json!({
            "id": id, "shop_id": shop, "conversation_id": conv, "attempts": attempts, "status": status,
            "draft_id": draft_id,
            "max_attempts": c.settings().calls.max_attempts(), "script": script,
            "allowed": d.allowed, "reason": d.reason,
            "next_allowed": d.next_allowed_at.map(|z| z.strftime("%Y-%m-%d %H:%M").to_string()),
            "last": times.last().map(|t| fmt_ms(t.as_millisecond(), tz)),
        }));
    }
    c.page(
        "calls.html",
        Some(me),
        json!({"items": items, "local_now": at.to_zoned(tz.clone()).strftime("%Y-%m-%d %H:%M").to_string(),
               "tz": tz.iana_name().unwrap_or("UTC"), "msg": msg}),
    )
}

pub(super) async fn calls_page(
    State(c): State<Arc<Console>>,
    Extension(me): Extension<Sess>,
    Query(q): Query<CallsQuery>,
) -> Page {
    me.need(Role::Agent)?;
    let at = if q.at.is_empty() {
        Timestamp::now()
    } else {
        q.at.parse::<Timestamp>()
            .map_err(|e| Fail::new(StatusCode::BAD_REQUEST, "bad_request", format!("`at` is not RFC 3339: {e}")))?
    };
    calls_view(&c, &me, at, &q.msg).await
}

/// Places a call now: refused outside the window, too soon, or past the attempts; otherwise
/// the attempt is recorded and audited.
pub(super) async fn call_now(
    State(c): State<Arc<Console>>,
    Extension(me): Extension<Sess>,
    UrlPath(id): UrlPath<i64>,
) -> Page {
    me.need(Role::Agent)?;
    let Some(Call { shop, conv, attempts, mut times, .. }) =
        calls::attempts_of(&c.shared.store, id).await?.map(Call::from)
    else {
        return Err(Fail::new(StatusCode::NOT_FOUND, "not_found", format!("no call {id}")));
    };
    let now = Timestamp::now();
    let d = decision(&c, now, attempts, &times);
    if !d.allowed {
        let reason =
            serde_json::to_value(d.reason).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        return Err(Fail::new(StatusCode::CONFLICT, "call_not_allowed", reason));
    }
    times.push(now);
    let json_times: Vec<i64> = times.iter().map(|t| t.as_millisecond()).collect();
    let ms = now.as_millisecond();
    let counts = c
        .shared
        .store
        .apply(&[
            calls::attempted(id, &serde_json::to_string(&json_times).unwrap_or_default(), attempts),
            audit_stmt(
                ms,
                &me.actor(),
                "call",
                &shop,
                &conv,
                None,
                None,
                json!({"call_id": id, "attempt": attempts + 1}),
            ),
        ])
        .await?;
    if counts[0] == 0 {
        return Err(Fail::new(StatusCode::CONFLICT, "conflict", "someone else placed this call meanwhile"));
    }
    Ok(Redirect::to(&format!("/console/calls?msg=called-{id}")).into_response())
}

// ---------------------------------------------------------------------------------------------
// Promises

#[derive(Deserialize, Default)]
pub(super) struct MsgQuery {
    #[serde(default)]
    msg: String,
}

pub(super) async fn promises_page(
    State(c): State<Arc<Console>>,
    Extension(me): Extension<Sess>,
    Query(q): Query<MsgQuery>,
) -> Page {
    me.need(Role::Agent)?;
    let now = now_ms();
    let items: Vec<Value> = promises::for_console(&c.shared.store)
        .await?
        .iter()
        .map(|p| {
            let open = p.status == PromiseStatus::Open;
            json!({"id": p.id, "shop_id": p.shop_id, "conversation_id": p.conversation_id, "what": p.what,
                   "due": fmt_ms(p.due_at, c.tz()), "status": p.status, "overdue": open && p.due_at < now,
                   "due_soon": open && p.due_at >= now && p.due_at < now + 4 * 3600 * 1000,
                   "kept_by": p.kept_by, "kept_at": (p.kept_at > 0).then(|| fmt_ms(p.kept_at, c.tz())), "draft_id": p.draft_id})
        })
        .collect();
    c.page("promises.html", Some(&me), json!({"items": items, "msg": q.msg}))
}

pub(super) async fn promise_kept(
    State(c): State<Arc<Console>>,
    Extension(me): Extension<Sess>,
    UrlPath(id): UrlPath<i64>,
) -> Page {
    me.need(Role::Agent)?;
    let Some(p) = promises::get(&c.shared.store, id).await? else {
        return Err(Fail::new(StatusCode::NOT_FOUND, "not_found", format!("no promise {id}")));
    };
    let now = now_ms();
    let counts = c
        .shared
        .store
        .apply(&[
            promises::keep(id, &me.actor(), now),
            audit_stmt(
                now,
                &me.actor(),
                "promise_kept",
                &p.shop_id,
                &p.conversation_id,
                Some(p.draft_id),
                None,
                json!({"promise_id": id, "what": p.what}),
            ),
        ])
        .await?;
    if counts[0] == 0 {
        return Err(Fail::new(StatusCode::CONFLICT, "conflict", "the promise is no longer open"));
    }
    Ok(Redirect::to(&format!("/console/promises?msg=kept-{id}")).into_response())
}

// ---------------------------------------------------------------------------------------------
// Try it

pub(super) async fn try_page(State(c): State<Arc<Console>>, Extension(me): Extension<Sess>) -> Page {
    c.page("try.html", Some(&me), json!({"text": "", "result": null}))
}

#[derive(Deserialize)]
pub(super) struct TryForm {
    #[serde(default)]
    text: String,
}

/// Drafts a typed buyer message as a first message from the ordering account (no order data).
pub(super) async fn try_run(
    State(c): State<Arc<Console>>,
    Extension(me): Extension<Sess>,
    Form(f): Form<TryForm>,
) -> Page {
    let text: String = f.text.chars().take(2000).collect();
    let event = InboundEvent::parse(
        &json!({"message_id": "try-1", "conversation_id": "try", "sender": {"account_id": "try-buyer"}, "text": text})
            .to_string(),
    )
    .map_err(|e| Fail::new(StatusCode::BAD_REQUEST, "bad_request", e.to_string()))?;
    let d = c.shared.assistant.draft(&Case::default(), &event, Timestamp::now());
    let spans: Vec<([usize; 2], String)> =
        d.intents.iter().flat_map(|h| h.evidence.iter().map(|e| (e.span, h.id.to_owned()))).collect();
    let result = json!({
        "segments": segments(&text, &spans), "intents": d.intents, "route": d.route, "reply": d.reply,
        "guard": d.guard, "group": d.group, "stage": d.stage, "actions": d.actions,
    });
    c.page("try.html", Some(&me), json!({"text": text, "result": result}))
}

// ---------------------------------------------------------------------------------------------
// Stats

#[derive(Default, Clone, Copy)]
struct Tally {
    drafts: i64,
    auto: i64,
    approved: i64,
    edited: i64,
    rejected: i64,
}

impl Tally {
    fn add(&mut self, route: &str, status: &str) {
        self.drafts += 1;
        if route == "auto" {
            self.auto += 1;
        }
        match status {
            "approved" => self.approved += 1,
            "edited" => self.edited += 1,
            "rejected" => self.rejected += 1,
            _ => {}
        }
    }

    fn json(&self) -> Value {
        let pct = |a: i64, b: i64| {
            if b == 0 { Value::Null } else { json!(((a as f64) * 1000.0 / (b as f64)).round() / 10.0) }
        };
        json!({
            "drafts": self.drafts, "auto": self.auto, "approved": self.approved, "edited": self.edited, "rejected": self.rejected,
            "automation": pct(self.auto, self.drafts),
            "approval": pct(self.approved + self.edited, self.approved + self.edited + self.rejected),
            "edit": pct(self.edited, self.approved + self.edited),
        })
    }
}

fn primary_intent(intents_json: &str) -> String {
    serde_json::from_str::<Value>(intents_json)
        .ok()
        .and_then(|v| v[0]["id"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "other".to_owned())
}

/// The median of `waits` (milliseconds) in seconds with one decimal, or `None` when empty.
fn median_s(waits: &mut [i64]) -> Option<f64> {
    waits.sort_unstable();
    waits.get(waits.len() / 2).map(|w| (*w as f64 / 100.0).round() / 10.0)
}

pub(super) async fn stats_page(State(c): State<Arc<Console>>, Extension(me): Extension<Sess>) -> Page {
    me.need(Role::Agent)?;
    let s = &c.shared;
    let rows = drafts::for_stats(&s.store).await?;
    let mut all = Tally::default();
    let mut by_intent: BTreeMap<String, Tally> = BTreeMap::new();
    let mut by_day: BTreeMap<String, Tally> = BTreeMap::new();
    // A conversation counts under the intent of its first draft.
    let mut conv_intent: BTreeMap<(String, String), String> = BTreeMap::new();
    for r in &rows {
        let (route, status) = (r.route.as_str(), r.status.as_str());
        let intent = primary_intent(&r.intents);
        all.add(route, status);
        by_intent.entry(intent.clone()).or_default().add(route, status);
        by_day.entry(fmt_ms(r.created_at, c.tz()).chars().take(10).collect()).or_default().add(route, status);
        conv_intent.entry((r.shop_id.clone(), r.conversation_id.clone())).or_insert(intent);
    }
    // Time to first reply: per conversation, its first message to its first reply sent.
    let firsts = inbox::first_replies(&s.store).await?;
    let mut waits = Vec::new();
    let mut waits_by_day: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut waits_by_intent: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for r in firsts.iter().filter(|r| r.wait > 0) {
        waits.push(r.wait);
        waits_by_day.entry(fmt_ms(r.first_at, c.tz()).chars().take(10).collect()).or_default().push(r.wait);
        if let Some(i) = conv_intent.get(&(r.shop_id.clone(), r.conversation_id.clone())) {
            waits_by_intent.entry(i.clone()).or_default().push(r.wait);
        }
    }
    let conversations = waits.len();
    let median = median_s(&mut waits);
    let max_drafts = by_day.values().map(|t| t.drafts).max().unwrap_or(1).max(1);
    let days: Vec<Value> = by_day
        .iter()
        .rev()
        .take(14)
        .rev()
        .enumerate()
        .map(|(i, (day, t))| {
            let mut v = t.json();
            v["day"] = json!(day);
            v["x"] = json!(i * 44 + 30);
            v["h"] = json!(t.drafts * 120 / max_drafts);
            v["h_auto"] = json!(t.auto * 120 / max_drafts);
            v["first_reply_s"] = json!(waits_by_day.get_mut(day).and_then(|w| median_s(w)));
            v
        })
        .collect();
    let intents: Vec<Value> = by_intent
        .iter()
        .map(|(id, t)| {
            let mut v = t.json();
            v["intent"] = json!(id);
            v["bar"] = json!(v["automation"].as_f64().unwrap_or(0.0) * 2.0);
            v["first_reply_s"] = json!(waits_by_intent.get_mut(id).and_then(|w| median_s(w)));
            v
        })
        .collect();
    c.page(
        "stats.html",
        Some(&me),
        json!({"all": all.json(), "days": days, "intents": intents, "median_first_reply_s": median, "conversations": conversations}),
    )
}

// ---------------------------------------------------------------------------------------------
// Autonomy

/// One intent's record: how many of its latest reviewed drafts were approved unedited.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Earned {
    /// The intent.
    pub intent: &'static str,
    /// Reviewed drafts looked at (at most `min_drafts`).
    pub reviewed: i64,
    /// Of those, approved without an edit.
    pub unedited: i64,
    /// `unedited / reviewed`, or 0.
    pub share: f64,
    /// Met the bar.
    pub eligible: bool,
    /// Why not: `too_few` or `below_bar`; `met` when eligible.
    pub why: &'static str,
    /// Drafts still needed when too few.
    pub missing: i64,
    /// Auto-send is on now.
    pub enabled: bool,
}

/// Every intent's record against the configured bar.
///
/// # Errors
/// The store failed.
pub async fn earned(c: &Console) -> Result<Vec<Earned>, StoreError> {
    let bar = c.settings().autonomy;
    let n = i64::from(bar.min_drafts);
    let rows = drafts::reviewed(&c.shared.store).await?;
    let mut seen: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for r in &rows {
        let e = seen.entry(primary_intent(&r.intents)).or_default();
        if e.0 < n {
            e.0 += 1;
            if r.status == DraftStatus::Approved {
                e.1 += 1;
            }
        }
    }
    let on = autonomy::enabled(&c.shared.store).await?;
    Ok(INTENT_IDS
        .iter()
        .map(|id| {
            let (reviewed, unedited) = seen.get(*id).copied().unwrap_or_default();
            let share = if reviewed == 0 { 0.0 } else { unedited as f64 / reviewed as f64 };
            let (eligible, why) = if reviewed < n {
                (false, "too_few")
            } else if share < bar.min_unedited {
                (false, "below_bar")
            } else {
                (true, "met")
            };
            Earned {
                intent: id,
                reviewed,
                unedited,
                share: (share * 1000.0).round() / 10.0,
                eligible,
                why,
                missing: (n - reviewed).max(0),
                enabled: on.iter().any(|o| o == id),
            }
        })
        .collect())
}

pub(super) async fn autonomy_page(
    State(c): State<Arc<Console>>,
    Extension(me): Extension<Sess>,
    Query(q): Query<MsgQuery>,
) -> Page {
    me.need(Role::Agent)?;
    let items = earned(&c).await?;
    let bar = c.settings().autonomy;
    c.page(
        "autonomy.html",
        Some(&me),
        json!({"items": items, "min_drafts": bar.min_drafts, "min_unedited": (bar.min_unedited * 1000.0).round() / 10.0, "msg": q.msg}),
    )
}

#[derive(Deserialize)]
pub(super) struct AutonomyForm {
    #[serde(default)]
    enabled: String,
}

/// Turns auto-send on (only when earned) or off for an intent; supervisors only; audited.
pub(super) async fn autonomy_set(
    State(c): State<Arc<Console>>,
    Extension(me): Extension<Sess>,
    UrlPath(intent): UrlPath<String>,
    Form(f): Form<AutonomyForm>,
) -> Page {
    me.need(Role::Supervisor)?;
    let record = earned(&c)
        .await?
        .into_iter()
        .find(|e| e.intent == intent)
        .ok_or_else(|| Fail::new(StatusCode::NOT_FOUND, "not_found", format!("unknown intent `{intent}`")))?;
    let on = match f.enabled.as_str() {
        "1" => true,
        "0" => false,
        _ => return Err(Fail::new(StatusCode::BAD_REQUEST, "bad_request", "enabled must be 1 or 0")),
    };
    if on && !record.eligible {
        return Err(Fail::new(
            StatusCode::CONFLICT,
            "not_eligible",
            format!("`{intent}` has not met the bar: {}", record.why),
        ));
    }
    let now = now_ms();
    c.shared
        .store
        .apply(&[
            autonomy::set(record.intent, on, &me.actor(), now),
            audit_stmt(
                now,
                &me.actor(),
                if on { "autonomy_on" } else { "autonomy_off" },
                "*",
                "-",
                None,
                None,
                json!({"intent": record.intent, "reviewed": record.reviewed, "unedited": record.unedited}),
            ),
        ])
        .await?;
    Ok(Redirect::to(&format!("/console/autonomy?msg={}-{intent}", if on { "on" } else { "off" })).into_response())
}
