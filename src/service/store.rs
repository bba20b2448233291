//! The durable store: embedded SQLite (default, WAL) or PostgreSQL (several instances).
//!
//! Both backends run the same SQL text (`$n` placeholders work on both) except where they
//! differ on purpose: claims use `FOR UPDATE SKIP LOCKED` on PostgreSQL so instances share the
//! work, while SQLite has one writer. Multi-statement changes are built as a list of
//! [`Stmt`]s and applied in one transaction by [`Store::apply`], so a crash leaves either all
//! of a message's effects or none of them. Times are unix milliseconds.

use std::{str::FromStr, time::Duration};

use sqlx::{
    Row,
    postgres::{PgPool, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous},
};

/// Connections to an SQLite database.
const SQLITE_CONNECTIONS: u32 = 4;

/// A store error.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database said no.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// A migration failed.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The URL names no supported backend.
    #[error("unsupported database URL `{0}`: use sqlite://FILE or postgres://…")]
    Url(String),
}

/// A statement argument.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// Integer.
    I(i64),
    /// Text.
    T(String),
    /// Nullable text.
    N(Option<String>),
    /// Nullable integer.
    NI(Option<i64>),
}

/// One statement of a transaction.
#[derive(Debug, Clone)]
pub struct Stmt {
    /// SQL text.
    pub sql: &'static str,
    /// Arguments for `$1…`.
    pub args: Vec<Arg>,
}

/// A value read back.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    /// Integer.
    I(i64),
    /// Text (NULL is `None`).
    T(Option<String>),
}

impl Val {
    /// The integer, or 0.
    #[must_use]
    pub fn i(&self) -> i64 {
        if let Val::I(v) = self { *v } else { 0 }
    }

    /// The text, or "".
    #[must_use]
    pub fn t(&self) -> String {
        if let Val::T(Some(v)) = self { v.clone() } else { String::new() }
    }

    /// The text, if not NULL.
    #[must_use]
    pub fn opt(&self) -> Option<String> {
        if let Val::T(v) = self { v.clone() } else { None }
    }
}

/// Column kinds for reading rows back.
#[derive(Debug, Clone, Copy)]
pub enum Col {
    /// An integer column.
    I(&'static str),
    /// A text column.
    T(&'static str),
}

/// The store.
#[derive(Clone, Debug)]
pub enum Store {
    /// Embedded SQLite.
    Sqlite(SqlitePool),
    /// PostgreSQL.
    Postgres(PgPool),
}

macro_rules! bind_all {
    ($q:expr, $args:expr) => {{
        let mut q = $q;
        for a in $args {
            q = match a {
                Arg::I(v) => q.bind(*v),
                Arg::T(v) => q.bind(v.clone()),
                Arg::N(v) => q.bind(v.clone()),
                Arg::NI(v) => q.bind(*v),
            };
        }
        q
    }};
}

fn read_row<R: Row>(row: &R, cols: &[Col]) -> Result<Vec<Val>, sqlx::Error>
where
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> &'r str: sqlx::ColumnIndex<R>,
{
    cols.iter()
        .map(|c| match c {
            Col::I(name) => row.try_get::<i64, _>(*name).map(Val::I),
            Col::T(name) => row.try_get::<Option<String>, _>(*name).map(Val::T),
        })
        .collect()
}

impl Store {
    /// Connects and migrates. `sqlite://FILE` (created if missing) or `postgres://…`.
    ///
    /// # Errors
    /// An unsupported URL, a connection or migration failure.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10));
            // SQLite has one writer at a time; several connections still overlap the round trips
            // to sqlx's per-connection threads. Every write transaction starts with its write,
            // so waiting for the lock is handled by busy_timeout.
            let pool = SqlitePoolOptions::new().max_connections(SQLITE_CONNECTIONS).connect_with(opts).await?;
            sqlx::migrate!("migrations/sqlite").run(&pool).await?;
            return Ok(Self::Sqlite(pool));
        }
        if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let pool =
                PgPoolOptions::new().max_connections(8).acquire_timeout(Duration::from_secs(10)).connect(url).await?;
            sqlx::migrate!("migrations/postgres").run(&pool).await?;
            return Ok(Self::Postgres(pool));
        }
        Err(StoreError::Url(url.to_owned()))
    }

    /// Whether this is PostgreSQL.
    #[must_use]
    pub fn is_postgres(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }

    /// Runs statements in one transaction; returns the rows affected by each.
    ///
    /// # Errors
    /// Any statement failing (then nothing is applied).
    pub async fn apply(&self, stmts: &[Stmt]) -> Result<Vec<u64>, StoreError> {
        let mut counts = Vec::with_capacity(stmts.len());
        // One statement is atomic on its own: skip BEGIN/COMMIT, two round trips saved.
        if let [s] = stmts {
            let n = match self {
                Self::Sqlite(p) => bind_all!(sqlx::query(s.sql), &s.args).execute(p).await?.rows_affected(),
                Self::Postgres(p) => bind_all!(sqlx::query(s.sql), &s.args).execute(p).await?.rows_affected(),
            };
            return Ok(vec![n]);
        }
        match self {
            Self::Sqlite(p) => {
                let mut tx = p.begin().await?;
                for s in stmts {
                    counts.push(bind_all!(sqlx::query(s.sql), &s.args).execute(&mut *tx).await?.rows_affected());
                }
                tx.commit().await?;
            }
            Self::Postgres(p) => {
                let mut tx = p.begin().await?;
                for s in stmts {
                    counts.push(bind_all!(sqlx::query(s.sql), &s.args).execute(&mut *tx).await?.rows_affected());
                }
                tx.commit().await?;
            }
        }
        Ok(counts)
    }

    /// Runs one query and reads `cols` of every row.
    ///
    /// # Errors
    /// The query failing.
    pub async fn rows(&self, sql: &'static str, args: &[Arg], cols: &[Col]) -> Result<Vec<Vec<Val>>, StoreError> {
        Ok(match self {
            Self::Sqlite(p) => {
                let rows = bind_all!(sqlx::query(sql), args).fetch_all(p).await?;
                rows.iter().map(|r| read_row(r, cols)).collect::<Result<_, _>>()?
            }
            Self::Postgres(p) => {
                let rows = bind_all!(sqlx::query(sql), args).fetch_all(p).await?;
                rows.iter().map(|r| read_row(r, cols)).collect::<Result<_, _>>()?
            }
        })
    }

    /// Checks the database answers.
    ///
    /// # Errors
    /// It does not.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.rows("SELECT CAST(1 AS BIGINT) AS one", &[], &[Col::I("one")]).await.map(|_| ())
    }
}

