//! A channel's reply budget (WeCom Kf: so many replies within a span after the buyer's latest
//! message), read from the store: the pipeline does not auto-send beyond it, the review refuses
//! to queue beyond it, and the sender holds a send that would exceed it. The limit itself is the
//! domain's [`Budget`], the same type as the call attempts.

use super::{
    Shared,
    store::{Arg, Col, StoreError},
};
use crate::domain::schedule::{Budget, BudgetCheck, Spent};

/// Where a conversation's reply budget stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    /// The channel's budget.
    pub budget: Budget,
    /// Counting only replies already delivered since the buyer's latest message.
    pub sent: BudgetCheck,
    /// Counting queued replies too (what one more approval would meet).
    pub queued: BudgetCheck,
}

/// The conversation's budget at `now` (unix ms), or `None` when its channel has none.
///
/// # Errors
/// The store failed.
pub async fn standing(s: &Shared, shop: &str, conv: &str, now: i64) -> Result<Option<Standing>, StoreError> {
    let Some(budget) = s.platform.reply_budget(shop) else { return Ok(None) };
    let rows = s
        .store
        .rows(
            "SELECT COALESCE(c.buyer_at, 0) AS anchor,
                    (SELECT COUNT(*) FROM sends x WHERE x.shop_id = c.shop_id AND x.conversation_id = c.conversation_id
                       AND x.status = 'sent' AND x.sent_at >= c.buyer_at) AS sent,
                    (SELECT COUNT(*) FROM sends x WHERE x.shop_id = c.shop_id AND x.conversation_id = c.conversation_id
                       AND x.status IN ('pending', 'sending') AND x.created_at >= c.buyer_at) AS queued
               FROM conversations c WHERE c.shop_id = $1 AND c.conversation_id = $2",
            &[Arg::T(shop.to_owned()), Arg::T(conv.to_owned())],
            &[Col::I("anchor"), Col::I("sent"), Col::I("queued")],
        )
        .await?;
    let (anchor, sent, queued) = rows.first().map_or((0, 0, 0), |r| (r[0].i(), r[1].i(), r[2].i()));
    let anchor = (anchor > 0).then(|| jiff::Timestamp::from_millisecond(anchor).ok()).flatten();
    let at = jiff::Timestamp::from_millisecond(now).unwrap_or_default();
    let n = |v: i64| u32::try_from(v.max(0)).unwrap_or(u32::MAX);
    Ok(Some(Standing {
        budget,
        sent: budget.check(n(sent), anchor, at),
        queued: budget.check(n(sent).saturating_add(n(queued)), anchor, at),
    }))
}

/// Why a budget allows nothing, in words for people (console, API errors, audit).
#[must_use]
pub fn explain(b: &Budget, why: Spent) -> String {
    let span = b.within().map_or_else(String::new, |w| format!(" within {} h", w.as_hours()));
    match why {
        Spent::Exhausted => format!(
            "the channel's reply budget is spent: {} replies{span} after the buyer's latest message; it renews when the buyer writes again",
            b.max()
        ),
        Spent::Expired => format!(
            "the channel allows replies only{span} after the buyer's latest message, and that time is over; it renews when the buyer writes again"
        ),
        Spent::NoAnchor => "the channel allows replies only after a buyer message, and none is recorded".into(),
    }
}
