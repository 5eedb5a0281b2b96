//! Managing connected platforms: the list, the connect and edit forms, default, delete and the
//! no-JavaScript switcher.

use rocket::response::Redirect;
use rocket::{get, post, uri};
use serde::Serialize;

use super::{dashboard, Reply};
use crate::db::Connection;
use crate::error::{Error, Result};
use crate::flash::Flash;
use crate::forms::{CsrfOnly, FieldErrors, PlatformForm, PlatformValues};
use crate::guards::{App, CsrfForm, CurrentUser, Layout};
use crate::models::{Platform, PlatformType};
use crate::services::platforms::{self as service, DefaultOutcome, NOT_FOUND};

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
            action: editing.map_or_else(
                || uri!(create).to_string(),
                |id| uri!(update(id)).to_string(),
            ),
            values,
            errors,
            types,
        }
    }

    fn title(&self) -> &'static str {
        if self.editing {
            "Edit platform"
        } else {
            "Connect a platform"
        }
    }

    fn render(self, layout: Layout) -> Reply {
        Reply::Page(layout.render("platform_form", self.title(), self))
    }

    fn invalid(self, layout: Layout) -> Reply {
        Reply::invalid(layout, "platform_form", self.title(), self)
    }
}

fn to_list(message: String) -> Flash<Redirect> {
    Flash::success(Redirect::to(uri!(index)), message)
}

#[get("/platforms")]
pub async fn index(user: &CurrentUser, layout: Layout, conn: Connection<'_>) -> Result<Reply> {
    let mut db = conn.get().await?;
    let platforms = Platform::list_for_user(&mut *db, user.id).await?;
    let page = IndexPage {
        platforms: platforms
            .iter()
            .map(|p| PlatformRow {
                platform: p,
                label: p.platform_type.label(),
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
    FormPage::new(None, values, FieldErrors::new()).render(layout)
}

#[post("/platforms", data = "<form>")]
pub async fn create(
    user: &CurrentUser,
    layout: Layout,
    conn: Connection<'_>,
    app: App<'_>,
    form: CsrfForm<PlatformForm>,
) -> Result<Reply> {
    let form = form.0;
    let invalid = |errors| FormPage::new(None, form.values(), errors).invalid(layout);
    let (new, token) = match form.validate(true) {
        Ok((new, Some(token))) => (new, token),
        Ok((_, None)) => return Err(Error::Internal("validated form without a token".into())),
        Err(errors) => return Ok(invalid(errors)),
    };
    let mut db = conn.get().await?;
    match service::create(&mut db, app.cipher, user, &new, &token).await? {
        Ok(platform) => Ok(Reply::Flash(Flash::success(
            Redirect::to(uri!(dashboard::show)),
            format!("Connected {}.", platform.name),
        ))),
        Err(errors) => Ok(invalid(errors)),
    }
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
        platform_type: platform.platform_type.as_str().to_string(),
        instance_url: platform.instance_url,
        username: platform.username,
        is_active: platform.is_active,
    };
    Ok(FormPage::new(Some(id), values, FieldErrors::new()).render(layout))
}

/// Saves the edit form. A blank token keeps the stored one; deactivating the platform a session
/// is using makes that session fall back to the default on its next request.
#[post("/platforms/<id>", data = "<form>")]
pub async fn update(
    id: i64,
    user: &CurrentUser,
    layout: Layout,
    conn: Connection<'_>,
    app: App<'_>,
    form: CsrfForm<PlatformForm>,
) -> Result<Reply> {
    let form = form.0;
    let invalid = |errors| FormPage::new(Some(id), form.values(), errors).invalid(layout);
    let mut db = conn.get().await?;
    let (changes, token) = match form.validate(false) {
        Ok(valid) => valid,
        Err(errors) => {
            // A form for a platform that is not there is a 404, whatever its fields say.
            Platform::find_for_user(&mut *db, user.id, id)
                .await?
                .ok_or(NOT_FOUND)?;
            return Ok(invalid(errors));
        }
    };
    match service::update(&mut db, app.cipher, user, id, &changes, token.as_deref()).await? {
        Ok(platform) => Ok(Reply::Flash(to_list(format!("Saved {}.", platform.name)))),
        Err(errors) => Ok(invalid(errors)),
    }
}

#[post("/platforms/<id>/default", data = "<_form>")]
pub async fn make_default(
    id: i64,
    user: &CurrentUser,
    conn: Connection<'_>,
    _form: CsrfForm<CsrfOnly>,
) -> Result<Flash<Redirect>> {
    let mut db = conn.get().await?;
    Ok(match service::make_default(&mut db, user, id).await? {
        DefaultOutcome::Done(p) => to_list(format!("{} is now your default platform.", p.name)),
        DefaultOutcome::Inactive(p) => Flash::error(
            Redirect::to(uri!(index)),
            format!("Activate {} before making it your default.", p.name),
        ),
    })
}

#[post("/platforms/<id>/delete", data = "<_form>")]
pub async fn delete(
    id: i64,
    user: &CurrentUser,
    conn: Connection<'_>,
    _form: CsrfForm<CsrfOnly>,
) -> Result<Flash<Redirect>> {
    let mut db = conn.get().await?;
    let platform = service::delete(&mut db, user, id).await?;
    Ok(to_list(format!("Removed {}.", platform.name)))
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
    match service::switch_active(&mut db, user, id).await {
        Ok(platform) => Ok(Flash::success(
            Redirect::to(uri!(dashboard::show)),
            format!("Now working with {}.", platform.name),
        )),
        Err(Error::Unprocessable(message)) => Ok(Flash::error(Redirect::to(uri!(index)), message)),
        Err(e) => Err(e),
    }
}
