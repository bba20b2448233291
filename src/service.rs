//! `shouhou serve`: signed webhook intake, a durable inbox, the drafting pipeline, the
//! platform sender and the REST API.
//!
//! Shape: `POST /v1/events` verifies the Standard Webhooks signature and stores the event (the
//! acknowledgement comes only after the row is committed); processor tasks claim inbox rows
//! (in order per conversation), draft, and commit every effect of a message in one
//! transaction; sender tasks claim due sends and post them to the platform with an
//! idempotency key, retrying 5xx and timeouts with backoff and honouring 429 `Retry-After`.
//! All state is in the store, so instances are stateless and a crash loses nothing.
//! Platform adapters ([`websocket`], [`chatwoot`]) are further intake paths (through
//! [`store_event`]) and [`platform::Platform`]s, chosen per shop by [`platform::Dispatch`].

pub mod api;
pub mod chatwoot;
pub mod console;
pub mod outbox;
pub mod platform;
pub mod run;
pub mod store;
pub mod tmc;
pub mod websocket;

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use jiff::Timestamp;
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::domain::{
    case::{Action, Case, Route},
    draft::Assistant,
    event::InboundEvent,
    sign::Secret,
};
use store::{Arg, CLAIM_INBOX_PG, CLAIM_INBOX_SQLITE, Col, RECLAIM_INBOX_PG, RECLAIM_INBOX_SQLITE, Stmt, Store};

/// How long a claim is held before another worker may assume its holder died.
pub const LEASE_MS: i64 = 30_000;

/// The largest request body accepted on `/v1/events`.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// A role of an API token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Part-time reception staff.
    PartTime,
    /// After-sales agent.
    Agent,
    /// Supervisor.
    Supervisor,
    /// Administrator.
    Admin,
}

impl Role {
    /// Parses `part_time`, `agent`, `supervisor`, `admin`.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "part_time" => Self::PartTime,
            "agent" => Self::Agent,
            "supervisor" => Self::Supervisor,
            "admin" => Self::Admin,
            _ => return None,
        })
    }
}

/// Service settings beyond `shouhou.toml`: where to listen, the database, the platform,
/// and the secrets (from the environment).
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Database URL.
    pub database_url: String,
    /// Where replies are POSTed.
    pub platform_url: String,
    /// Per-shop webhook secrets (several during rotation).
    pub shops: HashMap<String, Vec<Secret>>,
    /// API bearer tokens and their roles.
    pub api_tokens: HashMap<String, Role>,
    /// This instance's name in claims.
    pub instance: String,
    /// Processor tasks.
    pub processors: usize,
    /// Sends per second per shop to the platform.
    pub rate_per_shop: u32,
    /// Attempts before a send is marked failed.
    pub max_send_attempts: i64,
    /// Consumer webhook endpoints and their retry schedule.
    pub webhooks: outbox::Webhooks,
    /// The websocket client adapter, when configured.
    pub websocket: Option<websocket::WsConfig>,
    /// The Chatwoot Agent Bot adapter, when configured.
    pub chatwoot: Option<chatwoot::ChatwootConfig>,
    /// The Taobao message service client, when `[tmc]` is enabled (secret resolved).
    pub tmc: Option<tmc::Options>,
}

/// What every handler and task shares.
pub struct Shared {
    /// Drafting.
    pub assistant: Arc<Assistant>,
    /// The store.
    pub store: Store,
    /// Settings.
    pub cfg: ServiceConfig,
    /// Prometheus text.
    pub metrics: PrometheusHandle,
    /// Wakes processors when an event arrives.
    pub new_event: Notify,
    /// Wakes senders when a send is queued.
    pub new_send: Notify,
    /// Wakes webhook deliverers when an event is written.
    pub new_webhook: Notify,
    /// The HTTP client for consumer webhooks.
    pub http: reqwest::Client,
    /// Where replies go.
    pub platform: Arc<dyn platform::Platform>,
    /// Per-shop send pacing, shared by the sender tasks.
    pub pacer: platform::Pacer,
    /// Cancelled on shutdown.
    pub shutdown: CancellationToken,
}

/// Unix milliseconds now (the edge reads the clock; the core gets it as an argument).
#[must_use]
pub fn now_ms() -> i64 {
    Timestamp::now().as_millisecond()
}

