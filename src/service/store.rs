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
    /// Embedded SQLite: a pool for reads, and one writer task that owns the write connection.
    Sqlite(SqlitePool, tokio::sync::mpsc::Sender<Write>),
    /// PostgreSQL.
    Postgres(PgPool),
}

/// A write for the SQLite writer task, with where to send its result.
#[derive(Debug)]
pub enum Write {
    /// Statements applied atomically.
    Apply(Vec<Stmt>, tokio::sync::oneshot::Sender<Result<Vec<u64>, sqlx::Error>>),
    /// A statement that writes and returns rows (`UPDATE … RETURNING`).
    Rows(&'static str, Vec<Arg>, Vec<Col>, tokio::sync::oneshot::Sender<Result<Vec<Vec<Val>>, sqlx::Error>>),
}

/// Most writes committed in one SQLite transaction.
const GROUP_COMMIT: usize = 256;

/// SQLite allows one writer at a time. Rather than let connections queue on the file lock
/// (SQLite's busy handler sleeps in whole milliseconds), one thread owns the write connection and
/// commits whatever writes are waiting together (group commit). The thread drives SQLite
/// directly (rusqlite, the same SQLite library sqlx links) with cached prepared statements, so a
/// group of hundreds of statements costs one hand-over between threads, not two per statement.
fn sqlite_writer(mut conn: rusqlite::Connection, mut rx: tokio::sync::mpsc::Receiver<Write>) {
    while let Some(first) = rx.blocking_recv() {
        let mut group = vec![first];
        while group.len() < GROUP_COMMIT {
            match rx.try_recv() {
                Ok(w) => group.push(w),
                Err(_) => break,
            }
        }
        // Optimistically the whole group in one transaction; if any write fails (rare: a
        // unique key raced), undo the group and commit each write on its own so only the
        // failing one is refused.
        let results = match run_group(&mut conn, &group) {
            Ok(r) => r,
            Err(_) => {
                let mut one_by_one = Vec::with_capacity(group.len());
                for w in &group {
                    one_by_one.push(match run_group(&mut conn, std::slice::from_ref(w)) {
                        Ok(mut r) => r.pop().unwrap_or(WriteResult::Counts(Vec::new())),
                        Err(e) => WriteResult::Failed(e.into_sqlx()),
                    });
                }
                one_by_one
            }
        };
        for (w, r) in group.into_iter().zip(results) {
            w.answer(r);
        }
    }
}

/// Runs writes in one transaction; commits only if all succeed.
fn run_group(conn: &mut rusqlite::Connection, group: &[Write]) -> Result<Vec<WriteResult>, WriterError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut out = Vec::with_capacity(group.len());
    for w in group {
        out.push(match w {
            Write::Apply(stmts, _) => {
                let mut counts = Vec::with_capacity(stmts.len());
                for s in stmts {
                    let mut st = tx.prepare_cached(s.sql)?;
                    bind_sqlite(&mut st, &s.args)?;
                    counts.push(st.raw_execute()? as u64);
                }
                WriteResult::Counts(counts)
            }
            Write::Rows(sql, args, cols, _) => {
                let mut st = tx.prepare_cached(sql)?;
                bind_sqlite(&mut st, args)?;
                let mut rows = st.raw_query();
                let mut read = Vec::new();
                while let Some(r) = rows.next()? {
                    read.push(
                        cols.iter()
                            .map(|c| match c {
                                Col::I(name) => r.get::<_, i64>(*name).map(Val::I),
                                Col::T(name) => r.get::<_, Option<String>>(*name).map(Val::T),
                            })
                            .collect::<Result<Vec<_>, _>>()?,
                    );
                }
                WriteResult::Rows(read)
            }
        });
    }
    tx.commit()?;
    Ok(out)
}

/// Binds `$n` placeholders by their number (SQLite numbers named parameters by first
/// appearance, so `SET a = $2 WHERE id = $1` must be bound by name, as sqlx does).
fn bind_sqlite(st: &mut rusqlite::CachedStatement<'_>, args: &[Arg]) -> Result<(), WriterError> {
    for i in 1..=st.parameter_count() {
        let n = st
            .parameter_name(i)
            .and_then(|name| name.strip_prefix('$'))
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| (1..=args.len()).contains(n))
            .ok_or_else(|| WriterError::Bind(format!("parameter {i} is not $1..${}", args.len())))?;
        match &args[n - 1] {
            Arg::I(v) => st.raw_bind_parameter(i, v)?,
            Arg::T(v) => st.raw_bind_parameter(i, v.as_str())?,
            Arg::N(v) => st.raw_bind_parameter(i, v.as_deref())?,
            Arg::NI(v) => st.raw_bind_parameter(i, v)?,
        }
    }
    Ok(())
}

