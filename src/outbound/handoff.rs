//! The handoff worker: for a draft routed to a person on a platform that hands off (Chatwoot),
//! open the conversation for the platform's agents and leave them a note with the bot's draft,
//! each step recorded as it succeeds and retried with backoff.

use std::{sync::Arc, time::Duration};

use serde_json::json;

use super::{http::backoff_ms, platform::Outcome};
use crate::{
    state::{AppState, LEASE_MS, now_ms},
    store::{
        Stmt, StoreError,
        audit::audit_stmt,
        drafts::{self, DraftStatus},
        handoffs::{self, ClaimedHandoff},
    },
};

/// Performs queued handoffs until shutdown, retrying failures with [`backoff_ms`] up to
/// `max_send_attempts`.
pub async fn handoffs(s: Arc<AppState>) {
    loop {
        if s.shutdown.is_cancelled() {
            return;
        }
        match handoff_batch(&s).await {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "handoff store error"),
        }
        tokio::select! {
            () = s.shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    }
}

async fn handoff_batch(s: &AppState) -> Result<bool, StoreError> {
    let now = now_ms();
    let mut claimed = handoffs::claim(&s.store, now, now - LEASE_MS).await?;
    if claimed.is_empty() {
        return Ok(false);
    }
    claimed.sort_by_key(|h| h.id);
    for h in &claimed {
        let stmts = handoff_one(s, h).await?;
        s.store.apply(&stmts).await?;
    }
    Ok(true)
}

/// Performs the steps of one claimed handoff not yet done, recording each as it succeeds, and
/// returns the statements that record the outcome.
async fn handoff_one(s: &AppState, h: &ClaimedHandoff) -> Result<Vec<Stmt>, StoreError> {
    let (id, shop, conv, draft_id) = (h.id, h.shop_id.as_str(), h.conversation_id.as_str(), h.draft_id);
    let attempts = h.attempts + 1;
    let mut step = Vec::new();
    if h.opened == 0 {
        // A person already answered through shouhou's queue: opening the conversation for the
        // platform's agents now would invite a second answer.
        let status = drafts::status_of(&s.store, draft_id).await?;
        if status.is_some_and(|st| matches!(st, DraftStatus::Approved | DraftStatus::Edited)) {
            let now = now_ms();
            metrics::counter!("shouhou_handoffs_total", "result" => "skipped").increment(1);
            return Ok(vec![
                handoffs::skipped(id, attempts - 1, now),
                audit_stmt(
                    now,
                    "bot",
                    "handoff_skipped",
                    shop,
                    conv,
                    Some(draft_id),
                    None,
                    json!({"handoff_id": id, "why": "the draft was answered in shouhou first"}),
                ),
            ]);
        }
        let outcome = s.platform.open_for_person(shop, conv).await;
        if outcome != Outcome::Sent {
            return Ok(handoff_failure(s, id, shop, conv, attempts, outcome));
        }
        let now = now_ms();
        step.extend(handoffs::opened(id, draft_id, now));
    }
    // Count the note attempt before making it: if its answer is lost (or the process stops),
    // the next attempt knows the note may already be there.
    step.push(handoffs::note_attempt(id));
    s.store.apply(&step).await?;
    let outcome = s.platform.leave_note(shop, conv, &h.note, h.note_tries > 0).await;
    if outcome != Outcome::Sent {
        return Ok(handoff_failure(s, id, shop, conv, attempts, outcome));
    }
    let now = now_ms();
    metrics::counter!("shouhou_handoffs_total", "result" => "done").increment(1);
    Ok(vec![
        handoffs::done(id, attempts, now),
        audit_stmt(now, "bot", "handoff", shop, conv, Some(draft_id), None, json!({"handoff_id": id})),
    ])
}

/// A handoff step failed: try again later, or give up after `max_send_attempts`.
fn handoff_failure(s: &AppState, id: i64, shop: &str, conv: &str, attempts: i64, outcome: Outcome) -> Vec<Stmt> {
    let now = now_ms();
    match outcome {
        Outcome::Sent => Vec::new(),
        Outcome::RateLimited(wait) => vec![handoffs::retry(id, attempts, now + wait, "429")],
        Outcome::Retry(why) if attempts < s.cfg.max_send_attempts => {
            vec![handoffs::retry(id, attempts, now + backoff_ms(attempts), &why)]
        }
        Outcome::Retry(why) | Outcome::Rejected(why) => {
            metrics::counter!("shouhou_handoffs_total", "result" => "failed").increment(1);
            vec![
                handoffs::failed(id, attempts, &why),
                audit_stmt(
                    now,
                    "bot",
                    "handoff_failed",
                    shop,
                    conv,
                    None,
                    None,
                    json!({"handoff_id": id, "error": why}),
                ),
            ]
        }
    }
}
