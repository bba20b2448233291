//! The settings of `shouhou serve` beyond `shouhou.toml`: where to listen, the database, the
//! platform, the adapters, and the secrets (from the environment, parsed here).

use std::collections::HashMap;

use anyhow::{Context, Result, bail};

use super::{chatwoot::ChatwootConfig, tmc, webhooks::Webhooks, websocket::WsConfig};
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
