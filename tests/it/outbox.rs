//! Consumer webhooks over real sockets: a consumer that verifies every delivery with the Python
//! `standardwebhooks` library goes down for a while and comes back; deliveries are retried,
//! dead-lettered and redelivered; two instances on one PostgreSQL share the outbox.

use std::{
    collections::{HashMap, HashSet},
    path::PathBuf,
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{Router, extract::State, http::StatusCode, routing::post};
use serde_json::Value;
use shouhou::{
    app as run,
    domain::sign::Secret,
    outbound::webhooks::{Endpoint, Webhooks},
    store::{Arg, Col},
};
use tokio::{io::AsyncBufReadExt, net::TcpListener};

use crate::{
    service::{SUPERVISOR, api, cfg, count, event, now, pg_skip, pg_url, post_signed, secret, sqlite_url, wait_until},
    support::{root, spawn_app},
};

fn old_key() -> Secret {
    Secret::from_bytes(b"old-consumer-secret-0123456789ab").unwrap()
}

fn new_key() -> Secret {
    Secret::from_bytes(b"new-consumer-secret-0123456789ab").unwrap()
}

/// The Python consumer (`tests/consumer/consumer.py`), verifying with `standardwebhooks`.
struct Consumer {
    child: tokio::process::Child,
    port: u16,
    log: PathBuf,
}

impl Consumer {
    async fn start(port: u16, log: PathBuf, key: &Secret) -> Self {
        let mut child = tokio::process::Command::new("python3")
            .arg(root().join("tests/consumer/consumer.py"))
            .arg(port.to_string())
            .arg(&log)
            .arg(key.to_whsec())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 runs (CI installs the standardwebhooks package)");
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("the consumer starts")
            .unwrap()
            .expect("the consumer prints its port (is `pip install standardwebhooks` done?)");
        Self { child, port: first.trim().parse().unwrap(), log }
    }

    async fn kill(mut self) -> (u16, PathBuf) {
        self.child.kill().await.unwrap();
        (self.port, self.log)
    }

    fn lines(log: &PathBuf) -> Vec<Value> {
        std::fs::read_to_string(log).unwrap_or_default().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }
}

fn endpoint(url: String) -> Endpoint {
    Endpoint { name: "erp".into(), url, events: vec!["*".into()], secrets: vec![old_key(), new_key()] }
}

/// Outbox rows: (id, event_id, type, conversation, status, attempts).
async fn outbox_rows(r: &run::Running) -> Vec<(i64, String, String, String, String, i64)> {
    r.state
        .store
        .select(
            "SELECT id, event_id, event_type, conversation_id, status, attempts FROM outbox ORDER BY id",
            &[],
            &[
                Col::I("id"),
                Col::T("event_id"),
                Col::T("event_type"),
                Col::T("conversation_id"),
                Col::T("status"),
                Col::I("attempts"),
            ],
        )
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r[0].i(), r[1].t(), r[2].t(), r[3].t(), r[4].t(), r[5].i()))
        .collect()
}

const TEXTS: [&str; 4] = ["什么时候发货呀", "我买的鸡腿打开发现都臭了", "好的谢谢", "再不处理我就打12315投诉你们"];

async fn post_round(base: &str, round: usize) {
    for c in 0..4 {
        let body = event(&format!("c{c}"), &format!("c{c}-m{round}"), TEXTS[(c + round) % 4], "tb_buyer_1");
        let r = post_signed(base, &body, &format!("in-{c}-{round}"), now(), &secret()).await;
        assert_eq!(r.status(), 202);
    }
}

