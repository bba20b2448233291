//! Consumer webhooks: a durable outbox delivered with Standard Webhooks signatures.
//!
//! Every event (`message.received`, `draft.created`, …) is written as one outbox row per
//! subscribed endpoint in the same transaction as the change it reports, so an event exists
//! exactly when its change committed. Deliverer tasks claim due rows (`FOR UPDATE SKIP LOCKED`
//! on PostgreSQL, so several instances share the outbox), at most the oldest undelivered row
//! of each endpoint and conversation at a time (events arrive in order per conversation), POST
//! the stored body with `webhook-id` (the row's event id, the same on every attempt),
//! `webhook-timestamp` (per attempt) and `webhook-signature` (one `v1,` signature per secret,
//! several during rotation). A failure is retried on the configured schedule (by default the
//! spec's: about 75 hours); after the last attempt the row is dead-lettered and the API can
//! redeliver it. A `410 Gone` dead-letters at once.

use std::{collections::HashMap, sync::Arc, time::Duration};

use serde_json::{Value, json};
use sha2::Digest;

use super::{
    LEASE_MS, Role, Shared,
    api::{ApiError, ApiResult, auth},
    audit_stmt, now_ms,
    store::{Arg, Col, Stmt, StoreError},
};
use crate::{config, domain::sign::Secret};

/// A configured consumer endpoint with its secrets.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Its name (the key of its secrets).
    pub name: String,
    /// Where events are POSTed.
    pub url: String,
    /// Event types it receives (`*`: all).
    pub events: Vec<String>,
    /// Signing secrets: every one signs each delivery (rotation).
    pub secrets: Vec<Secret>,
}

impl Endpoint {
    fn wants(&self, ty: &str) -> bool {
        self.events.iter().any(|e| e == "*" || e == ty)
    }
}

/// The outbox settings of a running service.
#[derive(Debug, Clone, Default)]
pub struct Webhooks {
    /// The endpoints.
    pub endpoints: Vec<Endpoint>,
    /// Milliseconds before attempt n+1 (index 0: before the first).
    pub retry_schedule_ms: Vec<i64>,
}

impl Webhooks {
    /// Joins the configured endpoints with their secrets (`SHOUHOU_WEBHOOK_SECRETS`).
    ///
    /// # Errors
    /// An endpoint without a secret.
    pub fn new(cfg: &config::Webhooks, secrets: &HashMap<String, Vec<Secret>>) -> anyhow::Result<Self> {
        let mut endpoints = Vec::with_capacity(cfg.endpoints.len());
        for e in &cfg.endpoints {
            let Some(s) = secrets.get(&e.name).filter(|s| !s.is_empty()) else {
                anyhow::bail!(
                    "SHOUHOU_WEBHOOK_SECRETS has no secret for webhook endpoint `{}`: set {}=whsec_…",
                    e.name,
                    e.name
                );
            };
            endpoints.push(Endpoint {
                name: e.name.clone(),
                url: e.url.clone(),
                events: e.events.clone(),
                secrets: s.clone(),
            });
        }
        Ok(Self { endpoints, retry_schedule_ms: cfg.retry_schedule_ms.clone() })
    }

    /// Delay before the attempt after `attempts` failed ones, or `None` when the schedule is spent.
    #[must_use]
    pub fn delay_after(&self, attempts: i64) -> Option<i64> {
        usize::try_from(attempts).ok().and_then(|i| self.retry_schedule_ms.get(i).copied())
    }
}

/// The stable `webhook-id` of an event, derived from what it reports (no `.` in it).
#[must_use]
pub fn event_id(key: &str) -> String {
    let digest = sha2::Sha256::digest(key.as_bytes());
    let mut id = String::with_capacity(36);
    id.push_str("msg_");
    for b in &digest[..16] {
        id.push_str(&format!("{b:02x}"));
    }
    id
}

/// On PostgreSQL, a statement that serialises the transactions writing outbox rows for the same
/// conversations. Outbox ids come from a sequence when a row is inserted, not when it commits, so
/// without it a transaction could take a later id yet commit first, and a deliverer would send
/// that conversation's events out of order. The locks are taken in sorted order, so two such
/// transactions never deadlock; they end with the transaction. SQLite's single writer commits in
/// id order already: `None`.
#[must_use]
pub fn lock_conversations(store: &super::store::Store, keys: &[(String, String)]) -> Option<Stmt> {
    if !store.is_postgres() || keys.is_empty() {
        return None;
    }
    let names: Vec<String> = keys.iter().map(|(shop, conv)| format!("{shop}\u{1f}{conv}")).collect();
    Some(Stmt {
        sql: "SELECT pg_advisory_xact_lock(hashtext(k)) FROM
                (SELECT DISTINCT value AS k FROM json_array_elements_text(CAST($1 AS JSON)) ORDER BY 1) t",
        args: vec![Arg::T(serde_json::to_string(&names).unwrap_or_default())],
    })
}

