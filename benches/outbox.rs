//! Outbox benchmark: deliveries per second from the consumer-webhook outbox to a local consumer
//! that verifies every signature, beside a bare baseline in the same run (the same signed POSTs
//! fired straight from a loop with the same concurrency, no store).
//!
//! The outbox is filled with `OUTBOX_N` events (default 5000) over `OUTBOX_CONVERSATIONS`
//! conversations (default 500), then a service starts on it and the clock runs until the
//! consumer has verified them all. SQLite always; PostgreSQL when `TEST_PG_URL` is set.
//!
//! Run: `cargo bench --bench outbox`.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{Router, body::Bytes, extract::State, http::HeaderMap, http::StatusCode, routing::post};
use serde_json::json;
use shouhou::{
    app as run,
    config::ServiceConfig,
    domain::{draft::Assistant, sign::Secret},
    outbound::webhooks::{self as outbox, Endpoint, Webhooks},
    store::Store,
};
use tokio::net::TcpListener;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn key() -> Secret {
    Secret::from_bytes(b"bench-consumer-secret-0123456789").expect("32 bytes")
}

/// The consumer: verifies each delivery and counts the good ones.
async fn consumer(State((n, k)): State<(Arc<AtomicUsize>, Secret)>, h: HeaderMap, body: Bytes) -> StatusCode {
    let g = |name: &str| h.get(name).and_then(|v| v.to_str().ok());
    let now = jiff::Timestamp::now().as_second();
    match shouhou::domain::sign::verify(
        std::slice::from_ref(&k),
        g("webhook-id"),
        g("webhook-timestamp"),
        g("webhook-signature"),
        &body,
        now,
    ) {
        Ok(()) => {
            n.fetch_add(1, Ordering::SeqCst);
            StatusCode::NO_CONTENT
        }
        Err(_) => StatusCode::UNAUTHORIZED,
    }
}

async fn start_consumer() -> (Arc<AtomicUsize>, String) {
    let n = Arc::new(AtomicUsize::new(0));
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/hooks", l.local_addr().expect("addr"));
    let app = Router::new().route("/hooks", post(consumer)).with_state((n.clone(), key()));
    tokio::spawn(async move { axum::serve(l, app).await.expect("consumer") });
    (n, url)
}

fn webhooks(url: &str) -> Webhooks {
    Webhooks {
        endpoints: vec![Endpoint {
            name: "bench".into(),
            url: url.to_owned(),
            events: vec!["*".into()],
            secrets: vec![key()],
        }],
        retry_schedule_ms: vec![0, 1000, 5000],
    }
}

fn body(i: usize, conv: usize) -> serde_json::Value {
    json!({"message_id": format!("m{i}"), "text": "bench", "order_id": null, "sender_account_id": format!("c{conv}")})
}

struct Row {
    name: String,
    n: usize,
    secs: f64,
}

/// The bare ceiling: the same signed POSTs from a loop, 64 at a time (a deliverer claims up to 64).
async fn bare(n: usize) -> Row {
    let (got, url) = start_consumer().await;
    let http = reqwest::Client::new();
    let k = key();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in (0..n).collect::<Vec<_>>().chunks(64) {
        for &i in chunk {
            let (http, url, k) = (http.clone(), url.clone(), k.clone());
            tasks.spawn(async move {
                let id = outbox::event_id(&format!("bare:{i}"));
                let b =
                    json!({"type": "message.received", "timestamp": "2026-11-25T00:00:00Z", "data": body(i, i % 500)})
                        .to_string();
                let ts = jiff::Timestamp::now().as_second();
                http.post(&url)
                    .header("webhook-id", &id)
                    .header("webhook-timestamp", ts.to_string())
                    .header("webhook-signature", k.sign(&id, ts, b.as_bytes()))
                    .body(b)
                    .send()
                    .await
                    .expect("post");
            });
        }
        while tasks.join_next().await.is_some() {}
    }
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(got.load(Ordering::SeqCst), n, "every bare POST verified");
    Row { name: "bare signed POSTs, 64 at a time".into(), n, secs }
}

