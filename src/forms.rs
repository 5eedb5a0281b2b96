//! The HTML forms tether accepts and the rules for each field. Text fields default to empty, so
//! a missing field is a validation message next to it, never a bare 422 from the form parser.

use std::collections::BTreeMap;

use rocket::form::FromForm;
use serde::Serialize;

use crate::guards::CsrfProtected;
use crate::models::{NewPlatform, PlatformType};

/// Problems keyed by field name, for the template to show next to each field.
pub type FieldErrors = BTreeMap<&'static str, String>;

macro_rules! csrf_protected {
    ($($form:ident),* $(,)?) => {
        $(impl CsrfProtected for $form {
            fn csrf_token(&self) -> &str {
                &self.csrf_token
            }
        })*
    };
}

csrf_protected!(
    CsrfOnly,
    ConnectForm,
    LoginForm,
    RegisterForm,
    PlatformForm,
    PasswordChangeForm,
    EmailChangeForm,
    NewUserForm,
    DescriptionForm,
    AdminActionForm,
);

/// What the audit page's buttons next to a description do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, rocket::FromFormField)]
pub enum DescriptionAction {
    /// Keep it as a draft in tether.
    Save,
    /// Keep it, and queue it for the instance.
    Publish,
}

/// One image's description on the audit page; `filter` and `page` bring the person back to
/// where they were.
#[derive(FromForm)]
pub struct DescriptionForm {
    #[field(default = String::new())]
    pub description: String,
    #[field(default = DescriptionAction::Save)]
    pub action: DescriptionAction,
    pub filter: Option<crate::models::MediaFilter>,
    pub page: Option<i64>,
    #[field(default = String::new())]
    pub csrf_token: String,
}

/// An action on the admin's user list; `q` and `page` bring the admin back to the same list.
#[derive(FromForm)]
pub struct AdminActionForm {
    pub q: Option<String>,
    pub page: Option<i64>,
    #[field(default = String::new())]
    pub csrf_token: String,
}

/// Buttons that change state with no other input (logout, delete, switch, make default).
#[derive(FromForm)]
pub struct CsrfOnly {
    #[field(default = String::new())]
    pub csrf_token: String,
}

/// "Connect with your instance": a host like `mastodon.social` or a URL.
#[derive(FromForm)]
pub struct ConnectForm {
    #[field(default = String::new())]
    pub instance: String,
    #[field(default = String::new())]
    pub csrf_token: String,
}

#[derive(FromForm)]
pub struct LoginForm {
    #[field(default = String::new())]
    pub username: String,
    #[field(default = String::new())]
    pub password: String,
    #[field(default = String::new())]
    pub csrf_token: String,
    pub next: Option<String>,
}

#[derive(FromForm)]
pub struct RegisterForm {
    #[field(default = String::new())]
    pub username: String,
    #[field(default = String::new())]
    pub email: String,
    #[field(default = String::new())]
    pub password: String,
    #[field(default = String::new())]
    pub password_confirm: String,
    #[field(default = String::new())]
    pub csrf_token: String,
}

#[derive(FromForm)]
pub struct PlatformForm {
    #[field(default = String::new())]
    pub name: String,
    #[field(default = String::new())]
    pub platform_type: String,
    #[field(default = String::new())]
    pub instance_url: String,
    #[field(default = String::new())]
    pub username: String,
    #[field(default = String::new())]
    pub access_token: String,
    /// A checkbox on the edit form: absent means unchecked.
    #[field(default = false)]
    pub is_active: bool,
    #[field(default = String::new())]
    pub csrf_token: String,
}

#[derive(FromForm)]
pub struct PasswordChangeForm {
    #[field(default = String::new())]
    pub current_password: String,
    #[field(default = String::new())]
    pub new_password: String,
    #[field(default = String::new())]
    pub new_password_confirm: String,
    #[field(default = String::new())]
    pub csrf_token: String,
}

#[derive(FromForm)]
pub struct EmailChangeForm {
    #[field(default = String::new())]
    pub email: String,
    #[field(default = String::new())]
    pub current_password: String,
    #[field(default = String::new())]
    pub csrf_token: String,
}

