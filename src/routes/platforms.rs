use rocket::response::{Flash, Redirect};
use rocket::{get, post, State};
use serde::Serialize;

use super::Reply;
use crate::crypto::TokenCipher;
use crate::db::{Connection, DbConn};
use crate::error::{Error, Result};
use crate::forms::{CsrfOnly, FieldErrors, PlatformForm, PlatformValues};
use crate::guards::{CsrfForm, CurrentUser, Layout};
use crate::models::{NewPlatform, Platform, PlatformType, SessionRecord, User};

#[derive(Serialize)]
struct PlatformRow<'a> {
    #[serde(flatten)]
    platform: &'a Platform,
    label: &'static str,
}

#[derive(Serialize)]
struct IndexPage<'a> {
    platforms: Vec<PlatformRow<'a>>,
}

#[derive(Serialize)]
struct TypeOption {
    value: &'static str,
    label: &'static str,
    selected: bool,
}

#[derive(Serialize)]
struct FormPage {
    editing: bool,
    action: String,
    values: PlatformValues,
    errors: FieldErrors,
    types: Vec<TypeOption>,
}

impl FormPage {
    fn new(editing: Option<i64>, values: PlatformValues, errors: FieldErrors) -> FormPage {
        let types = PlatformType::ALL
            .into_iter()
            .map(|t| TypeOption {
                value: t.as_str(),
                label: t.label(),
                selected: values.platform_type == t.as_str(),
            })
            .collect();
        FormPage {
            editing: editing.is_some(),
            action: editing
                .map_or_else(|| "/platforms".to_string(), |id| format!("/platforms/{id}")),
            values,
            errors,
            types,
        }
    }

    fn render(self, layout: Layout) -> rocket_dyn_templates::Template {
        let title = if self.editing {
            "Edit platform"
        } else {
            "Connect a platform"
        };
        layout.render("platform_form", title, self)
    }
}

const NOT_FOUND: Error = Error::NotFound("Platform");

#[get("/platforms")]
pub async fn index(user: &CurrentUser, layout: Layout, conn: Connection<'_>) -> Result<Reply> {
    let mut db = conn.get().await?;
    let platforms = Platform::list_for_user(&mut *db, user.id).await?;
    let page = IndexPage {
        platforms: platforms
            .iter()
            .map(|p| PlatformRow {
                platform: p,
                label: p.kind().map_or("", |k| k.label()),
            })
            .collect(),
    };
    Ok(Reply::Page(layout.render("platforms", "Platforms", page)))
}

#[get("/platforms/new")]
pub fn new(_user: &CurrentUser, layout: Layout) -> Reply {
    let values = PlatformValues {
        platform_type: PlatformType::Mastodon.as_str().into(),
        is_active: true,
        ..PlatformValues::default()
    };
    Reply::Page(FormPage::new(None, values, FieldErrors::new()).render(layout))
}

/// Field rules plus the two per-user uniqueness rules, each reported next to its field.
async fn validate(
    db: &mut DbConn,
    user_id: i64,
    form: &PlatformForm,
    editing: Option<i64>,
) -> Result<std::result::Result<(NewPlatform, Option<String>), FieldErrors>> {
    let (platform, token) = match form.validate(editing.is_none()) {
        Ok(valid) => valid,
        Err(errors) => return Ok(Err(errors)),
    };
    let mut errors = FieldErrors::new();
    if Platform::name_taken(db, user_id, &platform.name, editing).await? {
        errors.insert("name", "You already have a platform with this name.".into());
    }
    if Platform::account_taken(
        db,
        user_id,
        &platform.instance_url,
        &platform.username,
        editing,
    )
    .await?
    {
        errors.insert(
            "username",
            "This account on this instance is already connected.".into(),
        );
    }
    Ok(if errors.is_empty() {
        Ok((platform, token))
    } else {
        Err(errors)
    })
}

/// A unique index caught what the checks above raced past: report it as the form would.
fn conflict(e: sqlx::Error) -> Error {
    match e.as_database_error() {
        Some(d) if d.is_unique_violation() => Error::Unprocessable(
            "A platform with this name or account was just added. Please check your platforms."
                .into(),
        ),
        _ => Error::Database(e),
    }
}

fn invalid(
    layout: Layout,
    editing: Option<i64>,
    form: &PlatformForm,
    errors: FieldErrors,
) -> Reply {
    let layout = layout.with_flash("error", "Please correct the highlighted fields.");
    Reply::Invalid(FormPage::new(editing, form.values(), errors).render(layout))
}

#[post("/platforms", data = "<form>")]
pub async fn create(
    user: &CurrentUser,
    layout: Layout,
    conn: Connection<'_>,
    cipher: &State<TokenCipher>,
    form: CsrfForm<PlatformForm>,
) -> Result<Reply> {
    let form = form.0;
    let mut db = conn.get().await?;
    let (new, token) = match validate(&mut db, user.id, &form, None).await? {
        Ok(valid) => valid,
        Err(errors) => return Ok(invalid(layout, None, &form, errors)),
    };
    let token = token.ok_or_else(|| Error::Internal("validated form without a token".into()))?;
    let encrypted = cipher.encrypt(&token, user.id)?;
    let mut tx = db.begin().await?;
    User::lock(&mut tx, user.id).await?;
    let platform = Platform::create(&mut tx, user.id, &new, encrypted)
        .await
        .map_err(conflict)?;
    if user.active_platform_id.is_none() {
        SessionRecord::set_active_platform(&mut tx, user.session_id, Some(platform.id)).await?;
    }
    tx.commit().await?;
    Ok(Reply::Flash(Flash::success(
        Redirect::to("/dashboard"),
        format!("Connected {}.", platform.name),
    )))
}

