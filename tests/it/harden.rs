//! Hardening (issue 16): what the security and reliability reviews of 2026-12 broke, attacked
//! from outside over real sockets: oversized signature headers, shop enumeration, bad and reused
//! ids, deep nesting, slow and idle clients, too many connections.

use std::time::Duration;

use serde_json::Value;
use shouhou::{app, domain::sign::Secret};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::{
    service::{cfg, count, event, now, post_signed, secret},
    support::{assistant_owned, sqlite_url},
};

async fn start(limits: app::ConnLimits) -> (tempfile::TempDir, app::Running) {
    let (dir, db) = sqlite_url();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let r = app::start_with_limits(
        l,
        std::sync::Arc::new(assistant_owned()),
        cfg(&db, "http://127.0.0.1:9/send", "h"),
        limits,
    )
    .await
    .unwrap();
    (dir, r)
}

async fn raw_post(base: &str, shop: &str, sig: &str, body: &str) -> (u16, String) {
    let res = reqwest::Client::new()
        .post(format!("{base}/v1/events"))
        .header("x-shouhou-shop", shop)
        .header("webhook-id", "m-1")
        .header("webhook-timestamp", now().to_string())
        .header("webhook-signature", sig)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

/// Security review H1: 40,000 `v1,` parts (320 KB of header) are refused with a 4xx, two such
/// requests at once included, and `/healthz` answers afterwards; nothing is stored.
#[tokio::test]
async fn a_flood_of_signature_parts_is_refused() {
    let (_d, r) = start(app::ConnLimits::default()).await;
    let base = format!("http://{}", r.addr);
    let sig = vec!["v1,AA=="; 40_000].join(" ");
    let body = event("c-1", "m-1", "什么时候发货", "tb_buyer_1");
    let (a, b) = tokio::join!(raw_post(&base, "shop-1", &sig, &body), raw_post(&base, "shop-1", &sig, &body));
    for (status, text) in [a, b] {
        assert!((400..500).contains(&status), "{status} {text}");
    }
    let res = reqwest::get(format!("{base}/healthz")).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(count(&r, "SELECT COUNT(*) AS n FROM inbox").await, 0);
    r.stop().await;
}

/// Security review H1 / I4: an unknown shop answers exactly like a known one with a wrong
/// signature, for every way the headers can be wrong, so shop ids cannot be enumerated.
#[tokio::test]
async fn unknown_and_known_shops_answer_alike() {
    let (_d, r) = start(app::ConnLimits::default()).await;
    let base = format!("http://{}", r.addr);
    let body = event("c-1", "m-1", "什么时候发货", "tb_buyer_1");
    let wrong = Secret::from_bytes(b"another-secret-another-secret-00").unwrap();
    for sig in [wrong.sign("m-1", now(), body.as_bytes()), "v1,AA==".to_owned(), String::new()] {
        let known = raw_post(&base, "shop-1", &sig, &body).await;
        let unknown = raw_post(&base, "shop-unknown", &sig, &body).await;
        assert_eq!(known, unknown, "signature {sig:?}");
        assert_eq!(known.0, 401);
    }
    // Even a request signed with some key is refused for a shop that does not exist.
    let res = reqwest::Client::new()
        .post(format!("{base}/v1/events"))
        .header("x-shouhou-shop", "shop-x")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(count(&r, "SELECT COUNT(*) AS n FROM inbox").await, 0);
    r.stop().await;
}

/// Reliability review F2–F4: every refusal is JSON (the 413 too); a message id over 128 bytes or
/// with spaces, text over the cap and deep nesting are 400s naming the field; nothing is stored.
#[tokio::test]
async fn bad_sizes_and_shapes_are_refused_with_json() {
    let (_d, r) = start(app::ConnLimits::default()).await;
    let base = format!("http://{}", r.addr);
    let key = secret();
    let big = "x".repeat(shouhou::state::MAX_BODY_BYTES + 10);
    let res = post_signed(&base, &big, "w1", now(), &key).await;
    assert_eq!(res.status(), 413);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    assert!(res.json::<Value>().await.unwrap()["error"].as_str().unwrap().contains("length limit"));
    let long_id = "m".repeat(129);
    let long_text = "发".repeat(shouhou::domain::event::MAX_TEXT_CHARS + 1);
    let mut deep: Value = serde_json::from_str(&event("c-1", "m-deep", "什么时候发货", "tb_buyer_1")).unwrap();
    deep["extra"] = Value::Null;
    let deep = {
        let s = deep.to_string();
        // 50,000 levels in an unknown field, spliced in as text.
        s.replacen("\"extra\":null", &format!("\"extra\":{}1{}", "[".repeat(50_000), "]".repeat(50_000)), 1)
    };
    let cases = [
        (event("c-1", &long_id, "什么时候发货", "tb_buyer_1"), "message_id"),
        (event("c-1", "m 1", "什么时候发货", "tb_buyer_1"), "message_id"),
        (event(&"c".repeat(129), "m-2", "什么时候发货", "tb_buyer_1"), "conversation_id"),
        (event("c-1", "m-3", &long_text, "tb_buyer_1"), "text"),
        (deep, "nested"),
    ];
    for (i, (body, want)) in cases.iter().enumerate() {
        let res = post_signed(&base, body, &format!("b{i}"), now(), &key).await;
        assert_eq!(res.status(), 400, "case {i}");
        let err = res.json::<Value>().await.unwrap()["error"].as_str().unwrap().to_owned();
        assert!(err.contains(want), "case {i}: {err}");
    }
    // The router's own refusals are JSON too.
    let res = reqwest::Client::new().delete(format!("{base}/v1/events")).send().await.unwrap();
    assert_eq!(res.status(), 405);
    assert!(res.json::<Value>().await.unwrap()["error"].is_string());
    assert_eq!(count(&r, "SELECT COUNT(*) AS n FROM inbox").await, 0, "nothing stored");
    r.stop().await;
}

/// Reliability review F5: a redelivery (the same event, even re-serialised) is a duplicate; the
/// same message id with different content is a 409 carrying both versions' hashes, and the
/// stored message stays as it was.
#[tokio::test]
async fn a_reused_message_id_with_new_content_is_a_conflict() {
    let (_d, r) = start(app::ConnLimits::default()).await;
    let base = format!("http://{}", r.addr);
    let key = secret();
    let first = event("c-1", "m-1", "什么时候发货", "tb_buyer_1");
    let res = post_signed(&base, &first, "w1", now(), &key).await;
    assert_eq!(res.status(), 202);
    let again: Value = serde_json::from_str(&first).unwrap();
    let res = post_signed(&base, &serde_json::to_string_pretty(&again).unwrap(), "w2", now(), &key).await;
    assert_eq!(res.status(), 202);
    assert_eq!(res.json::<Value>().await.unwrap()["duplicate"], true);
    let other = event("c-1", "m-1", "我要退货", "tb_buyer_1");
    let res = post_signed(&base, &other, "w3", now(), &key).await;
    assert_eq!(res.status(), 409);
    let v: Value = res.json().await.unwrap();
    let hex = |s: &str| {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(s.as_bytes()))
    };
    assert_eq!(v["stored_sha256"], hex(&first));
    assert_eq!(v["offered_sha256"], hex(&other));
    assert_eq!(count(&r, "SELECT COUNT(*) AS n FROM inbox").await, 1);
    let stored =
        r.state.store.select("SELECT payload FROM inbox", &[], &[shouhou::store::Col::T("payload")]).await.unwrap();
    assert_eq!(stored[0][0].t(), first, "the first version is kept");
    r.stop().await;
}

