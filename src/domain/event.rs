//! The generic inbound event (docs/design.md "Inbound event"): what every platform adapter maps
//! onto. Parsing checks the required fields and the formats of the optional ones, so a
//! malformed event is refused with a message that names the field.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::money::Money;

/// One buyer message with its context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboundEvent {
    /// Platform message id; redeliveries repeat it.
    pub message_id: String,
    /// The shop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shop_id: Option<String>,
    /// `generic`, `chatwoot`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// The conversation (one buyer, one shop).
    pub conversation_id: String,
    /// Who wrote.
    pub sender: Sender,
    /// When it was written (RFC 3339 with offset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<Timestamp>,
    /// The message text (may be empty when there are attachments).
    #[serde(default)]
    pub text: String,
    /// Photos, videos, files.
    #[serde(default)]
    pub attachments: Vec<Attachment>,
    /// The order the conversation is about, when the adapter knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<Order>,
}

/// The sending account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sender {
    /// Platform account id.
    pub account_id: String,
    /// Display name (buyer data: never logged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nick: Option<String>,
}

/// An attachment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// `image`, `video`, `file`, …
    pub kind: String,
    /// Where it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The platform's media id, where the platform hands out ids instead of URLs (WeCom Kf:
    /// fetch it with `media/get` within 3 days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_id: Option<String>,
}

/// An order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Order {
    /// Order number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    /// The account that placed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buyer_account_id: Option<String>,
    /// `unpaid`, `paid`, `shipped`, `signed`, `closed`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The latest refund status, when known (`wait_seller_agree`, `wait_buyer_return_goods`,
    /// `wait_seller_confirm_goods`, `seller_refused`, `closed`, `success`); the Taobao message
    /// service fills it in (docs/tmc.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_status: Option<String>,
    /// The refund's amount in yuan ("39.90"), when known (the message service keeps
    /// `refund_fee`; an adapter may attach it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_amount: Option<String>,
    /// Where the refunded money goes, as the platform words it for the buyer (the payment
    /// channel, e.g. a wallet balance); replies say "back the way it was paid" when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_to: Option<String>,
    /// Paid at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paid_at: Option<Timestamp>,
    /// The latest time the order itself promises to ship by (a presale date, the platform's
    /// promised ship time), when it has one: a reply never promises later or earlier than this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ship_by: Option<Timestamp>,
    /// Shipped at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipped_at: Option<Timestamp>,
    /// Signed for at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_at: Option<Timestamp>,
    /// Order total in yuan ("39.90").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<String>,
    /// Line items.
    #[serde(default)]
    pub items: Vec<Item>,
    /// Receiver (buyer data: only the ordering account may see it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiver: Option<Receiver>,
    /// The parcel, once the adapter knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logistics: Option<Logistics>,
}

/// The parcel as the carrier reports it (every field optional).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Logistics {
    /// The carrier's name as shown to buyers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier: Option<String>,
    /// The tracking number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking_no: Option<String>,
    /// The latest tracking event, as the carrier words it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event: Option<String>,
    /// When the latest tracking event happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event_at: Option<Timestamp>,
    /// The carrier reports the parcel signed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed: Option<bool>,
}

/// A line item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Item {
    /// Product title.
    #[serde(default)]
    pub title: String,
    /// Variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    /// `fresh`, `customised`, `digital_opened`, `periodical`, or anything else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Unit price in yuan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<String>,
    /// Quantity.
    #[serde(default = "one")]
    pub quantity: u32,
}

fn one() -> u32 {
    1
}

/// Receiver data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Receiver {
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Phone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// Item categories excluded from the 7-day no-reason return (Consumer Protection Law art. 25).
pub const NO_REASON_EXCLUDED: [&str; 4] = ["fresh", "customised", "digital_opened", "periodical"];

/// A malformed event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct EventError {
    /// The field at fault (`order.total`, `sent_at`, `-` for the JSON as a whole).
    pub field: String,
    /// What is wrong.
    pub problem: String,
}

