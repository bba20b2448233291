//! The Chatwoot Agent Bot adapter against a fake Chatwoot (a small axum app on 127.0.0.1): the
//! documented `message_created` payload (`tests/fixtures/chatwoot/message_created.json`, copied
//! from the official docs) posted with and without a valid `X-Chatwoot-Signature`, the reply
//! and `toggle_status` calls recorded with their `api_access_token`.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    routing::post,
};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use shouhou::{
    adapters::chatwoot::{ChatwootConfig, SignatureError, verify_signature},
    app as run,
    config::ServiceConfig,
    store::{Arg, Col},
};
use tokio::net::TcpListener;

use crate::support::{pg_url, root, sqlite_url, wait_until};

const API_TOKEN: &str = "chatwoot-bot-access-token";
const SECRET: &str = "chatwoot-bot-webhook-secret";
const URL_TOKEN: &str = "chatwoot-url-token-4f1c9a";

/// A call the fake Chatwoot received: path, body.
type Call = (String, Value);

#[derive(Clone, Default)]
struct FakeChatwoot {
    calls: Arc<Mutex<Vec<Call>>>,
    bad_token: Arc<Mutex<usize>>,
    /// How many private notes to store and then answer 500 (the answer lost after storing).
    fail_notes_after_storing: Arc<Mutex<usize>>,
    /// How many `toggle_status` calls to answer 500 (recorded, not performed).
    fail_toggles: Arc<Mutex<usize>>,
    /// Reads of a conversation's messages.
    reads: Arc<Mutex<usize>>,
}

/// `GET …/messages`: the conversation's messages as Chatwoot lists them (`{"meta", "payload"}`).
async fn list(
    State(f): State<FakeChatwoot>,
    Path((account, conv, action)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> (StatusCode, Json<Value>) {
    if action != "messages" {
        return (StatusCode::NOT_FOUND, Json(json!({"error": "not found"})));
    }
    if headers.get("api_access_token").and_then(|v| v.to_str().ok()) != Some(API_TOKEN) {
        *f.bad_token.lock().unwrap() += 1;
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": "Invalid Access Token"})));
    }
    *f.reads.lock().unwrap() += 1;
    let path = format!("/api/v1/accounts/{account}/conversations/{conv}/messages");
    let payload: Vec<Value> = f
        .calls_to(&path)
        .iter()
        .enumerate()
        .map(|(i, m)| json!({"id": 1000 + i, "content": m["content"], "private": m["private"], "message_type": 1}))
        .collect();
    (StatusCode::OK, Json(json!({"meta": {"labels": [], "contact_id": 1}, "payload": payload})))
}

async fn api(
    State(f): State<FakeChatwoot>,
    Path((account, conv, action)): Path<(String, String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    if headers.get("api_access_token").and_then(|v| v.to_str().ok()) != Some(API_TOKEN) {
        *f.bad_token.lock().unwrap() += 1;
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": "Invalid Access Token"})));
    }
    let private = body["private"] == json!(true);
    f.calls.lock().unwrap().push((format!("/api/v1/accounts/{account}/conversations/{conv}/{action}"), body));
    let fail = |n: &Mutex<usize>| {
        let mut n = n.lock().unwrap();
        let hit = *n > 0;
        *n = n.saturating_sub(1);
        hit
    };
    if (action == "messages" && private && fail(&f.fail_notes_after_storing))
        || (action == "toggle_status" && fail(&f.fail_toggles))
    {
        return (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"error": "lost"})));
    }
    (StatusCode::OK, Json(json!({"id": 999})))
}

impl FakeChatwoot {
    async fn start() -> (Self, String) {
        let f = Self::default();
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let app = Router::new()
            .route("/api/v1/accounts/{account}/conversations/{conv}/{action}", post(api).get(list))
            .with_state(f.clone());
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        (f, url)
    }

    fn calls_to(&self, path: &str) -> Vec<Value> {
        self.calls.lock().unwrap().iter().filter(|c| c.0 == path).map(|c| c.1.clone()).collect()
    }
}

fn fixture() -> Value {
    let raw = std::fs::read_to_string(root().join("tests/fixtures/chatwoot/message_created.json")).unwrap();
    serde_json::from_str(&raw).unwrap()
}

/// The documented payload with a message id, conversation, status and text of our choosing.
fn payload(id: i64, conversation: i64, status: &str, content: &str) -> Value {
    let mut v = fixture();
    v["id"] = json!(id);
    v["content"] = json!(content);
    v["conversation"]["id"] = json!(conversation);
    v["conversation"]["status"] = json!(status);
    v
}