async fn consumer_down_and_back_body(db: &str) {
    let dir = tempfile::tempdir().unwrap();
    let consumer = Consumer::start(0, dir.path().join("log.jsonl"), &new_key()).await;
    let mut c = cfg(db, &crate::support::accepting_platform().await, "t");
    c.webhooks = Webhooks {
        endpoints: vec![endpoint(format!("http://127.0.0.1:{}/hooks", consumer.port))],
        retry_schedule_ms: [0, 100, 200, 400].into_iter().chain(std::iter::repeat_n(500, 60)).collect(),
    };
    let r = spawn_app(c).await;
    let base = format!("http://{}", r.addr);

    post_round(&base, 0).await;
    assert!(
        wait_until(
            || async { count(&r, "SELECT COUNT(*) AS n FROM outbox WHERE status = 'delivered'").await >= 8 },
            30
        )
        .await,
        "the first deliveries arrive"
    );

    // The consumer goes down; events keep coming and their deliveries fail.
    let (port, log) = consumer.kill().await;
    post_round(&base, 1).await;
    post_round(&base, 2).await;
    assert!(
        wait_until(
            || async {
                count(&r, "SELECT COUNT(*) AS n FROM outbox WHERE status = 'pending' AND attempts >= 2").await > 0
            },
            30
        )
        .await,
        "deliveries fail and are retried while the consumer is down"
    );

    // It comes back on the same address: everything is delivered.
    let consumer = Consumer::start(port, log.clone(), &new_key()).await;
    assert!(
        wait_until(
            || async {
                count(&r, "SELECT COUNT(*) AS n FROM inbox WHERE status <> 'done'").await == 0
                    && count(&r, "SELECT COUNT(*) AS n FROM sends WHERE status IN ('pending', 'sending')").await == 0
                    && count(&r, "SELECT COUNT(*) AS n FROM outbox WHERE status <> 'delivered'").await == 0
            },
            60
        )
        .await,
        "every event is delivered once the consumer is back"
    );
    let rows = outbox_rows(&r).await;
    let drafts = r
        .state
        .store
        .select("SELECT body FROM outbox WHERE event_type = $1", &[Arg::T("draft.created".into())], &[Col::T("body")])
        .await
        .unwrap();
    assert_eq!(drafts.len(), 12, "one draft.created per message");
    for d in &drafts {
        let body: Value = serde_json::from_str(&d[0].t()).unwrap();
        assert!(body["data"]["draft_id"].as_i64().unwrap() > 0, "draft ids filled in: {body}");
    }
    let calls = r
        .state
        .store
        .select("SELECT body FROM outbox WHERE event_type = $1", &[Arg::T("call.requested".into())], &[Col::T("body")])
        .await
        .unwrap();
    assert!(!calls.is_empty(), "the complaints asked for calls");
    for c in &calls {
        let body: Value = serde_json::from_str(&c[0].t()).unwrap();
        let d = &body["data"];
        assert!(d["script"].as_array().is_some_and(|s| !s.is_empty()), "the call script travels: {body}");
        assert_eq!(d["window"], "10:00-18:00");
        assert_eq!(d["max_attempts"], 3);
        assert_eq!(d["timezone"], "Asia/Shanghai");
        assert!(d["draft_id"].as_i64().unwrap() > 0);
    }
    r.stop().await;
    drop(consumer);

    let lines = Consumer::lines(&log);
    assert!(lines.iter().all(|l| l["verified"] == true), "the library verified every delivery: {lines:?}");
    let types: HashSet<&str> = rows.iter().map(|r| r.2.as_str()).collect();
    for t in ["message.received", "draft.created", "reply.sent", "promise.created", "case.escalated", "call.requested"]
    {
        assert!(types.contains(t), "{t} was emitted: {types:?}");
    }
    assert!(rows.iter().any(|r| r.5 > 1), "some deliveries needed retries");

    // Every event arrived, under one id with one body.
    let mut bodies: HashMap<&str, HashSet<&str>> = HashMap::new();
    for l in &lines {
        bodies.entry(l["id"].as_str().unwrap()).or_default().insert(l["body_sha"].as_str().unwrap());
    }
    let sent: HashSet<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(sent.len(), rows.len(), "one event id per event");
    assert_eq!(bodies.keys().copied().collect::<HashSet<_>>(), sent, "every event delivered, nothing else");
    assert!(bodies.values().all(|b| b.len() == 1), "a retried event carries the same body under the same id");

    // In order per conversation: first arrivals follow the outbox order.
    for conv in ["c0", "c1", "c2", "c3"] {
        let expected: Vec<&str> = rows.iter().filter(|r| r.3 == conv).map(|r| r.1.as_str()).collect();
        let mut seen = HashSet::new();
        let arrived: Vec<&str> = lines
            .iter()
            .filter(|l| l["conversation_id"] == conv)
            .map(|l| l["id"].as_str().unwrap())
            .filter(|id| seen.insert(*id))
            .collect();
        assert_eq!(arrived, expected, "conversation {conv} in order");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_consumer_down_and_back() {
    let (_d, url) = sqlite_url();
    consumer_down_and_back_body(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_consumer_down_and_back() {
    if pg_skip() {
        return;
    }
    consumer_down_and_back_body(&pg_url().await.unwrap()).await;
}

/// A consumer that answers a fixed status (changeable) and counts requests.
async fn scripted_consumer(status: Arc<AtomicUsize>, hits: Arc<AtomicUsize>) -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", l.local_addr().unwrap());
    let app = Router::new()
        .route(
            "/hooks",
            post(|State((status, hits)): State<(Arc<AtomicUsize>, Arc<AtomicUsize>)>| async move {
                hits.fetch_add(1, Ordering::SeqCst);
                let code = StatusCode::from_u16(u16::try_from(status.load(Ordering::SeqCst)).unwrap()).unwrap();
                // A redirect points at a route that would accept: following it would be a bug.
                (code, [("location", "/ok")])
            }),
        )
        .route("/ok", post(|| async { StatusCode::NO_CONTENT }))
        .with_state((status, hits));
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    url
}

/// After the last scheduled attempt a delivery is dead-lettered; the API lists it and redelivers
/// it under the same id. A 410 dead-letters at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letter_and_redeliver() {
    let (_d, db) = sqlite_url();
    // First a redirect (a failure: signed deliveries are never re-POSTed elsewhere).
    let (status, hits) = (Arc::new(AtomicUsize::new(307)), Arc::new(AtomicUsize::new(0)));
    let url = scripted_consumer(status.clone(), hits.clone()).await;
    let mut c = cfg(&db, &crate::support::accepting_platform().await, "t");
    c.webhooks = Webhooks {
        endpoints: vec![Endpoint { events: vec!["message.received".into()], ..endpoint(url) }],
        retry_schedule_ms: vec![0, 50, 50],
    };
    let r = spawn_app(c).await;
    let base = format!("http://{}", r.addr);
    post_signed(&base, &event("c1", "m1", "好的谢谢", "tb_buyer_1"), "in-1", now(), &secret()).await;
    assert!(
        wait_until(|| async { count(&r, "SELECT COUNT(*) AS n FROM outbox WHERE status = 'dead'").await == 1 }, 20)
            .await
    );
    assert_eq!(hits.load(Ordering::SeqCst), 3, "one attempt per schedule entry, then dead");
    assert_eq!(count(&r, "SELECT COUNT(*) AS n FROM outbox").await, 1, "only the subscribed type is written");

    let list: Value = api(reqwest::Method::GET, format!("{base}/v1/webhooks/deliveries?status=dead"), SUPERVISOR)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let item = &list["items"][0];
    assert_eq!(item["type"], "message.received");
    assert_eq!(item["attempts"], 3);
    assert_eq!(item["last_error"], "http 307");
    let event_id = item["event_id"].as_str().unwrap().to_owned();
    let id = item["id"].as_i64().unwrap();

    // Agents may not redeliver; a supervisor may, and the consumer is healthy again.
    let denied =
        api(reqwest::Method::POST, format!("{base}/v1/webhooks/deliveries/{id}/redeliver"), crate::service::TOKEN)
            .send()
            .await
            .unwrap();
    assert_eq!(denied.status(), 403);
    status.store(204, Ordering::SeqCst);
    let ok = api(reqwest::Method::POST, format!("{base}/v1/webhooks/deliveries/{id}/redeliver"), SUPERVISOR)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.json::<Value>().await.unwrap()["was"], "dead", "the answer says what was re-queued");
    assert!(
        wait_until(
            || async { count(&r, "SELECT COUNT(*) AS n FROM outbox WHERE status = 'delivered'").await == 1 },
            20
        )
        .await
    );
    let rows = outbox_rows(&r).await;
    assert_eq!(rows[0].1, event_id, "redelivered under the same webhook-id");
    assert_eq!(
        count(&r, "SELECT COUNT(*) AS n FROM audit WHERE kind = 'webhook_redeliver'").await,
        1,
        "the redelivery is audited"
    );
    let missing = api(reqwest::Method::POST, format!("{base}/v1/webhooks/deliveries/999/redeliver"), SUPERVISOR)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    // 410 Gone: dead at once, no retries.
    status.store(410, Ordering::SeqCst);
    let before = hits.load(Ordering::SeqCst);
    post_signed(&base, &event("c2", "m2", "好的谢谢", "tb_buyer_1"), "in-2", now(), &secret()).await;
    assert!(
        wait_until(|| async { count(&r, "SELECT COUNT(*) AS n FROM outbox WHERE status = 'dead'").await == 1 }, 20)
            .await
    );
    assert_eq!(hits.load(Ordering::SeqCst), before + 1);
    r.stop().await;
}

/// A promise that falls due is announced once, as `promise.due`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promise_due_is_announced_once() {
    let (_d, db) = sqlite_url();
    let mut c = cfg(&db, &crate::support::accepting_platform().await, "t");
    // Nothing listens on port 9: deliveries stay pending, which is all this test needs.
    c.webhooks =
        Webhooks { endpoints: vec![endpoint("http://127.0.0.1:9/hooks".into())], retry_schedule_ms: vec![3_600_000] };
    let r = spawn_app(c).await;
    let base = format!("http://{}", r.addr);
    post_signed(&base, &event("c1", "m1", "什么时候发货呀", "tb_buyer_1"), "in-1", now(), &secret()).await;
    assert!(wait_until(|| async { count(&r, "SELECT COUNT(*) AS n FROM promises").await >= 1 }, 20).await);
    let promises = count(&r, "SELECT COUNT(*) AS n FROM promises").await;
    let later = jiff::Timestamp::now().as_millisecond() + 30 * 86_400_000;
    let first = shouhou::outbound::deliverer::announce_due_promises(&r.state, later).await.unwrap();
    let again = shouhou::outbound::deliverer::announce_due_promises(&r.state, later).await.unwrap();
    assert_eq!((first as i64, again), (promises, 0));
    let due = r
        .state
        .store
        .select("SELECT body FROM outbox WHERE event_type = $1", &[Arg::T("promise.due".into())], &[Col::T("body")])
        .await
        .unwrap();
    assert_eq!(due.len() as i64, promises);
    let body: Value = serde_json::from_str(&due[0][0].t()).unwrap();
    assert_eq!(body["type"], "promise.due");
    assert_eq!(body["data"]["conversation_id"], "c1");
    assert!(body["data"]["draft_id"].as_i64().unwrap() > 0);
    r.stop().await;
}