/// Whether the server closed `s` (EOF or reset) within `secs`.
async fn closed_within(s: &mut TcpStream, secs: u64) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// Security review M5: a request line without the end of its headers, headers trickled a line at
/// a time, and an idle keep-alive connection are all closed by the server after the header-read
/// timeout (1 s here), not held for ever.
#[tokio::test]
async fn slow_and_idle_clients_are_cut_off() {
    let limits = app::ConnLimits { header_read: Duration::from_secs(1), max_connections: 64 };
    let (_d, r) = start(limits).await;
    let mut half = TcpStream::connect(r.addr).await.unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let mut trickle = TcpStream::connect(r.addr).await.unwrap();
    let trickler = tokio::spawn(async move {
        let _ = trickle.write_all(b"GET /healthz HTTP/1.1\r\n").await;
        for i in 0..20 {
            if trickle.write_all(format!("x-h{i}: 1\r\n").as_bytes()).await.is_err() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        closed_within(&mut trickle, 1).await
    });
    let mut idle = TcpStream::connect(r.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    assert!(closed_within(&mut half, 5).await, "half-open request closed");
    assert!(closed_within(&mut idle, 5).await, "idle keep-alive closed after its answer");
    assert!(trickler.await.unwrap(), "trickled headers closed");
    r.stop().await;
}

/// Security review M5: past the connection limit new connections wait in the backlog instead of
/// using up file descriptors; once the silent ones are cut off, the waiting request is answered.
#[tokio::test]
async fn connections_are_capped() {
    let limits = app::ConnLimits { header_read: Duration::from_secs(1), max_connections: 3 };
    let (_d, r) = start(limits).await;
    let mut silent = Vec::new();
    for _ in 0..3 {
        silent.push(TcpStream::connect(r.addr).await.unwrap());
    }
    let url = format!("http://{}/healthz", r.addr);
    let waiting = tokio::spawn(async move { reqwest::get(url).await.unwrap().status().as_u16() });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "every slot is held by a silent connection");
    assert_eq!(waiting.await.unwrap(), 200, "answered once the silent ones were cut off");
    for s in &mut silent {
        assert!(closed_within(s, 2).await, "a silent connection is closed");
    }
    r.stop().await;
}

/// Security review M8: with 5,100 rows from one conversation written after another
/// conversation's row, `GET /v1/audit` filters in SQL (the buried row is found), pages newest
/// first with `after` and `limit`, and every row is reachable exactly once.
#[tokio::test]
async fn the_audit_is_filtered_and_paged_in_sql() {
    use crate::service::{SUPERVISOR, api};
    use shouhou::store::audit::audit_stmt;
    let (_d, r) = start(app::ConnLimits::default()).await;
    let base = format!("http://{}", r.addr);
    r.state
        .store
        .apply(&[audit_stmt(1, "agent:x", "reject", "shop-1", "c-early", None, None, Value::Null)])
        .await
        .unwrap();
    let flood: Vec<_> = (0..5100)
        .map(|i| audit_stmt(2 + i, "agent:y", "edit_blocked", "shop-1", "c-flood", None, None, Value::Null))
        .collect();
    r.state.store.apply(&flood).await.unwrap();
    let get = |q: String| {
        let base = base.clone();
        async move {
            api(reqwest::Method::GET, format!("{base}/v1/audit{q}"), SUPERVISOR)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let early = get("?conversation_id=c-early".into()).await;
    assert_eq!(early["items"].as_array().unwrap().len(), 1, "{early}");
    assert_eq!(early["items"][0]["kind"], "reject");
    assert_eq!(early["next"], Value::Null);
    let first = get("?limit=2".into()).await;
    let ids: Vec<i64> = first["items"].as_array().unwrap().iter().map(|i| i["id"].as_i64().unwrap()).collect();
    assert_eq!(ids.len(), 2);
    assert!(ids[0] > ids[1], "newest first: {ids:?}");
    assert_eq!(first["next"], ids[1]);
    // Walk every page of 1,000.
    let (mut seen, mut after) = (0usize, String::new());
    loop {
        let page = get(format!("?limit=1000{after}")).await;
        seen += page["items"].as_array().unwrap().len();
        match page["next"].as_i64() {
            Some(n) => after = format!("&after={n}"),
            None => break,
        }
    }
    assert_eq!(seen, 5101);
    r.stop().await;
}

/// Security review L2 / M8: an edit longer than the cap is a 413 before the guard runs; past 30
/// blocked edits a minute a token gets 429 and no more `edit_blocked` rows are written.
#[tokio::test]
async fn blocked_edits_are_capped_and_rate_limited() {
    use crate::service::{TOKEN, api};
    let (_d, r) = start(app::ConnLimits::default()).await;
    let base = format!("http://{}", r.addr);
    post_signed(&base, &event("c-rot", "m-rot", "我买的鸡腿刚打开发现都臭了", "tb_buyer_1"), "e1", now(), &secret())
        .await;
    assert!(
        crate::support::wait_until(|| async { count(&r, "SELECT COUNT(*) AS n FROM drafts").await == 1 }, 30).await
    );
    let id =
        r.state.store.select("SELECT id FROM drafts", &[], &[shouhou::store::Col::I("id")]).await.unwrap()[0][0].i();
    let edit = |text: String| {
        let base = base.clone();
        async move {
            api(reqwest::Method::POST, format!("{base}/v1/drafts/{id}/edit"), TOKEN)
                .json(&serde_json::json!({"text": text}))
                .send()
                .await
                .unwrap()
        }
    };
    let res = edit("好".repeat(shouhou::http::MAX_EDIT_CHARS + 1)).await;
    assert_eq!(res.status(), 413);
    assert!(res.json::<Value>().await.unwrap()["error"].as_str().unwrap().contains("at most"));
    for _ in 0..shouhou::http::MAX_BLOCKED_EDITS_PER_MINUTE {
        assert_eq!(edit("我们发出都是有放冰袋不会坏的".into()).await.status(), 422);
    }
    assert_eq!(edit("我们发出都是有放冰袋不会坏的".into()).await.status(), 429);
    assert_eq!(
        count(&r, "SELECT COUNT(*) AS n FROM audit WHERE kind = 'edit_blocked'").await,
        shouhou::http::MAX_BLOCKED_EDITS_PER_MINUTE
    );
    r.stop().await;
}

/// Security review M7: a part-time API token gets what the part-time console shows and no
/// more: a non-FAQ draft is neither in its queue nor readable (403), and calls, promises, the
/// conversation and takeover need an agent; an agent still gets all of it.
#[tokio::test]
async fn part_time_tokens_follow_the_console_rules() {
    use crate::service::{TOKEN, api};
    const PART_TIME: &str = "test-parttime-token-1234";
    let (_d, db) = sqlite_url();
    let mut c = cfg(&db, "http://127.0.0.1:9/send", "h");
    c.api_tokens.insert(PART_TIME.to_owned(), shouhou::domain::role::Role::PartTime);
    let r = crate::support::spawn_app(c).await;
    let base = format!("http://{}", r.addr);
    post_signed(&base, &event("c-rot", "m-rot", "我买的鸡腿刚打开发现都臭了", "tb_buyer_1"), "e1", now(), &secret())
        .await;
    assert!(
        crate::support::wait_until(|| async { count(&r, "SELECT COUNT(*) AS n FROM drafts").await == 1 }, 30).await
    );
    let id =
        r.state.store.select("SELECT id FROM drafts", &[], &[shouhou::store::Col::I("id")]).await.unwrap()[0][0].i();
    let get = |path: String, token: &'static str| {
        let base = base.clone();
        async move { api(reqwest::Method::GET, format!("{base}{path}"), token).send().await.unwrap() }
    };
    let queue: Value = get("/v1/queue".into(), PART_TIME).await.json().await.unwrap();
    assert_eq!(queue["items"].as_array().unwrap().len(), 0, "not an FAQ item: {queue}");
    let queue: Value = get("/v1/queue".into(), TOKEN).await.json().await.unwrap();
    assert_eq!(queue["items"].as_array().unwrap().len(), 1);
    assert_eq!(get(format!("/v1/drafts/{id}"), PART_TIME).await.status(), 403);
    assert_eq!(get(format!("/v1/drafts/{id}"), TOKEN).await.status(), 200);
    for path in ["/v1/calls", "/v1/promises", "/v1/conversations/shop-1/c-rot"] {
        assert_eq!(get(path.into(), PART_TIME).await.status(), 403, "{path}");
        assert_eq!(get(path.into(), TOKEN).await.status(), 200, "{path}");
    }
    let take = api(reqwest::Method::POST, format!("{base}/v1/conversations/shop-1/c-any/takeover"), PART_TIME);
    assert_eq!(take.send().await.unwrap().status(), 403);
    r.stop().await;
}

/// Security review I3: the service settings print no API token and no database password.
#[test]
fn the_service_config_debug_shows_no_secret() {
    let c = cfg("postgres://shouhou:db-password-123@127.0.0.1/x", "http://127.0.0.1:9/send", "h");
    let shown = format!("{c:?}");
    assert!(!shown.contains("db-password-123"), "{shown}");
    assert!(!shown.contains(crate::service::TOKEN) && !shown.contains(crate::service::SUPERVISOR), "{shown}");
    assert!(shown.contains("127.0.0.1/x") && shown.contains("Supervisor"), "{shown}");
}
