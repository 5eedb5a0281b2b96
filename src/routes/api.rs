//! The JSON API used by the switcher script. Every failure here answers
//! `{"success": false, "error": …}` with its real status (see `catchers::api`).

use rocket::serde::json::{json, Value};
use rocket::{get, post};
use serde::Deserialize;

use crate::db::Connection;
use crate::error::Result;
use crate::guards::{ApiCsrf, CurrentUser, JsonBody, PlatformContext};
use crate::models::Platform;
use crate::services::platforms::switch_active;

/// Unknown fields (`user_id`, `role`, …) are refused rather than silently ignored.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwitchRequest {
    platform_id: i64,
}

#[get("/api/platforms")]
pub async fn platforms(
    user: &CurrentUser,
    context: Option<&PlatformContext>,
    conn: Connection<'_>,
) -> Result<Value> {
    let mut db = conn.get().await?;
    let platforms = Platform::list_for_user(&mut *db, user.id).await?;
    Ok(json!({
        "platforms": platforms,
        "active_platform_id": context.map(|c| c.active.id),
    }))
}

#[post("/api/switch_platform", data = "<body>")]
pub async fn switch_platform(
    user: &CurrentUser,
    _csrf: ApiCsrf,
    conn: Connection<'_>,
    body: JsonBody<SwitchRequest>,
) -> Result<Value> {
    let mut db = conn.get().await?;
    let platform = switch_active(&mut db, user, body.0.platform_id).await?;
    Ok(json!({ "success": true, "platform": platform }))
}
