//! Load benchmark of the service: N signed events through `POST /v1/events`, each an FAQ that
//! the bot answers automatically, to a fake platform on loopback. Reports throughput and
//! end-to-end latency (event POSTed → reply received by the platform), on SQLite and, when
//! `TEST_PG_URL` is set, on PostgreSQL, beside a bare axum handler that only verifies the
//! signature and stores the same inbox rows, in the same run.
//!
//! Run: `cargo bench --bench load` (env: `LOAD_N` events, default 3000; `LOAD_RATE` for the
//! paced run, default 1000/s). Everything stays on 127.0.0.1 and stops by itself.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{Json, Router, body::Bytes, extract::State, http::HeaderMap, routing::post};
use serde_json::{Value, json};
use shouhou::{
    app as run,
    config::ServiceConfig,
    domain::{draft::Assistant, role::Role, sign::Secret},
    store::{Arg, Stmt, Store},
};
use tokio::net::TcpListener;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn secret() -> Secret {
    Secret::from_bytes(b"0123456789abcdef0123456789abcdef").expect("32 bytes")
}

type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

async fn platform(State(a): State<Arrivals>, h: HeaderMap) -> &'static str {
    if let Some(k) = h.get("idempotency-key").and_then(|v| v.to_str().ok()) {
        a.lock().expect("lock").entry(k.to_owned()).or_insert_with(Instant::now);
    }
    "ok"
}

async fn start_platform() -> (Arrivals, String) {
    let a: Arrivals = Arc::default();
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/send", l.local_addr().expect("addr"));
    let app = Router::new().route("/send", post(platform)).with_state(a.clone());
    tokio::spawn(async move { axum::serve(l, app).await.expect("platform") });
    (a, url)
}

fn event(i: usize, tag: &str) -> (String, String) {
    let id = format!("{tag}-m{i}");
    let body = json!({"message_id": id, "shop_id": "shop-1", "conversation_id": format!("{tag}-c{i}"),
        "sender": {"account_id": "tb_buyer_1"}, "text": "什么时候发货呀"})
    .to_string();
    (id, body)
}

