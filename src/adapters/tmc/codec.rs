//! The top-link "MessageIO" binary frame used by the Taobao message service (TMC): one
//! WebSocket binary message is one frame. Pure encode/decode, no I/O.
//!
//! Layout (all integers little-endian, as the official Java `MessageIO` sets
//! `ByteOrder.LITTLE_ENDIAN`):
//!
//! ```text
//! u8 protocol_version (2) | u8 message_type (0 CONNECT, 1 CONNECTACK, 2 SEND, 3 SENDACK)
//! repeat { u16 header_type; body } until header_type == 0
//!   1 custom:       counted_string key, u8 value_format, value
//!   2 statusCode:   i32        3 statusPhrase: counted_string
//!   4 flag:         i32        5 token:        counted_string
//! counted_string = i32 byte length + UTF-8 bytes (0 = empty)
//! value_format: 0 void, 1 counted string, 2 byte, 3 int16, 4 int32, 5 int64,
//!               6 date (i64 ms since the epoch), 7 byte array (i32 length + bytes)
//! ```
//!
//! Decoding never panics: a short, negative-length, non-UTF-8 or unknown-typed frame is a
//! [`CodecError`] naming the byte offset.

use md5::{Digest, Md5};

/// The protocol version every frame carries.
pub const PROTOCOL_VERSION: u8 = 2;

/// The SDK string sent on CONNECT (the literal the ports copy from the Java SDK).
pub const SDK: &str = "top-sdk-java-201403304";

/// The kind of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// Client login.
    Connect,
    /// Server answer to a login (carries the token).
    ConnectAck,
    /// A message in either direction.
    Send,
    /// An answer to a send (ignored by every client port).
    SendAck,
    /// Any other byte (kept so a newer server does not break decoding).
    Other(u8),
}

impl MessageType {
    /// The wire byte.
    #[must_use]
    pub fn byte(self) -> u8 {
        match self {
            Self::Connect => 0,
            Self::ConnectAck => 1,
            Self::Send => 2,
            Self::SendAck => 3,
            Self::Other(b) => b,
        }
    }

    /// From the wire byte.
    #[must_use]
    pub fn from_byte(b: u8) -> Self {
        match b {
            0 => Self::Connect,
            1 => Self::ConnectAck,
            2 => Self::Send,
            3 => Self::SendAck,
            other => Self::Other(other),
        }
    }
}

/// A custom header value, in its wire format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Format 0: no value (null).
    Void,
    /// Format 1: a counted UTF-8 string.
    Str(String),
    /// Format 2: one byte (the Java SDK's `MessageKind` constants are `Byte`).
    Byte(u8),
    /// Format 3.
    Int16(i16),
    /// Format 4.
    Int32(i32),
    /// Format 5 (message ids).
    Int64(i64),
    /// Format 6: milliseconds since the epoch.
    Date(i64),
    /// Format 7.
    Bytes(Vec<u8>),
}

impl Value {
    /// The integer in any integer format (a byte, int16, int32, int64 or date), or a
    /// decimal string; tolerant because ports differ in the width they pick.
    #[must_use]
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Self::Byte(v) => Some(i64::from(*v)),
            Self::Int16(v) => Some(i64::from(*v)),
            Self::Int32(v) => Some(i64::from(*v)),
            Self::Int64(v) | Self::Date(v) => Some(*v),
            Self::Str(s) => s.trim().parse().ok(),
            Self::Void | Self::Bytes(_) => None,
        }
    }

    /// The text of a string value (byte arrays as UTF-8 when they are).
    #[must_use]
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            Self::Bytes(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }
}

/// Header type codes.
mod header {
    pub const END: u16 = 0;
    pub const CUSTOM: u16 = 1;
    pub const STATUS_CODE: u16 = 2;
    pub const STATUS_PHRASE: u16 = 3;
    pub const FLAG: u16 = 4;
    pub const TOKEN: u16 = 5;
}

/// One TMC frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Protocol version (2).
    pub protocol_version: u8,
    /// Frame kind.
    pub message_type: MessageType,
    /// Set by the server on errors.
    pub status_code: Option<i32>,
    /// The server's error text.
    pub status_phrase: Option<String>,
    /// A correlation flag (ports send 1 on CONNECT).
    pub flag: Option<i32>,
    /// The session token from CONNECTACK, carried on every later client frame.
    pub token: Option<String>,
    /// Custom headers in wire order.
    pub headers: Vec<(String, Value)>,
}

