//! The `access_token` cache: one token per corp, kept until shortly before it expires and
//! dropped when WeCom calls it invalid or expired. Pure: the clock is an argument; the HTTP
//! client ([`super::client`]) holds it behind a lock so that one refresh serves all callers.

/// Refresh this long before the announced expiry (a call in flight must not carry a token that
/// dies on the way).
pub const DEFAULT_MARGIN_MS: i64 = 5 * 60 * 1000;

/// A cached token.
#[derive(Debug, Clone, Default)]
pub struct TokenCache {
    current: Option<(String, i64)>,
    margin_ms: i64,
}

impl TokenCache {
    /// An empty cache refreshing `margin_ms` before expiry.
    #[must_use]
    pub fn new(margin_ms: i64) -> Self {
        Self { current: None, margin_ms: margin_ms.max(0) }
    }

    /// The token, when there is one that is not about to expire at `now_ms`.
    #[must_use]
    pub fn get(&self, now_ms: i64) -> Option<&str> {
        match &self.current {
            Some((t, expires)) if now_ms < expires - self.margin_ms => Some(t),
            _ => None,
        }
    }

    /// Keeps a token fetched at `now_ms` that lives `expires_in` seconds. A lifetime shorter
    /// than the margin is kept for half its length.
    pub fn store(&mut self, token: String, expires_in: i64, now_ms: i64) {
        let life = expires_in.max(0).saturating_mul(1000);
        let life = if life <= self.margin_ms { life / 2 + self.margin_ms } else { life };
        self.current = Some((token, now_ms.saturating_add(life)));
    }

    /// Forgets `token` after WeCom refused it; a newer token (another caller refreshed
    /// meanwhile) is kept.
    pub fn invalidate(&mut self, token: &str) {
        if self.current.as_ref().is_some_and(|(t, _)| t == token) {
            self.current = None;
        }
    }
}
