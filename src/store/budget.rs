//! A channel's reply budget (WeCom Kf: so many replies within a span after the buyer's latest
//! message) as it stands for one conversation: the replies delivered since the buyer's latest
//! message (`conversations.buyer_at`) and those still queued. The limit is the domain's
//! [`Budget`], the same type as the call attempts.

use super::{Arg, Stmt, Store, StoreError};
use crate::domain::schedule::{Budget, BudgetCheck};

typed_row! {
    /// What a conversation has used of its budget.
    #[derive(Debug, Clone, Copy)]
    struct Used {
        /// The buyer's latest message (unix ms; 0 when none is recorded).
        anchor: i64,
        /// Replies delivered since then.
        sent: i64,
        /// Replies queued (pending or in flight) since then.
        queued: i64,
    }
}

/// Where a conversation's reply budget stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    /// The channel's budget.
    pub budget: Budget,
    /// Counting only replies already delivered: what the sender checks.
    pub sent: BudgetCheck,
    /// Counting queued replies too: what one more queued reply would meet.
    pub queued: BudgetCheck,
}

/// The budget of `conversation` at `now` (unix ms).
///
/// # Errors
/// The store failed.
pub async fn standing(
    store: &Store,
    budget: Budget,
    shop: &str,
    conversation: &str,
    now: i64,
) -> Result<Standing, StoreError> {
    let used: Option<Used> = store
        .fetch_one(
            "SELECT COALESCE(c.buyer_at, 0) AS anchor,
                    (SELECT COUNT(*) FROM sends x WHERE x.shop_id = c.shop_id AND x.conversation_id = c.conversation_id
                       AND x.status = 'sent' AND x.sent_at >= c.buyer_at) AS sent,
                    (SELECT COUNT(*) FROM sends x WHERE x.shop_id = c.shop_id AND x.conversation_id = c.conversation_id
                       AND x.status IN ('pending', 'sending') AND x.created_at >= c.buyer_at) AS queued
               FROM conversations c WHERE c.shop_id = $1 AND c.conversation_id = $2",
            &[Arg::T(shop.to_owned()), Arg::T(conversation.to_owned())],
        )
        .await?;
    let used = used.unwrap_or(Used { anchor: 0, sent: 0, queued: 0 });
    let anchor = (used.anchor > 0).then(|| jiff::Timestamp::from_millisecond(used.anchor).ok()).flatten();
    let at = jiff::Timestamp::from_millisecond(now).unwrap_or_default();
    let n = |v: i64| u32::try_from(v.max(0)).unwrap_or(u32::MAX);
    Ok(Standing {
        budget,
        sent: budget.check(n(used.sent), anchor, at),
        queued: budget.check(n(used.sent).saturating_add(n(used.queued)), anchor, at),
    })
}

/// Holds a send beyond the budget, with the reason.
#[must_use]
pub fn held_over_budget(send_id: i64, why: &str) -> Stmt {
    Stmt {
        sql: "UPDATE sends SET status = 'held', last_error = $2 WHERE id = $1",
        args: vec![Arg::I(send_id), Arg::T(why.to_owned())],
    }
}
