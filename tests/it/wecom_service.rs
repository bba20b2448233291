//! The WeCom Kf adapter against a fake WeCom API (axum, on 127.0.0.1) that speaks the JSON of
//! `gettoken`, `kf/sync_msg` (cursors, `has_more`), `kf/send_msg` and `kf/service_state`: a
//! conversation from callback to reply, URL verification, bad and replayed callbacks, token
//! expiry mid-stream, rate limits, the reply budget running out, a person taking over, and a
//! SIGKILL between two `sync_msg` pages. SQLite always; PostgreSQL too when `TEST_PG_URL` is set.

use std::{
    collections::{BTreeMap, HashMap},
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Json, Router,
    extract::{Query, State},
    routing::{get, post},
};
use regex::Regex;
use serde_json::{Value, json};
use shouhou::{
    adapters::wecom::{crypto::Crypto, msgid_for},
    app as run,
    config::{
        ServiceConfig, WecomFile,
        wecom::{ServiceStates, WecomConfig},
    },
    store::{Arg, Col},
};
use tokio::net::TcpListener;

use crate::{
    service::TOKEN,
    support::{assistant_owned, pg_url, root, sqlite_url, wait_until},
};

const CB_TOKEN: &str = "QDG6eK";
const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
const CORP: &str = "wwcorp0000test";
const SECRET: &str = "kf-app-secret";
const KF: &str = "wkAJ2GCAAASSm4_FhToWMFea0xAFfd3Q";

fn user(n: u32) -> String {
    format!("wmAJ2GCAAAme1XQRC-NI-q0_ZM9uk{n:03}")
}

fn conv(n: u32) -> String {
    format!("{KF}:{}", user(n))
}

fn now_s() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// The fake WeCom API's state.
#[derive(Default)]
struct Api {
    /// Tokens WeCom accepts now.
    valid: Vec<String>,
    /// `gettoken` calls.
    issued: usize,
    /// sync_msg pages by the request's cursor ("" for none).
    pages: HashMap<String, Value>,
    /// A cursor whose page hangs (the SIGKILL test).
    hang_on: Option<String>,
    /// sync_msg requests: (cursor, token, open_kfid).
    syncs: Vec<(String, String, String)>,
    /// errcodes to answer send_msg with, in order, before answering 0.
    send_errs: Vec<i64>,
    /// send_msg requests that succeeded.
    sent: Vec<Value>,
    /// Every send_msg request.
    send_tries: usize,
    /// When each send_msg request came.
    send_times: Vec<std::time::Instant>,
    /// Session state per external user: (state, servicer).
    states: HashMap<String, (i64, String)>,
    /// service_state/trans requests.
    trans: Vec<Value>,
    /// Calls refused for a bad token.
    refused_tokens: usize,
}

#[derive(Clone, Default)]
struct Fake(Arc<Mutex<Api>>);

impl Fake {
    fn with<T>(&self, f: impl FnOnce(&mut Api) -> T) -> T {
        f(&mut self.0.lock().unwrap())
    }

    /// Sets the page served for `cursor` ("" = the first pull).
    fn page(&self, cursor: &str, next: &str, has_more: u32, msgs: Vec<Value>) {
        let p = json!({"errcode": 0, "errmsg": "ok", "next_cursor": next, "has_more": has_more, "msg_list": msgs});
        self.with(|a| a.pages.insert(cursor.to_owned(), p));
    }

    fn sent_texts(&self) -> Vec<Value> {
        self.with(|a| a.sent.clone())
    }
}

fn token_ok(a: &mut Api, q: &HashMap<String, String>) -> bool {
    let ok = q.get("access_token").is_some_and(|t| a.valid.contains(t));
    if !ok {
        a.refused_tokens += 1;
    }
    ok
}

fn expired() -> Json<Value> {
    Json(json!({"errcode": 42001, "errmsg": "access_token expired"}))
}

async fn gettoken(State(f): State<Fake>, Query(q): Query<HashMap<String, String>>) -> Json<Value> {
    if q.get("corpid").map(String::as_str) != Some(CORP) || q.get("corpsecret").map(String::as_str) != Some(SECRET) {
        return Json(json!({"errcode": 40001, "errmsg": "invalid credential"}));
    }
    let t = f.with(|a| {
        a.issued += 1;
        let t = format!("at-{}", a.issued);
        a.valid.push(t.clone());
        t
    });
    Json(json!({"errcode": 0, "errmsg": "ok", "access_token": t, "expires_in": 7200}))
}