/// In the body of an event about a draft, this is replaced by the draft's id when the row is
/// written (the id is assigned in the same transaction).
const DRAFT_ID_PLACEHOLDER: &str = "\"draft_id\":-1";

fn body(ty: &str, now: i64, shop: &str, conv: &str, mut data: Value) -> String {
    if let Value::Object(m) = &mut data {
        m.insert("shop_id".into(), json!(shop));
        m.insert("conversation_id".into(), json!(conv));
    }
    let ts = jiff::Timestamp::from_millisecond(now).map(|t| t.to_string()).unwrap_or_default();
    json!({"type": ty, "timestamp": ts, "data": data}).to_string()
}

/// The rows for one event: one per endpoint that wants `ty`. `key` identifies the event (the
/// same key always gives the same `webhook-id`; a repeat is ignored).
#[must_use]
pub fn event(w: &Webhooks, now: i64, ty: &str, shop: &str, conv: &str, key: &str, data: Value) -> Vec<Stmt> {
    let targets: Vec<&Endpoint> = w.endpoints.iter().filter(|e| e.wants(ty)).collect();
    if targets.is_empty() {
        return Vec::new();
    }
    let (id, body) = (event_id(key), body(ty, now, shop, conv, data));
    targets
        .into_iter()
        .map(|e| Stmt {
            sql: "INSERT INTO outbox (endpoint, event_id, event_type, shop_id, conversation_id, body, next_at, created_at)
                  VALUES ($1, $2, $3, $4, $5, $6, $7, $7) ON CONFLICT (endpoint, event_id) DO NOTHING",
            args: vec![
                Arg::T(e.name.clone()),
                Arg::T(id.clone()),
                Arg::T(ty.to_owned()),
                Arg::T(shop.to_owned()),
                Arg::T(conv.to_owned()),
                Arg::T(body.clone()),
                Arg::I(now + w.retry_schedule_ms.first().copied().unwrap_or(0)),
            ],
        })
        .collect()
}

/// Like [`event`], for an event about the draft written for inbox row `inbox_seq` in the same
/// transaction: `data.draft_id` becomes that draft's id.
#[must_use]
#[allow(clippy::too_many_arguments)]
pub fn draft_event(
    w: &Webhooks,
    now: i64,
    ty: &str,
    shop: &str,
    conv: &str,
    key: &str,
    inbox_seq: i64,
    mut data: Value,
) -> Vec<Stmt> {
    if let Value::Object(m) = &mut data {
        m.insert("draft_id".into(), json!(-1));
    }
    event(w, now, ty, shop, conv, key, data)
        .into_iter()
        .map(|mut st| {
            st.sql = "INSERT INTO outbox (endpoint, event_id, event_type, shop_id, conversation_id, body, next_at, created_at)
                  SELECT $1, $2, $3, $4, $5, REPLACE($6, $8, $9 || CAST(d.id AS TEXT)), $7, $7 FROM drafts d WHERE d.inbox_seq = $10
                  ON CONFLICT (endpoint, event_id) DO NOTHING";
            st.args.push(Arg::T(DRAFT_ID_PLACEHOLDER.to_owned()));
            st.args.push(Arg::T("\"draft_id\":".to_owned()));
            st.args.push(Arg::I(inbox_seq));
            st
        })
        .collect()
}

macro_rules! claim_outbox {
    ($lock:literal) => {
        concat!(
            "UPDATE outbox SET status = 'sending', claimed_at = $1
 WHERE id IN (
   SELECT o.id FROM outbox o WHERE o.status = 'pending' AND o.next_at <= $1 AND $2 = $2
      AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.endpoint = o.endpoint AND p.shop_id = o.shop_id
                       AND p.conversation_id = o.conversation_id AND p.id < o.id AND p.status IN ('pending', 'sending'))
    ORDER BY o.next_at, o.id LIMIT 64",
            $lock,
            ")
 RETURNING id, endpoint, event_id, body, attempts"
        )
    };
}

