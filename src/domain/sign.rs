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
    if (now_unix - ts).abs() > TOLERANCE_SECONDS {
        return Err(VerifyError::Stale);
    }
    for part in sig.split_whitespace() {
        let Some(b64) = part.strip_prefix("v1,") else { continue };
        let Ok(raw) = STANDARD.decode(b64) else { continue };
        for s in secrets {
            if s.mac(id, ts, body).verify_slice(&raw).is_ok() {
                return Ok(());
            }
        }
    }
    Err(VerifyError::BadSignature)
}