/// Fills the outbox with `n` events over `convs` conversations, then starts a service on it.
async fn full(assistant: Arc<Assistant>, db: &str, name: &str, n: usize, convs: usize) -> Row {
    let (got, url) = start_consumer().await;
    let w = webhooks(&url);
    {
        let store = Store::connect(db).await.expect("store");
        let now = jiff::Timestamp::now().as_millisecond();
        let mut stmts = Vec::new();
        for i in 0..n {
            let conv = format!("c{}", i % convs);
            stmts.extend(outbox::event(
                &w,
                now,
                "message.received",
                "shop-1",
                &conv,
                &format!("m{i}"),
                body(i, i % convs),
            ));
            if stmts.len() == 500 {
                store.apply(&stmts).await.expect("fill");
                stmts.clear();
            }
        }
        store.apply(&stmts).await.expect("fill");
    }
    let cfg = ServiceConfig {
        database_url: db.to_owned(),
        platform_url: "http://127.0.0.1:9/unused".into(),
        shops: HashMap::new(),
        api_tokens: HashMap::new(),
        instance: "bench".into(),
        processors: 2,
        rate_per_shop: 1000,
        max_send_attempts: 8,
        webhooks: w,
        websocket: None,
        chatwoot: None,
        tmc: None,
        wecom: None,
    };
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let started = Instant::now();
    let running = run::start(l, assistant, cfg).await.expect("service");
    while got.load(Ordering::SeqCst) < n {
        assert!(started.elapsed() < Duration::from_secs(600), "deliveries stalled at {}", got.load(Ordering::SeqCst));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    running.stop().await;
    Row { name: name.to_owned(), n, secs }
}

fn main() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    // `cargo test --benches` runs benches once as a check: keep that quick.
    let quick = !std::env::args().any(|a| a == "--bench");
    let env = |k: &str, d: usize| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let n = env("OUTBOX_N", if quick { 200 } else { 5000 });
    let convs = env("OUTBOX_CONVERSATIONS", 500).max(1);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async move {
        let assistant = Arc::new(
            Assistant::load(&root().join("intents"), &root().join("templates"), &root().join("shouhou.toml"))
                .expect("data files"),
        );
        let dir = std::env::temp_dir().join(format!("shouhou-outbox-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut rows = vec![
            bare(n).await,
            full(
                assistant.clone(),
                &format!("sqlite://{}", dir.join("o.db").display()),
                "shouhou outbox on SQLite",
                n,
                convs,
            )
            .await,
        ];
        if let Ok(pg) = std::env::var("TEST_PG_URL") {
            let name = format!("shouhou_outbox_bench_{}", std::process::id());
            let admin = sqlx::PgPool::connect(&pg).await.expect("TEST_PG_URL");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&admin).await.expect("create");
            let (head, _) = pg.rsplit_once('/').expect("url with a database");
            rows.push(
                full(assistant.clone(), &format!("{head}/{name}"), "shouhou outbox on PostgreSQL", n, convs).await,
            );
        } else {
            println!("TEST_PG_URL not set: PostgreSQL row skipped");
        }
        println!("\n{:<34} {:>7} {:>9} {:>14} {:>8}", "run", "events", "seconds", "deliveries/s", "ratio");
        let base = rows[0].n as f64 / rows[0].secs;
        for r in &rows {
            let rate = r.n as f64 / r.secs;
            println!("{:<34} {:>7} {:>9.2} {:>14.0} {:>8.2}", r.name, r.n, r.secs, rate, rate / base);
        }
        println!("({convs} conversations; each delivery signed and verified; ratio = against the bare POSTs)");
        let _ = std::fs::remove_dir_all(&dir);
    });
}
