//! The built-in demo (`shouhou serve --demo`): a fake platform that receives replies, a fake
//! webhook consumer that verifies signatures, and the seeds' conversations played in as signed
//! events.

use std::{collections::HashMap, path::Path, sync::Arc, time::Duration};

use anyhow::{Context, Result};
use axum::{Json, Router, extract::State, http::HeaderMap, routing::post};
use tokio::net::TcpListener;

use crate::{
    accounts,
    app::{shutdown_signal, start},
    config::{
        ServiceConfig,
        webhooks::{Endpoint, Webhooks},
    },
    domain::{draft::Assistant, role::Role, sign::Secret},
    store::drafts,
};

/// The demo's fixed shop secret (local demo only).
const DEMO_KEY: &[u8; 32] = b"shouhou-demo-secret-not-for-prod";

/// The demo's console users (password `<name>-demo-pass`; local demo only).
pub const DEMO_USERS: [(&str, Role); 4] =
    [("parttime", Role::PartTime), ("agent", Role::Agent), ("supervisor", Role::Supervisor), ("admin", Role::Admin)];

/// Demo API token with the agent role (local demo only).
pub const DEMO_TOKEN: &str = "demo-agent-token-0000";
/// Demo API token with the supervisor role (audit, deliveries; local demo only).
pub const DEMO_SUPERVISOR_TOKEN: &str = "demo-supervisor-token-0000";