/// Sends `n` events, `concurrency` at a time, or paced at `rate`/s; returns the send instants.
async fn drive(base: &str, n: usize, tag: &str, concurrency: usize, rate: Option<f64>) -> HashMap<String, Instant> {
    let http = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build().expect("client");
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        if let Some(r) = rate {
            let at = start + Duration::from_secs_f64(i as f64 / r);
            tokio::time::sleep_until(at.into()).await;
        }
        let permit = sem.clone().acquire_owned().await.expect("semaphore");
        let (id, body) = event(i, tag);
        let (http, base, sent) = (http.clone(), base.to_owned(), sent.clone());
        tasks.push(tokio::spawn(async move {
            let ts = jiff::Timestamp::now().as_second();
            let hook = format!("h-{id}");
            let t0 = Instant::now();
            let res = http
                .post(format!("{base}/v1/events"))
                .header("x-shouhou-shop", "shop-1")
                .header("webhook-id", &hook)
                .header("webhook-timestamp", ts.to_string())
                .header("webhook-signature", secret().sign(&hook, ts, body.as_bytes()))
                .body(body)
                .send()
                .await;
            assert!(res.is_ok_and(|r| r.status() == 202), "event refused");
            sent.lock().expect("lock").insert(format!("shop-1:{id}:auto"), t0);
            drop(permit);
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    Arc::try_unwrap(sent).expect("unique").into_inner().expect("lock")
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

struct Row {
    name: String,
    n: usize,
    secs: f64,
    p50: Duration,
    p99: Duration,
}

async fn full(assistant: Arc<Assistant>, db: &str, name: &str, n: usize, rate: Option<f64>) -> Row {
    let (arrivals, url) = start_platform().await;
    let cfg = ServiceConfig {
        database_url: db.to_owned(),
        platform_url: url,
        shops: HashMap::from([("shop-1".to_owned(), vec![secret()])]),
        api_tokens: HashMap::from([("bench-token-000000".to_owned(), Role::Admin)]),
        instance: "bench".into(),
        // The default of `serve --processors`.
        processors: std::env::var("LOAD_PROCESSORS").ok().and_then(|v| v.parse().ok()).unwrap_or(2),
        rate_per_shop: 1_000_000,
        max_send_attempts: 8,
        webhooks: Default::default(),
        websocket: None,
        chatwoot: None,
        tmc: None,
        wecom: None,
    };
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let running = run::start(l, assistant, cfg).await.expect("service");
    let base = format!("http://{}", running.addr);
    let tag = format!("{name}{}", rate.map_or(String::new(), |r| format!("-{r}")));
    let start = Instant::now();
    let sent = drive(&base, n, &tag, 64, rate).await;
    let deadline = Instant::now() + Duration::from_secs(600);
    while arrivals.lock().expect("lock").len() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = start.elapsed().as_secs_f64();
    let got = arrivals.lock().expect("lock").clone();
    let mut lat: Vec<Duration> =
        sent.iter().filter_map(|(k, t0)| got.get(k).map(|t1| t1.duration_since(*t0))).collect();
    lat.sort();
    running.stop().await;
    Row { name: name.to_owned(), n: got.len(), secs, p50: pct(&lat, 0.5), p99: pct(&lat, 0.99) }
}

/// The baseline: verify the signature and store the inbox row, nothing else.
async fn bare(db: &str, name: &str, n: usize) -> Row {
    let store = Store::connect(db).await.expect("store");
    let app = Router::new()
        .route(
            "/v1/events",
            post(|State(s): State<Store>, h: HeaderMap, body: Bytes| async move {
                let g = |k: &str| h.get(k).and_then(|v| v.to_str().ok());
                let now = jiff::Timestamp::now();
                shouhou::domain::sign::verify(&[secret()], g("webhook-id"), g("webhook-timestamp"), g("webhook-signature"), &body, now.as_second())
                    .expect("signed");
                let v: Value = serde_json::from_slice(&body).expect("json");
                s.apply(&[Stmt {
                    sql: "INSERT INTO inbox (shop_id, message_id, conversation_id, payload, received_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (shop_id, message_id) DO NOTHING",
                    args: vec![
                        Arg::T("shop-1".into()),
                        Arg::T(v["message_id"].as_str().unwrap_or_default().into()),
                        Arg::T(v["conversation_id"].as_str().unwrap_or_default().into()),
                        Arg::T(String::from_utf8_lossy(&body).into_owned()),
                        Arg::I(now.as_millisecond()),
                    ],
                }])
                .await
                .expect("insert");
                (axum::http::StatusCode::ACCEPTED, Json(json!({"accepted": true})))
            }),
        )
        .with_state(store);
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", l.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(l, app).await.expect("bare") });
    let start = Instant::now();
    let sent = drive(&base, n, name, 64, None).await;
    let secs = start.elapsed().as_secs_f64();
    let _ = sent;
    Row { name: name.to_owned(), n, secs, p50: Duration::ZERO, p99: Duration::ZERO }
}

fn main() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    // `cargo test --benches` runs benches once as a check: keep that quick.
    let quick = !std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::var("LOAD_N").ok().and_then(|v| v.parse().ok()).unwrap_or(if quick { 200 } else { 3000 });
    let rate: f64 = std::env::var("LOAD_RATE").ok().and_then(|v| v.parse().ok()).unwrap_or(1000.0);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async move {
        let assistant = Arc::new(
            Assistant::load(&root().join("intents"), &root().join("templates"), &root().join("shouhou.toml"))
                .expect("data files"),
        );
        let dir = tempfile_dir();
        let sqlite = |name: &str| format!("sqlite://{}", dir.join(format!("{name}.db")).display());
        let mut rows = vec![
            bare(&sqlite("bare"), "bare axum + SQLite insert", n).await,
            full(assistant.clone(), &sqlite("full"), "shouhou on SQLite", n, None).await,
            full(
                assistant.clone(),
                &sqlite("paced"),
                &format!("shouhou on SQLite at {rate}/s"),
                n.min((rate * 5.0) as usize),
                Some(rate),
            )
            .await,
        ];
        if let Ok(pg) = std::env::var("TEST_PG_URL") {
            for (name, db) in [("bare", "bare axum + PostgreSQL insert"), ("full", "shouhou on PostgreSQL")] {
                let url = fresh_pg(&pg, name).await;
                rows.push(if name == "bare" {
                    bare(&url, db, n).await
                } else {
                    full(assistant.clone(), &url, db, n, None).await
                });
            }
        } else {
            println!("TEST_PG_URL not set: PostgreSQL rows skipped");
        }
        println!("\n{:<34} {:>7} {:>9} {:>12} {:>10} {:>10}", "run", "events", "seconds", "events/s", "p50", "p99");
        for r in &rows {
            println!(
                "{:<34} {:>7} {:>9.2} {:>12.0} {:>10.1?} {:>10.1?}",
                r.name,
                r.n,
                r.secs,
                r.n as f64 / r.secs,
                r.p50,
                r.p99
            );
        }
        println!("(end-to-end latency: event POSTed -> reply received by the platform; the bare handler stores only)");
        let _ = std::fs::remove_dir_all(&dir);
    });
}

fn tempfile_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("shouhou-load-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

async fn fresh_pg(base: &str, tag: &str) -> String {
    let name = format!("shouhou_load_{tag}_{}", std::process::id());
    let admin = sqlx::PgPool::connect(base).await.expect("TEST_PG_URL");
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}"))).execute(&admin).await.expect("drop");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&admin).await.expect("create");
    let (head, _) = base.rsplit_once('/').expect("url with a database");
    format!("{head}/{name}")
}
