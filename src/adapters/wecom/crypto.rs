//! WeCom's callback crypto (WXBizMsgCrypt), as the WeCom developer docs describe it (see
//! `docs/wecom.md`) and as PyPI `wechatpy` implements it (the peer the tests run against).
//!
//! - `msg_signature` = lower-case hex SHA-1 of the lexically sorted concatenation of
//!   (token, timestamp, nonce, encrypt);
//! - the AES key is Base64(EncodingAESKey + "="): 43 characters give 32 bytes;
//! - AES-256-CBC, IV = the first 16 key bytes, PKCS#7 padding to a multiple of **32** bytes;
//! - the plain text is 16 random bytes, the message length as 4 bytes big-endian, the message,
//!   and the receive id (the corp id), which is checked.
//!
//! Pure: the clock and the random bytes are arguments. Signatures, padding and the receive id
//! are compared in constant time (`subtle`), so a forger learns nothing from timing.

use aes::Aes256;
use base64::{
    Engine, alphabet,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig},
};
use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit, block_padding::NoPadding};
use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

/// How far a callback's `timestamp` may be from now, either way, unless configured otherwise.
/// WeCom retries an unanswered callback within seconds; five minutes covers clock skew.
pub const DEFAULT_WINDOW_SECONDS: u64 = 300;

/// The PKCS#7 block size WeCom pads to (not AES's 16).
const PAD_BLOCK: usize = 32;

/// Standard Base64 that tolerates non-zero trailing bits: a 43-character EncodingAESKey is
/// random letters and digits, so its last character usually carries two bits beyond the 32
/// key bytes, which WeCom (and Python's `base64`) ignore. Ciphertexts are decoded the same way.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a callback or a key was refused. Every variant is the caller's fault (a 4xx).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The EncodingAESKey is not 43 Base64 characters.
    #[error("the EncodingAESKey must be 43 Base64 characters (letters and digits), as the WeCom admin shows it")]
    Key,
    /// The token is empty, too long or not letters and digits.
    #[error("the callback Token must be 1 to 32 letters or digits")]
    Token,
    /// The `timestamp` is not unix seconds.
    #[error("`timestamp` is not a unix time in seconds")]
    BadTimestamp,
    /// The `timestamp` is outside the window.
    #[error("`timestamp` is {0} s away from now, outside the allowed window")]
    Stale(u64),
    /// `msg_signature` is not 40 hex digits.
    #[error("`msg_signature` must be 40 hex digits")]
    MalformedSignature,
    /// `msg_signature` does not match.
    #[error("`msg_signature` does not match the token, timestamp, nonce and encrypted message")]
    Signature,
    /// The encrypted message is not Base64 of whole AES blocks.
    #[error("the encrypted message is not Base64 of whole 32-byte blocks")]
    Ciphertext,
    /// The padding is not PKCS#7 to 32 bytes.
    #[error("the decrypted message has no valid PKCS#7 padding")]
    Padding,
    /// The length prefix is larger than the message.
    #[error("the decrypted message's length field exceeds its size")]
    Length,
    /// The receive id is not the configured corp id.
    #[error("the decrypted message is for another receive id (corp id)")]
    ReceiveId,
    /// The message is not UTF-8.
    #[error("the decrypted message is not UTF-8")]
    Utf8,
}

/// An encrypted, signed message: what WeCom sends and what a passive reply carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// Base64 of the AES ciphertext (`Encrypt`, or `echostr` for the URL check).
    pub encrypt: String,
    /// `msg_signature`.
    pub signature: String,
    /// `timestamp` (unix seconds, as text).
    pub timestamp: String,
    /// `nonce`.
    pub nonce: String,
}

