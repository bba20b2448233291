//! The consumer webhook endpoints of a running service: `[webhooks]` joined with their secrets.

use std::collections::HashMap;

use crate::domain::sign::Secret;

/// A configured consumer endpoint with its secrets.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Its name (the key of its secrets).
    pub name: String,
    /// Where events are POSTed.
    pub url: String,
    /// Event types it receives (`*`: all).
    pub events: Vec<String>,
    /// Signing secrets: every one signs each delivery (rotation).
    pub secrets: Vec<Secret>,
}

impl Endpoint {
    /// Whether it receives events of type `ty`.
    #[must_use]
    pub fn wants(&self, ty: &str) -> bool {
        self.events.iter().any(|e| e == "*" || e == ty)
    }
}

/// The outbox settings of a running service.
#[derive(Debug, Clone, Default)]
pub struct Webhooks {
    /// The endpoints.
    pub endpoints: Vec<Endpoint>,
    /// Milliseconds before attempt n+1 (index 0: before the first).
    pub retry_schedule_ms: Vec<i64>,
}

impl Webhooks {
    /// Joins the configured endpoints with their secrets (`SHOUHOU_WEBHOOK_SECRETS`).
    ///
    /// # Errors
    /// An endpoint without a secret.
    pub fn new(cfg: &super::Webhooks, secrets: &HashMap<String, Vec<Secret>>) -> anyhow::Result<Self> {
        let mut endpoints = Vec::with_capacity(cfg.endpoints.len());
        for e in &cfg.endpoints {
            let Some(s) = secrets.get(&e.name).filter(|s| !s.is_empty()) else {
                anyhow::bail!(
                    "SHOUHOU_WEBHOOK_SECRETS has no secret for webhook endpoint `{}`: set {}=whsec_…",
                    e.name,
                    e.name
                );
            };
            endpoints.push(Endpoint {
                name: e.name.clone(),
                url: e.url.clone(),
                events: e.events.clone(),
                secrets: s.clone(),
            });
        }
        Ok(Self { endpoints, retry_schedule_ms: cfg.retry_schedule_ms.clone() })
    }

    /// Delay before the attempt after `attempts` failed ones, or `None` when the schedule is spent.
    #[must_use]
    pub fn delay_after(&self, attempts: i64) -> Option<i64> {
        usize::try_from(attempts).ok().and_then(|i| self.retry_schedule_ms.get(i).copied())
    }
}
