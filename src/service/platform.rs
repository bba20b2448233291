//! The platform port's generic HTTP implementation: POST each reply as JSON with an
//! `Idempotency-Key`, at most `rate_per_shop` a second per shop, retrying timeouts and 5xx with
//! exponential backoff, waiting out 429 `Retry-After`. Nothing a bot drafted is sent to a
//! conversation a person has taken over.

use std::{collections::HashMap, sync::Arc, time::Duration};

use serde_json::json;

use super::{
    LEASE_MS, Shared, audit_stmt, now_ms,
    store::{Arg, CLAIM_SEND_PG, CLAIM_SEND_SQLITE, Col, RECLAIM_SEND_PG, RECLAIM_SEND_SQLITE, Stmt},
};

/// The outbound port: how a reply reaches the buyer's platform. The generic HTTP
/// implementation is [`HttpPlatform`]; platform adapters implement the same trait.
pub trait Platform: Send + Sync {
    /// Delivers one reply. `key` is the idempotency key, the same on every attempt.
    fn send<'a>(
        &'a self,
        key: &'a str,
        reply: &'a serde_json::Value,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Outcome> + Send + 'a>>;

    /// Whether [`Platform::handoff`] does anything for `shop` (then drafts routed to a person
    /// queue a handoff). Default: no.
    fn hands_off(&self, _shop: &str) -> bool {
        false
    }

    /// Whether a draft routed to review (not only an escalation) hands the conversation off.
    /// Default: yes (Chatwoot opens it for its agents).
    fn hands_off_on_review(&self, _shop: &str) -> bool {
        true
    }

    /// The channel's reply budget for `shop` (WeCom Kf: 5 within 48 h of the buyer's message),
    /// enforced by the pipeline, the review and the sender. Default: none.
    fn reply_budget(&self, _shop: &str) -> Option<crate::domain::schedule::Budget> {
        None
    }

    /// The first step of a handoff: gives a conversation to a person on the platform's side
    /// (e.g. Chatwoot opens it). Must be harmless to repeat. Default: nothing.
    fn open_for_person<'a>(
        &'a self,
        _shop: &'a str,
        _conversation: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Outcome> + Send + 'a>> {
        Box::pin(async { Outcome::Sent })
    }

    /// The second step of a handoff: leaves `note` (the bot's draft and why) for the person,
    /// where the platform can. `maybe_stored`: an earlier attempt may have reached the platform
    /// (its answer was lost), so look for the note before posting it again. Default: nothing.
    fn leave_note<'a>(
        &'a self,
        _shop: &'a str,
        _conversation: &'a str,
        _note: &'a str,
        _maybe_stored: bool,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Outcome> + Send + 'a>> {
        Box::pin(async { Outcome::Sent })
    }
}

/// Routes each reply to its shop's platform (an adapter), or to `default` (the generic HTTP
/// platform) for shops no adapter serves.
pub struct Dispatch {
    /// Shop id to its adapter.
    pub by_shop: HashMap<String, Arc<dyn Platform>>,
    /// Everything else.
    pub default: Arc<dyn Platform>,
}

impl Dispatch {
    fn pick(&self, shop: &str) -> &dyn Platform {
        self.by_shop.get(shop).map_or(self.default.as_ref(), |p| p.as_ref())
    }
}

impl Platform for Dispatch {
    fn send<'a>(
        &'a self,
        key: &'a str,
        reply: &'a serde_json::Value,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Outcome> + Send + 'a>> {
        self.pick(reply["shop_id"].as_str().unwrap_or_default()).send(key, reply)
    }

    fn hands_off(&self, shop: &str) -> bool {
        self.pick(shop).hands_off(shop)
    }

    fn hands_off_on_review(&self, shop: &str) -> bool {
        self.pick(shop).hands_off_on_review(shop)
    }

    fn reply_budget(&self, shop: &str) -> Option<crate::domain::schedule::Budget> {
        self.pick(shop).reply_budget(shop)
    }

    fn open_for_person<'a>(
        &'a self,
        shop: &'a str,
        conversation: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Outcome> + Send + 'a>> {
        self.pick(shop).open_for_person(shop, conversation)
    }

    fn leave_note<'a>(
        &'a self,
        shop: &'a str,
        conversation: &'a str,
        note: &'a str,
        maybe_stored: bool,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Outcome> + Send + 'a>> {
        self.pick(shop).leave_note(shop, conversation, note, maybe_stored)
    }
}

