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
    domain::{
        case::Case,
        catalog::INTENT_IDS,
        event::InboundEvent,
        schedule::{CallDecision, History},
    },
    service::{
        Role, audit_stmt, now_ms,
        store::{Arg, Col, Stmt, Store, StoreError},
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

type CallRow = (i64, String, String, i64, Vec<Timestamp>, Vec<String>, String);

async fn call_rows(store: &Store, id: Option<i64>) -> Result<Vec<CallRow>, StoreError> {
    let cols = [
        Col::I("id"),
        Col::T("shop_id"),
        Col::T("conversation_id"),
        Col::I("attempts"),
        Col::T("attempt_times"),
        Col::T("script"),
        Col::T("status"),
    ];
    let rows = match id {
        Some(id) => {
            store
                .rows(
                    "SELECT id, shop_id, conversation_id, attempts, attempt_times, script, status FROM calls WHERE id = $1",
                    &[Arg::I(id)],
                    &cols,
                )
                .await?
        }
        None => {
            store
                .rows(
                    "SELECT id, shop_id, conversation_id, attempts, attempt_times, script, status FROM calls ORDER BY id LIMIT 500",
                    &[],
                    &cols,
                )
                .await?
        }
    };
    Ok(rows
        .into_iter()
        .map(|r| {
            let times: Vec<i64> = serde_json::from_str(&r[4].t()).unwrap_or_default();
            (
                r[0].i(),
                r[1].t(),
                r[2].t(),
                r[3].i(),
                times.into_iter().filter_map(|t| Timestamp::from_millisecond(t).ok()).collect(),
                serde_json::from_str(&r[5].t()).unwrap_or_default(),
                r[6].t(),
            )
        })
        .collect())
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
    let drafts: BTreeMap<i64, i64> = c
        .shared
        .store
        .rows("SELECT id, draft_id FROM calls ORDER BY id LIMIT 500", &[], &[Col::I("id"), Col::I("draft_id")])
        .await?
        .into_iter()
        .map(|r| (r[0].i(), r[1].i()))
        .collect();
    let mut items = Vec::new();
    for (id, shop, conv, attempts, times, script, status) in call_rows(&c.shared.store, None).await? {
        let d = decision(c, at, attempts, &times);
        items.push(json!({
            "id": id, "shop_id": shop, "conversation_id": conv, "attempts": attempts, "status": status,
            "draft_id": drafts.get(&id),
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
    let Some((_, shop, conv, attempts, mut times, _, _)) =
        call_rows(&c.shared.store, Some(id)).await?.into_iter().next()
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
            Stmt {
                sql: "UPDATE calls SET attempts = attempts + 1, attempt_times = $2, status = 'attempted' WHERE id = $1 AND attempts = $3",
                args: vec![Arg::I(id), Arg::T(serde_json::to_string(&json_times).unwrap_or_default()), Arg::I(attempts)],
            },
            audit_stmt(ms, &me.actor(), "call", &shop, &conv, None, None, json!({"call_id": id, "attempt": attempts + 1})),
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
    let rows = c
        .shared
        .store
        .rows(
            "SELECT id, shop_id, conversation_id, what, due_at, status, kept_by, COALESCE(kept_at, 0) AS kept_at, draft_id FROM promises ORDER BY CASE WHEN status = 'open' THEN 0 ELSE 1 END, due_at LIMIT 500",
            &[],
            &[
                Col::I("id"),
                Col::T("shop_id"),
                Col::T("conversation_id"),
                Col::T("what"),
                Col::I("due_at"),
                Col::T("status"),
                Col::T("kept_by"),
                Col::I("kept_at"),
                Col::I("draft_id"),
            ],
        )
        .await?;
    let now = now_ms();
    let items: Vec<Value> = rows
        .iter()
        .map(|r| {
            let open = r[5].t() == "open";
            json!({"id": r[0].i(), "shop_id": r[1].t(), "conversation_id": r[2].t(), "what": r[3].t(),
                   "due": fmt_ms(r[4].i(), c.tz()), "status": r[5].t(), "overdue": open && r[4].i() < now,
                   "due_soon": open && r[4].i() >= now && r[4].i() < now + 4 * 3600 * 1000,
                   "kept_by": r[6].opt(), "kept_at": (r[7].i() > 0).then(|| fmt_ms(r[7].i(), c.tz())), "draft_id": r[8].i()})
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
    let rows = c
        .shared
        .store
        .rows(
            "SELECT shop_id, conversation_id, draft_id, what FROM promises WHERE id = $1",
            &[Arg::I(id)],
            &[Col::T("shop_id"), Col::T("conversation_id"), Col::I("draft_id"), Col::T("what")],
        )
        .await?;
    let Some(r) = rows.first() else {
        return Err(Fail::new(StatusCode::NOT_FOUND, "not_found", format!("no promise {id}")));
    };
    let now = now_ms();
    let counts = c
        .shared
        .store
        .apply(&[
            Stmt {
                sql: "UPDATE promises SET status = 'kept', kept_by = $2, kept_at = $3 WHERE id = $1 AND status = 'open'",
                args: vec![Arg::I(id), Arg::T(me.actor()), Arg::I(now)],
            },
            audit_stmt(now, &me.actor(), "promise_kept", &r[0].t(), &r[1].t(), Some(r[2].i()), None, json!({"promise_id": id, "what": r[3].t()})),
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
    let rows = s
        .store
        .rows(
            "SELECT route, status, intents, created_at, shop_id, conversation_id FROM drafts ORDER BY id LIMIT 100000",
            &[],
            &[
                Col::T("route"),
                Col::T("status"),
                Col::T("intents"),
                Col::I("created_at"),
                Col::T("shop_id"),
                Col::T("conversation_id"),
            ],
        )
        .await?;
    let mut all = Tally::default();
    let mut by_intent: BTreeMap<String, Tally> = BTreeMap::new();
    let mut by_day: BTreeMap<String, Tally> = BTreeMap::new();
    // A conversation counts under the intent of its first draft.
    let mut conv_intent: BTreeMap<(String, String), String> = BTreeMap::new();
    for r in &rows {
        let (route, status) = (r[0].t(), r[1].t());
        let intent = primary_intent(&r[2].t());
        all.add(&route, &status);
        by_intent.entry(intent.clone()).or_default().add(&route, &status);
        by_day.entry(fmt_ms(r[3].i(), c.tz()).chars().take(10).collect()).or_default().add(&route, &status);
        conv_intent.entry((r[4].t(), r[5].t())).or_insert(intent);
    }
    // Time to first reply: per conversation, its first message to its first reply sent.
    let firsts = s
        .store
        .rows(
            "SELECT i.shop_id, i.conversation_id, CAST(MIN(i.received_at) AS BIGINT) AS first_at,
                    CAST(COALESCE((SELECT MIN(sent_at) FROM sends x WHERE x.shop_id = i.shop_id AND x.conversation_id = i.conversation_id AND x.status = 'sent') - MIN(i.received_at), 0) AS BIGINT) AS wait
               FROM inbox i GROUP BY i.shop_id, i.conversation_id",
            &[],
            &[Col::T("shop_id"), Col::T("conversation_id"), Col::I("first_at"), Col::I("wait")],
        )
        .await?;
    let mut waits = Vec::new();
    let mut waits_by_day: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut waits_by_intent: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for r in firsts.iter().filter(|r| r[3].i() > 0) {
        waits.push(r[3].i());
        waits_by_day.entry(fmt_ms(r[2].i(), c.tz()).chars().take(10).collect()).or_default().push(r[3].i());
        if let Some(i) = conv_intent.get(&(r[0].t(), r[1].t())) {
            waits_by_intent.entry(i.clone()).or_default().push(r[3].i());
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

/// Whether auto-send is switched on for every intent in `intents` (the pipeline's one lookup:
/// `plan_message` asks this where the route is decided).
///
/// # Errors
/// The store failed.
pub async fn auto_send_allowed(store: &Store, intents: &[&str]) -> Result<bool, StoreError> {
    if intents.is_empty() {
        return Ok(false);
    }
    let on: Vec<String> = store
        .rows("SELECT intent FROM autonomy WHERE enabled = 1", &[], &[Col::T("intent")])
        .await?
        .into_iter()
        .map(|r| r[0].t())
        .collect();
    Ok(intents.iter().all(|i| on.iter().any(|o| o == i)))
}

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
    let rows = c
        .shared
        .store
        .rows(
            "SELECT intents, status FROM drafts WHERE status IN ('approved', 'edited', 'rejected') ORDER BY decided_at DESC, id DESC LIMIT 200000",
            &[],
            &[Col::T("intents"), Col::T("status")],
        )
        .await?;
    let mut seen: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for r in &rows {
        let e = seen.entry(primary_intent(&r[0].t())).or_default();
        if e.0 < n {
            e.0 += 1;
            if r[1].t() == "approved" {
                e.1 += 1;
            }
        }
    }
    let on: Vec<String> = c
        .shared
        .store
        .rows("SELECT intent FROM autonomy WHERE enabled = 1", &[], &[Col::T("intent")])
        .await?
        .into_iter()
        .map(|r| r[0].t())
        .collect();
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
            Stmt {
                sql: "INSERT INTO autonomy (intent, enabled, changed_by, changed_at) VALUES ($1, $2, $3, $4)
                      ON CONFLICT (intent) DO UPDATE SET enabled = excluded.enabled, changed_by = excluded.changed_by, changed_at = excluded.changed_at",
                args: vec![Arg::T(record.intent.to_owned()), Arg::I(i64::from(on)), Arg::T(me.actor()), Arg::I(now)],
            },
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
