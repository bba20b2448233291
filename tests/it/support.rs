//! Shared helpers: the loaded catalog, paths, and a scratch copy of `intents/` to break.

use std::{
    path::{Path, PathBuf},
    sync::OnceLock,
};

use shouhou::Understanding;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The shipped intents directory.
pub fn intents_dir() -> PathBuf {
    root().join("intents")
}

/// The shipped catalog, loaded once per test binary.
pub fn understanding() -> &'static Understanding {
    static U: OnceLock<Understanding> = OnceLock::new();
    U.get_or_init(|| Understanding::load(&intents_dir()).expect("shipped intents load"))
}

/// Ids of the intents found in `text`.
pub fn ids(text: &str) -> Vec<&'static str> {
    understanding().classify(text).into_iter().map(|h| h.id).collect()
}

/// A writable copy of the shipped intents directory.
pub struct ScratchIntents {
    pub dir: tempfile::TempDir,
}

impl ScratchIntents {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        copy_dir(&intents_dir(), dir.path());
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Replaces `from` with `to` in `file`, asserting `from` was there.
    pub fn edit(&self, file: &str, from: &str, to: &str) {
        let p = self.dir.path().join(file);
        let s = std::fs::read_to_string(&p).expect("read");
        assert!(s.contains(from), "{file} does not contain {from:?}");
        std::fs::write(&p, s.replacen(from, to, 1)).expect("write");
    }

    /// Appends text to `file`.
    pub fn append(&self, file: &str, text: &str) {
        let p = self.dir.path().join(file);
        let mut s = std::fs::read_to_string(&p).unwrap_or_default();
        s.push_str(text);
        std::fs::write(&p, s).expect("write");
    }

    /// Loads it, expecting failure; returns the error.
    pub fn load_err(&self) -> shouhou::domain::LoadError {
        match Understanding::load(self.path()) {
            Ok(_) => panic!("loading should have failed"),
            Err(e) => e,
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("readdir") {
        let entry = entry.expect("entry");
        let dest = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).expect("copy");
        }
    }
}

impl ScratchIntents {
    /// Puts text at the top of `file` (before any table header).
    pub fn prepend(&self, file: &str, text: &str) {
        let p = self.dir.path().join(file);
        let s = std::fs::read_to_string(&p).unwrap_or_default();
        std::fs::write(&p, format!("{text}{s}")).expect("write");
    }
}

/// The shipped assistant (intents, templates, guard, config), loaded once.
pub fn assistant() -> &'static shouhou::domain::draft::Assistant {
    static A: OnceLock<shouhou::domain::draft::Assistant> = OnceLock::new();
    A.get_or_init(|| {
        shouhou::domain::draft::Assistant::load(&intents_dir(), &root().join("templates"), &root().join("shouhou.toml"))
            .unwrap_or_else(|e| panic!("shipped data files load: {e}"))
    })
}

/// The shipped assistant, freshly loaded (for a service to own).
pub fn assistant_owned() -> shouhou::domain::draft::Assistant {
    shouhou::domain::draft::Assistant::load(&intents_dir(), &root().join("templates"), &root().join("shouhou.toml"))
        .unwrap_or_else(|e| panic!("shipped data files load: {e}"))
}

// --- service tests: stores, waiting, a platform -------------------------------------------------

/// Starts the service on a free port of 127.0.0.1 with `cfg` and the shipped data files: the one
/// way the tests start it (stop it with `Running::stop`).
pub async fn spawn_app(cfg: shouhou::config::ServiceConfig) -> shouhou::app::Running {
    spawn_app_with(std::sync::Arc::new(assistant_owned()), cfg).await
}

/// [`spawn_app`] drafting with `assistant` (a test's own data files).
pub async fn spawn_app_with(
    assistant: std::sync::Arc<shouhou::domain::draft::Assistant>,
    cfg: shouhou::config::ServiceConfig,
) -> shouhou::app::Running {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    shouhou::app::start(l, assistant, cfg).await.unwrap()
}

/// A fresh SQLite database file in a temporary directory (kept alive by the `TempDir`).
pub fn sqlite_url() -> (tempfile::TempDir, String) {
    let d = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", d.path().join("t.db").display());
    (d, url)
}

/// Whether PostgreSQL tests are skipped (no `TEST_PG_URL`), with a notice when they are.
pub fn pg_skip() -> bool {
    if std::env::var("TEST_PG_URL").is_err() {
        eprintln!("TEST_PG_URL not set: PostgreSQL test skipped (.ci/run sets it)");
        return true;
    }
    false
}

/// A fresh PostgreSQL database per call when `TEST_PG_URL` is set; `None` (with a notice) otherwise.
pub async fn pg_url() -> Option<String> {
    if pg_skip() {
        return None;
    }
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let base = std::env::var("TEST_PG_URL").ok()?;
    let nanos = u64::from(jiff::Timestamp::now().subsec_nanosecond().unsigned_abs() % 1000);
    let name = format!("shouhou_t{}_{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst) * 1000 + nanos);
    let admin = sqlx::PgPool::connect(&base).await.expect("TEST_PG_URL reachable");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&admin).await.unwrap();
    let (head, _) = base.rsplit_once('/').unwrap();
    Some(format!("{head}/{name}"))
}

/// Polls `f` until it is true or `secs` pass; returns whether it became true.
pub async fn wait_until<F: std::future::Future<Output = bool>>(mut f: impl FnMut() -> F, secs: u64) -> bool {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < end {
        if f().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    false
}

/// `shouhou serve` with the repository's intents and templates and the config `config`;
/// callers add the listen address, the database and the environment of their case.
pub fn serve_command(config: &Path) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_shouhou"));
    c.arg("serve")
        .env("SHOUHOU_INTENTS", root().join("intents"))
        .env("SHOUHOU_TEMPLATES", root().join("templates"))
        .env("SHOUHOU_CONFIG", config);
    c
}

/// A platform on 127.0.0.1 that accepts every reply; returns its send URL.
pub async fn accepting_platform() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/send", l.local_addr().unwrap());
    let app = axum::Router::new().route("/send", axum::routing::post(|| async { "ok" }));
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    url
}
