//! Starting and stopping `shouhou serve`: connect the store, build the [`AppState`], spawn every
//! worker (processors, senders, webhook deliverers, the promise watch, the adapters) in one task
//! tracker, and serve [`router`]: the REST API, the Chatwoot webhook and the console.

use std::{collections::HashMap, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::{Context, Result};
use axum::extract::ConnectInfo;
use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    adapters::{
        chatwoot::{self, Chatwoot},
        tmc,
        websocket::{self, WsLink},
        wecom::{self, Wecom},
    },
    config::ServiceConfig,
    console,
    domain::draft::Assistant,
    http,
    outbound::{
        deliverer, handoff,
        pacer::Pacer,
        platform::{Dispatch, HttpPlatform, Platform},
        sender,
    },
    pipeline,
    state::{AppState, metrics_handle},
    store::Store,
};

/// A running service.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The application state (store, config).
    pub state: Arc<AppState>,
    /// Cancel to stop.
    pub shutdown: CancellationToken,
    server: tokio::task::JoinHandle<()>,
    workers: TaskTracker,
}

impl Running {
    /// Stops accepting, lets work in flight finish (or stay durable), and waits.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.server.await;
        self.workers.wait().await;
    }
}

/// Connects the store, binds `listener`, and starts the HTTP server and the workers.
///
/// # Errors
/// The store cannot be reached or migrated.
pub async fn start(listener: TcpListener, assistant: Arc<Assistant>, cfg: ServiceConfig) -> Result<Running> {
    start_with_limits(listener, assistant, cfg, ConnLimits::default()).await
}

/// How long a client may take to send a request's headers, and how long an idle keep-alive
/// connection stays open (hyper arms the same timer while it waits for the next request).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections served at once; more wait in the listen backlog until one closes. Kept well
/// under the usual 1024 file descriptors, which the store and outbound clients share.
pub const MAX_CONNECTIONS: usize = 512;

/// The connection limits of the HTTP server (docs/service.md "Limits").
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// See [`HEADER_READ_TIMEOUT`].
    pub header_read: Duration,
    /// See [`MAX_CONNECTIONS`].
    pub max_connections: usize,
}

impl Default for ConnLimits {
    fn default() -> Self {
        Self { header_read: HEADER_READ_TIMEOUT, max_connections: MAX_CONNECTIONS }
    }
}

/// [`start`] with other connection limits (tests use short ones).
///
/// # Errors
/// The store cannot be reached or migrated.
pub async fn start_with_limits(
    listener: TcpListener,
    assistant: Arc<Assistant>,
    cfg: ServiceConfig,
    limits: ConnLimits,
) -> Result<Running> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let store = Store::connect(&cfg.database_url)
        .await
        .with_context(|| format!("cannot open the database {}", redact_url(&cfg.database_url)))?;
    let shutdown = CancellationToken::new();
    // Redirects are not followed: a signed webhook or a reply is never re-POSTed somewhere else
    // (Standard Webhooks: a 3xx is a failure).
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("HTTP client")?;
    let http_platform: Arc<dyn Platform> = Arc::new(HttpPlatform { http: http.clone(), url: cfg.platform_url.clone() });
    // Each shop's replies go to the adapter that serves it; the rest to the HTTP platform.
    let mut by_shop: HashMap<String, Arc<dyn Platform>> = HashMap::new();
    let ws_link = cfg.websocket.as_ref().map(|w| Arc::new(WsLink::new(w.reply_timeout)));
    if let (Some(w), Some(link)) = (&cfg.websocket, &ws_link) {
        for shop in &w.shops {
            by_shop.insert(shop.clone(), link.clone());
        }
    }
    if let Some(c) = &cfg.chatwoot {
        let cw: Arc<dyn Platform> = Arc::new(Chatwoot::new(http.clone(), c.clone()));
        for shop in c.accounts.keys() {
            by_shop.insert(shop.clone(), cw.clone());
        }
    }
    let wecom_adapter = match &cfg.wecom {
        Some(c) => Some(Arc::new(Wecom::new(http.clone(), c.clone(), store.clone()).map_err(anyhow::Error::msg)?)),
        None => None,
    };
    if let Some(w) = &wecom_adapter {
        for shop in w.cfg.file.shops.keys() {
            by_shop.insert(shop.clone(), w.clone());
        }
    }
    let platform: Arc<dyn Platform> =
        if by_shop.is_empty() { http_platform } else { Arc::new(Dispatch { by_shop, default: http_platform }) };
    let shared = Arc::new(AppState {
        assistant,
        store,
        cfg,
        metrics: metrics_handle(),
        new_event: tokio::sync::Notify::new(),
        new_send: tokio::sync::Notify::new(),
        new_webhook: tokio::sync::Notify::new(),
        http,
        platform,
        pacer: Pacer::default(),
        shutdown: shutdown.clone(),
    });
    let addr = listener.local_addr()?;
    let app = router(shared.clone(), wecom_adapter.clone());
    let stop = shutdown.clone();
    let server = tokio::spawn(serve(listener, app, stop, limits));
    let workers = spawn_workers(&shared, ws_link, wecom_adapter);
    Ok(Running { addr, state: shared, shutdown, server, workers })
}

