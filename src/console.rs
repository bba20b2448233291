//! The agent console at `/console`: server-rendered pages (minijinja templates loaded from
//! `<templates>/console/` at start, so wording changes need no rebuild) and a little vanilla JS.
//!
//! Owns console users, sessions, CSRF and login throttling, and the pages: the review queue
//! (live over server-sent events), the conversation view, approve / edit / reject (through the
//! same use cases as the REST API, see [`crate::review`]), the
//! part-time triage view, calls, promises, "try it", stats and per-intent autonomy.
//! Pages live in `queue` (the queue and its live events), `draft` (the conversation view and the
//! decisions), `ops` (calls, promises, try it, stats, autonomy) and `session` (users, sessions,
//! CSRF, the login throttle); `view` has what they show.
//! It must not: show a part-time user the agents' queue or unmasked receiver data, send a
//! text the guard blocks, or accept a POST without the session's CSRF token.

pub mod draft;
pub mod ops;
pub mod queue;
pub mod session;
pub mod view;

use std::{collections::HashMap, path::Path, sync::Arc};

use axum::{
    Json, Router,
    extract::{Path as UrlPath, Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::{Next, from_fn_with_state},
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
};
use jiff::tz::TimeZone;
use minijinja::Environment;
use serde_json::{Value, json};

use crate::{domain::role::Role, review::ReviewError, state::AppState, store::StoreError};
pub use session::Sess;
pub use view::{fmt_ms, segments};

/// The console's state: the service's shared state and the loaded pages.
pub struct Console {
    /// What every handler shares.
    pub shared: Arc<AppState>,
    /// The templates, or why they failed to load (every page then answers 500 saying so).
    env: Result<Environment<'static>, String>,
    /// `console.css` and `console.js`, served as they were at start.
    assets: HashMap<&'static str, String>,
}

impl Console {
    /// Loads the pages from `<templates>/console/`.
    fn load(shared: Arc<AppState>) -> Self {
        let dir = shared.assistant.templates_dir.join("console");
        let mut assets = HashMap::new();
        for name in ["console.css", "console.js"] {
            if let Ok(s) = std::fs::read_to_string(dir.join(name)) {
                assets.insert(name, s);
            }
        }
        let env = load_env(&dir);
        if let Err(e) = &env {
            tracing::error!(error = %e, "console templates failed to load");
        }
        Self { shared, env, assets }
    }

    /// Renders page `name` with `ctx` plus the signed-in user.
    fn page(&self, name: &str, me: Option<&Sess>, mut ctx: Value) -> Result<Response, Fail> {
        let env = self.env.as_ref().map_err(|e| Fail::new(StatusCode::INTERNAL_SERVER_ERROR, "templates", e))?;
        if let (Some(me), Some(obj)) = (me, ctx.as_object_mut()) {
            obj.insert(
                "me".into(),
                json!({"username": me.username, "role": me.role.name(), "csrf": me.csrf,
                       "agent": me.role >= Role::Agent, "supervisor": me.role >= Role::Supervisor}),
            );
        }
        let html = env
            .get_template(name)
            .and_then(|t| t.render(minijinja::Value::from(minijinja::value::Serde(&ctx))))
            .map_err(|e| {
                // Display only: the alternate form dumps the context, buyer data included.
                tracing::error!(page = name, error = %e, "console page failed to render");
                Fail::new(StatusCode::INTERNAL_SERVER_ERROR, "templates", format!("{name}: {e}"))
            })?;
        Ok(Html(html).into_response())
    }

    fn settings(&self) -> &crate::domain::policy::Policy {
        &self.shared.assistant.settings
    }

    fn tz(&self) -> &TimeZone {
        &self.settings().timezone
    }
}

/// Loads the console's templates from `dir` (`<templates>/console`) and checks every page is
/// there; returns how many templates loaded (`shouhou validate` calls this).
///
/// # Errors
/// An unreadable directory or file, a template that does not parse, a missing page.
pub fn check_templates(dir: &Path) -> Result<usize, String> {
    load_env(dir).map(|env| env.templates().count())
}

fn load_env(dir: &Path) -> Result<Environment<'static>, String> {
    let mut env = Environment::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut n = 0;
    for e in entries.filter_map(Result::ok) {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "html") {
            let name = p.file_name().and_then(|s| s.to_str()).unwrap_or_default().to_owned();
            let src = std::fs::read_to_string(&p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
            env.add_template_owned(name.clone(), src).map_err(|e| format!("{}: {e}", p.display()))?;
            n += 1;
        }
    }
    for needed in PAGES {
        env.get_template(needed).map_err(|_| format!("{} has no {needed}", dir.display()))?;
    }
    tracing::debug!(templates = n, "console templates loaded");
    Ok(env)
}

