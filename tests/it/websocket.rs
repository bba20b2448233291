//! The generic websocket client against a fake push endpoint (a tokio-tungstenite server on
//! 127.0.0.1): authentication, acks only after storage, redelivery after a dropped connection
//! and after a SIGKILL of the real binary, malformed frames, replies as reply frames, and a dead
//! peer detected by missing pongs.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use shouhou::{
    adapters::websocket::WsConfig,
    app as run,
    config::ServiceConfig,
    store::{Col, Store},
};
use tokio::{net::TcpListener, sync::mpsc};
use tokio_tungstenite::tungstenite::{
    Message,
    handshake::server::{ErrorResponse, Request, Response},
};

use crate::support::{pg_url, root, sqlite_url, wait_until};

const WS_TOKEN: &str = "test-ws-token-0001";

/// One buyer message the fake endpoint delivers: its frame id and frame text, and the first
/// connection on which it is available.
struct Msg {
    id: String,
    frame: String,
    from_conn: usize,
}

/// What the fake push endpoint does and saw.
#[derive(Default)]
struct State {
    msgs: Vec<Msg>,
    /// Raw text frames pushed first on connection `k`.
    extra: HashMap<usize, Vec<String>>,
    /// Frame id to the number of acks counted.
    acked: HashMap<String, usize>,
    /// Acks for these ids are "lost" once (not counted), so the message is redelivered.
    lose_ack_once: HashSet<String>,
    /// Drop the first connection (no close frame) after this many acks.
    drop_after_acks: Option<usize>,
    /// Never read (so never answer a ping) and push nothing.
    silent: bool,
    /// Time between pushed frames.
    gap: Duration,
    connections: usize,
    unauthorized: usize,
    acks: Vec<Value>,
    errors: Vec<Value>,
    replies: Vec<Value>,
}

#[derive(Clone)]
struct Fake {
    url: String,
    st: Arc<Mutex<State>>,
}

impl Fake {
    async fn start(state: State) -> Self {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/push", l.local_addr().unwrap());
        let st = Arc::new(Mutex::new(state));
        let s = st.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = l.accept().await else { return };
                tokio::spawn(connection(tcp, s.clone()));
            }
        });
        Self { url, st }
    }

    fn acked_all(&self) -> bool {
        let st = self.st.lock().unwrap();
        st.msgs.iter().all(|m| st.acked.get(&m.id).copied().unwrap_or(0) > 0)
    }

    fn acked_count(&self) -> usize {
        self.st.lock().unwrap().acked.values().filter(|n| **n > 0).count()
    }
}

/// The handshake check: the bearer token or 401 (the signature is tungstenite's).
#[allow(clippy::result_large_err)]
fn check(req: &Request, resp: Response) -> Result<Response, ErrorResponse> {
    let ok = req.headers().get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {WS_TOKEN}"));
    if ok {
        Ok(resp)
    } else {
        let mut e = ErrorResponse::new(Some("bad token".into()));
        *e.status_mut() = tokio_tungstenite::tungstenite::http::StatusCode::UNAUTHORIZED;
        Err(e)
    }
}

async fn connection(tcp: tokio::net::TcpStream, st: Arc<Mutex<State>>) {
    let Ok(ws) = tokio_tungstenite::accept_hdr_async(tcp, check).await else {
        st.lock().unwrap().unauthorized += 1;
        return;
    };
    let (k, silent, frames, gap, drop_after) = {
        let mut s = st.lock().unwrap();
        s.connections += 1;
        let k = s.connections;
        let mut frames = s.extra.get(&k).cloned().unwrap_or_default();
        // Every message not yet acknowledged is (re)delivered, in order.
        frames.extend(
            s.msgs
                .iter()
                .filter(|m| m.from_conn <= k && s.acked.get(&m.id).copied().unwrap_or(0) == 0)
                .map(|m| m.frame.clone()),
        );
        (k, s.silent, frames, s.gap, if k == 1 { s.drop_after_acks } else { None })
    };
    if silent {
        // Hold the socket without reading: pings go unanswered.
        tokio::time::sleep(Duration::from_secs(120)).await;
        drop(ws);
        return;
    }
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    let writer = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            if sink.send(m).await.is_err() {
                return;
            }
        }
    });
    let ptx = tx.clone();
    let pusher = tokio::spawn(async move {
        for f in frames {
            if ptx.send(Message::text(f)).is_err() {
                return;
            }
            tokio::time::sleep(gap).await;
        }
    });
    let mut acks_here = 0;
    while let Some(Ok(m)) = stream.next().await {
        let Message::Text(t) = m else { continue };
        let v: Value = serde_json::from_str(t.as_str()).expect("shouhou sends JSON text frames");
        match v["type"].as_str().unwrap_or_default() {
            "ack" => {
                let id = v["id"].as_str().unwrap().to_owned();
                {
                    let mut s = st.lock().unwrap();
                    if !s.lose_ack_once.remove(&id) {
                        *s.acked.entry(id).or_default() += 1;
                    }
                    s.acks.push(v);
                }
                acks_here += 1;
                if drop_after == Some(acks_here) {
                    // Drop mid-stream without a close frame.
                    pusher.abort();
                    writer.abort();
                    return;
                }
            }
            "reply" => {
                let id = v["id"].as_str().unwrap().to_owned();
                st.lock().unwrap().replies.push(v);
                let _ = tx.send(Message::text(json!({"type": "reply_ack", "id": id}).to_string()));
            }
            "error" => st.lock().unwrap().errors.push(v),
            other => panic!("unexpected frame type {other} on connection {k}"),
        }
    }
    pusher.abort();
    writer.abort();
}

