//! Per-shop send pacing shared by the sender tasks.
//!
//! Kept hand-written rather than `governor`: sends need strict spacing (`1 / rate_per_shop`
//! apart, no bursts), which is what these lines do; governor's GCRA adds burst quotas and a
//! testable clock we do not need, and neither paces across instances (on PostgreSQL with N
//! instances the real rate is N x `rate_per_shop`). See docs/architecture.md.

use std::{collections::HashMap, time::Duration};

/// Spaces sends per shop: each shop gets at most `rate` a second across all sender tasks.
#[derive(Default)]
pub struct Pacer {
    next: std::sync::Mutex<HashMap<String, tokio::time::Instant>>,
}

impl Pacer {
    /// Reserves the next slot for `shop` and waits for it.
    pub async fn wait(&self, shop: &str, gap: Duration) {
        let at = {
            let mut next = self.next.lock().expect("pacer lock");
            let now = tokio::time::Instant::now();
            let slot = next.get(shop).copied().filter(|t| *t > now).unwrap_or(now);
            next.insert(shop.to_owned(), slot + gap);
            slot
        };
        tokio::time::sleep_until(at).await;
    }
}
