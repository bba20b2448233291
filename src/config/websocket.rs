//! The websocket client adapter's settings: `[websocket]` with the token from the environment.

use std::time::Duration;

use secrecy::SecretString;

use super::WebsocketFile;

/// The environment variable holding the bearer token sent on connect.
pub const TOKEN_ENV: &str = "SHOUHOU_WS_TOKEN";

/// The validated adapter settings, with the token resolved from the environment (redacted in
/// `Debug`).
#[derive(Clone, Debug)]
pub struct WsConfig {
    /// `ws://…` or `wss://…`.
    pub url: String,
    /// Bearer token sent as `Authorization: Bearer …` on the upgrade request.
    pub token: SecretString,
    /// Shops served by this connection (messages accepted for, replies sent for).
    pub shops: Vec<String>,
    /// Time between pings.
    pub ping_interval: Duration,
    /// Time to wait for a pong (or any frame) after a ping.
    pub pong_timeout: Duration,
    /// Longest reconnection delay.
    pub reconnect_max: Duration,
    /// Time to wait for a reply's `reply_ack`.
    pub reply_timeout: Duration,
}

impl WsConfig {
    /// Builds the settings from `[websocket]` and the token from [`TOKEN_ENV`].
    ///
    /// # Errors
    /// The token is missing or empty (the message names the variable).
    pub fn from_file(f: &WebsocketFile, token: Option<String>) -> anyhow::Result<Self> {
        let token = token.filter(|t| !t.trim().is_empty()).ok_or_else(|| {
            anyhow::anyhow!("[websocket] is configured but {TOKEN_ENV} is not set: set it to the push endpoint's token")
        })?;
        Ok(Self {
            url: f.url.clone(),
            token: token.trim().into(),
            shops: f.shops.clone(),
            ping_interval: Duration::from_secs(f.ping_interval_secs),
            pong_timeout: Duration::from_secs(f.pong_timeout_secs),
            reconnect_max: Duration::from_secs(f.reconnect_max_secs),
            reply_timeout: Duration::from_secs(f.reply_timeout_secs),
        })
    }
}