/// Accepts connections while fewer than `limits.max_connections` are open and serves each with
/// HTTP/1 (headers within `limits.header_read`, idle keep-alive closed after the same time); on
/// `stop`, stops accepting and lets every connection finish gracefully.
async fn serve(listener: TcpListener, app: axum::Router, stop: CancellationToken, limits: ConnLimits) {
    use hyper_util::{
        rt::{TokioIo, TokioTimer},
        service::TowerToHyperService,
    };
    let open = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let conns = TaskTracker::new();
    loop {
        let permit = tokio::select! {
            p = open.clone().acquire_owned() => p.expect("the connection semaphore is never closed"),
            () = stop.cancelled() => break,
        };
        let (io, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors or similar: wait rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        let svc = TowerToHyperService::new(app.clone().layer(axum::Extension(ConnectInfo(peer))));
        let stop = stop.clone();
        conns.spawn(async move {
            let _permit = permit;
            // HTTP/1 only: its header timer runs from the first byte awaited, where an automatic
            // HTTP/2 detection would first wait, without a deadline, for a silent client's preface.
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read)
                .serve_connection(TokioIo::new(io), svc);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => return,
                () = stop.cancelled() => conn.as_mut().graceful_shutdown(),
            }
            let _ = conn.await;
        });
    }
    conns.close();
    conns.wait().await;
}

/// The error of a 404 for a path no route serves.
pub const NO_SUCH_ROUTE: &str = "no such route";

/// Turns the plain-text and empty error answers of the framework (a 413 from the body limit, a
/// 415 or 422 from the JSON extractor, a 404 or 405 of the router, the 408 of the timeout) into
/// the API's JSON `{"error": …}`. Console pages keep their own HTML.
async fn json_errors(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    use axum::{http::header::CONTENT_TYPE, response::IntoResponse};
    let console = req.uri().path().starts_with("/console");
    let res = next.run(req).await;
    let status = res.status();
    let plain = res.headers().get(CONTENT_TYPE).is_none_or(|v| v.as_bytes().starts_with(b"text/plain"));
    if console || !plain || !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let bytes = axum::body::to_bytes(res.into_body(), 64 * 1024).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes).trim().to_owned();
    let msg = match (text.is_empty(), status) {
        // The router's own 404: no route has this path (a handler's 404 is JSON already).
        (true, axum::http::StatusCode::NOT_FOUND) => NO_SUCH_ROUTE.to_owned(),
        (true, _) => status.canonical_reason().unwrap_or("error").to_lowercase(),
        (false, _) => text,
    };
    (status, axum::Json(serde_json::json!({"error": msg}))).into_response()
}

/// How long a request may take to produce its response (the body of a server-sent event stream
/// is not counted: it starts with the response).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Every route of the service (the REST API, the Chatwoot and WeCom webhooks and the console), each request
/// given an `x-request-id` (kept when the caller sent one, echoed in the response), traced under
/// it, and cut off after [`REQUEST_TIMEOUT`].
pub fn router(shared: Arc<AppState>, wecom: Option<Arc<Wecom>>) -> axum::Router {
    use tower_http::{
        request_id::{PropagateRequestIdLayer, SetRequestIdLayer},
        timeout::TimeoutLayer,
        trace::TraceLayer,
    };
    let trace = TraceLayer::new_for_http()
        .make_span_with(|req: &axum::http::Request<_>| {
            let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
            // The path only: a query string may carry a credential (Chatwoot's `?token=`).
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
        })
        .on_request(())
        .on_response(|res: &axum::http::Response<_>, latency: Duration, _: &tracing::Span| {
            let ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
            tracing::info!(status = res.status().as_u16(), latency_ms = ms, "request done");
        });
    let mut routes = http::router(shared.clone()).merge(chatwoot::router(shared.clone()));
    if let Some(w) = wecom {
        routes = routes.merge(wecom::router(shared.clone(), w));
    }
    routes
        .merge(console::router(shared))
        .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::REQUEST_TIMEOUT, REQUEST_TIMEOUT))
        .layer(axum::middleware::from_fn(json_errors))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(trace)
        .layer(SetRequestIdLayer::x_request_id(RequestIds::new()))
}