impl Sealed {
    /// The reply envelope `<xml><Encrypt/><MsgSignature/><TimeStamp/><Nonce/></xml>`.
    #[must_use]
    pub fn to_xml(&self) -> String {
        format!(
            "<xml><Encrypt><![CDATA[{}]]></Encrypt><MsgSignature><![CDATA[{}]]></MsgSignature>\
             <TimeStamp>{}</TimeStamp><Nonce><![CDATA[{}]]></Nonce></xml>",
            self.encrypt, self.signature, self.timestamp, self.nonce
        )
    }
}

/// One callback configuration: the Token, the EncodingAESKey and the receive id (corp id).
#[derive(Clone)]
pub struct Crypto {
    token: String,
    key: [u8; 32],
    receive_id: String,
    window: u64,
}

impl std::fmt::Debug for Crypto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Crypto")
            .field("receive_id", &self.receive_id)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl Crypto {
    /// A callback configuration with the [`DEFAULT_WINDOW_SECONDS`] timestamp window.
    ///
    /// # Errors
    /// [`CryptoError::Token`] or [`CryptoError::Key`].
    pub fn new(token: &str, encoding_aes_key: &str, receive_id: &str) -> Result<Self, CryptoError> {
        let token = token.trim();
        if token.is_empty() || token.len() > 32 || !token.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(CryptoError::Token);
        }
        let key = encoding_aes_key.trim();
        if key.len() != 43 || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/') {
            return Err(CryptoError::Key);
        }
        let bytes = LENIENT.decode(format!("{key}=")).map_err(|_| CryptoError::Key)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::Key)?;
        Ok(Self { token: token.to_owned(), key, receive_id: receive_id.to_owned(), window: DEFAULT_WINDOW_SECONDS })
    }

    /// The same configuration with another timestamp window (seconds either way; 0 turns the
    /// check off, for replaying captured callbacks in tests only).
    #[must_use]
    pub fn with_window(mut self, seconds: u64) -> Self {
        self.window = seconds;
        self
    }

    /// The receive id (corp id) messages must carry.
    #[must_use]
    pub fn receive_id(&self) -> &str {
        &self.receive_id
    }

    /// `msg_signature` over (token, timestamp, nonce, encrypt).
    #[must_use]
    pub fn signature(&self, timestamp: &str, nonce: &str, encrypt: &str) -> String {
        let mut parts = [self.token.as_str(), timestamp, nonce, encrypt];
        parts.sort_unstable();
        let mut h = Sha1::new();
        for p in parts {
            h.update(p.as_bytes());
        }
        hex::encode(h.finalize())
    }

    /// Checks the timestamp window and `msg_signature`, then decrypts `encrypt` and checks its
    /// receive id: the URL check (`encrypt` = `echostr`) and every event POST go through here.
    ///
    /// # Errors
    /// See [`CryptoError`]; the checks run in that order, so a stale or forged request is
    /// refused before any decryption.
    pub fn open(
        &self,
        msg_signature: &str,
        timestamp: &str,
        nonce: &str,
        encrypt: &str,
        now: i64,
    ) -> Result<String, CryptoError> {
        let ts: i64 = timestamp.trim().parse().map_err(|_| CryptoError::BadTimestamp)?;
        let skew = ts.abs_diff(now);
        if self.window > 0 && skew > self.window {
            return Err(CryptoError::Stale(skew));
        }
        let given = msg_signature.trim();
        if given.len() != 40 || !given.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(CryptoError::MalformedSignature);
        }
        let expected = self.signature(timestamp, nonce, encrypt);
        if !bool::from(expected.as_bytes().ct_eq(given.to_ascii_lowercase().as_bytes())) {
            return Err(CryptoError::Signature);
        }
        self.decrypt(encrypt)
    }

    /// Decrypts one `Encrypt` value and checks its receive id (no signature check: use
    /// [`Crypto::open`] on anything received).
    ///
    /// # Errors
    /// [`CryptoError::Ciphertext`], [`CryptoError::Padding`], [`CryptoError::Length`],
    /// [`CryptoError::ReceiveId`], [`CryptoError::Utf8`].
    pub fn decrypt(&self, encrypt: &str) -> Result<String, CryptoError> {
        let mut buf = LENIENT.decode(encrypt.trim()).map_err(|_| CryptoError::Ciphertext)?;
        if buf.is_empty() || !buf.len().is_multiple_of(PAD_BLOCK) {
            return Err(CryptoError::Ciphertext);
        }
        let iv: [u8; 16] = self.key[..16].try_into().expect("16 of 32 bytes");
        let plain = cbc::Decryptor::<Aes256>::new(&self.key.into(), &iv.into())
            .decrypt_padded::<NoPadding>(&mut buf)
            .map_err(|_| CryptoError::Ciphertext)?;
        let plain = unpad(plain)?;
        if plain.len() < 20 {
            return Err(CryptoError::Length);
        }
        let len = u32::from_be_bytes(plain[16..20].try_into().expect("4 bytes")) as usize;
        let rest = &plain[20..];
        if len > rest.len() {
            return Err(CryptoError::Length);
        }
        let (msg, receive_id) = rest.split_at(len);
        let id = self.receive_id.as_bytes();
        if receive_id.len() != id.len() || !bool::from(receive_id.ct_eq(id)) {
            return Err(CryptoError::ReceiveId);
        }
        String::from_utf8(msg.to_vec()).map_err(|_| CryptoError::Utf8)
    }

    /// Encrypts `msg` with the given 16 random bytes (the caller draws them; tests fix them).
    #[must_use]
    pub fn encrypt(&self, msg: &str, random: [u8; 16]) -> String {
        let id = self.receive_id.as_bytes();
        let body = 16 + 4 + msg.len() + id.len();
        let pad = PAD_BLOCK - body % PAD_BLOCK;
        let mut buf = Vec::with_capacity(body + pad);
        buf.extend_from_slice(&random);
        buf.extend_from_slice(&u32::try_from(msg.len()).unwrap_or(u32::MAX).to_be_bytes());
        buf.extend_from_slice(msg.as_bytes());
        buf.extend_from_slice(id);
        // `pad` is 1..=32, so it fits in a byte.
        buf.resize(body + pad, pad as u8);
        let iv: [u8; 16] = self.key[..16].try_into().expect("16 of 32 bytes");
        let n = buf.len();
        let ct = cbc::Encryptor::<Aes256>::new(&self.key.into(), &iv.into())
            .encrypt_padded::<NoPadding>(&mut buf, n)
            .expect("the buffer is whole blocks");
        base64::engine::general_purpose::STANDARD.encode(ct)
    }

    /// Encrypts and signs `msg` (a passive reply, or a callback in a test's fake WeCom).
    #[must_use]
    pub fn seal(&self, msg: &str, timestamp: i64, nonce: &str, random: [u8; 16]) -> Sealed {
        let encrypt = self.encrypt(msg, random);
        let timestamp = timestamp.to_string();
        let signature = self.signature(&timestamp, nonce, &encrypt);
        Sealed { encrypt, signature, timestamp, nonce: nonce.to_owned() }
    }
}

/// Strips PKCS#7 padding to 32 bytes: the last byte n is 1..=32 and the last n bytes are all
/// n. The check reads every candidate byte whatever the outcome (constant time in the content).
fn unpad(plain: &[u8]) -> Result<&[u8], CryptoError> {
    let n = *plain.last().ok_or(CryptoError::Padding)?;
    let len = plain.len();
    let mut bad = subtle::Choice::from(u8::from(n == 0 || usize::from(n) > PAD_BLOCK || usize::from(n) > len));
    let tail = &plain[len.saturating_sub(PAD_BLOCK)..];
    for (i, b) in tail.iter().rev().enumerate() {
        // Bytes within the padding must equal n; the others are read and ignored.
        let inside = subtle::Choice::from(u8::from(i < usize::from(n)));
        bad |= inside & !b.ct_eq(&n);
    }
    if bool::from(bad) {
        return Err(CryptoError::Padding);
    }
    Ok(&plain[..len - usize::from(n)])
}
