//! The outbound port: how a reply (and a handoff) reaches the buyer's platform. [`Platform`] is
//! the trait adapters implement, [`Dispatch`] picks each shop's adapter, and [`HttpPlatform`] is
//! the generic implementation: POST the reply as JSON with an `Idempotency-Key`.

use std::{collections::HashMap, sync::Arc};

use futures_util::future::BoxFuture;

pub use super::http::Outcome;
use super::http::post;

/// The outbound port: how a reply reaches the buyer's platform. The generic HTTP
/// implementation is [`HttpPlatform`]; platform adapters implement the same trait.
pub trait Platform: Send + Sync {
    /// Delivers one reply. `key` is the idempotency key, the same on every attempt.
    fn send<'a>(&'a self, key: &'a str, reply: &'a serde_json::Value) -> BoxFuture<'a, Outcome>;

    /// Whether [`Platform::handoff`] does anything for `shop` (then drafts routed to a person
    /// queue a handoff). Default: no.
    fn hands_off(&self, _shop: &str) -> bool {
        false
    }

    /// Whether a draft routed to review (not only an escalation) hands the conversation off.
    /// Default: yes (Chatwoot opens it for its agents).
    fn hands_off_on_review(&self, _shop: &str) -> bool {
        true
    }

    /// The channel's reply budget for `shop` (WeCom Kf: 5 within 48 h of the buyer's message),
    /// enforced by the pipeline, the review and the sender. Default: none.
    fn reply_budget(&self, _shop: &str) -> Option<crate::domain::schedule::Budget> {
        None
    }

    /// The first step of a handoff: gives a conversation to a person on the platform's side
    /// (e.g. Chatwoot opens it). Must be harmless to repeat. Default: nothing.
    fn open_for_person<'a>(&'a self, _shop: &'a str, _conversation: &'a str) -> BoxFuture<'a, Outcome> {
        Box::pin(async { Outcome::Sent })
    }

    /// The second step of a handoff: leaves `note` (the bot's draft and why) for the person,
    /// where the platform can. `maybe_stored`: an earlier attempt may have reached the platform
    /// (its answer was lost), so look for the note before posting it again. Default: nothing.
    fn leave_note<'a>(
        &'a self,
        _shop: &'a str,
        _conversation: &'a str,
        _note: &'a str,
        _maybe_stored: bool,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(async { Outcome::Sent })
    }
}

/// Routes each reply to its shop's platform (an adapter), or to `default` (the generic HTTP
/// platform) for shops no adapter serves.
pub struct Dispatch {
    /// Shop id to its adapter.
    pub by_shop: HashMap<String, Arc<dyn Platform>>,
    /// Everything else.
    pub default: Arc<dyn Platform>,
}

impl Dispatch {
    fn pick(&self, shop: &str) -> &dyn Platform {
        self.by_shop.get(shop).map_or(self.default.as_ref(), |p| p.as_ref())
    }
}

impl Platform for Dispatch {
    fn send<'a>(&'a self, key: &'a str, reply: &'a serde_json::Value) -> BoxFuture<'a, Outcome> {
        self.pick(reply["shop_id"].as_str().unwrap_or_default()).send(key, reply)
    }

    fn hands_off(&self, shop: &str) -> bool {
        self.pick(shop).hands_off(shop)
    }

    fn hands_off_on_review(&self, shop: &str) -> bool {
        self.pick(shop).hands_off_on_review(shop)
    }

    fn reply_budget(&self, shop: &str) -> Option<crate::domain::schedule::Budget> {
        self.pick(shop).reply_budget(shop)
    }

    fn open_for_person<'a>(&'a self, shop: &'a str, conversation: &'a str) -> BoxFuture<'a, Outcome> {
        self.pick(shop).open_for_person(shop, conversation)
    }

    fn leave_note<'a>(
        &'a self,
        shop: &'a str,
        conversation: &'a str,
        note: &'a str,
        maybe_stored: bool,
    ) -> BoxFuture<'a, Outcome> {
        self.pick(shop).leave_note(shop, conversation, note, maybe_stored)
    }
}

/// POSTs the reply as JSON to one URL with an `Idempotency-Key` header.
pub struct HttpPlatform {
    /// The client.
    pub http: reqwest::Client,
    /// The endpoint.
    pub url: String,
}

impl Platform for HttpPlatform {
    fn send<'a>(&'a self, key: &'a str, reply: &'a serde_json::Value) -> BoxFuture<'a, Outcome> {
        Box::pin(post(&self.http, &self.url, key, reply))
    }
}
