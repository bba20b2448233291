//! The agent console at `/console`: server-rendered pages (minijinja templates loaded from
//! `<templates>/console/` at start, so wording changes need no rebuild) and a little vanilla JS.
//!
//! Owns console users, sessions, CSRF and login throttling, and the pages: the review queue
//! (live over server-sent events), the conversation view, approve / edit / reject (through the
//! same use cases as the REST API, see [`crate::review`]), the
//! part-time triage view, calls, promises, "try it", stats and per-intent autonomy.
//! It must not: show a part-time user the agents' queue or unmasked receiver data, send a
//! text the guard blocks, or accept a POST without the session's CSRF token.

pub mod auth;
pub mod ops;

use std::{collections::HashMap, path::Path, sync::Arc};

use axum::{
    Extension, Form, Json, Router,
    extract::{Path as UrlPath, Query, Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::{Next, from_fn_with_state},
    response::{
        Html, IntoResponse, Redirect, Response,
        sse::{Event, KeepAlive, Sse},
    },
    routing::{get, post},
};
use jiff::{Timestamp, tz::TimeZone};
use minijinja::Environment;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    domain::{
        mask::{mask_address, mask_in_text, mask_name, mask_phone, may_see_receiver},
        role::Role,
    },
    review::{self, ReviewError},
    state::{AppState, now_ms},
    store::{StoreError, conversations, drafts, inbox},
};
pub use auth::Sess;

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
        .route("/console/login", get(auth::login_page).post(auth::login))
        .route("/console/logout", post(auth::logout))
        .route("/console/static/{name}", get(asset))
        .route("/console/queue", get(queue_page))
        .route("/console/queue/rows", get(queue_rows))
        .route("/console/events", get(events))
        .route("/console/drafts/{id}", get(draft_page))
        .route("/console/drafts/{id}/approve", post(approve))
        .route("/console/drafts/{id}/edit", post(edit))
        .route("/console/drafts/{id}/reject", post(reject))
        .route("/console/drafts/{id}/triage", post(triage))
        .route("/console/api/check", post(check))
        .route("/console/calls", get(ops::calls_page))
        .route("/console/calls/{id}/call", post(ops::call_now))
        .route("/console/promises", get(ops::promises_page))
        .route("/console/promises/{id}/kept", post(ops::promise_kept))
        .route("/console/try", get(ops::try_page).post(ops::try_run))
        .route("/console/stats", get(ops::stats_page))
        .route("/console/autonomy", get(ops::autonomy_page))
        .route("/console/autonomy/{intent}", post(ops::autonomy_set))
        .route_layer(from_fn_with_state(c.clone(), auth::session_layer))
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

