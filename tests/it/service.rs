//! The service over real sockets on 127.0.0.1: signed intake, the pipeline, the fake platform
//! receiving replies, the API, ownership, retries, crashes, and PostgreSQL with two instances.
//! The same test bodies run on SQLite and, when `TEST_PG_URL` is set, on PostgreSQL.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{Json, Router, extract::State, http::HeaderMap, response::IntoResponse, routing::post};
use serde_json::{Value, json};
use shouhou::{
    app as run,
    config::ServiceConfig,
    domain::{role::Role, sign::Secret},
};
use tokio::net::TcpListener;

use crate::support::root;
pub(crate) use crate::support::{pg_skip, pg_url, spawn_app, sqlite_url, wait_until};

pub(crate) const TOKEN: &str = "test-agent-token-1234";
pub(crate) const SUPERVISOR: &str = "test-supervisor-token-1234";

pub(crate) fn secret() -> Secret {
    Secret::from_bytes(b"0123456789abcdef0123456789abcdef").unwrap()
}

/// A scripted answer: status and Retry-After seconds.
type Answer = (u16, Option<u64>);

/// A received request: idempotency key, conversation, text, when.
type Received = (String, String, String, Instant);

/// What the fake platform answers, in order; then 200 for ever.
#[derive(Clone, Default)]
struct Platform {
    script: Arc<Mutex<Vec<Answer>>>,
    got: Arc<Mutex<Vec<Received>>>,
}

async fn platform_handler(
    State(p): State<Platform>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> axum::response::Response {
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let next = {
        let mut s = p.script.lock().unwrap();
        if s.is_empty() { None } else { Some(s.remove(0)) }
    };
    p.got.lock().unwrap().push((
        key,
        body["conversation_id"].as_str().unwrap_or("").to_owned(),
        body["text"].as_str().unwrap_or("").to_owned(),
        Instant::now(),
    ));
    match next {
        Some((429, after)) => {
            let mut h = HeaderMap::new();
            h.insert("retry-after", after.unwrap_or(1).to_string().parse().unwrap());
            (axum::http::StatusCode::TOO_MANY_REQUESTS, h, "slow down").into_response()
        }
        Some((code, _)) => (axum::http::StatusCode::from_u16(code).unwrap(), "no").into_response(),
        None => "ok".into_response(),
    }
}

impl Platform {
    async fn start(script: Vec<Answer>) -> (Self, String) {
        let p = Self { script: Arc::new(Mutex::new(script)), ..Default::default() };
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/send", l.local_addr().unwrap());
        let app = Router::new().route("/send", post(platform_handler)).with_state(p.clone());
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        (p, url)
    }

    /// Replies accepted (2xx), deduplicated by idempotency key as a real platform does.
    fn accepted_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.got.lock().unwrap().iter().map(|g| g.0.clone()).collect();
        keys.sort();
        keys.dedup();
        keys
    }
}

pub(crate) fn cfg(db: &str, platform_url: &str, instance: &str) -> ServiceConfig {
    ServiceConfig {
        database_url: db.to_owned(),
        platform_url: platform_url.to_owned(),
        shops: HashMap::from([("shop-1".to_owned(), vec![secret()])]),
        api_tokens: HashMap::from([(TOKEN.to_owned(), Role::Agent), (SUPERVISOR.to_owned(), Role::Supervisor)]),
        instance: instance.to_owned(),
        processors: 2,
        rate_per_shop: 200,
        max_send_attempts: 8,
        webhooks: Default::default(),
        websocket: None,
        chatwoot: None,
        tmc: None,
        wecom: None,
    }
}

async fn start(db: &str, platform_url: &str) -> run::Running {
    spawn_app(cfg(db, platform_url, "t")).await
}

