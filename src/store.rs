//! The durable store: embedded SQLite (default, WAL) or PostgreSQL (several instances).
//!
//! Both backends run the same SQL text (`$n` placeholders work on both) except where they
//! differ on purpose: claims use `FOR UPDATE SKIP LOCKED` on PostgreSQL so instances share the
//! work, while SQLite has one writer. Multi-statement changes are built as a list of
//! [`Stmt`]s and applied in one transaction by [`Store::apply`], so a crash leaves either all
//! of a message's effects or none of them. Times are unix milliseconds.

use std::{str::FromStr, time::Duration};

use sqlx::{
    Row as SqlxRow,
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

impl StoreError {
    /// Whether a unique key refused the write (someone else wrote the same row first).
    #[must_use]
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, Self::Db(sqlx::Error::Database(e)) if e.is_unique_violation())
    }
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

/// The kind of a column, as a [`Field`] reads it.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// `BIGINT` / `INTEGER`.
    Int,
    /// `TEXT` (NULL allowed).
    Text,
}

impl Col {
    /// The column `name` of `kind`.
    #[must_use]
    pub const fn of(kind: Kind, name: &'static str) -> Self {
        match kind {
            Kind::Int => Self::I(name),
            Kind::Text => Self::T(name),
        }
    }
}

/// A Rust type a column is read into.
pub trait Field: Sized {
    /// How the column is read.
    const KIND: Kind;
    /// The value from what was read.
    fn from_val(v: Val) -> Self;
}

impl Field for i64 {
    const KIND: Kind = Kind::Int;
    fn from_val(v: Val) -> Self {
        v.i()
    }
}

impl Field for bool {
    const KIND: Kind = Kind::Int;
    fn from_val(v: Val) -> Self {
        v.i() != 0
    }
}

impl Field for String {
    const KIND: Kind = Kind::Text;
    fn from_val(v: Val) -> Self {
        v.t()
    }
}

impl Field for Option<String> {
    const KIND: Kind = Kind::Text;
    fn from_val(v: Val) -> Self {
        v.opt()
    }
}

/// A typed row: its columns, by name, in the order [`Row::from_vals`] reads them.
pub trait Row: Sized {
    /// The columns read, named as the query's result columns.
    const COLS: &'static [Col];
    /// The row from its values, in [`Row::COLS`] order.
    fn from_vals(v: Vec<Val>) -> Self;
}

