//! The XML of WeCom callbacks: the outer envelope (`<xml><ToUserName/><AgentID/><Encrypt/></xml>`)
//! and the decrypted event (`<xml><ToUserName/><CreateTime/><MsgType/><Event/><Token/><OpenKfId/></xml>`).
//!
//! Parsed with `quick-xml`'s serde support: maintained, small, and it neither loads DTDs nor
//! expands external entities, so a hostile body cannot make it read files or blow up in
//! memory (the body size is capped before it gets here). CDATA and plain text are both taken.

use serde::Deserialize;

/// The callback body before decryption.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Envelope {
    /// The corp id (unencrypted copy; the encrypted one is what counts).
    #[serde(rename = "ToUserName", default)]
    pub to_user_name: Option<String>,
    /// The receiving app, when WeCom sends it.
    #[serde(rename = "AgentID", default)]
    pub agent_id: Option<String>,
    /// Base64 of the AES ciphertext.
    #[serde(rename = "Encrypt")]
    pub encrypt: String,
}

/// A decrypted callback event.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CallbackEvent {
    /// The corp id.
    #[serde(rename = "ToUserName", default)]
    pub to_user_name: Option<String>,
    /// Unix seconds.
    #[serde(rename = "CreateTime", default)]
    pub create_time: Option<i64>,
    /// `event` for Kf.
    #[serde(rename = "MsgType", default)]
    pub msg_type: Option<String>,
    /// `kf_msg_or_event` for Kf; other WeCom events are acknowledged and ignored.
    #[serde(rename = "Event", default)]
    pub event: Option<String>,
    /// The token for `kf/sync_msg` (valid for 10 minutes, per the SDK comments).
    #[serde(rename = "Token", default)]
    pub token: Option<String>,
    /// The customer-service account that has news.
    #[serde(rename = "OpenKfId", default)]
    pub open_kfid: Option<String>,
}

/// The event name that tells a Kf account has messages or events to pull.
pub const KF_MSG_OR_EVENT: &str = "kf_msg_or_event";

/// A body that is not the XML expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct XmlError(pub String);

/// Parses the callback envelope.
///
/// # Errors
/// Not XML, or no non-empty `Encrypt` element.
pub fn envelope(body: &str) -> Result<Envelope, XmlError> {
    let e: Envelope = quick_xml::de::from_str(body)
        .map_err(|e| XmlError(format!("the body is not a WeCom callback envelope (<xml> with <Encrypt>): {e}")))?;
    if e.encrypt.trim().is_empty() {
        return Err(XmlError("<Encrypt> is empty".into()));
    }
    Ok(e)
}

/// Parses a decrypted callback event.
///
/// # Errors
/// Not XML of the expected shape.
pub fn callback_event(plain: &str) -> Result<CallbackEvent, XmlError> {
    quick_xml::de::from_str(plain).map_err(|e| XmlError(format!("the decrypted callback is not a WeCom event: {e}")))
}

impl CallbackEvent {
    /// The `sync_msg` token when this is a `kf_msg_or_event` with one.
    #[must_use]
    pub fn kf_token(&self) -> Option<&str> {
        if self.event.as_deref() == Some(KF_MSG_OR_EVENT) {
            self.token.as_deref().filter(|t| !t.trim().is_empty())
        } else {
            None
        }
    }
}