async fn sync_msg(
    State(f): State<Fake>,
    Query(q): Query<HashMap<String, String>>,
    Json(b): Json<Value>,
) -> Json<Value> {
    let cursor = b["cursor"].as_str().unwrap_or_default().to_owned();
    let (ok, hang, page) = f.with(|a| {
        let ok = token_ok(a, &q);
        if ok {
            a.syncs.push((
                cursor.clone(),
                b["token"].as_str().unwrap_or_default().to_owned(),
                b["open_kfid"].as_str().unwrap_or_default().to_owned(),
            ));
        }
        (ok, a.hang_on.as_deref() == Some(cursor.as_str()), a.pages.get(&cursor).cloned())
    });
    if !ok {
        return expired();
    }
    if b["token"].as_str() == Some("REFUSED-TOKEN") {
        return Json(json!({"errcode": 95007, "errmsg": "invalid msg token"}));
    }
    if hang {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    Json(
        page.unwrap_or_else(
            || json!({"errcode": 0, "errmsg": "ok", "next_cursor": cursor, "has_more": 0, "msg_list": []}),
        ),
    )
}

async fn send_msg(
    State(f): State<Fake>,
    Query(q): Query<HashMap<String, String>>,
    Json(b): Json<Value>,
) -> Json<Value> {
    f.with(|a| {
        if !token_ok(a, &q) {
            return expired();
        }
        a.send_tries += 1;
        a.send_times.push(std::time::Instant::now());
        if !a.send_errs.is_empty() {
            let c = a.send_errs.remove(0);
            return Json(json!({"errcode": c, "errmsg": "scripted"}));
        }
        a.sent.push(b.clone());
        Json(json!({"errcode": 0, "errmsg": "ok", "msgid": b["msgid"]}))
    })
}

async fn state_get(
    State(f): State<Fake>,
    Query(q): Query<HashMap<String, String>>,
    Json(b): Json<Value>,
) -> Json<Value> {
    f.with(|a| {
        if !token_ok(a, &q) {
            return expired();
        }
        let (st, who) =
            a.states.get(b["external_userid"].as_str().unwrap_or_default()).cloned().unwrap_or((1, String::new()));
        Json(json!({"errcode": 0, "errmsg": "ok", "service_state": st, "servicer_userid": who}))
    })
}

async fn state_trans(
    State(f): State<Fake>,
    Query(q): Query<HashMap<String, String>>,
    Json(b): Json<Value>,
) -> Json<Value> {
    f.with(|a| {
        if !token_ok(a, &q) {
            return expired();
        }
        a.trans.push(b.clone());
        let who = b["servicer_userid"].as_str().unwrap_or_default().to_owned();
        a.states.insert(
            b["external_userid"].as_str().unwrap_or_default().to_owned(),
            (b["service_state"].as_i64().unwrap(), who),
        );
        Json(json!({"errcode": 0, "errmsg": "ok", "msg_code": ""}))
    })
}

async fn fake_wecom() -> (Fake, String) {
    let f = Fake::default();
    let app = Router::new()
        .route("/cgi-bin/gettoken", get(gettoken))
        .route("/cgi-bin/kf/sync_msg", post(sync_msg))
        .route("/cgi-bin/kf/send_msg", post(send_msg))
        .route("/cgi-bin/kf/service_state/get", post(state_get))
        .route("/cgi-bin/kf/service_state/trans", post(state_trans))
        .with_state(f.clone());
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (f, url)
}

fn file(api: &str, budget: u32, window_hours: i64) -> WecomFile {
    WecomFile {
        corp_id: CORP.into(),
        api_url: api.into(),
        shops: BTreeMap::from([("shop-1".to_owned(), vec![KF.to_owned()])]),
        reply_budget: budget,
        reply_window_hours: window_hours,
        timestamp_window_secs: 300,
        send_interval_ms: 5,
        rate_limit_wait_ms: 50,
        handoff_servicer: None,
        states: ServiceStates::default(),
        duplicate_msgid_errcodes: vec![],
        token_margin_secs: 300,
        page_limit: 1000,
    }
}

async fn start(db: &str, f: WecomFile) -> run::Running {
    let wecom = WecomConfig::from_file(&f, Some(CB_TOKEN.into()), Some(AES_KEY.into()), Some(SECRET.into())).unwrap();
    let cfg = ServiceConfig {
        shops: HashMap::new(),
        wecom: Some(wecom),
        ..crate::service::cfg(db, "http://127.0.0.1:9/unused", "wc")
    };
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    run::start(l, Arc::new(assistant_owned()), cfg).await.unwrap()
}

fn crypto() -> Crypto {
    Crypto::new(CB_TOKEN, AES_KEY, CORP).unwrap()
}

/// POSTs a `kf_msg_or_event` callback carrying `token`, signed now; returns status and body.
async fn callback(base: &str, shop: &str, token: &str, nonce: &str) -> (u16, String) {
    let event = format!(
        "<xml><ToUserName><![CDATA[{CORP}]]></ToUserName><CreateTime>{}</CreateTime><MsgType><![CDATA[event]]></MsgType>\
         <Event><![CDATA[kf_msg_or_event]]></Event><Token><![CDATA[{token}]]></Token><OpenKfId><![CDATA[{KF}]]></OpenKfId></xml>",
        now_s()
    );
    let s = crypto().seal(&event, now_s(), nonce, rand16());
    post_sealed(base, shop, &s.signature, &s.timestamp, nonce, &s.encrypt).await
}

async fn post_sealed(base: &str, shop: &str, sig: &str, ts: &str, nonce: &str, encrypt: &str) -> (u16, String) {
    let body = format!(
        "<xml><ToUserName><![CDATA[{CORP}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt><AgentID><![CDATA[]]></AgentID></xml>"
    );
    let res = reqwest::Client::new()
        .post(format!("{base}/v1/wecom/{shop}?msg_signature={sig}&timestamp={ts}&nonce={nonce}"))
        .body(body)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

fn rand16() -> [u8; 16] {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).unwrap();
    b
}

fn text_msg(id: &str, n: u32, text: &str, ago_s: i64) -> Value {
    json!({"msgid": id, "open_kfid": KF, "external_userid": user(n), "send_time": now_s() - ago_s, "origin": 3,
           "msgtype": "text", "text": {"content": text}})
}

async fn count(r: &run::Running, sql: &'static str, args: &[Arg]) -> i64 {
    r.state.store.select(sql, args, &[Col::I("n")]).await.unwrap().first().map_or(0, |row| row[0].i())
}

async fn owner(r: &run::Running, c: &str) -> String {
    let rows = r
        .state
        .store
        .select(
            "SELECT owner FROM conversations WHERE shop_id = 'shop-1' AND conversation_id = $1",
            &[Arg::T(c.to_owned())],
            &[Col::T("owner")],
        )
        .await
        .unwrap();
    rows.first().map(|r| r[0].t()).unwrap_or_default()
}

/// From callback to reply: the URL check, a buyer's FAQ pulled with the callback's token and
/// answered through send_msg with a stable msgid, a replayed callback changing nothing, and bad
/// callbacks refused with nothing stored.
async fn conversation_body(db: &str) {
    let (fake, api) = fake_wecom().await;
    fake.page("", "c1", 0, vec![text_msg("from_msgid_1001", 1, "能开发票吗", 5)]);
    let r = start(db, file(&api, 5, 48)).await;
    let base = format!("http://{}", r.addr);

    // URL verification.
    let s = crypto().seal("8812345671234", now_s(), "n0", rand16());
    let url = format!(
        "{base}/v1/wecom/shop-1?msg_signature={}&timestamp={}&nonce=n0&echostr={}",
        s.signature,
        s.timestamp,
        urlenc(&s.encrypt)
    );
    let res = reqwest::get(&url).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "8812345671234");
    let bad = format!(
        "{base}/v1/wecom/shop-1?msg_signature={}&timestamp={}&nonce=n1&echostr={}",
        s.signature,
        s.timestamp,
        urlenc(&s.encrypt)
    );
    assert_eq!(reqwest::get(&bad).await.unwrap().status(), 401, "a signature over another nonce");
    let res = reqwest::get(format!("{base}/v1/wecom/shop-1?timestamp=1&nonce=n")).await.unwrap();
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("msg_signature"));
    assert_eq!(
        reqwest::get(format!("{base}/v1/wecom/shop-9?msg_signature=a&timestamp=1&nonce=n&echostr=x"))
            .await
            .unwrap()
            .status(),
        404
    );

    // Bad callbacks: nothing stored.
    let ev = "<xml><Event>kf_msg_or_event</Event><Token>T0</Token><OpenKfId>wkX</OpenKfId></xml>";
    let sealed = crypto().seal(ev, now_s(), "nb", rand16());
    let (code, body) = post_sealed(&base, "shop-1", &"0".repeat(40), &sealed.timestamp, "nb", &sealed.encrypt).await;
    assert_eq!((code, body.contains("msg_signature")), (401, true), "{body}");
    let stale = crypto().seal(ev, now_s() - 3600, "ns", rand16());
    let (code, body) = post_sealed(&base, "shop-1", &stale.signature, &stale.timestamp, "ns", &stale.encrypt).await;
    assert_eq!(code, 401, "{body}");
    let other = Crypto::new(CB_TOKEN, AES_KEY, "wwOTHER").unwrap().seal(ev, now_s(), "no", rand16());
    assert_eq!(post_sealed(&base, "shop-1", &other.signature, &other.timestamp, "no", &other.encrypt).await.0, 401);
    let res = reqwest::Client::new()
        .post(format!(
            "{base}/v1/wecom/shop-1?msg_signature={}&timestamp={}&nonce=nb",
            sealed.signature, sealed.timestamp
        ))
        .body("not xml")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    // A valid callback for an account that is not this shop's.
    let (code, body) = post_sealed(&base, "shop-1", &sealed.signature, &sealed.timestamp, "nb", &sealed.encrypt).await;
    assert_eq!(code, 403, "{body}");
    assert_eq!(count(&r, "SELECT COUNT(*) AS n FROM wecom_cursors", &[]).await, 0);
    assert_eq!(count(&r, "SELECT COUNT(*) AS n FROM wecom_callbacks", &[]).await, 0);
    assert_eq!(count(&r, "SELECT COUNT(*) AS n FROM inbox", &[]).await, 0);

    // The callback is answered at once; the pull behind it fetches the buyer's message.
    let event = format!(
        "<xml><ToUserName><![CDATA[{CORP}]]></ToUserName><CreateTime>1</CreateTime><MsgType><![CDATA[event]]></MsgType>\
         <Event><![CDATA[kf_msg_or_event]]></Event><Token><![CDATA[SYNC-T1]]></Token><OpenKfId><![CDATA[{KF}]]></OpenKfId></xml>"
    );
    let s1 = crypto().seal(&event, now_s(), "n-cb1", rand16());
    let (code, body) = post_sealed(&base, "shop-1", &s1.signature, &s1.timestamp, "n-cb1", &s1.encrypt).await;
    assert_eq!((code, body.as_str()), (200, "success"));
    assert!(wait_until(|| async { !fake.sent_texts().is_empty() }, 30).await, "the FAQ was answered through send_msg");
    let sent = fake.sent_texts();
    assert_eq!(sent.len(), 1);
    assert_eq!((sent[0]["touser"].as_str(), sent[0]["open_kfid"].as_str()), (Some(user(1).as_str()), Some(KF)));
    assert_eq!(sent[0]["msgtype"], "text");
    assert!(!sent[0]["text"]["content"].as_str().unwrap().is_empty());
    assert_eq!(sent[0]["msgid"].as_str().unwrap(), msgid_for("shop-1:from_msgid_1001:auto"));
    let syncs = fake.with(|a| a.syncs.clone());
    assert_eq!(syncs[0], (String::new(), "SYNC-T1".to_owned(), KF.to_owned()), "pulled with the callback's token");
    let cursor = r.state.store.select("SELECT cursor FROM wecom_cursors", &[], &[Col::T("cursor")]).await.unwrap();
    assert_eq!(cursor[0][0].t(), "c1");
    // The replay: acknowledged, nothing pulled again.
    let (code, _) = post_sealed(&base, "shop-1", &s1.signature, &s1.timestamp, "n-cb1", &s1.encrypt).await;
    assert_eq!(code, 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(fake.with(|a| a.syncs.len()), 1, "a replayed callback does not pull again");
    assert_eq!(count(&r, "SELECT COUNT(*) AS n FROM wecom_callbacks", &[]).await, 1);
    // The next callback pulls from the stored cursor; the same message again is not processed twice.
    fake.page("c1", "c2", 0, vec![text_msg("from_msgid_1001", 1, "能开发票吗", 5)]);
    assert_eq!(callback(&base, "shop-1", "SYNC-T2", "n-cb2").await.0, 200);
    assert!(wait_until(|| async { fake.with(|a| a.syncs.len()) == 2 }, 20).await);
    assert_eq!(fake.with(|a| a.syncs[1].0.clone()), "c1");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(count(&r, "SELECT COUNT(*) AS n FROM drafts", &[]).await, 1);
    assert_eq!(fake.sent_texts().len(), 1);
    r.stop().await;
}

