//! Console users, passwords (argon2id), server-side sessions, CSRF and login throttling.
//!
//! The cookie holds a random token; the store keeps only its SHA-256, so a read of the
//! sessions table does not yield a usable cookie. Every POST but the login carries the
//! session's CSRF token (form field `csrf` or header `x-csrf-token`), checked here for every
//! route at once. Failed logins count per username and per client address over
//! [`THROTTLE_WINDOW_MS`]; past the limit the login is refused before the password is checked.

use std::{net::SocketAddr, sync::Arc};

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier, password_hash::SaltString};
use axum::{
    body::Body,
    extract::{ConnectInfo, Request, State},
    http::{HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{Console, Fail, Page, role_name};
use crate::service::{
    Role, Shared, audit_stmt, now_ms,
    store::{Arg, Col, Stmt, Store, StoreError},
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
/// The shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 8;

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

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // The OS random source failing is not something a console can work around.
    getrandom::fill(&mut b).expect("the OS random source works");
    b
}

fn random_hex() -> String {
    hex(&random_bytes::<32>())
}

fn sha256_hex(s: &str) -> String {
    hex(&Sha256::digest(s.as_bytes()))
}

/// An argon2id hash of `password` (PHC string).
///
/// # Errors
/// Only on an internal hashing failure.
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::encode_b64(&random_bytes::<16>()).map_err(|e| e.to_string())?;
    Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| e.to_string())
}

fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// Creates user `name` with `role`, or replaces its password and role. Returns whether it existed.
///
/// # Errors
/// A bad name (1–64 of `[A-Za-z0-9_.-]`), a password under [`MIN_PASSWORD_CHARS`], or the store.
pub async fn upsert_user(store: &Store, name: &str, password: &str, role: Role) -> anyhow::Result<bool> {
    if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)) {
        anyhow::bail!("a user name is 1-64 letters, digits, `_`, `.` or `-`");
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        anyhow::bail!("a password needs at least {MIN_PASSWORD_CHARS} characters");
    }
    let pw = password.to_owned();
    let hash = tokio::task::spawn_blocking(move || hash_password(&pw)).await?.map_err(anyhow::Error::msg)?;
    let existed = scalar_store(store, "SELECT COUNT(*) AS n FROM console_users WHERE username = $1", name).await? > 0;
    store
        .apply(&[
            Stmt {
                sql: "INSERT INTO console_users (username, password_hash, role, created_at) VALUES ($1, $2, $3, $4)
                      ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash, role = excluded.role",
                args: vec![Arg::T(name.to_owned()), Arg::T(hash), Arg::T(role_name(role).to_owned()), Arg::I(now_ms())],
            },
            // A new password ends the user's sessions.
            Stmt { sql: "DELETE FROM console_sessions WHERE username = $1", args: vec![Arg::T(name.to_owned())] },
        ])
        .await?;
    Ok(existed)
}

async fn scalar_store(store: &Store, sql: &'static str, arg: &str) -> Result<i64, StoreError> {
    Ok(store.rows(sql, &[Arg::T(arg.to_owned())], &[Col::I("n")]).await?.first().map_or(0, |r| r[0].i()))
}

fn cookie_token(req: &Request) -> Option<String> {
    req.headers().get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(
        |kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == COOKIE && !v.is_empty()).then(|| v.to_owned())
        },
    )
}

async fn session_of(s: &Shared, token: &str) -> Result<Option<Sess>, StoreError> {
    let rows = s
        .store
        .rows(
            "SELECT username, role, csrf FROM console_sessions WHERE token_hash = $1 AND expires_at > $2",
            &[Arg::T(sha256_hex(token)), Arg::I(now_ms())],
            &[Col::T("username"), Col::T("role"), Col::T("csrf")],
        )
        .await?;
    Ok(rows.first().and_then(|r| Some(Sess { username: r[0].t(), role: Role::parse(&r[1].t())?, csrf: r[2].t() })))
}

/// Constant-time comparison of two tokens.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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