/// Message kinds (`__kind` header), from the SDK's `MessageKind`.
pub mod kind {
    /// Ask the server to push what is pending.
    pub const PULL_REQUEST: i64 = 1;
    /// Acknowledge a message by id.
    pub const CONFIRM: i64 = 2;
    /// A data message.
    pub const DATA: i64 = 3;
    /// Negative acknowledgement: redeliver later.
    pub const FAILED: i64 = 20;
}

impl Frame {
    /// An empty frame of `message_type`.
    #[must_use]
    pub fn new(message_type: MessageType) -> Self {
        Self {
            protocol_version: PROTOCOL_VERSION,
            message_type,
            status_code: None,
            status_phrase: None,
            flag: None,
            token: None,
            headers: Vec::new(),
        }
    }

    /// Adds a custom header.
    #[must_use]
    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.headers.push((key.to_owned(), value));
        self
    }

    /// The first custom header named `key`.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.headers.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The `__kind` header as a number.
    #[must_use]
    pub fn kind(&self) -> Option<i64> {
        self.get("__kind").and_then(Value::as_i64)
    }

    /// The login frame: signed `app_key`, `group_name`, `timestamp` (epoch ms, as text), the
    /// `sdk` string, and `flag = 1` (as the ports send it).
    #[must_use]
    pub fn connect(app_key: &str, group: &str, timestamp_ms: i64, secret: &str) -> Self {
        let ts = timestamp_ms.to_string();
        let mut f = Self::new(MessageType::Connect)
            .with("timestamp", Value::Str(ts.clone()))
            .with("app_key", Value::Str(app_key.to_owned()))
            .with("sdk", Value::Str(SDK.to_owned()))
            .with("sign", Value::Str(sign(app_key, group, &ts, secret)))
            .with("group_name", Value::Str(group.to_owned()));
        f.flag = Some(1);
        f
    }

    /// A confirm of message `id` (`__kind` as a byte, `id` as int64, as the Java SDK writes them).
    #[must_use]
    pub fn confirm(token: &str, id: i64) -> Self {
        let mut f =
            Self::new(MessageType::Send).with("__kind", Value::Byte(kind::CONFIRM as u8)).with("id", Value::Int64(id));
        f.token = Some(token.to_owned());
        f
    }

    /// A pull request (the SDK's compensation for missed pushes).
    #[must_use]
    pub fn pull(token: &str) -> Self {
        let mut f = Self::new(MessageType::Send).with("__kind", Value::Byte(kind::PULL_REQUEST as u8));
        f.token = Some(token.to_owned());
        f
    }

    /// Encodes in the Java writer's order: statusCode, statusPhrase, flag, token, custom
    /// headers, end of headers. Empty strings are left out, as the Java writer does.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(64);
        b.push(self.protocol_version);
        b.push(self.message_type.byte());
        if let Some(c) = self.status_code {
            b.extend_from_slice(&header::STATUS_CODE.to_le_bytes());
            b.extend_from_slice(&c.to_le_bytes());
        }
        if let Some(p) = self.status_phrase.as_deref().filter(|p| !p.is_empty()) {
            b.extend_from_slice(&header::STATUS_PHRASE.to_le_bytes());
            put_str(&mut b, p);
        }
        if let Some(f) = self.flag {
            b.extend_from_slice(&header::FLAG.to_le_bytes());
            b.extend_from_slice(&f.to_le_bytes());
        }
        if let Some(t) = self.token.as_deref().filter(|t| !t.is_empty()) {
            b.extend_from_slice(&header::TOKEN.to_le_bytes());
            put_str(&mut b, t);
        }
        for (k, v) in &self.headers {
            b.extend_from_slice(&header::CUSTOM.to_le_bytes());
            put_str(&mut b, k);
            match v {
                Value::Void => b.push(0),
                Value::Str(s) => {
                    b.push(1);
                    put_str(&mut b, s);
                }
                Value::Byte(x) => b.extend_from_slice(&[2, *x]),
                Value::Int16(x) => {
                    b.push(3);
                    b.extend_from_slice(&x.to_le_bytes());
                }
                Value::Int32(x) => {
                    b.push(4);
                    b.extend_from_slice(&x.to_le_bytes());
                }
                Value::Int64(x) => {
                    b.push(5);
                    b.extend_from_slice(&x.to_le_bytes());
                }
                Value::Date(x) => {
                    b.push(6);
                    b.extend_from_slice(&x.to_le_bytes());
                }
                Value::Bytes(x) => {
                    b.push(7);
                    b.extend_from_slice(&len_i32(x.len()).to_le_bytes());
                    b.extend_from_slice(x);
                }
            }
        }
        b.extend_from_slice(&header::END.to_le_bytes());
        b
    }

    /// Decodes one frame. Bytes after the end-of-headers mark are ignored, as the Java reader
    /// ignores them.
    ///
    /// # Errors
    /// A truncated frame, a negative length, text that is not UTF-8, an unknown header type
    /// or value format: each names the offset where it was found.
    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        let mut r = Reader { b: bytes, at: 0 };
        let protocol_version = r.u8()?;
        let message_type = MessageType::from_byte(r.u8()?);
        let mut f = Self::new(message_type);
        f.protocol_version = protocol_version;
        loop {
            let at = r.at;
            match r.u16()? {
                header::END => return Ok(f),
                header::CUSTOM => {
                    let key = r.string()?;
                    let value = r.value()?;
                    f.headers.push((key, value));
                }
                header::STATUS_CODE => f.status_code = Some(r.i32()?),
                header::STATUS_PHRASE => f.status_phrase = Some(r.string()?),
                header::FLAG => f.flag = Some(r.i32()?),
                header::TOKEN => f.token = Some(r.string()?),
                other => return Err(CodecError::UnknownHeaderType { at, header_type: other }),
            }
        }
    }
}

