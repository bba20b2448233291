//! The review use cases the REST API and the console share: approve, edit, reject, triage, take
//! a conversation over and hand it back. Each checks what may be done, writes the change with
//! its audit row in one transaction, and says what went wrong with a [`ReviewError`] (the API
//! turns it into a status and JSON, the console into its error page).

use serde::Serialize;
use serde_json::{Value, json};

use crate::{
    domain::{event::InboundEvent, guard::Verdict, role::Role},
    state::{AppState, now_ms},
    store::{
        StoreError, audit, budget, conversations,
        drafts::{self, DraftRow, DraftStatus},
        inbox, sends,
    },
};

/// Why a review action was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// No such draft.
    #[error("no draft {0}")]
    NotFound(i64),
    /// The draft was decided before (its status).
    #[error("draft is `{0}`, not waiting for review")]
    Decided(DraftStatus),
    /// The draft was decided between the read and the write.
    #[error("draft was decided meanwhile")]
    DecidedMeanwhile,
    /// The draft is no longer waiting for review (triage).
    #[error("draft is not waiting for review")]
    NotWaiting,
    /// Approving a draft that has no reply text.
    #[error("the draft has no reply text: edit it instead")]
    NoText,
    /// The guard blocks the text; its verdict.
    #[error("the guard blocks this text")]
    Blocked(Value),
    /// A rejection without a reason.
    #[error("a rejection needs a reason")]
    EmptyReason,
    /// The channel's reply budget allows no more replies in the conversation now (why).
    #[error("{0}")]
    OverBudget(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a decision did.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    /// The draft.
    pub id: i64,
    /// Its status now.
    pub status: DraftStatus,
    /// The guard's verdict on an agent's own text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guard: Option<Verdict>,
}

/// Draft `id`.
///
/// # Errors
/// No such draft, or the store failed.
pub async fn load(s: &AppState, id: i64) -> Result<DraftRow, ReviewError> {
    drafts::load(&s.store, id).await?.ok_or(ReviewError::NotFound(id))
}

/// The inbound event a draft answers (for the guard's context and the console's order card).
///
/// # Errors
/// The store failed.
pub async fn answered_event(s: &AppState, draft: &DraftRow) -> Result<Option<InboundEvent>, StoreError> {
    let payload = inbox::payload(&s.store, draft.inbox_seq).await?.unwrap_or_default();
    Ok(InboundEvent::parse(&payload).ok())
}

fn open_for_decision(d: &DraftRow) -> Result<(), ReviewError> {
    if d.status.is_open() { Ok(()) } else { Err(ReviewError::Decided(d.status)) }
}

/// Sends `text` for draft `d` on behalf of `who`, recording the decision.
async fn queue_send(s: &AppState, who: &str, d: &DraftRow, text: &str, status: DraftStatus) -> Result<(), ReviewError> {
    let now = now_ms();
    // The channel's reply budget: a draft beyond it cannot be sent.
    if let Some(b) = s.platform.reply_budget(&d.shop_id) {
        let st = budget::standing(&s.store, b, &d.shop_id, &d.conversation_id, now).await?;
        if let Some(why) = st.queued.spent {
            return Err(ReviewError::OverBudget(b.explain(why)));
        }
    }
    let kind = if status == DraftStatus::Edited { "edit" } else { "approve" };
    let counts = s
        .store
        .apply(&[
            drafts::decide_send(d.id, status, who, now, text),
            sends::queue_person(d, text, now),
            audit::audit_stmt(now, who, kind, &d.shop_id, &d.conversation_id, Some(d.id), Some("pass"), json!({})),
        ])
        .await?;
    if counts[0] == 0 {
        return Err(ReviewError::DecidedMeanwhile);
    }
    s.new_send.notify_one();
    Ok(())
}

/// Approves draft `id` as written, on behalf of `who`.
///
/// # Errors
/// No such draft, already decided, no reply text, or a reply the guard blocks.
pub async fn approve(s: &AppState, who: &str, id: i64) -> Result<Decision, ReviewError> {
    let d = load(s, id).await?;
    open_for_decision(&d)?;
    let Some(text) = d.reply.clone() else { return Err(ReviewError::NoText) };
    let guard = d.guard_json();
    if guard["verdict"] != "pass" {
        return Err(ReviewError::Blocked(guard));
    }
    queue_send(s, who, &d, &text, DraftStatus::Approved).await?;
    Ok(Decision { id, status: DraftStatus::Approved, guard: None })
}