/// POSTs the reply as JSON to one URL with an `Idempotency-Key` header.
pub struct HttpPlatform {
    /// The client.
    pub http: reqwest::Client,
    /// The endpoint.
    pub url: String,
}

impl Platform for HttpPlatform {
    fn send<'a>(
        &'a self,
        key: &'a str,
        reply: &'a serde_json::Value,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Outcome> + Send + 'a>> {
        Box::pin(post(&self.http, &self.url, key, reply))
    }
}

/// Backoff for attempt `n` (1-based): 1 s, 2 s, 4 s … capped at 5 minutes.
#[must_use]
pub fn backoff_ms(attempt: i64) -> i64 {
    let exp = attempt.clamp(1, 20) - 1;
    (1000i64 << exp.min(9)).min(300_000)
}

/// What the platform said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx.
    Sent,
    /// 429: wait this long.
    RateLimited(i64),
    /// 5xx, timeout, connection failure: try again later.
    Retry(String),
    /// Any other 4xx: the request itself is wrong; retrying would not help.
    Rejected(String),
}

/// Spaces sends per shop: each shop gets at most `rate` a second across all sender tasks.
#[derive(Default)]
pub struct Pacer {
    next: std::sync::Mutex<HashMap<String, tokio::time::Instant>>,
}

impl Pacer {
    /// Reserves the next slot for `shop` and waits for it.
    pub async fn wait(&self, shop: &str, gap: Duration) {
        let at = {
            let mut next = self.next.lock().expect("pacer lock");
            let now = tokio::time::Instant::now();
            let slot = next.get(shop).copied().filter(|t| *t > now).unwrap_or(now);
            next.insert(shop.to_owned(), slot + gap);
            slot
        };
        tokio::time::sleep_until(at).await;
    }
}

