//! The durable store: embedded SQLite (default, WAL; `store/sqlite.rs` has its writer thread) or
//! PostgreSQL (several instances). Each table has its module with its SQL beside typed functions
//! ([`drafts::waiting`], [`inbox::claim`], …): reads return rows declared with `typed_row!`,
//! statuses are enums declared with `status_enum!`, and writes are [`Stmt`]s the caller commits
//! together.
//!
//! Both backends run the same SQL text (`$n` placeholders work on both) except where they
//! differ on purpose, always inside this module: claims use `FOR UPDATE SKIP LOCKED` on
//! PostgreSQL so instances share the work, while SQLite has one writer; the JSON functions that
//! read a list of keys; and PostgreSQL's advisory locks ([`Store::lock_conversations`]).
//! Multi-statement changes are applied in one transaction by [`Store::apply`], so a crash leaves
//! either all of a message's effects or none of them. Times are unix milliseconds.

use std::time::Duration;

use sqlx::{
    Row as SqlxRow,
    postgres::{PgPool, PgPoolOptions},
    sqlite::SqlitePool,
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

impl Store {
    /// Connects and migrates. `sqlite://FILE` (created if missing) or `postgres://…`.
    ///
    /// # Errors
    /// An unsupported URL, a connection or migration failure.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            let (read, writer) = sqlite::open(url).await?;
            return Ok(Self::Sqlite(read, writer));
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
            Self::Sqlite(_, writer) => sqlite::apply(writer, stmts).await,
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
            Self::Sqlite(_, writer) => sqlite::returning(writer, sql, args, cols).await,
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

mod sqlite;

pub use sqlite::Write;

pub mod audit;
pub mod autonomy;
pub mod budget;
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
pub mod wecom;
