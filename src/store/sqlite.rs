//! The SQLite backend: a pool of readers, and one writer thread that owns the write connection
//! and commits whatever writes are waiting in one transaction (group commit), beside a thread that
//! checkpoints the WAL in the background.

use std::{str::FromStr, time::Duration};

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use super::{Arg, Col, Stmt, StoreError, Val};

/// Connections to an SQLite database.
const SQLITE_CONNECTIONS: u32 = 4;

/// Opens (creating if missing) and migrates the database of `url`; starts the writer and the
/// checkpointer threads. Returns the read pool and the writer's queue.
///
/// # Errors
/// A connection or migration failure, or a thread that would not start.
pub(super) async fn open(url: &str) -> Result<(SqlitePool, tokio::sync::mpsc::Sender<Write>), StoreError> {
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
    Ok((read, tx))
}

/// Runs statements in one transaction on the writer thread; returns the rows affected by each.
pub(super) async fn apply(writer: &tokio::sync::mpsc::Sender<Write>, stmts: &[Stmt]) -> Result<Vec<u64>, StoreError> {
    let (reply, rx) = tokio::sync::oneshot::channel();
    writer.send(Write::Apply(stmts.to_vec(), reply)).await.map_err(|_| writer_gone())?;
    Ok(rx.await.map_err(|_| writer_gone())??)
}

/// Runs one statement that writes and returns rows on the writer thread.
pub(super) async fn returning(
    writer: &tokio::sync::mpsc::Sender<Write>,
    sql: &'static str,
    args: &[Arg],
    cols: &[Col],
) -> Result<Vec<Vec<Val>>, StoreError> {
    let (reply, rx) = tokio::sync::oneshot::channel();
    writer.send(Write::Rows(sql, args.to_vec(), cols.to_vec(), reply)).await.map_err(|_| writer_gone())?;
    Ok(rx.await.map_err(|_| writer_gone())??)
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