/// An administrator creating an account.
#[derive(FromForm)]
pub struct NewUserForm {
    #[field(default = String::new())]
    pub username: String,
    #[field(default = String::new())]
    pub email: String,
    #[field(default = String::new())]
    pub password: String,
    #[field(default = false)]
    pub admin: bool,
    #[field(default = String::new())]
    pub csrf_token: String,
}

/// What a re-rendered platform form shows again: everything typed except the token.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PlatformValues {
    pub name: String,
    pub platform_type: String,
    pub instance_url: String,
    pub username: String,
    pub is_active: bool,
}

pub const PASSWORD_MIN_CHARS: usize = 8;
pub const PASSWORD_MAX_BYTES: usize = 256;
pub const NAME_MAX_CHARS: usize = 100;
const TOKEN_MAX_CHARS: usize = 2048;

/// The most common passwords of 8 characters or more: all of them fall to the first minutes of
/// any guessing attack.
const COMMON_PASSWORDS: &[&str] = &[
    "password",
    "password1",
    "password12",
    "password123",
    "passw0rd",
    "p@ssw0rd",
    "12345678",
    "123456789",
    "1234567890",
    "0123456789",
    "87654321",
    "11111111",
    "00000000",
    "88888888",
    "12341234",
    "11223344",
    "qwertyui",
    "qwertyuiop",
    "qwerty123",
    "qwerty12",
    "1q2w3e4r",
    "1q2w3e4r5t",
    "1qaz2wsx",
    "zaq12wsx",
    "qazwsxedc",
    "asdfghjkl",
    "asdfasdf",
    "abcd1234",
    "abc12345",
    "abcdefgh",
    "iloveyou",
    "iloveyou1",
    "sunshine",
    "princess",
    "football",
    "baseball",
    "basketball",
    "superman",
    "batman123",
    "starwars",
    "whatever",
    "trustno1",
    "letmein1",
    "welcome1",
    "welcome123",
    "changeme",
    "computer",
    "internet",
    "michelle",
    "jennifer",
    "master123",
    "monkey123",
    "dragon123",
    "shadow123",
    "mustang1",
    "charlie1",
    "jordan23",
    "liverpool",
    "chelsea1",
    "samsung1",
    "admin123",
    "administrator",
    "secret123",
    "q1w2e3r4",
    "aaaaaaaa",
    "access14",
    "freedom1",
    "loveyou1",
    "hello123",
];

fn char_len(s: &str) -> usize {
    s.chars().count()
}

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// Usernames: 3–32 letters, digits, `_`, `.` or `-`.
pub fn check_username(username: &str) -> Result<(), String> {
    let len = char_len(username);
    if !(3..=32).contains(&len) {
        return Err("Username must be 3 to 32 characters long.".into());
    }
    if !username
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        return Err("Username may contain only letters, digits, _ . and -.".into());
    }
    Ok(())
}

/// A pragmatic address check: one `@`, a non-empty local part, a dotted domain, no spaces.
pub fn check_email(email: &str) -> Result<(), String> {
    let invalid = || "Enter a valid email address, like name@example.com.".to_string();
    if email.len() > 254 || has_control(email) || email.chars().any(char::is_whitespace) {
        return Err(invalid());
    }
    let Some((local, domain)) = email.split_once('@') else {
        return Err(invalid());
    };
    let domain_ok = !domain.contains('@')
        && domain.contains('.')
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if local.is_empty() || local.len() > 64 || !domain_ok {
        return Err(invalid());
    }
    Ok(())
}

/// Length, not composition: at least 8 characters, at most 256 bytes, anything Unicode, but not
/// the username and not one of the most common passwords.
pub fn check_password(password: &str, username: &str) -> Result<(), String> {
    if password.len() > PASSWORD_MAX_BYTES {
        return Err(format!(
            "Password must be at most {PASSWORD_MAX_BYTES} bytes long."
        ));
    }
    if char_len(password) < PASSWORD_MIN_CHARS {
        return Err(format!(
            "Password must be at least {PASSWORD_MIN_CHARS} characters long."
        ));
    }
    let lowered = password.to_lowercase();
    if !username.is_empty() && lowered == username.to_lowercase() {
        return Err("Password must not be your username.".into());
    }
    if COMMON_PASSWORDS.contains(&lowered.as_str()) {
        return Err("This password is too common. Choose a less guessable one.".into());
    }
    Ok(())
}

