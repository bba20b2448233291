//! The shop's configuration: `shouhou.toml`.
//!
//! Two layers (ripgrep's low/high args): [`ConfigFile`] is the file as written (serde, unknown
//! keys refused), [`Settings`] is validated and ready to use. A bad file fails at start with the
//! file, the key and the reason. Secrets never live here; they come from the environment.

use std::{collections::BTreeMap, path::Path};

use serde::{Deserialize, Serialize};

pub mod chatwoot;
pub mod runtime;
pub mod tmc;
pub mod webhooks;
pub mod websocket;
pub mod wecom;

pub use crate::domain::policy::{Authority, AutonomyFile, Policy, ShopFile, Sla};
pub use runtime::{ServiceConfig, parse_api_tokens, parse_named_secrets, parse_shop_secrets};

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
    /// How parcels are judged (optional).
    #[serde(default)]
    pub logistics: LogisticsFile,
    /// When an intent has earned automatic sending (the console's autonomy page).
    #[serde(default)]
    pub autonomy: AutonomyFile,
    /// Consumer webhooks (optional).
    #[serde(default)]
    pub webhooks: WebhooksFile,
    /// The Taobao message service (TMC) client; absent means off.
    #[serde(default)]
    pub tmc: Option<TmcSettings>,
    /// The generic websocket client adapter (`docs/websocket.md`); off when absent.
    #[serde(default)]
    pub websocket: Option<WebsocketFile>,
    /// The Chatwoot Agent Bot adapter (`docs/chatwoot.md`); off when absent.
    #[serde(default)]
    pub chatwoot: Option<ChatwootFile>,
    /// WeChat customer service (WeCom Kf, `docs/wecom.md`); off when absent.
    #[serde(default)]
    pub wecom: Option<WecomFile>,
}

/// `[logistics]`: how the parcel's tracking is read.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogisticsFile {
    /// Hours without a new tracking event after which a parcel counts as stuck.
    #[serde(default = "default_stuck_hours")]
    pub stuck_hours: u32,
}

impl Default for LogisticsFile {
    fn default() -> Self {
        Self { stuck_hours: default_stuck_hours() }
    }
}

fn default_stuck_hours() -> u32 {
    48
}

/// `[webhooks]`: where shouhou's own events are delivered (Standard Webhooks).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksFile {
    /// Delays between attempts, e.g. `["0s", "5s", "5m"]`: the first is before the first attempt.
    /// After the last one fails the delivery is dead-lettered. Default: the spec's schedule.
    #[serde(default)]
    pub retry_schedule: Option<Vec<String>>,
    /// The endpoints.
    #[serde(default)]
    pub endpoints: Vec<EndpointFile>,
}

/// `[[webhooks.endpoints]]`
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EndpointFile {
    /// A short name (letters, digits, `-`, `_`): the key of its secrets in `SHOUHOU_WEBHOOK_SECRETS`.
    pub name: String,
    /// Where events are POSTed.
    pub url: String,
    /// Event types delivered, or `["*"]` for all.
    #[serde(default = "all_events")]
    pub events: Vec<String>,
}

fn all_events() -> Vec<String> {
    vec!["*".into()]
}

/// The consumer event types (`webhooks.endpoints[].events`).
pub const EVENT_TYPES: [&str; 8] = [
    "message.received",
    "draft.created",
    "reply.sent",
    "case.escalated",
    "call.requested",
    "call.cancelled",
    "promise.created",
    "promise.due",
];

/// The Standard Webhooks spec's example schedule: immediately, 5 s, 5 min, 30 min, 2 h, 5 h,
/// 10 h, 14 h, 20 h, 24 h (about 75 hours in all).
pub const DEFAULT_RETRY_SCHEDULE: [&str; 10] = ["0s", "5s", "5m", "30m", "2h", "5h", "10h", "14h", "20h", "24h"];

/// Validated `[webhooks]`.
#[derive(Debug, Clone, Default)]
pub struct Webhooks {
    /// Milliseconds to wait before attempt n+1 (index 0: before the first attempt).
    pub retry_schedule_ms: Vec<i64>,
    /// The endpoints.
    pub endpoints: Vec<EndpointFile>,
}

