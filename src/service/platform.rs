//! The platform port's generic HTTP implementation: POST each reply as JSON with an
//! `Idempotency-Key`, at most `rate_per_shop` a second per shop, retrying timeouts and 5xx with
//! exponential backoff, waiting out 429 `Retry-After`. Nothing a bot drafted is sent to a
//! conversation a person has taken over.

use std::{collections::HashMap, sync::Arc, time::Duration};

use serde_json::json;

use super::{
    LEASE_MS, Shared, audit_stmt, now_ms,
    store::{Arg, CLAIM_SEND_PG, CLAIM_SEND_SQLITE, Col, Stmt},
};

/// The outbound port: how a reply reaches the buyer's platform. The generic HTTP
/// implementation is [`HttpPlatform`]; platform adapters implement the same trait.
pub trait Platform: Send + Sync {
    /// Delivers one reply. `key` is the idempotency key, the same on every attempt.
    fn send<'a>(
        &'a self,
        key: &'a str,
        reply: &'a serde_json::Value,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Outcome> + Send + 'a>>;
}

/// POSTs the reply as JSON to one URL with an `Idempotency-Key` header.
pub struct HttpPlatform {
    /// The client.
    pub http: reqwest::Client,
    /// The endpoint.
    pub url: String,
}

impl Platform for HttpPlatform {
    fn send<'a>(
        &'a self,
        key: &'a str,
        reply: &'a serde_json::Value,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Outcome> + Send + 'a>> {
        Box::pin(post(&self.http, &self.url, key, reply))
    }
}

/// Backoff for attempt `n` (1-based): 1 s, 2 s, 4 s … capped at 5 minutes.
#[must_use]
pub fn backoff_ms(attempt: i64) -> i64 {
    let exp = attempt.clamp(1, 20) - 1;
    (1000i64 << exp.min(9)).min(300_000)
}

/// What the platform said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx.
    Sent,
    /// 429: wait this long.
    RateLimited(i64),
    /// 5xx, timeout, connection failure: try again later.
    Retry(String),
    /// Any other 4xx: the request itself is wrong; retrying would not help.
    Rejected(String),
}

