use rocket::response::Redirect;
use rocket::{get, uri};

use super::Reply;
use crate::guards::{CurrentUser, Layout};

/// Signed in: straight to work. Otherwise the landing page.
#[get("/")]
pub fn index(user: Option<&CurrentUser>, layout: Layout<'_>) -> Reply {
    match user {
        Some(_) => Reply::Redirect(Redirect::to(uri!(super::dashboard::show))),
        None => Reply::Page(layout.render("index", "Welcome", ())),
    }
}