/// `[tmc]`: the Taobao message service client (docs/tmc.md). The app secret comes from the
/// environment (`SHOUHOU_TMC_SECRET`), never from this file.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TmcSettings {
    /// Whether `serve` starts the client.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The message service endpoint (`ws://` or `wss://`).
    #[serde(default = "default_tmc_url")]
    pub url: String,
    /// The app key of the Taobao open-platform app.
    pub app_key: String,
    /// The message group the app consumes.
    #[serde(default = "default_tmc_group")]
    pub group_name: String,
    /// The shouhou shop the messages belong to.
    pub shop_id: String,
    /// Seconds between pull requests (the SDK's compensation for missed pushes; also a keep-alive).
    #[serde(default = "default_tmc_pull")]
    pub pull_seconds: u64,
}

/// `[websocket]`: connect to a push endpoint and take buyer messages from it; replies for
/// `shops` go back over the same connection. The bearer token comes from `SHOUHOU_WS_TOKEN`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WebsocketFile {
    /// `ws://…` or `wss://…`.
    pub url: String,
    /// The shops whose messages arrive and whose replies leave over this connection.
    pub shops: Vec<String>,
    /// Seconds between pings.
    #[serde(default = "default_ping")]
    pub ping_interval_secs: u64,
    /// Seconds to wait for a pong (or any frame) after a ping before the peer is deemed dead.
    #[serde(default = "default_pong")]
    pub pong_timeout_secs: u64,
    /// Longest wait between reconnection attempts (the backoff doubles up to it, jittered).
    #[serde(default = "default_reconnect")]
    pub reconnect_max_secs: u64,
    /// Seconds to wait for the `reply_ack` of a reply before it is retried.
    #[serde(default = "default_reply_timeout")]
    pub reply_timeout_secs: u64,
}

fn default_ping() -> u64 {
    20
}
fn default_pong() -> u64 {
    10
}
fn default_reconnect() -> u64 {
    30
}
fn default_reply_timeout() -> u64 {
    10
}

/// `[chatwoot]`: act as a Chatwoot Agent Bot. Events arrive on `POST /v1/chatwoot/{shop}`;
/// replies and handoffs go to `url`. The access token comes from `SHOUHOU_CHATWOOT_TOKEN`, the
/// signing secret from `SHOUHOU_CHATWOOT_SECRET` and/or the outgoing URL's `?token=` from
/// `SHOUHOU_CHATWOOT_URL_TOKEN` (one of the two is required).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ChatwootFile {
    /// The Chatwoot installation, e.g. `https://chat.example.com`.
    pub url: String,
    /// Shop id to Chatwoot account id: the shops served through Chatwoot.
    pub accounts: BTreeMap<String, i64>,
    /// On a handoff, also leave a private note with the bot's draft for the person.
    #[serde(default = "yes")]
    pub handoff_note: bool,
}

fn yes() -> bool {
    true
}