/// Unix milliseconds as `YYYY-MM-DD HH:MM` in `tz`.
#[must_use]
pub fn fmt_ms(ms: i64, tz: &TimeZone) -> String {
    Timestamp::from_millisecond(ms)
        .map(|t| t.to_zoned(tz.clone()).strftime("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Highlighting

/// Splits `text` into segments; characters inside a span (character offsets, `[start, end)`)
/// carry that span's label. Overlaps keep the first span's label.
#[must_use]
pub fn segments(text: &str, spans: &[([usize; 2], String)]) -> Vec<Value> {
    let chars: Vec<char> = text.chars().collect();
    let mut label: Vec<Option<&str>> = vec![None; chars.len()];
    for ([a, b], l) in spans {
        for slot in label.iter_mut().take((*b).min(chars.len())).skip(*a) {
            if slot.is_none() {
                *slot = Some(l.as_str());
            }
        }
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let j = (i..chars.len()).find(|&j| label[j] != label[i]).unwrap_or(chars.len());
        out.push(json!({"t": chars[i..j].iter().collect::<String>(), "hl": label[i]}));
        i = j;
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Queue

#[derive(Deserialize, Default)]
struct QueueQuery {
    #[serde(default)]
    intent: String,
    #[serde(default)]
    group: String,
    #[serde(default)]
    shop: String,
    #[serde(default)]
    msg: String,
}

/// Whether a draft is a FAQ-type item a part-time user may see: waiting for review (not
/// escalated), every intent among the shop's `routing.auto_intents`, and not yet handed on.
fn faq_item(c: &Console, d: &Value, triaged: &[i64]) -> bool {
    crate::review::part_time_may_see(c.settings(), d, triaged)
}

async fn queue_items(c: &Console, me: &Sess, q: &QueueQuery) -> Result<Vec<Value>, Fail> {
    let rows = drafts::waiting(&c.shared.store).await?;
    let handed_on = if me.role == Role::PartTime { drafts::triaged(&c.shared.store).await? } else { Vec::new() };
    let now = now_ms();
    let mut items = Vec::new();
    for r in &rows {
        let d = r.to_json();
        if me.role == Role::PartTime && !faq_item(c, &d, &handed_on) {
            continue;
        }
        let intents: Vec<String> =
            d["intents"].as_array().into_iter().flatten().filter_map(|h| h["id"].as_str().map(str::to_owned)).collect();
        if (!q.intent.is_empty() && !intents.contains(&q.intent))
            || (!q.group.is_empty() && d["group"] != q.group.as_str())
            || (!q.shop.is_empty() && d["shop_id"] != q.shop.as_str())
        {
            continue;
        }
        let event = review::answered_event(&c.shared, r).await?;
        let text = event.map(|e| e.text).unwrap_or_default();
        items.push(json!({
            "id": d["id"], "shop_id": d["shop_id"], "conversation_id": d["conversation_id"],
            "status": d["status"], "group": d["group"], "intents": intents,
            "verdict": d["guard"]["verdict"],
            "age_min": (now - r.created_at) / 60_000,
            "created": fmt_ms(r.created_at, c.tz()),
            "snippet": crate::domain::mask_phones(&text.chars().take(60).collect::<String>()),
        }));
    }
    Ok(items)
}

async fn queue_page(
    State(c): State<Arc<Console>>,
    Extension(me): Extension<Sess>,
    Query(q): Query<QueueQuery>,
) -> Page {
    // Taken before the rows, so a draft arriving in between shows up at the first event.
    let mark = queue_mark(&c).await?;
    let items = queue_items(&c, &me, &q).await?;
    let shops: std::collections::BTreeSet<String> =
        items.iter().filter_map(|i| i["shop_id"].as_str().map(str::to_owned)).collect();
    let intents: Vec<&str> = if me.role == Role::PartTime {
        c.settings().auto_intents.clone()
    } else {
        crate::domain::catalog::INTENT_IDS.to_vec()
    };
    c.page(
        "queue.html",
        Some(&me),
        json!({"items": items, "filter": {"intent": q.intent, "group": q.group, "shop": q.shop},
               "intents": intents, "groups": ["reception", "returns_refunds", "exceptions"],
               "shops": shops, "msg": q.msg, "part_time": me.role == Role::PartTime, "mark": mark}),
    )
}

async fn queue_rows(
    State(c): State<Arc<Console>>,
    Extension(me): Extension<Sess>,
    Query(q): Query<QueueQuery>,
) -> Page {
    let items = queue_items(&c, &me, &q).await?;
    c.page("queue_rows.html", Some(&me), json!({"items": items, "part_time": me.role == Role::PartTime}))
}

/// A fingerprint of the drafts waiting for review: it changes whenever one arrives or leaves.
async fn queue_mark(c: &Console) -> Result<String, StoreError> {
    drafts::queue_mark(&c.shared.store).await
}

/// Server-sent events: `queue` whenever the set of drafts waiting for review changes (polled
/// from the store, so it works across instances). Ends on shutdown.
async fn events(State(c): State<Arc<Console>>, Extension(_me): Extension<Sess>) -> Response {
    let shutdown = c.shared.shutdown.clone();
    let stream = futures_util::stream::unfold((c, String::new(), true), move |(c, mut last, mut first)| {
        let shutdown = shutdown.clone();
        async move {
            loop {
                if !first {
                    tokio::select! {
                        () = shutdown.cancelled() => return None,
                        () = tokio::time::sleep(std::time::Duration::from_millis(700)) => {}
                    }
                } else if shutdown.is_cancelled() {
                    return None;
                }
                first = false;
                let mark = queue_mark(&c).await.ok();
                // A store hiccup is retried at the next tick; the page keeps what it shows.
                let Some(mark) = mark else { continue };
                if mark != last {
                    last = mark.clone();
                    let ev = Event::default().event("queue").data(mark);
                    return Some((Ok::<_, std::convert::Infallible>(ev), (c, last, first)));
                }
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default()).into_response()
}

// ---------------------------------------------------------------------------------------------
// Conversation view and decisions

/// Receiver data as the role may see it.
fn order_card(order: Option<&crate::domain::event::Order>, role: Role) -> Value {
    let Some(o) = order else { return Value::Null };
    let open = may_see_receiver(role);
    let rc = o.receiver.clone().unwrap_or_default();
    let show = |v: Option<String>, mask: fn(&str) -> String| v.map(|v| if open { v } else { mask(&v) });
    json!({
        "order_id": o.order_id, "status": o.status, "total": o.total,
        "items": o.items.iter().map(|i| json!({"title": i.title, "sku": i.sku, "price": i.price, "quantity": i.quantity})).collect::<Vec<_>>(),
        "receiver": {"name": show(rc.name, mask_name), "phone": show(rc.phone, mask_phone), "address": show(rc.address, mask_address)},
        "masked": !open,
    })
}

async fn draft_view(c: &Console, me: &Sess, id: i64, edit: Option<(&str, &crate::domain::guard::Verdict)>) -> Page {
    let r = review::load(&c.shared, id).await?;
    let d = r.to_json();
    if me.role == Role::PartTime && !faq_item(c, &d, &drafts::triaged(&c.shared.store).await?) {
        return Err(Fail::forbidden());
    }
    let (shop, conv) = (r.shop_id.clone(), r.conversation_id.clone());
    let msgs = inbox::thread(&c.shared.store, &shop, &conv).await?;
    let mut messages = Vec::new();
    let mut current_event = None;
    for m in &msgs {
        let Ok(ev) = crate::domain::event::InboundEvent::parse(&m.payload) else { continue };
        let is_current = m.seq == r.inbox_seq;
        let spans: Vec<([usize; 2], String)> = if is_current {
            d["intents"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|h| {
                    let id = h["id"].as_str().unwrap_or_default().to_owned();
                    h["evidence"].as_array().cloned().unwrap_or_default().into_iter().filter_map(move |e| {
                        Some(([e["span"][0].as_u64()? as usize, e["span"][1].as_u64()? as usize], id.clone()))
                    })
                })
                .collect()
        } else {
            Vec::new()
        };
        // Part-time staff see only the message the draft answers, with phones and the order's
        // receiver data masked where the buyer typed them (same length, so evidence spans hold).
        if !may_see_receiver(me.role) && !is_current {
            continue;
        }
        let text = if may_see_receiver(me.role) {
            ev.text.clone()
        } else {
            mask_in_text(&crate::domain::mask_phones(&ev.text), ev.order.as_ref().and_then(|o| o.receiver.as_ref()))
        };
        messages.push(json!({
            "current": is_current, "at": fmt_ms(m.received_at, c.tz()), "segments": segments(&text, &spans),
            "attachments": ev.attachments.len(), "reply": m.reply, "reply_status": m.status, "draft_id": m.draft_id,
        }));
        if is_current {
            current_event = Some(ev);
        }
    }
    let order = current_event.as_ref().and_then(|e| e.order.as_ref());
    let case = conversations::get(&c.shared.store, &shop, &conv)
        .await?
        .map(
            |r| json!({"state": serde_json::from_str::<Value>(&r.case_state).unwrap_or(Value::Null), "owner": r.owner}),
        )
        .unwrap_or(Value::Null);
    let reply = d["reply"].as_str().unwrap_or_default().to_owned();
    let findings = d["guard"]["findings"].as_array().cloned().unwrap_or_default();
    let fspans: Vec<([usize; 2], String)> = findings
        .iter()
        .filter_map(|f| {
            Some(([f["span"][0].as_u64()? as usize, f["span"][1].as_u64()? as usize], f["rule"].as_str()?.to_owned()))
        })
        .collect();
    let (edit_text, edit_verdict) = match edit {
        Some((t, v)) => (t.to_owned(), Some(verdict_json(t, v))),
        None => (reply.clone(), None),
    };
    c.page(
        "draft.html",
        Some(me),
        json!({
            "draft": d, "messages": messages, "order": order_card(order, me.role), "case": case,
            "reply_segments": segments(&reply, &fspans), "findings": distinct(findings),
            "open": matches!(d["status"].as_str(), Some("pending_review" | "escalated")),
            "approvable": d["guard"]["verdict"] == "pass" && d["reply"].is_string(),
            "edit_text": edit_text, "edit_verdict": edit_verdict,
            "part_time": me.role == Role::PartTime,
            "created": fmt_ms(r.created_at, c.tz()),
        }),
    )
}

fn verdict_json(text: &str, v: &crate::domain::guard::Verdict) -> Value {
    let spans: Vec<([usize; 2], String)> = v.findings.iter().map(|f| (f.span, f.rule.clone())).collect();
    let findings = serde_json::to_value(&v.findings).unwrap_or_default();
    json!({"verdict": v.verdict, "findings": distinct(findings.as_array().cloned().unwrap_or_default()), "segments": segments(text, &spans)})
}

/// Findings to list: one per rule and wording (the guard reports overlapping matches of a
/// rule separately; the marks show them all, the list needs each reason once).
fn distinct(findings: Vec<Value>) -> Vec<Value> {
    let mut seen = std::collections::HashSet::new();
    findings.into_iter().filter(|f| seen.insert((f["rule"].to_string(), f["suggestion"].to_string()))).collect()
}

async fn draft_page(State(c): State<Arc<Console>>, Extension(me): Extension<Sess>, UrlPath(id): UrlPath<i64>) -> Page {
    draft_view(&c, &me, id, None).await
}

async fn approve(State(c): State<Arc<Console>>, Extension(me): Extension<Sess>, UrlPath(id): UrlPath<i64>) -> Page {
    me.need(Role::Agent)?;
    review::approve(&c.shared, &me.actor(), id).await?;
    Ok(Redirect::to(&format!("/console/queue?msg=approved-{id}")).into_response())
}

#[derive(Deserialize)]
struct EditForm {
    #[serde(default)]
    text: String,
}

async fn edit(
    State(c): State<Arc<Console>>,
    Extension(me): Extension<Sess>,
    UrlPath(id): UrlPath<i64>,
    Form(f): Form<EditForm>,
) -> Page {
    me.need(Role::Agent)?;
    if f.text.trim().is_empty() {
        return Err(Fail::new(StatusCode::BAD_REQUEST, "empty_text", "the reply is empty"));
    }
    match review::edit(&c.shared, &me.actor(), id, &f.text).await {
        Ok(_) => Ok(Redirect::to(&format!("/console/queue?msg=edited-{id}")).into_response()),
        // Blocked: the same page again, the text kept, the offending spans highlighted.
        Err(ReviewError::Blocked(_)) => {
            let r = review::load(&c.shared, id).await?;
            let event = review::answered_event(&c.shared, &r).await?;
            let v = c.shared.assistant.check(&f.text, event.as_ref());
            let mut page = draft_view(&c, &me, id, Some((&f.text, &v))).await?;
            *page.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            Ok(page)
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
struct RejectForm {
    #[serde(default)]
    reason: String,
}

async fn reject(
    State(c): State<Arc<Console>>,
    Extension(me): Extension<Sess>,
    UrlPath(id): UrlPath<i64>,
    Form(f): Form<RejectForm>,
) -> Page {
    me.need(Role::Agent)?;
    if f.reason.trim().is_empty() {
        return Err(Fail::new(StatusCode::BAD_REQUEST, "reason_required", "a rejection needs a reason"));
    }
    review::reject(&c.shared, &me.actor(), id, f.reason.trim()).await?;
    Ok(Redirect::to(&format!("/console/queue?msg=rejected-{id}")).into_response())
}

#[derive(Deserialize)]
struct TriageForm {
    #[serde(default)]
    group: String,
}

/// Moves a waiting draft (and its case) to the returns/refunds or exceptions group.
async fn triage(
    State(c): State<Arc<Console>>,
    Extension(me): Extension<Sess>,
    UrlPath(id): UrlPath<i64>,
    Form(f): Form<TriageForm>,
) -> Page {
    if !matches!(f.group.as_str(), "returns_refunds" | "exceptions") {
        return Err(Fail::new(StatusCode::BAD_REQUEST, "bad_group", "group must be returns_refunds or exceptions"));
    }
    let r = review::load(&c.shared, id).await?;
    if me.role == Role::PartTime && !faq_item(&c, &r.to_json(), &drafts::triaged(&c.shared.store).await?) {
        return Err(Fail::forbidden());
    }
    review::triage(&c.shared, &me.actor(), &r, &f.group).await?;
    Ok(Redirect::to(&format!("/console/queue?msg=triaged-{id}")).into_response())
}

#[derive(Deserialize)]
struct CheckBody {
    draft_id: Option<i64>,
    text: String,
}

/// The live guard check as an agent types: the verdict, its findings and the text in segments.
async fn check(State(c): State<Arc<Console>>, Extension(me): Extension<Sess>, Json(b): Json<CheckBody>) -> Page {
    me.need(Role::Agent)?;
    let event = match b.draft_id {
        Some(id) => {
            let r = review::load(&c.shared, id).await?;
            review::answered_event(&c.shared, &r).await?
        }
        None => None,
    };
    let v = c.shared.assistant.check(&b.text, event.as_ref());
    Ok(Json(verdict_json(&b.text, &v)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A text, its spans, and the (text, label) segments expected.
    type Case<'a> = (&'a str, Vec<([usize; 2], String)>, Vec<(&'a str, Option<&'a str>)>);

    #[test]
    fn spans_cut_the_text_into_labelled_segments() {
        let span = |a: usize, b: usize, l: &str| ([a, b], l.to_owned());
        let table: Vec<Case<'_>> = vec![
            ("abcdef", vec![], vec![("abcdef", None)]),
            ("abcdef", vec![span(1, 3, "x")], vec![("a", None), ("bc", Some("x")), ("def", None)]),
            // Overlaps keep the first span's label.
            ("abcdef", vec![span(0, 4, "x"), span(2, 6, "y")], vec![("abcd", Some("x")), ("ef", Some("y"))]),
            // Spans past the end are cut at the end.
            ("abc", vec![span(2, 9, "x")], vec![("ab", None), ("c", Some("x"))]),
            ("", vec![span(0, 2, "x")], vec![]),
        ];
        for (text, spans, want) in table {
            let got: Vec<(String, Option<String>)> = segments(text, &spans)
                .into_iter()
                .map(|v| (v["t"].as_str().unwrap_or_default().to_owned(), v["hl"].as_str().map(str::to_owned)))
                .collect();
            let want: Vec<(String, Option<String>)> =
                want.into_iter().map(|(t, l)| (t.to_owned(), l.map(str::to_owned))).collect();
            assert_eq!(got, want, "{text:?}");
        }
    }
}
