//! Console users, passwords (argon2id), server-side sessions, CSRF and login throttling.
//!
//! The cookie holds a random token; the store keeps only its SHA-256, so a read of the
//! sessions table does not yield a usable cookie. Every POST but the login carries the
//! session's CSRF token (form field `csrf` or header `x-csrf-token`), checked here for every
//! route at once.
//!
//! Login throttling (docs/security.md): failed logins count per (username, client address), per
//! username and per address over [`THROTTLE_WINDOW_MS`]. A (name, address) pair gets a growing
//! delay after [`FREE_FAILURES`] failures and is locked at [`MAX_FAILURES_PER_PAIR`]; the looser
//! per-name limit never applies to an address the user signed in from within the last day, so
//! nobody can lock a user out from elsewhere. Each attempt is reserved (its failure rows written)
//! before the password is hashed, under one lock per process, so parallel guesses cannot all
//! pass the check; at most [`MAX_CONCURRENT_HASHES`] argon2 hashes (19 MiB each) run at once.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    body::Body,
    extract::{ConnectInfo, Request, State},
    http::{HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
};
use serde_json::json;
use sha2::{Digest, Sha256};

use subtle::ConstantTimeEq;

use super::{Console, Fail, Page};
use crate::{
    accounts::{dummy_hash, random_bytes, verify_password},
    domain::role::Role,
    state::{AppState, now_ms},
    store::{StoreError, audit::audit_stmt, users},
};

/// The session cookie's name.
pub const COOKIE: &str = "shouhou_session";
/// How long a session lasts.
pub const SESSION_MS: i64 = 12 * 3600 * 1000;
/// The window failed logins are counted over.
pub const THROTTLE_WINDOW_MS: i64 = 15 * 60 * 1000;
/// Failed logins allowed per (username, client address) within the window.
pub const MAX_FAILURES_PER_PAIR: i64 = 5;
/// Failures of one (username, address) pair before each further attempt must wait.
pub const FREE_FAILURES: i64 = 2;
/// Failed logins allowed per username within the window from addresses it never signed in from.
pub const MAX_FAILURES_PER_USER: i64 = 50;
/// Password hashes computed at once (argon2id takes 19 MiB each).
pub const MAX_CONCURRENT_HASHES: usize = 4;
/// How long an address a user signed in from stays known to be theirs.
pub const KNOWN_ADDRESS_MS: i64 = 24 * 3600 * 1000;
/// Failed logins allowed per client address within the window.
pub const MAX_FAILURES_PER_IP: i64 = 20;
pub use crate::accounts::MIN_PASSWORD_CHARS;

/// The signed-in user of a request.
#[derive(Debug, Clone)]
pub struct Sess {
    /// Login name.
    pub username: String,
    /// Role.
    pub role: Role,
    /// The session's CSRF token.
    pub csrf: String,
}

impl Sess {
    /// Refuses a role below `need`.
    ///
    /// # Errors
    /// 403 when the role is too low.
    pub fn need(&self, need: Role) -> Result<(), Fail> {
        if self.role < need { Err(Fail::forbidden()) } else { Ok(()) }
    }

    /// How the audit names this user.
    #[must_use]
    pub fn actor(&self) -> String {
        format!("console:{}", self.username)
    }
}

fn random_hex() -> String {
    hex::encode(random_bytes::<32>())
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn cookie_token(req: &Request) -> Option<String> {
    req.headers().get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(
        |kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == COOKIE && !v.is_empty()).then(|| v.to_owned())
        },
    )
}

async fn session_of(s: &AppState, token: &str) -> Result<Option<Sess>, StoreError> {
    let row = users::session(&s.store, &sha256_hex(token), now_ms()).await?;
    Ok(row.and_then(|r| Some(Sess { role: Role::parse(&r.role)?, username: r.username, csrf: r.csrf })))
}