macro_rules! reclaim_outbox {
    ($lock:literal) => {
        concat!(
            "UPDATE outbox SET claimed_at = $1
 WHERE id IN (SELECT id FROM outbox WHERE status = 'sending' AND claimed_at < $2 ORDER BY id LIMIT 64",
            $lock,
            ")
 RETURNING id, endpoint, event_id, body, attempts"
        )
    };
}

/// Marks the rows whose ids are in the JSON array `$1` delivered at `$2`.
const MARK_DELIVERED_SQLITE: &str =
    "UPDATE outbox SET status = 'delivered', attempts = attempts + 1, delivered_at = $2, last_error = NULL
 WHERE id IN (SELECT value FROM json_each($1))";
/// The PostgreSQL form of [`MARK_DELIVERED_SQLITE`].
const MARK_DELIVERED_PG: &str =
    "UPDATE outbox SET status = 'delivered', attempts = attempts + 1, delivered_at = $2, last_error = NULL
 WHERE id IN (SELECT CAST(value AS BIGINT) FROM json_array_elements_text(CAST($1 AS JSON)))";

const CLAIM_PG: &str = claim_outbox!(" FOR UPDATE SKIP LOCKED");
const CLAIM_SQLITE: &str = claim_outbox!("");
const RECLAIM_PG: &str = reclaim_outbox!(" FOR UPDATE SKIP LOCKED");
const RECLAIM_SQLITE: &str = reclaim_outbox!("");

/// Delivers due outbox rows until shutdown.
pub async fn deliverer(s: Arc<Shared>) {
    loop {
        if s.shutdown.is_cancelled() {
            return;
        }
        match deliver_batch(&s).await {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "outbox store error"),
        }
        tokio::select! {
            () = s.shutdown.cancelled() => return,
            () = s.new_webhook.notified() => {}
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Attempt {
    Delivered,
    /// 410: the consumer asked us to stop.
    Gone,
    /// Any other failure; the consumer's `Retry-After` in ms, if it gave one.
    Failed(String, Option<i64>),
}

/// Claims due rows, posts them concurrently (they are from different conversations), and records
/// every outcome in one write. Returns whether there was any.
///
/// # Errors
/// Store failures (claimed rows are then retried after the lease).
pub async fn deliver_batch(s: &Arc<Shared>) -> Result<bool, StoreError> {
    if s.cfg.webhooks.endpoints.is_empty() {
        return Ok(false);
    }
    let now = now_ms();
    let pg = s.store.is_postgres();
    let cols = [Col::I("id"), Col::T("endpoint"), Col::T("event_id"), Col::T("body"), Col::I("attempts")];
    let args = [Arg::I(now), Arg::I(now - LEASE_MS)];
    let mut rows = s.store.rows(if pg { CLAIM_PG } else { CLAIM_SQLITE }, &args, &cols).await?;
    static LAST_RECLAIM: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
    if super::reclaim_due(&LAST_RECLAIM, now, rows.is_empty()) {
        rows.extend(s.store.rows(if pg { RECLAIM_PG } else { RECLAIM_SQLITE }, &args, &cols).await?);
    }
    if rows.is_empty() {
        return Ok(false);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for r in rows {
        let (id, endpoint, event_id, body, attempts) = (r[0].i(), r[1].t(), r[2].t(), r[3].t(), r[4].i());
        let target = s.cfg.webhooks.endpoints.iter().find(|e| e.name == endpoint).cloned();
        let http = s.http.clone();
        tasks.spawn(async move {
            let outcome = match target {
                Some(t) => post(&http, &t, &event_id, &body).await,
                None => Attempt::Gone,
            };
            (id, endpoint, attempts, outcome)
        });
    }
    let mut stmts = Vec::new();
    let mut delivered = Vec::new();
    let now = now_ms();
    while let Some(done) = tasks.join_next().await {
        let Ok((id, endpoint, attempts, outcome)) = done else { continue };
        let attempts = attempts + 1;
        let known = s.cfg.webhooks.endpoints.iter().any(|e| e.name == endpoint);
        let st = match outcome {
            Attempt::Delivered => {
                metrics::counter!("shouhou_webhook_deliveries_total", "result" => "delivered").increment(1);
                delivered.push(id);
                continue;
            }
            Attempt::Gone => {
                metrics::counter!("shouhou_webhook_deliveries_total", "result" => "dead").increment(1);
                let why = if known { "410 Gone: the consumer asked to stop" } else { "endpoint no longer configured" };
                tracing::warn!(endpoint = %endpoint, outbox_id = id, why, "webhook dead-lettered");
                dead(id, attempts, why)
            }
            Attempt::Failed(why, retry_after) => match s.cfg.webhooks.delay_after(attempts) {
                Some(delay) => {
                    metrics::counter!("shouhou_webhook_deliveries_total", "result" => "retry").increment(1);
                    Stmt {
                        sql: "UPDATE outbox SET status = 'pending', attempts = $2, next_at = $3, last_error = $4 WHERE id = $1",
                        args: vec![
                            Arg::I(id),
                            Arg::I(attempts),
                            Arg::I(now + delay.max(retry_after.unwrap_or(0))),
                            Arg::T(why),
                        ],
                    }
                }
                None => {
                    metrics::counter!("shouhou_webhook_deliveries_total", "result" => "dead").increment(1);
                    tracing::warn!(endpoint = %endpoint, outbox_id = id, attempts, "webhook dead-lettered after its last retry");
                    dead(id, attempts, &why)
                }
            },
        };
        stmts.push(st);
    }
    if !delivered.is_empty() {
        // All successes in one statement: one round trip however many rows.
        stmts.push(Stmt {
            sql: if pg { MARK_DELIVERED_PG } else { MARK_DELIVERED_SQLITE },
            args: vec![Arg::T(serde_json::to_string(&delivered).unwrap_or_default()), Arg::I(now)],
        });
    }
    s.store.apply(&stmts).await?;
    Ok(true)
}

fn dead(id: i64, attempts: i64, why: &str) -> Stmt {
    Stmt {
        sql: "UPDATE outbox SET status = 'dead', attempts = $2, last_error = $3 WHERE id = $1",
        args: vec![Arg::I(id), Arg::I(attempts), Arg::T(why.to_owned())],
    }
}

/// Signs and POSTs one delivery.
async fn post(http: &reqwest::Client, e: &Endpoint, id: &str, body: &str) -> Attempt {
    let ts = now_ms() / 1000;
    let signature = e.secrets.iter().map(|k| k.sign(id, ts, body.as_bytes())).collect::<Vec<_>>().join(" ");
    let res = http
        .post(&e.url)
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", signature)
        .body(body.to_owned())
        .timeout(Duration::from_secs(15))
        .send()
        .await;
    match res {
        Err(err) => Attempt::Failed(if err.is_timeout() { "timeout".into() } else { "connection failed".into() }, None),
        Ok(r) if r.status().is_success() => Attempt::Delivered,
        Ok(r) if r.status().as_u16() == 410 => Attempt::Gone,
        Ok(r) => {
            let retry_after = super::platform::retry_after_ms(r.headers()).map(|ms| ms.clamp(0, 86_400_000));
            Attempt::Failed(format!("http {}", r.status().as_u16()), retry_after)
        }
    }
}

/// Writes `promise.due` for promises that fell due and are still open, once each. Returns how many.
///
/// # Errors
/// Store failures.
pub async fn announce_due_promises(s: &Shared, now: i64) -> Result<usize, StoreError> {
    let rows = s
        .store
        .rows(
            "SELECT id, draft_id, shop_id, conversation_id, what, due_at FROM promises
              WHERE status = 'open' AND due_announced = 0 AND due_at <= $1 ORDER BY due_at, id LIMIT 256",
            &[Arg::I(now)],
            &[
                Col::I("id"),
                Col::I("draft_id"),
                Col::T("shop_id"),
                Col::T("conversation_id"),
                Col::T("what"),
                Col::I("due_at"),
            ],
        )
        .await?;
    let keys: Vec<(String, String)> = rows.iter().map(|r| (r[2].t(), r[3].t())).collect();
    let mut stmts: Vec<Stmt> = lock_conversations(&s.store, &keys).into_iter().collect();
    for r in &rows {
        let (id, draft_id, shop, conv, what, due_at) = (r[0].i(), r[1].i(), r[2].t(), r[3].t(), r[4].t(), r[5].i());
        stmts.push(Stmt {
            sql: "UPDATE promises SET due_announced = 1 WHERE id = $1 AND due_announced = 0",
            args: vec![Arg::I(id)],
        });
        let due = jiff::Timestamp::from_millisecond(due_at).map(|t| t.to_string()).unwrap_or_default();
        stmts.extend(event(
            &s.cfg.webhooks,
            now,
            "promise.due",
            &shop,
            &conv,
            &format!("promise.due:{id}"),
            json!({"promise_id": id, "draft_id": draft_id, "what": what, "due_at": due}),
        ));
    }
    if !rows.is_empty() {
        s.store.apply(&stmts).await?;
        s.new_webhook.notify_waiters();
    }
    Ok(rows.len())
}

/// Announces due promises every few seconds until shutdown.
pub async fn promise_watch(s: Arc<Shared>) {
    loop {
        if let Err(e) = announce_due_promises(&s, now_ms()).await {
            tracing::warn!(error = %e, "promise watch store error");
        }
        tokio::select! {
            () = s.shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}

#[derive(serde::Deserialize)]
pub(super) struct DeliveriesQuery {
    status: Option<String>,
    endpoint: Option<String>,
    /// Only rows with a larger id (paging).
    after: Option<i64>,
    limit: Option<i64>,
}

/// `GET /v1/webhooks/deliveries`: outbox rows, oldest first (supervisor or above).
pub(super) async fn deliveries(
    axum::extract::State(s): axum::extract::State<Arc<Shared>>,
    headers: axum::http::HeaderMap,
    axum::extract::Query(q): axum::extract::Query<DeliveriesQuery>,
) -> ApiResult<axum::Json<Value>> {
    auth(&s, &headers, Role::Supervisor)?;
    let rows = s
        .store
        .rows(
            "SELECT id, endpoint, event_id, event_type, shop_id, conversation_id, status, attempts, next_at,
                    COALESCE(delivered_at, 0) AS delivered_at, last_error, created_at
               FROM outbox
              WHERE ($1 = '' OR status = $1) AND ($2 = '' OR endpoint = $2) AND id > $3
              ORDER BY id LIMIT $4",
            &[
                Arg::T(q.status.unwrap_or_default()),
                Arg::T(q.endpoint.unwrap_or_default()),
                Arg::I(q.after.unwrap_or(0)),
                Arg::I(q.limit.unwrap_or(500).clamp(1, 5000)),
            ],
            &[
                Col::I("id"),
                Col::T("endpoint"),
                Col::T("event_id"),
                Col::T("event_type"),
                Col::T("shop_id"),
                Col::T("conversation_id"),
                Col::T("status"),
                Col::I("attempts"),
                Col::I("next_at"),
                Col::I("delivered_at"),
                Col::T("last_error"),
                Col::I("created_at"),
            ],
        )
        .await?;
    let items: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "id": r[0].i(), "endpoint": r[1].t(), "event_id": r[2].t(), "type": r[3].t(),
                "shop_id": r[4].t(), "conversation_id": r[5].t(), "status": r[6].t(), "attempts": r[7].i(),
                "next_at": r[8].i(), "delivered_at": (r[9].i() != 0).then(|| r[9].i()),
                "last_error": r[10].opt(), "created_at": r[11].i(),
            })
        })
        .collect();
    Ok(axum::Json(json!({"items": items})))
}

/// `POST /v1/webhooks/deliveries/{id}/redeliver`: queues a delivery again, under the same
/// `webhook-id`, with a fresh retry schedule (supervisor or above; audited).
pub(super) async fn redeliver(
    axum::extract::State(s): axum::extract::State<Arc<Shared>>,
    headers: axum::http::HeaderMap,
    axum::extract::Path(id): axum::extract::Path<i64>,
) -> ApiResult<axum::Json<Value>> {
    let (who, _) = auth(&s, &headers, Role::Supervisor)?;
    let row = s
        .store
        .rows(
            "SELECT shop_id, conversation_id, status, event_id FROM outbox WHERE id = $1",
            &[Arg::I(id)],
            &[Col::T("shop_id"), Col::T("conversation_id"), Col::T("status"), Col::T("event_id")],
        )
        .await?;
    let Some(r) = row.first() else {
        return Err(ApiError::new(axum::http::StatusCode::NOT_FOUND, format!("no delivery {id}")));
    };
    if r[2].t() == "sending" {
        return Err(ApiError::new(axum::http::StatusCode::CONFLICT, "the delivery is being attempted right now"));
    }
    let now = now_ms();
    let counts = s
        .store
        .apply(&[
            Stmt {
                sql: "UPDATE outbox SET status = 'pending', attempts = 0, next_at = $2, last_error = NULL WHERE id = $1 AND status <> 'sending'",
                args: vec![Arg::I(id), Arg::I(now)],
            },
            audit_stmt(now, &who, "webhook_redeliver", &r[0].t(), &r[1].t(), None, None, json!({"outbox_id": id, "event_id": r[3].t(), "was": r[2].t()})),
        ])
        .await?;
    if counts[0] == 0 {
        // A deliverer claimed it between our read and our write (the audit row stands: the
        // request was made).
        return Err(ApiError::new(axum::http::StatusCode::CONFLICT, "the delivery is being attempted right now"));
    }
    s.new_webhook.notify_waiters();
    Ok(axum::Json(json!({"id": id, "status": "pending"})))
}
