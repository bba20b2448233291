//! Starting and stopping `shouhou serve`: connect the store, build the [`AppState`], spawn every
//! worker (processors, senders, webhook deliverers, the promise watch, the adapters) in one task
//! tracker, and serve [`router`]: the REST API, the Chatwoot webhook and the console.

use std::{collections::HashMap, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::{Context, Result};
use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    adapters::{
        chatwoot::{self, Chatwoot},
        tmc,
        websocket::{self, WsLink},
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
    let app = router(shared.clone());
    let stop = shutdown.clone();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
    });
    let workers = spawn_workers(&shared, ws_link);
    Ok(Running { addr, state: shared, shutdown, server, workers })
}

/// How long a request may take to produce its response (the body of a server-sent event stream
/// is not counted: it starts with the response).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Every route of the service (the REST API, the Chatwoot webhook and the console), each request
/// given an `x-request-id` (kept when the caller sent one, echoed in the response), traced under
/// it, and cut off after [`REQUEST_TIMEOUT`].
pub fn router(shared: Arc<AppState>) -> axum::Router {
    use tower_http::{
        request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
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
    http::router(shared.clone())
        .merge(chatwoot::router(shared.clone()))
        .merge(console::router(shared))
        .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::REQUEST_TIMEOUT, REQUEST_TIMEOUT))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(trace)
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
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
/// watch, the TMC client, the websocket adapter and the handoff worker. They stop when
/// `shared.shutdown` is cancelled, after finishing the message or send in hand.
pub fn spawn_workers(shared: &Arc<AppState>, ws_link: Option<Arc<WsLink>>) -> TaskTracker {
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
    if shared.cfg.chatwoot.is_some() {
        tracker.spawn(handoff::handoffs(shared.clone()));
    }
    tracker.close();
    tracker
}
