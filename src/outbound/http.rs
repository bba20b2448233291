//! What an HTTP answer means for a delivery, shared by the platform POST, the consumer webhooks
//! and the Chatwoot client: [`outcome`], [`retry_after_ms`], and the one [`backoff`] every retry
//! and reconnect uses.

use std::time::Duration;

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

/// Exponential backoff: `first` before attempt 1, doubling per attempt (`n` is 1-based), capped
/// at `max`.
#[must_use]
pub fn backoff(first: Duration, n: u32, max: Duration) -> Duration {
    first.saturating_mul(1u32 << n.saturating_sub(1).min(16)).min(max)
}

/// `d` moved to a random point of its upper half, so clients that failed together do not retry
/// in step.
#[must_use]
pub fn jittered(d: Duration) -> Duration {
    let half = d / 2;
    half + Duration::from_millis(fastrand::u64(0..=u64::try_from(half.as_millis()).unwrap_or(u64::MAX)))
}

/// The durable retry delay of a send or a handoff after attempt `attempt` (1-based): 1 s, 2 s,
/// 4 s … capped at 5 minutes.
#[must_use]
pub fn backoff_ms(attempt: i64) -> i64 {
    let n = u32::try_from(attempt.clamp(1, 20)).unwrap_or(1);
    i64::try_from(backoff(Duration::from_secs(1), n, Duration::from_secs(300)).as_millis()).unwrap_or(300_000)
}

/// One POST to the platform.
pub async fn post(http: &reqwest::Client, url: &str, key: &str, body: &serde_json::Value) -> Outcome {
    let res = http.post(url).header("Idempotency-Key", key).json(body).timeout(Duration::from_secs(10)).send().await;
    outcome(res)
}

/// What an HTTP answer means for a delivery: 2xx sent, 429 wait, 5xx and transport errors
/// retry, other 4xx rejected.
#[must_use]
pub fn outcome(res: Result<reqwest::Response, reqwest::Error>) -> Outcome {
    match res {
        Err(e) => Outcome::Retry(if e.is_timeout() { "timeout".into() } else { "connection failed".into() }),
        Ok(r) if r.status().is_success() => Outcome::Sent,
        Ok(r) if r.status().as_u16() == 429 => {
            Outcome::RateLimited(retry_after_ms(r.headers()).unwrap_or(1000).clamp(0, 3_600_000))
        }
        Ok(r) if r.status().is_server_error() => Outcome::Retry(format!("http {}", r.status().as_u16())),
        Ok(r) => Outcome::Rejected(format!("http {}", r.status().as_u16())),
    }
}

/// How long `Retry-After` asks to wait, in milliseconds: delay-seconds (`120`) or an HTTP-date
/// (`Wed, 21 Oct 2015 07:28:00 GMT`, RFC 9110 section 10.2.3); a date in the past is 0. `None` when
/// absent or unreadable.
#[must_use]
pub fn retry_after_ms(headers: &reqwest::header::HeaderMap) -> Option<i64> {
    retry_after_ms_at(headers, jiff::Timestamp::now().as_millisecond())
}

/// [`retry_after_ms`] as seen at `now` (unix milliseconds).
#[must_use]
pub fn retry_after_ms_at(headers: &reqwest::header::HeaderMap, now: i64) -> Option<i64> {
    static HTTP_DATE: jiff::fmt::rfc2822::DateTimeParser = jiff::fmt::rfc2822::DateTimeParser::new();
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<i64>() {
        return Some(secs.max(0).saturating_mul(1000));
    }
    let at = HTTP_DATE.parse_timestamp(v).ok()?;
    Some((at.as_millisecond() - now).max(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_then_caps() {
        let s = Duration::from_secs;
        // (first, n, max, expected)
        let table = [
            (s(1), 0, s(300), s(1)),
            (s(1), 1, s(300), s(1)),
            (s(1), 2, s(300), s(2)),
            (s(1), 9, s(300), s(256)),
            (s(1), 10, s(300), s(300)),
            (Duration::from_millis(500), 3, s(60), s(2)),
            (s(1), 40, s(60), s(60)),
        ];
        for (first, n, max, want) in table {
            assert_eq!(backoff(first, n, max), want, "{first:?} n={n}");
        }
    }

    #[test]
    fn durable_retries_run_from_one_second_to_five_minutes() {
        let got: Vec<i64> = [-3, 0, 1, 2, 3, 9, 10, 20, 1000].into_iter().map(backoff_ms).collect();
        assert_eq!(got, [1000, 1000, 1000, 2000, 4000, 256_000, 300_000, 300_000, 300_000]);
    }

    #[test]
    fn jitter_stays_in_the_upper_half() {
        for ms in [0u64, 1, 2, 999, 60_000] {
            let d = Duration::from_millis(ms);
            for _ in 0..50 {
                let j = jittered(d);
                assert!(j >= d / 2 && j <= d, "{j:?} for {d:?}");
            }
        }
    }
}