/// Declares a typed row: a struct whose fields are named like the query's result columns, and
/// its [`Row`] implementation.
macro_rules! typed_row {
    ($(#[$m:meta])* $vis:vis struct $name:ident { $($(#[$fm:meta])* $f:ident : $t:ty),* $(,)? }) => {
        $(#[$m])*
        $vis struct $name {
            $($(#[$fm])* pub $f: $t,)*
        }

        impl $crate::store::Row for $name {
            const COLS: &'static [$crate::store::Col] =
                &[$($crate::store::Col::of(<$t as $crate::store::Field>::KIND, stringify!($f))),*];
            fn from_vals(v: Vec<$crate::store::Val>) -> Self {
                let mut v = v.into_iter();
                Self { $($f: <$t as $crate::store::Field>::from_val(v.next().unwrap_or($crate::store::Val::T(None))),)* }
            }
        }
    };
}

typed_row! {
    /// The `n` of a count.
    struct Count {
        n: i64,
    }
}

/// Declares a status column as an enum with its stored spelling; `$fallback` is what a value
/// no version of shouhou writes reads as.
macro_rules! status_enum {
    ($(#[$m:meta])* $vis:vis enum $name:ident fallback $fallback:ident { $($(#[$vm:meta])* $v:ident = $s:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        $vis enum $name {
            $($(#[$vm])* $v,)*
        }

        impl $name {
            /// The stored spelling.
            #[must_use]
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$v => $s,)*
                }
            }

            /// The status stored as `s`, if it is one.
            #[must_use]
            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($s => Some(Self::$v),)*
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl $crate::store::Field for $name {
            const KIND: $crate::store::Kind = $crate::store::Kind::Text;
            fn from_val(v: $crate::store::Val) -> Self {
                Self::parse(&v.t()).unwrap_or(Self::$fallback)
            }
        }

        impl From<$name> for $crate::store::Arg {
            fn from(s: $name) -> Self {
                $crate::store::Arg::T(s.as_str().to_owned())
            }
        }
    };
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

fn read_row<R: SqlxRow>(row: &R, cols: &[Col]) -> Result<Vec<Val>, sqlx::Error>
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

    /// Runs one query that only reads, and reads `cols` of every row.
    ///
    /// # Errors
    /// The query failing.
    pub async fn select(&self, sql: &'static str, args: &[Arg], cols: &[Col]) -> Result<Vec<Vec<Val>>, StoreError> {
        Ok(match self {
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

    /// Runs one statement that writes and returns rows (claims: `UPDATE … RETURNING`), and reads
    /// `cols` of every row. On SQLite it goes through the writer.
    ///
    /// # Errors
    /// The statement failing.
    pub async fn returning(&self, sql: &'static str, args: &[Arg], cols: &[Col]) -> Result<Vec<Vec<Val>>, StoreError> {
        match self {
            Self::Sqlite(_, writer) => {
                let (reply, rx) = tokio::sync::oneshot::channel();
                writer.send(Write::Rows(sql, args.to_vec(), cols.to_vec(), reply)).await.map_err(|_| writer_gone())?;
                Ok(rx.await.map_err(|_| writer_gone())??)
            }
            Self::Postgres(_) => self.select(sql, args, cols).await,
        }
    }

    /// Typed rows of a query that only reads.
    ///
    /// # Errors
    /// The query failing.
    pub async fn fetch<R: Row>(&self, sql: &'static str, args: &[Arg]) -> Result<Vec<R>, StoreError> {
        Ok(self.select(sql, args, R::COLS).await?.into_iter().map(R::from_vals).collect())
    }

    /// The first typed row of a query that only reads.
    ///
    /// # Errors
    /// The query failing.
    pub async fn fetch_one<R: Row>(&self, sql: &'static str, args: &[Arg]) -> Result<Option<R>, StoreError> {
        Ok(self.fetch(sql, args).await?.into_iter().next())
    }

    /// The count a `SELECT COUNT(*) AS n …` query reads.
    ///
    /// # Errors
    /// The query failing.
    pub async fn count(&self, sql: &'static str) -> Result<i64, StoreError> {
        Ok(self.fetch_one::<Count>(sql, &[]).await?.map_or(0, |c| c.n))
    }

    /// Typed rows of a statement that writes and returns rows.
    ///
    /// # Errors
    /// The statement failing.
    pub async fn claim<R: Row>(&self, sql: &'static str, args: &[Arg]) -> Result<Vec<R>, StoreError> {
        Ok(self.returning(sql, args, R::COLS).await?.into_iter().map(R::from_vals).collect())
    }

    /// On PostgreSQL, a statement that serialises the transactions writing outbox rows for the same
    /// conversations. Outbox ids come from a sequence when a row is inserted, not when it commits, so
    /// without it a transaction could take a later id yet commit first, and a deliverer would send
    /// that conversation's events out of order. The locks are taken in sorted order, so two such
    /// transactions never deadlock; they end with the transaction. SQLite's single writer commits in
    /// id order already: `None`.
    #[must_use]
    pub fn lock_conversations(&self, keys: &[(String, String)]) -> Option<Stmt> {
        if !self.is_postgres() || keys.is_empty() {
            return None;
        }
        let names: Vec<String> = keys.iter().map(|(shop, conv)| format!("{shop}\u{1f}{conv}")).collect();
        Some(Stmt {
            sql: "SELECT pg_advisory_xact_lock(hashtext(k)) FROM
                    (SELECT DISTINCT value AS k FROM json_array_elements_text(CAST($1 AS JSON)) ORDER BY 1) t",
            args: vec![Arg::T(serde_json::to_string(&names).unwrap_or_default())],
        })
    }

    /// Checks the database answers.
    ///
    /// # Errors
    /// It does not.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.select("SELECT CAST(1 AS BIGINT) AS one", &[], &[Col::I("one")]).await.map(|_| ())
    }
}

pub mod audit;
pub mod autonomy;
pub mod calls;
pub mod conversations;
pub mod drafts;
pub mod handoffs;
pub mod inbox;
pub mod orders;
pub mod outbox;
pub mod promises;
pub mod sends;
pub mod users;