/// Claims the oldest pending inbox message whose conversation has nothing earlier unfinished
/// (conversations in order, different conversations in parallel). `$3` is unused here; see
/// [`RECLAIM_INBOX_PG`] for claims whose holder died.
pub const CLAIM_INBOX_PG: &str = "UPDATE inbox SET status = 'processing', claimed_by = $1, claimed_at = $2
 WHERE seq = (
   SELECT i.seq FROM inbox i
    WHERE i.status = 'pending' AND $3 = $3
      AND NOT EXISTS (SELECT 1 FROM inbox j WHERE j.shop_id = i.shop_id AND j.conversation_id = i.conversation_id
                       AND j.seq < i.seq AND j.status <> 'done')
    ORDER BY i.seq LIMIT 1 FOR UPDATE SKIP LOCKED)
 RETURNING seq, payload, shop_id";

/// The SQLite form of [`CLAIM_INBOX_PG`] (one writer: no row locks needed).
pub const CLAIM_INBOX_SQLITE: &str = "UPDATE inbox SET status = 'processing', claimed_by = $1, claimed_at = $2
 WHERE seq = (
   SELECT i.seq FROM inbox i
    WHERE i.status = 'pending' AND $3 = $3
      AND NOT EXISTS (SELECT 1 FROM inbox j WHERE j.shop_id = i.shop_id AND j.conversation_id = i.conversation_id
                       AND j.seq < i.seq AND j.status <> 'done')
    ORDER BY i.seq LIMIT 1)
 RETURNING seq, payload, shop_id";

/// Takes over a claim older than the lease (`$3`): its holder died mid-message.
pub const RECLAIM_INBOX_PG: &str = "UPDATE inbox SET claimed_by = $1, claimed_at = $2
 WHERE seq = (SELECT seq FROM inbox WHERE status = 'processing' AND claimed_at < $3 ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED)
 RETURNING seq, payload, shop_id";

/// The SQLite form of [`RECLAIM_INBOX_PG`].
pub const RECLAIM_INBOX_SQLITE: &str = "UPDATE inbox SET claimed_by = $1, claimed_at = $2
 WHERE seq = (SELECT seq FROM inbox WHERE status = 'processing' AND claimed_at < $3 ORDER BY seq LIMIT 1)
 RETURNING seq, payload, shop_id";

/// Claims the next send that is due.
pub const CLAIM_SEND_PG: &str = "UPDATE sends SET status = 'sending', claimed_at = $1
 WHERE id = (
   SELECT id FROM sends WHERE status = 'pending' AND next_at <= $1 AND $2 = $2
    ORDER BY next_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)
 RETURNING id, shop_id, conversation_id, reply_to, text, by_person, idempotency_key, attempts";

/// The SQLite form of [`CLAIM_SEND_PG`].
pub const CLAIM_SEND_SQLITE: &str = "UPDATE sends SET status = 'sending', claimed_at = $1
 WHERE id = (
   SELECT id FROM sends WHERE status = 'pending' AND next_at <= $1 AND $2 = $2
    ORDER BY next_at, id LIMIT 1)
 RETURNING id, shop_id, conversation_id, reply_to, text, by_person, idempotency_key, attempts";

/// Takes over a send whose sender died (claimed longer ago than `$2`).
pub const RECLAIM_SEND_PG: &str = "UPDATE sends SET claimed_at = $1
 WHERE id = (SELECT id FROM sends WHERE status = 'sending' AND claimed_at < $2 ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
 RETURNING id, shop_id, conversation_id, reply_to, text, by_person, idempotency_key, attempts";

/// The SQLite form of [`RECLAIM_SEND_PG`].
pub const RECLAIM_SEND_SQLITE: &str = "UPDATE sends SET claimed_at = $1
 WHERE id = (SELECT id FROM sends WHERE status = 'sending' AND claimed_at < $2 ORDER BY id LIMIT 1)
 RETURNING id, shop_id, conversation_id, reply_to, text, by_person, idempotency_key, attempts";
