//! The database layer: one pool type that is either SQLite or PostgreSQL (chosen by the URL
//! scheme at ignite), the request-scoped connection, and a tiny query builder that writes each
//! SQL statement once for both engines.
//!
//! sqlx's `Any` driver (0.7.4, the version rocket_db_pools 0.2 pins) truncates i64 on SQLite and
//! rejects BOOLEAN, NULL and timestamp columns, so we dispatch to the two concrete drivers instead.

mod connection;
mod pool;
mod query;
mod timestamp;

pub use connection::{Connection, RequestConnection};
pub use pool::{Db, DbConn, DbPool, Engine, Tx};
pub use query::{query, Exec, Query, Record, Value};
pub use timestamp::Timestamp;

use rocket::fairing::{self, AdHoc};
use rocket::{Build, Rocket};
use rocket_db_pools::Database;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// Applies the embedded migrations for whichever engine the pool speaks.
pub async fn migrate(pool: &DbPool) -> Result<(), sqlx::migrate::MigrateError> {
    match pool {
        DbPool::Sqlite(p) => SQLITE_MIGRATIONS.run(p).await,
        DbPool::Postgres(p) => POSTGRES_MIGRATIONS.run(p).await,
    }
}

async fn run_migrations(rocket: Rocket<Build>) -> fairing::Result {
    let Some(db) = Db::fetch(&rocket) else {
        return Err(rocket);
    };
    match migrate(db).await {
        Ok(()) => Ok(rocket),
        Err(e) => {
            rocket::error!("database migrations failed: {e}");
            Err(rocket)
        }
    }
}

/// Attaches the pool, runs migrations at ignite and hands each request's connection back to the
/// pool as soon as its response is ready (not when the body has been written out).
pub fn stage() -> AdHoc {
    AdHoc::on_ignite("Database", |rocket| async {
        rocket
            .attach(Db::init())
            .attach(AdHoc::try_on_ignite("Database migrations", run_migrations))
            .attach(AdHoc::on_response(
                "Release request connection",
                |req, _| Box::pin(async move { RequestConnection::release_for(req).await }),
            ))
    })
}
