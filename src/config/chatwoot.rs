//! The Chatwoot adapter's settings: `[chatwoot]` with the token and secrets from the environment.

use std::collections::HashMap;

use secrecy::SecretString;

use super::ChatwootFile;

/// The environment variable holding the bot's (or an agent's) API access token.
pub const TOKEN_ENV: &str = "SHOUHOU_CHATWOOT_TOKEN";

/// The environment variable holding the Agent Bot's webhook secret (optional).
pub const SECRET_ENV: &str = "SHOUHOU_CHATWOOT_SECRET";

/// The environment variable holding the shared token the bot's outgoing URL carries as
/// `?token=`: required when [`SECRET_ENV`] is not set.
pub const URL_TOKEN_ENV: &str = "SHOUHOU_CHATWOOT_URL_TOKEN";

/// How far `X-Chatwoot-Timestamp` may be from now, either way.
pub const TOLERANCE_SECONDS: i64 = 300;

/// The validated adapter settings with the secrets resolved from the environment (redacted in
/// `Debug`).
#[derive(Clone, Debug)]
pub struct ChatwootConfig {
    /// The installation, without a trailing slash.
    pub url: String,
    /// `api_access_token` for replies and handoffs.
    pub token: SecretString,
    /// The webhook signing secret; signatures are required when set.
    pub secret: Option<SecretString>,
    /// The shared token of the outgoing URL (`?token=`); required on every event when set.
    pub url_token: Option<SecretString>,
    /// Shop id to Chatwoot account id.
    pub accounts: HashMap<String, i64>,
    /// Leave a private note with the draft on a handoff.
    pub handoff_note: bool,
}

impl ChatwootConfig {
    /// Builds the settings from `[chatwoot]`, the token from [`TOKEN_ENV`], the secret from
    /// [`SECRET_ENV`] and the URL token from [`URL_TOKEN_ENV`].
    ///
    /// # Errors
    /// The token is missing or empty, or neither the secret nor the URL token is set (the
    /// message names the variables).
    pub fn from_file(
        f: &ChatwootFile,
        token: Option<String>,
        secret: Option<String>,
        url_token: Option<String>,
    ) -> anyhow::Result<Self> {
        let token = token.filter(|t| !t.trim().is_empty()).ok_or_else(|| {
            anyhow::anyhow!(
                "[chatwoot] is configured but {TOKEN_ENV} is not set: set it to the Agent Bot's access token"
            )
        })?;
        let secret: Option<SecretString> = secret.filter(|s| !s.trim().is_empty()).map(|s| s.trim().into());
        let url_token = url_token.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty());
        if secret.is_none() && url_token.is_none() {
            anyhow::bail!(
                "[chatwoot] is configured but neither {SECRET_ENV} nor {URL_TOKEN_ENV} is set: set {SECRET_ENV} to the \
                 Agent Bot's webhook secret or, when your Chatwoot does not sign bot webhooks, {URL_TOKEN_ENV} to a long \
                 random token and add `?token=<it>` to the bot's outgoing URL"
            );
        }
        if let Some(t) = &url_token
            && !t.chars().all(|c| c.is_ascii_alphanumeric() || "-._~".contains(c))
        {
            anyhow::bail!("{URL_TOKEN_ENV} must be URL-safe (letters, digits, `-`, `.`, `_`, `~`)");
        }
        if secret.is_none() {
            tracing::warn!("{SECRET_ENV} is not set: Chatwoot events are accepted unsigned, with the URL token");
        }
        Ok(Self {
            url: f.url.trim_end_matches('/').to_owned(),
            token: token.trim().into(),
            secret,
            url_token: url_token.map(SecretString::from),
            accounts: f.accounts.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            handoff_note: f.handoff_note,
        })
    }
}
