//! The settings of `shouhou serve` beyond `shouhou.toml`: where to listen, the database, the
//! platform, the adapters, and the secrets (from the environment, parsed here).

use std::collections::HashMap;

use anyhow::{Context, Result, bail};

use super::{Settings, chatwoot::ChatwootConfig, tmc, webhooks::Webhooks, websocket::WsConfig, wecom::WecomConfig};
use crate::domain::{role::Role, sign::Secret};

/// Service settings beyond `shouhou.toml`: where to listen, the database, the platform,
/// and the secrets (from the environment). Its `Debug` shows no token and no database password.
#[derive(Clone)]
pub struct ServiceConfig {
    /// Database URL.
    pub database_url: String,
    /// Where replies are POSTed.
    pub platform_url: String,
    /// Per-shop webhook secrets (several during rotation).
    pub shops: HashMap<String, Vec<Secret>>,
    /// API bearer tokens and their roles.
    pub api_tokens: HashMap<String, Role>,
    /// This instance's name in claims.
    pub instance: String,
    /// Processor tasks.
    pub processors: usize,
    /// Sends per second per shop to the platform.
    pub rate_per_shop: u32,
    /// Attempts before a send is marked failed.
    pub max_send_attempts: i64,
    /// Consumer webhook endpoints and their retry schedule.
    pub webhooks: Webhooks,
    /// The websocket client adapter, when configured.
    pub websocket: Option<WsConfig>,
    /// The Chatwoot Agent Bot adapter, when configured.
    pub chatwoot: Option<ChatwootConfig>,
    /// The Taobao message service client, when `[tmc]` is enabled (secret resolved).
    pub tmc: Option<tmc::Options>,
    /// The WeChat customer-service adapter, when configured.
    pub wecom: Option<WecomConfig>,
}

/// Attempts before a send or a handoff is given up.
pub const MAX_SEND_ATTEMPTS: i64 = 12;

/// The command-line flags of `shouhou serve`.
#[derive(Debug, Clone)]
pub struct ServeFlags {
    /// Database URL.
    pub database_url: String,
    /// Where replies are POSTed.
    pub platform_url: String,
    /// This instance's name in claims.
    pub instance: String,
    /// Processor tasks.
    pub processors: usize,
    /// Sends per second per shop.
    pub rate_per_shop: u32,
}

impl ServiceConfig {
    /// The settings of `shouhou serve`: the flags, the service's sections of `shouhou.toml`, and
    /// the secrets from the environment (`SHOUHOU_SHOP_SECRETS`, `SHOUHOU_API_TOKENS`,
    /// `SHOUHOU_WEBHOOK_SECRETS` and each adapter's).
    ///
    /// # Errors
    /// A malformed or missing secret (the message names the variable), or no way for events to
    /// come in (no shop secret and no adapter).
    pub fn from_env(settings: &Settings, flags: ServeFlags) -> Result<Self> {
        let env = |k: &str| std::env::var(k).ok();
        let shops = parse_shop_secrets(&env("SHOUHOU_SHOP_SECRETS").unwrap_or_default())?;
        let websocket = settings
            .websocket
            .as_ref()
            .map(|w| WsConfig::from_file(w, env(super::websocket::TOKEN_ENV)))
            .transpose()?;
        let chatwoot = settings
            .chatwoot
            .as_ref()
            .map(|c| {
                use super::chatwoot::{SECRET_ENV, TOKEN_ENV, URL_TOKEN_ENV};
                ChatwootConfig::from_file(c, env(TOKEN_ENV), env(SECRET_ENV), env(URL_TOKEN_ENV))
            })
            .transpose()?;
        let wecom = settings
            .wecom
            .as_ref()
            .map(|w| {
                use super::wecom::{AES_KEY_ENV, SECRET_ENV, TOKEN_ENV};
                WecomConfig::from_file(w, env(TOKEN_ENV), env(AES_KEY_ENV), env(SECRET_ENV))
            })
            .transpose()?;
        let tmc = tmc::resolve(settings.tmc.as_ref(), env(tmc::SECRET_ENV))?;
        // Signed webhook intake needs shop secrets unless an adapter brings the events.
        if shops.is_empty() && websocket.is_none() && chatwoot.is_none() && wecom.is_none() {
            bail!("SHOUHOU_SHOP_SECRETS is empty: set shop-id=whsec_… for every shop that sends events");
        }
        let api_tokens = parse_api_tokens(&env("SHOUHOU_API_TOKENS").unwrap_or_default())?;
        let webhook_secrets =
            parse_named_secrets("SHOUHOU_WEBHOOK_SECRETS", &env("SHOUHOU_WEBHOOK_SECRETS").unwrap_or_default())?;
        Ok(Self {
            database_url: flags.database_url,
            platform_url: flags.platform_url,
            shops,
            api_tokens,
            instance: flags.instance,
            processors: flags.processors,
            rate_per_shop: flags.rate_per_shop,
            max_send_attempts: MAX_SEND_ATTEMPTS,
            webhooks: Webhooks::new(&settings.webhooks, &webhook_secrets)?,
            websocket,
            chatwoot,
            tmc,
            wecom,
        })
    }
}

