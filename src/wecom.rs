//! WeChat customer service (WeCom Kf, `docs/wecom.md`): the pure and client parts of the
//! channel, independent of the service's layout.
//!
//! - [`crypto`]: the callback signature and AES (WXBizMsgCrypt);
//! - [`xml`]: the callback envelope and the decrypted event;
//! - [`kf`]: the JSON of `gettoken`, `sync_msg`, `send_msg`, `service_state`;
//! - [`map`]: a `sync_msg` entry → the generic inbound event or an ownership change;
//! - [`token`]: the access-token cache; [`client`]: the HTTP client that uses it.
//!
//! The service adapter (callback endpoint, puller, sender) builds on these.

pub mod client;
pub mod crypto;
pub mod kf;
pub mod map;
pub mod token;
pub mod xml;

/// The numbers of the Kf session states. The values come from the Go SDK's comments
/// (0 new, 1 smart assistant, 2 queue, 3 person, 4 ended), not from a page we could read, so
/// `[wecom]` may override them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceStates {
    /// States in which the API may send (new, assistant).
    #[serde(default = "default_send_states")]
    pub send: Vec<i64>,
    /// The queue of people (handoff target without a named servicer).
    #[serde(default = "default_queue")]
    pub queue: i64,
    /// A person has it (handoff target with a named servicer).
    #[serde(default = "default_person")]
    pub person: i64,
    /// The session ended.
    #[serde(default = "default_ended")]
    pub ended: i64,
}

fn default_send_states() -> Vec<i64> {
    vec![0, 1]
}
fn default_queue() -> i64 {
    2
}
fn default_person() -> i64 {
    3
}
fn default_ended() -> i64 {
    4
}

impl Default for ServiceStates {
    fn default() -> Self {
        Self { send: default_send_states(), queue: default_queue(), person: default_person(), ended: default_ended() }
    }
}