/// The templates every console start needs.
const PAGES: [&str; 10] = [
    "login.html",
    "queue.html",
    "draft.html",
    "calls.html",
    "promises.html",
    "try.html",
    "stats.html",
    "autonomy.html",
    "error.html",
    "queue_rows.html",
];

/// The console's routes under `/console`.
pub fn router(shared: Arc<AppState>) -> Router {
    let c = Arc::new(Console::load(shared));
    Router::new()
        .route("/console", get(|| async { Redirect::to("/console/queue") }))
        .route("/console/", get(|| async { Redirect::to("/console/queue") }))
        .route("/console/login", get(session::login_page).post(session::login))
        .route("/console/logout", post(session::logout))
        .route("/console/static/{name}", get(asset))
        .route("/console/queue", get(queue::queue_page))
        .route("/console/queue/rows", get(queue::queue_rows))
        .route("/console/events", get(queue::events))
        .route("/console/drafts/{id}", get(draft::draft_page))
        .route("/console/drafts/{id}/approve", post(draft::approve))
        .route("/console/drafts/{id}/edit", post(draft::edit))
        .route("/console/drafts/{id}/reject", post(draft::reject))
        .route("/console/drafts/{id}/triage", post(draft::triage))
        .route("/console/api/check", post(draft::check))
        .route("/console/calls", get(ops::calls_page))
        .route("/console/calls/{id}/call", post(ops::call_now))
        .route("/console/promises", get(ops::promises_page))
        .route("/console/promises/{id}/kept", post(ops::promise_kept))
        .route("/console/try", get(ops::try_page).post(ops::try_run))
        .route("/console/stats", get(ops::stats_page))
        .route("/console/autonomy", get(ops::autonomy_page))
        .route("/console/autonomy/{intent}", post(ops::autonomy_set))
        .route_layer(from_fn_with_state(c.clone(), session::session_layer))
        .route_layer(from_fn_with_state(c.clone(), render_fail))
        .with_state(c)
}

/// A console failure: a status, a key the error page words in Chinese, and an English detail.
#[derive(Debug, Clone)]
pub struct Fail {
    status: StatusCode,
    key: &'static str,
    detail: String,
}

impl Fail {
    fn new(status: StatusCode, key: &'static str, detail: impl Into<String>) -> Self {
        Self { status, key, detail: detail.into() }
    }

    fn forbidden() -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", "this role may not do that")
    }
}

impl IntoResponse for Fail {
    fn into_response(self) -> Response {
        // Rendered by `render_fail`, which has the templates (the axum error-handling pattern).
        let mut r = self.status.into_response();
        r.extensions_mut().insert(self);
        r
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store error in a console request");
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "store", "the store is unavailable; retry later")
    }
}

impl From<ReviewError> for Fail {
    fn from(e: ReviewError) -> Self {
        let (status, key) = match &e {
            ReviewError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ReviewError::Decided(_) | ReviewError::DecidedMeanwhile | ReviewError::NotWaiting => {
                (StatusCode::CONFLICT, "conflict")
            }
            ReviewError::NoText | ReviewError::Blocked(_) => (StatusCode::UNPROCESSABLE_ENTITY, "blocked"),
            ReviewError::EmptyReason => (StatusCode::BAD_REQUEST, "bad_request"),
            // The channel's reply budget (WeCom Kf) allows no more replies now.
            ReviewError::OverBudget(_) => (StatusCode::CONFLICT, "budget_spent"),
            ReviewError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "store"),
        };
        match e {
            ReviewError::Store(e) => e.into(),
            e => Self::new(status, key, e.to_string()),
        }
    }
}

type Page = Result<Response, Fail>;

async fn render_fail(State(c): State<Arc<Console>>, req: Request, next: Next) -> Response {
    let api = req.uri().path().starts_with("/console/api/");
    let res = next.run(req).await;
    let Some(f) = res.extensions().get::<Fail>().cloned() else { return res };
    if api {
        return (f.status, Json(json!({"error": f.key, "detail": f.detail}))).into_response();
    }
    let me = res.extensions().get::<Sess>().cloned();
    match c.page("error.html", me.as_ref(), json!({"key": f.key, "detail": f.detail, "status": f.status.as_u16()})) {
        Ok(mut page) => {
            *page.status_mut() = f.status;
            page
        }
        Err(_) => (f.status, format!("{}: {}", f.key, f.detail)).into_response(),
    }
}

async fn asset(State(c): State<Arc<Console>>, UrlPath(name): UrlPath<String>) -> Response {
    let kind = if name.ends_with(".css") { "text/css; charset=utf-8" } else { "text/javascript; charset=utf-8" };
    match c.assets.get(name.as_str()) {
        Some(body) => ([(header::CONTENT_TYPE, HeaderValue::from_static(kind))], body.clone()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
