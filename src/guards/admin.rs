use rocket::outcome::try_outcome;
use rocket::request::{FromRequest, Outcome, Request};

use super::{fail, CurrentUser};
use crate::error::{Error, Failure};

/// A signed-in administrator. Built on `CurrentUser`, so the role is read from the database on
/// every request: a demoted admin loses access on their next request, from any device.
pub struct AdminUser<'r>(pub &'r CurrentUser);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for AdminUser<'r> {
    type Error = Failure;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Failure> {
        let user = try_outcome!(req.guard::<&CurrentUser>().await);
        if user.is_admin() {
            Outcome::Success(AdminUser(user))
        } else {
            fail(
                req,
                Error::Forbidden("Only administrators can open this page.".into()),
            )
        }
    }
}

impl std::ops::Deref for AdminUser<'_> {
    type Target = CurrentUser;
    fn deref(&self) -> &CurrentUser {
        self.0
    }
}