/// Runs the demo: a fake platform, the service on SQLite in a temporary file, and the demo
/// conversations played in as signed events, one line per event on stdout.
///
/// # Errors
/// Startup failures.
pub async fn demo(assistant: Arc<Assistant>, conversations: &Path, keep_running: bool, listen: &str) -> Result<()> {
    // The fake platform: prints every reply it receives.
    let platform = TcpListener::bind("127.0.0.1:0").await?;
    let platform_url = format!("http://{}/send", platform.local_addr()?);
    let received = Arc::new(FakePlatform::default());
    let hooks = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let consumer_secret = Secret::from_bytes(DEMO_CONSUMER_KEY).expect("32 bytes");
    let fake = Router::new()
        .route("/send", post(fake_platform).with_state(received.clone()))
        .route("/received", axum::routing::get(fake_received).with_state(received.clone()))
        .route("/hooks", post(fake_consumer).with_state((hooks.clone(), consumer_secret.clone())));
    tokio::spawn(async move {
        let _ = axum::serve(platform, fake).await;
    });

    let db = std::env::temp_dir().join(format!("shouhou-demo-{}.db", std::process::id()));
    let secret = Secret::from_bytes(DEMO_KEY).expect("32 bytes");
    let cfg = ServiceConfig {
        database_url: format!("sqlite://{}", db.display()),
        platform_url: platform_url.clone(),
        shops: HashMap::from([("shop-1".to_owned(), vec![secret.clone()])]),
        api_tokens: HashMap::from([
            (DEMO_TOKEN.to_owned(), Role::Agent),
            (DEMO_SUPERVISOR_TOKEN.to_owned(), Role::Supervisor),
        ]),
        instance: "demo".into(),
        processors: 2,
        rate_per_shop: 50,
        max_send_attempts: 8,
        webhooks: Webhooks {
            endpoints: vec![Endpoint {
                name: "demo-consumer".into(),
                url: platform_url.replace("/send", "/hooks"),
                events: vec!["*".into()],
                secrets: vec![consumer_secret],
            }],
            retry_schedule_ms: vec![0, 1000, 5000],
        },
        websocket: None,
        chatwoot: None,
        wecom: None,
        tmc: None,
    };
    let listener = TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    let running = start(listener, assistant, cfg).await?;
    let base = format!("http://{}", running.addr);
    println!(
        "shouhou demo: service on {base}, SQLite at {}, fake platform receiving replies at {platform_url} (list: {})",
        db.display(),
        platform_url.replace("/send", "/received")
    );
    for (name, role) in DEMO_USERS {
        accounts::upsert_user(&running.state.store, name, &format!("{name}-demo-pass"), role).await?;
    }

    let mut files: Vec<_> = std::fs::read_dir(conversations)
        .with_context(|| format!("cannot read {}", conversations.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    let http = reqwest::Client::new();
    let mut sent = 0;
    // The conversations were written on one day; their times move so that the last message is
    // now (the pipeline drafts at the clock, and an order paid "this morning" must stay so).
    let mut events = Vec::new();
    for f in &files {
        for line in std::fs::read_to_string(f)?.lines().filter(|l| !l.trim().is_empty()) {
            events.push(crate::domain::event::InboundEvent::parse(line)?);
        }
    }
    let latest = events.iter().filter_map(|e| e.sent_at).max();
    let by = latest.map_or(jiff::SignedDuration::ZERO, |l| jiff::Timestamp::now().duration_since(l));
    for mut ev in events {
        ev.shift_times(by);
        let line = serde_json::to_string(&ev)?;
        let line = line.as_str();
        let ts = jiff::Timestamp::now().as_second();
        let id = format!("demo-{}", ev.message_id);
        let res = http
            .post(format!("{base}/v1/events"))
            .header("x-shouhou-shop", "shop-1")
            .header("webhook-id", &id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", secret.sign(&id, ts, line.as_bytes()))
            .header("content-type", "application/json")
            .body(line.to_owned())
            .send()
            .await?;
        println!("→ event   {:<28} {}  {}", ev.message_id, res.status().as_u16(), crate::domain::mask_phones(&ev.text));
        sent += 1;
    }
    // Wait for the pipeline to draft everything.
    let store = &running.state.store;
    for _ in 0..300 {
        let done = store.count("SELECT COUNT(*) AS n FROM drafts").await?;
        let sending = store.count("SELECT COUNT(*) AS n FROM sends WHERE status IN ('pending', 'sending')").await?;
        let hooks_left = store.count("SELECT COUNT(*) AS n FROM outbox WHERE status IN ('pending', 'sending')").await?;
        if done >= sent && sending == 0 && hooks_left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rows = drafts::all_for_demo(store).await?;
    let mut by_route: HashMap<String, usize> = HashMap::new();
    for r in &rows {
        *by_route.entry(r.route.clone()).or_default() += 1;
        let reply = r.reply.clone().unwrap_or_else(|| "(no draft: a person answers)".into());
        println!("✓ draft #{:<3} {:<28} {:<9} {}", r.id, r.message_id, r.route, reply);
    }
    println!(
        "\n{} events → {} drafts: {} sent automatically, {} waiting for review, {} escalated; the platform received {} replies; the webhook consumer verified {} events.",
        sent,
        rows.len(),
        by_route.get("auto").unwrap_or(&0),
        by_route.get("review").unwrap_or(&0),
        by_route.get("escalate").unwrap_or(&0),
        received.n.load(std::sync::atomic::Ordering::SeqCst),
        hooks.load(std::sync::atomic::Ordering::SeqCst)
    );
    if keep_running {
        println!("Review queue (agent token): curl -H 'Authorization: Bearer {DEMO_TOKEN}' {base}/v1/queue");
        println!("Audit (supervisor token): curl -H 'Authorization: Bearer {DEMO_SUPERVISOR_TOKEN}' {base}/v1/audit");
        println!(
            "Console: {base}/console  (log in as agent / agent-demo-pass; also parttime, supervisor, admin with <name>-demo-pass)"
        );
        println!("Running until Ctrl-C.");
        shutdown_signal().await;
    } else {
        println!("Add --keep-running to keep the service up and work through the review queue in the console.");
    }
    running.stop().await;
    let _ = std::fs::remove_file(&db);
    let _ = std::fs::remove_file(db.with_extension("db-wal"));
    let _ = std::fs::remove_file(db.with_extension("db-shm"));
    Ok(())
}

/// The demo's fake platform: counts and keeps what it receives.
#[derive(Default)]
struct FakePlatform {
    n: std::sync::atomic::AtomicUsize,
    got: std::sync::Mutex<Vec<serde_json::Value>>,
}

/// Every reply the fake platform received, in order (the console's browser test reads it).
async fn fake_received(State(p): State<Arc<FakePlatform>>) -> Json<serde_json::Value> {
    Json(serde_json::Value::Array(p.got.lock().map(|g| g.clone()).unwrap_or_default()))
}

async fn fake_platform(
    State(p): State<Arc<FakePlatform>>,
    headers: HeaderMap,
    Json(body): Json<serde_json::Value>,
) -> &'static str {
    p.n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    if let Ok(mut g) = p.got.lock() {
        g.push(body.clone());
    }
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or("-");
    println!("← platform got reply for {} (key {key})", body["conversation_id"].as_str().unwrap_or("?"));
    "ok"
}

/// The demo consumer's fixed webhook secret (local demo only).
const DEMO_CONSUMER_KEY: &[u8; 32] = b"shouhou-demo-consumer-not-a-key!";

/// The demo's webhook consumer: verifies each event's signature and prints its type.
async fn fake_consumer(
    State((n, secret)): State<(Arc<std::sync::atomic::AtomicUsize>, Secret)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> axum::http::StatusCode {
    let h = |k: &str| headers.get(k).and_then(|v| v.to_str().ok());
    let now = jiff::Timestamp::now().as_second();
    if crate::domain::sign::verify(
        &[secret],
        h("webhook-id"),
        h("webhook-timestamp"),
        h("webhook-signature"),
        &body,
        now,
    )
    .is_err()
    {
        println!("← consumer REJECTED an event with a bad signature");
        return axum::http::StatusCode::UNAUTHORIZED;
    }
    n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let ty = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["type"].as_str().map(str::to_owned))
        .unwrap_or_default();
    println!("← consumer got {ty:<17} {} (signature ok)", h("webhook-id").unwrap_or("-"));
    axum::http::StatusCode::NO_CONTENT
}