/// Sends due replies until shutdown.
pub async fn sender(s: Arc<Shared>) {
    let gap = Duration::from_micros(1_000_000 / u64::from(s.cfg.rate_per_shop.max(1)));
    loop {
        if s.shutdown.is_cancelled() {
            return;
        }
        match send_one(&s, gap).await {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "sender store error"),
        }
        tokio::select! {
            () = s.shutdown.cancelled() => return,
            () = s.new_send.notified() => {}
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

async fn send_one(s: &Shared, gap: Duration) -> Result<bool, super::store::StoreError> {
    let now = now_ms();
    let pg = s.store.is_postgres();
    let cols = [
        Col::I("id"),
        Col::T("shop_id"),
        Col::T("conversation_id"),
        Col::T("reply_to"),
        Col::T("text"),
        Col::I("by_person"),
        Col::T("idempotency_key"),
        Col::I("attempts"),
    ];
    let args = [Arg::I(now), Arg::I(now - LEASE_MS)];
    let mut rows = s.store.rows(if pg { CLAIM_SEND_PG } else { CLAIM_SEND_SQLITE }, &args, &cols).await?;
    static LAST_RECLAIM: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
    if super::reclaim_due(&LAST_RECLAIM, now, rows.is_empty()) {
        rows.extend(s.store.rows(if pg { RECLAIM_SEND_PG } else { RECLAIM_SEND_SQLITE }, &args, &cols).await?);
    }
    if rows.is_empty() {
        return Ok(false);
    }
    rows.sort_by_key(|r| r[0].i());
    // Who owns each conversation, in one read; then post the sends concurrently (a claim holds
    // at most one per conversation, so order within a conversation is kept) and record every
    // outcome in one write.
    let keys: Vec<(String, String)> = rows.iter().map(|r| (r[1].t(), r[2].t())).collect();
    let owners = s.store.conversations(&keys).await?;
    let person_owns =
        |r: &[super::store::Val]| owners.get(&(r[1].t(), r[2].t())).is_some_and(|(_, owner)| owner != "bot");
    let outcomes = futures_util::future::join_all(rows.iter().map(|r| deliver(s, r, person_owns(r), gap, now))).await;
    let stmts: Vec<Stmt> =
        super::outbox::lock_conversations(&s.store, &keys).into_iter().chain(outcomes.into_iter().flatten()).collect();
    s.store.apply(&stmts).await?;
    if !s.cfg.webhooks.endpoints.is_empty() {
        s.new_webhook.notify_waiters();
    }
    Ok(true)
}

/// Posts one claimed send (unless a person owns its conversation) and returns the statements
/// that record the outcome.
async fn deliver(s: &Shared, r: &[super::store::Val], person_owns: bool, gap: Duration, now: i64) -> Vec<Stmt> {
    let (id, shop, conv, reply_to, text, by_person, key, attempts) =
        (r[0].i(), r[1].t(), r[2].t(), r[3].t(), r[4].t(), r[5].i() != 0, r[6].t(), r[7].i());

    if !by_person && person_owns {
        return vec![
            Stmt { sql: "UPDATE sends SET status = 'held' WHERE id = $1", args: vec![Arg::I(id)] },
            audit_stmt(
                now,
                "bot",
                "send_held",
                &shop,
                &conv,
                None,
                None,
                json!({"send_id": id, "why": "a person owns the conversation"}),
            ),
        ];
    }

    // The channel's reply budget counts what was delivered since the buyer's latest message; a
    // send beyond it is held (WeChat would refuse it, and might penalise the account).
    match super::budget::standing(s, &shop, &conv, now).await {
        Ok(Some(st)) if !st.sent.allowed => {
            let why =
                super::budget::explain(&st.budget, st.sent.spent.unwrap_or(crate::domain::schedule::Spent::Exhausted));
            metrics::counter!("shouhou_sends_total", "result" => "over_budget").increment(1);
            return vec![
                Stmt {
                    sql: "UPDATE sends SET status = 'held', last_error = $2 WHERE id = $1",
                    args: vec![Arg::I(id), Arg::T(why.clone())],
                },
                audit_stmt(now, "bot", "send_held", &shop, &conv, None, None, json!({"send_id": id, "why": why})),
            ];
        }
        Ok(_) => {}
        Err(e) => {
            return vec![Stmt {
                sql: "UPDATE sends SET status = 'pending', next_at = $2, last_error = $3 WHERE id = $1",
                args: vec![Arg::I(id), Arg::I(now + 1000), Arg::T(format!("budget check: {e}"))],
            }];
        }
    }

    s.pacer.wait(&shop, gap).await;

    let body = json!({"shop_id": shop, "conversation_id": conv, "reply_to": reply_to, "text": text});
    let outcome = s.platform.send(&key, &body).await;
    let now = now_ms();
    let attempts = attempts + 1;
    match &outcome {
        Outcome::Sent => {
            metrics::counter!("shouhou_sends_total", "result" => "sent").increment(1);
            vec![
                Stmt {
                    sql: "UPDATE sends SET status = 'sent', attempts = $2, sent_at = $3 WHERE id = $1",
                    args: vec![Arg::I(id), Arg::I(attempts), Arg::I(now)],
                },
                audit_stmt(
                    now,
                    if by_person { "person" } else { "bot" },
                    "send",
                    &shop,
                    &conv,
                    None,
                    None,
                    json!({"send_id": id, "attempts": attempts}),
                ),
            ]
            .into_iter()
            .chain(super::outbox::event(
                &s.cfg.webhooks,
                now,
                "reply.sent",
                &shop,
                &conv,
                &format!("reply.sent:{key}"),
                json!({"send_id": id, "reply_to": reply_to, "text": text, "by_person": by_person, "attempts": attempts}),
            ))
            .collect()
        }
        Outcome::RateLimited(wait) => {
            metrics::counter!("shouhou_send_retries_total", "reason" => "rate_limited").increment(1);
            vec![Stmt {
                sql: "UPDATE sends SET status = 'pending', attempts = $2, next_at = $3, last_error = $4 WHERE id = $1",
                args: vec![Arg::I(id), Arg::I(attempts), Arg::I(now + wait), Arg::T("429".into())],
            }]
        }
        Outcome::Retry(why) if attempts < s.cfg.max_send_attempts => {
            metrics::counter!("shouhou_send_retries_total", "reason" => "retry").increment(1);
            vec![Stmt {
                sql: "UPDATE sends SET status = 'pending', attempts = $2, next_at = $3, last_error = $4 WHERE id = $1",
                args: vec![Arg::I(id), Arg::I(attempts), Arg::I(now + backoff_ms(attempts)), Arg::T(why.clone())],
            }]
        }
        Outcome::Retry(why) | Outcome::Rejected(why) => {
            metrics::counter!("shouhou_sends_total", "result" => "failed").increment(1);
            vec![
                Stmt {
                    sql: "UPDATE sends SET status = 'failed', attempts = $2, last_error = $3 WHERE id = $1",
                    args: vec![Arg::I(id), Arg::I(attempts), Arg::T(why.clone())],
                },
                audit_stmt(now, "bot", "send_failed", &shop, &conv, None, None, json!({"send_id": id, "error": why})),
            ]
        }
    }
}

/// One POST to the platform.
pub async fn post(http: &reqwest::Client, url: &str, key: &str, body: &serde_json::Value) -> Outcome {
    let res = http.post(url).header("Idempotency-Key", key).json(body).timeout(Duration::from_secs(10)).send().await;
    outcome(res)
}

/// What an HTTP answer means for a delivery: 2xx sent, 429 wait, 5xx and transport errors
/// retry, other 4xx rejected.
#[must_use]
pub fn outcome(res: Result<reqwest::Response, reqwest::Error>) -> Outcome {
    match res {
        Err(e) => Outcome::Retry(if e.is_timeout() { "timeout".into() } else { "connection failed".into() }),
        Ok(r) if r.status().is_success() => Outcome::Sent,
        Ok(r) if r.status().as_u16() == 429 => {
            Outcome::RateLimited(retry_after_ms(r.headers()).unwrap_or(1000).clamp(0, 3_600_000))
        }
        Ok(r) if r.status().is_server_error() => Outcome::Retry(format!("http {}", r.status().as_u16())),
        Ok(r) => Outcome::Rejected(format!("http {}", r.status().as_u16())),
    }
}

/// How long `Retry-After` asks to wait, in milliseconds: delay-seconds (`120`) or an HTTP-date
/// (`Wed, 21 Oct 2015 07:28:00 GMT`, RFC 9110 section 10.2.3); a date in the past is 0. `None` when
/// absent or unreadable.
#[must_use]
pub fn retry_after_ms(headers: &reqwest::header::HeaderMap) -> Option<i64> {
    retry_after_ms_at(headers, now_ms())
}

/// [`retry_after_ms`] as seen at `now` (unix milliseconds).
#[must_use]
pub fn retry_after_ms_at(headers: &reqwest::header::HeaderMap, now: i64) -> Option<i64> {
    static HTTP_DATE: jiff::fmt::rfc2822::DateTimeParser = jiff::fmt::rfc2822::DateTimeParser::new();
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<i64>() {
        return Some(secs.max(0).saturating_mul(1000));
    }
    let at = HTTP_DATE.parse_timestamp(v).ok()?;
    Some((at.as_millisecond() - now).max(0))
}

/// Handoffs are claimed like sends: `$1` now, `$2` the lease cut-off; pending and due, or held
/// by a claimer whose lease ran out.
macro_rules! claim_handoff {
    ($lock:literal) => {
        concat!(
            "UPDATE handoffs SET status = 'sending', claimed_at = $1
 WHERE id IN (
   SELECT id FROM handoffs
    WHERE (status = 'pending' AND next_at <= $1) OR (status = 'sending' AND claimed_at < $2)
    ORDER BY id LIMIT 16",
            $lock,
            ")
 RETURNING id, shop_id, conversation_id, note, attempts, draft_id, COALESCE(opened_at, 0) AS opened, note_tries"
        )
    };
}

const CLAIM_HANDOFF_PG: &str = claim_handoff!(" FOR UPDATE SKIP LOCKED");
const CLAIM_HANDOFF_SQLITE: &str = claim_handoff!("");

/// Queued by the processor (in the draft's transaction) when a draft for a shop whose platform
/// [`Platform::hands_off`] goes to a person; a worker calls [`Platform::open_for_person`] then
/// [`Platform::leave_note`].
pub const QUEUE_HANDOFF: &str = "INSERT INTO handoffs (draft_id, shop_id, conversation_id, note, next_at, created_at)
 SELECT id, shop_id, conversation_id, $2, $3, $3 FROM drafts WHERE inbox_seq = $1";

/// The draft of a handoff whose conversation was opened for a person on the platform leaves
/// shouhou's review queue (`$1` draft id, `$2` now): answering it here too would answer the
/// buyer twice.
const DRAFT_HANDED_OFF: &str = "UPDATE drafts SET status = 'handed_off', decided_by = 'platform', decided_at = $2,
 reason = 'the conversation was handed to a person on the platform' WHERE id = $1 AND status IN ('pending_review', 'escalated')";

/// Its audit row, written only when [`DRAFT_HANDED_OFF`] changed the draft (`$1` draft id, `$2`
/// now, `$3` detail).
const AUDIT_DRAFT_HANDED_OFF: &str = "INSERT INTO audit (at, actor, kind, shop_id, conversation_id, draft_id, detail)
 SELECT $2, 'bot', 'draft_handed_off', shop_id, conversation_id, id, $3 FROM drafts
 WHERE id = $1 AND status = 'handed_off' AND decided_by = 'platform' AND decided_at = $2";

/// Performs queued handoffs until shutdown, retrying failures with [`backoff_ms`] up to
/// `max_send_attempts`.
pub async fn handoffs(s: Arc<Shared>) {
    loop {
        if s.shutdown.is_cancelled() {
            return;
        }
        match handoff_batch(&s).await {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "handoff store error"),
        }
        tokio::select! {
            () = s.shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    }
}

async fn handoff_batch(s: &Shared) -> Result<bool, super::store::StoreError> {
    let now = now_ms();
    let sql = if s.store.is_postgres() { CLAIM_HANDOFF_PG } else { CLAIM_HANDOFF_SQLITE };
    let cols = [
        Col::I("id"),
        Col::T("shop_id"),
        Col::T("conversation_id"),
        Col::T("note"),
        Col::I("attempts"),
        Col::I("draft_id"),
        Col::I("opened"),
        Col::I("note_tries"),
    ];
    let mut rows = s.store.rows(sql, &[Arg::I(now), Arg::I(now - LEASE_MS)], &cols).await?;
    if rows.is_empty() {
        return Ok(false);
    }
    rows.sort_by_key(|r| r[0].i());
    for r in &rows {
        let stmts = handoff_one(s, r).await?;
        s.store.apply(&stmts).await?;
    }
    Ok(true)
}

/// Performs the steps of one claimed handoff not yet done, recording each as it succeeds, and
/// returns the statements that record the outcome.
async fn handoff_one(s: &Shared, r: &[super::store::Val]) -> Result<Vec<Stmt>, super::store::StoreError> {
    let (id, shop, conv, note, attempts, draft_id, opened, note_tries) =
        (r[0].i(), r[1].t(), r[2].t(), r[3].t(), r[4].i() + 1, r[5].i(), r[6].i() != 0, r[7].i());
    let mut step = Vec::new();
    if !opened {
        // A person already answered through shouhou's queue: opening the conversation for the
        // platform's agents now would invite a second answer.
        let status =
            s.store.rows("SELECT status FROM drafts WHERE id = $1", &[Arg::I(draft_id)], &[Col::T("status")]).await?;
        if status.first().is_some_and(|st| matches!(st[0].t().as_str(), "approved" | "edited")) {
            let now = now_ms();
            metrics::counter!("shouhou_handoffs_total", "result" => "skipped").increment(1);
            return Ok(vec![
                Stmt {
                    sql: "UPDATE handoffs SET status = 'skipped', attempts = $2, done_at = $3 WHERE id = $1",
                    args: vec![Arg::I(id), Arg::I(attempts - 1), Arg::I(now)],
                },
                audit_stmt(
                    now,
                    "bot",
                    "handoff_skipped",
                    &shop,
                    &conv,
                    Some(draft_id),
                    None,
                    json!({"handoff_id": id, "why": "the draft was answered in shouhou first"}),
                ),
            ]);
        }
        let outcome = s.platform.open_for_person(&shop, &conv).await;
        if outcome != Outcome::Sent {
            return Ok(handoff_failure(s, id, &shop, &conv, attempts, outcome));
        }
        let now = now_ms();
        let detail = json!({"handoff_id": id}).to_string();
        step.extend([
            Stmt { sql: "UPDATE handoffs SET opened_at = $2 WHERE id = $1", args: vec![Arg::I(id), Arg::I(now)] },
            Stmt { sql: DRAFT_HANDED_OFF, args: vec![Arg::I(draft_id), Arg::I(now)] },
            Stmt { sql: AUDIT_DRAFT_HANDED_OFF, args: vec![Arg::I(draft_id), Arg::I(now), Arg::T(detail)] },
        ]);
    }
    // Count the note attempt before making it: if its answer is lost (or the process stops),
    // the next attempt knows the note may already be there.
    step.push(Stmt { sql: "UPDATE handoffs SET note_tries = note_tries + 1 WHERE id = $1", args: vec![Arg::I(id)] });
    s.store.apply(&step).await?;
    let outcome = s.platform.leave_note(&shop, &conv, &note, note_tries > 0).await;
    if outcome != Outcome::Sent {
        return Ok(handoff_failure(s, id, &shop, &conv, attempts, outcome));
    }
    let now = now_ms();
    metrics::counter!("shouhou_handoffs_total", "result" => "done").increment(1);
    Ok(vec![
        Stmt {
            sql: "UPDATE handoffs SET status = 'done', attempts = $2, noted_at = $3, done_at = $3 WHERE id = $1",
            args: vec![Arg::I(id), Arg::I(attempts), Arg::I(now)],
        },
        audit_stmt(now, "bot", "handoff", &shop, &conv, Some(draft_id), None, json!({"handoff_id": id})),
    ])
}

/// A handoff step failed: try again later, or give up after `max_send_attempts`.
fn handoff_failure(s: &Shared, id: i64, shop: &str, conv: &str, attempts: i64, outcome: Outcome) -> Vec<Stmt> {
    let now = now_ms();
    match outcome {
        Outcome::Sent => Vec::new(),
        Outcome::RateLimited(wait) => vec![Stmt {
            sql: "UPDATE handoffs SET status = 'pending', attempts = $2, next_at = $3, last_error = $4 WHERE id = $1",
            args: vec![Arg::I(id), Arg::I(attempts), Arg::I(now + wait), Arg::T("429".into())],
        }],
        Outcome::Retry(why) if attempts < s.cfg.max_send_attempts => vec![Stmt {
            sql: "UPDATE handoffs SET status = 'pending', attempts = $2, next_at = $3, last_error = $4 WHERE id = $1",
            args: vec![Arg::I(id), Arg::I(attempts), Arg::I(now + backoff_ms(attempts)), Arg::T(why)],
        }],
        Outcome::Retry(why) | Outcome::Rejected(why) => {
            metrics::counter!("shouhou_handoffs_total", "result" => "failed").increment(1);
            vec![
                Stmt {
                    sql: "UPDATE handoffs SET status = 'failed', attempts = $2, last_error = $3 WHERE id = $1",
                    args: vec![Arg::I(id), Arg::I(attempts), Arg::T(why.clone())],
                },
                audit_stmt(
                    now,
                    "bot",
                    "handoff_failed",
                    shop,
                    conv,
                    None,
                    None,
                    json!({"handoff_id": id, "error": why}),
                ),
            ]
        }
    }
}

/// The note left for the person who takes a conversation over: why, what the bot found, and
/// its draft (not sent). For agents only; never logged.
#[must_use]
pub fn handoff_note(draft: &crate::domain::draft::Draft, route: &str) -> String {
    let intents: Vec<String> = draft.intents.iter().map(|h| format!("{} ({:.2})", h.id, h.score)).collect();
    let mut note = format!(
        "shouhou: this conversation needs a person (route: {route}).\nIntents: {}\nGuard: {}",
        if intents.is_empty() { "none".to_owned() } else { intents.join(", ") },
        draft.guard.verdict
    );
    if let Some(reply) = &draft.reply {
        note.push_str("\nDraft reply (not sent):\n");
        note.push_str(reply);
    }
    note
}