/// Request ids shaped like UUIDs: a random prefix drawn once per process, then a counter, so an id
/// costs no system call (a UUID v4 reads the OS random source per request).
#[derive(Clone)]
pub struct RequestIds {
    prefix: u64,
    next: Arc<std::sync::atomic::AtomicU64>,
}

impl RequestIds {
    /// Ids with a fresh random prefix.
    #[must_use]
    pub fn new() -> Self {
        Self { prefix: u64::from_le_bytes(crate::accounts::random_bytes::<8>()), next: Arc::default() }
    }

    /// The `n`th id: `pppppppp-pppp-pppp-nnnn-nnnnnnnnnnnn` in hex (p: prefix, n: counter).
    #[must_use]
    pub fn id(&self, n: u64) -> String {
        let p = self.prefix;
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            p >> 32,
            (p >> 16) & 0xffff,
            p & 0xffff,
            (n >> 48) & 0xffff,
            n & 0xffff_ffff_ffff
        )
    }
}

impl Default for RequestIds {
    fn default() -> Self {
        Self::new()
    }
}

impl tower_http::request_id::MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<tower_http::request_id::RequestId> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        axum::http::HeaderValue::from_str(&self.id(n)).ok().map(tower_http::request_id::RequestId::new)
    }
}

/// A database URL without its password, for messages.
#[must_use]
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(a), Some(b)) if b > a => format!("{}://***@{}", &url[..a], &url[b + 1..]),
        _ => url.to_owned(),
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// Starts every worker in one tracker: processors, senders, webhook deliverers and the promise
/// watch, the TMC client, the websocket adapter, the WeCom puller and the handoff worker. They stop when
/// `shared.shutdown` is cancelled, after finishing the message or send in hand.
pub fn spawn_workers(shared: &Arc<AppState>, ws_link: Option<Arc<WsLink>>, wecom: Option<Arc<Wecom>>) -> TaskTracker {
    let tracker = TaskTracker::new();
    for i in 0..shared.cfg.processors.max(1) {
        let s = shared.clone();
        tracker.spawn(async move { pipeline::processor(s, i).await });
    }
    // Several senders, so one slow platform round trip does not hold up the rest.
    for _ in 0..shared.cfg.processors.max(1) {
        let s = shared.clone();
        tracker.spawn(async move { sender::sender(s).await });
    }
    if !shared.cfg.webhooks.endpoints.is_empty() {
        for _ in 0..2 {
            let s = shared.clone();
            tracker.spawn(async move { deliverer::deliverer(s).await });
        }
    }
    // Without an endpoint nothing would hear of a due promise; a promise is announced once, so
    // the watch waits until there is someone to tell.
    if !shared.cfg.webhooks.endpoints.is_empty() {
        let s = shared.clone();
        tracker.spawn(async move { deliverer::promise_watch(s).await });
    }
    if let Some(opts) = shared.cfg.tmc.clone() {
        tmc::spawn(shared, &tracker, opts);
    }
    if let (Some(w), Some(link)) = (shared.cfg.websocket.clone(), ws_link) {
        tracker.spawn(websocket::run(shared.clone(), w, link));
    }
    if shared.cfg.chatwoot.is_some() || wecom.is_some() {
        tracker.spawn(handoff::handoffs(shared.clone()));
    }
    if let Some(w) = wecom {
        tracker.spawn(wecom::puller(shared.clone(), w));
    }
    tracker.close();
    tracker
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_uuid_shaped_and_distinct() {
        let ids = RequestIds { prefix: 0x0123_4567_89ab_cdef, next: Arc::default() };
        let table = [
            (0, "01234567-89ab-cdef-0000-000000000000"),
            (1, "01234567-89ab-cdef-0000-000000000001"),
            (u64::MAX, "01234567-89ab-cdef-ffff-ffffffffffff"),
        ];
        for (n, want) in table {
            assert_eq!(ids.id(n), want);
        }
        let (a, b) = (RequestIds::new(), RequestIds::new());
        assert_ne!(a.id(0), b.id(0), "each process draws its own prefix");
    }
}