/// `sha256=<hex HMAC-SHA256(secret, "{ts}.{body}")>`, computed here independently.
fn signature(secret: &str, ts: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{ts}.").as_bytes());
    mac.update(body);
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// Posts as Chatwoot does; `sign` = (secret, timestamp) or unsigned.
async fn deliver(base: &str, shop: &str, body: &Value, sign: Option<(&str, i64)>) -> (u16, Value) {
    let bytes = serde_json::to_vec(body).unwrap();
    let mut req = reqwest::Client::new()
        .post(format!("{base}/v1/chatwoot/{shop}"))
        .header("content-type", "application/json")
        .header("x-chatwoot-delivery", format!("delivery-{}", body["id"]));
    if let Some((secret, ts)) = sign {
        req = req
            .header("x-chatwoot-timestamp", ts.to_string())
            .header("x-chatwoot-signature", signature(secret, ts, &bytes));
    }
    let started = Instant::now();
    let res = req.body(bytes).send().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5), "answered within Chatwoot's bot window");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn cfg(db: &str, url: &str, secret: Option<&str>, url_token: Option<&str>) -> ServiceConfig {
    ServiceConfig {
        shops: HashMap::new(),
        chatwoot: Some(ChatwootConfig {
            url: url.to_owned(),
            token: API_TOKEN.into(),
            secret: secret.map(Into::into),
            url_token: url_token.map(Into::into),
            accounts: HashMap::from([("shop-1".to_owned(), 1)]),
            handoff_note: true,
        }),
        ..crate::service::cfg(db, "http://127.0.0.1:9/unused", "cw")
    }
}

async fn start(db: &str, url: &str, secret: Option<&str>, url_token: Option<&str>) -> run::Running {
    crate::support::spawn_app(cfg(db, url, secret, url_token)).await
}

async fn stored(r: &run::Running, message_id: &str) -> i64 {
    r.state
        .store
        .select(
            "SELECT COUNT(*) AS n FROM inbox WHERE message_id = $1",
            &[Arg::T(message_id.to_owned())],
            &[Col::I("n")],
        )
        .await
        .unwrap()[0][0]
        .i()
}

/// The whole bot loop with a signing secret: the documented payload as is (conversation
/// `open`) is ignored; a pending buyer question is stored at once and answered through the
/// messages API; a redelivery is processed once; the bot's own outgoing echo, a private note
/// and a template are ignored; bad, missing and stale signatures get 401 and store nothing; a
/// complaint hands the conversation to a person (private note with the draft, then open).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_bot_answers_ignores_its_echo_and_hands_off() {
    let (_d, db) = sqlite_url();
    agent_bot_body(&db).await;
}

/// The same on PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_agent_bot_answers_ignores_its_echo_and_hands_off() {
    if let Some(db) = pg_url().await {
        agent_bot_body(&db).await;
    }
}