/// A frame that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The frame ends before a field does.
    #[error("frame truncated at byte {at}: {need} more bytes needed")]
    Truncated {
        /// Offset of the field.
        at: usize,
        /// Bytes missing.
        need: usize,
    },
    /// A counted string or byte array with a negative length.
    #[error("negative length {len} at byte {at}")]
    NegativeLength {
        /// Offset of the length.
        at: usize,
        /// The length read.
        len: i32,
    },
    /// A string that is not UTF-8.
    #[error("string at byte {at} is not UTF-8")]
    NotUtf8 {
        /// Offset of the string bytes.
        at: usize,
    },
    /// A header type other than 0-5.
    #[error("unknown header type {header_type} at byte {at}")]
    UnknownHeaderType {
        /// Offset of the header type.
        at: usize,
        /// The type read.
        header_type: u16,
    },
    /// A value format other than 0-7.
    #[error("unknown value format {format} at byte {at}")]
    UnknownValueFormat {
        /// Offset of the format byte.
        at: usize,
        /// The format read.
        format: u8,
    },
}

/// The login signature (TOP "md5" sign method): the three signed parameters sorted by name,
/// concatenated as name+value, wrapped in the secret on both sides, MD5, upper-case hex.
/// `sdk` is not signed.
#[must_use]
pub fn sign(app_key: &str, group: &str, timestamp: &str, secret: &str) -> String {
    let mut h = Md5::new();
    // Sorted by name: app_key < group_name < timestamp.
    for part in [secret, "app_key", app_key, "group_name", group, "timestamp", timestamp, secret] {
        h.update(part.as_bytes());
    }
    hex::encode_upper(h.finalize())
}

fn len_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn put_str(b: &mut Vec<u8>, s: &str) {
    b.extend_from_slice(&len_i32(s.len()).to_le_bytes());
    b.extend_from_slice(s.as_bytes());
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], CodecError> {
        let rest = self.b.len() - self.at;
        if n > rest {
            return Err(CodecError::Truncated { at: self.at, need: n - rest });
        }
        let s = &self.b[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, CodecError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    fn i32(&mut self) -> Result<i32, CodecError> {
        Ok(i32::from_le_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, CodecError> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    fn bytes(&mut self) -> Result<Vec<u8>, CodecError> {
        let at = self.at;
        let len = self.i32()?;
        let n = usize::try_from(len).map_err(|_| CodecError::NegativeLength { at, len })?;
        Ok(self.take(n)?.to_vec())
    }

    fn string(&mut self) -> Result<String, CodecError> {
        let at = self.at + 4;
        String::from_utf8(self.bytes()?).map_err(|_| CodecError::NotUtf8 { at })
    }

    fn value(&mut self) -> Result<Value, CodecError> {
        let at = self.at;
        Ok(match self.u8()? {
            0 => Value::Void,
            1 => Value::Str(self.string()?),
            2 => Value::Byte(self.u8()?),
            3 => Value::Int16(i16::from_le_bytes(self.array()?)),
            4 => Value::Int32(self.i32()?),
            5 => Value::Int64(self.i64()?),
            6 => Value::Date(self.i64()?),
            7 => Value::Bytes(self.bytes()?),
            format => return Err(CodecError::UnknownValueFormat { at, format }),
        })
    }
}