#[get("/platforms/<id>/edit")]
pub async fn edit(
    id: i64,
    user: &CurrentUser,
    layout: Layout,
    conn: Connection<'_>,
) -> Result<Reply> {
    let mut db = conn.get().await?;
    let platform = Platform::find_for_user(&mut *db, user.id, id)
        .await?
        .ok_or(NOT_FOUND)?;
    let values = PlatformValues {
        name: platform.name,
        platform_type: platform.platform_type,
        instance_url: platform.instance_url,
        username: platform.username,
        is_active: platform.is_active,
    };
    Ok(Reply::Page(
        FormPage::new(Some(id), values, FieldErrors::new()).render(layout),
    ))
}

/// Saves the edit form. A blank token keeps the stored one; deactivating the platform a session
/// is using makes `PlatformContext` fall back on that session's next request.
#[post("/platforms/<id>", data = "<form>")]
pub async fn update(
    id: i64,
    user: &CurrentUser,
    layout: Layout,
    conn: Connection<'_>,
    cipher: &State<TokenCipher>,
    form: CsrfForm<PlatformForm>,
) -> Result<Reply> {
    let form = form.0;
    let mut db = conn.get().await?;
    Platform::find_for_user(&mut *db, user.id, id)
        .await?
        .ok_or(NOT_FOUND)?;
    let (changes, token) = match validate(&mut db, user.id, &form, Some(id)).await? {
        Ok(valid) => valid,
        Err(errors) => return Ok(invalid(layout, Some(id), &form, errors)),
    };
    let encrypted = token.map(|t| cipher.encrypt(&t, user.id)).transpose()?;
    let mut tx = db.begin().await?;
    User::lock(&mut tx, user.id).await?;
    if !Platform::update(&mut tx, user.id, id, &changes, encrypted)
        .await
        .map_err(conflict)?
    {
        return Err(NOT_FOUND);
    }
    Platform::repair_default(&mut tx, user.id).await?;
    tx.commit().await?;
    Ok(Reply::Flash(Flash::success(
        Redirect::to("/platforms"),
        format!("Saved {}.", changes.name),
    )))
}

#[post("/platforms/<id>/default", data = "<_form>")]
pub async fn make_default(
    id: i64,
    user: &CurrentUser,
    conn: Connection<'_>,
    _form: CsrfForm<CsrfOnly>,
) -> Result<Flash<Redirect>> {
    let mut db = conn.get().await?;
    let platform = Platform::find_for_user(&mut *db, user.id, id)
        .await?
        .ok_or(NOT_FOUND)?;
    if !platform.is_active {
        return Ok(Flash::error(
            Redirect::to("/platforms"),
            format!("Activate {} before making it your default.", platform.name),
        ));
    }
    let mut tx = db.begin().await?;
    User::lock(&mut tx, user.id).await?;
    Platform::set_default(&mut tx, user.id, id).await?;
    tx.commit().await?;
    Ok(Flash::success(
        Redirect::to("/platforms"),
        format!("{} is now your default platform.", platform.name),
    ))
}

#[post("/platforms/<id>/delete", data = "<_form>")]
pub async fn delete(
    id: i64,
    user: &CurrentUser,
    conn: Connection<'_>,
    _form: CsrfForm<CsrfOnly>,
) -> Result<Flash<Redirect>> {
    let mut db = conn.get().await?;
    let platform = Platform::find_for_user(&mut *db, user.id, id)
        .await?
        .ok_or(NOT_FOUND)?;
    let mut tx = db.begin().await?;
    User::lock(&mut tx, user.id).await?;
    Platform::delete(&mut tx, user.id, id).await?;
    Platform::repair_default(&mut tx, user.id).await?;
    tx.commit().await?;
    Ok(Flash::success(
        Redirect::to("/platforms"),
        format!("Removed {}.", platform.name),
    ))
}

/// Makes `id` this session's active platform (not the default, not other sessions').
pub async fn switch_active(db: &mut DbConn, user: &CurrentUser, id: i64) -> Result<Platform> {
    let platform = Platform::find_for_user(db, user.id, id)
        .await?
        .ok_or(NOT_FOUND)?;
    if !platform.is_active {
        return Err(Error::Unprocessable(format!(
            "{} is deactivated. Activate it before switching to it.",
            platform.name
        )));
    }
    SessionRecord::set_active_platform(db, user.session_id, Some(platform.id)).await?;
    Ok(platform)
}

/// The switcher without JavaScript.
#[post("/platforms/<id>/switch", data = "<_form>")]
pub async fn switch(
    id: i64,
    user: &CurrentUser,
    conn: Connection<'_>,
    _form: CsrfForm<CsrfOnly>,
) -> Result<Flash<Redirect>> {
    let mut db = conn.get().await?;
    match switch_active(&mut db, user, id).await {
        Ok(platform) => Ok(Flash::success(
            Redirect::to("/dashboard"),
            format!("Now working with {}.", platform.name),
        )),
        Err(Error::Unprocessable(message)) => Ok(Flash::error(Redirect::to("/platforms"), message)),
        Err(e) => Err(e),
    }
}
