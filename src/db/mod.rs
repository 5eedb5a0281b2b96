//! The database layer: one pool type that is either SQLite or PostgreSQL (chosen by the URL
//! scheme at ignite), the connection scope of a request or job, and a tiny query builder that
//! writes each SQL statement once for both engines.
//!
//! sqlx's `Any` driver (0.7.4, the version rocket_db_pools 0.2 pins) truncates i64 on SQLite and
//! rejects BOOLEAN, NULL and timestamp columns, so we dispatch to the two concrete drivers instead.

mod connection;
mod pool;
mod query;
mod text_enum;
mod timestamp;

pub use connection::{Connection, DbUsage, ScopedConnection};
pub use pool::{Db, DbConn, DbPool, Engine, Tx};
pub use query::{query, Exec, Query, Record, Value};
pub use timestamp::Timestamp;

use std::time::{Duration, Instant};

use rocket::fairing::AdHoc;
use rocket::figment::Figment;
use rocket::{Build, Rocket};

use crate::config::Runtime;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// Applies the embedded migrations for whichever engine the pool speaks.
pub async fn migrate(pool: &DbPool) -> Result<(), sqlx::migrate::MigrateError> {
    match pool {
        DbPool::Sqlite(p) => SQLITE_MIGRATIONS.run(p).await,
        DbPool::Postgres(p) => POSTGRES_MIGRATIONS.run(p).await,
    }
}

/// The database settings under `databases.tether`, with rocket_db_pools' defaults: a pool of
/// four connections per worker, five seconds to wait for one.
pub fn config(figment: &Figment) -> Result<rocket_db_pools::Config, String> {
    use rocket::figment::providers::Serialized;
    let workers: usize = figment
        .extract_inner(rocket::Config::WORKERS)
        .unwrap_or_else(|_| rocket::Config::default().workers);
    figment
        .focus("databases.tether")
        .join(Serialized::default("max_connections", workers * 4))
        .join(Serialized::default("connect_timeout", 5))
        .extract::<rocket_db_pools::Config>()
        .map_err(|e| format!("invalid database configuration in `databases.tether`: {e}"))
}

/// Opens the pool, retrying for up to `wait` while the database is unreachable (an orchestrator
/// may start tether and its database together). A configuration mistake fails at once. The error
/// is one line: which database, what failed, which setting to check.
pub async fn open(config: &rocket_db_pools::Config, wait: Duration) -> Result<DbPool, String> {
    let started = Instant::now();
    loop {
        match DbPool::connect(config).await {
            Ok(pool) => return Ok(pool),
            Err(e) if is_transient(&e) && started.elapsed() + RETRY_EVERY < wait => {
                rocket::warn!("database `tether` is not reachable yet ({e}); retrying");
                tokio::time::sleep(RETRY_EVERY).await;
            }
            Err(e) => {
                let cause = match e {
                    sqlx::Error::PoolTimedOut => DbPool::connect_error(config)
                        .await
                        .unwrap_or_else(|| e.to_string()),
                    _ => e.to_string(),
                };
                let waited = if wait.is_zero() {
                    String::new()
                } else {
                    format!(" (tried for {} s, see `database_wait`)", wait.as_secs())
                };
                return Err(format!(
                    "cannot open database `tether` at {}: {}{waited}; check `databases.tether.url`",
                    pool::redact_url(&config.url),
                    one_line(&cause),
                ));
            }
        }
    }
}

const RETRY_EVERY: Duration = Duration::from_secs(1);

fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => true,
        // PostgreSQL starting up, shutting down, or out of connections.
        sqlx::Error::Database(d) => {
            matches!(d.code().as_deref(), Some("57P03" | "57P01" | "53300"))
        }
        _ => false,
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Attaches the database: the pool `main` opened (see [`manage`]) or, when none was given (tests,
/// embedding), one opened here from `databases.tether`; then applies migrations unless
/// `run_migrations = false`. The pool is deliberately not closed at shutdown: requests still in
/// their grace period need it. `main` closes it once the server has stopped.
pub fn stage() -> AdHoc {
    AdHoc::on_ignite("Database", |rocket| async {
        rocket
            .attach(AdHoc::try_on_ignite("Database pool", attach_pool))
            .attach(AdHoc::on_response(
                "Release request connection",
                |req, res| {
                    Box::pin(async move {
                        ScopedConnection::release_for(req);
                        let timing = req
                            .rocket()
                            .state::<Runtime>()
                            .is_some_and(|r| r.settings.server_timing);
                        if timing {
                            let usage = ScopedConnection::usage_for(req);
                            res.set_raw_header(
                                "Server-Timing",
                                format!(
                                    "db;desc=\"{} statements on {} connections\"",
                                    usage.statements, usage.connections
                                ),
                            );
                        }
                    })
                },
            ))
    })
}

/// Hands an already opened pool to the application (what `main` does before launching).
pub fn manage(rocket: Rocket<Build>, pool: DbPool) -> Rocket<Build> {
    rocket.manage(Db::from(pool))
}

async fn attach_pool(rocket: Rocket<Build>) -> Result<Rocket<Build>, Rocket<Build>> {
    let (wait, run_migrations) = rocket
        .state::<Runtime>()
        .map_or((Duration::ZERO, true), |r| {
            (
                Duration::from_secs(r.settings.database_wait),
                r.settings.run_migrations,
            )
        });
    let rocket = if rocket.state::<Db>().is_some() {
        rocket
    } else {
        let opened = match config(rocket.figment()) {
            Ok(config) => open(&config, wait).await,
            Err(message) => Err(message),
        };
        match opened {
            Ok(pool) => manage(rocket, pool),
            Err(message) => {
                rocket::error!("{message}");
                return Err(rocket);
            }
        }
    };
    if run_migrations {
        if let Some(db) = rocket.state::<Db>() {
            if let Err(e) = migrate(db).await {
                rocket::error!("database migrations failed: {e}");
                return Err(rocket);
            }
        }
    }
    Ok(rocket)
}
