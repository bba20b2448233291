//! What the order, the refund and the parcel say at the time of a message: the only source of
//! what an automatic reply may state about them.
//!
//! Each function reads one side of the order (shipping, the parcel, the refund, returns) and
//! returns the state it is in, or the fact that is missing to tell (named as the event's field,
//! `order.paid_at`). A time later than the message is not current and counts as missing. When
//! the sources disagree the most advanced one wins: a parcel the carrier reports signed for is
//! signed whatever the order status still says.
//!
//! Pure: the order, the time and the limits in, a state out.

use jiff::{SignedDuration, Timestamp};

use super::event::{NO_REASON_EXCLUDED, Order};

/// The shop's limits the states are measured against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Hours from payment within which an order ships (`sla.ship_hours`).
    pub ship_hours: u32,
    /// Hours without a tracking event after which a parcel counts as stuck.
    pub stuck_hours: u32,
    /// Days after signing during which a no-reason return is open (7 by law).
    pub return_days: u32,
}

/// Where an order stands on the way to the buyer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shipping {
    /// Not known; the fact that would tell.
    Unknown(&'static str),
    /// Not paid yet.
    Unpaid,
    /// Closed or cancelled.
    Closed,
    /// Paid, not shipped, and the ship deadline is still ahead.
    Due {
        /// The deadline: the order's own `ship_by`, else `paid_at` plus the ship SLA.
        due: Timestamp,
        /// The deadline is the order's own date (`ship_by`).
        by_order: bool,
    },
    /// Paid, not shipped, and the deadline has passed.
    Late {
        /// The deadline that passed.
        due: Timestamp,
    },
    /// On its way or arrived.
    Sent(Parcel),
}

/// Where a shipped parcel is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parcel {
    /// Shipped, but no tracking event is known.
    Untracked,
    /// The latest tracking event is recent.
    Moving,
    /// No tracking event for longer than the stuck limit.
    Stuck {
        /// Whole hours since the latest event.
        hours: i64,
    },
    /// Signed for.
    Signed,
}

/// Where a refund stands, by the latest refund status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refund {
    /// Not known (or a status this version does not know); the fact that would tell.
    Unknown(&'static str),
    /// The order has no refund request (`none`).
    NotRequested,
    /// Waiting for the shop to agree (`wait_seller_agree`).
    WaitingShop,
    /// Agreed; waiting for the buyer to send the goods back (`wait_buyer_return_goods`).
    Approved,
    /// The goods are on their way back (`wait_seller_confirm_goods`).
    Returning,
    /// Paid back (`success`).
    Refunded,
    /// Refused or closed: a person looks (`seller_refused`, `closed`).
    Stopped,
}

/// Whether the order's items may be returned without a reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returns {
    /// Not known; the fact that would tell.
    Unknown(&'static str),
    /// Every item is of an excluded category (fresh, customised, opened digital, periodical).
    Excluded,
    /// Signed for longer ago than the return window.
    Late {
        /// Whole days since signing.
        days: i64,
    },
    /// Open: no excluded item, within the window (or not signed yet).
    Open,
}

/// Order statuses that mean not paid.
const UNPAID: [&str; 3] = ["unpaid", "wait_buyer_pay", "trade_no_create_pay"];
/// Order statuses that mean closed.
const CLOSED: [&str; 4] = ["closed", "trade_closed", "trade_closed_by_taobao", "cancelled"];

/// A timestamp that is current at `now` (not later than the message).
fn current(t: Option<Timestamp>, now: Timestamp) -> Option<Timestamp> {
    t.filter(|t| *t <= now)
}

/// Whether a timestamp is set but later than the message (a data error: not current).
fn future(t: Option<Timestamp>, now: Timestamp) -> bool {
    t.is_some_and(|t| t > now)
}

