use rocket::get;
use rocket::http::Status;
use rocket::serde::json::{json, Value};

use crate::db::{query, Connection};

/// A database round trip, for load balancers: 200 when it answers, 503 otherwise.
#[get("/healthz")]
pub async fn healthz(conn: Connection<'_>) -> (Status, Value) {
    let alive = match conn.get().await {
        Ok(mut db) => query("SELECT 1")
            .fetch_one::<(i32,)>(&mut *db)
            .await
            .is_ok(),
        Err(_) => false,
    };
    if alive {
        (Status::Ok, json!({ "status": "ok" }))
    } else {
        (
            Status::ServiceUnavailable,
            json!({ "status": "unavailable", "error": crate::error::MSG_DATABASE }),
        )
    }
}