async fn agent_bot_body(db: &str) {
    let (fake, url) = FakeChatwoot::start().await;
    let r = start(db, &url, Some(SECRET), None).await;
    let base = format!("http://{}", r.addr);
    let signed = Some((SECRET, now()));

    // The documented sample is an `open` conversation: a person has it.
    let (code, body) = deliver(&base, "shop-1", &fixture(), signed).await;
    assert_eq!((code, body["ignored"].is_string()), (200, true), "{body}");
    assert_eq!(stored(&r, "118").await, 0);

    // A pending conversation: stored, acknowledged at once, answered asynchronously.
    // Chatwoot brings no order: a question about one goes to a person, a greeting is answered.
    let ask = payload(201, 10, "pending", "你好");
    let (code, body) = deliver(&base, "shop-1", &ask, signed).await;
    assert_eq!((code, &body["duplicate"]), (200, &json!(false)), "{body}");
    let reply_path = "/api/v1/accounts/1/conversations/10/messages";
    assert!(wait_until(|| async { !fake.calls_to(reply_path).is_empty() }, 30).await, "the reply reached Chatwoot");
    let replies = fake.calls_to(reply_path);
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0]["message_type"], "outgoing");
    assert_eq!(replies[0]["private"], false);
    assert!(replies[0]["content"].as_str().is_some_and(|c| !c.is_empty()));
    assert_eq!(replies[0].as_object().unwrap().len(), 3, "content, message_type, private: {}", replies[0]);

    // Chatwoot redelivers the same message: acknowledged, not processed again.
    let (code, body) = deliver(&base, "shop-1", &ask, Some((SECRET, now()))).await;
    assert_eq!((code, &body["duplicate"]), (200, &json!(true)), "{body}");
    assert_eq!(stored(&r, "201").await, 1);

    // The bot's own reply comes back as message_created (outgoing); notes and templates too.
    let mut echo = payload(202, 10, "pending", replies[0]["content"].as_str().unwrap());
    echo["message_type"] = json!("outgoing");
    echo["sender"] = json!({"id": 1, "name": "shouhou", "type": "agent_bot"});
    let mut note = payload(203, 10, "pending", "internal note");
    note["private"] = json!(true);
    let mut template = payload(204, 10, "pending", "Get notified by email");
    template["message_type"] = json!("template");
    let mut activity = payload(205, 10, "pending", "Conversation was marked pending");
    activity["message_type"] = json!("activity");
    let mut updated = payload(206, 10, "pending", "什么时候发货");
    updated["event"] = json!("message_updated");
    for (p, id) in [(&echo, "202"), (&note, "203"), (&template, "204"), (&activity, "205"), (&updated, "206")] {
        let (code, body) = deliver(&base, "shop-1", p, Some((SECRET, now()))).await;
        assert_eq!((code, body["ignored"].is_string()), (200, true), "{id}: {body}");
        assert_eq!(stored(&r, id).await, 0, "{id} ignored");
    }

    // Bad signatures: 401 and nothing stored.
    let forged = payload(207, 10, "pending", "什么时候发货");
    for (sign, why) in [
        (Some(("some-other-secret", now())), "does not match"),
        (Some((SECRET, now() - 301)), "tolerance"),
        (None, "missing header"),
    ] {
        let (code, body) = deliver(&base, "shop-1", &forged, sign).await;
        assert_eq!(code, 401, "{body}");
        assert!(body["error"].as_str().unwrap().contains(why), "{body}");
    }
    // A body changed after signing.
    let bytes = serde_json::to_vec(&forged).unwrap();
    let ts = now();
    let res = reqwest::Client::new()
        .post(format!("{base}/v1/chatwoot/shop-1"))
        .header("x-chatwoot-timestamp", ts.to_string())
        .header("x-chatwoot-signature", signature(SECRET, ts, &bytes))
        .body(serde_json::to_vec(&payload(207, 10, "pending", "转人工")).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(stored(&r, "207").await, 0, "nothing stored for a bad signature");

    // Unknown shop and malformed bodies.
    assert_eq!(deliver(&base, "shop-9", &ask, Some((SECRET, now()))).await.0, 404);
    let mut no_conv = payload(208, 10, "pending", "hi");
    no_conv["conversation"].as_object_mut().unwrap().remove("id");
    let (code, body) = deliver(&base, "shop-1", &no_conv, Some((SECRET, now()))).await;
    assert_eq!(code, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("conversation.id"), "{body}");
    let mut other_account = payload(209, 10, "pending", "hi");
    other_account["account"]["id"] = json!(2);
    assert_eq!(deliver(&base, "shop-1", &other_account, Some((SECRET, now()))).await.0, 400);

    // A complaint: escalated, so the conversation is handed to a person.
    let complaint = payload(210, 11, "pending", "你们太过分了，我要投诉，给差评！");
    assert_eq!(deliver(&base, "shop-1", &complaint, Some((SECRET, now()))).await.0, 200);
    let toggle = "/api/v1/accounts/1/conversations/11/toggle_status";
    let notes = "/api/v1/accounts/1/conversations/11/messages";
    assert!(wait_until(|| async { !fake.calls_to(notes).is_empty() }, 30).await, "handoff performed");
    assert_eq!(fake.calls_to(toggle), vec![json!({"status": "open"})]);
    let note = &fake.calls_to(notes)[0];
    assert_eq!(note["private"], true, "the handoff note is private: {note}");
    assert!(note["content"].as_str().unwrap().contains("complaint"), "{note}");
    let calls = fake.calls.lock().unwrap().clone();
    let (t, n) = (calls.iter().position(|c| c.0 == toggle), calls.iter().position(|c| c.0 == notes));
    assert!(t < n, "opened first, then the note");
    assert!(fake.calls_to(notes).iter().all(|c| c["private"] == true), "no public reply to a complaint");
    assert_eq!(*fake.bad_token.lock().unwrap(), 0, "every call carried the access token");
    // The handoff row is marked done once both calls returned.
    let done = || async {
        r.state
            .store
            .select("SELECT COUNT(*) AS n FROM handoffs WHERE status = 'done'", &[], &[Col::I("n")])
            .await
            .unwrap()[0][0]
            .i()
            == 1
    };
    assert!(wait_until(done, 10).await, "the handoff is recorded as done");
    r.stop().await;
}

