//! Standard Webhooks signatures (<https://www.standardwebhooks.com>, spec 1.0.0): one
//! implementation for both directions, verifying inbound events and signing outbound ones.
//!
//! Signed content is `{webhook-id}.{webhook-timestamp}.{body}`; the signature header is a
//! space-separated list of `v1,<base64 HMAC-SHA256>`; secrets are `whsec_<base64>`. Pure: the
//! time is an argument; comparison is constant-time (`Mac::verify_slice`).

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// How far a timestamp may be from now, either way (the reference libraries' 5 minutes).
pub const TOLERANCE_SECONDS: i64 = 5 * 60;

/// Most `v1,` signatures accepted in one `webhook-signature` header. Rotation needs two or three;
/// more is refused before any MAC is computed, so a header cannot multiply the work.
pub const MAX_SIGNATURES: usize = 8;

/// Longest `webhook-signature` header accepted, in bytes (eight `v1,` parts of a SHA-256 MAC are
/// about 400).
pub const MAX_SIGNATURE_HEADER_BYTES: usize = 1024;

/// A webhook secret (the key bytes behind `whsec_…`).
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Why a request was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A required header is absent.
    #[error("missing header `{0}`")]
    MissingHeader(&'static str),
    /// The timestamp is not an integer.
    #[error("`webhook-timestamp` is not a unix time in seconds")]
    BadTimestamp,
    /// The timestamp is too old or too far in the future.
    #[error("`webhook-timestamp` is outside the {TOLERANCE_SECONDS} s tolerance")]
    Stale,
    /// No signature matched.
    #[error("no valid `v1` signature in `webhook-signature`")]
    BadSignature,
    /// The signature header is longer or has more parts than any sender needs.
    #[error(
        "`webhook-signature` has more than {MAX_SIGNATURES} signatures or more than {MAX_SIGNATURE_HEADER_BYTES} bytes"
    )]
    OversizedSignature,
}

/// A malformed secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("webhook secret must be `whsec_` followed by base64 of 24 to 64 bytes")]
pub struct SecretError;

impl Secret {
    /// Parses `whsec_<base64>`.
    ///
    /// # Errors
    /// A missing prefix, bad base64, or a key outside 24–64 bytes.
    pub fn parse(s: &str) -> Result<Self, SecretError> {
        let b64 = s.trim().strip_prefix("whsec_").ok_or(SecretError)?;
        let key = STANDARD.decode(b64).map_err(|_| SecretError)?;
        if !(24..=64).contains(&key.len()) {
            return Err(SecretError);
        }
        Ok(Self(key))
    }

    /// A secret from raw key bytes (24–64 of them).
    ///
    /// # Errors
    /// A key outside 24–64 bytes.
    pub fn from_bytes(key: &[u8]) -> Result<Self, SecretError> {
        if !(24..=64).contains(&key.len()) {
            return Err(SecretError);
        }
        Ok(Self(key.to_vec()))
    }

    /// The `whsec_…` form.
    #[must_use]
    pub fn to_whsec(&self) -> String {
        format!("whsec_{}", STANDARD.encode(&self.0))
    }

    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    /// The `v1,<base64>` signature of a message.
    #[must_use]
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        format!("v1,{}", STANDARD.encode(self.mac(id, timestamp, body).finalize().into_bytes()))
    }
}

/// Verifies a request against any of `secrets` (several during rotation).
///
/// # Errors
/// Missing headers, a stale or malformed timestamp, no matching signature.
pub fn verify(
    secrets: &[Secret],
    id: Option<&str>,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now_unix: i64,
) -> Result<(), VerifyError> {
    let id = id.ok_or(VerifyError::MissingHeader("webhook-id"))?;
    let ts = timestamp.ok_or(VerifyError::MissingHeader("webhook-timestamp"))?;
    let sig = signature.ok_or(VerifyError::MissingHeader("webhook-signature"))?;
    let ts: i64 = ts.trim().parse().map_err(|_| VerifyError::BadTimestamp)?;
    if !fresh(ts, now_unix) {
        return Err(VerifyError::Stale);
    }
    if sig.len() > MAX_SIGNATURE_HEADER_BYTES || sig.split_whitespace().count() > MAX_SIGNATURES {
        return Err(VerifyError::OversizedSignature);
    }
    // One MAC per secret over the body, whatever the number of parts: each part is then only a
    // constant-time comparison against a finished MAC.
    let macs: Vec<Hmac<Sha256>> = secrets.iter().map(|s| s.mac(id, ts, body)).collect();
    for part in sig.split_whitespace() {
        let Some(b64) = part.strip_prefix("v1,") else { continue };
        let Ok(raw) = STANDARD.decode(b64) else { continue };
        if macs.iter().any(|mac| mac.clone().verify_slice(&raw).is_ok()) {
            return Ok(());
        }
    }
    Err(VerifyError::BadSignature)
}

/// Whether `ts` is within [`TOLERANCE_SECONDS`] of `now`, either way, for any two `i64`s (the
/// difference is taken without overflow: `now + i64::MIN` is not fresh).
#[must_use]
pub fn fresh(ts: i64, now: i64) -> bool {
    ts.abs_diff(now) <= TOLERANCE_SECONDS.unsigned_abs()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(byte: u8) -> Secret {
        Secret::from_bytes(&[byte; 32]).unwrap()
    }

    #[test]
    fn freshness_table() {
        let now = 1_700_000_000;
        for (ts, want) in [
            (now, true),
            (now - TOLERANCE_SECONDS, true),
            (now + TOLERANCE_SECONDS, true),
            (now - TOLERANCE_SECONDS - 1, false),
            (now + TOLERANCE_SECONDS + 1, false),
            (now.wrapping_add(i64::MIN), false),
            (i64::MIN, false),
            (i64::MAX, false),
        ] {
            assert_eq!(fresh(ts, now), want, "ts {ts}");
        }
        assert!(!fresh(0, i64::MAX) && !fresh(i64::MAX, i64::MIN));
    }

    #[test]
    fn overflowing_timestamp_is_stale_not_accepted() {
        let now = 1_700_000_000_i64;
        let ts = now.wrapping_add(i64::MIN);
        let s = secret(7);
        let sig = s.sign("m-1", ts, b"{}");
        let got = verify(&[s], Some("m-1"), Some(&ts.to_string()), Some(&sig), b"{}", now);
        assert_eq!(got, Err(VerifyError::Stale));
    }

    #[test]
    fn signatures_table() {
        let now = 1_700_000_000;
        let (a, b) = (secret(1), secret(2));
        let good_a = a.sign("m-1", now, b"body");
        let good_b = b.sign("m-1", now, b"body");
        let junk = "v1,AAAA";
        let many = [junk; MAX_SIGNATURES + 1].join(" ");
        let long = format!("v1,{}", "A".repeat(MAX_SIGNATURE_HEADER_BYTES));
        let cases: Vec<(String, Result<(), VerifyError>)> = vec![
            (good_a.clone(), Ok(())),
            (format!("{junk} {good_b}"), Ok(())),
            (format!("v2,xyz {good_a}"), Ok(())),
            (junk.to_string(), Err(VerifyError::BadSignature)),
            (many, Err(VerifyError::OversizedSignature)),
            (format!("{} {good_a}", [junk; MAX_SIGNATURES].join(" ")), Err(VerifyError::OversizedSignature)),
            (long, Err(VerifyError::OversizedSignature)),
        ];
        for (header, want) in cases {
            let got = verify(&[a.clone(), b.clone()], Some("m-1"), Some(&now.to_string()), Some(&header), b"body", now);
            assert_eq!(got, want, "header {:.60}", header);
        }
    }
}
