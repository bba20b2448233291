//! The `conversations` table: each conversation's case state and owner (`bot` or a person).

use std::collections::HashMap;

use super::{Arg, Stmt, Store, StoreError};

/// The owner of a conversation nobody has taken over.
pub const BOT: &str = "bot";

/// Conversations named by a JSON array of `[shop, conversation]` pairs (`$1`).
const CONVERSATIONS_SQLITE: &str = "SELECT c.shop_id, c.conversation_id, c.case_state, c.owner
   FROM json_each($1) j JOIN conversations c
     ON c.shop_id = j.value ->> '$[0]' AND c.conversation_id = j.value ->> '$[1]'";
/// The PostgreSQL form of [`CONVERSATIONS_SQLITE`].
const CONVERSATIONS_PG: &str = "SELECT c.shop_id, c.conversation_id, c.case_state, c.owner
   FROM json_array_elements(CAST($1 AS JSON)) j JOIN conversations c
     ON c.shop_id = j.value ->> 0 AND c.conversation_id = j.value ->> 1";

typed_row! {
    /// A conversation's state.
    #[derive(Debug, Clone)]
    pub struct ConversationRow {
        shop_id: String,
        conversation_id: String,
        /// The case as JSON.
        case_state: String,
        /// `bot` ([`BOT`]) or the person who took it over.
        owner: String,
    }
}

impl ConversationRow {
    /// Whether a person owns the conversation.
    #[must_use]
    pub fn person_owns(&self) -> bool {
        self.owner != BOT
    }
}

/// The state of each of `keys` (shop, conversation) that has a row, in one query.
///
/// # Errors
/// The query failing.
pub async fn states(
    store: &Store,
    keys: &[(String, String)],
) -> Result<HashMap<(String, String), ConversationRow>, StoreError> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let list = serde_json::to_string(keys).unwrap_or_default();
    let sql = if store.is_postgres() { CONVERSATIONS_PG } else { CONVERSATIONS_SQLITE };
    Ok(store
        .fetch::<ConversationRow>(sql, &[Arg::T(list)])
        .await?
        .into_iter()
        .map(|r| ((r.shop_id.clone(), r.conversation_id.clone()), r))
        .collect())
}

/// One conversation's state, if it has a row.
///
/// # Errors
/// The query failing.
pub async fn get(store: &Store, shop: &str, conversation: &str) -> Result<Option<ConversationRow>, StoreError> {
    store
        .fetch_one(
            "SELECT shop_id, conversation_id, case_state, owner FROM conversations WHERE shop_id = $1 AND conversation_id = $2",
            &[Arg::T(shop.to_owned()), Arg::T(conversation.to_owned())],
        )
        .await
}

/// Records the case after a message (a new conversation starts with the bot as owner).
#[must_use]
pub fn save_case(shop: &str, conversation: &str, case_state: &str, now: i64) -> Stmt {
    Stmt {
        sql: "INSERT INTO conversations (shop_id, conversation_id, case_state, owner, updated_at) VALUES ($1, $2, $3, 'bot', $4)
              ON CONFLICT (shop_id, conversation_id) DO UPDATE SET case_state = excluded.case_state, updated_at = excluded.updated_at",
        args: vec![Arg::T(shop.to_owned()), Arg::T(conversation.to_owned()), Arg::T(case_state.to_owned()), Arg::I(now)],
    }
}

/// Sets the owner of a conversation (created with an empty case when new).
#[must_use]
pub fn set_owner(shop: &str, id: &str, owner: &str, now: i64) -> Stmt {
    Stmt {
        sql: "INSERT INTO conversations (shop_id, conversation_id, case_state, owner, updated_at) VALUES ($1, $2, '{}', $3, $4)
              ON CONFLICT (shop_id, conversation_id) DO UPDATE SET owner = excluded.owner, updated_at = excluded.updated_at",
        args: vec![Arg::T(shop.into()), Arg::T(id.into()), Arg::T(owner.into()), Arg::I(now)],
    }
}
