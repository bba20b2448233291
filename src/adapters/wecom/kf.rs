//! The JSON of the WeCom Kf API calls shouhou makes: `gettoken`, `kf/sync_msg`, `kf/send_msg`,
//! `kf/service_state/get` and `kf/service_state/trans`.
//!
//! The shapes follow the WeCom Kf API reference as the Go SDK `silenceper/wechat` (`work/kf/`)
//! spells them; fields shouhou does not use are left out (serde ignores unknown fields, so new
//! ones WeCom adds do no harm). Every answer carries `errcode` (0 = ok) and `errmsg`.

use serde::{Deserialize, Serialize};

/// `errcode` and `errmsg`, common to every answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Status {
    /// 0 on success.
    #[serde(default)]
    pub errcode: i64,
    /// A description (not shown to buyers, may be logged).
    #[serde(default)]
    pub errmsg: String,
}

/// `GET cgi-bin/gettoken?corpid=…&corpsecret=…`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct GetToken {
    /// Status.
    #[serde(flatten)]
    pub status: Status,
    /// The token.
    #[serde(default)]
    pub access_token: String,
    /// Seconds it lives (7200 in the docs' examples).
    #[serde(default)]
    pub expires_in: i64,
}

/// `POST cgi-bin/kf/sync_msg` request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncMsgRequest {
    /// `next_cursor` of the previous page; absent on the very first pull.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// The callback's `Token` (valid 10 minutes); without it the call is strictly rate-limited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Page size (1000 at most, the default).
    pub limit: u32,
    /// Pull only this customer-service account's messages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_kfid: Option<String>,
}

/// `POST cgi-bin/kf/sync_msg` answer.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct SyncMsg {
    /// Status.
    #[serde(flatten)]
    pub status: Status,
    /// The cursor for the next call: stored with the messages it yields.
    #[serde(default)]
    pub next_cursor: String,
    /// 1 when more is to be pulled. An empty `msg_list` with `has_more` = 1 is possible.
    #[serde(default)]
    pub has_more: u32,
    /// The messages and events.
    #[serde(default)]
    pub msg_list: Vec<KfMessage>,
}

/// `origin` of a message written by the buyer.
pub const ORIGIN_CUSTOMER: u32 = 3;
/// `origin` of a system event.
pub const ORIGIN_SYSTEM: u32 = 4;
/// `origin` of a message a servicer (a person) sent from the WeCom client.
pub const ORIGIN_SERVICER: u32 = 5;

/// One entry of `msg_list`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct KfMessage {
    /// Message id: the de-duplication key.
    pub msgid: String,
    /// The customer-service account (absent on events: see [`KfEvent`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_kfid: Option<String>,
    /// The buyer (absent on events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_userid: Option<String>,
    /// The servicer, on messages a person sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub servicer_userid: Option<String>,
    /// Unix seconds.
    #[serde(default)]
    pub send_time: i64,
    /// [`ORIGIN_CUSTOMER`], [`ORIGIN_SYSTEM`] or [`ORIGIN_SERVICER`].
    #[serde(default)]
    pub origin: u32,
    /// `text`, `image`, `voice`, `video`, `file`, `location`, `link`, `event`, …
    #[serde(default)]
    pub msgtype: String,
    /// Text content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<Text>,
    /// Image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<Media>,
    /// Voice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice: Option<Media>,
    /// Video.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<Media>,
    /// File.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<Media>,
    /// Event (when `msgtype` = `event`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<KfEvent>,
}

/// A text body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Text {
    /// The text.
    #[serde(default)]
    pub content: String,
    /// The menu item a buyer clicked, when the text is a menu answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub menu_id: Option<String>,
}

/// A media reference (fetch it with `cgi-bin/media/get` within 3 days; shouhou keeps the id).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Media {
    /// The media id.
    #[serde(default)]
    pub media_id: String,
}

/// `event_type` when a buyer enters a session.
pub const EVENT_ENTER_SESSION: &str = "enter_session";
/// `event_type` when a message could not be delivered.
pub const EVENT_MSG_SEND_FAIL: &str = "msg_send_fail";
/// `event_type` when a session is taken, transferred or ended.
pub const EVENT_SESSION_STATUS_CHANGE: &str = "session_status_change";

