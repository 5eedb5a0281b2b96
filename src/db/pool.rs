use std::str::FromStr;
use std::time::Duration;

use rocket::figment::Figment;
use rocket_db_pools::Database;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Connection as _, Postgres, Sqlite};

/// The application's database, configured under `databases.tether`.
#[derive(Database)]
#[database("tether")]
pub struct Db(DbPool);

/// Which engine a URL (and so a pool) speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    pub fn from_url(url: &str) -> Option<Engine> {
        let scheme = url.split_once(':')?.0;
        match scheme {
            "sqlite" => Some(Engine::Sqlite),
            "postgres" | "postgresql" => Some(Engine::Postgres),
            _ => None,
        }
    }
}

#[derive(Clone, Debug)]
pub enum DbPool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A pooled connection, counting the statements run on it (transactions included), so a
/// request can report how much database work it did (see `ScopedConnection::statements`).
pub struct DbConn {
    pub(super) conn: Conn,
    pub(super) statements: u32,
}

// One of these lives per request (and per transaction); boxing the larger variant would cost an
// allocation per acquire to save a few hundred bytes.
#[allow(clippy::large_enum_variant)]
pub(super) enum Conn {
    Sqlite(PoolConnection<Sqlite>),
    Postgres(PoolConnection<Postgres>),
}

/// Changes nothing, but as a write statement it makes SQLite take the database's write lock.
const SQLITE_TAKE_WRITE_LOCK: &str = "UPDATE users SET id = id WHERE 0";

/// A transaction on a [`DbConn`], counting into the connection's statements.
pub struct Tx<'c> {
    pub(super) tx: TxConn<'c>,
    pub(super) statements: &'c mut u32,
}

#[allow(clippy::large_enum_variant)]
pub(super) enum TxConn<'c> {
    Sqlite(sqlx::Transaction<'c, Sqlite>),
    Postgres(sqlx::Transaction<'c, Postgres>),
}

impl DbPool {
    /// Builds the pool described by rocket_db_pools' configuration, creating the SQLite file (and
    /// its directory) when the URL allows it.
    pub async fn connect(config: &rocket_db_pools::Config) -> Result<DbPool, sqlx::Error> {
        let acquire_timeout = Duration::from_secs(config.connect_timeout);
        let idle_timeout = config.idle_timeout.map(Duration::from_secs);
        let max = u32::try_from(config.max_connections.max(1)).unwrap_or(u32::MAX);
        let min = config.min_connections.unwrap_or(0).min(max);
        match Engine::from_url(&config.url) {
            Some(Engine::Sqlite) => {
                let options = SqliteConnectOptions::from_str(&config.url)?
                    .foreign_keys(true)
                    // WAL lets readers proceed while one connection writes; the busy timeout makes
                    // concurrent writers wait for each other instead of failing with SQLITE_BUSY.
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(5));
                let file = options.clone().get_filename();
                if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
                    if !file.as_os_str().is_empty() && file.as_os_str() != ":memory:" {
                        std::fs::create_dir_all(dir)?;
                    }
                }
                let pool = SqlitePoolOptions::new()
                    .max_connections(max)
                    .min_connections(min)
                    .acquire_timeout(acquire_timeout)
                    .idle_timeout(idle_timeout)
                    .test_before_acquire(false)
                    .connect_with(options)
                    .await?;
                Ok(DbPool::Sqlite(pool))
            }
            Some(Engine::Postgres) => {
                let options = PgConnectOptions::from_str(&config.url)?;
                let pool = PgPoolOptions::new()
                    .max_connections(max)
                    .min_connections(min)
                    .acquire_timeout(acquire_timeout)
                    .idle_timeout(idle_timeout)
                    .connect_with(options)
                    .await?;
                Ok(DbPool::Postgres(pool))
            }
            None => Err(sqlx::Error::Configuration(
                format!(
                    "unsupported database URL `{}`: use sqlite://… or postgres://…",
                    redact_url(&config.url)
                )
                .into(),
            )),
        }
    }

    /// Why a single connection attempt fails, for the start-up message: the pool itself only
    /// reports that it timed out, which hides "connection refused" or "password authentication
    /// failed".
    pub async fn connect_error(config: &rocket_db_pools::Config) -> Option<String> {
        let attempt = async {
            match Engine::from_url(&config.url) {
                Some(Engine::Postgres) => {
                    let options = PgConnectOptions::from_str(&config.url)?;
                    sqlx::PgConnection::connect_with(&options).await.map(drop)
                }
                Some(Engine::Sqlite) => {
                    let options = SqliteConnectOptions::from_str(&config.url)?;
                    sqlx::SqliteConnection::connect_with(&options)
                        .await
                        .map(drop)
                }
                None => Ok(()),
            }
        };
        let limit = Duration::from_secs(config.connect_timeout.max(1));
        match tokio::time::timeout(limit, attempt).await {
            Ok(Err(e)) => Some(e.to_string()),
            _ => None,
        }
    }

    pub fn engine(&self) -> Engine {
        match self {
            DbPool::Sqlite(_) => Engine::Sqlite,
            DbPool::Postgres(_) => Engine::Postgres,
        }
    }

    /// Waits for checked-out connections to come back, then closes them all (SQLite checkpoints
    /// its log). Called once the server has stopped serving.
    pub async fn close(&self) {
        match self {
            DbPool::Sqlite(p) => p.close().await,
            DbPool::Postgres(p) => p.close().await,
        }
    }

    pub async fn acquire(&self) -> Result<DbConn, sqlx::Error> {
        let conn = match self {
            DbPool::Sqlite(p) => Conn::Sqlite(p.acquire().await?),
            DbPool::Postgres(p) => Conn::Postgres(p.acquire().await?),
        };
        Ok(DbConn {
            conn,
            statements: 0,
        })
    }
}