/// Sends due replies until shutdown.
pub async fn sender(s: Arc<Shared>) {
    let mut last_sent: HashMap<String, tokio::time::Instant> = HashMap::new();
    let gap = Duration::from_millis(1000 / u64::from(s.cfg.rate_per_shop.max(1)));
    loop {
        if s.shutdown.is_cancelled() {
            return;
        }
        match send_one(&s, &mut last_sent, gap).await {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "sender store error"),
        }
        tokio::select! {
            () = s.shutdown.cancelled() => return,
            () = s.new_send.notified() => {}
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

async fn send_one(
    s: &Shared,
    last_sent: &mut HashMap<String, tokio::time::Instant>,
    gap: Duration,
) -> Result<bool, super::store::StoreError> {
    let now = now_ms();
    let claim = if s.store.is_postgres() { CLAIM_SEND_PG } else { CLAIM_SEND_SQLITE };
    let cols = [
        Col::I("id"),
        Col::T("shop_id"),
        Col::T("conversation_id"),
        Col::T("reply_to"),
        Col::T("text"),
        Col::I("by_person"),
        Col::T("idempotency_key"),
        Col::I("attempts"),
    ];
    let rows = s.store.rows(claim, &[Arg::I(now), Arg::I(now - LEASE_MS)], &cols).await?;
    let Some(r) = rows.into_iter().next() else { return Ok(false) };
    let (id, shop, conv, reply_to, text, by_person, key, attempts) =
        (r[0].i(), r[1].t(), r[2].t(), r[3].t(), r[4].t(), r[5].i() != 0, r[6].t(), r[7].i());

    if !by_person {
        let owner = s
            .store
            .rows(
                "SELECT owner FROM conversations WHERE shop_id = $1 AND conversation_id = $2",
                &[Arg::T(shop.clone()), Arg::T(conv.clone())],
                &[Col::T("owner")],
            )
            .await?;
        if owner.first().is_some_and(|o| o[0].t() != "bot") {
            s.store
                .apply(&[
                    Stmt { sql: "UPDATE sends SET status = 'held' WHERE id = $1", args: vec![Arg::I(id)] },
                    audit_stmt(
                        now,
                        "bot",
                        "send_held",
                        &shop,
                        &conv,
                        None,
                        None,
                        json!({"send_id": id, "why": "a person owns the conversation"}),
                    ),
                ])
                .await?;
            return Ok(true);
        }
    }

    // Per-shop pacing.
    if let Some(t) = last_sent.get(&shop) {
        let wait = gap.saturating_sub(t.elapsed());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
    last_sent.insert(shop.clone(), tokio::time::Instant::now());

    let body = json!({"shop_id": shop, "conversation_id": conv, "reply_to": reply_to, "text": text});
    let outcome = s.platform.send(&key, &body).await;
    let now = now_ms();
    let attempts = attempts + 1;
    let stmts = match &outcome {
        Outcome::Sent => {
            metrics::counter!("shouhou_sends_total", "result" => "sent").increment(1);
            vec![
                Stmt {
                    sql: "UPDATE sends SET status = 'sent', attempts = $2, sent_at = $3 WHERE id = $1",
                    args: vec![Arg::I(id), Arg::I(attempts), Arg::I(now)],
                },
                audit_stmt(
                    now,
                    if by_person { "person" } else { "bot" },
                    "send",
                    &shop,
                    &conv,
                    None,
                    None,
                    json!({"send_id": id, "attempts": attempts}),
                ),
            ]
        }
        Outcome::RateLimited(wait) => {
            metrics::counter!("shouhou_send_retries_total", "reason" => "rate_limited").increment(1);
            vec![Stmt {
                sql: "UPDATE sends SET status = 'pending', attempts = $2, next_at = $3, last_error = $4 WHERE id = $1",
                args: vec![Arg::I(id), Arg::I(attempts), Arg::I(now + wait), Arg::T("429".into())],
            }]
        }
        Outcome::Retry(why) if attempts < s.cfg.max_send_attempts => {
            metrics::counter!("shouhou_send_retries_total", "reason" => "retry").increment(1);
            vec![Stmt {
                sql: "UPDATE sends SET status = 'pending', attempts = $2, next_at = $3, last_error = $4 WHERE id = $1",
                args: vec![Arg::I(id), Arg::I(attempts), Arg::I(now + backoff_ms(attempts)), Arg::T(why.clone())],
            }]
        }
        Outcome::Retry(why) | Outcome::Rejected(why) => {
            metrics::counter!("shouhou_sends_total", "result" => "failed").increment(1);
            vec![
                Stmt {
                    sql: "UPDATE sends SET status = 'failed', attempts = $2, last_error = $3 WHERE id = $1",
                    args: vec![Arg::I(id), Arg::I(attempts), Arg::T(why.clone())],
                },
                audit_stmt(now, "bot", "send_failed", &shop, &conv, None, None, json!({"send_id": id, "error": why})),
            ]
        }
    };
    s.store.apply(&stmts).await?;
    Ok(true)
}

/// One POST to the platform.
pub async fn post(http: &reqwest::Client, url: &str, key: &str, body: &serde_json::Value) -> Outcome {
    let res = http.post(url).header("Idempotency-Key", key).json(body).timeout(Duration::from_secs(10)).send().await;
    match res {
        Err(e) => Outcome::Retry(if e.is_timeout() { "timeout".into() } else { "connection failed".into() }),
        Ok(r) if r.status().is_success() => Outcome::Sent,
        Ok(r) if r.status().as_u16() == 429 => {
            let secs = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<i64>().ok())
                .unwrap_or(1);
            Outcome::RateLimited(secs.clamp(0, 3600) * 1000)
        }
        Ok(r) if r.status().is_server_error() => Outcome::Retry(format!("http {}", r.status().as_u16())),
        Ok(r) => Outcome::Rejected(format!("http {}", r.status().as_u16())),
    }
}