/// Without a secret (older Chatwoot versions do not sign), unsigned events need the shared
/// token of the outgoing URL: missing or wrong, 401 and nothing stored; right, stored and answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_events_need_the_url_token() {
    let (fake, url) = FakeChatwoot::start().await;
    let (_d, db) = sqlite_url();
    let r = start(&db, &url, None, Some(URL_TOKEN)).await;
    let base = format!("http://{}", r.addr);
    let ask = payload(301, 12, "pending", "什么时候发货");
    for shop in
        ["shop-1", "shop-1?token=", "shop-1?token=wrong", "shop-1?other=1", "shop-1?token=chatwoot-url-token-4f1c9"]
    {
        let (code, body) = deliver(&base, shop, &ask, None).await;
        assert_eq!(code, 401, "{shop}: {body}");
        assert!(body["error"].as_str().unwrap().contains("token"), "{body}");
    }
    assert_eq!(stored(&r, "301").await, 0, "nothing stored without the right token");
    let (code, body) = deliver(&base, &format!("shop-1?token={URL_TOKEN}"), &ask, None).await;
    assert_eq!((code, &body["duplicate"]), (200, &json!(false)), "{body}");
    assert_eq!(stored(&r, "301").await, 1);
    assert!(
        wait_until(|| async { !fake.calls_to("/api/v1/accounts/1/conversations/12/messages").is_empty() }, 30).await,
        "answered"
    );
    r.stop().await;
}

async fn count(r: &run::Running, sql: &'static str, args: &[Arg]) -> i64 {
    r.state.store.select(sql, args, &[Col::I("n")]).await.unwrap()[0][0].i()
}

async fn draft_of(r: &run::Running, message_id: &str) -> (i64, String) {
    let row = r
        .state
        .store
        .select(
            "SELECT id, status FROM drafts WHERE message_id = $1",
            &[Arg::T(message_id.to_owned())],
            &[Col::I("id"), Col::T("status")],
        )
        .await
        .unwrap();
    row.first().map_or((0, String::new()), |r| (r[0].i(), r[1].t()))
}

/// A handoff's steps are recorded apart: the private note stored by Chatwoot whose answer was
/// lost (500) is found on the retry and not posted again, and the conversation is not toggled
/// again. The draft leaves shouhou's queue (`handed_off`, audit row), so approving it there is
/// refused: the buyer is not answered twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handoff_note_is_not_repeated_and_the_draft_leaves_the_queue() {
    let (_d, db) = sqlite_url();
    handoff_steps_body(&db).await;
}

/// The same on PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_handoff_note_is_not_repeated_and_the_draft_leaves_the_queue() {
    if let Some(db) = pg_url().await {
        handoff_steps_body(&db).await;
    }
}

