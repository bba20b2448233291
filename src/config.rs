//! The shop's configuration: `shouhou.toml`.
//!
//! Two layers (ripgrep's low/high args): [`ConfigFile`] is the file as written (serde, unknown
//! keys refused), [`Settings`] is validated and ready to use. A bad file fails at start with the
//! file, the key and the reason. Secrets never live here; they come from the environment.

use std::{collections::BTreeMap, fmt, path::Path};

use serde::{Deserialize, Serialize};

use crate::domain::{
    catalog::{INTENT_IDS, LoadError, intent_index},
    money::Money,
    schedule::CallPolicy,
};

/// `shouhou.toml` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Shop identity used in replies.
    pub shop: ShopFile,
    /// When the bot may answer on its own.
    pub routing: RoutingFile,
    /// Amounts the case logic offers.
    pub compensation: CompensationFile,
    /// How much each role may grant.
    pub authority: BTreeMap<String, AuthorityFile>,
    /// Promise times.
    pub sla: Sla,
    /// Phone-call policy.
    pub calls: CallsFile,
    /// When an intent has earned automatic sending (the console's autonomy page).
    #[serde(default)]
    pub autonomy: AutonomyFile,
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

/// `[routing]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingFile {
    /// Whether the bot may send FAQ answers on its own at all.
    pub auto_enabled: bool,
    /// Minimum intent score for an automatic answer.
    pub auto_threshold: f32,
    /// Intents that may be answered automatically (FAQ-type).
    pub auto_intents: Vec<String>,
    /// The role whose authority the bot's offers are drafted under.
    pub bot_role: String,
}

/// `[compensation]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompensationFile {
    /// Red packet offered when a buyer keeps a wrong item.
    pub wrong_item_keep: String,
    /// Items up to this price are reshipped or refunded without escalation.
    pub cheap_item_max: String,
    /// A rotten-food report more than this many days after signing is late.
    pub rotten_late_days: u32,
}

/// `[authority.<role>]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorityFile {
    /// Largest amount the role may grant.
    pub max_amount: String,
    /// Largest share of the order total, in percent.
    pub max_percent: u32,
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

/// `[calls]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallsFile {
    /// `HH:MM-HH:MM`, within 10:00-18:00.
    pub window: String,
    /// 2 or 3.
    pub max_attempts: u32,
    /// 1 or 2.
    pub per_day: u32,
    /// Minimum minutes between attempts.
    pub min_gap_minutes: i64,
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

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
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
    /// Call policy.
    pub calls: CallPolicy,
    /// The autonomy bar.
    pub autonomy: AutonomyFile,
}

/// Roles the console and API know.
pub const ROLES: [&str; 4] = ["part_time", "agent", "supervisor", "admin"];

impl Settings {
    /// Reads and validates `path`.
    ///
    /// # Errors
    /// Missing or invalid file: the error names the file, the key and the reason.
    pub fn load(path: &Path) -> Result<Self, LoadError> {
        let raw = std::fs::read_to_string(path).map_err(|e| LoadError {
            file: path.to_owned(),
            key: "-".into(),
            problem: format!("cannot read: {e}"),
        })?;
        Self::parse(path, &raw)
    }

    /// Validates the text of a config file (`path` only names it in errors).
    ///
    /// # Errors
    /// As [`Settings::load`].
    pub fn parse(path: &Path, raw: &str) -> Result<Self, LoadError> {
        let err = |key: &str, problem: String| LoadError { file: path.to_owned(), key: key.to_owned(), problem };
        let file: ConfigFile = toml::from_str(raw).map_err(|e| {
            let at = e.span().map(|s| format!(" (line {})", raw[..s.start].lines().count().max(1))).unwrap_or_default();
            err("-", format!("{}{at}", e.message()))
        })?;
        let money = |key: &str, v: &str| Money::parse(v).map_err(|p| err(key, p));
        let timezone = jiff::tz::TimeZone::get(&file.shop.timezone)
            .map_err(|e| err("shop.timezone", format!("unknown time zone `{}`: {e}", file.shop.timezone)))?;
        if !(0.0..=1.0).contains(&file.routing.auto_threshold) {
            return Err(err("routing.auto_threshold", "must be between 0 and 1".into()));
        }
        let mut auto_intents = Vec::new();
        for (i, id) in file.routing.auto_intents.iter().enumerate() {
            let idx = intent_index(id)
                .ok_or_else(|| err(&format!("routing.auto_intents[{i}]"), format!("unknown intent id `{id}`")))?;
            auto_intents.push(INTENT_IDS[idx as usize]);
        }
        let mut authority = BTreeMap::new();
        for (role, a) in &file.authority {
            if !ROLES.contains(&role.as_str()) {
                return Err(err(
                    &format!("authority.{role}"),
                    format!("unknown role; expected one of {}", ROLES.join(", ")),
                ));
            }
            if a.max_percent > 100 {
                return Err(err(&format!("authority.{role}.max_percent"), "must be at most 100".into()));
            }
            let max_amount = money(&format!("authority.{role}.max_amount"), &a.max_amount)?;
            authority.insert(role.clone(), Authority { max_amount, max_percent: a.max_percent });
        }
        if !authority.contains_key(&file.routing.bot_role) {
            return Err(err(
                "routing.bot_role",
                format!("role `{}` has no [authority.{0}] table", file.routing.bot_role),
            ));
        }
        let c = &file.calls;
        let (start, end) = c
            .window
            .split_once('-')
            .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)))
            .ok_or_else(|| err("calls.window", format!("expected HH:MM-HH:MM, got `{}`", c.window)))?;
        let calls =
            CallPolicy::new(start, end, c.max_attempts, c.per_day, jiff::SignedDuration::from_mins(c.min_gap_minutes))
                .map_err(|e| err("calls", e.to_string()))?;
        if file.autonomy.min_drafts == 0 {
            return Err(err("autonomy.min_drafts", "must be at least 1".into()));
        }
        if !(0.0..=1.0).contains(&file.autonomy.min_unedited) {
            return Err(err("autonomy.min_unedited", "must be between 0 and 1".into()));
        }
        let s = file.sla;
        for (k, v) in [
            ("ship_hours", s.ship_hours),
            ("reship_hours", s.reship_hours),
            ("refund_hours", s.refund_hours),
            ("callback_hours", s.callback_hours),
            ("invoice_hours", s.invoice_hours),
            ("address_change_hours", s.address_change_hours),
            ("gift_hours", s.gift_hours),
        ] {
            if v == 0 {
                return Err(err(&format!("sla.{k}"), "must be at least 1 hour".into()));
            }
        }
        Ok(Self {
            timezone,
            auto_enabled: file.routing.auto_enabled,
            auto_threshold: file.routing.auto_threshold,
            auto_intents,
            bot_role: file.routing.bot_role,
            wrong_item_keep: money("compensation.wrong_item_keep", &file.compensation.wrong_item_keep)?,
            cheap_item_max: money("compensation.cheap_item_max", &file.compensation.cheap_item_max)?,
            rotten_late_days: file.compensation.rotten_late_days,
            authority,
            sla: file.sla,
            calls,
            autonomy: file.autonomy,
            shop: file.shop,
        })
    }

    /// The bot's authority.
    #[must_use]
    pub fn bot_authority(&self) -> Authority {
        self.authority[&self.bot_role]
    }
}

impl fmt::Display for Sla {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ship {}h, reship {}h, refund {}h", self.ship_hours, self.reship_hours, self.refund_hours)
    }
}