/// The rules for a new account's username, email and password, wherever it is created.
fn check_new_account(username: &str, email: &str, password: &str) -> FieldErrors {
    let mut errors = FieldErrors::new();
    if let Err(e) = check_username(username.trim()) {
        errors.insert("username", e);
    }
    if let Err(e) = check_email(email.trim()) {
        errors.insert("email", e);
    }
    if let Err(e) = check_password(password, username.trim()) {
        errors.insert("password", e);
    }
    errors
}

impl RegisterForm {
    pub fn validate(&self) -> FieldErrors {
        let mut errors = check_new_account(&self.username, &self.email, &self.password);
        if !errors.contains_key("password") && self.password != self.password_confirm {
            errors.insert("password_confirm", "The passwords do not match.".into());
        }
        errors
    }
}

impl PasswordChangeForm {
    /// Field rules only; whether `current_password` is right is the handler's question.
    pub fn validate(&self, username: &str) -> FieldErrors {
        let mut errors = FieldErrors::new();
        if self.current_password.is_empty() {
            errors.insert("current_password", "Enter your current password.".into());
        }
        if let Err(e) = check_password(&self.new_password, username) {
            errors.insert("new_password", e);
        } else if self.new_password != self.new_password_confirm {
            errors.insert("new_password_confirm", "The passwords do not match.".into());
        }
        errors
    }
}

impl NewUserForm {
    pub fn validate(&self) -> FieldErrors {
        check_new_account(&self.username, &self.email, &self.password)
    }
}

impl PlatformForm {
    pub fn values(&self) -> PlatformValues {
        PlatformValues {
            name: self.name.trim().to_string(),
            platform_type: self.platform_type.clone(),
            instance_url: self.instance_url.trim().to_string(),
            username: self.username.trim().to_string(),
            is_active: self.is_active,
        }
    }

    /// Checks every field. `token_required` is false when editing: a blank token keeps the old
    /// one. `is_active` is taken from the form only when editing; new platforms start active.
    pub fn validate(
        &self,
        token_required: bool,
    ) -> Result<(NewPlatform, Option<String>), FieldErrors> {
        let mut errors = FieldErrors::new();

        let name = self.name.trim();
        if name.is_empty() {
            errors.insert("name", "Give this connection a name.".into());
        } else if char_len(name) > NAME_MAX_CHARS || has_control(name) {
            errors.insert(
                "name",
                format!("Name must be at most {NAME_MAX_CHARS} characters."),
            );
        }

        let platform_type = PlatformType::parse(self.platform_type.trim());
        if platform_type.is_none() {
            errors.insert("platform_type", "Choose Mastodon or Pixelfed.".into());
        }

        let instance_url = match normalize_instance_url(&self.instance_url) {
            Ok(url) => url,
            Err(e) => {
                errors.insert("instance_url", e);
                String::new()
            }
        };

        let username = match normalize_account(&self.username) {
            Ok(u) => u,
            Err(e) => {
                errors.insert("username", e);
                String::new()
            }
        };

        let token = self.access_token.trim();
        let access_token = if token.is_empty() {
            if token_required {
                errors.insert(
                    "access_token",
                    "Paste the access token for this account.".into(),
                );
            }
            None
        } else if char_len(token) > TOKEN_MAX_CHARS
            || token.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            errors.insert(
                "access_token",
                "That does not look like an access token (no spaces, at most 2048 characters)."
                    .into(),
            );
            None
        } else {
            Some(token.to_string())
        };

        match platform_type {
            Some(platform_type) if errors.is_empty() => Ok((
                NewPlatform {
                    name: name.to_string(),
                    platform_type,
                    instance_url,
                    username,
                    is_active: self.is_active || token_required,
                },
                access_token,
            )),
            _ => Err(errors),
        }
    }
}

