//! The WeCom Kf adapter's settings (`docs/wecom.md`): `[wecom]` with the callback Token, the
//! EncodingAESKey and the Kf app secret from the environment, and the reply budget.

use jiff::SignedDuration;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::WecomFile;
use crate::domain::schedule::Budget;

/// The environment variable holding the callback Token (WeCom admin: the event server settings).
pub const TOKEN_ENV: &str = "SHOUHOU_WECOM_TOKEN";
/// The environment variable holding the 43-character EncodingAESKey.
pub const AES_KEY_ENV: &str = "SHOUHOU_WECOM_AES_KEY";
/// The environment variable holding the Kf app secret (for `gettoken`).
pub const SECRET_ENV: &str = "SHOUHOU_WECOM_SECRET";

/// The numbers of the Kf session states. The values come from the Go SDK's comments
/// (0 new, 1 smart assistant, 2 queue, 3 person, 4 ended), not from a page we could read, so
/// `[wecom.states]` may override them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceStates {
    /// States in which the API may send (new, assistant).
    #[serde(default = "default_send_states")]
    pub send: Vec<i64>,
    /// The queue of people (handoff target without a named servicer).
    #[serde(default = "default_queue")]
    pub queue: i64,
    /// A person has it (handoff target with a named servicer).
    #[serde(default = "default_person")]
    pub person: i64,
    /// The session ended.
    #[serde(default = "default_ended")]
    pub ended: i64,
}

fn default_send_states() -> Vec<i64> {
    vec![0, 1]
}
fn default_queue() -> i64 {
    2
}
fn default_person() -> i64 {
    3
}
fn default_ended() -> i64 {
    4
}

impl Default for ServiceStates {
    fn default() -> Self {
        Self { send: default_send_states(), queue: default_queue(), person: default_person(), ended: default_ended() }
    }
}

/// The validated adapter settings with the secrets resolved from the environment (redacted in
/// `Debug`).
#[derive(Clone, Debug)]
pub struct WecomConfig {
    /// `[wecom]`.
    pub file: WecomFile,
    /// The callback Token: 1 to 32 letters and digits.
    pub token: SecretString,
    /// The EncodingAESKey: 43 Base64 characters.
    pub aes_key: SecretString,
    /// The Kf app secret.
    pub secret: SecretString,
    /// The reply budget.
    pub budget: Budget,
}

impl WecomConfig {
    /// Builds the settings from `[wecom]` and the three secrets.
    ///
    /// # Errors
    /// A secret is missing or malformed (the message names the variable).
    pub fn from_file(
        f: &WecomFile,
        token: Option<String>,
        aes_key: Option<String>,
        secret: Option<String>,
    ) -> anyhow::Result<Self> {
        let need = |v: Option<String>, name: &str, what: &str| {
            v.map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .ok_or_else(|| anyhow::anyhow!("[wecom] is configured but {name} is not set: set it to {what}"))
        };
        let token = need(token, TOKEN_ENV, "the callback Token of the event server")?;
        let aes_key = need(aes_key, AES_KEY_ENV, "the 43-character EncodingAESKey of the event server")?;
        let secret = need(secret, SECRET_ENV, "the Secret of the WeChat customer-service API")?;
        if token.len() > 32 || !token.bytes().all(|b| b.is_ascii_alphanumeric()) {
            anyhow::bail!("{TOKEN_ENV}: the callback Token must be 1 to 32 letters or digits");
        }
        if aes_key.len() != 43 || !aes_key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/') {
            anyhow::bail!(
                "{AES_KEY_ENV}: the EncodingAESKey must be 43 Base64 characters, as the WeCom admin shows it"
            );
        }
        let budget = Budget::new(f.reply_budget, Some(SignedDuration::from_hours(f.reply_window_hours)))
            .map_err(|e| anyhow::anyhow!("[wecom] reply budget: {e}"))?;
        Ok(Self { file: f.clone(), token: token.into(), aes_key: aes_key.into(), secret: secret.into(), budget })
    }

    /// Whether `open_kfid` is one of `shop`'s customer-service accounts.
    #[must_use]
    pub fn serves(&self, shop: &str, open_kfid: &str) -> bool {
        self.file.shops.get(shop).is_some_and(|k| k.iter().any(|x| x == open_kfid))
    }
}