/// The shipping state of `order` at `now`.
#[must_use]
pub fn shipping(order: Option<&Order>, now: Timestamp, limits: Limits) -> Shipping {
    let Some(o) = order else { return Shipping::Unknown("order") };
    for (t, name) in
        [(o.signed_at, "order.signed_at"), (o.shipped_at, "order.shipped_at"), (o.paid_at, "order.paid_at")]
    {
        if future(t, now) {
            return Shipping::Unknown(name);
        }
    }
    if let Some(l) = &o.logistics
        && future(l.last_event_at, now)
    {
        return Shipping::Unknown("order.logistics.last_event_at");
    }
    if o.shipped() {
        return Shipping::Sent(parcel(o, now, limits));
    }
    let status = o.status.as_deref().unwrap_or_default();
    if CLOSED.contains(&status) {
        return Shipping::Closed;
    }
    let Some(paid) = current(o.paid_at, now) else {
        return if UNPAID.contains(&status) { Shipping::Unpaid } else { Shipping::Unknown("order.paid_at") };
    };
    let (due, by_order) = match o.ship_by {
        Some(by) => (by, true),
        None => (paid.checked_add(SignedDuration::from_hours(i64::from(limits.ship_hours))).unwrap_or(paid), false),
    };
    if now < due { Shipping::Due { due, by_order } } else { Shipping::Late { due } }
}

/// The parcel of a shipped order at `now`.
#[must_use]
pub fn parcel(o: &Order, now: Timestamp, limits: Limits) -> Parcel {
    if o.signed() {
        return Parcel::Signed;
    }
    match o.logistics.as_ref().and_then(|l| current(l.last_event_at, now)) {
        None => Parcel::Untracked,
        Some(at) => {
            let hours = now.duration_since(at).as_hours();
            if hours >= i64::from(limits.stuck_hours) { Parcel::Stuck { hours } } else { Parcel::Moving }
        }
    }
}

/// The refund state of `order`.
#[must_use]
pub fn refund(order: Option<&Order>) -> Refund {
    let Some(o) = order else { return Refund::Unknown("order") };
    match o.refund_status.as_deref().map(str::trim) {
        None | Some("") => Refund::Unknown("order.refund_status"),
        Some("none") => Refund::NotRequested,
        Some("wait_seller_agree") => Refund::WaitingShop,
        Some("wait_buyer_return_goods") => Refund::Approved,
        Some("wait_seller_confirm_goods") => Refund::Returning,
        Some("success") => Refund::Refunded,
        Some("seller_refused" | "closed") => Refund::Stopped,
        Some(_) => Refund::Unknown("order.refund_status"),
    }
}

/// Whether `order` may be returned without a reason at `now`.
#[must_use]
pub fn returns(order: Option<&Order>, now: Timestamp, limits: Limits) -> Returns {
    let Some(o) = order else { return Returns::Unknown("order") };
    if o.items.is_empty() {
        return Returns::Unknown("order.items");
    }
    if o.items.iter().any(|i| i.category.as_deref().is_none_or(|c| c.trim().is_empty())) {
        return Returns::Unknown("order.items.category");
    }
    if o.items.iter().all(|i| i.category.as_deref().is_some_and(|c| NO_REASON_EXCLUDED.contains(&c))) {
        return Returns::Excluded;
    }
    if future(o.signed_at, now) {
        return Returns::Unknown("order.signed_at");
    }
    match current(o.signed_at, now) {
        Some(at) => {
            let days = now.duration_since(at).as_secs().max(0) / 86_400;
            if days >= i64::from(limits.return_days) { Returns::Late { days } } else { Returns::Open }
        }
        // Reported signed without a time: the window cannot be counted.
        None if o.signed() => Returns::Unknown("order.signed_at"),
        None => Returns::Open,
    }
}

/// The parcel facts a reply about a shipped order states, and those missing for it.
#[must_use]
pub fn missing_tracking(o: &Order) -> Vec<&'static str> {
    let l = o.logistics.clone().unwrap_or_default();
    let mut needs = Vec::new();
    if l.carrier.as_deref().is_none_or(|s| s.trim().is_empty()) {
        needs.push("order.logistics.carrier");
    }
    if l.tracking_no.as_deref().is_none_or(|s| s.trim().is_empty()) {
        needs.push("order.logistics.tracking_no");
    }
    if l.last_event.as_deref().is_none_or(|s| s.trim().is_empty()) {
        needs.push("order.logistics.last_event");
    }
    if l.last_event_at.is_none() {
        needs.push("order.logistics.last_event_at");
    }
    needs
}