/// `mastodon.social`, `https://Mastodon.social/` → `https://mastodon.social`. HTTPS only (an
/// access token must not cross the network in clear), except for a local test instance.
pub fn normalize_instance_url(input: &str) -> Result<String, String> {
    let input = input.trim();
    if input.is_empty() {
        return Err("Enter the instance address, like https://mastodon.social.".into());
    }
    if input.len() > 255 || has_control(input) {
        return Err("That instance address is too long.".into());
    }
    let with_scheme = if input.contains("://") {
        input.to_string()
    } else {
        format!("https://{input}")
    };
    let invalid = || MSG_BAD_INSTANCE.to_string();
    let url = url::Url::parse(&with_scheme).map_err(|_| invalid())?;
    let host = url.host_str().ok_or_else(invalid)?;
    let local = matches!(host, "localhost" | "127.0.0.1" | "[::1]");
    match url.scheme() {
        "https" => {}
        "http" if local => {}
        "http" => {
            return Err("Use an https:// address: tokens must not travel unencrypted.".into())
        }
        _ => return Err(invalid()),
    }
    if !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
        || !matches!(url.path(), "" | "/")
        || !host.contains('.') && !local
    {
        return Err(invalid());
    }
    let mut normalized = format!("{}://{}", url.scheme(), host.to_lowercase());
    if let Some(port) = url.port() {
        normalized.push_str(&format!(":{port}"));
    }
    Ok(normalized)
}

pub const MSG_BAD_INSTANCE: &str = "Enter a valid instance address, like https://mastodon.social.";

/// A username as an instance sends it must already be in the form tether stores.
pub fn check_account_name(name: &str) -> Result<(), String> {
    match normalize_account(name) {
        Ok(normalized) if normalized == name => Ok(()),
        Ok(_) => Err("not a plain account name".into()),
        Err(e) => Err(e),
    }
}

/// `@alice`, `alice@mastodon.social` → `alice`.
pub fn normalize_account(input: &str) -> Result<String, String> {
    let trimmed = input.trim().trim_start_matches('@');
    let local = trimmed.split('@').next().unwrap_or_default();
    if local.is_empty() {
        return Err("Enter the account's username, like alice.".into());
    }
    if char_len(local) > NAME_MAX_CHARS
        || !local
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        return Err("A username may contain only letters, digits, _ . and -.".into());
    }
    Ok(local.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_urls_are_normalised_to_https_origins() {
        assert_eq!(
            normalize_instance_url("Mastodon.Social/").unwrap(),
            "https://mastodon.social"
        );
        assert_eq!(
            normalize_instance_url("https://pixelfed.example:8443").unwrap(),
            "https://pixelfed.example:8443"
        );
        assert!(normalize_instance_url("http://mastodon.social").is_err());
        assert!(normalize_instance_url("https://user:pw@mastodon.social").is_err());
        assert!(normalize_instance_url("https://mastodon.social/@alice").is_err());
        assert!(normalize_instance_url("javascript:alert(1)").is_err());
        assert!(normalize_instance_url("").is_err());
        assert_eq!(
            normalize_instance_url("http://localhost:3000").unwrap(),
            "http://localhost:3000"
        );
    }

    #[test]
    fn account_names_accept_handles() {
        assert_eq!(normalize_account("@alice").unwrap(), "alice");
        assert_eq!(normalize_account("alice@mastodon.social").unwrap(), "alice");
        assert!(normalize_account("@").is_err());
        assert!(normalize_account("al ice").is_err());
    }

    #[test]
    fn passwords_are_judged_by_length_and_guessability() {
        assert!(check_password("correct horse battery", "alice").is_ok());
        assert!(check_password("pässwörd-ü", "alice").is_ok());
        assert!(check_password("short", "alice").is_err());
        assert!(check_password("Password123", "alice").is_err());
        assert!(check_password("alice-the-user", "alice-the-user").is_err());
        assert!(check_password(&"x".repeat(257), "alice").is_err());
    }

    #[test]
    fn usernames_and_emails_are_bounded() {
        assert!(check_username("al").is_err());
        assert!(check_username("alice.b-c_d").is_ok());
        assert!(check_username(&"a".repeat(33)).is_err());
        assert!(check_username("al ice").is_err());
        assert!(check_email("alice@example.com").is_ok());
        assert!(check_email("alice@example").is_err());
        assert!(check_email("alice example.com").is_err());
        assert!(check_email("@example.com").is_err());
    }
}