pub(crate) fn event(conv: &str, msg: &str, text: &str, sender: &str) -> String {
    json!({
        "message_id": msg, "shop_id": "shop-1", "conversation_id": conv, "sender": {"account_id": sender},
        "sent_at": "2026-11-22T10:15:00+08:00", "text": text,
        "order": {"order_id": "3391228745", "buyer_account_id": "tb_buyer_1", "status": "paid", "total": "199.00",
                  "paid_at": (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(2)).to_string(),
                  "items": [{"title": "羊毛大衣", "category": "apparel", "price": "199.00"}],
                  "receiver": {"name": "王秀英", "phone": "13912345678", "address": "测试省示例市幸福区光明路88号"}}
    })
    .to_string()
}

pub(crate) async fn post_signed(base: &str, body: &str, id: &str, ts: i64, key: &Secret) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base}/v1/events"))
        .header("x-shouhou-shop", "shop-1")
        .header("webhook-id", id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", key.sign(id, ts, body.as_bytes()))
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

pub(crate) fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

pub(crate) async fn count(r: &run::Running, sql: &'static str) -> i64 {
    r.state.store.select(sql, &[], &[shouhou::store::Col::I("n")]).await.unwrap()[0][0].i()
}

pub(crate) fn api(method: reqwest::Method, url: String, token: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new().request(method, url).bearer_auth(token)
}

// ---------------------------------------------------------------------------------------------

/// Bad input is refused with a clear error and nothing is stored.
async fn bad_input_body(db: &str) {
    let (_p, url) = Platform::start(vec![]).await;
    let r = start(db, &url).await;
    let base = format!("http://{}", r.addr);
    let body = event("c-1", "m-1", "转人工", "tb_buyer_1");
    let c = reqwest::Client::new();
    // Wrong signature.
    let wrong = Secret::from_bytes(b"another-secret-another-secret-00").unwrap();
    let res = post_signed(&base, &body, "w1", now(), &wrong).await;
    assert_eq!(res.status(), 401);
    assert!(res.text().await.unwrap().contains("signature"));
    // Stale timestamp.
    let res = post_signed(&base, &body, "w2", now() - 600, &secret()).await;
    assert_eq!(res.status(), 401);
    assert!(res.text().await.unwrap().contains("tolerance"));
    // Malformed JSON (correctly signed).
    let res = post_signed(&base, "{not json", "w3", now(), &secret()).await;
    assert_eq!(res.status(), 400);
    assert!(res.json::<Value>().await.unwrap()["error"].as_str().unwrap().contains("not a valid event"));
    // A valid JSON event missing a required field.
    let res = post_signed(
        &base,
        r#"{"message_id":"m","conversation_id":"c","sender":{"account_id":""},"text":"x"}"#,
        "w4",
        now(),
        &secret(),
    )
    .await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("sender.account_id"));
    // Oversized body.
    let big = "x".repeat(shouhou::state::MAX_BODY_BYTES + 10);
    let res = post_signed(&base, &big, "w5", now(), &secret()).await;
    assert_eq!(res.status(), 413);
    // Unknown shop: answered like a known one (no enumeration).
    let res =
        c.post(format!("{base}/v1/events")).header("x-shouhou-shop", "shop-x").body(body.clone()).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert!(res.text().await.unwrap().contains("missing header"));
    // Missing signature headers.
    let res =
        c.post(format!("{base}/v1/events")).header("x-shouhou-shop", "shop-1").body(body.clone()).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(count(&r, "SELECT COUNT(*) AS n FROM inbox").await, 0, "nothing stored");
    r.stop().await;
}

