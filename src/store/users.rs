//! The console's tables: `console_users`, `console_sessions` (only a token's SHA-256 is kept) and
//! `console_login_failures` (counted per user and per client address for the login throttle).

use super::{Arg, Stmt, Store, StoreError};
use crate::domain::role::Role;

typed_row! {
    /// A console user.
    #[derive(Debug, Clone)]
    pub struct UserRow {
        /// An argon2id PHC string.
        password_hash: String,
        /// The role's name.
        role: String,
    }
}

/// User `name`, if there is one.
///
/// # Errors
/// The store failed.
pub async fn get(store: &Store, name: &str) -> Result<Option<UserRow>, StoreError> {
    store
        .fetch_one("SELECT password_hash, role FROM console_users WHERE username = $1", &[Arg::T(name.to_owned())])
        .await
}

/// Creates user `name` or replaces its password and role.
#[must_use]
pub fn upsert(name: &str, password_hash: &str, role: Role, now: i64) -> Stmt {
    Stmt {
        sql: "INSERT INTO console_users (username, password_hash, role, created_at) VALUES ($1, $2, $3, $4)
              ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash, role = excluded.role",
        args: vec![
            Arg::T(name.to_owned()),
            Arg::T(password_hash.to_owned()),
            Arg::T(role.name().to_owned()),
            Arg::I(now),
        ],
    }
}

typed_row! {
    /// A live session.
    #[derive(Debug, Clone)]
    pub struct SessionRow {
        username: String,
        /// The role's name.
        role: String,
        csrf: String,
    }
}

/// The session whose token hashes to `token_hash`, unless it expired by `now`.
///
/// # Errors
/// The store failed.
pub async fn session(store: &Store, token_hash: &str, now: i64) -> Result<Option<SessionRow>, StoreError> {
    store
        .fetch_one(
            "SELECT username, role, csrf FROM console_sessions WHERE token_hash = $1 AND expires_at > $2",
            &[Arg::T(token_hash.to_owned()), Arg::I(now)],
        )
        .await
}

/// Opens a session.
#[must_use]
pub fn open_session(token_hash: &str, username: &str, role: Role, csrf: &str, now: i64, expires_at: i64) -> Stmt {
    Stmt {
        sql: "INSERT INTO console_sessions (token_hash, username, role, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
        args: vec![
            Arg::T(token_hash.to_owned()),
            Arg::T(username.to_owned()),
            Arg::T(role.name().to_owned()),
            Arg::T(csrf.to_owned()),
            Arg::I(now),
            Arg::I(expires_at),
        ],
    }
}

/// Ends one session.
#[must_use]
pub fn close_session(token_hash: &str) -> Stmt {
    Stmt { sql: "DELETE FROM console_sessions WHERE token_hash = $1", args: vec![Arg::T(token_hash.to_owned())] }
}

/// Ends every session of a user.
#[must_use]
pub fn close_sessions_of(username: &str) -> Stmt {
    Stmt { sql: "DELETE FROM console_sessions WHERE username = $1", args: vec![Arg::T(username.to_owned())] }
}

/// Forgets sessions that expired before `now`.
#[must_use]
pub fn forget_sessions_before(now: i64) -> Stmt {
    Stmt { sql: "DELETE FROM console_sessions WHERE expires_at < $1", args: vec![Arg::I(now)] }
}

typed_row! {
    /// Failed logins of one key: how many, and the last one's time (0 when none).
    pub struct Failures {
        n: i64,
        last: i64,
    }
}

/// Failed logins of `key` (`user:NAME`, `ip:ADDR`, `pair:NAME|ADDR`; `ok:NAME|ADDR` marks a
/// successful login) after `since`.
///
/// # Errors
/// The store failed.
pub async fn failures(store: &Store, key: &str, since: i64) -> Result<Failures, StoreError> {
    Ok(store
        .fetch_one::<Failures>(
            "SELECT COUNT(*) AS n, COALESCE(MAX(at), 0) AS last FROM console_login_failures WHERE key = $1 AND at > $2",
            &[Arg::T(key.to_owned()), Arg::I(since)],
        )
        .await?
        .unwrap_or(Failures { n: 0, last: 0 }))
}

/// Removes one failure of `key` reserved at `at` (the attempt turned out right).
#[must_use]
pub fn unreserve(key: &str, at: i64) -> Stmt {
    Stmt {
        sql: "DELETE FROM console_login_failures WHERE id IN (SELECT id FROM console_login_failures WHERE key = $1 AND at = $2 ORDER BY id DESC LIMIT 1)",
        args: vec![Arg::T(key.to_owned()), Arg::I(at)],
    }
}

/// Records a failed login of `key`.
#[must_use]
pub fn failure(key: &str, now: i64) -> Stmt {
    Stmt {
        sql: "INSERT INTO console_login_failures (key, at) VALUES ($1, $2)",
        args: vec![Arg::T(key.to_owned()), Arg::I(now)],
    }
}

/// Forgets failed logins older than `before`.
#[must_use]
pub fn forget_failures_before(before: i64) -> Stmt {
    Stmt { sql: "DELETE FROM console_login_failures WHERE at < $1", args: vec![Arg::I(before)] }
}