/// `change_type`: a servicer took the session from the queue.
pub const CHANGE_FROM_POOL: u32 = 1;
/// `change_type`: the session was transferred to another servicer.
pub const CHANGE_TRANSFER: u32 = 2;
/// `change_type`: the session was ended.
pub const CHANGE_END: u32 = 3;

/// A system event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct KfEvent {
    /// `enter_session`, `msg_send_fail`, `session_status_change`, `servicer_status_change`, …
    #[serde(default)]
    pub event_type: String,
    /// The customer-service account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_kfid: Option<String>,
    /// The buyer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_userid: Option<String>,
    /// `session_status_change`: [`CHANGE_FROM_POOL`], [`CHANGE_TRANSFER`] or [`CHANGE_END`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_type: Option<u32>,
    /// `session_status_change`: the servicer before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_servicer_userid: Option<String>,
    /// `session_status_change`: the servicer now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_servicer_userid: Option<String>,
    /// `msg_send_fail`: the message that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_msgid: Option<String>,
    /// `msg_send_fail`: why (the SDK lists 4 = session older than 48 h, 6 = over the 5-message limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_type: Option<u32>,
}

/// `POST cgi-bin/kf/send_msg` request (text only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SendMsgRequest {
    /// The buyer's `external_userid`.
    pub touser: String,
    /// The customer-service account.
    pub open_kfid: String,
    /// Our id (at most 32 of `[0-9a-zA-Z_-]`): the same draft always sends the same msgid.
    pub msgid: String,
    /// `text`.
    pub msgtype: &'static str,
    /// The text (at most 2048 bytes per the SDK comment).
    pub text: SendText,
}

/// The text of a reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SendText {
    /// The text.
    pub content: String,
}

/// The most bytes of one text message, per the SDK comment on `send_msg`.
pub const MAX_TEXT_BYTES: usize = 2048;

/// `POST cgi-bin/kf/send_msg` answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct SendMsg {
    /// Status.
    #[serde(flatten)]
    pub status: Status,
    /// The message id (ours, echoed).
    #[serde(default)]
    pub msgid: String,
}

/// `POST cgi-bin/kf/service_state/get` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceStateGetRequest {
    /// The customer-service account.
    pub open_kfid: String,
    /// The buyer.
    pub external_userid: String,
}

/// `POST cgi-bin/kf/service_state/get` answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ServiceStateGet {
    /// Status.
    #[serde(flatten)]
    pub status: Status,
    /// The state (see [`crate::config::wecom::ServiceStates`]).
    #[serde(default)]
    pub service_state: i64,
    /// The servicer, when a person has the session.
    #[serde(default)]
    pub servicer_userid: String,
}

/// `POST cgi-bin/kf/service_state/trans` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceStateTransRequest {
    /// The customer-service account.
    pub open_kfid: String,
    /// The buyer.
    pub external_userid: String,
    /// The state to move to.
    pub service_state: i64,
    /// The servicer to hand to (required for the "person" state).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub servicer_userid: Option<String>,
}

/// `POST cgi-bin/kf/service_state/trans` answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ServiceStateTrans {
    /// Status.
    #[serde(flatten)]
    pub status: Status,
    /// A code for the event-response message API (unused).
    #[serde(default)]
    pub msg_code: String,
}

/// How to treat an `errcode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrKind {
    /// 0.
    Ok,
    /// The access token is invalid, expired or missing: fetch a new one and try again once.
    Token,
    /// Busy or over a frequency limit: try again later.
    Retry,
    /// Anything else: the request is wrong and will not become right.
    Reject,
}

/// `errcode`s that mean the access token is bad: 40014 invalid, 42001 expired, 41001 missing
/// (the WeCom global error-code list, as the Go SDK names them).
pub const TOKEN_ERRCODES: [i64; 3] = [40014, 42001, 41001];

/// `errcode`s worth retrying: -1 system busy, 45009 over the frequency limit, 45033 too many
/// concurrent calls.
pub const RETRY_ERRCODES: [i64; 3] = [-1, 45009, 45033];

/// Classifies an `errcode`.
#[must_use]
pub fn err_kind(errcode: i64) -> ErrKind {
    match errcode {
        0 => ErrKind::Ok,
        c if TOKEN_ERRCODES.contains(&c) => ErrKind::Token,
        c if RETRY_ERRCODES.contains(&c) => ErrKind::Retry,
        _ => ErrKind::Reject,
    }
}
