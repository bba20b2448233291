//! The drafting pipeline: processor tasks claim inbox rows (in order per conversation), draft
//! each message, and commit every effect of a batch in one transaction.
//!
//! [`plan`] turns one message into the statements that record its effects, [`orders`] puts what
//! the order service said about the message's order into it first, and [`events`] builds the
//! consumer events a processed message emits.

pub mod events;
pub mod orders;
pub mod plan;

use std::{
    sync::{Arc, atomic::AtomicI64},
    time::Duration,
};

use crate::{
    state::{AppState, LEASE_MS, now_ms, reclaim_due},
    store::{self, Stmt, conversations, inbox},
};
use plan::{Done, plan_message};

/// Runs one processor until shutdown: claims and processes batches, sleeping when idle.
pub async fn processor(s: Arc<AppState>, n: usize) {
    let me = format!("{}#{n}", s.cfg.instance);
    loop {
        if s.shutdown.is_cancelled() {
            return;
        }
        match process_batch(&s, &me).await {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "processing failed; the message stays in the inbox");
                metrics::counter!("shouhou_process_errors_total").increment(1);
            }
        }
        tokio::select! {
            () = s.shutdown.cancelled() => return,
            () = s.new_event.notified() => {}
            () = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    }
}

/// Messages claimed and committed together: one transaction per batch (group commit).
pub const BATCH: i64 = 32;

/// Claims up to [`BATCH`] inbox messages (at most one per conversation), drafts each, and
/// commits all their effects in one transaction. Returns whether there was any.
///
/// # Errors
/// Store failures (the messages then stay claimed until the lease runs out, and are retried).
pub async fn process_batch(s: &AppState, me: &str) -> Result<bool, store::StoreError> {
    let now = now_ms();
    let mut claimed = inbox::claim(&s.store, me, now, now - LEASE_MS, BATCH).await?;
    static LAST_RECLAIM: AtomicI64 = AtomicI64::new(0);
    if reclaim_due(&LAST_RECLAIM, now, claimed.is_empty()) {
        claimed.extend(inbox::reclaim(&s.store, me, now, now - LEASE_MS, BATCH).await?);
    }
    if claimed.is_empty() {
        return Ok(false);
    }
    claimed.sort_by_key(|m| m.seq);
    // Every conversation's state in one read.
    let keys: Vec<(String, String)> = claimed.iter().map(|m| (m.shop_id.clone(), m.conversation_id.clone())).collect();
    let mut states = conversations::states(&s.store, &keys).await?;
    let mut batch: Vec<(Vec<Stmt>, Option<Done>)> = Vec::with_capacity(claimed.len());
    for (m, key) in claimed.iter().zip(&keys) {
        let state = states.remove(key);
        batch.push(plan_message(s, m.seq, &m.payload, &m.shop_id, state, now).await?);
    }
    let all: Vec<Stmt> = s
        .store
        .lock_conversations(&keys)
        .into_iter()
        .chain(batch.iter().flat_map(|(st, _)| st.iter().cloned()))
        .collect();
    let committed: Vec<bool> = match s.store.apply(&all).await {
        Ok(_) => vec![true; batch.len()],
        // Someone else finished one of these first (its lease ran out while we worked): commit
        // message by message; the unique draft per inbox row refuses the duplicate.
        Err(e) if e.is_unique_violation() => {
            let mut ok = Vec::with_capacity(batch.len());
            for ((st, _), key) in batch.iter().zip(&keys) {
                let one: Vec<Stmt> = s
                    .store
                    .lock_conversations(std::slice::from_ref(key))
                    .into_iter()
                    .chain(st.iter().cloned())
                    .collect();
                ok.push(match s.store.apply(&one).await {
                    Ok(_) => true,
                    Err(e) if e.is_unique_violation() => {
                        tracing::info!("message already processed elsewhere");
                        false
                    }
                    Err(e) => return Err(e),
                });
            }
            ok
        }
        Err(e) => return Err(e),
    };
    let mut any_auto = false;
    for ((_, done), ok) in batch.into_iter().zip(committed) {
        let Some(d) = done.filter(|_| ok) else { continue };
        metrics::counter!("shouhou_drafts_total", "route" => d.route).increment(1);
        if d.blocked {
            metrics::counter!("shouhou_guard_blocks_total").increment(1);
        }
        metrics::histogram!("shouhou_process_seconds").record(d.started.elapsed().as_secs_f64());
        any_auto |= d.auto;
    }
    if any_auto {
        s.new_send.notify_waiters();
    }
    if !s.cfg.webhooks.endpoints.is_empty() {
        s.new_webhook.notify_waiters();
    }
    Ok(true)
}