/// The longest `message_id`, `conversation_id` or `sender.account_id`, in bytes.
pub const MAX_ID_BYTES: usize = 128;
/// The longest message text, in characters (longer is refused at intake with a 400).
pub const MAX_TEXT_CHARS: usize = 4000;
/// The deepest nesting of arrays and objects an event may have (ours needs 4).
pub const MAX_JSON_DEPTH: usize = 32;

/// Whether `json` nests arrays and objects deeper than `max` (strings are skipped; the text need
/// not be valid JSON: the parser judges that).
#[must_use]
pub fn nests_deeper_than(json: &str, max: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for b in json.bytes() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Why `id` is not a valid message id: 1 to [`MAX_ID_BYTES`] bytes of printable ASCII without
/// spaces (`!` to `~`), since it becomes part of the reply's `Idempotency-Key` header.
fn message_id_problem(id: &str) -> Option<String> {
    if id.len() > MAX_ID_BYTES {
        return Some(format!("{} bytes; at most {MAX_ID_BYTES} are accepted", id.len()));
    }
    (!id.bytes().all(|b| b.is_ascii_graphic()))
        .then(|| "only printable ASCII without spaces (`!` to `~`) is accepted".to_owned())
}

impl InboundEvent {
    /// Parses and validates one event.
    ///
    /// # Errors
    /// Not JSON, a required field missing or empty, a time or amount in the wrong format.
    pub fn parse(json: &str) -> Result<Self, EventError> {
        if nests_deeper_than(json, MAX_JSON_DEPTH) {
            return Err(EventError {
                field: "-".into(),
                problem: format!("nested deeper than {MAX_JSON_DEPTH} levels of arrays and objects"),
            });
        }
        let ev: Self = serde_json::from_str(json).map_err(|e| EventError {
            field: "-".into(),
            problem: format!("not a valid event: {e} (line {}, column {})", e.line(), e.column()),
        })?;
        ev.validate()?;
        Ok(ev)
    }

    fn validate(&self) -> Result<(), EventError> {
        let bad = |field: &str, problem: &str| Err(EventError { field: field.into(), problem: problem.into() });
        if self.message_id.trim().is_empty() {
            return bad("message_id", "must not be empty");
        }
        if let Some(p) = message_id_problem(&self.message_id) {
            return bad("message_id", &p);
        }
        if self.conversation_id.trim().is_empty() {
            return bad("conversation_id", "must not be empty");
        }
        if self.sender.account_id.trim().is_empty() {
            return bad("sender.account_id", "must not be empty");
        }
        for (field, v) in [("conversation_id", &self.conversation_id), ("sender.account_id", &self.sender.account_id)] {
            if v.len() > MAX_ID_BYTES {
                return bad(field, &format!("{} bytes; at most {MAX_ID_BYTES} are accepted", v.len()));
            }
            if v.chars().any(char::is_control) {
                return bad(field, "control characters are not accepted");
            }
        }
        let chars = self.text.chars().count();
        if chars > MAX_TEXT_CHARS {
            return bad("text", &format!("{chars} characters; at most {MAX_TEXT_CHARS} are accepted"));
        }
        if self.text.trim().is_empty() && self.attachments.is_empty() {
            return bad("text", "a message needs text or attachments");
        }
        if let Some(o) = &self.order {
            if let Some(t) = &o.total {
                Money::parse(t).map_err(|p| EventError { field: "order.total".into(), problem: p })?;
            }
            if let Some(t) = &o.refund_amount {
                Money::parse(t).map_err(|p| EventError { field: "order.refund_amount".into(), problem: p })?;
            }
            for (i, item) in o.items.iter().enumerate() {
                if let Some(p) = &item.price {
                    Money::parse(p).map_err(|p| EventError { field: format!("order.items[{i}].price"), problem: p })?;
                }
            }
        }
        Ok(())
    }

    /// Whether the sender is the account that placed the attached order (false when unknown).
    #[must_use]
    pub fn from_orderer(&self) -> bool {
        self.order.as_ref().and_then(|o| o.buyer_account_id.as_deref()).is_some_and(|b| b == self.sender.account_id)
    }

    /// Moves every time of the event by `by` (the message, the order's dates, the parcel's
    /// latest event): a recorded conversation replayed today keeps its orders as they stood.
    pub fn shift_times(&mut self, by: jiff::SignedDuration) {
        let mv = |t: &mut Option<Timestamp>| {
            if let Some(x) = t.as_mut() {
                *x = x.checked_add(by).unwrap_or(*x);
            }
        };
        mv(&mut self.sent_at);
        if let Some(o) = self.order.as_mut() {
            for t in [&mut o.paid_at, &mut o.ship_by, &mut o.shipped_at, &mut o.signed_at] {
                mv(t);
            }
            if let Some(l) = o.logistics.as_mut() {
                mv(&mut l.last_event_at);
            }
        }
    }

    /// Whether a photo or video came with the message.
    #[must_use]
    pub fn has_visual_evidence(&self) -> bool {
        self.attachments.iter().any(|a| matches!(a.kind.as_str(), "image" | "video" | "photo"))
    }
}

impl Order {
    /// The order total, or the sum of its items.
    #[must_use]
    pub fn total_money(&self) -> Option<Money> {
        if let Some(t) = self.total.as_deref().and_then(|t| Money::parse(t).ok()) {
            return Some(t);
        }
        let mut sum = 0i64;
        let mut any = false;
        for i in &self.items {
            if let Some(p) = i.price.as_deref().and_then(|p| Money::parse(p).ok()) {
                sum += p.0 * i64::from(i.quantity);
                any = true;
            }
        }
        any.then_some(Money(sum))
    }

    /// Whether every item is excluded from the 7-day no-reason return (false when no items).
    #[must_use]
    pub fn all_excluded_from_no_reason(&self) -> bool {
        !self.items.is_empty()
            && self.items.iter().all(|i| i.category.as_deref().is_some_and(|c| NO_REASON_EXCLUDED.contains(&c)))
    }

    /// Whether the parcel has left the warehouse.
    #[must_use]
    pub fn shipped(&self) -> bool {
        self.shipped_at.is_some()
            || self.signed()
            || self.logistics.as_ref().is_some_and(|l| l.tracking_no.is_some() || l.last_event_at.is_some())
            || matches!(self.status.as_deref(), Some("shipped" | "in_transit"))
    }

    /// Whether the parcel is reported signed for (by the order or by the carrier).
    #[must_use]
    pub fn signed(&self) -> bool {
        self.signed_at.is_some()
            || self.logistics.as_ref().is_some_and(|l| l.signed == Some(true))
            || matches!(self.status.as_deref(), Some("signed" | "delivered"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_is_measured_outside_strings() {
        let table: [(&str, usize, bool); 6] = [
            (r#"{"a":[1,{"b":2}]}"#, 3, false),
            (r#"{"a":[1,{"b":2}]}"#, 2, true),
            (r#"{"t":"[[[[[[[[["}"#, 1, false),
            (r#"{"t":"\\\"[[[["}"#, 1, false),
            ("[[[[", 3, true),
            ("]]]][[", 2, false),
        ];
        for (json, max, want) in table {
            assert_eq!(nests_deeper_than(json, max), want, "{json} {max}");
        }
    }

    #[test]
    fn message_ids_are_short_printable_ascii() {
        let long = "m".repeat(MAX_ID_BYTES + 1);
        let table: [(&str, bool); 5] =
            [("m-1", true), ("shop-1:abc/9_x=", true), ("m 1", false), ("m\u{6d88}1", false), (long.as_str(), false)];
        for (id, ok) in table {
            assert_eq!(message_id_problem(id).is_none(), ok, "{id}");
        }
    }
}