/// The whole path: an FAQ goes out automatically with an idempotency key; a redelivery is
/// acknowledged and not processed again; a review draft is approved, a blocked edit is a 422
/// with findings, a rejection needs a reason; a taken-over conversation gets no bot sends; the
/// audit log has it all; metrics carry no buyer or order ids.
async fn flow_body(db: &str) {
    let (p, url) = Platform::start(vec![]).await;
    let r = start(db, &url).await;
    let base = format!("http://{}", r.addr);

    // FAQ → auto.
    let faq = event("c-faq", "m-faq", "都五天了还不发货？？", "tb_buyer_1");
    assert_eq!(post_signed(&base, &faq, "e1", now(), &secret()).await.status(), 202);
    let res = post_signed(&base, &faq, "e1", now(), &secret()).await;
    assert_eq!(res.status(), 202);
    assert_eq!(res.json::<Value>().await.unwrap()["duplicate"], true);
    assert!(wait_until(|| async { p.accepted_keys().len() == 1 }, 20).await, "auto reply reached the platform");
    assert_eq!(p.accepted_keys(), ["shop-1:m-faq:auto"]);
    assert_eq!(count(&r, "SELECT COUNT(*) AS n FROM drafts").await, 1, "the redelivery was not processed again");

    // Rotten food → review; approve sends it.
    let rot = event("c-rot", "m-rot", "我买的鸡腿刚打开发现都臭了", "tb_buyer_1");
    post_signed(&base, &rot, "e2", now(), &secret()).await;
    let mut queue = Value::Null;
    for _ in 0..400 {
        queue =
            api(reqwest::Method::GET, format!("{base}/v1/queue"), TOKEN).send().await.unwrap().json().await.unwrap();
        if queue["items"].as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let item = &queue["items"][0];
    assert_eq!(item["intents"][0]["id"], "rotten_food");
    let id = item["id"].as_i64().unwrap();
    // A blocked edit: 422 with the findings, nothing sent.
    let res = api(reqwest::Method::POST, format!("{base}/v1/drafts/{id}/edit"), TOKEN)
        .json(&json!({"text": "我们发出都是有放冰袋不会坏的"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["guard"]["verdict"], "block");
    assert!(v["guard"]["findings"][0]["suggestion"].is_string());
    // Diversion and money beyond the agent's authority are blocked through the edit endpoint.
    for (text, rule) in
        [("亲，加我微信 shouhou_test01 发照片", "divert.off_platform"), ("给您补偿100元红包", "authority.exceeded")]
    {
        let res = api(reqwest::Method::POST, format!("{base}/v1/drafts/{id}/edit"), TOKEN)
            .json(&json!({"text": text}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 422, "{text}");
        let v: Value = res.json().await.unwrap();
        assert!(v["guard"]["findings"].as_array().unwrap().iter().any(|f| f["rule"] == rule), "{text}: {v}");
    }
    // Unauthenticated and under-privileged calls.
    assert_eq!(reqwest::get(format!("{base}/v1/queue")).await.unwrap().status(), 401);
    assert_eq!(api(reqwest::Method::GET, format!("{base}/v1/audit"), TOKEN).send().await.unwrap().status(), 403);
    // Approve.
    let res = api(reqwest::Method::POST, format!("{base}/v1/drafts/{id}/approve"), TOKEN).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(wait_until(|| async { p.accepted_keys().len() == 2 }, 20).await);
    let res = api(reqwest::Method::POST, format!("{base}/v1/drafts/{id}/approve"), TOKEN).send().await.unwrap();
    assert_eq!(res.status(), 409, "a decided draft cannot be approved twice");

    // Takeover: the bot's FAQ answer is held for review, never sent on its own.
    let res = api(reqwest::Method::POST, format!("{base}/v1/conversations/shop-1/c-own/takeover"), TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    post_signed(&base, &event("c-own", "m-own", "什么时候发货啊", "tb_buyer_1"), "e3", now(), &secret()).await;
    assert!(
        wait_until(
            || async { count(&r, "SELECT COUNT(*) AS n FROM drafts WHERE conversation_id = 'c-own'").await == 1 },
            20
        )
        .await
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(p.accepted_keys().len(), 2, "nothing sent to a conversation a person owns");
    let status: Vec<String> = r
        .state
        .store
        .select("SELECT status FROM drafts WHERE conversation_id = 'c-own'", &[], &[shouhou::store::Col::T("status")])
        .await
        .unwrap()
        .into_iter()
        .map(|v| v[0].t())
        .collect();
    assert_eq!(status, ["pending_review"]);
    // Handed back: the next FAQ goes out again.
    api(reqwest::Method::POST, format!("{base}/v1/conversations/shop-1/c-own/handback"), TOKEN).send().await.unwrap();
    post_signed(&base, &event("c-own", "m-own2", "能开发票吗", "tb_buyer_1"), "e4", now(), &secret()).await;
    assert!(wait_until(|| async { p.accepted_keys().len() == 3 }, 20).await);

    // Reject needs a reason.
    post_signed(&base, &event("c-q", "m-q", "衣服掉色严重", "tb_buyer_1"), "e5", now(), &secret()).await;
    assert!(
        wait_until(
            || async { count(&r, "SELECT COUNT(*) AS n FROM drafts WHERE conversation_id = 'c-q'").await == 1 },
            20
        )
        .await
    );
    let qid = r
        .state
        .store
        .select("SELECT id FROM drafts WHERE conversation_id = 'c-q'", &[], &[shouhou::store::Col::I("id")])
        .await
        .unwrap()[0][0]
        .i();
    let res = api(reqwest::Method::POST, format!("{base}/v1/drafts/{qid}/reject"), TOKEN)
        .json(&json!({"reason": " "}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let res = api(reqwest::Method::POST, format!("{base}/v1/drafts/{qid}/reject"), TOKEN)
        .json(&json!({"reason": "needs a person"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // Audit: drafts, the blocked edit, approval, takeover, handback, sends, rejection.
    let audit: Value =
        api(reqwest::Method::GET, format!("{base}/v1/audit"), SUPERVISOR).send().await.unwrap().json().await.unwrap();
    let kinds: Vec<&str> = audit["items"].as_array().unwrap().iter().map(|a| a["kind"].as_str().unwrap()).collect();
    for k in ["draft", "edit_blocked", "approve", "takeover", "handback", "send", "reject"] {
        assert!(kinds.contains(&k), "audit has {k}: {kinds:?}");
    }
    let text = serde_json::to_string(&audit).unwrap();
    assert!(!text.contains("13912345678") && !text.contains("王秀英"), "no buyer data in the audit log");

    // Metrics: present, and no buyer/order ids as labels.
    let m = reqwest::get(format!("{base}/metrics")).await.unwrap().text().await.unwrap();
    assert!(m.contains("shouhou_intake_total") && m.contains("shouhou_drafts_total"), "{m}");
    for id in ["c-faq", "m-faq", "3391228745", "tb_buyer_1"] {
        assert!(!m.contains(id), "metrics mention {id}");
    }
    assert_eq!(reqwest::get(format!("{base}/readyz")).await.unwrap().status(), 200);
    r.stop().await;
}

/// A platform answering 429 and 5xx: Retry-After is waited out, 5xx retried, nothing lost.
async fn platform_errors_body(db: &str) {
    let (p, url) = Platform::start(vec![(429, Some(1)), (503, None), (500, None)]).await;
    let r = start(db, &url).await;
    let base = format!("http://{}", r.addr);
    post_signed(&base, &event("c-1", "m-1", "什么时候发货", "tb_buyer_1"), "x1", now(), &secret()).await;
    assert!(
        wait_until(|| async { count(&r, "SELECT COUNT(*) AS n FROM sends WHERE status = 'sent'").await == 1 }, 30)
            .await,
        "sent in the end"
    );
    let got = p.got.lock().unwrap().clone();
    assert_eq!(got.len(), 4, "429, 503, 500, then 200");
    assert!(got.iter().all(|g| g.0 == "shop-1:m-1:auto"), "the same idempotency key on every attempt");
    assert!(got[1].3.duration_since(got[0].3) >= Duration::from_millis(950), "Retry-After: 1 respected");
    assert_eq!(count(&r, "SELECT attempts AS n FROM sends").await, 4);
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_bad_input() {
    let (_d, url) = sqlite_url();
    bad_input_body(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_flow() {
    let (_d, url) = sqlite_url();
    flow_body(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_platform_errors() {
    let (_d, url) = sqlite_url();
    platform_errors_body(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_bad_input() {
    if pg_skip() {
        return;
    }
    bad_input_body(&pg_url().await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_flow() {
    if pg_skip() {
        return;
    }
    flow_body(&pg_url().await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_platform_errors() {
    if pg_skip() {
        return;
    }
    platform_errors_body(&pg_url().await.unwrap()).await;
}

/// Two instances on one PostgreSQL database: every message processed exactly once, and in
/// order within each conversation.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_two_instances_share_the_work() {
    if pg_skip() {
        return;
    }
    let db = pg_url().await.unwrap();
    let (p, url) = Platform::start(vec![]).await;
    let a = spawn_app(cfg(&db, &url, "a")).await;
    let b = spawn_app(cfg(&db, &url, "b")).await;
    let n = 120;
    for i in 0..n {
        let base = if i % 2 == 0 { format!("http://{}", a.addr) } else { format!("http://{}", b.addr) };
        let ev = event(&format!("c-{}", i % 10), &format!("m-{i}"), "什么时候发货", "tb_buyer_1");
        assert_eq!(post_signed(&base, &ev, &format!("k{i}"), now(), &secret()).await.status(), 202);
    }
    assert!(wait_until(|| async { count(&a, "SELECT COUNT(*) AS n FROM drafts").await == n }, 60).await, "all drafted");
    assert_eq!(
        count(&a, "SELECT COUNT(DISTINCT inbox_seq) AS n FROM drafts").await,
        n,
        "each message processed exactly once"
    );
    let claimers = count(&a, "SELECT COUNT(DISTINCT split_part(claimed_by, '#', 1)) AS n FROM inbox").await;
    assert_eq!(claimers, 2, "both instances took work");
    // In order within a conversation: draft ids increase with inbox order.
    let rows = a
        .state
        .store
        .select(
            "SELECT conversation_id, inbox_seq, id FROM drafts ORDER BY conversation_id, inbox_seq",
            &[],
            &[
                shouhou::store::Col::T("conversation_id"),
                shouhou::store::Col::I("inbox_seq"),
                shouhou::store::Col::I("id"),
            ],
        )
        .await
        .unwrap();
    for w in rows.windows(2) {
        if w[0][0] == w[1][0] {
            assert!(w[0][2].i() < w[1][2].i(), "conversation {} processed out of order", w[0][0].t());
        }
    }
    let auto = count(&a, "SELECT COUNT(*) AS n FROM drafts WHERE status = 'auto'").await;
    assert!(auto >= 10, "the first FAQ of each conversation goes out automatically");
    assert!(wait_until(|| async { p.accepted_keys().len() == auto as usize }, 60).await, "every auto reply sent once");
    a.stop().await;
    b.stop().await;
}

/// The OpenAPI document matches the real routes: every documented path and method answers
/// (not 404/405), and an undocumented path is 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_matches_routes() {
    let (_d, db) = sqlite_url();
    let (_p, url) = Platform::start(vec![]).await;
    let r = start(&db, &url).await;
    let base = format!("http://{}", r.addr);
    let doc: Value = reqwest::get(format!("{base}/openapi.json")).await.unwrap().json().await.unwrap();
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 15);
    for (path, ops) in paths {
        let concrete = path.replace("{shop}", "shop-1").replace("{id}", "1");
        for method in ops.as_object().unwrap().keys() {
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let res = api(m, format!("{base}{concrete}"), SUPERVISOR).json(&json!({})).send().await.unwrap();
            let code = res.status().as_u16();
            assert!(
                code != 405 && !(code == 404 && res.text().await.unwrap().contains(shouhou::app::NO_SUCH_ROUTE)),
                "{method} {path} is not routed ({code})"
            );
        }
    }
    let res = reqwest::get(format!("{base}/v1/nope")).await.unwrap();
    assert_eq!(res.status(), 404);
    assert!(res.text().await.unwrap().contains(shouhou::app::NO_SUCH_ROUTE));
    r.stop().await;
}

/// SIGKILL in the middle of a stream of messages, restart: every message processed, no reply
/// sent twice under one idempotency key beyond what the platform deduplicates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_stream_loses_nothing() {
    use std::process::Stdio;
    let (dir, db) = sqlite_url();
    let (p, url) = Platform::start(vec![]).await;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let log_path = dir.path().join("serve.log");
    let spawn = || {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).unwrap();
        crate::support::serve_command(&root().join("shouhou.toml"))
            .args(["--listen", &format!("127.0.0.1:{port}"), "--database-url", &db, "--platform-url", &url])
            .env("SHOUHOU_SHOP_SECRETS", format!("shop-1={}", secret().to_whsec()))
            .env("RUST_LOG", "shouhou=debug")
            .arg("--log-json")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap()
    };
    let base = format!("http://127.0.0.1:{port}");
    let ready = |base: String| async move {
        wait_until(
            || {
                let b = base.clone();
                async move { reqwest::get(format!("{b}/healthz")).await.is_ok() }
            },
            30,
        )
        .await
    };
    let mut child = spawn();
    assert!(ready(base.clone()).await, "service up");
    let n = 80;
    let mut acked = 0;
    for i in 0..n {
        if i == n / 2 {
            // Kill -9 mid-stream.
            child.kill().unwrap();
            child.wait().unwrap();
            child = spawn();
            assert!(ready(base.clone()).await, "service back up");
        }
        let ev = event(&format!("c-{i}"), &format!("m-{i}"), "什么时候发货", "tb_buyer_1");
        // A sender retries until acknowledged (that is the webhook contract).
        loop {
            match reqwest::Client::new()
                .post(format!("{base}/v1/events"))
                .header("x-shouhou-shop", "shop-1")
                .header("webhook-id", format!("k{i}"))
                .header("webhook-timestamp", now().to_string())
                .header("webhook-signature", secret().sign(&format!("k{i}"), now(), ev.as_bytes()))
                .body(ev.clone())
                .send()
                .await
            {
                Ok(r) if r.status() == 202 => {
                    acked += 1;
                    break;
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
    assert_eq!(acked, n);
    let store = shouhou::store::Store::connect(&db).await.unwrap();
    let drafted = || {
        let store = store.clone();
        async move {
            store.select("SELECT COUNT(*) AS n FROM drafts", &[], &[shouhou::store::Col::I("n")]).await.unwrap()[0][0]
                .i()
        }
    };
    assert!(
        wait_until(
            || {
                let d = drafted();
                async move { d.await == n }
            },
            60
        )
        .await,
        "every message processed after the restart"
    );
    assert!(wait_until(|| async { p.accepted_keys().len() == n as usize }, 60).await, "every reply delivered");
    let dup = store
        .select(
            "SELECT COUNT(*) AS n FROM (SELECT inbox_seq FROM drafts GROUP BY inbox_seq HAVING COUNT(*) > 1) x",
            &[],
            &[shouhou::store::Col::I("n")],
        )
        .await
        .unwrap()[0][0]
        .i();
    assert_eq!(dup, 0, "no message processed twice");
    let raw_posts = p.got.lock().unwrap().len();
    eprintln!(
        "killed mid-stream: {n} messages, {} distinct replies, {raw_posts} POSTs (a repeat carries the same idempotency key)",
        p.accepted_keys().len()
    );
    child.kill().unwrap();
    child.wait().unwrap();
    // Logs are JSON lines and carry no buyer data.
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.lines().any(|l| l.starts_with('{')), "JSON logs: {log}");
    for secret in ["13912345678", "王秀英", "光明路", "什么时候发货"] {
        assert!(!log.contains(secret), "the log contains buyer data {secret}");
    }
    drop(dir);
}