/// The process-wide Prometheus recorder (installed once).
#[must_use]
pub fn metrics_handle() -> PrometheusHandle {
    static H: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    H.get_or_init(|| {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (tests): then this handle renders ours only.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
    .clone()
}

/// Starts the processors and senders; they stop when `shared.shutdown` is cancelled, after
/// finishing the message or send in hand.
pub fn spawn_workers(shared: &Arc<Shared>) -> tokio_util::task::TaskTracker {
    let tracker = tokio_util::task::TaskTracker::new();
    for i in 0..shared.cfg.processors.max(1) {
        let s = shared.clone();
        tracker.spawn(async move { processor(s, i).await });
    }
    // Several senders, so one slow platform round trip does not hold up the rest.
    for _ in 0..shared.cfg.processors.max(1) {
        let s = shared.clone();
        tracker.spawn(async move { platform::sender(s).await });
    }
    if !shared.cfg.webhooks.endpoints.is_empty() {
        for _ in 0..2 {
            let s = shared.clone();
            tracker.spawn(async move { outbox::deliverer(s).await });
        }
    }
    // Without an endpoint nothing would hear of a due promise; a promise is announced once, so
    // the watch waits until there is someone to tell.
    if !shared.cfg.webhooks.endpoints.is_empty() {
        let s = shared.clone();
        tracker.spawn(async move { outbox::promise_watch(s).await });
    }
    tracker.close();
    tracker
}

async fn processor(s: Arc<Shared>, n: usize) {
    let me = format!("{}#{n}", s.cfg.instance);
    loop {
        if s.shutdown.is_cancelled() {
            return;
        }
        match process_one(&s, &me).await {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "processing failed; the message stays in the inbox");
                metrics::counter!("shouhou_process_errors_total").increment(1);
            }
        }
        tokio::select! {
            () = s.shutdown.cancelled() => return,
            () = s.new_event.notified() => {}
            () = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    }
}

/// Stores one verified inbound event in the durable inbox and wakes a processor. Returns
/// whether it was a duplicate (a redelivered `message_id`, acknowledged and not processed again).
/// Every intake path (webhook, websocket, adapters) acknowledges only after this returns `Ok`.
///
/// # Errors
/// The store failed: the event was not stored and must not be acknowledged.
pub async fn store_event(s: &Shared, shop: &str, event: &InboundEvent, raw: &str) -> Result<bool, store::StoreError> {
    let counts = s
        .store
        .apply(&[Stmt {
            sql: "INSERT INTO inbox (shop_id, message_id, conversation_id, payload, received_at) VALUES ($1, $2, $3, $4, $5)
                  ON CONFLICT (shop_id, message_id) DO NOTHING",
            args: vec![
                Arg::T(shop.to_owned()),
                Arg::T(event.message_id.clone()),
                Arg::T(event.conversation_id.clone()),
                Arg::T(raw.to_owned()),
                Arg::I(now_ms()),
            ],
        }])
        .await?;
    let duplicate = counts[0] == 0;
    metrics::counter!("shouhou_intake_total", "result" => if duplicate { "duplicate" } else { "stored" }).increment(1);
    if !duplicate {
        s.new_event.notify_one();
    }
    Ok(duplicate)
}

/// Whether a worker should also take over claims whose holder died: always when it found no new
/// work, and under sustained load at least every third of a lease, so a crashed instance's
/// claims (which hold up their conversations) are never starved by a steady stream of new work.
pub(crate) fn reclaim_due(last: &AtomicI64, now: i64, idle: bool) -> bool {
    if idle || now - last.load(Ordering::Relaxed) >= LEASE_MS / 3 {
        last.store(now, Ordering::Relaxed);
        return true;
    }
    false
}

/// Messages claimed and committed together: one transaction per batch (group commit).
pub const BATCH: i64 = 32;

/// What one processed message needs after its batch commits.
struct Done {
    route: String,
    blocked: bool,
    auto: bool,
    started: std::time::Instant,
}

/// Claims up to [`BATCH`] inbox messages (at most one per conversation), drafts each, and
/// commits all their effects in one transaction. Returns whether there was any.
///
/// # Errors
/// Store failures (the messages then stay claimed until the lease runs out, and are retried).
pub async fn process_one(s: &Shared, me: &str) -> Result<bool, store::StoreError> {
    let now = now_ms();
    let pg = s.store.is_postgres();
    let args = [Arg::T(me.to_owned()), Arg::I(now), Arg::I(now - LEASE_MS), Arg::I(BATCH)];
    let cols = [Col::I("seq"), Col::T("payload"), Col::T("shop_id"), Col::T("conversation_id")];
    let mut rows = s.store.rows(if pg { CLAIM_INBOX_PG } else { CLAIM_INBOX_SQLITE }, &args, &cols).await?;
    static LAST_RECLAIM: AtomicI64 = AtomicI64::new(0);
    if reclaim_due(&LAST_RECLAIM, now, rows.is_empty()) {
        rows.extend(s.store.rows(if pg { RECLAIM_INBOX_PG } else { RECLAIM_INBOX_SQLITE }, &args, &cols).await?);
    }
    if rows.is_empty() {
        return Ok(false);
    }
    rows.sort_by_key(|r| r[0].i());
    // Every conversation's state in one read.
    let keys: Vec<(String, String)> = rows.iter().map(|r| (r[2].t(), r[3].t())).collect();
    let mut states = s.store.conversations(&keys).await?;
    let mut batch: Vec<(Vec<Stmt>, Option<Done>)> = Vec::with_capacity(rows.len());
    for (row, key) in rows.iter().zip(&keys) {
        let state = states.remove(key);
        batch.push(plan_message(s, row[0].i(), &row[1].t(), &key.0, state, now).await?);
    }
    let all: Vec<Stmt> = outbox::lock_conversations(&s.store, &keys)
        .into_iter()
        .chain(batch.iter().flat_map(|(st, _)| st.iter().cloned()))
        .collect();
    let committed: Vec<bool> = match s.store.apply(&all).await {
        Ok(_) => vec![true; batch.len()],
        // Someone else finished one of these first (its lease ran out while we worked): commit
        // message by message; the unique draft per inbox row refuses the duplicate.
        Err(store::StoreError::Db(sqlx::Error::Database(e))) if e.is_unique_violation() => {
            let mut ok = Vec::with_capacity(batch.len());
            for ((st, _), key) in batch.iter().zip(&keys) {
                let one: Vec<Stmt> = outbox::lock_conversations(&s.store, std::slice::from_ref(key))
                    .into_iter()
                    .chain(st.iter().cloned())
                    .collect();
                ok.push(match s.store.apply(&one).await {
                    Ok(_) => true,
                    Err(store::StoreError::Db(sqlx::Error::Database(e))) if e.is_unique_violation() => {
                        tracing::info!("message already processed elsewhere");
                        false
                    }
                    Err(e) => return Err(e),
                });
            }
            ok
        }
        Err(e) => return Err(e),
    };
    let mut any_auto = false;
    for ((_, done), ok) in batch.into_iter().zip(committed) {
        let Some(d) = done.filter(|_| ok) else { continue };
        metrics::counter!("shouhou_drafts_total", "route" => d.route).increment(1);
        if d.blocked {
            metrics::counter!("shouhou_guard_blocks_total").increment(1);
        }
        metrics::histogram!("shouhou_process_seconds").record(d.started.elapsed().as_secs_f64());
        any_auto |= d.auto;
    }
    if any_auto {
        s.new_send.notify_waiters();
    }
    if !s.cfg.webhooks.endpoints.is_empty() {
        s.new_webhook.notify_waiters();
    }
    Ok(true)
}

/// Drafts one claimed message and returns the statements that record all its effects.
async fn plan_message(
    s: &Shared,
    seq: i64,
    payload: &str,
    shop: &str,
    state: Option<(String, String)>,
    now: i64,
) -> Result<(Vec<Stmt>, Option<Done>), store::StoreError> {
    let shop = shop.to_owned();
    let started = std::time::Instant::now();
    let mut event = match InboundEvent::parse(payload) {
        Ok(e) => e,
        Err(e) => {
            // Validated at intake; a row that no longer parses is parked, not retried forever.
            tracing::error!(seq, error = %e, "stored event no longer parses; parked");
            return Ok((
                vec![Stmt { sql: "UPDATE inbox SET status = 'invalid' WHERE seq = $1", args: vec![Arg::I(seq)] }],
                None,
            ));
        }
    };
    let order_stmts = tmc::order_context(s, &shop, &mut event, now).await?;
    let (case, owner): (Case, String) = match state {
        Some((case, owner)) => (serde_json::from_str(&case).unwrap_or_default(), owner),
        None => (Case::default(), "bot".to_owned()),
    };
    let mut draft = s.assistant.draft(&case, &event, Timestamp::now());
    // Auto-send earned per intent (the console's autonomy page): a clean draft for review is
    // sent when a supervisor has switched auto-send on for each of its intents.
    // Never for a draft that states facts the data lacks or answers one of several requests.
    if draft.route == Route::Review
        && draft.needs.is_empty()
        && draft.reply.is_some()
        && draft.guard.passed()
        && s.assistant.settings.auto_enabled
        && draft.intents.iter().all(|h| h.score >= s.assistant.settings.auto_threshold)
        && console::ops::auto_send_allowed(&s.store, &draft.intents.iter().map(|h| h.id).collect::<Vec<_>>()).await?
    {
        draft.route = Route::Auto;
    }
    // One owner per conversation: once a person has it, the bot drafts for review at most.
    if owner != "bot" && draft.route == Route::Auto {
        draft.route = Route::Review;
    }
    let status = match draft.route {
        Route::Auto => "auto",
        Route::Review => "pending_review",
        Route::Escalate => "escalated",
    };
    let route = serde_json::to_value(draft.route).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    let group = serde_json::to_value(draft.group).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    let verdict = draft.guard.verdict.to_owned();
    let mut stmts = vec![
        Stmt {
            sql: "INSERT INTO drafts (inbox_seq, shop_id, conversation_id, message_id, route, status, grp, reply, intents, actions, guard, created_at)
                  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            args: vec![
                Arg::I(seq),
                Arg::T(shop.clone()),
                Arg::T(event.conversation_id.clone()),
                Arg::T(event.message_id.clone()),
                Arg::T(route.clone()),
                Arg::T(status.to_owned()),
                Arg::T(group),
                Arg::N(draft.reply.clone()),
                Arg::T(serde_json::to_string(&draft.intents).unwrap_or_default()),
                Arg::T(serde_json::to_string(&draft.actions).unwrap_or_default()),
                Arg::T(serde_json::to_string(&draft.guard).unwrap_or_default()),
                Arg::I(now),
            ],
        },
        Stmt {
            sql: "INSERT INTO conversations (shop_id, conversation_id, case_state, owner, updated_at) VALUES ($1, $2, $3, 'bot', $4)
                  ON CONFLICT (shop_id, conversation_id) DO UPDATE SET case_state = excluded.case_state, updated_at = excluded.updated_at",
            args: vec![
                Arg::T(shop.clone()),
                Arg::T(event.conversation_id.clone()),
                Arg::T(serde_json::to_string(&draft.case).unwrap_or_default()),
                Arg::I(now),
            ],
        },
        audit_stmt(now, "bot", "draft", &shop, &event.conversation_id, None, Some(&verdict), json!({"route": route, "message_id": event.message_id})),
    ];
    if draft.route == Route::Auto
        && let Some(text) = &draft.reply
    {
        stmts.push(Stmt {
            sql: "INSERT INTO sends (draft_id, shop_id, conversation_id, reply_to, text, by_person, idempotency_key, next_at, created_at)
                  SELECT id, shop_id, conversation_id, message_id, $2, 0, $3, $4, $4 FROM drafts WHERE inbox_seq = $1",
            args: vec![Arg::I(seq), Arg::T(text.clone()), Arg::T(format!("{shop}:{}:auto", event.message_id)), Arg::I(now)],
        });
    }
    stmts.extend(draft_events(s, now, seq, &shop, &event, &draft, &route));
    // A draft that needs a person hands the conversation over on the platform's side too
    // (Chatwoot: opened for the agents), queued in this transaction so it is never lost.
    if draft.route != Route::Auto && owner == "bot" && s.platform.hands_off(&shop) {
        stmts.push(Stmt {
            sql: platform::QUEUE_HANDOFF,
            args: vec![Arg::I(seq), Arg::T(platform::handoff_note(&draft, &route)), Arg::I(now)],
        });
    }
    for a in &draft.actions {
        match a {
            Action::Promise { what, due_at } => stmts.push(Stmt {
                sql: "INSERT INTO promises (draft_id, shop_id, conversation_id, what, due_at) SELECT id, shop_id, conversation_id, $2, $3 FROM drafts WHERE inbox_seq = $1",
                args: vec![Arg::I(seq), Arg::T((*what).to_owned()), Arg::I(due_at.as_millisecond())],
            }),
            Action::CallRequest { script, next_allowed_at } => stmts.push(Stmt {
                sql: "INSERT INTO calls (draft_id, shop_id, conversation_id, next_allowed_at, script) SELECT id, shop_id, conversation_id, $2, $3 FROM drafts WHERE inbox_seq = $1",
                args: vec![Arg::I(seq), Arg::N(next_allowed_at.clone()), Arg::T(serde_json::to_string(script).unwrap_or_default())],
            }),
            _ => {}
        }
    }
    stmts.extend(order_stmts);
    stmts.push(Stmt { sql: "UPDATE inbox SET status = 'done' WHERE seq = $1", args: vec![Arg::I(seq)] });
    let auto = draft.route == Route::Auto;
    Ok((stmts, Some(Done { route, blocked: verdict != "pass", auto, started })))
}

/// The consumer events of one processed message, in the order they happened: the message,
/// its draft, then the escalation, call request and promises the draft carries.
fn draft_events(
    s: &Shared,
    now: i64,
    seq: i64,
    shop: &str,
    event: &InboundEvent,
    draft: &crate::domain::draft::Draft,
    route: &str,
) -> Vec<Stmt> {
    let w = &s.cfg.webhooks;
    if w.endpoints.is_empty() {
        return Vec::new();
    }
    let (conv, msg) = (event.conversation_id.as_str(), event.message_id.as_str());
    let key = |ty: &str| format!("{ty}:{shop}:{msg}");
    let mut out = outbox::event(
        w,
        now,
        "message.received",
        shop,
        conv,
        &key("message.received"),
        json!({
            "message_id": msg,
            "sender_account_id": event.sender.account_id,
            "text": event.text,
            "order_id": event.order.as_ref().and_then(|o| o.order_id.clone()),
        }),
    );
    out.extend(outbox::draft_event(
        w,
        now,
        "draft.created",
        shop,
        conv,
        &key("draft.created"),
        seq,
        json!({
            "message_id": msg,
            "route": route,
            "group": draft.group,
            "intents": draft.intents,
            "reply": draft.reply,
            "actions": draft.actions,
            "guard": draft.guard,
        }),
    ));
    for (i, a) in draft.actions.iter().enumerate() {
        let (ty, data) = match a {
            Action::Escalate { reasons } => {
                ("case.escalated", json!({"message_id": msg, "reasons": reasons, "group": draft.group}))
            }
            // No call on a closed order: the call row is cancelled in this transaction.
            Action::CallRequest { .. }
                if event.order.as_ref().and_then(|o| o.status.as_deref()) == Some(tmc::CLOSED) =>
            {
                continue;
            }
            Action::CallRequest { script, next_allowed_at } => {
                let p = &s.assistant.settings;
                (
                    "call.requested",
                    json!({
                        "message_id": msg,
                        "script": script,
                        "next_allowed_at": next_allowed_at,
                        "window": p.calls.window_text(),
                        "max_attempts": p.calls.max_attempts(),
                        "timezone": p.shop.timezone,
                    }),
                )
            }
            Action::Promise { what, due_at } => {
                ("promise.created", json!({"message_id": msg, "what": what, "due_at": due_at.to_string()}))
            }
            _ => continue,
        };
        out.extend(outbox::draft_event(w, now, ty, shop, conv, &format!("{}:{i}", key(ty)), seq, data));
    }
    out
}

/// An audit row: who did what, when, with the guard's verdict. Never updated or deleted.
#[must_use]
#[allow(clippy::too_many_arguments)]
pub fn audit_stmt(
    at: i64,
    actor: &str,
    kind: &str,
    shop: &str,
    conversation: &str,
    draft_id: Option<i64>,
    verdict: Option<&str>,
    detail: serde_json::Value,
) -> Stmt {
    Stmt {
        sql: "INSERT INTO audit (at, actor, kind, shop_id, conversation_id, draft_id, verdict, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        args: vec![
            Arg::I(at),
            Arg::T(actor.to_owned()),
            Arg::T(kind.to_owned()),
            Arg::T(shop.to_owned()),
            Arg::T(conversation.to_owned()),
            Arg::NI(draft_id),
            Arg::N(verdict.map(str::to_owned)),
            Arg::T(detail.to_string()),
        ],
    }
}