fn event(i: usize) -> Value {
    json!({
        "message_id": format!("m-{i}"), "shop_id": "shop-1", "conversation_id": format!("c-{i}"),
        "sender": {"account_id": "tb_buyer_1"}, "sent_at": "2026-11-22T10:15:00+08:00", "text": "什么时候发货",
        "order": {"order_id": "3391228745", "buyer_account_id": "tb_buyer_1", "status": "paid", "total": "199.00",
                  "paid_at": (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(2)).to_string(),
                  "items": [{"title": "羊毛大衣", "category": "apparel", "price": "199.00"}],
                  "receiver": {"name": "测试", "phone": "13800000000", "address": "测试路1号"}}
    })
}

fn message_frame(i: usize) -> Msg {
    let id = format!("d-{i}");
    Msg { frame: json!({"type": "message", "id": id, "event": event(i)}).to_string(), id, from_conn: 1 }
}

fn ws_cfg(url: &str, token: &str) -> WsConfig {
    WsConfig {
        url: url.to_owned(),
        token: token.into(),
        shops: vec!["shop-1".to_owned()],
        ping_interval: Duration::from_secs(1),
        pong_timeout: Duration::from_secs(1),
        reconnect_max: Duration::from_secs(1),
        reply_timeout: Duration::from_secs(5),
    }
}

fn cfg(db: &str, ws: WsConfig) -> ServiceConfig {
    ServiceConfig {
        shops: HashMap::new(),
        max_send_attempts: 20,
        websocket: Some(ws),
        // Nothing listens on the platform URL: every reply must go over the websocket.
        ..crate::service::cfg(db, "http://127.0.0.1:9/unused", "ws")
    }
}

async fn start(db: &str, ws: WsConfig) -> run::Running {
    crate::support::spawn_app(cfg(db, ws)).await
}

async fn count(store: &Store, sql: &'static str) -> i64 {
    store.select(sql, &[], &[Col::I("n")]).await.unwrap()[0][0].i()
}

/// Every reply frame is well formed; returns the distinct idempotency keys, and checks no
/// buyer message was answered under two different keys.
fn check_replies(replies: &[Value]) -> HashSet<String> {
    let mut keys = HashSet::new();
    let mut answered: HashMap<String, String> = HashMap::new();
    for r in replies {
        for k in ["id", "shop_id", "conversation_id", "reply_to", "text"] {
            assert!(r[k].as_str().is_some_and(|s| !s.is_empty()), "reply frame without `{k}`: {r}");
        }
        let key = r["id"].as_str().unwrap().to_owned();
        let to = r["reply_to"].as_str().unwrap().to_owned();
        if let Some(prev) = answered.insert(to.clone(), key.clone()) {
            assert_eq!(prev, key, "message {to} answered twice under different keys");
        }
        keys.insert(key);
    }
    keys
}

/// The peer drops the connection mid-stream (and one ack is lost): after the reconnect the
/// unacknowledged frames are redelivered; every message is stored and drafted once, the
/// redelivered one is acknowledged again as a duplicate, malformed frames get `error` frames and
/// store nothing, and every automatic reply arrives as a `reply` frame.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connection_loses_nothing_and_processes_nothing_twice() {
    let (_d, db) = sqlite_url();
    dropped_connection_body(&db).await;
}

/// The same on PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_dropped_connection_loses_nothing() {
    if let Some(db) = pg_url().await {
        dropped_connection_body(&db).await;
    }
}