/// Two instances on one PostgreSQL share the outbox: every event delivered exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_instances_share_the_outbox() {
    if pg_skip() {
        return;
    }
    let db = pg_url().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let consumer = Consumer::start(0, dir.path().join("log.jsonl"), &new_key()).await;
    let platform_url = crate::support::accepting_platform().await;
    let mut instances = Vec::new();
    for name in ["a", "b"] {
        let mut c = cfg(&db, &platform_url, name);
        c.webhooks = Webhooks {
            endpoints: vec![endpoint(format!("http://127.0.0.1:{}/hooks", consumer.port))],
            retry_schedule_ms: vec![0, 100, 100, 100],
        };
        instances.push(spawn_app(c).await);
    }
    for round in 0..3 {
        post_round(&format!("http://{}", instances[round % 2].addr), round).await;
    }
    let r = &instances[0];
    assert!(
        wait_until(
            || async {
                count(r, "SELECT COUNT(*) AS n FROM inbox WHERE status <> 'done'").await == 0
                    && count(r, "SELECT COUNT(*) AS n FROM sends WHERE status IN ('pending', 'sending')").await == 0
                    && count(r, "SELECT COUNT(*) AS n FROM outbox WHERE status <> 'delivered'").await == 0
            },
            60
        )
        .await
    );
    let rows = outbox_rows(r).await;
    for i in instances {
        i.stop().await;
    }
    let lines = Consumer::lines(&consumer.log);
    let mut per_id: HashMap<&str, usize> = HashMap::new();
    for l in &lines {
        *per_id.entry(l["id"].as_str().unwrap()).or_default() += 1;
    }
    assert_eq!(per_id.len(), rows.len());
    assert!(per_id.values().all(|n| *n == 1), "no event delivered twice: {per_id:?}");
}