/// Constant-time comparison of two tokens (the length aside).
fn same(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// Resolves the session for every console route but the login page and the static files;
/// checks the CSRF token of every POST. Without a session: a redirect to the login page (a
/// 401 for the JSON and event routes).
pub async fn session_layer(State(c): State<Arc<Console>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    if path == "/console/login" || path.starts_with("/console/static/") || path == "/console" || path == "/console/" {
        return next.run(req).await;
    }
    let sess = match cookie_token(&req) {
        Some(t) => match session_of(&c.shared, &t).await {
            Ok(s) => s,
            Err(e) => return Fail::from(e).into_response(),
        },
        None => None,
    };
    let Some(sess) = sess else {
        if path.starts_with("/console/api/") || path == "/console/events" || req.method() == Method::POST {
            return Fail::new(StatusCode::UNAUTHORIZED, "login_required", "sign in first").into_response();
        }
        return Redirect::to("/console/login").into_response();
    };
    let mut req = req;
    if req.method() == Method::POST {
        let header_token = req.headers().get("x-csrf-token").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let (parts, body) = req.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
            return Fail::new(StatusCode::PAYLOAD_TOO_LARGE, "bad_request", "request too large").into_response();
        };
        let form_token = form_field(&bytes, "csrf");
        let ok = header_token.or(form_token).is_some_and(|t| same(&t, &sess.csrf));
        if !ok {
            let mut r = Fail::new(StatusCode::FORBIDDEN, "csrf", "missing or wrong CSRF token").into_response();
            r.extensions_mut().insert(sess);
            return r;
        }
        req = Request::from_parts(parts, Body::from(bytes));
    }
    req.extensions_mut().insert(sess.clone());
    let mut res = next.run(req).await;
    res.extensions_mut().insert(sess);
    res
}

/// The value of `field` in an `application/x-www-form-urlencoded` body (the first one).
fn form_field(body: &[u8], field: &str) -> Option<String> {
    form_urlencoded::parse(body).find_map(|(k, v)| (k == field).then(|| v.into_owned()))
}

/// `GET /console/login`.
pub async fn login_page(State(c): State<Arc<Console>>) -> Page {
    c.page("login.html", None, json!({"error": null, "username": ""}))
}

/// Serialises the throttle check with the reservation of the attempt (one process; across
/// instances on PostgreSQL two may still interleave, a bounded leak of one attempt each).
static LOGIN_GATE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Bounds the argon2 hashes in flight.
static HASHES: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_CONCURRENT_HASHES);

/// How long after its last failure a (name, address) pair with `failures` must wait: nothing for
/// the first [`FREE_FAILURES`], then 1 s, 2 s, 4 s, … (the pair locks at [`MAX_FAILURES_PER_PAIR`]).
#[must_use]
pub fn backoff_ms(failures: i64) -> i64 {
    if failures < FREE_FAILURES { 0 } else { 1000 << (failures - FREE_FAILURES).min(10) }
}

/// The login form.
struct LoginForm {
    username: String,
    password: String,
}

/// The client address (the socket peer; `unknown` when served without connect info).
fn client_ip(req_ip: Option<&ConnectInfo<SocketAddr>>) -> String {
    req_ip.map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string())
}