async fn dropped_connection_body(db: &str) {
    let n = 30;
    let mut msgs: Vec<Msg> = (0..n).map(message_frame).collect();
    for m in msgs.iter_mut().skip(20) {
        m.from_conn = 2;
    }
    let bad_event = json!({"message_id": "bad-1", "sender": {"account_id": "x"}, "text": "hello"});
    let other_shop = json!({"type": "message", "id": "bad-2", "shop_id": "shop-9", "event": event(99)});
    let fake = Fake::start(State {
        msgs,
        extra: HashMap::from([(
            2,
            vec![
                "this is not json".to_owned(),
                json!({"type": "message", "id": "bad-1", "event": bad_event}).to_string(),
                other_shop.to_string(),
                json!({"type": "shout", "id": "bad-3"}).to_string(),
            ],
        )]),
        lose_ack_once: HashSet::from(["d-3".to_owned()]),
        drop_after_acks: Some(8),
        gap: Duration::from_millis(5),
        ..Default::default()
    })
    .await;
    let r = start(db, ws_cfg(&fake.url, WS_TOKEN)).await;
    let store = r.state.store.clone();

    assert!(wait_until(|| async { fake.acked_all() }, 60).await, "every message acknowledged");
    assert!(
        wait_until(|| async { count(&store, "SELECT COUNT(*) AS n FROM drafts").await == n as i64 }, 60).await,
        "every message drafted"
    );
    let auto = count(&store, "SELECT COUNT(*) AS n FROM sends").await;
    assert_eq!(auto, n as i64, "each FAQ gets an automatic reply");
    assert!(
        wait_until(
            || async { count(&store, "SELECT COUNT(*) AS n FROM sends WHERE status = 'sent'").await == auto },
            60
        )
        .await,
        "every reply delivered and reply_ack'ed"
    );

    assert_eq!(count(&store, "SELECT COUNT(*) AS n FROM inbox").await, n as i64, "stored once each");
    assert_eq!(
        count(&store, "SELECT COUNT(DISTINCT inbox_seq) AS n FROM drafts").await,
        n as i64,
        "processed once each"
    );
    assert_eq!(
        count(&store, "SELECT COUNT(*) AS n FROM inbox WHERE message_id LIKE 'bad-%' OR message_id = 'm-99'").await,
        0
    );

    {
        let st = fake.st.lock().unwrap();
        assert!(st.connections >= 2, "reconnected after the drop");
        assert!(
            st.acks.iter().any(|a| a["id"] == "d-3" && a["duplicate"] == true),
            "the redelivered frame is acknowledged again as a duplicate: {:?}",
            st.acks.iter().filter(|a| a["id"] == "d-3").collect::<Vec<_>>()
        );
        for a in &st.acks {
            assert_eq!(a["message_id"].as_str().unwrap(), a["id"].as_str().unwrap().replace("d-", "m-"));
        }
        let reasons: Vec<String> = st.errors.iter().map(|e| e["reason"].as_str().unwrap_or("").to_owned()).collect();
        assert!(reasons.iter().any(|r| r.starts_with("not JSON")), "{reasons:?}");
        assert!(
            st.errors.iter().any(|e| e["id"] == "bad-1" && e["reason"].as_str().unwrap().contains("conversation_id")),
            "{reasons:?}"
        );
        assert!(
            st.errors.iter().any(|e| e["id"] == "bad-2" && e["reason"].as_str().unwrap().contains("shop-9")),
            "{reasons:?}"
        );
        assert!(st.errors.iter().any(|e| e["id"] == "bad-3"), "{reasons:?}");
        assert!(st.errors.iter().all(|e| e["retry"] == false), "malformed frames are not worth retrying");
        assert!(
            !st.acks.iter().any(|a| a["id"].as_str().unwrap().starts_with("bad-")),
            "a malformed frame is not acked"
        );

        let keys = check_replies(&st.replies);
        assert_eq!(keys.len(), n, "one reply per message, each with its idempotency key");
    }
    r.stop().await;
}