/// A failure in the SQLite writer thread.
#[derive(Debug, thiserror::Error)]
enum WriterError {
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("bind: {0}")]
    Bind(String),
}

impl WriterError {
    /// The error as callers of the store see it: a unique-key violation stays recognisable.
    fn into_sqlx(self) -> sqlx::Error {
        let unique = matches!(
            &self,
            WriterError::Sqlite(rusqlite::Error::SqliteFailure(e, _))
                if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
        );
        sqlx::Error::Database(Box::new(SqliteWriteError { message: self.to_string(), unique }))
    }
}

/// A database error from the SQLite writer, in sqlx's terms.
#[derive(Debug)]
struct SqliteWriteError {
    message: String,
    unique: bool,
}

impl std::fmt::Display for SqliteWriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SqliteWriteError {}

impl sqlx::error::DatabaseError for SqliteWriteError {
    fn message(&self) -> &str {
        &self.message
    }
    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }
    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }
    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }
    fn kind(&self) -> sqlx::error::ErrorKind {
        if self.unique { sqlx::error::ErrorKind::UniqueViolation } else { sqlx::error::ErrorKind::Other }
    }
}

enum WriteResult {
    Counts(Vec<u64>),
    Rows(Vec<Vec<Val>>),
    Failed(sqlx::Error),
}

impl Write {
    /// Sends the caller its result (a caller that went away is no error).
    fn answer(self, r: WriteResult) {
        let mixed = || sqlx::Error::Protocol("writer mixed up results".into());
        match self {
            Write::Apply(_, reply) => {
                let _ = reply.send(match r {
                    WriteResult::Counts(c) => Ok(c),
                    WriteResult::Failed(e) => Err(e),
                    WriteResult::Rows(_) => Err(mixed()),
                });
            }
            Write::Rows(_, _, _, reply) => {
                let _ = reply.send(match r {
                    WriteResult::Rows(v) => Ok(v),
                    WriteResult::Failed(e) => Err(e),
                    WriteResult::Counts(_) => Err(mixed()),
                });
            }
        }
    }
}

fn writer_gone() -> StoreError {
    StoreError::Db(sqlx::Error::Protocol("the SQLite writer has stopped".into()))
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

/// How often the WAL is copied back. A page written many times in between is copied once.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(1000);

/// Copies the WAL back into the database file in the background (a passive checkpoint never
/// blocks the writer or readers), so no commit ever pays for a checkpoint. Stops when the store
/// is dropped.
fn checkpointer(conn: &rusqlite::Connection, alive: &tokio::sync::mpsc::WeakSender<Write>) {
    while alive.upgrade().is_some() {
        std::thread::sleep(CHECKPOINT_EVERY);
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "SQLite checkpoint failed; retrying");
        }
    }
}

/// The file of a `sqlite:` URL (`sqlite://FILE`, `sqlite:FILE`, query string dropped).
fn opts_path(url: &str) -> String {
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    rest.split('?').next().unwrap_or(rest).to_owned()
}

