//! Console users, passwords (argon2id), server-side sessions, CSRF and login throttling.
//!
//! The cookie holds a random token; the store keeps only its SHA-256, so a read of the
//! sessions table does not yield a usable cookie. Every POST but the login carries the
//! session's CSRF token (form field `csrf` or header `x-csrf-token`), checked here for every
//! route at once. Failed logins count per username and per client address over
//! [`THROTTLE_WINDOW_MS`]; past the limit the login is refused before the password is checked.

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
/// Failed logins allowed per username within the window.
pub const MAX_FAILURES_PER_USER: i64 = 5;
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
    let count = |key: String| async move { users::failures_since(&s.store, &key, since).await };
    let again = |error: &str, status: StatusCode| -> Page {
        let mut p = c.page("login.html", None, json!({"error": error, "username": f.username}))?;
        *p.status_mut() = status;
        Ok(p)
    };
    if count(user_key.clone()).await? >= MAX_FAILURES_PER_USER || count(ip_key.clone()).await? >= MAX_FAILURES_PER_IP {
        tracing::warn!("console login throttled");
        return again("throttled", StatusCode::TOO_MANY_REQUESTS);
    }
    let (hash, role) = match users::get(&s.store, &f.username).await? {
        Some(u) => (u.password_hash, Role::parse(&u.role)),
        // Unknown users cost the same time as known ones.
        None => (dummy_hash().to_owned(), None),
    };
    let pw = f.password.clone();
    let ok = tokio::task::spawn_blocking(move || verify_password(&pw, &hash)).await.unwrap_or(false);
    let Some(role) = role.filter(|_| ok) else {
        s.store
            .apply(&[
                users::failure(&user_key, now),
                users::failure(&ip_key, now),
                users::forget_failures_before(now - 24 * 3600 * 1000),
            ])
            .await?;
        return again("wrong", StatusCode::UNAUTHORIZED);
    };
    let token = random_hex();
    let csrf = random_hex();
    s.store
        .apply(&[
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