/// The value of `field` in an `application/x-www-form-urlencoded` body.
fn form_field(body: &[u8], field: &str) -> Option<String> {
    std::str::from_utf8(body).ok()?.split('&').find_map(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        (url_decode(k) == field).then(|| url_decode(v))
    })
}

/// Percent-decoding with `+` as a space; a malformed escape is kept as written.
fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (b[i], hex) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(v)) => {
                out.push(v);
                i += 2;
            }
            (c, _) => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
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
    let count = |key: String| async move {
        s.store
            .rows(
                "SELECT COUNT(*) AS n FROM console_login_failures WHERE key = $1 AND at > $2",
                &[Arg::T(key), Arg::I(since)],
                &[Col::I("n")],
            )
            .await
            .map(|r| r.first().map_or(0, |r| r[0].i()))
    };
    let again = |error: &str, status: StatusCode| -> Page {
        let mut p = c.page("login.html", None, json!({"error": error, "username": f.username}))?;
        *p.status_mut() = status;
        Ok(p)
    };
    if count(user_key.clone()).await? >= MAX_FAILURES_PER_USER || count(ip_key.clone()).await? >= MAX_FAILURES_PER_IP {
        tracing::warn!("console login throttled");
        return again("throttled", StatusCode::TOO_MANY_REQUESTS);
    }
    let rows = s
        .store
        .rows(
            "SELECT password_hash, role FROM console_users WHERE username = $1",
            &[Arg::T(f.username.clone())],
            &[Col::T("password_hash"), Col::T("role")],
        )
        .await?;
    let (hash, role) = match rows.first() {
        Some(r) => (r[0].t(), Role::parse(&r[1].t())),
        // Unknown users cost the same time as known ones.
        None => (dummy_hash().to_owned(), None),
    };
    let pw = f.password.clone();
    let ok = tokio::task::spawn_blocking(move || verify_password(&pw, &hash)).await.unwrap_or(false);
    let Some(role) = role.filter(|_| ok) else {
        s.store
            .apply(&[
                Stmt {
                    sql: "INSERT INTO console_login_failures (key, at) VALUES ($1, $2)",
                    args: vec![Arg::T(user_key), Arg::I(now)],
                },
                Stmt {
                    sql: "INSERT INTO console_login_failures (key, at) VALUES ($1, $2)",
                    args: vec![Arg::T(ip_key), Arg::I(now)],
                },
                Stmt {
                    sql: "DELETE FROM console_login_failures WHERE at < $1",
                    args: vec![Arg::I(now - 24 * 3600 * 1000)],
                },
            ])
            .await?;
        return again("wrong", StatusCode::UNAUTHORIZED);
    };
    let token = random_hex();
    let csrf = random_hex();
    s.store
        .apply(&[
            Stmt {
                sql: "INSERT INTO console_sessions (token_hash, username, role, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
                args: vec![
                    Arg::T(sha256_hex(&token)),
                    Arg::T(f.username.clone()),
                    Arg::T(role_name(role).to_owned()),
                    Arg::T(csrf),
                    Arg::I(now),
                    Arg::I(now + SESSION_MS),
                ],
            },
            Stmt { sql: "DELETE FROM console_sessions WHERE expires_at < $1", args: vec![Arg::I(now)] },
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

fn dummy_hash() -> &'static str {
    static H: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    H.get_or_init(|| hash_password("not-a-real-password").unwrap_or_default())
}

/// `POST /console/logout`: ends the session.
pub async fn logout(State(c): State<Arc<Console>>, req: Request) -> Page {
    if let Some(t) = cookie_token(&req) {
        c.shared
            .store
            .apply(&[Stmt {
                sql: "DELETE FROM console_sessions WHERE token_hash = $1",
                args: vec![Arg::T(sha256_hex(&t))],
            }])
            .await?;
    }
    let mut res = Redirect::to("/console/login").into_response();
    let cookie = format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/console; Max-Age=0");
    res.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).expect("ascii cookie"));
    Ok(res)
}
