//! The `drafts` table: one draft per processed inbox message, waiting for review or decided.

use serde_json::Value;

use super::{Arg, Stmt, Store, StoreError};

status_enum! {
    /// Where a draft stands.
    pub enum DraftStatus fallback PendingReview {
        /// Sent automatically.
        Auto = "auto",
        /// Waiting for an agent.
        PendingReview = "pending_review",
        /// Waiting for an agent, escalated.
        Escalated = "escalated",
        /// Approved as written.
        Approved = "approved",
        /// Sent with an agent's text.
        Edited = "edited",
        /// Rejected with a reason.
        Rejected = "rejected",
        /// Handed to a person on the platform (Chatwoot).
        HandedOff = "handed_off",
    }
}

impl DraftStatus {
    /// Waiting for a decision (the review queue).
    #[must_use]
    pub fn is_open(self) -> bool {
        matches!(self, Self::PendingReview | Self::Escalated)
    }
}

typed_row! {
    /// A draft as stored.
    #[derive(Debug, Clone)]
    pub struct DraftRow {
        id: i64,
        shop_id: String,
        conversation_id: String,
        message_id: String,
        route: String,
        status: DraftStatus,
        grp: String,
        reply: Option<String>,
        intents: String,
        actions: String,
        guard: String,
        created_at: i64,
        reason: Option<String>,
        inbox_seq: i64,
    }
}

impl DraftRow {
    /// The draft as the API shows it (the JSON columns parsed).
    #[must_use]
    pub fn to_json(&self) -> Value {
        let parse = |v: &str| serde_json::from_str::<Value>(v).unwrap_or(Value::Null);
        serde_json::json!({
            "id": self.id, "shop_id": self.shop_id, "conversation_id": self.conversation_id,
            "message_id": self.message_id, "route": self.route, "status": self.status, "group": self.grp,
            "reply": self.reply, "intents": parse(&self.intents), "actions": parse(&self.actions),
            "guard": parse(&self.guard), "created_at": self.created_at, "reason": self.reason,
        })
    }

    /// The guard's verdict on the stored reply (`pass` or `block`), as JSON.
    #[must_use]
    pub fn guard_json(&self) -> Value {
        serde_json::from_str(&self.guard).unwrap_or(Value::Null)
    }

    /// The ids of the intents found, best first.
    #[must_use]
    pub fn intent_ids(&self) -> Vec<String> {
        serde_json::from_str::<Value>(&self.intents)
            .ok()
            .and_then(|v| v.as_array().map(|a| a.iter().filter_map(|h| h["id"].as_str().map(str::to_owned)).collect()))
            .unwrap_or_default()
    }
}

/// The columns of [`DraftRow`], in order.
macro_rules! draft_select {
    () => {
        "SELECT id, shop_id, conversation_id, message_id, route, status, grp, reply, intents, actions, guard, created_at, reason, inbox_seq FROM drafts"
    };
}

/// Draft `id`, if there is one.
///
/// # Errors
/// The store failed.
pub async fn load(store: &Store, id: i64) -> Result<Option<DraftRow>, StoreError> {
    store.fetch_one(concat!(draft_select!(), " WHERE id = $1"), &[Arg::I(id)]).await
}

/// The drafts waiting for review (escalated first, then oldest first), at most 500.
///
/// # Errors
/// The store failed.
pub async fn waiting(store: &Store) -> Result<Vec<DraftRow>, StoreError> {
    store
        .fetch(
            concat!(
                draft_select!(),
                " WHERE status IN ('pending_review', 'escalated') ORDER BY CASE WHEN status = 'escalated' THEN 0 ELSE 1 END, created_at, id LIMIT 500"
            ),
            &[],
        )
        .await
}

/// A new draft, as the pipeline writes it.
pub struct NewDraft<'a> {
    /// The inbox message it answers.
    pub inbox_seq: i64,
    /// Shop.
    pub shop_id: &'a str,
    /// Conversation.
    pub conversation_id: &'a str,
    /// The message it answers.
    pub message_id: &'a str,
    /// `auto`, `review` or `escalate`.
    pub route: &'a str,
    /// Where it stands.
    pub status: DraftStatus,
    /// Triage group.
    pub group: &'a str,
    /// The reply, if the bot wrote one.
    pub reply: Option<&'a str>,
    /// Intents found (JSON).
    pub intents: String,
    /// Actions (JSON).
    pub actions: String,
    /// The guard's verdict (JSON).
    pub guard: String,
    /// When.
    pub created_at: i64,
}

/// Writes a new draft.
#[must_use]
pub fn insert(d: &NewDraft<'_>) -> Stmt {
    Stmt {
        sql: "INSERT INTO drafts (inbox_seq, shop_id, conversation_id, message_id, route, status, grp, reply, intents, actions, guard, created_at)
              VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        args: vec![
            Arg::I(d.inbox_seq),
            Arg::T(d.shop_id.to_owned()),
            Arg::T(d.conversation_id.to_owned()),
            Arg::T(d.message_id.to_owned()),
            Arg::T(d.route.to_owned()),
            d.status.into(),
            Arg::T(d.group.to_owned()),
            Arg::N(d.reply.map(str::to_owned)),
            Arg::T(d.intents.clone()),
            Arg::T(d.actions.clone()),
            Arg::T(d.guard.clone()),
            Arg::I(d.created_at),
        ],
    }
}

