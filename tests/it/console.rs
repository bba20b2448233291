//! The agent console over real HTTP on 127.0.0.1: every route, with HTML snapshots of the pages
//! (tokens, times and ages normalised), the roles, sessions, CSRF and throttling, the decisions
//! reaching a fake platform, the guard blocking an arguing edit, calls, promises, stats and
//! earned autonomy changing the pipeline's route. Then the browser test: headless Chromium
//! driven by playwright-core (`tests/console/e2e.mjs`) against `shouhou serve --demo`.

use std::{
    collections::HashMap,
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Json, Router, extract::State, routing::post};
use regex::Regex;
use serde_json::{Value, json};
use shouhou::{
    accounts, app as run,
    config::ServiceConfig,
    demo,
    domain::{draft::Assistant, role::Role, sign::Secret},
    store::{Arg, Col, Stmt},
};
use tokio::net::TcpListener;

use crate::support::root;

fn secret() -> Secret {
    Secret::from_bytes(b"0123456789abcdef0123456789abcdef").unwrap()
}

/// A running service with the demo conversations drafted, console users and a fake platform.
struct Env {
    running: run::Running,
    base: String,
    got: Arc<Mutex<Vec<Value>>>,
    _dir: tempfile::TempDir,
}

async fn platform(State(got): State<Arc<Mutex<Vec<Value>>>>, Json(body): Json<Value>) -> &'static str {
    got.lock().unwrap().push(body);
    "ok"
}

/// A config file like the shipped one with `[autonomy]` replaced.
fn config_with(dir: &Path, autonomy: &str) -> std::path::PathBuf {
    let raw = std::fs::read_to_string(root().join("shouhou.toml")).unwrap();
    let cut = raw.find("[autonomy]").expect("shipped config has [autonomy]");
    let p = dir.join("shouhou.toml");
    std::fs::write(&p, format!("{}{autonomy}\n", &raw[..cut])).unwrap();
    p
}

impl Env {
    async fn start() -> Self {
        Self::start_with("[autonomy]\nmin_drafts = 200\nmin_unedited = 0.95").await
    }

    async fn start_with(autonomy: &str) -> Self {
        Self::start_on(None, autonomy).await
    }