/// Hides a password in a database URL before it reaches a log line or error page.
pub(crate) fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

#[rocket::async_trait]
impl rocket_db_pools::Pool for DbPool {
    type Connection = DbConn;
    type Error = sqlx::Error;

    async fn init(figment: &Figment) -> Result<Self, Self::Error> {
        let config: rocket_db_pools::Config = figment
            .extract()
            .map_err(|e| sqlx::Error::Configuration(Box::new(e)))?;
        DbPool::connect(&config).await
    }

    async fn get(&self) -> Result<Self::Connection, Self::Error> {
        self.acquire().await
    }

    async fn close(&self) {
        DbPool::close(self).await
    }
}

impl DbConn {
    pub fn engine(&self) -> Engine {
        match self.conn {
            Conn::Sqlite(_) => Engine::Sqlite,
            Conn::Postgres(_) => Engine::Postgres,
        }
    }

    /// Statements run on this connection since it left the pool.
    pub fn statements(&self) -> u32 {
        self.statements
    }

    /// Starts a transaction that writes; it rolls back unless `commit` is called.
    ///
    /// On SQLite it takes the write lock before anything else, as `BEGIN IMMEDIATE` would (sqlx
    /// 0.7 can only send a plain, deferred `BEGIN`): a deferred transaction that reads first and
    /// writes later fails with "database is locked" when another writer got in between, without
    /// waiting in the busy timeout. A write statement as the first statement waits there instead.
    pub async fn begin(&mut self) -> Result<Tx<'_>, sqlx::Error> {
        let DbConn { conn, statements } = self;
        // BEGIN, the lock statement on SQLite, and later COMMIT.
        *statements += 2;
        let tx = match conn {
            Conn::Sqlite(c) => {
                let mut tx = c.begin().await?;
                *statements += 1;
                sqlx::query(SQLITE_TAKE_WRITE_LOCK)
                    .execute(&mut *tx)
                    .await?;
                TxConn::Sqlite(tx)
            }
            Conn::Postgres(c) => TxConn::Postgres(c.begin().await?),
        };
        Ok(Tx { tx, statements })
    }
}

impl Tx<'_> {
    pub fn engine(&self) -> Engine {
        match self.tx {
            TxConn::Sqlite(_) => Engine::Sqlite,
            TxConn::Postgres(_) => Engine::Postgres,
        }
    }

    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self.tx {
            TxConn::Sqlite(t) => t.commit().await,
            TxConn::Postgres(t) => t.commit().await,
        }
    }
}