/// Records a person's decision to send `text` for an open draft (`Approved` or `Edited`); changes
/// nothing when the draft was decided meanwhile (0 rows).
#[must_use]
pub fn decide_send(id: i64, status: DraftStatus, who: &str, now: i64, text: &str) -> Stmt {
    Stmt {
        sql: "UPDATE drafts SET status = $2, decided_by = $3, decided_at = $4, reply = $5 WHERE id = $1 AND status IN ('pending_review', 'escalated')",
        args: vec![Arg::I(id), status.into(), Arg::T(who.into()), Arg::I(now), Arg::T(text.into())],
    }
}

/// Rejects an open draft with a reason (0 rows when it was decided meanwhile).
#[must_use]
pub fn reject(id: i64, who: &str, now: i64, reason: &str) -> Stmt {
    Stmt {
        sql: "UPDATE drafts SET status = 'rejected', decided_by = $2, decided_at = $3, reason = $4 WHERE id = $1 AND status IN ('pending_review', 'escalated')",
        args: vec![Arg::I(id), Arg::T(who.to_owned()), Arg::I(now), Arg::T(reason.to_owned())],
    }
}

/// Moves an open draft to another triage group (0 rows when it is no longer open).
#[must_use]
pub fn triage(id: i64, group: &str, who: &str) -> Stmt {
    Stmt {
        sql: "UPDATE drafts SET grp = $2, triaged_by = $3 WHERE id = $1 AND status IN ('pending_review', 'escalated')",
        args: vec![Arg::I(id), Arg::T(group.to_owned()), Arg::T(who.to_owned())],
    }
}

typed_row! {
    /// A fingerprint of the review queue.
    struct QueueMark {
        n: i64,
        m: i64,
        s: i64,
    }
}

/// A fingerprint of the drafts waiting for review (count, newest id, sum of ids): it changes
/// whenever one arrives or leaves the queue.
///
/// # Errors
/// The store failed.
pub async fn queue_mark(store: &Store) -> Result<String, StoreError> {
    let r: Option<QueueMark> = store
        .fetch_one(
            "SELECT COUNT(*) AS n, CAST(COALESCE(MAX(id), 0) AS BIGINT) AS m, CAST(COALESCE(SUM(id), 0) AS BIGINT) AS s FROM drafts WHERE status IN ('pending_review', 'escalated')",
            &[],
        )
        .await?;
    Ok(r.map(|r| format!("{}-{}-{}", r.n, r.m, r.s)).unwrap_or_default())
}

typed_row! {
    /// An id.
    struct Id {
        id: i64,
    }
}

/// Drafts waiting for review that someone triaged (handed on to another group): part-time staff
/// no longer see them.
///
/// # Errors
/// The store failed.
pub async fn triaged(store: &Store) -> Result<Vec<i64>, StoreError> {
    Ok(store
        .fetch::<Id>(
            "SELECT id FROM drafts WHERE triaged_by IS NOT NULL AND status IN ('pending_review', 'escalated')",
            &[],
        )
        .await?
        .into_iter()
        .map(|r| r.id)
        .collect())
}

typed_row! {
    /// A draft's status.
    struct Status {
        status: DraftStatus,
    }
}

/// Where draft `id` stands, if it exists.
///
/// # Errors
/// The store failed.
pub async fn status_of(store: &Store, id: i64) -> Result<Option<DraftStatus>, StoreError> {
    Ok(store.fetch_one::<Status>("SELECT status FROM drafts WHERE id = $1", &[Arg::I(id)]).await?.map(|s| s.status))
}

typed_row! {
    /// What the stats page counts of a draft.
    #[derive(Debug, Clone)]
    pub struct StatsRow {
        route: String,
        status: DraftStatus,
        /// JSON.
        intents: String,
        created_at: i64,
        shop_id: String,
        conversation_id: String,
    }
}

/// Up to 100000 drafts, oldest first, for the stats page.
///
/// # Errors
/// The store failed.
pub async fn for_stats(store: &Store) -> Result<Vec<StatsRow>, StoreError> {
    store
        .fetch(
            "SELECT route, status, intents, created_at, shop_id, conversation_id FROM drafts ORDER BY id LIMIT 100000",
            &[],
        )
        .await
}

typed_row! {
    /// A reviewed draft's intents and decision.
    #[derive(Debug, Clone)]
    pub struct Reviewed {
        /// JSON.
        intents: String,
        status: DraftStatus,
    }
}

/// Up to 200000 reviewed drafts (approved, edited, rejected), latest decision first.
///
/// # Errors
/// The store failed.
pub async fn reviewed(store: &Store) -> Result<Vec<Reviewed>, StoreError> {
    store
        .fetch(
            "SELECT intents, status FROM drafts WHERE status IN ('approved', 'edited', 'rejected') ORDER BY decided_at DESC, id DESC LIMIT 200000",
            &[],
        )
        .await
}

typed_row! {
    /// A draft as the demo prints it.
    #[derive(Debug, Clone)]
    pub struct DemoRow {
        id: i64,
        conversation_id: String,
        message_id: String,
        route: String,
        status: DraftStatus,
        reply: Option<String>,
    }
}

/// Every draft, oldest first (the demo's summary).
///
/// # Errors
/// The store failed.
pub async fn all_for_demo(store: &Store) -> Result<Vec<DemoRow>, StoreError> {
    store.fetch("SELECT id, conversation_id, message_id, route, status, reply FROM drafts ORDER BY id", &[]).await
}