/// Sends an agent's own text for draft `id`, after the guard passes it (a blocked text is
/// audited and refused). The guard checks it as `role` wrote it: money beyond the role's
/// `[authority]`, and callback promises the call window makes impossible right now, block too.
///
/// # Errors
/// No such draft, already decided, or the guard blocks the text (with the verdict).
pub async fn edit(s: &AppState, who: &str, role: Role, id: i64, text: &str) -> Result<Decision, ReviewError> {
    let d = load(s, id).await?;
    open_for_decision(&d)?;
    let event = answered_event(s, &d).await?;
    let verdict = check_edit(s, text, event.as_ref(), role);
    if !verdict.passed() {
        metrics::counter!("shouhou_guard_blocks_total").increment(1);
        s.store
            .apply(&[audit::audit_stmt(
                now_ms(),
                who,
                "edit_blocked",
                &d.shop_id,
                &d.conversation_id,
                Some(id),
                Some("block"),
                json!({"rules": verdict.findings.iter().map(|f| f.rule.clone()).collect::<Vec<_>>()}),
            )])
            .await?;
        return Err(ReviewError::Blocked(serde_json::to_value(&verdict).unwrap_or(Value::Null)));
    }
    queue_send(s, who, &d, text, DraftStatus::Edited).await?;
    Ok(Decision { id, status: DraftStatus::Edited, guard: Some(verdict) })
}

/// The guard on an edit by `role`, now (the one clock read of an edit).
#[must_use]
pub fn check_edit(s: &AppState, text: &str, event: Option<&InboundEvent>, role: Role) -> Verdict {
    s.assistant.check_edit(text, event, role.name(), jiff::Timestamp::now())
}

/// Rejects draft `id` with a reason.
///
/// # Errors
/// An empty reason, no such draft, already decided.
pub async fn reject(s: &AppState, who: &str, id: i64, reason: &str) -> Result<Decision, ReviewError> {
    if reason.trim().is_empty() {
        return Err(ReviewError::EmptyReason);
    }
    let d = load(s, id).await?;
    open_for_decision(&d)?;
    let now = now_ms();
    let counts = s
        .store
        .apply(&[
            drafts::reject(id, who, now, reason),
            audit::audit_stmt(
                now,
                who,
                "reject",
                &d.shop_id,
                &d.conversation_id,
                Some(id),
                None,
                json!({"reason": reason}),
            ),
        ])
        .await?;
    if counts[0] == 0 {
        return Err(ReviewError::DecidedMeanwhile);
    }
    Ok(Decision { id, status: DraftStatus::Rejected, guard: None })
}

/// Moves waiting draft `d` (and its case) to triage group `group`.
///
/// # Errors
/// The draft is no longer waiting, or the store failed.
pub async fn triage(s: &AppState, who: &str, d: &DraftRow, group: &str) -> Result<(), ReviewError> {
    let now = now_ms();
    let counts = s
        .store
        .apply(&[
            drafts::triage(d.id, group, who),
            audit::audit_stmt(
                now,
                who,
                "triage",
                &d.shop_id,
                &d.conversation_id,
                Some(d.id),
                None,
                json!({"group": group}),
            ),
        ])
        .await?;
    if counts[0] == 0 {
        return Err(ReviewError::NotWaiting);
    }
    Ok(())
}

/// Gives conversation (`shop`, `id`) to `who`: the bot drafts for review at most from now on.
///
/// # Errors
/// The store failed.
pub async fn take_over(s: &AppState, who: &str, shop: &str, id: &str) -> Result<(), ReviewError> {
    set_owner(s, who, shop, id, who, "takeover").await
}

/// Gives conversation (`shop`, `id`) back to the bot.
///
/// # Errors
/// The store failed.
pub async fn hand_back(s: &AppState, who: &str, shop: &str, id: &str) -> Result<(), ReviewError> {
    set_owner(s, who, shop, id, conversations::BOT, "handback").await
}

async fn set_owner(s: &AppState, who: &str, shop: &str, id: &str, owner: &str, kind: &str) -> Result<(), ReviewError> {
    let now = now_ms();
    s.store
        .apply(&[
            conversations::set_owner(shop, id, owner, now),
            audit::audit_stmt(now, who, kind, shop, id, None, None, json!({"owner": owner})),
        ])
        .await?;
    Ok(())
}

/// The part-time rule of both doors (the console and the REST API, seed 002): part-time staff
/// see a draft only when it waits for review (not escalated), every intent found is among the
/// shop's `routing.auto_intents` (FAQ-type), and it was not handed on by triage.
#[must_use]
pub fn part_time_may_see(policy: &crate::domain::policy::Policy, d: &Value, triaged: &[i64]) -> bool {
    let intents = d["intents"].as_array().cloned().unwrap_or_default();
    d["status"] == "pending_review"
        && !intents.is_empty()
        && intents.iter().all(|h| policy.auto_intents.iter().any(|a| h["id"] == *a))
        && !d["id"].as_i64().is_some_and(|id| triaged.contains(&id))
}

/// A draft as part-time staff get it from the API: phone numbers in the reply masked, and the
/// actions (which may carry a buyer-typed receiver) left out.
#[must_use]
pub fn for_part_time(mut d: Value) -> Value {
    if let Some(reply) = d["reply"].as_str() {
        d["reply"] = Value::String(crate::domain::mask_phones(reply));
    }
    d["actions"] = Value::Null;
    d
}