impl std::fmt::Debug for ServiceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A URL's user information (`user:password@`) is cut; tokens are shown as their roles.
        let db = match (self.database_url.find("://"), self.database_url.rfind('@')) {
            (Some(a), Some(b)) if b > a => format!("{}://***@{}", &self.database_url[..a], &self.database_url[b + 1..]),
            _ => self.database_url.clone(),
        };
        let mut roles: Vec<Role> = self.api_tokens.values().copied().collect();
        roles.sort();
        f.debug_struct("ServiceConfig")
            .field("database_url", &db)
            .field("platform_url", &self.platform_url)
            .field("shops", &self.shops)
            .field("api_tokens", &format_args!("{} tokens (redacted), roles {roles:?}", roles.len()))
            .field("instance", &self.instance)
            .field("processors", &self.processors)
            .field("rate_per_shop", &self.rate_per_shop)
            .field("max_send_attempts", &self.max_send_attempts)
            .field("webhooks", &self.webhooks)
            .field("websocket", &self.websocket)
            .field("chatwoot", &self.chatwoot)
            .field("tmc", &self.tmc)
            .finish()
    }
}

/// Parses `SHOUHOU_SHOP_SECRETS` (`shop-1=whsec_…|whsec_…,shop-2=whsec_…`).
///
/// # Errors
/// A malformed entry or secret, naming the variable and the shop.
pub fn parse_shop_secrets(raw: &str) -> Result<HashMap<String, Vec<Secret>>> {
    parse_named_secrets("SHOUHOU_SHOP_SECRETS", raw)
}

/// Parses `name=whsec_…|whsec_…,name=whsec_…` (several secrets for one name during rotation);
/// `var` names the variable in errors.
///
/// # Errors
/// A malformed entry or secret, naming the variable and the name.
pub fn parse_named_secrets(var: &str, raw: &str) -> Result<HashMap<String, Vec<Secret>>> {
    let mut out = HashMap::new();
    for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let Some((name, secrets)) = entry.split_once('=') else {
            bail!("{var}: entry `{}` is not name=whsec_…", entry.split('=').next().unwrap_or(""));
        };
        let list = secrets
            .split('|')
            .map(|s| Secret::parse(s).map_err(|e| anyhow::anyhow!("{var}: `{name}`: {e}")))
            .collect::<Result<Vec<_>>>()?;
        out.insert(name.trim().to_owned(), list);
    }
    Ok(out)
}

/// Parses `SHOUHOU_API_TOKENS` (`token=role,token=role`).
///
/// # Errors
/// A malformed entry or unknown role.
pub fn parse_api_tokens(raw: &str) -> Result<HashMap<String, Role>> {
    let mut out = HashMap::new();
    for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let Some((token, role)) = entry.split_once('=') else {
            bail!("SHOUHOU_API_TOKENS: an entry is not token=role")
        };
        let role = Role::parse(role.trim()).with_context(|| {
            format!("SHOUHOU_API_TOKENS: unknown role `{role}` (part_time, agent, supervisor, admin)")
        })?;
        if token.trim().len() < 16 {
            bail!("SHOUHOU_API_TOKENS: tokens must be at least 16 characters");
        }
        out.insert(token.trim().to_owned(), role);
    }
    Ok(out)
}