/// `POST /console/login`: checks the throttle, then the password; on success a new session.
pub async fn login(State(c): State<Arc<Console>>, req: Request) -> Page {
    let ip = client_ip(req.extensions().get::<ConnectInfo<SocketAddr>>());
    // Behind a TLS-terminating proxy the cookie is marked Secure.
    let https = req.headers().get("x-forwarded-proto").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    let bytes = axum::body::to_bytes(req.into_body(), 16 * 1024)
        .await
        .map_err(|_| Fail::new(StatusCode::PAYLOAD_TOO_LARGE, "bad_request", "request too large"))?;
    let f = LoginForm {
        username: form_field(&bytes, "username").unwrap_or_default().trim().to_owned(),
        password: form_field(&bytes, "password").unwrap_or_default(),
    };
    let s = &c.shared;
    let now = now_ms();
    let since = now - THROTTLE_WINDOW_MS;
    let user_key = format!("user:{}", f.username);
    let ip_key = format!("ip:{ip}");
    let pair_key = format!("pair:{}|{ip}", f.username);
    let known_key = format!("ok:{}|{ip}", f.username);
    let again = |error: &str, status: StatusCode| -> Page {
        let mut p = c.page("login.html", None, json!({"error": error, "username": f.username}))?;
        *p.status_mut() = status;
        Ok(p)
    };
    // Check and reserve in one step: the failure rows are written before the hash, and removed
    // again on success, so N parallel guesses see each other.
    {
        let _gate = LOGIN_GATE.lock().await;
        let pair = users::failures(&s.store, &pair_key, since).await?;
        let known = users::failures(&s.store, &known_key, now - KNOWN_ADDRESS_MS).await?.n > 0;
        let user = if known { 0 } else { users::failures(&s.store, &user_key, since).await?.n };
        let addr = if known { 0 } else { users::failures(&s.store, &ip_key, since).await?.n };
        let throttled = pair.n >= MAX_FAILURES_PER_PAIR
            || now < pair.last + backoff_ms(pair.n)
            || user >= MAX_FAILURES_PER_USER
            || addr >= MAX_FAILURES_PER_IP;
        if throttled {
            metrics::counter!("shouhou_console_login_total", "result" => "throttled").increment(1);
            tracing::warn!(known_address = known, "console login throttled");
            return again("throttled", StatusCode::TOO_MANY_REQUESTS);
        }
        s.store
            .apply(&[
                users::failure(&user_key, now),
                users::failure(&ip_key, now),
                users::failure(&pair_key, now),
                users::forget_failures_before(now - 24 * 3600 * 1000),
            ])
            .await?;
    }
    let (hash, role) = match users::get(&s.store, &f.username).await? {
        Some(u) => (u.password_hash, Role::parse(&u.role)),
        // Unknown users cost the same time as known ones.
        None => (dummy_hash().to_owned(), None),
    };
    let pw = f.password.clone();
    let ok = {
        let _permit = HASHES.acquire().await.expect("the hash semaphore is never closed");
        tokio::task::spawn_blocking(move || verify_password(&pw, &hash)).await.unwrap_or(false)
    };
    let Some(role) = role.filter(|_| ok) else {
        metrics::counter!("shouhou_console_login_total", "result" => "wrong").increment(1);
        tracing::warn!("console login failed");
        return again("wrong", StatusCode::UNAUTHORIZED);
    };
    metrics::counter!("shouhou_console_login_total", "result" => "ok").increment(1);
    let token = random_hex();
    let csrf = random_hex();
    s.store
        .apply(&[
            users::unreserve(&user_key, now),
            users::unreserve(&ip_key, now),
            users::unreserve(&pair_key, now),
            users::failure(&known_key, now),
            users::open_session(&sha256_hex(&token), &f.username, role, &csrf, now, now + SESSION_MS),
            users::forget_sessions_before(now),
            audit_stmt(now, &format!("console:{}", f.username), "login", "-", "-", None, None, json!({})),
        ])
        .await?;
    let mut res = Redirect::to("/console/queue").into_response();
    let cookie = format!(
        "{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/console; Max-Age={}{}",
        SESSION_MS / 1000,
        if https { "; Secure" } else { "" }
    );
    res.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).expect("ascii cookie"));
    Ok(res)
}

/// `POST /console/logout`: ends the session.
pub async fn logout(State(c): State<Arc<Console>>, req: Request) -> Page {
    if let Some(t) = cookie_token(&req) {
        c.shared.store.apply(&[users::close_session(&sha256_hex(&t))]).await?;
    }
    let mut res = Redirect::to("/console/login").into_response();
    let cookie = format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/console; Max-Age=0");
    res.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).expect("ascii cookie"));
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_fields_are_percent_decoded() {
        // (body, field, value)
        let table: [(&str, &str, Option<&str>); 7] = [
            ("csrf=abc&text=hi", "csrf", Some("abc")),
            ("text=a+b%21&csrf=x", "text", Some("a b!")),
            ("text=%E4%BD%A0", "text", Some("\u{4f60}")),
            ("text=100%", "text", Some("100%")),
            ("flag", "flag", Some("")),
            ("a=1&a=2", "a", Some("1")),
            ("a=1", "b", None),
        ];
        for (body, field, want) in table {
            assert_eq!(form_field(body.as_bytes(), field).as_deref(), want, "{body:?} {field}");
        }
    }

    #[test]
    fn tokens_compare_whole() {
        let table =
            [("abc", "abc", true), ("abc", "abd", false), ("abc", "ab", false), ("", "", true), ("", "a", false)];
        for (a, b, want) in table {
            assert_eq!(same(a, b), want, "{a:?} {b:?}");
        }
    }
}
