//! The Taobao message service client's settings: `[tmc]` with the app secret from the environment.

use std::time::Duration;

use secrecy::SecretString;

use super::TmcSettings;

/// The environment variable holding the app secret.
pub const SECRET_ENV: &str = "SHOUHOU_TMC_SECRET";

/// A session that stayed up this long after its login resets the backoff (as the websocket
/// adapter does): a server that accepts the login and then drops is retried with a growing delay.
pub const STABLE_AFTER: Duration = Duration::from_secs(10);

/// How the client connects and paces itself (the secret redacted in `Debug`).
#[derive(Clone, Debug)]
pub struct Options {
    /// `ws://` or `wss://` endpoint.
    pub url: String,
    /// App key.
    pub app_key: String,
    /// App secret (signs the login; never logged).
    pub secret: SecretString,
    /// Message group.
    pub group_name: String,
    /// The shouhou shop the messages belong to.
    pub shop_id: String,
    /// Between pull requests (and pings).
    pub pull_every: Duration,
    /// First reconnect delay.
    pub backoff_min: Duration,
    /// Largest reconnect delay.
    pub backoff_max: Duration,
    /// How long a session must stay up after its login to reset the backoff.
    pub stable_after: Duration,
}

impl Options {
    /// From `[tmc]` and the secret; reconnects back off from 1 s to 60 s.
    #[must_use]
    pub fn new(t: &TmcSettings, secret: SecretString) -> Self {
        Self {
            url: t.url.clone(),
            app_key: t.app_key.clone(),
            secret,
            group_name: t.group_name.clone(),
            shop_id: t.shop_id.clone(),
            pull_every: Duration::from_secs(t.pull_seconds),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            stable_after: STABLE_AFTER,
        }
    }
}

/// The client options for an enabled `[tmc]` section, with the secret read from
/// [`SECRET_ENV`] by the caller (`serve` resolves it like the adapters' secrets). `Ok(None)`
/// when TMC is off.
///
/// # Errors
/// TMC is enabled and the secret is missing or empty.
pub fn resolve(t: Option<&TmcSettings>, secret: Option<String>) -> anyhow::Result<Option<Options>> {
    let Some(t) = t.filter(|t| t.enabled) else { return Ok(None) };
    match secret {
        Some(s) if !s.trim().is_empty() => Ok(Some(Options::new(t, s.trim().into()))),
        _ => anyhow::bail!(
            "[tmc] is enabled in the config but {SECRET_ENV} is not set: export the app secret of app key `{}` \
             (or set enabled = false)",
            t.app_key
        ),
    }
}