/// `[webhooks]` in shouhou.toml: defaults and clear errors.
#[test]
fn webhook_config_is_validated() {
    let full = std::fs::read_to_string(root().join("shouhou.toml")).unwrap();
    // The shipped file's own `[webhooks]` table (comments only) is replaced by each case's.
    let base = full.split("\n[webhooks]").next().unwrap().to_owned();
    let parse = |extra: &str| {
        shouhou::config::Settings::parse(std::path::Path::new("shouhou.toml"), &format!("{base}\n{extra}"))
    };
    let ok =
        parse("[webhooks]\n[[webhooks.endpoints]]\nname = \"erp\"\nurl = \"https://erp.example/hooks\"\n").unwrap();
    assert_eq!(ok.webhooks.endpoints[0].events, vec!["*"]);
    assert_eq!(
        ok.webhooks.retry_schedule_ms,
        vec![0, 5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 50_400_000, 72_000_000, 86_400_000],
        "the spec's schedule by default"
    );
    assert!(ok.webhooks.retry_schedule_ms.iter().sum::<i64>() >= 24 * 3_600_000, "retries for at least 24 hours");
    let e = parse("[webhooks]\nretry_schedule = [\"0s\", \"5m\", \"1h\"]\n").unwrap_err();
    assert_eq!(e.key, "webhooks.retry_schedule");
    assert!(e.problem.contains("24 hours"), "{}", e.problem);
    let e = parse("[webhooks]\nretry_schedule = [\"0s\", \"soon\"]\n").unwrap_err();
    assert_eq!(e.key, "webhooks.retry_schedule[1]");
    let e =
        parse("[[webhooks.endpoints]]\nname = \"erp\"\nurl = \"https://x\"\nevents = [\"draft.made\"]\n").unwrap_err();
    assert_eq!(e.key, "webhooks.endpoints[0].events[0]");
    assert!(e.problem.contains("draft.created"), "{}", e.problem);
    let e = parse("[[webhooks.endpoints]]\nname = \"erp\"\nurl = \"ftp://x\"\n").unwrap_err();
    assert_eq!(e.key, "webhooks.endpoints[0].url");
    let e = parse("[[webhooks.endpoints]]\nname = \"a\"\nurl = \"http://x\"\n[[webhooks.endpoints]]\nname = \"a\"\nurl = \"http://y\"\n")
        .unwrap_err();
    assert_eq!(e.key, "webhooks.endpoints[1].name");
    let e = parse("[webhooks]\ncolour = 1\n").unwrap_err();
    assert!(e.problem.contains("colour"), "{}", e.problem);

    // An endpoint without a secret fails at start, naming the variable.
    let err = Webhooks::new(&ok.webhooks, &HashMap::new()).unwrap_err().to_string();
    assert!(err.contains("SHOUHOU_WEBHOOK_SECRETS") && err.contains("erp"), "{err}");
}
