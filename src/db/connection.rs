use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};

use rocket::http::Status;
use rocket::request::{FromRequest, Outcome, Request};
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};

use super::{Db, DbConn, DbPool};
use crate::error::{Error, Failure};

/// One lazily acquired database connection for a unit of work: a request, a background job or a
/// command-line task.
///
/// Every guard and the handler of a request borrow the same `ScopedConnection` (kept in
/// request-local state), so a request takes at most one connection from the pool however many
/// guards it runs; the response fairing in [`super::stage`] hands it back.
///
/// Re-entry cannot hang: asking for the connection while this unit of work already holds it is
/// [`Error::ConnectionInUse`] at once, never a wait on a lock that the waiter itself holds.
pub struct ScopedConnection {
    pool: Option<DbPool>,
    slot: Mutex<Option<DbConn>>,
    /// Connections taken from the pool, and statements run on the ones already given back.
    acquired: AtomicU32,
    statements: AtomicU32,
}

/// How much database work a unit of work did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DbUsage {
    pub connections: u32,
    pub statements: u32,
}

/// Request guard: this request's connection.
pub struct Connection<'r>(&'r ScopedConnection);

impl ScopedConnection {
    /// A connection scope that is not tied to a request (jobs, the CLI, tests).
    pub fn new(pool: DbPool) -> ScopedConnection {
        ScopedConnection::with(Some(pool))
    }

    fn with(pool: Option<DbPool>) -> ScopedConnection {
        ScopedConnection {
            pool,
            slot: Mutex::new(None),
            acquired: AtomicU32::new(0),
            statements: AtomicU32::new(0),
        }
    }

    fn of<'r>(req: &'r Request<'_>) -> &'r ScopedConnection {
        req.local_cache(|| {
            ScopedConnection::with(req.rocket().state::<Db>().map(|db| (**db).clone()))
        })
    }

    /// What this unit of work has used so far; exact once the connection is back.
    pub fn usage(&self) -> DbUsage {
        let current = self
            .slot
            .try_lock()
            .ok()
            .and_then(|slot| slot.as_ref().map(DbConn::statements))
            .unwrap_or(0);
        DbUsage {
            connections: self.acquired.load(Ordering::Relaxed),
            statements: self.statements.load(Ordering::Relaxed) + current,
        }
    }

    /// The request's usage, after its connection went back (see [`super::stage`]).
    pub fn usage_for(req: &Request<'_>) -> DbUsage {
        Self::of(req).usage()
    }

    /// Borrows the connection for a run of queries, acquiring it from the pool on first use.
    /// Drop the guard before calling anything else that needs the connection.
    pub async fn get(&self) -> Result<MappedMutexGuard<'_, DbConn>, Error> {
        let mut slot = self.slot.try_lock().map_err(|_| Error::ConnectionInUse)?;
        if slot.is_none() {
            let pool = self
                .pool
                .as_ref()
                .ok_or(Error::Database(sqlx::Error::PoolClosed))?;
            *slot = Some(pool.acquire().await?);
            self.acquired.fetch_add(1, Ordering::Relaxed);
        }
        MutexGuard::try_map(slot, Option::as_mut)
            .map_err(|_| Error::Database(sqlx::Error::PoolClosed))
    }

    /// Runs slow work that needs no database (password hashing, a call to a remote instance)
    /// with the connection back in the pool, so a slow step never holds one of the pool's few
    /// connections. The next [`get`](Self::get) acquires a fresh connection.
    pub async fn released<T>(&self, work: impl Future<Output = T>) -> Result<T, Error> {
        self.release()?;
        Ok(work.await)
    }

    /// Returns the connection to the pool now.
    pub fn release(&self) -> Result<(), Error> {
        let mut slot = self.slot.try_lock().map_err(|_| Error::ConnectionInUse)?;
        if let Some(conn) = slot.take() {
            self.statements
                .fetch_add(conn.statements(), Ordering::Relaxed);
        }
        Ok(())
    }

    pub(super) fn release_for(req: &Request<'_>) {
        // At the end of a request nothing can still hold the guard; if something did, the
        // connection goes back when the request's local state is dropped.
        let _ = Self::of(req).release();
    }
}

impl std::ops::Deref for Connection<'_> {
    type Target = ScopedConnection;
    fn deref(&self) -> &ScopedConnection {
        self.0
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Connection<'r> {
    type Error = Failure;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Failure> {
        let conn = ScopedConnection::of(req);
        if conn.pool.is_none() {
            let failure = Failure::record(req, &Error::Database(sqlx::Error::PoolClosed));
            return Outcome::Error((Status::ServiceUnavailable, failure));
        }
        Outcome::Success(Connection(conn))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn memory_pool() -> DbPool {
        let config = rocket_db_pools::Config {
            url: "sqlite::memory:".into(),
            min_connections: None,
            max_connections: 1,
            connect_timeout: 1,
            idle_timeout: None,
            extensions: None,
        };
        DbPool::connect(&config).await.expect("in-memory pool")
    }

    #[rocket::async_test]
    async fn asking_for_the_connection_while_holding_it_is_an_error_not_a_hang() {
        let scope = ScopedConnection::new(memory_pool().await);
        let held = scope.get().await.expect("first borrow");
        let again = tokio::time::timeout(std::time::Duration::from_secs(2), scope.get()).await;
        assert!(
            matches!(again, Ok(Err(Error::ConnectionInUse))),
            "re-entry must fail at once"
        );
        assert!(matches!(scope.release(), Err(Error::ConnectionInUse)));
        drop(held);
        assert!(scope.get().await.is_ok());
    }

    #[rocket::async_test]
    async fn released_work_runs_with_the_connection_back_in_a_pool_of_one() {
        let pool = memory_pool().await;
        let scope = ScopedConnection::new(pool.clone());
        drop(scope.get().await.expect("borrow"));
        let other = scope
            .released(async { pool.acquire().await.is_ok() })
            .await
            .expect("released");
        assert!(other, "the pool's only connection was free during the work");
        assert!(scope.get().await.is_ok(), "re-acquired afterwards");
    }
}