async fn handoff_steps_body(db: &str) {
    let (fake, url) = FakeChatwoot::start().await;
    *fake.fail_notes_after_storing.lock().unwrap() = 1;
    let r = start(db, &url, Some(SECRET), None).await;
    let base = format!("http://{}", r.addr);
    let rot = payload(401, 20, "pending", "我买的鸡腿刚打开发现都臭了");
    assert_eq!(deliver(&base, "shop-1", &rot, Some((SECRET, now()))).await.0, 200);
    let done = || async { count(&r, "SELECT COUNT(*) AS n FROM handoffs WHERE status = 'done'", &[]).await == 1 };
    assert!(wait_until(done, 30).await, "the handoff completes after the retry");
    let toggle = "/api/v1/accounts/1/conversations/20/toggle_status";
    let notes = "/api/v1/accounts/1/conversations/20/messages";
    assert_eq!(fake.calls_to(toggle).len(), 1, "opened once: the retry did not toggle again");
    let posted = fake.calls_to(notes);
    assert_eq!(posted.len(), 1, "the note was posted once: {posted:?}");
    assert_eq!(posted[0]["private"], true);
    assert!(*fake.reads.lock().unwrap() >= 1, "the retry looked for the note");
    let steps = r
        .state
        .store
        .select(
            "SELECT attempts, note_tries, COALESCE(opened_at, 0) AS o, COALESCE(noted_at, 0) AS n FROM handoffs",
            &[],
            &[Col::I("attempts"), Col::I("note_tries"), Col::I("o"), Col::I("n")],
        )
        .await
        .unwrap();
    assert_eq!((steps[0][0].i(), steps[0][1].i()), (2, 2), "two attempts, both at the note");
    assert!(steps[0][2].i() > 0 && steps[0][3].i() >= steps[0][2].i(), "each step has its time");

    // The draft left the review queue with an audit row; approving it is refused.
    let (id, status) = draft_of(&r, "401").await;
    assert_eq!(status, "handed_off");
    let audit = "SELECT COUNT(*) AS n FROM audit WHERE kind = 'draft_handed_off' AND draft_id = $1";
    assert_eq!(count(&r, audit, &[Arg::I(id)]).await, 1);
    let queue: Value = reqwest::Client::new()
        .get(format!("{base}/v1/queue"))
        .bearer_auth(crate::service::TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(queue["items"].as_array().unwrap().iter().all(|i| i["id"] != json!(id)), "{queue}");
    let res = reqwest::Client::new()
        .post(format!("{base}/v1/drafts/{id}/approve"))
        .bearer_auth(crate::service::TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409);
    assert!(res.text().await.unwrap().contains("handed_off"));
    assert_eq!(fake.calls_to(notes).len(), 1, "no public reply either");
    r.stop().await;
}

/// A draft approved in shouhou before its conversation could be opened in Chatwoot (the first
/// toggle failed): the handoff is skipped with an audit row, so Chatwoot's agents are not invited
/// to answer a buyer who already has the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handoff_is_skipped_when_the_draft_was_answered_in_shouhou() {
    let (fake, url) = FakeChatwoot::start().await;
    *fake.fail_toggles.lock().unwrap() = 1;
    let (_d, db) = sqlite_url();
    let r = start(&db, &url, Some(SECRET), None).await;
    let base = format!("http://{}", r.addr);
    let rot = payload(501, 21, "pending", "我买的鸡腿刚打开发现都臭了");
    assert_eq!(deliver(&base, "shop-1", &rot, Some((SECRET, now()))).await.0, 200);
    let toggle = "/api/v1/accounts/1/conversations/21/toggle_status";
    assert!(wait_until(|| async { !fake.calls_to(toggle).is_empty() }, 30).await, "the first toggle was tried");
    let (id, status) = draft_of(&r, "501").await;
    assert_eq!(status, "pending_review");
    let res = reqwest::Client::new()
        .post(format!("{base}/v1/drafts/{id}/approve"))
        .bearer_auth(crate::service::TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let skipped = || async { count(&r, "SELECT COUNT(*) AS n FROM handoffs WHERE status = 'skipped'", &[]).await == 1 };
    assert!(wait_until(skipped, 30).await, "the handoff is skipped");
    assert_eq!(fake.calls_to(toggle).len(), 1, "not opened after the approval");
    let audit = "SELECT COUNT(*) AS n FROM audit WHERE kind = 'handoff_skipped' AND draft_id = $1";
    assert_eq!(count(&r, audit, &[Arg::I(id)]).await, 1);
    let reply = "/api/v1/accounts/1/conversations/21/messages";
    assert!(
        wait_until(|| async { fake.calls_to(reply).iter().any(|m| m["private"] == false) }, 30).await,
        "the approved reply reached Chatwoot"
    );
    assert!(fake.calls_to(reply).iter().all(|m| m["private"] == false), "no handoff note");
    r.stop().await;
}

/// `Retry-After` (a Chatwoot 429, a consumer endpoint's 503) in both of its forms.
#[test]
fn retry_after_takes_seconds_and_http_dates() {
    use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
    use shouhou::outbound::http::retry_after_ms_at;
    let at = |v: &str| {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_str(v).unwrap());
        // 2015-10-21T07:27:00Z
        retry_after_ms_at(&h, 1_445_412_420_000)
    };
    assert_eq!(at("120"), Some(120_000));
    assert_eq!(at(" 0 "), Some(0));
    assert_eq!(at("Wed, 21 Oct 2015 07:28:00 GMT"), Some(60_000));
    assert_eq!(at("Wed, 21 Oct 2015 07:26:00 GMT"), Some(0), "a date in the past: no wait");
    assert_eq!(at("soon"), None);
    assert_eq!(retry_after_ms_at(&HeaderMap::new(), 0), None);
}

