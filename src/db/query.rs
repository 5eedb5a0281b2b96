use sqlx::postgres::{PgArguments, PgConnection, PgRow};
use sqlx::sqlite::{SqliteArguments, SqliteConnection, SqliteRow};
use sqlx::{Arguments, FromRow};

use super::pool::{Conn, TxConn};
use super::{DbConn, Timestamp, Tx};

/// A row type that both engines can decode.
pub trait Record:
    for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}

impl<T> Record for T where
    T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}

/// The connection a statement runs on: borrowed from a pooled connection or a transaction.
pub enum Backend<'a> {
    Sqlite(&'a mut SqliteConnection),
    Postgres(&'a mut PgConnection),
}

/// Anything a model query can run on: a request's connection or a transaction on it.
pub trait Exec: Send {
    fn backend(&mut self) -> Backend<'_>;
}

// Every statement asks for its backend exactly once, so that is where it is counted.
impl Exec for DbConn {
    fn backend(&mut self) -> Backend<'_> {
        self.statements += 1;
        match &mut self.conn {
            Conn::Sqlite(c) => Backend::Sqlite(c),
            Conn::Postgres(c) => Backend::Postgres(c),
        }
    }
}

impl Exec for Tx<'_> {
    fn backend(&mut self) -> Backend<'_> {
        *self.statements += 1;
        match &mut self.tx {
            TxConn::Sqlite(t) => Backend::Sqlite(t),
            TxConn::Postgres(t) => Backend::Postgres(t),
        }
    }
}

/// A bind parameter. Owned, so one statement can be bound for whichever engine runs it.
#[derive(Clone, Debug)]
pub enum Value {
    Int(i64),
    OptInt(Option<i64>),
    Bool(bool),
    Text(String),
    OptText(Option<String>),
    Bytes(Vec<u8>),
    OptBytes(Option<Vec<u8>>),
    Time(Timestamp),
    OptTime(Option<Timestamp>),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<Option<i64>> for Value {
    fn from(v: Option<i64>) -> Self {
        Value::OptInt(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Text(v.clone())
    }
}
impl From<Option<String>> for Value {
    fn from(v: Option<String>) -> Self {
        Value::OptText(v)
    }
}
impl From<Option<&str>> for Value {
    fn from(v: Option<&str>) -> Self {
        Value::OptText(v.map(str::to_owned))
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Bytes(v)
    }
}
impl From<Option<Vec<u8>>> for Value {
    fn from(v: Option<Vec<u8>>) -> Self {
        Value::OptBytes(v)
    }
}
impl From<Timestamp> for Value {
    fn from(v: Timestamp) -> Self {
        Value::Time(v)
    }
}
impl From<Option<Timestamp>> for Value {
    fn from(v: Option<Timestamp>) -> Self {
        Value::OptTime(v)
    }
}

/// One SQL statement, written once with `$1..$N` placeholders (both engines accept them), and its
/// parameters.
#[must_use]
pub struct Query<'q> {
    sql: &'q str,
    args: Vec<Value>,
}

pub fn query(sql: &str) -> Query<'_> {
    Query {
        sql,
        args: Vec::new(),
    }
}

impl<'q> Query<'q> {
    pub fn bind(mut self, value: impl Into<Value>) -> Self {
        self.args.push(value.into());
        self
    }

    /// Runs the statement and returns how many rows it changed.
    pub async fn execute(self, db: &mut impl Exec) -> Result<u64, sqlx::Error> {
        match db.backend() {
            Backend::Sqlite(c) => sqlx::query_with(self.sql, sqlite_args(self.args))
                .execute(c)
                .await
                .map(|r| r.rows_affected()),
            Backend::Postgres(c) => sqlx::query_with(self.sql, pg_args(self.args))
                .execute(c)
                .await
                .map(|r| r.rows_affected()),
        }
    }

    /// On SQLite this steps the statement to completion: an `INSERT … RETURNING` read with
    /// sqlx's `fetch_optional`/`fetch_one` leaves the statement open, and its implicit transaction
    /// commits only when a later command resets it. Until then no other connection sees the row,
    /// and a process that exits first loses it.
    pub async fn fetch_optional<T: Record>(
        self,
        db: &mut impl Exec,
    ) -> Result<Option<T>, sqlx::Error> {
        match db.backend() {
            Backend::Sqlite(c) => sqlx::query_as_with(self.sql, sqlite_args(self.args))
                .fetch_all(c)
                .await
                .map(|rows| rows.into_iter().next()),
            Backend::Postgres(c) => {
                sqlx::query_as_with(self.sql, pg_args(self.args))
                    .fetch_optional(c)
                    .await
            }
        }
    }

    /// Steps SQLite statements to completion, as `fetch_optional` does.
    pub async fn fetch_one<T: Record>(self, db: &mut impl Exec) -> Result<T, sqlx::Error> {
        match db.backend() {
            Backend::Sqlite(c) => sqlx::query_as_with(self.sql, sqlite_args(self.args))
                .fetch_all(c)
                .await?
                .into_iter()
                .next()
                .ok_or(sqlx::Error::RowNotFound),
            Backend::Postgres(c) => {
                sqlx::query_as_with(self.sql, pg_args(self.args))
                    .fetch_one(c)
                    .await
            }
        }
    }

    pub async fn fetch_all<T: Record>(self, db: &mut impl Exec) -> Result<Vec<T>, sqlx::Error> {
        match db.backend() {
            Backend::Sqlite(c) => {
                sqlx::query_as_with(self.sql, sqlite_args(self.args))
                    .fetch_all(c)
                    .await
            }
            Backend::Postgres(c) => {
                sqlx::query_as_with(self.sql, pg_args(self.args))
                    .fetch_all(c)
                    .await
            }
        }
    }
}

fn sqlite_args(values: Vec<Value>) -> SqliteArguments<'static> {
    let mut args = SqliteArguments::default();
    for value in values {
        match value {
            Value::Int(v) => args.add(v),
            Value::OptInt(v) => args.add(v),
            Value::Bool(v) => args.add(v),
            Value::Text(v) => args.add(v),
            Value::OptText(v) => args.add(v),
            Value::Bytes(v) => args.add(v),
            Value::OptBytes(v) => args.add(v),
            Value::Time(v) => args.add(v),
            Value::OptTime(v) => args.add(v),
        }
    }
    args
}

fn pg_args(values: Vec<Value>) -> PgArguments {
    let mut args = PgArguments::default();
    for value in values {
        match value {
            Value::Int(v) => args.add(v),
            Value::OptInt(v) => args.add(v),
            Value::Bool(v) => args.add(v),
            Value::Text(v) => args.add(v),
            Value::OptText(v) => args.add(v),
            Value::Bytes(v) => args.add(v),
            Value::OptBytes(v) => args.add(v),
            Value::Time(v) => args.add(v),
            Value::OptTime(v) => args.add(v),
        }
    }
    args
}