    /// On `database_url` (a fresh PostgreSQL database) or, without one, a temporary SQLite file.
    async fn start_on(database_url: Option<String>, autonomy: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let platform_url = format!("http://{}/send", l.local_addr().unwrap());
        let app = Router::new().route("/send", post(platform)).with_state(got.clone());
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        let assistant =
            Assistant::load(&root().join("intents"), &root().join("templates"), &config_with(dir.path(), autonomy))
                .unwrap();
        let cfg = ServiceConfig {
            database_url: database_url.unwrap_or_else(|| format!("sqlite://{}", dir.path().join("t.db").display())),
            platform_url,
            shops: HashMap::from([("shop-1".to_owned(), vec![secret()])]),
            api_tokens: HashMap::new(),
            instance: "t".into(),
            processors: 1,
            rate_per_shop: 200,
            max_send_attempts: 8,
            webhooks: Default::default(),
            websocket: None,
            chatwoot: None,
            tmc: None,
            wecom: None,
        };
        let running = crate::support::spawn_app_with(Arc::new(assistant), cfg).await;
        let base = format!("http://{}", running.addr);
        for (name, role) in demo::DEMO_USERS {
            accounts::upsert_user(&running.state.store, name, &format!("{name}-demo-pass"), role).await.unwrap();
        }
        let env = Self { running, base, got, _dir: dir };
        let mut files: Vec<_> = std::fs::read_dir(root().join("demo/conversations"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .collect();
        files.sort();
        for f in files {
            for line in std::fs::read_to_string(f).unwrap().lines().filter(|l| !l.trim().is_empty()) {
                env.send_event(&shift_to_now(line)).await;
            }
        }
        env
    }

    /// Posts one signed event and waits for its draft (one at a time, so ids are stable).
    async fn send_event(&self, line: &str) {
        let before = self.count("SELECT COUNT(*) AS n FROM drafts").await;
        let ev: Value = serde_json::from_str(line).unwrap();
        let id = format!("e-{}", ev["message_id"].as_str().unwrap());
        let ts = jiff::Timestamp::now().as_second();
        let res = reqwest::Client::new()
            .post(format!("{}/v1/events", self.base))
            .header("x-shouhou-shop", "shop-1")
            .header("webhook-id", &id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", secret().sign(&id, ts, line.as_bytes()))
            .body(line.to_owned())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202);
        for _ in 0..400 {
            if self.count("SELECT COUNT(*) AS n FROM drafts").await > before {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no draft for {id}");
    }

    async fn count(&self, sql: &'static str) -> i64 {
        self.running.state.store.select(sql, &[], &[Col::I("n")]).await.unwrap()[0][0].i()
    }

    async fn draft_id(&self, message_id: &str) -> i64 {
        self.running
            .state
            .store
            .select("SELECT id AS n FROM drafts WHERE message_id = $1", &[Arg::T(message_id.into())], &[Col::I("n")])
            .await
            .unwrap()[0][0]
            .i()
    }

    async fn status(&self, id: i64) -> String {
        self.running
            .state
            .store
            .select("SELECT status FROM drafts WHERE id = $1", &[Arg::I(id)], &[Col::T("status")])
            .await
            .unwrap()[0][0]
            .t()
    }

    async fn audit_kinds(&self) -> Vec<String> {
        self.running
            .state
            .store
            .select("SELECT kind FROM audit ORDER BY id", &[], &[Col::T("kind")])
            .await
            .unwrap()
            .into_iter()
            .map(|r| r[0].t())
            .collect()
    }

    /// Waits until the fake platform has received `n` replies; returns their texts.
    async fn received(&self, n: usize) -> Vec<String> {
        for _ in 0..500 {
            let got = self.got.lock().unwrap().clone();
            if got.len() >= n {
                return got.iter().map(|g| g["text"].as_str().unwrap_or("").to_owned()).collect();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the platform did not receive {n} replies");
    }

    fn anon(&self) -> Client {
        Client { base: self.base.clone(), cookie: String::new(), csrf: String::new(), http: http() }
    }

    /// A client without a session whose requests come from `ip` (a loopback address).
    fn anon_from(&self, ip: &str) -> Client {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .local_address(ip.parse::<std::net::IpAddr>().unwrap())
            .build()
            .unwrap();
        Client { base: self.base.clone(), cookie: String::new(), csrf: String::new(), http }
    }

    async fn login(&self, user: &str) -> Client {
        let mut c = self.anon();
        let (status, headers, _) =
            c.post("/console/login", &[("username", user), ("password", &format!("{user}-demo-pass"))]).await;
        assert_eq!(status, 303, "login as {user}");
        let set = headers.get("set-cookie").unwrap().to_str().unwrap().to_owned();
        c.cookie = set.split(';').next().unwrap().to_owned();
        let (_, page) = c.get("/console/try").await;
        c.csrf = Regex::new(r#"name="csrf" content="([0-9a-f]{64})""#).unwrap().captures(&page).unwrap()[1].to_owned();
        c
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

struct Client {
    base: String,
    cookie: String,
    csrf: String,
    http: reqwest::Client,
}

impl Client {
    async fn get(&self, path: &str) -> (u16, String) {
        let res = self.http.get(format!("{}{path}", self.base)).header("cookie", &self.cookie).send().await.unwrap();
        (res.status().as_u16(), res.text().await.unwrap())
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> (u16, reqwest::header::HeaderMap, String) {
        let body: String = form.iter().map(|(k, v)| format!("{k}={}", url_encode(v))).collect::<Vec<_>>().join("&");
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        let h = res.headers().clone();
        (res.status().as_u16(), h, res.text().await.unwrap())
    }

    /// A form POST carrying the session's CSRF token.
    async fn submit(&self, path: &str, form: &[(&str, &str)]) -> (u16, String, String) {
        let mut f = vec![("csrf", self.csrf.as_str())];
        f.extend_from_slice(form);
        let (s, h, b) = self.post(path, &f).await;
        (s, h.get("location").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default(), b)
    }

    async fn check(&self, draft: i64, text: &str) -> (u16, Value) {
        let res = self
            .http
            .post(format!("{}/console/api/check", self.base))
            .header("cookie", &self.cookie)
            .header("x-csrf-token", &self.csrf)
            .json(&json!({"draft_id": draft, "text": text}))
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
    }
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The page's `<main>` with tokens, times and ages normalised, for snapshots.
fn main_of(html: &str) -> String {
    let start = html.find("<main>").expect("a page with <main>");
    let end = html.find("</main>").expect("a page with </main>") + 7;
    let mut s = html[start..end].to_owned();
    for (re, to) in [
        (r"[0-9a-f]{64}", "[token]"),
        (r#"data-mark="[0-9-]+""#, r#"data-mark="[mark]""#),
        (r"\d{4}-\d\d-\d\d \d\d:\d\d", "[time]"),
        (r"\d{4}-\d\d-\d\d", "[date]"),
        (r">\d\d-\d\d<", ">[md]<"),
        (r">\d+ 分钟<", ">[n] 分钟<"),
        (r"<strong>[0-9.]+ 秒</strong>", "<strong>[s] 秒</strong>"),
        (r#"<span class="secs">[0-9.]+ 秒</span>"#, r#"<span class="secs">[s] 秒</span>"#),
    ] {
        s = Regex::new(re).unwrap().replace_all(&s, to).into_owned();
    }
    s.lines().map(str::trim_end).filter(|l| !l.trim().is_empty()).collect::<Vec<_>>().join("\n")
}

// ---------------------------------------------------------------------------------------------

/// Without a session every page sends the user to the login page; a wrong password is refused
/// with a clear message; the session cookie is HttpOnly and SameSite=Strict; logout ends it.
#[tokio::test]
async fn login_sessions_and_logout() {
    let env = Env::start().await;
    let anon = env.anon();
    for path in ["/console/queue", "/console/drafts/1", "/console/calls", "/console/stats"] {
        let res = anon.http.get(format!("{}{path}", env.base)).send().await.unwrap();
        assert_eq!(res.status(), 303, "{path}");
        assert_eq!(res.headers()["location"], "/console/login");
    }
    let res = anon.http.get(format!("{}/console", env.base)).send().await.unwrap();
    assert_eq!(res.headers()["location"], "/console/queue");
    let (_, page) = anon.get("/console/login").await;
    insta::assert_snapshot!("login", main_of(&page));

    let (status, _, body) = anon.post("/console/login", &[("username", "agent"), ("password", "nope-nope")]).await;
    assert_eq!(status, 401);
    assert!(body.contains("用户名或密码错误"));
    let (status, _, body) =
        anon.post("/console/login", &[("username", "ghost"), ("password", "agent-demo-pass")]).await;
    assert_eq!(status, 401, "unknown users get the same answer");
    assert!(body.contains("用户名或密码错误"));

    let (status, headers, _) =
        anon.post("/console/login", &[("username", "agent"), ("password", "agent-demo-pass")]).await;
    assert_eq!(status, 303);
    let cookie = headers["set-cookie"].to_str().unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains("Path=/console"),
        "{cookie}"
    );
    // The store keeps only a hash of the token.
    let token = cookie.split(';').next().unwrap().split('=').nth(1).unwrap();
    assert_eq!(env.count("SELECT COUNT(*) AS n FROM console_sessions").await, 1);
    let stored = env
        .running
        .state
        .store
        .select("SELECT token_hash FROM console_sessions", &[], &[Col::T("token_hash")])
        .await
        .unwrap();
    assert_ne!(stored[0][0].t(), token);

    let agent = env.login("agent").await;
    let (status, page) = agent.get("/console/queue").await;
    assert_eq!(status, 200);
    assert!(page.contains("agent（售后客服）"));
    let (status, loc, _) = agent.submit("/console/logout", &[]).await;
    assert_eq!((status, loc.as_str()), (303, "/console/login"));
    let (status, _) = agent.get("/console/queue").await;
    assert_eq!(status, 303, "the session ended with the logout");
    assert!(env.audit_kinds().await.contains(&"login".to_owned()));
    env.running.stop().await;
}

/// Wrong passwords from one address: the first two are free, then each attempt waits 1 s, 2 s, …
/// after the last failure (429 before that), and the fifth locks that (name, address) pair for
/// the window, even for the right password; twenty from one address lock the address for every
/// username it never signed in as.
#[tokio::test]
async fn wrong_passwords_are_throttled_per_name_and_address() {
    let env = Env::start().await;
    let anon = env.anon();
    let wrong = |c: &Client, user: String| {
        let c = Client { base: c.base.clone(), cookie: String::new(), csrf: String::new(), http: c.http.clone() };
        async move { c.post("/console/login", &[("username", &user), ("password", "wrong-pass")]).await.0 }
    };
    assert_eq!(wrong(&anon, "agent".to_owned()).await, 401);
    assert_eq!(wrong(&anon, "agent".to_owned()).await, 401);
    assert_eq!(
        wrong(&anon, "agent".to_owned()).await,
        429,
        "the third attempt comes too soon after the second failure"
    );
    for wait in [1, 2, 4] {
        tokio::time::sleep(Duration::from_millis(wait * 1000 + 100)).await;
        assert_eq!(wrong(&anon, "agent".to_owned()).await, 401, "after waiting {wait} s the attempt is checked");
    }
    let (s, _, body) = anon.post("/console/login", &[("username", "agent"), ("password", "agent-demo-pass")]).await;
    assert_eq!(s, 429, "five failures lock the pair");
    assert!(body.contains("登录失败次数过多，请 15 分钟后再试"));
    // Another user from the same address is still fine (5 failures < 20).
    let (s, _, _) =
        anon.post("/console/login", &[("username", "supervisor"), ("password", "supervisor-demo-pass")]).await;
    assert_eq!(s, 303);
    for i in 0..15 {
        assert_eq!(wrong(&anon, format!("u{i}")).await, 401);
    }
    let (s, _, _) = anon.post("/console/login", &[("username", "admin"), ("password", "admin-demo-pass")]).await;
    assert_eq!(s, 429, "twenty failures from one address lock it");
    let (s, _, _) =
        anon.post("/console/login", &[("username", "supervisor"), ("password", "supervisor-demo-pass")]).await;
    assert_eq!(s, 303, "but not for a user who signed in from it before");
    env.running.stop().await;
}

/// Security review M2: wrong passwords from another address do not lock the real user out,
/// neither from the address they signed in from before nor from a new one.
#[tokio::test]
async fn nobody_can_lock_a_user_out_from_elsewhere() {
    let env = Env::start().await;
    let victim = env.anon_from("127.0.0.3");
    let (s, _, _) = victim.post("/console/login", &[("username", "agent"), ("password", "agent-demo-pass")]).await;
    assert_eq!(s, 303);
    let attacker = env.anon_from("127.0.0.2");
    let mut answers = Vec::new();
    for _ in 0..12 {
        let (s, _, _) = attacker.post("/console/login", &[("username", "agent"), ("password", "wrong-pass")]).await;
        answers.push(s);
    }
    assert!(answers.iter().all(|s| [401, 429].contains(s)), "{answers:?}");
    assert!(
        answers.iter().filter(|s| **s == 401).count() <= 2,
        "no more than the free failures in a burst: {answers:?}"
    );
    let (s, _, _) = victim.post("/console/login", &[("username", "agent"), ("password", "agent-demo-pass")]).await;
    assert_eq!(s, 303, "the victim's known address is not locked");
    let fresh = env.anon_from("127.0.0.4");
    let (s, _, _) = fresh.post("/console/login", &[("username", "agent"), ("password", "agent-demo-pass")]).await;
    assert_eq!(s, 303, "nor a new address of theirs");
    env.running.stop().await;
}

/// Security review M1: thirty parallel guesses (the right password among them) are not all
/// checked; the attempt is reserved before the hash, so at most the free failures get a verdict.
#[tokio::test]
async fn parallel_guesses_are_reserved_before_hashing() {
    let env = Env::start().await;
    let attacker = env.anon_from("127.0.0.5");
    let mut tasks = Vec::new();
    for i in 0..30 {
        let c = Client {
            base: attacker.base.clone(),
            cookie: String::new(),
            csrf: String::new(),
            http: attacker.http.clone(),
        };
        let pw = if i == 29 { "agent-demo-pass".to_owned() } else { format!("wrong-{i}") };
        tasks.push(tokio::spawn(async move {
            c.post("/console/login", &[("username", "agent"), ("password", &pw)]).await.0
        }));
    }
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    let checked = answers.iter().filter(|s| **s != 429).count();
    assert!(checked <= 3, "at most the free failures and one more were checked: {answers:?}");
    assert!(answers.iter().filter(|s| **s == 429).count() >= 27, "{answers:?}");
    env.running.stop().await;
}

/// Every POST needs the session's CSRF token (form field or header): missing or wrong is 403
/// and nothing changes.
#[tokio::test]
async fn posts_without_the_csrf_token_are_refused() {
    let env = Env::start().await;
    let agent = env.login("agent").await;
    let id = env.draft_id("c-rot-m1").await;
    let (s, _, body) = agent.post(&format!("/console/drafts/{id}/approve"), &[]).await;
    assert_eq!(s, 403);
    assert!(body.contains("页面已过期"));
    let (s, _, _) = agent.post(&format!("/console/drafts/{id}/approve"), &[("csrf", &"0".repeat(64))]).await;
    assert_eq!(s, 403);
    let other = env.login("supervisor").await;
    let (s, _, _) = agent.post(&format!("/console/drafts/{id}/approve"), &[("csrf", &other.csrf)]).await;
    assert_eq!(s, 403, "another session's token does not do");
    assert_eq!(env.status(id).await, "pending_review");
    let res = agent
        .http
        .post(format!("{}/console/api/check", env.base))
        .header("cookie", &agent.cookie)
        .json(&json!({"text": "好的"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "csrf");
    env.running.stop().await;
}

/// The agents' queue: escalations first, then oldest first; filters by intent, group and shop.
#[tokio::test]
async fn queue_for_agents_with_filters() {
    let env = Env::start().await;
    let agent = env.login("agent").await;
    let (s, page) = agent.get("/console/queue").await;
    assert_eq!(s, 200);
    insta::assert_snapshot!("queue_agent", main_of(&page));
    let ids: Vec<i64> =
        Regex::new(r#"<tr data-id="(\d+)""#).unwrap().captures_iter(&page).map(|c| c[1].parse().unwrap()).collect();
    assert_eq!(ids[0], env.draft_id("c-faq-m2").await, "the escalation comes first");
    assert!(ids[1..].windows(2).all(|w| w[0] < w[1]), "then oldest first: {ids:?}");
    let (_, page) = agent.get("/console/queue?intent=rotten_food").await;
    let n = Regex::new(r#"<tr data-id="#).unwrap().find_iter(&page).count();
    assert_eq!(n, 3, "two rotten-food messages and the traditional-script one (the photo has no intent)");
    let (_, page) = agent.get("/console/queue?group=returns_refunds").await;
    assert!(page.contains("怎么退货呀") && !page.contains("臭了"));
    let (_, page) = agent.get("/console/queue?group=exceptions").await;
    assert!(!page.contains("怎么退货呀") && page.contains("臭了"));
    let (_, page) = agent.get("/console/queue?shop=shop-2").await;
    assert!(page.contains("队列已清空"));
    let (s, rows) = agent.get("/console/queue/rows?intent=wrong_item").await;
    assert_eq!(s, 200);
    assert_eq!(
        Regex::new(r#"<tr data-id="#).unwrap().find_iter(&rows).count(),
        1,
        "only the first wrong-item message names it"
    );
    env.running.stop().await;
}

/// The part-time view: only FAQ-type items, masked receiver data, triage only; no agent pages.
#[tokio::test]
async fn part_time_sees_only_faq_items_masked_and_can_triage() {
    let env = Env::start().await;
    let pt = env.login("parttime").await;
    let (_, page) = pt.get("/console/queue").await;
    insta::assert_snapshot!("queue_part_time", main_of(&page));
    let faq = env.draft_id("c-howto-m1").await;
    assert!(page.contains(&format!("data-id=\"{faq}\"")));
    assert!(!page.contains("臭了") && !page.contains("审核队列"));
    let (s, page) = pt.get(&format!("/console/drafts/{faq}")).await;
    assert_eq!(s, 200);
    insta::assert_snapshot!("draft_part_time", main_of(&page));
    for secret in ["13800000000", "李测试", "测试路1号"] {
        assert!(!page.contains(secret), "part-time saw {secret}");
    }
    assert!(page.contains("138****0000") && page.contains("李**") && page.contains("收货信息已隐藏"));
    assert!(!page.contains("approve-form") && !page.contains("edit-text"), "no decisions for part-time");
    // Receiver data the buyer typed is masked for part-time too.
    let demo = std::fs::read_to_string(root().join("demo/conversations/return_howto_faq.jsonl")).unwrap();
    let mut ev: Value = serde_json::from_str(demo.lines().next().unwrap()).unwrap();
    ev["message_id"] = json!("pt-1");
    // From the family member's account: in this conversation the drafted variant would name the
    // order, so there is no draft and the item waits for review (the variant depends on the
    // conversation id).
    ev["conversation_id"] = json!("c-pt2");
    ev["text"] = json!("怎么退货呀，我是李测试，电话13800000000");
    let line = ev.to_string();
    env.send_event(&line).await;
    let typed = env.draft_id("pt-1").await;
    let (s, page) = pt.get(&format!("/console/drafts/{typed}")).await;
    assert_eq!(s, 200, "{}", env.status(typed).await);
    assert!(page.contains("我是李**，电话138****0000"), "{}", main_of(&page));
    assert!(!page.contains("13800000000") && !page.contains("李测试"));
    let rotten = env.draft_id("c-rot-m1").await;
    for path in [
        format!("/console/drafts/{rotten}"),
        "/console/calls".into(),
        "/console/promises".into(),
        "/console/stats".into(),
        "/console/autonomy".into(),
    ] {
        let (s, body) = pt.get(&path).await;
        assert_eq!(s, 403, "{path}");
        assert!(body.contains("您的角色无权进行此操作"));
    }
    let (s, _, _) = pt.submit(&format!("/console/drafts/{faq}/approve"), &[]).await;
    assert_eq!(s, 403);
    let (s, _) = pt.check(faq, "好的").await;
    assert_eq!(s, 403);
    let (s, _, _) = pt.submit(&format!("/console/drafts/{faq}/triage"), &[("group", "reception")]).await;
    assert_eq!(s, 400);
    let (s, loc, _) = pt.submit(&format!("/console/drafts/{faq}/triage"), &[("group", "returns_refunds")]).await;
    assert_eq!((s, loc), (303, format!("/console/queue?msg=triaged-{faq}")));
    let (_, page) = pt.get("/console/queue").await;
    assert!(!page.contains(&format!("data-id=\"{faq}\"")), "triaged away from reception");
    let agent = env.login("agent").await;
    let (_, page) = agent.get("/console/queue?group=returns_refunds").await;
    assert!(page.contains(&format!("data-id=\"{faq}\"")));
    let (_, page) = agent.get(&format!("/console/drafts/{faq}")).await;
    assert!(page.contains("13800000000"), "agents see the receiver");
    assert!(env.audit_kinds().await.contains(&"triage".to_owned()));
    env.running.stop().await;
}

/// The conversation view: messages, evidence highlighted in the buyer's words, the order card,
/// the case step, the draft and the guard's verdict.
#[tokio::test]
async fn conversation_view_for_agents() {
    let env = Env::start().await;
    let agent = env.login("agent").await;
    let id = env.draft_id("c-rot-m1").await;
    let (s, page) = agent.get(&format!("/console/drafts/{id}")).await;
    assert_eq!(s, 200);
    insta::assert_snapshot!("draft_agent", main_of(&page));
    assert!(page.contains(r#"<mark class="ev" data-intent="rotten_food" title="生鲜变质">臭了</mark>"#));
    let (s, _) = agent.get("/console/drafts/99999").await;
    assert_eq!(s, 404);
    env.running.stop().await;
}

/// Approve sends the draft to the platform; the same draft cannot be decided twice.
#[tokio::test]
async fn approve_sends_to_the_platform() {
    let env = Env::start().await;
    let before = env.got.lock().unwrap().len();
    let agent = env.login("agent").await;
    let id = env.draft_id("c-rot-m1").await;
    let (s, loc, _) = agent.submit(&format!("/console/drafts/{id}/approve"), &[]).await;
    assert_eq!((s, loc.as_str()), (303, format!("/console/queue?msg=approved-{id}").as_str()));
    let texts = env.received(before + 1).await;
    assert!(texts.last().unwrap().contains("冷藏还是冷冻"));
    assert_eq!(env.status(id).await, "approved");
    let (_, page) = agent.get(&format!("/console/queue?msg=approved-{id}")).await;
    assert!(page.contains("已批准并发送草稿"));
    let (s, _, body) = agent.submit(&format!("/console/drafts/{id}/approve"), &[]).await;
    assert_eq!(s, 409);
    assert!(body.contains("已被处理"));
    assert!(env.audit_kinds().await.contains(&"approve".to_owned()));
    env.running.stop().await;
}

/// An arguing edit: the live check marks the span with the reason and a softer wording; the
/// server refuses to send it (the page comes back with the text kept and the span marked).
#[tokio::test]
async fn an_arguing_edit_is_blocked_and_highlighted() {
    let env = Env::start().await;
    let before = env.got.lock().unwrap().len();
    let agent = env.login("agent").await;
    let id = env.draft_id("c-rot-m1").await;
    let arguing = "亲，我们发出都是有放冰袋不会坏的";
    let (s, v) = agent.check(id, arguing).await;
    assert_eq!(s, 200);
    assert_eq!(v["verdict"], "block");
    assert_eq!(v["findings"][0]["rule"], "argue.rebuttal");
    assert!(v["findings"][0]["suggestion"].as_str().unwrap().contains("实在不好意思"));
    let marked: Vec<&str> = v["segments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["hl"].is_string())
        .map(|s| s["t"].as_str().unwrap())
        .collect();
    assert!(marked.concat().contains("不会坏"), "{marked:?}");
    let (s, v) = agent.check(id, "亲，给您添麻烦了，这边马上为您处理。").await;
    assert_eq!((s, v["verdict"].as_str()), (200, Some("pass")));
    // The live check holds diversion and the editor's authority: 30 yuan is beyond an agent's
    // limit and within a supervisor's.
    let (_, v) = agent.check(id, "亲，加我微信 shouhou_test01 发照片给我").await;
    assert_eq!(v["findings"][0]["rule"], "divert.off_platform", "{v}");
    let offer = "给您添麻烦了，给您补偿30元红包可以吗";
    let (_, v) = agent.check(id, offer).await;
    assert_eq!(v["verdict"], "block", "{v}");
    assert_eq!(v["findings"][0]["rule"], "authority.exceeded");
    assert!(v["findings"][0]["message"].as_str().unwrap().contains("agent limit"), "{v}");
    let supervisor = env.login("supervisor").await;
    let (_, v) = supervisor.check(id, offer).await;
    assert_eq!(v["verdict"], "pass", "{v}");

    let (s, _, page) = agent.submit(&format!("/console/drafts/{id}/edit"), &[("text", arguing)]).await;
    assert_eq!(s, 422);
    insta::assert_snapshot!("draft_edit_blocked", main_of(&page));
    assert!(page.contains(r#"<mark class="bad" data-rule="argue.rebuttal">"#));
    assert!(page.contains(r#"id="send-edit" disabled"#));
    assert_eq!(env.status(id).await, "pending_review");
    assert!(env.audit_kinds().await.contains(&"edit_blocked".to_owned()));
    let (s, _, _) = agent.submit(&format!("/console/drafts/{id}/edit"), &[("text", "  ")]).await;
    assert_eq!(s, 400);

    let soft = "亲，给您添麻烦了，这边马上为您处理。";
    let (s, loc, _) = agent.submit(&format!("/console/drafts/{id}/edit"), &[("text", soft)]).await;
    assert_eq!((s, loc), (303, format!("/console/queue?msg=edited-{id}")));
    assert_eq!(env.received(before + 1).await.last().unwrap(), soft);
    assert_eq!(env.status(id).await, "edited");
    env.running.stop().await;
}

/// Reject needs a reason; with one, nothing is sent and the draft is rejected.
#[tokio::test]
async fn reject_needs_a_reason() {
    let env = Env::start().await;
    let agent = env.login("agent").await;
    let id = env.draft_id("c-wrong-m1").await;
    let (s, _, body) = agent.submit(&format!("/console/drafts/{id}/reject"), &[("reason", " ")]).await;
    assert_eq!(s, 400);
    assert!(body.contains("驳回必须填写原因"));
    let (s, loc, _) = agent.submit(&format!("/console/drafts/{id}/reject"), &[("reason", "先核实物流")]).await;
    assert_eq!((s, loc), (303, format!("/console/queue?msg=rejected-{id}")));
    assert_eq!(env.status(id).await, "rejected");
    let reason = env
        .running
        .state
        .store
        .select("SELECT reason FROM drafts WHERE id = $1", &[Arg::I(id)], &[Col::T("reason")])
        .await
        .unwrap();
    assert_eq!(reason[0][0].t(), "先核实物流");
    env.running.stop().await;
}

/// Calls: outside the window the button is disabled with the next allowed time; inside it is
/// enabled; past the attempts it is disabled for good and the server refuses the call.
#[tokio::test]
async fn calls_respect_the_window_and_the_attempts() {
    let env = Env::start().await;
    let agent = env.login("agent").await;
    let (s, page) = agent.get("/console/calls?at=2026-11-25T21:30:00%2B08:00").await;
    assert_eq!(s, 200);
    insta::assert_snapshot!("calls_outside_window", main_of(&page));
    assert!(page.contains(r#"class="primary call-now" disabled"#));
    assert!(page.contains("最早可拨打：<strong>2026-11-26 10:00</strong>"));
    let (_, page) = agent.get("/console/calls?at=2026-11-26T11:00:00%2B08:00").await;
    assert!(page.contains(r#"<button type="submit" class="primary call-now">"#), "enabled inside the window");
    let (s, _) = agent.get("/console/calls?at=yesterday").await;
    assert_eq!(s, 400);
    let id = env.count("SELECT MIN(id) AS n FROM calls").await;
    env.running
        .state
        .store
        .apply(&[Stmt { sql: "UPDATE calls SET attempts = 3 WHERE id = $1", args: vec![Arg::I(id)] }])
        .await
        .unwrap();
    let (_, page) = agent.get("/console/calls?at=2026-11-26T11:00:00%2B08:00").await;
    assert!(page.contains("已达最多拨打次数") && page.contains("不能再拨打此案件"));
    let (s, _, body) = agent.submit(&format!("/console/calls/{id}/call"), &[]).await;
    assert_eq!(s, 409);
    assert!(body.contains("max_attempts"));
    env.running.stop().await;
}

/// Promises: listed with their due time; marking one kept is audited and happens once.
#[tokio::test]
async fn promises_are_listed_and_marked_kept() {
    let env = Env::start().await;
    let agent = env.login("agent").await;
    let (s, page) = agent.get("/console/promises").await;
    assert_eq!(s, 200);
    insta::assert_snapshot!("promises", main_of(&page));
    let id = env.count("SELECT MIN(id) AS n FROM promises").await;
    assert!(id > 0, "the demo makes promises");
    env.running
        .state
        .store
        .apply(&[Stmt { sql: "UPDATE promises SET due_at = 1000 WHERE id = $1", args: vec![Arg::I(id)] }])
        .await
        .unwrap();
    let (_, page) = agent.get("/console/promises").await;
    assert!(page.contains("已逾期"));
    let (s, loc, _) = agent.submit(&format!("/console/promises/{id}/kept"), &[]).await;
    assert_eq!((s, loc), (303, format!("/console/promises?msg=kept-{id}")));
    let (s, _, _) = agent.submit(&format!("/console/promises/{id}/kept"), &[]).await;
    assert_eq!(s, 409);
    let (_, page) = agent.get("/console/promises").await;
    assert!(page.contains("console:agent"));
    assert!(env.audit_kinds().await.contains(&"promise_kept".to_owned()));
    env.running.stop().await;
}

/// Try it: a typed message is classified, its evidence marked, and drafted.
#[tokio::test]
async fn try_it_classifies_and_drafts() {
    let env = Env::start().await;
    let agent = env.login("agent").await;
    let (s, page) = agent.get("/console/try").await;
    assert_eq!(s, 200);
    assert!(page.contains("试一试"));
    let (s, _, page) = agent.submit("/console/try", &[("text", "我买的鸡腿刚打开发现都臭了")]).await;
    assert_eq!(s, 200);
    insta::assert_snapshot!("try", main_of(&page));
    assert!(page.contains(r#"<mark class="ev" title="生鲜变质">臭了</mark>"#));
    env.running.stop().await;
}

/// Stats: rates from the decisions made, per intent and per day, with a chart.
#[tokio::test]
async fn stats_count_decisions() {
    let env = Env::start().await;
    let agent = env.login("agent").await;
    let a = env.draft_id("c-rot-m1").await;
    let b = env.draft_id("c-wrong-m1").await;
    agent.submit(&format!("/console/drafts/{a}/approve"), &[]).await;
    agent.submit(&format!("/console/drafts/{b}/reject"), &[("reason", "重写")]).await;
    env.received(3).await;
    let (s, page) = agent.get("/console/stats").await;
    assert_eq!(s, 200);
    insta::assert_snapshot!("stats", main_of(&page));
    // 13 drafts, 2 automatic; decisions: 1 approved, 1 rejected.
    assert!(page.contains("<span>草稿总数</span><strong>13</strong>"));
    assert!(page.contains("<span>自动化率</span><strong>15.4%</strong>"));
    assert!(
        page.contains("<span>批准率</span><strong>50.0%</strong>")
            || page.contains("<span>批准率</span><strong>50%</strong>")
    );
    assert!(page.contains("<svg class=\"chart\""));
    env.running.stop().await;
}

/// Autonomy is earned: not eligible below the bar (and the page says why); a supervisor turns
/// it on once met, audited; then the pipeline sends that intent's clean drafts on its own.
#[tokio::test]
async fn autonomy_is_earned_and_honoured_by_the_pipeline() {
    let env = Env::start_with("[autonomy]\nmin_drafts = 3\nmin_unedited = 0.6").await;
    let sup = env.login("supervisor").await;
    let agent = env.login("agent").await;
    let (_, page) = sup.get("/console/autonomy").await;
    insta::assert_snapshot!("autonomy_before", main_of(&page));
    assert!(page.contains("样本不足：还需 3 条"));
    let (s, _, body) = sup.submit("/console/autonomy/rotten_food", &[("enabled", "1")]).await;
    assert_eq!(s, 409);
    assert!(body.contains("尚未达到"));
    // Three reviewed rotten-food drafts: two approved unedited, one edited = 66.7% >= 60%.
    for (m, how) in [("c-rot-m1", "approve"), ("c-trad-m1", "approve"), ("c-rot-m2", "edit")] {
        let id = env.draft_id(m).await;
        let (s, _, _) = agent
            .submit(&format!("/console/drafts/{id}/{how}"), &[("text", "亲，给您添麻烦了，这边马上为您处理。")])
            .await;
        assert_eq!(s, 303, "{m}");
    }
    let (s, _, _) = agent.submit("/console/autonomy/rotten_food", &[("enabled", "1")]).await;
    assert_eq!(s, 403, "agents may not switch autonomy");
    let (s, loc, _) = sup.submit("/console/autonomy/rotten_food", &[("enabled", "1")]).await;
    assert_eq!((s, loc.as_str()), (303, "/console/autonomy?msg=on-rotten_food"));
    let (_, page) = sup.get("/console/autonomy").await;
    assert!(page.contains("已达标") && page.contains("已开启"));
    assert!(env.audit_kinds().await.contains(&"autonomy_on".to_owned()));
    let (s, _, _) = sup.submit("/console/autonomy/rotten_food", &[("enabled", "yes")]).await;
    assert_eq!(s, 400);
    let (s, _, _) = sup.submit("/console/autonomy/no_such_intent", &[("enabled", "1")]).await;
    assert_eq!(s, 404);

    // A new rotten-food conversation now goes out without review.
    let sent_before = env.got.lock().unwrap().len();
    let line = json!({"message_id": "auto-1", "shop_id": "shop-1", "conversation_id": "c-auto", "sender": {"account_id": "b9"},
                      "text": "我买的鸡腿刚打开发现都臭了"})
    .to_string();
    env.send_event(&line).await;
    let id = env.draft_id("auto-1").await;
    assert_eq!(env.status(id).await, "auto");
    env.received(sent_before + 1).await;
    // Not a draft whose order data is not current (it names what it needs): that one waits.
    let future = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(5)).to_string();
    let line = json!({"message_id": "auto-needs", "shop_id": "shop-1", "conversation_id": "c-auto-needs",
                      "sender": {"account_id": "b7"}, "text": "我买的鸡腿刚打开发现都臭了",
                      "order": {"order_id": "1", "buyer_account_id": "b7", "status": "signed", "signed_at": future}})
    .to_string();
    env.send_event(&line).await;
    assert_eq!(env.status(env.draft_id("auto-needs").await).await, "pending_review");
    // Off again: the next one waits for review.
    let (s, _, _) = sup.submit("/console/autonomy/rotten_food", &[("enabled", "0")]).await;
    assert_eq!(s, 303);
    let line = json!({"message_id": "auto-2", "shop_id": "shop-1", "conversation_id": "c-auto2", "sender": {"account_id": "b8"},
                      "text": "我买的鸡腿刚打开发现都臭了"})
    .to_string();
    env.send_event(&line).await;
    assert_eq!(env.status(env.draft_id("auto-2").await).await, "pending_review");
    assert!(env.audit_kinds().await.contains(&"autonomy_off".to_owned()));
    env.running.stop().await;
}

/// Live queue: the event stream announces a new draft without a reload.
#[tokio::test]
async fn the_event_stream_announces_new_drafts() {
    let env = Env::start().await;
    let agent = env.login("agent").await;
    let res =
        agent.http.get(format!("{}/console/events", env.base)).header("cookie", &agent.cookie).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let mut res = res;
    let first = String::from_utf8(res.chunk().await.unwrap().unwrap().to_vec()).unwrap();
    assert!(first.contains("event: queue"), "{first}");
    let line = json!({"message_id": "live-1", "shop_id": "shop-1", "conversation_id": "c-live", "sender": {"account_id": "b7"},
                      "text": "我买的鸡腿刚打开发现都臭了"})
    .to_string();
    env.send_event(&line).await;
    let next = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let chunk = String::from_utf8(res.chunk().await.unwrap().unwrap().to_vec()).unwrap();
            if chunk.contains("event: queue") {
                return chunk;
            }
        }
    })
    .await
    .expect("a queue event within 5 s");
    assert_ne!(first, next);
    let anon = env.anon();
    let res = anon.http.get(format!("{}/console/events", env.base)).send().await.unwrap();
    assert_eq!(res.status(), 401);
    drop(res);
    env.running.stop().await;
}

/// Static files and the error page.
#[tokio::test]
async fn static_files_and_unknown_things() {
    let env = Env::start().await;
    let anon = env.anon();
    let res = anon.http.get(format!("{}/console/static/console.css", env.base)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/css; charset=utf-8");
    let res = anon.http.get(format!("{}/console/static/console.js", env.base)).send().await.unwrap();
    assert!(res.text().await.unwrap().contains("EventSource"));
    let res = anon.http.get(format!("{}/console/static/nope.js", env.base)).send().await.unwrap();
    assert_eq!(res.status(), 404);
    let res = anon.http.get(format!("{}/console/nope", env.base)).send().await.unwrap();
    assert_eq!(res.status(), 404, "unknown paths are not sent to the login page");
    let agent = env.login("agent").await;
    let (s, page) = agent.get("/console/drafts/424242").await;
    assert_eq!(s, 404);
    insta::assert_snapshot!("error_not_found", main_of(&page));
    env.running.stop().await;
}

/// The console on PostgreSQL: sign-in, the queue, the conversation view, approve, a blocked
/// edit, the event stream's query, calls, promises, stats and autonomy run on both backends.
#[tokio::test]
async fn console_on_postgres() {
    let Some(url) = crate::support::pg_url().await else { return };
    let env = Env::start_on(Some(url), "[autonomy]\nmin_drafts = 1\nmin_unedited = 0.5").await;
    let agent = env.login("agent").await;
    let (s, page) = agent.get("/console/queue").await;
    assert_eq!(s, 200);
    assert!(page.contains("臭了"));
    let id = env.draft_id("c-rot-m1").await;
    let (s, page) = agent.get(&format!("/console/drafts/{id}")).await;
    assert_eq!(s, 200);
    assert!(page.contains(r#"<mark class="ev""#));
    let (s, _, _) = agent.submit(&format!("/console/drafts/{id}/approve"), &[]).await;
    assert_eq!(s, 303);
    let other = env.draft_id("c-wrong-m1").await;
    let (s, _, _) =
        agent.submit(&format!("/console/drafts/{other}/edit"), &[("text", "亲，我们发出都是有放冰袋不会坏的")]).await;
    assert_eq!(s, 422);
    let mut res =
        agent.http.get(format!("{}/console/events", env.base)).header("cookie", &agent.cookie).send().await.unwrap();
    let first = String::from_utf8(res.chunk().await.unwrap().unwrap().to_vec()).unwrap();
    assert!(first.contains("event: queue"), "{first}");
    drop(res);
    for path in ["/console/calls", "/console/promises", "/console/stats", "/console/autonomy"] {
        let (s, _) = agent.get(path).await;
        assert_eq!(s, 200, "{path}");
    }
    let (_, page) = agent.get("/console/stats").await;
    assert!(page.contains("<span>批准率</span><strong>100.0%</strong>"), "one approval");
    let sup = env.login("supervisor").await;
    let (s, _, _) = sup.submit("/console/autonomy/rotten_food", &[("enabled", "1")]).await;
    assert_eq!(s, 303);
    let pid = env.count("SELECT CAST(MIN(id) AS BIGINT) AS n FROM promises").await;
    let (s, _, _) = agent.submit(&format!("/console/promises/{pid}/kept"), &[]).await;
    assert_eq!(s, 303);
    env.running.stop().await;
}

/// `shouhou user add` creates a user who can log in; a short password or bad role is refused.
#[tokio::test]
async fn cli_user_add() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("u.db").display());
    let bin = env!("CARGO_BIN_EXE_shouhou");
    let run = |args: &[&str], pw: &str| {
        std::process::Command::new(bin).args(args).env("SHOUHOU_USER_PASSWORD", pw).output().unwrap()
    };
    let out = run(&["user", "add", "li.lei", "--role", "agent", "--database-url", &db], "correct-horse-1");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v, json!({"user": "li.lei", "role": "agent", "created": true}));
    let out = run(&["user", "add", "li.lei", "--role", "supervisor", "--database-url", &db], "correct-horse-2");
    assert_eq!(serde_json::from_slice::<Value>(&out.stdout).unwrap()["created"], false);
    let out = run(&["user", "add", "x", "--role", "agent", "--database-url", &db], "short");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 8 characters"));
    let out = run(&["user", "add", "x", "--role", "boss", "--database-url", &db], "long-enough-pw");
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown role `boss`"));
    let store = shouhou::store::Store::connect(&db).await.unwrap();
    let rows = store
        .select(
            "SELECT role, password_hash FROM console_users WHERE username = 'li.lei'",
            &[],
            &[Col::T("role"), Col::T("password_hash")],
        )
        .await
        .unwrap();
    assert_eq!(rows[0][0].t(), "supervisor");
    assert!(rows[0][1].t().starts_with("$argon2id$"));
    let _ = Role::Agent;
}

/// The browser test: `shouhou serve --demo --keep-running` on 127.0.0.1 and
/// `node tests/console/e2e.mjs` driving headless Chromium through the console. It fails when
/// Chromium or the npm package is missing, unless SHOUHOU_SKIP_BROWSER=1 is set (locally only).
#[tokio::test]
async fn browser_end_to_end() {
    let chromium = Path::new("/usr/bin/chromium");
    let modules = root().join("tests/console/node_modules/playwright-core");
    if !chromium.exists() || !modules.exists() {
        if std::env::var("SHOUHOU_SKIP_BROWSER").is_ok_and(|v| v == "1") && std::env::var("CI").is_err() {
            eprintln!(
                "browser test SKIPPED: /usr/bin/chromium or tests/console/node_modules missing (SHOUHOU_SKIP_BROWSER=1)"
            );
            return;
        }
        panic!("the browser test needs /usr/bin/chromium and `npm ci --prefix tests/console` (.ci/run installs both)");
    }
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_shouhou"))
        .args(["serve", "--demo", "--keep-running", "--listen", "127.0.0.1:0"])
        .current_dir(root())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let (mut base, mut received) = (String::new(), String::new());
    let re = Regex::new(r"service on (http://\S+), .*\(list: (http://\S+)\)").unwrap();
    tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(c) = re.captures(&line) {
                base = c[1].trim_end_matches(',').to_owned();
                received = c[2].to_owned();
            }
            if line.starts_with("Running until Ctrl-C") {
                return;
            }
        }
        panic!("the demo ended early");
    })
    .await
    .expect("the demo starts within 60 s");
    // Keep draining the demo's stdout so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let shots = root().join("target/console-screenshots");
    let out = tokio::process::Command::new("node")
        .arg(root().join("tests/console/e2e.mjs"))
        .args([&base, &received, &shots.display().to_string()])
        .output()
        .await
        .unwrap();
    // SIGTERM, so the demo removes its temporary database.
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    let text = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "browser test failed:\n{text}");
    eprintln!("{text}");
}

/// `shouhou validate` loads the console's templates: a page that does not parse or is missing
/// is reported with its file.
#[test]
fn validate_checks_the_console_templates() {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                copy(&e.path(), &to.join(e.file_name()));
            } else {
                std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    copy(&root().join("templates"), dir.path());
    let validate = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_shouhou"))
            .args(["--templates", dir.path().to_str().unwrap(), "validate"])
            .current_dir(root())
            .output()
            .unwrap()
    };
    let out = validate();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("console templates"));
    std::fs::write(dir.path().join("console/queue.html"), "{% for x in %}").unwrap();
    let out = validate();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("queue.html"), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::remove_file(dir.path().join("console/queue.html")).unwrap();
    let out = validate();
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no queue.html"));
}

/// A demo event with every time moved so that the demo's latest moment is now, as `serve
/// --demo` does: the service drafts at the clock, and the demo's orders must stand as written.
fn shift_to_now(line: &str) -> String {
    let latest: jiff::Timestamp = "2026-11-22T20:30:00+08:00".parse().unwrap();
    let mut ev = shouhou::domain::event::InboundEvent::parse(line).unwrap();
    ev.shift_times(jiff::Timestamp::now().duration_since(latest));
    serde_json::to_string(&ev).unwrap()
}