fn urlenc(s: &str) -> String {
    s.replace('+', "%2B").replace('/', "%2F").replace('=', "%3D")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversation_end_to_end_sqlite() {
    let (_d, db) = sqlite_url();
    conversation_body(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversation_end_to_end_postgres() {
    let Some(db) = pg_url().await else { return };
    conversation_body(&db).await;
}

/// The access token expires mid-stream (WeCom answers 42001): one new token, the call made
/// again; frequency-limit answers (45009) and system-busy (-1) are retried until sent.
async fn token_and_rate_limit_body(db: &str) {
    let (fake, api) = fake_wecom().await;
    fake.page("", "c1", 0, vec![text_msg("m-a", 2, "能开发票吗", 5)]);
    let r = start(db, WecomFile { send_interval_ms: 250, ..file(&api, 5, 48) }).await;
    let base = format!("http://{}", r.addr);
    assert_eq!(callback(&base, "shop-1", "T1", "n1").await.0, 200);
    assert!(wait_until(|| async { fake.sent_texts().len() == 1 }, 30).await, "first reply");
    assert_eq!(fake.with(|a| a.issued), 1, "one token served the pull, the state check and the send");
    // The token dies; the next pull and send get a new one.
    fake.with(|a| {
        a.valid.clear();
        a.send_errs = vec![45009, -1, 45009];
    });
    fake.page("c1", "c2", 0, vec![text_msg("m-b", 3, "能开发票吗", 5)]);
    assert_eq!(callback(&base, "shop-1", "T2", "n2").await.0, 200);
    assert!(
        wait_until(|| async { fake.sent_texts().len() == 2 }, 30).await,
        "second reply after the refresh and the limits"
    );
    let (issued, refused, tries) = fake.with(|a| (a.issued, a.refused_tokens, a.send_tries));
    assert_eq!(issued, 2, "exactly one refresh");
    assert!(refused >= 1);
    assert_eq!(tries, 5, "1 + 3 refused by limits + 1 accepted");
    // Recorded once WeChat's answer is in: four attempts, the last one sent.
    let recorded = || async {
        count(&r, "SELECT attempts AS n FROM sends WHERE conversation_id = $1 AND status = 'sent'", &[Arg::T(conv(3))])
            .await
            == 4
    };
    assert!(wait_until(recorded, 10).await, "four attempts recorded");
    let sent = fake.sent_texts();
    assert_eq!(sent[1]["msgid"].as_str().unwrap(), msgid_for("shop-1:m-b:auto"), "the same msgid on every attempt");
    // A sync token WeCom refuses does not block the account: the page is pulled without it.
    fake.page("c2", "c3", 0, vec![text_msg("m-c", 7, "能开发票吗", 5)]);
    assert_eq!(callback(&base, "shop-1", "REFUSED-TOKEN", "n3").await.0, 200);
    assert!(wait_until(|| async { fake.sent_texts().len() == 3 }, 30).await, "answered after a pull without the token");
    let last: Vec<(String, String)> =
        fake.with(|a| a.syncs.iter().rev().take(2).map(|s| (s.0.clone(), s.1.clone())).collect());
    assert_eq!(last, [("c2".to_owned(), String::new()), ("c2".to_owned(), "REFUSED-TOKEN".to_owned())]);
    // The shop's sends are spaced by send_interval_ms (a lower bound: never closer).
    let times = fake.with(|a| a.send_times.clone());
    assert!(times.windows(2).all(|w| w[1] - w[0] >= Duration::from_millis(240)), "paced per shop");
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_expiry_and_rate_limits_sqlite() {
    let (_d, db) = sqlite_url();
    token_and_rate_limit_body(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_expiry_and_rate_limits_postgres() {
    let Some(db) = pg_url().await else { return };
    token_and_rate_limit_body(&db).await;
}

async fn api_json(method: reqwest::Method, url: String, body: Option<Value>) -> (u16, Value) {
    let mut rb = reqwest::Client::new().request(method, url).bearer_auth(TOKEN);
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let res = rb.send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
}

async fn queue_ids(base: &str) -> Vec<(i64, String)> {
    let (_, q) = api_json(reqwest::Method::GET, format!("{base}/v1/queue"), None).await;
    q["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|i| (i["id"].as_i64().unwrap(), i["conversation_id"].as_str().unwrap_or("").to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// Logs the demo agent into the console: (cookie, csrf token).
async fn console_login(r: &run::Running, base: &str) -> (String, String) {
    shouhou::accounts::upsert_user(&r.state.store, "agent", "agent-demo-pass", shouhou::domain::role::Role::Agent)
        .await
        .unwrap();
    let res = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{base}/console/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("username=agent&password=agent-demo-pass")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let cookie = res.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let page = console_get(base, &cookie, "/console/try").await;
    let csrf = Regex::new(r#"name="csrf" content="([0-9a-f]{64})""#).unwrap().captures(&page).unwrap()[1].to_owned();
    (cookie, csrf)
}

async fn console_get(base: &str, cookie: &str, path: &str) -> String {
    reqwest::Client::new()
        .get(format!("{base}{path}"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The id of the first draft waiting for review in `conv`, within 30 s.
async fn waiting(base: &str, conv: &str) -> Option<i64> {
    for _ in 0..600 {
        if let Some((id, _)) = queue_ids(base).await.into_iter().find(|(_, c)| c == conv) {
            return Some(id);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// A budget of one reply: the first FAQ is answered, the second (same buyer message window)
/// goes to review and cannot be approved, with the reason; the buyer writing again renews it.
/// A buyer message older than the window cannot be answered at all.
async fn budget_body(db: &str) {
    let (fake, api) = fake_wecom().await;
    fake.page("", "c1", 0, vec![text_msg("m-1", 4, "能开发票吗", 20), text_msg("m-2", 4, "你好", 10)]);
    let r = start(db, file(&api, 1, 1)).await;
    let base = format!("http://{}", r.addr);
    assert_eq!(callback(&base, "shop-1", "T1", "n1").await.0, 200);
    assert!(wait_until(|| async { fake.sent_texts().len() == 1 }, 30).await, "the first FAQ is answered");
    let id =
        waiting(&base, &conv(4)).await.expect("the second FAQ (auto-sendable, but over the budget) waits for review");
    let (code, body) = api_json(reqwest::Method::POST, format!("{base}/v1/drafts/{id}/approve"), None).await;
    assert_eq!(code, 409, "{body}");
    assert!(body["error"].as_str().unwrap().contains("reply budget is spent"), "{body}");
    assert_eq!(fake.sent_texts().len(), 1, "nothing beyond the budget reached WeChat");
    // A send that got past the review anyway (written straight into the table) is held by the
    // sender, with the reason.
    let now = jiff::Timestamp::now().as_millisecond();
    r.state
        .store
        .apply(&[shouhou::store::Stmt {
            sql: "INSERT INTO sends (draft_id, shop_id, conversation_id, reply_to, text, by_person, idempotency_key, next_at, created_at)
                  VALUES ($1, 'shop-1', $2, 'm-2', 'extra', 1, 'bypass-1', $3, $3)",
            args: vec![Arg::I(id), Arg::T(conv(4)), Arg::I(now)],
        }])
        .await
        .unwrap();
    let held = || async {
        count(&r, "SELECT COUNT(*) AS n FROM sends WHERE idempotency_key = 'bypass-1' AND status = 'held' AND last_error LIKE '%reply budget%'", &[]).await == 1
    };
    assert!(wait_until(held, 20).await, "the sender holds a send beyond the budget");
    assert_eq!(fake.sent_texts().len(), 1);
    // The console says why, and its approval is refused the same way.
    let (cookie, csrf) = console_login(&r, &base).await;
    let page = console_get(&base, &cookie, &format!("/console/drafts/{id}")).await;
    assert!(page.contains(r#"id="budget""#) && page.contains(r#"data-spent="exhausted""#), "{page}");
    assert!(page.contains("reply budget is spent"), "the reason is shown");
    assert!(Regex::new(r#"id="approve" disabled"#).unwrap().is_match(&page), "approve is disabled");
    let res = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{base}/console/drafts/{id}/approve"))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409);
    assert!(res.text().await.unwrap().contains(r#"data-key="budget_spent""#));
    // The buyer writes again a while later (WeChat's send_time has whole seconds), a location:
    // unreadable, but it renews the budget.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    fake.page(
        "c1",
        "c2",
        0,
        vec![json!({"msgid": "m-3", "open_kfid": KF, "external_userid": user(4), "send_time": now_s(), "origin": 3,
                    "msgtype": "location", "location": {"latitude": 1.0, "longitude": 2.0}})],
    );
    assert_eq!(callback(&base, "shop-1", "T2", "n2").await.0, 200);
    assert!(wait_until(|| async { fake.with(|a| a.syncs.len()) == 2 }, 20).await);
    let approved = || {
        let b = base.clone();
        async move { api_json(reqwest::Method::POST, format!("{b}/v1/drafts/{id}/approve"), None).await.0 == 200 }
    };
    assert!(wait_until(approved, 10).await, "approvable once the buyer wrote again");
    assert!(wait_until(|| async { fake.sent_texts().len() == 2 }, 30).await, "and sent");

    // Two hours after the buyer's message, with a 1-hour window: not answered.
    fake.page("c2", "c3", 0, vec![text_msg("m-old", 5, "能开发票吗", 2 * 3600)]);
    assert_eq!(callback(&base, "shop-1", "T3", "n3").await.0, 200);
    let late = waiting(&base, &conv(5)).await.expect("the late FAQ waits for review");
    let (code, body) = api_json(reqwest::Method::POST, format!("{base}/v1/drafts/{late}/approve"), None).await;
    assert_eq!(code, 409, "{body}");
    assert!(body["error"].as_str().unwrap().contains("time is over"), "{body}");
    assert_eq!(fake.sent_texts().len(), 2);
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reply_budget_runs_out_sqlite() {
    let (_d, db) = sqlite_url();
    budget_body(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reply_budget_runs_out_postgres() {
    let Some(db) = pg_url().await else { return };
    budget_body(&db).await;
}

/// A complaint escalates: the session moves to the queue (service_state/trans), shouhou records
/// the owner and stops answering; WeChat's takeover event names the servicer; the session's end
/// gives the conversation back.
async fn takeover_body(db: &str) {
    let (fake, api) = fake_wecom().await;
    fake.page("", "c1", 0, vec![text_msg("m-c", 6, "你们太过分了，我要投诉，给差评！", 5)]);
    let r = start(db, file(&api, 5, 48)).await;
    let base = format!("http://{}", r.addr);
    assert_eq!(callback(&base, "shop-1", "T1", "n1").await.0, 200);
    assert!(wait_until(|| async { !fake.with(|a| a.trans.is_empty()) }, 30).await, "handed to the queue");
    let t = fake.with(|a| a.trans[0].clone());
    assert_eq!((t["service_state"].as_i64(), t["external_userid"].as_str()), (Some(2), Some(user(6).as_str())));
    assert!(wait_until(|| async { owner(&r, &conv(6)).await == "wecom:queue" }, 10).await);
    // A servicer takes it from the queue.
    fake.page(
        "c1",
        "c2",
        0,
        vec![
            json!({"msgid": "ev-1", "send_time": now_s(), "origin": 4, "msgtype": "event",
                    "event": {"event_type": "session_status_change", "open_kfid": KF, "external_userid": user(6),
                              "change_type": 1, "new_servicer_userid": "zhangsan"}}),
            text_msg("m-d", 6, "能开发票吗", 1),
        ],
    );
    fake.with(|a| a.states.insert(user(6), (3, "zhangsan".into())));
    assert_eq!(callback(&base, "shop-1", "T2", "n2").await.0, 200);
    assert!(wait_until(|| async { owner(&r, &conv(6)).await == "wecom:zhangsan" }, 20).await);
    // The FAQ that came with it is drafted for review, not sent.
    assert!(
        wait_until(
            || async { count(&r, "SELECT COUNT(*) AS n FROM drafts WHERE message_id = 'm-d'", &[]).await == 1 },
            20
        )
        .await
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(fake.sent_texts().is_empty(), "nothing sent while a person has the conversation");
    assert_eq!(fake.with(|a| a.trans.len()), 1, "handed over once");
    // The session ends: the conversation is the bot's again.
    fake.page(
        "c2",
        "c3",
        0,
        vec![json!({"msgid": "ev-2", "send_time": now_s(), "origin": 4, "msgtype": "event",
                    "event": {"event_type": "session_status_change", "open_kfid": KF, "external_userid": user(6),
                              "change_type": 3, "old_servicer_userid": "zhangsan"}})],
    );
    assert_eq!(callback(&base, "shop-1", "T3", "n3").await.0, 200);
    assert!(wait_until(|| async { owner(&r, &conv(6)).await == "bot" }, 20).await);
    // A person took the session in WeChat without an event reaching shouhou: the state check
    // before the send finds it, nothing is sent, and the owner is corrected.
    fake.with(|a| a.states.insert(user(7), (3, "lisi".into())));
    fake.page("c3", "c4", 0, vec![text_msg("m-e", 7, "能开发票吗", 1)]);
    assert_eq!(callback(&base, "shop-1", "T4", "n4").await.0, 200);
    assert!(wait_until(|| async { owner(&r, &conv(7)).await == "wecom:lisi" }, 20).await, "owner corrected");
    assert!(fake.sent_texts().is_empty());
    let failed = || async {
        count(&r, "SELECT COUNT(*) AS n FROM sends WHERE status = 'failed' AND last_error LIKE '%state 3%'", &[]).await
            == 1
    };
    assert!(wait_until(failed, 20).await, "the send failed, naming the state");
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn person_takes_over_sqlite() {
    let (_d, db) = sqlite_url();
    takeover_body(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn person_takes_over_postgres() {
    let Some(db) = pg_url().await else { return };
    takeover_body(&db).await;
}

/// The real binary, killed with SIGKILL while the second `sync_msg` page is in flight: the first
/// page and its cursor are committed together, the restart pulls the second page from that
/// cursor, and every message is stored and drafted exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_between_sync_pages() {
    let (fake, api) = fake_wecom().await;
    let page1: Vec<Value> = (0..3).map(|i| text_msg(&format!("p1-{i}"), 10 + i, "能开发票吗", 30)).collect();
    let page2: Vec<Value> = (0..3).map(|i| text_msg(&format!("p2-{i}"), 20 + i, "能开发票吗", 20)).collect();
    fake.page("", "cur-1", 1, page1);
    fake.page("cur-1", "cur-2", 0, page2);
    fake.with(|a| a.hang_on = Some("cur-1".into()));

    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("k.db").display());
    let toml = std::fs::read_to_string(root().join("shouhou.toml")).unwrap()
        + &format!(
            "\n[wecom]\ncorp_id = \"{CORP}\"\napi_url = \"{api}\"\nsend_interval_ms = 5\n[wecom.shops]\n\"shop-1\" = [\"{KF}\"]\n"
        );
    let config = dir.path().join("shouhou.toml");
    std::fs::write(&config, toml).unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let spawn = || {
        crate::support::serve_command(&config)
            .args(["--listen", &format!("127.0.0.1:{port}"), "--database-url", &db])
            .env("SHOUHOU_WECOM_TOKEN", CB_TOKEN)
            .env("SHOUHOU_WECOM_AES_KEY", AES_KEY)
            .env("SHOUHOU_WECOM_SECRET", SECRET)
            .env_remove("SHOUHOU_SHOP_SECRETS")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let base = format!("http://127.0.0.1:{port}");
    let up = || async {
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
    assert!(up().await, "service up");
    assert_eq!(callback(&base, "shop-1", "T-kill", "nk").await.0, 200);
    assert!(
        wait_until(|| async { fake.with(|a| a.syncs.iter().any(|s| s.0 == "cur-1")) }, 30).await,
        "the second page was requested"
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let store = shouhou::store::Store::connect(&db).await.unwrap();
    let n = |sql: &'static str| {
        let store = store.clone();
        async move { store.select(sql, &[], &[Col::I("n")]).await.unwrap()[0][0].i() }
    };
    assert_eq!(n("SELECT COUNT(*) AS n FROM inbox").await, 3, "the first page is stored");
    let cur = store
        .select("SELECT cursor, pending_token FROM wecom_cursors", &[], &[Col::T("cursor"), Col::T("pending_token")])
        .await
        .unwrap();
    assert_eq!(
        (cur[0][0].t(), cur[0][1].t()),
        ("cur-1".to_owned(), "T-kill".to_owned()),
        "cursor with its page; the pull still pending"
    );
    drop(store);

    fake.with(|a| a.hang_on = None);
    let mut child = spawn();
    assert!(up().await, "service up again");
    let store = shouhou::store::Store::connect(&db).await.unwrap();
    let drafted = || {
        let store = store.clone();
        async move { store.select("SELECT COUNT(*) AS n FROM drafts", &[], &[Col::I("n")]).await.unwrap()[0][0].i() == 6 }
    };
    assert!(wait_until(drafted, 30).await, "all six drafted after the restart");
    assert!(wait_until(|| async { fake.sent_texts().len() >= 6 }, 30).await, "and answered");
    tokio::time::sleep(Duration::from_millis(500)).await;
    child.kill().unwrap();
    child.wait().unwrap();
    let rows = store
        .select(
            "SELECT message_id, COUNT(*) AS n FROM inbox GROUP BY message_id",
            &[],
            &[Col::T("message_id"), Col::I("n")],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 6);
    assert!(rows.iter().all(|r| r[1].i() == 1), "no message stored twice");
    let resumed: Vec<String> = fake.with(|a| a.syncs.iter().map(|s| s.0.clone()).collect());
    assert_eq!(resumed.iter().filter(|c| c.is_empty()).count(), 1, "the first page was pulled once: {resumed:?}");
    assert_eq!(resumed.last().map(String::as_str), Some("cur-1"), "resumed at the stored cursor");
    let mut msgids: Vec<String> = fake.sent_texts().iter().map(|s| s["msgid"].as_str().unwrap().to_owned()).collect();
    msgids.sort();
    msgids.dedup();
    assert_eq!(msgids.len(), 6, "one reply per message");
    let cur = store.select("SELECT pending_token FROM wecom_cursors", &[], &[Col::T("pending_token")]).await.unwrap();
    assert_eq!(cur[0][0].opt(), None, "the pull finished");
}
