//! One claimed message to the statements that record all its effects: its draft, the case, the
//! audit row, an automatic send, consumer events, a handoff, promises and call requests.

use jiff::Timestamp;
use serde_json::json;

use super::{events::draft_events, orders::order_context};
use crate::{
    domain::{
        case::{Action, Case, Route},
        draft::Draft,
        event::InboundEvent,
    },
    state::AppState,
    store::{
        Stmt, StoreError,
        audit::audit_stmt,
        autonomy::auto_send_allowed,
        budget, calls,
        conversations::{self, ConversationRow},
        drafts::{self, DraftStatus, NewDraft},
        handoffs, inbox, promises, sends,
    },
};

/// What one processed message needs after its batch commits.
pub struct Done {
    /// The route, for the metrics.
    pub route: String,
    /// The guard blocked the reply.
    pub blocked: bool,
    /// Sent automatically (the senders are woken).
    pub auto: bool,
    /// When drafting started.
    pub started: std::time::Instant,
}

/// Drafts one claimed message and returns the statements that record all its effects.
///
/// # Errors
/// The store failed.
pub async fn plan_message(
    s: &AppState,
    seq: i64,
    payload: &str,
    shop: &str,
    state: Option<ConversationRow>,
    now: i64,
) -> Result<(Vec<Stmt>, Option<Done>), StoreError> {
    let shop = shop.to_owned();
    let started = std::time::Instant::now();
    let mut event = match InboundEvent::parse(payload) {
        Ok(e) => e,
        Err(e) => {
            // Validated at intake; a row that no longer parses is parked, not retried forever.
            tracing::error!(seq, error = %e, "stored event no longer parses; parked");
            return Ok((vec![inbox::invalid(seq)], None));
        }
    };
    let order_stmts = order_context(s, &shop, &mut event, now).await?;
    let (case, person_owns): (Case, bool) = match &state {
        Some(c) => (serde_json::from_str(&c.case_state).unwrap_or_default(), c.person_owns()),
        None => (Case::default(), false),
    };
    let mut draft = s.assistant.draft(&case, &event, Timestamp::now());
    // Auto-send earned per intent (the console's autonomy page): a clean draft for review is
    // sent when a supervisor has switched auto-send on for each of its intents. Never a draft
    // that states facts the data lacks or answers one of several requests (`needs`).
    if draft.route == Route::Review
        && draft.needs.is_empty()
        && draft.reply.is_some()
        && draft.guard.passed()
        && s.assistant.settings.auto_enabled
        && draft.intents.iter().all(|h| h.score >= s.assistant.settings.auto_threshold)
        && auto_send_allowed(&s.store, &draft.intents.iter().map(|h| h.id).collect::<Vec<_>>()).await?
    {
        draft.route = Route::Auto;
    }
    // One owner per conversation: once a person has it, the bot drafts for review at most.
    if person_owns && draft.route == Route::Auto {
        draft.route = Route::Review;
    }
    // Nor beyond the channel's reply budget (WeCom Kf; the reviewer sees why).
    if draft.route == Route::Auto
        && let Some(b) = s.platform.reply_budget(&shop)
        && !budget::standing(&s.store, b, &shop, &event.conversation_id, now).await?.queued.allowed
    {
        draft.route = Route::Review;
    }
    let status = match draft.route {
        Route::Auto => DraftStatus::Auto,
        Route::Review => DraftStatus::PendingReview,
        Route::Escalate => DraftStatus::Escalated,
    };
    let route = serde_json::to_value(draft.route).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    let group = serde_json::to_value(draft.group).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    let verdict = draft.guard.verdict.to_owned();
    let conv = event.conversation_id.clone();
    let mut stmts = vec![
        drafts::insert(&NewDraft {
            inbox_seq: seq,
            shop_id: &shop,
            conversation_id: &conv,
            message_id: &event.message_id,
            route: &route,
            status,
            group: &group,
            reply: draft.reply.as_deref(),
            intents: serde_json::to_string(&draft.intents).unwrap_or_default(),
            actions: serde_json::to_string(&draft.actions).unwrap_or_default(),
            guard: serde_json::to_string(&draft.guard).unwrap_or_default(),
            created_at: now,
        }),
        conversations::save_case(&shop, &conv, &serde_json::to_string(&draft.case).unwrap_or_default(), now),
        audit_stmt(
            now,
            "bot",
            "draft",
            &shop,
            &conv,
            None,
            Some(&verdict),
            json!({"route": route, "message_id": event.message_id}),
        ),
    ];
    if draft.route == Route::Auto
        && let Some(text) = &draft.reply
    {
        stmts.push(sends::queue_auto(seq, text, &format!("{shop}:{}:auto", event.message_id), now));
    }
    stmts.extend(draft_events(s, now, seq, &shop, &event, &draft, &route));
    // A draft that needs a person hands the conversation over on the platform's side too
    // (Chatwoot: opened for the agents), queued in this transaction so it is never lost.
    if draft.route != Route::Auto
        && !person_owns
        && s.platform.hands_off(&shop)
        && (draft.route == Route::Escalate || s.platform.hands_off_on_review(&shop))
    {
        stmts.push(handoffs::queue(seq, &handoff_note(&draft, &route), now));
    }
    for a in &draft.actions {
        match a {
            Action::Promise { what, due_at } => stmts.push(promises::insert(seq, what, due_at.as_millisecond())),
            Action::CallRequest { script, next_allowed_at } => stmts.push(calls::insert(
                seq,
                next_allowed_at.as_deref(),
                &serde_json::to_string(script).unwrap_or_default(),
            )),
            _ => {}
        }
    }
    stmts.extend(order_stmts);
    stmts.push(inbox::done(seq));
    let auto = draft.route == Route::Auto;
    Ok((stmts, Some(Done { route, blocked: verdict != "pass", auto, started })))
}

/// The note left for the person who takes a conversation over: why, what the bot found, and
/// its draft (not sent). For agents only; never logged.
#[must_use]
pub fn handoff_note(draft: &Draft, route: &str) -> String {
    let intents: Vec<String> = draft.intents.iter().map(|h| format!("{} ({:.2})", h.id, h.score)).collect();
    let mut note = format!(
        "shouhou: this conversation needs a person (route: {route}).\nIntents: {}\nGuard: {}",
        if intents.is_empty() { "none".to_owned() } else { intents.join(", ") },
        draft.guard.verdict
    );
    if let Some(reply) = &draft.reply {
        note.push_str("\nDraft reply (not sent):\n");
        note.push_str(reply);
    }
    note
}
