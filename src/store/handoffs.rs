//! The `handoffs` table: conversations to open for a person on the platform, with a note.

use super::{Arg, Stmt, Store, StoreError};

/// Queued by the processor (in the draft's transaction) when a draft for a shop whose platform
/// `Platform::hands_off` goes to a person; a worker calls `Platform::open_for_person` then
/// `Platform::leave_note`.
const QUEUE_HANDOFF: &str = "INSERT INTO handoffs (draft_id, shop_id, conversation_id, note, next_at, created_at)
 SELECT id, shop_id, conversation_id, $2, $3, $3 FROM drafts WHERE inbox_seq = $1";

/// Queues the handoff of the draft written for inbox message `inbox_seq` in the same
/// transaction, with `note` for the person.
#[must_use]
pub fn queue(inbox_seq: i64, note: &str, now: i64) -> Stmt {
    Stmt { sql: QUEUE_HANDOFF, args: vec![Arg::I(inbox_seq), Arg::T(note.to_owned()), Arg::I(now)] }
}

/// Handoffs are claimed like sends: `$1` now, `$2` the lease cut-off; pending and due, or held
/// by a claimer whose lease ran out.
macro_rules! claim_handoff {
    ($lock:literal) => {
        concat!(
            "UPDATE handoffs SET status = 'sending', claimed_at = $1
 WHERE id IN (
   SELECT id FROM handoffs
    WHERE (status = 'pending' AND next_at <= $1) OR (status = 'sending' AND claimed_at < $2)
    ORDER BY id LIMIT 16",
            $lock,
            ")
 RETURNING id, shop_id, conversation_id, note, attempts, draft_id, COALESCE(opened_at, 0) AS opened, note_tries"
        )
    };
}

const CLAIM_HANDOFF_PG: &str = claim_handoff!(" FOR UPDATE SKIP LOCKED");
const CLAIM_HANDOFF_SQLITE: &str = claim_handoff!("");

/// The draft of a handoff whose conversation was opened for a person on the platform leaves
/// shouhou's review queue (`$1` draft id, `$2` now): answering it here too would answer the
/// buyer twice.
const DRAFT_HANDED_OFF: &str = "UPDATE drafts SET status = 'handed_off', decided_by = 'platform', decided_at = $2,
 reason = 'the conversation was handed to a person on the platform' WHERE id = $1 AND status IN ('pending_review', 'escalated')";

/// Its audit row, written only when [`DRAFT_HANDED_OFF`] changed the draft (`$1` draft id, `$2`
/// now, `$3` detail).
const AUDIT_DRAFT_HANDED_OFF: &str = "INSERT INTO audit (at, actor, kind, shop_id, conversation_id, draft_id, detail)
 SELECT $2, 'bot', 'draft_handed_off', shop_id, conversation_id, id, $3 FROM drafts
 WHERE id = $1 AND status = 'handed_off' AND decided_by = 'platform' AND decided_at = $2";

typed_row! {
    /// A claimed handoff.
    #[derive(Debug, Clone)]
    pub struct ClaimedHandoff {
        id: i64,
        shop_id: String,
        conversation_id: String,
        note: String,
        attempts: i64,
        draft_id: i64,
        /// When the conversation was opened for a person; 0 when not yet.
        opened: i64,
        /// Attempts to leave the note (one may have reached the platform).
        note_tries: i64,
    }
}

/// Claims up to 16 handoffs that are due, or whose claimer's lease ran out.
///
/// # Errors
/// The store failed.
pub async fn claim(store: &Store, now: i64, lease_cutoff: i64) -> Result<Vec<ClaimedHandoff>, StoreError> {
    let sql = if store.is_postgres() { CLAIM_HANDOFF_PG } else { CLAIM_HANDOFF_SQLITE };
    store.claim(sql, &[Arg::I(now), Arg::I(lease_cutoff)]).await
}

/// The handoff is not needed: the draft was answered in shouhou first.
#[must_use]
pub fn skipped(id: i64, attempts: i64, now: i64) -> Stmt {
    Stmt {
        sql: "UPDATE handoffs SET status = 'skipped', attempts = $2, done_at = $3 WHERE id = $1",
        args: vec![Arg::I(id), Arg::I(attempts), Arg::I(now)],
    }
}

/// The conversation was opened for a person: the handoff records it, and its draft leaves the
/// review queue (audited only when the draft changed).
#[must_use]
pub fn opened(id: i64, draft_id: i64, now: i64) -> [Stmt; 3] {
    let detail = serde_json::json!({"handoff_id": id}).to_string();
    [
        Stmt { sql: "UPDATE handoffs SET opened_at = $2 WHERE id = $1", args: vec![Arg::I(id), Arg::I(now)] },
        Stmt { sql: DRAFT_HANDED_OFF, args: vec![Arg::I(draft_id), Arg::I(now)] },
        Stmt { sql: AUDIT_DRAFT_HANDED_OFF, args: vec![Arg::I(draft_id), Arg::I(now), Arg::T(detail)] },
    ]
}

/// Counts an attempt to leave the note, before it is made.
#[must_use]
pub fn note_attempt(id: i64) -> Stmt {
    Stmt { sql: "UPDATE handoffs SET note_tries = note_tries + 1 WHERE id = $1", args: vec![Arg::I(id)] }
}

/// Both steps are done.
#[must_use]
pub fn done(id: i64, attempts: i64, now: i64) -> Stmt {
    Stmt {
        sql: "UPDATE handoffs SET status = 'done', attempts = $2, noted_at = $3, done_at = $3 WHERE id = $1",
        args: vec![Arg::I(id), Arg::I(attempts), Arg::I(now)],
    }
}

/// Tries the handoff again at `next_at`.
#[must_use]
pub fn retry(id: i64, attempts: i64, next_at: i64, why: &str) -> Stmt {
    Stmt {
        sql: "UPDATE handoffs SET status = 'pending', attempts = $2, next_at = $3, last_error = $4 WHERE id = $1",
        args: vec![Arg::I(id), Arg::I(attempts), Arg::I(next_at), Arg::T(why.to_owned())],
    }
}

/// Gives the handoff up.
#[must_use]
pub fn failed(id: i64, attempts: i64, why: &str) -> Stmt {
    Stmt {
        sql: "UPDATE handoffs SET status = 'failed', attempts = $2, last_error = $3 WHERE id = $1",
        args: vec![Arg::I(id), Arg::I(attempts), Arg::T(why.to_owned())],
    }
}
