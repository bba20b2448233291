//! Console users: creating or replacing one (`shouhou user add`, the demo), and the argon2id
//! password hashes the console's login checks. Shared by the CLI, the demo and the console.

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier, password_hash::SaltString};

use crate::{
    domain::role::Role,
    state::now_ms,
    store::{Store, users},
};

/// The shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// `N` bytes from the OS random source.
#[must_use]
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // The OS random source failing is not something a console can work around.
    getrandom::fill(&mut b).expect("the OS random source works");
    b
}

/// An argon2id hash of `password` (PHC string).
///
/// # Errors
/// Only on an internal hashing failure.
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::encode_b64(&random_bytes::<16>()).map_err(|e| e.to_string())?;
    Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| e.to_string())
}

/// Whether `password` matches `hash` (a PHC string).
#[must_use]
pub fn verify_password(password: &str, hash: &str) -> bool {
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
    let existed = users::get(store, name).await?.is_some();
    // A new password ends the user's sessions.
    store.apply(&[users::upsert(name, &hash, role, now_ms()), users::close_sessions_of(name)]).await?;
    Ok(existed)
}

/// A hash of no real password: checking an unknown user costs the same time as a known one.
#[must_use]
pub fn dummy_hash() -> &'static str {
    static H: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    H.get_or_init(|| hash_password("not-a-real-password").unwrap_or_default())
}