/// `[wecom]`: WeChat customer service (WeCom Kf, `docs/wecom.md`). WeCom calls
/// `/v1/wecom/{shop}` (GET: URL verification, POST: events); the callback Token, the
/// EncodingAESKey and the Kf app secret come from the environment (`SHOUHOU_WECOM_TOKEN`,
/// `SHOUHOU_WECOM_AES_KEY`, `SHOUHOU_WECOM_SECRET`). The limits the sources do not confirm are
/// settings here.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WecomFile {
    /// The corp id (`ww…`): the receive id every callback must carry, and `gettoken`'s corpid.
    pub corp_id: String,
    /// The API host; tests point it at a fake.
    #[serde(default = "default_wecom_api")]
    pub api_url: String,
    /// Shop id to the customer-service accounts (`open_kfid`) it answers on.
    pub shops: BTreeMap<String, Vec<String>>,
    /// Replies allowed after each buyer message (5 per the SDK comment; unconfirmed).
    #[serde(default = "default_wecom_budget")]
    pub reply_budget: u32,
    /// Hours after a buyer message in which replies are allowed (48 per the SDK comment).
    #[serde(default = "default_wecom_window")]
    pub reply_window_hours: i64,
    /// How far a callback's `timestamp` may be from now, in seconds.
    #[serde(default = "default_wecom_skew")]
    pub timestamp_window_secs: u64,
    /// The least time between two `send_msg` calls of one shop, in milliseconds.
    #[serde(default = "default_wecom_interval")]
    pub send_interval_ms: u64,
    /// How long to wait after a frequency-limit `errcode`, in milliseconds.
    #[serde(default = "default_wecom_rate_wait")]
    pub rate_limit_wait_ms: i64,
    /// Hand escalated conversations to this servicer (WeCom user id) instead of the queue.
    #[serde(default)]
    pub handoff_servicer: Option<String>,
    /// The numbers of the session states (from the SDK; unconfirmed).
    #[serde(default)]
    pub states: wecom::ServiceStates,
    /// `send_msg` errcodes that mean "this msgid was already sent" (none is documented in
    /// the sources; a code listed here makes a repeated send count as delivered).
    #[serde(default)]
    pub duplicate_msgid_errcodes: Vec<i64>,
    /// Refresh the access token this many seconds before it expires.
    #[serde(default = "default_wecom_margin")]
    pub token_margin_secs: i64,
    /// `sync_msg` page size (1 to 1000).
    #[serde(default = "default_wecom_page")]
    pub page_limit: u32,
}

fn default_wecom_api() -> String {
    "https://qyapi.weixin.qq.com".into()
}
fn default_wecom_budget() -> u32 {
    5
}
fn default_wecom_window() -> i64 {
    48
}
fn default_wecom_skew() -> u64 {
    300
}
fn default_wecom_interval() -> u64 {
    200
}
fn default_wecom_rate_wait() -> i64 {
    2000
}
fn default_wecom_margin() -> i64 {
    300
}
fn default_wecom_page() -> u32 {
    1000
}

fn default_tmc_url() -> String {
    "ws://mc.api.taobao.com/".into()
}

fn default_tmc_group() -> String {
    "default".into()
}

fn default_tmc_pull() -> u64 {
    30
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

/// The validated configuration: the shop's policy (what the domain decides with) and the
/// service's own sections.
#[derive(Debug, Clone)]
pub struct Settings {
    /// What drafting, routing and the console decide with.
    pub policy: Policy,
    /// Consumer webhooks.
    pub webhooks: Webhooks,
    /// The TMC client, when configured.
    pub tmc: Option<TmcSettings>,
    /// The websocket client adapter, when configured.
    pub websocket: Option<WebsocketFile>,
    /// The Chatwoot adapter, when configured.
    pub chatwoot: Option<ChatwootFile>,
    /// The WeCom Kf adapter, when configured.
    pub wecom: Option<WecomFile>,
}

impl std::ops::Deref for Settings {
    type Target = Policy;
    fn deref(&self) -> &Policy {
        &self.policy
    }
}

impl crate::domain::draft::Assistant {
    /// Loads intents from `intents`, templates and guard from `templates`, and the shop's policy
    /// from the config file `config`.
    ///
    /// # Errors
    /// The first invalid file, with its key and problem.
    pub fn load(intents: &Path, templates: &Path, config: &Path) -> Result<Self, LoadError> {
        Self::load_with(intents, templates, Settings::load(config)?.policy)
    }
}

/// Roles the console and API know (one list, in [`crate::domain::role`]).
pub use crate::domain::role::ROLES;

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
        let webhooks = webhooks(&file.webhooks).map_err(|(k, p)| err(&k, p))?;
        if let Some(t) = &file.tmc {
            if !(t.url.starts_with("ws://") || t.url.starts_with("wss://")) {
                return Err(err("tmc.url", format!("must start with ws:// or wss://, got `{}`", t.url)));
            }
            for (k, v) in [("tmc.app_key", &t.app_key), ("tmc.group_name", &t.group_name), ("tmc.shop_id", &t.shop_id)]
            {
                if v.trim().is_empty() {
                    return Err(err(k, "must not be empty".into()));
                }
            }
            if !(1..=3600).contains(&t.pull_seconds) {
                return Err(err("tmc.pull_seconds", "must be between 1 and 3600".into()));
            }
        }
        if file.logistics.stuck_hours == 0 {
            return Err(err("logistics.stuck_hours", "must be at least 1 hour".into()));
        }
        let tmc = file.tmc;
        validate_adapters(file.websocket.as_ref(), file.chatwoot.as_ref()).map_err(|(k, p)| err(k, p))?;
        validate_wecom(file.wecom.as_ref(), file.websocket.as_ref(), file.chatwoot.as_ref())
            .map_err(|(k, p)| err(k, p))?;
        let policy = Policy {
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
            stuck_hours: file.logistics.stuck_hours,
            calls,
            autonomy: file.autonomy,
            shop: file.shop,
        };
        Ok(Self { policy, webhooks, websocket: file.websocket, chatwoot: file.chatwoot, wecom: file.wecom, tmc })
    }
}

