//! The HTTP edge of the running binary: every request gets an `x-request-id` (the caller's is
//! kept), each request is logged under it with its path, and never with its query string (the
//! Chatwoot webhook's `?token=` is a credential).

use std::process::Stdio;

use crate::{
    service::{event, now, secret},
    support::{accepting_platform, root, serve_command, sqlite_url, wait_until},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_carry_an_id_and_their_query_is_never_logged() {
    let (dir, db) = sqlite_url();
    let url = accepting_platform().await;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let log_path = dir.path().join("serve.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = serve_command(&root().join("shouhou.toml"))
        .args(["--listen", &format!("127.0.0.1:{port}"), "--database-url", &db, "--platform-url", &url])
        .env("SHOUHOU_SHOP_SECRETS", format!("shop-1={}", secret().to_whsec()))
        .env("RUST_LOG", "shouhou=info")
        .arg("--log-json")
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let up = wait_until(
        || {
            let b = base.clone();
            async move { reqwest::get(format!("{b}/healthz")).await.is_ok() }
        },
        30,
    )
    .await;
    assert!(up, "service up");
    let http = reqwest::Client::new();
    // The caller's id is kept and echoed.
    let r = http.get(format!("{base}/healthz")).header("x-request-id", "req-from-caller-1").send().await.unwrap();
    assert_eq!(r.headers()["x-request-id"], "req-from-caller-1");
    // Without one, the service makes one.
    let r = http.get(format!("{base}/healthz")).send().await.unwrap();
    let made = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(made.len(), 36, "a UUID: {made}");
    // A credential in the query string (as Chatwoot sends `?token=`) stays out of the log.
    let ev = event("c-edge", "m-edge", "什么时候发货", "tb_buyer_1");
    let r = http
        .post(format!("{base}/v1/events?token=secret-in-the-query-4711"))
        .header("x-shouhou-shop", "shop-1")
        .header("x-request-id", "req-with-query-2")
        .header("webhook-id", "edge-1")
        .header("webhook-timestamp", now().to_string())
        .header("webhook-signature", secret().sign("edge-1", now(), ev.as_bytes()))
        .body(ev)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let r = http.post(format!("{base}/v1/chatwoot/shop-1?token=secret-in-the-query-4711")).send().await.unwrap();
    assert_eq!(r.status(), 404, "no Chatwoot adapter configured");
    let logged = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let seen = wait_until(
        || {
            let text = logged();
            async move { text.contains("req-with-query-2") && text.matches("/v1/chatwoot/shop-1").count() >= 1 }
        },
        10,
    )
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    let text = logged();
    assert!(seen, "requests logged with their id and path:\n{text}");
    let line = text.lines().find(|l| l.contains("req-with-query-2")).unwrap();
    assert!(line.contains("/v1/events") && line.contains("202"), "{line}");
    assert!(text.contains(&made), "the made-up id is logged too");
    assert!(!text.contains("secret-in-the-query-4711"), "the query string reached the log:\n{text}");
}