/// The signature check itself: the documented format, constant-time comparison, tolerance.
#[test]
fn signature_check_follows_the_documented_format() {
    let body = br#"{"event":"message_created"}"#;
    let ts = 1_700_000_000;
    let good = signature(SECRET, ts, body);
    assert_eq!(verify_signature(SECRET.as_bytes(), Some("1700000000"), Some(&good), body, ts + 299), Ok(()));
    assert_eq!(
        verify_signature(SECRET.as_bytes(), Some("1700000000"), Some(&good), body, ts + 301),
        Err(SignatureError::Stale)
    );
    assert_eq!(
        verify_signature(SECRET.as_bytes(), Some("1700000000"), Some(&good[7..]), body, ts),
        Err(SignatureError::Malformed)
    );
    assert_eq!(
        verify_signature(SECRET.as_bytes(), Some("1700000001"), Some(&good), body, ts),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        verify_signature(SECRET.as_bytes(), Some("soon"), Some(&good), body, ts),
        Err(SignatureError::BadTimestamp)
    );
    assert_eq!(
        verify_signature(SECRET.as_bytes(), None, Some(&good), body, ts),
        Err(SignatureError::Missing("X-Chatwoot-Timestamp"))
    );
}

/// An adapter without its secret stops `serve` at start with the variable's name; a bad
/// adapter table is refused with its key.
#[test]
fn missing_secrets_and_bad_tables_stop_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::read_to_string(root().join("shouhou.toml")).unwrap();
    let config = dir.path().join("shouhou.toml");
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    std::fs::write(&config, format!("{base}\n[chatwoot]\nurl = \"http://127.0.0.1:9\"\naccounts = {{ shop-1 = 1 }}\n"))
        .unwrap();
    let out = crate::support::serve_command(&config)
        .args(["--listen", "127.0.0.1:0", "--database-url", &db])
        .env_remove("SHOUHOU_CHATWOOT_TOKEN")
        .env_remove("SHOUHOU_SHOP_SECRETS")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("SHOUHOU_CHATWOOT_TOKEN"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The access token alone is not enough: neither a signing secret nor a URL token would leave
    // the route open to anyone.
    let out = crate::support::serve_command(&config)
        .args(["--listen", "127.0.0.1:0", "--database-url", &db])
        .env("SHOUHOU_CHATWOOT_TOKEN", API_TOKEN)
        .env_remove("SHOUHOU_CHATWOOT_SECRET")
        .env_remove("SHOUHOU_CHATWOOT_URL_TOKEN")
        .env_remove("SHOUHOU_SHOP_SECRETS")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("SHOUHOU_CHATWOOT_SECRET") && stderr.contains("SHOUHOU_CHATWOOT_URL_TOKEN"), "{stderr}");

    std::fs::write(&config, format!("{base}\n[websocket]\nurl = \"ws://127.0.0.1:9/push\"\nshops = [\"shop-1\"]\n"))
        .unwrap();
    let out = crate::support::serve_command(&config)
        .args(["--listen", "127.0.0.1:0", "--database-url", &db])
        .env_remove("SHOUHOU_WS_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("SHOUHOU_WS_TOKEN"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    for (table, key) in [
        ("[websocket]\nurl = \"http://x\"\nshops = [\"shop-1\"]\n", "websocket.url"),
        ("[websocket]\nurl = \"ws://x\"\nshops = []\n", "websocket.shops"),
        ("[chatwoot]\nurl = \"ftp://x\"\naccounts = { shop-1 = 1 }\n", "chatwoot.url"),
        ("[chatwoot]\nurl = \"http://x\"\naccounts = { shop-1 = 0 }\n", "chatwoot.accounts"),
        (
            "[websocket]\nurl = \"ws://x\"\nshops = [\"shop-1\"]\n[chatwoot]\nurl = \"http://x\"\naccounts = { shop-1 = 1 }\n",
            "chatwoot.accounts",
        ),
    ] {
        let e = shouhou::config::Settings::parse(std::path::Path::new("shouhou.toml"), &format!("{base}\n{table}"))
            .expect_err(table);
        assert_eq!(e.key, key, "{table}: {e}");
    }
}
