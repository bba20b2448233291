//! The shop's policy: the plain, validated values drafting, routing and the console decide with
//! (built by `crate::config` from `shouhou.toml`; the domain never reads a file for it).

use std::{collections::BTreeMap, fmt};

use serde::{Deserialize, Serialize};

use super::{money::Money, schedule::CallPolicy};

/// The shop's policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Shop identity.
    pub shop: ShopFile,
    /// Buyer default time zone.
    pub timezone: jiff::tz::TimeZone,
    /// Automatic answers allowed at all.
    pub auto_enabled: bool,
    /// Minimum score for an automatic answer.
    pub auto_threshold: f32,
    /// FAQ-type intents.
    pub auto_intents: Vec<&'static str>,
    /// The bot's role.
    pub bot_role: String,
    /// Red packet for a kept wrong item.
    pub wrong_item_keep: Money,
    /// Price up to which items are cheap.
    pub cheap_item_max: Money,
    /// Late rotten-food report, in days after signing.
    pub rotten_late_days: u32,
    /// Authority per role.
    pub authority: BTreeMap<String, Authority>,
    /// Promise times.
    pub sla: Sla,
    /// Hours without a tracking event after which a parcel is stuck (`[logistics]`).
    pub stuck_hours: u32,
    /// Call policy.
    pub calls: CallPolicy,
    /// The autonomy bar.
    pub autonomy: AutonomyFile,
}

impl Policy {
    /// The bot's authority.
    #[must_use]
    pub fn bot_authority(&self) -> Authority {
        self.authority[&self.bot_role]
    }
}

/// `[shop]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ShopFile {
    /// Shop name.
    pub name: String,
    /// The name the bot signs with.
    pub agent_name: String,
    /// Default buyer time zone (IANA).
    #[serde(default = "default_tz")]
    pub timezone: String,
}

fn default_tz() -> String {
    "Asia/Shanghai".into()
}

/// `[sla]`: promise times in hours. A reply never promises faster than these.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Sla {
    /// Shipping an unshipped order.
    pub ship_hours: u32,
    /// Reshipping a replacement.
    pub reship_hours: u32,
    /// Paying a refund or compensation.
    pub refund_hours: u32,
    /// Calling or writing back.
    pub callback_hours: u32,
    /// Issuing an invoice.
    pub invoice_hours: u32,
    /// Changing an address.
    pub address_change_hours: u32,
    /// Sending a missing gift.
    pub gift_hours: u32,
}

impl fmt::Display for Sla {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ship {}h, reship {}h, refund {}h", self.ship_hours, self.reship_hours, self.refund_hours)
    }
}

/// A role's authority, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Authority {
    /// Largest amount.
    pub max_amount: Money,
    /// Largest share of the order total, percent.
    pub max_percent: u32,
}

impl Authority {
    /// The most this role may grant on an order of `total` (the smaller of the two limits;
    /// the amount alone when the total is unknown).
    #[must_use]
    pub fn limit(&self, total: Option<Money>) -> Money {
        match total {
            Some(t) => self.max_amount.min(t.percent(self.max_percent)),
            None => self.max_amount,
        }
    }
}

/// `[autonomy]`: the bar an intent must meet before a supervisor may turn auto-send on.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutonomyFile {
    /// How many of the intent's latest reviewed drafts are looked at (and the fewest needed).
    #[serde(default = "default_min_drafts")]
    pub min_drafts: u32,
    /// The share of those approved without an edit, in [0, 1].
    #[serde(default = "default_min_unedited")]
    pub min_unedited: f64,
}

impl Default for AutonomyFile {
    fn default() -> Self {
        Self { min_drafts: default_min_drafts(), min_unedited: default_min_unedited() }
    }
}

fn default_min_drafts() -> u32 {
    200
}

fn default_min_unedited() -> f64 {
    0.95
}
