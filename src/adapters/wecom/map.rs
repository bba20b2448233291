//! Maps one `sync_msg` entry onto what shouhou does with it: a buyer message becomes the
//! generic inbound event (`domain::event`); session events become ownership changes.
//!
//! A conversation is one buyer on one customer-service account: its id is
//! `{open_kfid}:{external_userid}` (both are needed to answer, and neither contains `:`).

use jiff::Timestamp;

use super::kf::{
    CHANGE_END, CHANGE_FROM_POOL, CHANGE_TRANSFER, EVENT_MSG_SEND_FAIL, EVENT_SESSION_STATUS_CHANGE, KfMessage,
    ORIGIN_CUSTOMER, ORIGIN_SERVICER, ORIGIN_SYSTEM,
};
use crate::domain::event::{Attachment, InboundEvent, Sender};

/// The `platform` of events from this adapter.
pub const PLATFORM: &str = "wecom";

/// What one `sync_msg` entry means for shouhou.
#[derive(Debug, Clone, PartialEq)]
pub enum Mapped {
    /// A buyer message: store it (it also renews the reply budget).
    Buyer(Box<InboundEvent>),
    /// A buyer message shouhou cannot read (location, link, mini program, …): no draft, but
    /// it still renews the reply budget.
    BuyerOther {
        /// The conversation.
        conversation_id: String,
        /// When.
        sent_at: Option<Timestamp>,
        /// Its `msgtype`.
        msgtype: String,
    },
    /// A person (servicer) has the conversation: shouhou stops sending on its own.
    TakenOver {
        /// The conversation.
        conversation_id: String,
        /// The servicer's WeCom user id.
        servicer: String,
    },
    /// The session ended: the conversation is nobody's until the buyer writes again.
    Ended {
        /// The conversation.
        conversation_id: String,
    },
    /// WeChat could not deliver one of our messages.
    SendFailed {
        /// The conversation.
        conversation_id: String,
        /// Our msgid.
        msgid: String,
        /// WeCom's `fail_type`.
        fail_type: u32,
    },
    /// Nothing to do (why).
    Ignore(&'static str),
}

/// The conversation id of a buyer on an account.
#[must_use]
pub fn conversation_id(open_kfid: &str, external_userid: &str) -> String {
    format!("{open_kfid}:{external_userid}")
}

/// The account and the buyer of a conversation id, when it is one of ours.
#[must_use]
pub fn split_conversation(id: &str) -> Option<(&str, &str)> {
    let (kf, user) = id.split_once(':')?;
    (!kf.is_empty() && !user.is_empty()).then_some((kf, user))
}

/// Maps one entry.
///
/// # Errors
/// An entry that lacks what its kind needs (the message names the field).
pub fn map_message(m: &KfMessage, shop: &str) -> Result<Mapped, String> {
    if m.msgid.trim().is_empty() {
        return Err("`msgid` is missing".into());
    }
    let sent_at = (m.send_time > 0).then(|| Timestamp::from_second(m.send_time).ok()).flatten();
    match m.origin {
        ORIGIN_CUSTOMER => {
            let kf = m.open_kfid.as_deref().filter(|s| !s.is_empty()).ok_or("`open_kfid` is missing")?;
            let user = m.external_userid.as_deref().filter(|s| !s.is_empty()).ok_or("`external_userid` is missing")?;
            let conversation_id = conversation_id(kf, user);
            let media = |kind: &str, media: Option<&super::kf::Media>| {
                media.filter(|x| !x.media_id.is_empty()).map(|x| Attachment {
                    kind: kind.to_owned(),
                    url: None,
                    media_id: Some(x.media_id.clone()),
                })
            };
            let (text, attachment) = match m.msgtype.as_str() {
                "text" => (m.text.as_ref().map(|t| t.content.clone()).unwrap_or_default(), None),
                "image" => {
                    (String::new(), Some(media("image", m.image.as_ref()).ok_or("`image.media_id` is missing")?))
                }
                "voice" => {
                    (String::new(), Some(media("voice", m.voice.as_ref()).ok_or("`voice.media_id` is missing")?))
                }
                "video" => {
                    (String::new(), Some(media("video", m.video.as_ref()).ok_or("`video.media_id` is missing")?))
                }
                "file" => (String::new(), Some(media("file", m.file.as_ref()).ok_or("`file.media_id` is missing")?)),
                other => {
                    return Ok(Mapped::BuyerOther { conversation_id, sent_at, msgtype: other.to_owned() });
                }
            };
            if text.trim().is_empty() && attachment.is_none() {
                return Ok(Mapped::BuyerOther { conversation_id, sent_at, msgtype: m.msgtype.clone() });
            }
            Ok(Mapped::Buyer(Box::new(InboundEvent {
                message_id: m.msgid.clone(),
                shop_id: Some(shop.to_owned()),
                platform: Some(PLATFORM.into()),
                conversation_id,
                sender: Sender { account_id: user.to_owned(), nick: None },
                sent_at,
                text,
                attachments: attachment.into_iter().collect(),
                order: None,
            })))
        }
        ORIGIN_SERVICER => {
            // A person wrote from the WeCom client: they have the conversation.
            let (Some(kf), Some(user)) = (m.open_kfid.as_deref(), m.external_userid.as_deref()) else {
                return Err("a servicer message without `open_kfid` or `external_userid`".into());
            };
            match m.servicer_userid.as_deref().filter(|s| !s.is_empty()) {
                Some(s) => Ok(Mapped::TakenOver { conversation_id: conversation_id(kf, user), servicer: s.to_owned() }),
                None => Ok(Mapped::Ignore("a servicer message without `servicer_userid`")),
            }
        }
        ORIGIN_SYSTEM => {
            let Some(e) = &m.event else {
                return Ok(Mapped::Ignore("a system message without `event`"));
            };
            let conv = || -> Result<String, String> {
                let kf = e.open_kfid.as_deref().or(m.open_kfid.as_deref()).filter(|s| !s.is_empty());
                let user = e.external_userid.as_deref().or(m.external_userid.as_deref()).filter(|s| !s.is_empty());
                match (kf, user) {
                    (Some(k), Some(u)) => Ok(conversation_id(k, u)),
                    _ => Err(format!("`{}` event without `open_kfid` or `external_userid`", e.event_type)),
                }
            };
            match e.event_type.as_str() {
                EVENT_SESSION_STATUS_CHANGE => match e.change_type {
                    Some(CHANGE_FROM_POOL | CHANGE_TRANSFER) => {
                        match e.new_servicer_userid.as_deref().filter(|s| !s.is_empty()) {
                            Some(s) => Ok(Mapped::TakenOver { conversation_id: conv()?, servicer: s.to_owned() }),
                            None => Err("`session_status_change` without `new_servicer_userid`".into()),
                        }
                    }
                    Some(CHANGE_END) => Ok(Mapped::Ended { conversation_id: conv()? }),
                    _ => Ok(Mapped::Ignore("a session status change of an unknown type")),
                },
                EVENT_MSG_SEND_FAIL => Ok(Mapped::SendFailed {
                    conversation_id: conv()?,
                    msgid: e.fail_msgid.clone().ok_or("`msg_send_fail` without `fail_msgid`")?,
                    fail_type: e.fail_type.unwrap_or(0),
                }),
                _ => Ok(Mapped::Ignore("an event shouhou does not act on")),
            }
        }
        _ => Ok(Mapped::Ignore("a message of an unknown origin")),
    }
}