/// A peer that stops answering pings is dropped and the client connects again; a wrong token
/// is refused at the handshake, retried with backoff, and nothing gets in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_peer_is_detected_and_a_bad_token_is_refused() {
    let silent = Fake::start(State { silent: true, ..Default::default() }).await;
    let (_d, db) = sqlite_url();
    let r = start(&db, ws_cfg(&silent.url, WS_TOKEN)).await;
    // ping every 1 s, 1 s to answer: a dead peer is noticed within about 2 s, then backoff.
    assert!(
        wait_until(|| async { silent.st.lock().unwrap().connections >= 2 }, 10).await,
        "reconnected after the pongs stopped"
    );
    r.stop().await;

    let fake = Fake::start(State { msgs: vec![message_frame(0)], ..Default::default() }).await;
    let (_d2, db2) = sqlite_url();
    let r = start(&db2, ws_cfg(&fake.url, "wrong-token")).await;
    assert!(wait_until(|| async { fake.st.lock().unwrap().unauthorized >= 2 }, 10).await, "refused, then retried");
    assert_eq!(fake.st.lock().unwrap().connections, 0);
    assert_eq!(count(&r.state.store, "SELECT COUNT(*) AS n FROM inbox").await, 0);
    r.stop().await;
}

/// SIGKILL the real `shouhou serve` mid-stream and start it again: the endpoint redelivers
/// what was not acknowledged; every message is processed once and answered once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_service_loses_nothing_over_websocket() {
    use std::process::Stdio;
    let n = 60;
    let fake = Fake::start(State {
        msgs: (0..n).map(message_frame).collect(),
        gap: Duration::from_millis(15),
        ..Default::default()
    })
    .await;
    let (dir, db) = sqlite_url();
    let config = dir.path().join("shouhou.toml");
    let base = std::fs::read_to_string(root().join("shouhou.toml")).unwrap();
    std::fs::write(
        &config,
        format!(
            "{base}\n[websocket]\nurl = \"{}\"\nshops = [\"shop-1\"]\nping_interval_secs = 1\npong_timeout_secs = 2\nreconnect_max_secs = 1\n",
            fake.url
        ),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let log_path = dir.path().join("serve.log");
    let spawn = || {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).unwrap();
        crate::support::serve_command(&config)
            .args(["--listen", &format!("127.0.0.1:{port}"), "--database-url", &db, "--log-json"])
            .env("SHOUHOU_WS_TOKEN", WS_TOKEN)
            .env_remove("SHOUHOU_SHOP_SECRETS")
            .env("RUST_LOG", "shouhou=debug")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap()
    };
    let mut child = spawn();
    assert!(wait_until(|| async { fake.acked_count() >= 15 }, 60).await, "the first messages are acknowledged");
    child.kill().unwrap();
    child.wait().unwrap();
    let acked_before = fake.acked_count();
    assert!(acked_before < n, "killed mid-stream ({acked_before} of {n} acknowledged)");
    child = spawn();
    assert!(wait_until(|| async { fake.acked_all() }, 60).await, "every message acknowledged after the restart");

    let store = Store::connect(&db).await.unwrap();
    assert!(
        wait_until(
            || async { count(&store, "SELECT COUNT(*) AS n FROM sends WHERE status = 'sent'").await == n as i64 },
            60
        )
        .await,
        "every message answered"
    );
    assert_eq!(count(&store, "SELECT COUNT(*) AS n FROM inbox").await, n as i64);
    assert_eq!(count(&store, "SELECT COUNT(*) AS n FROM drafts").await, n as i64, "no message processed twice");
    let replies = fake.st.lock().unwrap().replies.clone();
    let keys = check_replies(&replies);
    assert_eq!(keys.len(), n, "one reply per message");
    eprintln!(
        "websocket kill test: {n} messages, {acked_before} acknowledged before SIGKILL, {} connections, {} reply frames for {} replies",
        fake.st.lock().unwrap().connections,
        replies.len(),
        keys.len()
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let log = std::fs::read_to_string(&log_path).unwrap();
    for secret in ["13800000000", "测试路1号", "什么时候发货"] {
        assert!(!log.contains(secret), "the log contains buyer data {secret}");
    }
    drop(dir);
}

/// Reconnection delays double from 0.5 s up to the cap, each jittered within the upper half of
/// its step, and are not all the same.
#[test]
fn backoff_doubles_with_jitter_up_to_the_cap() {
    use shouhou::adapters::websocket::backoff;
    let max = Duration::from_secs(30);
    for (n, step_ms) in [(1, 500), (2, 1000), (3, 2000), (6, 16_000), (7, 30_000), (40, 30_000)] {
        for _ in 0..50 {
            let d = backoff(n, max).as_millis();
            assert!((step_ms / 2..=step_ms).contains(&d), "attempt {n}: {d} ms outside [{}, {step_ms}]", step_ms / 2);
        }
    }
    let spread: HashSet<u128> = (0..50).map(|_| backoff(6, max).as_millis()).collect();
    assert!(spread.len() > 10, "jittered: {spread:?}");
}