/// The writer's connection: WAL (set by the migration connection), normal sync, a busy timeout
/// for readers' checkpoints, and room for every statement shouhou writes in the statement cache.
fn open_writer(path: &str) -> Result<rusqlite::Connection, WriterError> {
    let conn = rusqlite::Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // Checkpoints run on their own thread (see `checkpointer`), never inside a commit.
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    conn.set_prepared_statement_cache_capacity(256);
    Ok(conn)
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
            let write = SqlitePoolOptions::new().max_connections(1).connect_with(opts.clone()).await?;
            sqlx::migrate!("migrations/sqlite").run(&write).await?;
            write.close().await;
            let read = SqlitePoolOptions::new().max_connections(SQLITE_CONNECTIONS).connect_with(opts).await?;
            let path = opts_path(url);
            let ck = rusqlite::Connection::open(&path).map_err(|e| WriterError::from(e).into_sqlx())?;
            let conn = tokio::task::spawn_blocking(move || open_writer(&path))
                .await
                .map_err(|e| sqlx::Error::Protocol(format!("SQLite writer: {e}")))?
                .map_err(WriterError::into_sqlx)?;
            let (tx, rx) = tokio::sync::mpsc::channel(4096);
            let alive = tx.downgrade();
            std::thread::Builder::new()
                .name("shouhou-sqlite-checkpoint".into())
                .spawn(move || checkpointer(&ck, &alive))
                .map_err(|e| sqlx::Error::Protocol(format!("SQLite checkpoint thread: {e}")))?;
            std::thread::Builder::new()
                .name("shouhou-sqlite-writer".into())
                .spawn(move || sqlite_writer(conn, rx))
                .map_err(|e| sqlx::Error::Protocol(format!("SQLite writer thread: {e}")))?;
            return Ok(Self::Sqlite(read, tx));
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
        match self {
            Self::Sqlite(_, writer) => {
                let (reply, rx) = tokio::sync::oneshot::channel();
                writer.send(Write::Apply(stmts.to_vec(), reply)).await.map_err(|_| writer_gone())?;
                Ok(rx.await.map_err(|_| writer_gone())??)
            }
            Self::Postgres(p) => {
                let mut counts = Vec::with_capacity(stmts.len());
                // One statement is atomic on its own: skip BEGIN/COMMIT, two round trips saved.
                if let [s] = stmts {
                    counts.push(bind_all!(sqlx::query(s.sql), &s.args).execute(p).await?.rows_affected());
                    return Ok(counts);
                }
                let mut tx = p.begin().await?;
                for s in stmts {
                    counts.push(bind_all!(sqlx::query(s.sql), &s.args).execute(&mut *tx).await?.rows_affected());
                }
                tx.commit().await?;
                Ok(counts)
            }
        }
    }

    /// Runs one query and reads `cols` of every row.
    ///
    /// # Errors
    /// The query failing.
    pub async fn rows(&self, sql: &'static str, args: &[Arg], cols: &[Col]) -> Result<Vec<Vec<Val>>, StoreError> {
        Ok(match self {
            // Statements that write (claims: `UPDATE … RETURNING`) go through the writer.
            Self::Sqlite(_, writer) if !sql.trim_start().starts_with("SELECT") => {
                let (reply, rx) = tokio::sync::oneshot::channel();
                writer.send(Write::Rows(sql, args.to_vec(), cols.to_vec(), reply)).await.map_err(|_| writer_gone())?;
                rx.await.map_err(|_| writer_gone())??
            }
            Self::Sqlite(p, _) => {
                let rows = bind_all!(sqlx::query(sql), args).fetch_all(p).await?;
                rows.iter().map(|r| read_row(r, cols)).collect::<Result<_, _>>()?
            }
            Self::Postgres(p) => {
                let rows = bind_all!(sqlx::query(sql), args).fetch_all(p).await?;
                rows.iter().map(|r| read_row(r, cols)).collect::<Result<_, _>>()?
            }
        })
    }

    /// The case state and owner of each of `keys` (shop, conversation) that has a row, in one
    /// query: `(shop, conversation) -> (case_state, owner)`.
    ///
    /// # Errors
    /// The query failing.
    pub async fn conversations(
        &self,
        keys: &[(String, String)],
    ) -> Result<std::collections::HashMap<(String, String), (String, String)>, StoreError> {
        let mut out = std::collections::HashMap::with_capacity(keys.len());
        if keys.is_empty() {
            return Ok(out);
        }
        let list = serde_json::to_string(keys).unwrap_or_default();
        let sql = if self.is_postgres() { CONVERSATIONS_PG } else { CONVERSATIONS_SQLITE };
        let cols = [Col::T("shop_id"), Col::T("conversation_id"), Col::T("case_state"), Col::T("owner")];
        for r in self.rows(sql, &[Arg::T(list)], &cols).await? {
            out.insert((r[0].t(), r[1].t()), (r[2].t(), r[3].t()));
        }
        Ok(out)
    }

    /// Checks the database answers.
    ///
    /// # Errors
    /// It does not.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.rows("SELECT CAST(1 AS BIGINT) AS one", &[], &[Col::I("one")]).await.map(|_| ())
    }
}

/// Conversations named by a JSON array of `[shop, conversation]` pairs (`$1`).
const CONVERSATIONS_SQLITE: &str = "SELECT c.shop_id, c.conversation_id, c.case_state, c.owner
   FROM json_each($1) j JOIN conversations c
     ON c.shop_id = j.value ->> '$[0]' AND c.conversation_id = j.value ->> '$[1]'";