fn webhooks(w: &WebhooksFile) -> Result<Webhooks, (String, String)> {
    let schedule: Vec<String> = match &w.retry_schedule {
        Some(s) => s.clone(),
        None => DEFAULT_RETRY_SCHEDULE.iter().map(|s| (*s).to_owned()).collect(),
    };
    if schedule.is_empty() {
        return Err(("webhooks.retry_schedule".into(), "needs at least one delay (\"0s\": at once)".into()));
    }
    let mut retry_schedule_ms = Vec::with_capacity(schedule.len());
    for (i, d) in schedule.iter().enumerate() {
        let ms = d
            .parse::<jiff::SignedDuration>()
            .ok()
            .filter(|d| !d.is_negative())
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .ok_or_else(|| {
                (
                    format!("webhooks.retry_schedule[{i}]"),
                    format!("`{d}` is not a duration such as \"5s\", \"30m\", \"2h\""),
                )
            })?;
        retry_schedule_ms.push(ms);
    }
    let total: i64 = retry_schedule_ms.iter().sum();
    if total < 24 * 3_600_000 {
        return Err((
            "webhooks.retry_schedule".into(),
            format!(
                "retries must span at least 24 hours so a consumer's outage of a day loses nothing; these add up to {}",
                jiff::SignedDuration::from_millis(total)
            ),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, e) in w.endpoints.iter().enumerate() {
        let key = |k: &str| format!("webhooks.endpoints[{i}].{k}");
        if e.name.is_empty() || !e.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err((key("name"), format!("`{}` must be letters, digits, `-` or `_`", e.name)));
        }
        if !seen.insert(e.name.as_str()) {
            return Err((key("name"), format!("`{}` is used twice", e.name)));
        }
        if !(e.url.starts_with("http://") || e.url.starts_with("https://")) {
            return Err((key("url"), format!("`{}` is not an http:// or https:// URL", e.url)));
        }
        if e.events.is_empty() {
            return Err((key("events"), "lists no event; use [\"*\"] for all".into()));
        }
        for (j, ev) in e.events.iter().enumerate() {
            if ev != "*" && !EVENT_TYPES.contains(&ev.as_str()) {
                return Err((
                    format!("webhooks.endpoints[{i}].events[{j}]"),
                    format!("unknown event type `{ev}`; expected one of {} or \"*\"", EVENT_TYPES.join(", ")),
                ));
            }
        }
    }
    Ok(Webhooks { retry_schedule_ms, endpoints: w.endpoints.clone() })
}

/// Checks `[wecom]`: the corp id, the API URL, the shops and their accounts (each served by one
/// adapter), and the limits.
fn validate_wecom(
    wc: Option<&WecomFile>,
    ws: Option<&WebsocketFile>,
    cw: Option<&ChatwootFile>,
) -> Result<(), (&'static str, String)> {
    let Some(w) = wc else { return Ok(()) };
    if w.corp_id.trim().is_empty() {
        return Err(("wecom.corp_id", "set the corp id (ww…) shown in the WeCom admin".into()));
    }
    if !(w.api_url.starts_with("http://") || w.api_url.starts_with("https://")) {
        return Err(("wecom.api_url", format!("must start with http:// or https://, got `{}`", w.api_url)));
    }
    if w.shops.is_empty() {
        return Err(("wecom.shops", "map at least one shop id to its customer-service accounts (open_kfid)".into()));
    }
    for (shop, kfs) in &w.shops {
        if kfs.is_empty() || kfs.iter().any(|k| k.trim().is_empty() || k.contains(':')) {
            return Err(("wecom.shops", format!("shop `{shop}`: list its open_kfid values (none empty, no `:`)")));
        }
        let dup = w.shops.iter().find(|(other, ks)| *other != shop && ks.iter().any(|k| kfs.contains(k)));
        if let Some((other, _)) = dup {
            return Err(("wecom.shops", format!("shops `{shop}` and `{other}` share an open_kfid")));
        }
        if ws.is_some_and(|x| x.shops.iter().any(|s| s == shop)) || cw.is_some_and(|c| c.accounts.contains_key(shop)) {
            return Err(("wecom.shops", format!("shop `{shop}` is served by another adapter too")));
        }
    }
    if w.reply_budget == 0 {
        return Err(("wecom.reply_budget", "must be at least 1".into()));
    }
    if !(1..=24 * 30).contains(&w.reply_window_hours) {
        return Err(("wecom.reply_window_hours", "must be between 1 and 720".into()));
    }
    if !(1..=1000).contains(&w.page_limit) {
        return Err(("wecom.page_limit", "must be between 1 and 1000".into()));
    }
    if w.timestamp_window_secs == 0 {
        return Err(("wecom.timestamp_window_secs", "must be at least 1 second".into()));
    }
    if w.states.send.is_empty() {
        return Err(("wecom.states.send", "list the session states in which the API may send".into()));
    }
    Ok(())
}

/// Checks the adapter tables: URL schemes, shops, durations; a shop is served by one adapter.
fn validate_adapters(ws: Option<&WebsocketFile>, cw: Option<&ChatwootFile>) -> Result<(), (&'static str, String)> {
    if let Some(w) = ws {
        if !(w.url.starts_with("ws://") || w.url.starts_with("wss://")) {
            return Err(("websocket.url", format!("must start with ws:// or wss://, got `{}`", w.url)));
        }
        if w.shops.is_empty() || w.shops.iter().any(|s| s.trim().is_empty()) {
            return Err(("websocket.shops", "list at least one shop id (none empty)".into()));
        }
        for (k, v) in [
            ("websocket.ping_interval_secs", w.ping_interval_secs),
            ("websocket.pong_timeout_secs", w.pong_timeout_secs),
            ("websocket.reconnect_max_secs", w.reconnect_max_secs),
            ("websocket.reply_timeout_secs", w.reply_timeout_secs),
        ] {
            if v == 0 {
                return Err((k, "must be at least 1 second".into()));
            }
        }
    }
    if let Some(c) = cw {
        if !(c.url.starts_with("http://") || c.url.starts_with("https://")) {
            return Err(("chatwoot.url", format!("must start with http:// or https://, got `{}`", c.url)));
        }
        if c.accounts.is_empty() {
            return Err(("chatwoot.accounts", "map at least one shop id to its Chatwoot account id".into()));
        }
        if let Some((shop, _)) = c.accounts.iter().find(|(_, id)| **id <= 0) {
            return Err(("chatwoot.accounts", format!("shop `{shop}`: account ids are positive integers")));
        }
        if let Some(shop) = ws.and_then(|w| w.shops.iter().find(|s| c.accounts.contains_key(s.as_str()))) {
            return Err((
                "chatwoot.accounts",
                format!("shop `{shop}` is also in websocket.shops; a shop's replies go to one adapter"),
            ));
        }
    }
    Ok(())
}
