use rocket::http::Status;
use rocket::request::{FromRequest, Outcome, Request};
use rocket_db_pools::Database;
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};

use super::{Db, DbConn, DbPool};
use crate::error::{Error, Failure};

/// The one database connection of a request, kept in request-local state.
///
/// Every guard and the handler borrow this same value, so a request takes at most one connection
/// from the pool however many guards it runs; it is acquired on first use and handed back by the
/// response fairing in [`super::stage`].
pub struct RequestConnection {
    pool: Option<DbPool>,
    slot: Mutex<Option<DbConn>>,
}

/// Request guard: this request's connection.
pub struct Connection<'r>(&'r RequestConnection);

impl RequestConnection {
    fn of<'r>(req: &'r Request<'_>) -> &'r RequestConnection {
        req.local_cache(|| RequestConnection {
            pool: Db::fetch(req.rocket()).map(|db| (**db).clone()),
            slot: Mutex::new(None),
        })
    }

    /// Locks the connection for a run of queries, acquiring it from the pool on first use.
    pub async fn get(&self) -> Result<MappedMutexGuard<'_, DbConn>, Error> {
        let mut slot = self.slot.lock().await;
        if slot.is_none() {
            let pool = self
                .pool
                .as_ref()
                .ok_or(Error::Database(sqlx::Error::PoolClosed))?;
            *slot = Some(pool.acquire().await?);
        }
        MutexGuard::try_map(slot, Option::as_mut)
            .map_err(|_| Error::Database(sqlx::Error::PoolClosed))
    }

    /// Returns the connection to the pool now; the next `get` acquires a fresh one. Used around
    /// slow work that needs no database (password hashing), and when the response is ready.
    pub async fn release(&self) {
        self.slot.lock().await.take();
    }

    pub(super) async fn release_for(req: &Request<'_>) {
        Self::of(req).release().await;
    }
}

impl std::ops::Deref for Connection<'_> {
    type Target = RequestConnection;
    fn deref(&self) -> &RequestConnection {
        self.0
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Connection<'r> {
    type Error = Failure;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Failure> {
        let conn = RequestConnection::of(req);
        if conn.pool.is_none() {
            let failure = Failure::record(req, &Error::Database(sqlx::Error::PoolClosed));
            return Outcome::Error((Status::ServiceUnavailable, failure));
        }
        Outcome::Success(Connection(conn))
    }
}