/// The PostgreSQL form of [`CONVERSATIONS_SQLITE`].
const CONVERSATIONS_PG: &str = "SELECT c.shop_id, c.conversation_id, c.case_state, c.owner
   FROM json_array_elements(CAST($1 AS JSON)) j JOIN conversations c
     ON c.shop_id = j.value ->> 0 AND c.conversation_id = j.value ->> 1";

/// The claim statements differ between the backends only in the row-lock clause: PostgreSQL
/// instances share the work with `FOR UPDATE SKIP LOCKED`; SQLite has one writer, so it needs
/// none. Each statement is written once and spliced with the clause for each backend.
macro_rules! claim_inbox {
    ($lock:literal) => {
        concat!(
            "UPDATE inbox SET status = 'processing', claimed_by = $1, claimed_at = $2
 WHERE seq IN (
   SELECT i.seq FROM inbox i
    WHERE i.status = 'pending' AND $3 = $3
      AND NOT EXISTS (SELECT 1 FROM inbox j WHERE j.shop_id = i.shop_id AND j.conversation_id = i.conversation_id
                       AND j.seq < i.seq AND j.status <> 'done')
    ORDER BY i.seq LIMIT $4",
            $lock,
            ")
 RETURNING seq, payload, shop_id, conversation_id"
        )
    };
}

macro_rules! reclaim_inbox {
    ($lock:literal) => {
        concat!(
            "UPDATE inbox SET claimed_by = $1, claimed_at = $2
 WHERE seq = (SELECT seq FROM inbox WHERE status = 'processing' AND claimed_at < $3 AND $4 = $4 ORDER BY seq LIMIT 1",
            $lock,
            ")
 RETURNING seq, payload, shop_id, conversation_id"
        )
    };
}

macro_rules! claim_send {
    ($lock:literal) => {
        concat!(
            "UPDATE sends SET status = 'sending', claimed_at = $1
 WHERE id IN (
   SELECT s.id FROM sends s WHERE s.status = 'pending' AND s.next_at <= $1 AND $2 = $2
      AND NOT EXISTS (SELECT 1 FROM sends t WHERE t.shop_id = s.shop_id AND t.conversation_id = s.conversation_id
                       AND t.id < s.id AND t.status IN ('pending', 'sending'))
    ORDER BY s.next_at, s.id LIMIT 32",
            $lock,
            ")
 RETURNING id, shop_id, conversation_id, reply_to, text, by_person, idempotency_key, attempts"
        )
    };
}

macro_rules! reclaim_send {
    ($lock:literal) => {
        concat!(
            "UPDATE sends SET claimed_at = $1
 WHERE id = (SELECT id FROM sends WHERE status = 'sending' AND claimed_at < $2 ORDER BY id LIMIT 1",
            $lock,
            ")
 RETURNING id, shop_id, conversation_id, reply_to, text, by_person, idempotency_key, attempts"
        )
    };
}

/// Claims up to `$4` of the oldest pending inbox messages whose conversations have nothing
/// earlier unfinished (conversations in order, different conversations in parallel; so a batch
/// holds at most one message per conversation). `$3` is unused here; see [`RECLAIM_INBOX_PG`].
pub const CLAIM_INBOX_PG: &str = claim_inbox!(" FOR UPDATE SKIP LOCKED");
/// The SQLite form of [`CLAIM_INBOX_PG`].
pub const CLAIM_INBOX_SQLITE: &str = claim_inbox!("");
/// Takes over a claim older than the lease (`$3`): its holder died mid-message. `$4` is unused.
pub const RECLAIM_INBOX_PG: &str = reclaim_inbox!(" FOR UPDATE SKIP LOCKED");
/// The SQLite form of [`RECLAIM_INBOX_PG`].
pub const RECLAIM_INBOX_SQLITE: &str = reclaim_inbox!("");
/// Claims up to 32 sends that are due, never one with an earlier unsent send in its
/// conversation (replies arrive in order).
pub const CLAIM_SEND_PG: &str = claim_send!(" FOR UPDATE SKIP LOCKED");
/// The SQLite form of [`CLAIM_SEND_PG`].
pub const CLAIM_SEND_SQLITE: &str = claim_send!("");
/// Takes over a send whose sender died (claimed longer ago than `$2`).
pub const RECLAIM_SEND_PG: &str = reclaim_send!(" FOR UPDATE SKIP LOCKED");
/// The SQLite form of [`RECLAIM_SEND_PG`].
pub const RECLAIM_SEND_SQLITE: &str = reclaim_send!("");
