//! Security and caching headers for every response, decided in one place. A response may carry
//! its own Content-Security-Policy (see [`Csp`]); the fairing fills in only what a response did
//! not set itself.

use rocket::fairing::{self, Fairing, Info, Kind};
use rocket::http::Header;
use rocket::request::Request;
use rocket::response::{self, Responder};
use rocket::{Build, Response, Rocket};

use crate::config::Runtime;

/// A Content-Security-Policy. The default forbids inline script and style (tether has none),
/// plugins, framing and `<base>`, lets forms post only to tether itself, and images load from
/// tether or any https host (avatars live on instances and their media hosts).
/// A page that needs more says so for itself: an OAuth connect form whose redirect goes to the
/// instance (`form-action`, which browsers also apply to the redirect after a post), or avatars
/// and thumbnails from an instance (`img-src`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Csp {
    directives: Vec<(&'static str, Vec<String>)>,
}

impl Default for Csp {
    fn default() -> Csp {
        let own = || vec!["'self'".to_string()];
        let none = || vec!["'none'".to_string()];
        Csp {
            directives: vec![
                ("default-src", own()),
                // Avatars and thumbnails come from instances and their media hosts.
                ("img-src", vec!["'self'".to_string(), "https:".to_string()]),
                ("object-src", none()),
                ("base-uri", none()),
                ("frame-ancestors", none()),
                ("form-action", own()),
            ],
        }
    }
}

impl Csp {
    /// Adds `source` (an origin such as `https://mastodon.social`) to `directive`.
    pub fn allow(mut self, directive: &'static str, source: impl Into<String>) -> Csp {
        let source = source.into();
        match self.directives.iter_mut().find(|(d, _)| *d == directive) {
            Some((_, sources)) => {
                sources.retain(|s| s != "'none'");
                if !sources.contains(&source) {
                    sources.push(source);
                }
            }
            None => self.directives.push((directive, vec![source])),
        }
        self
    }

    pub fn allow_form_action(self, origin: impl Into<String>) -> Csp {
        self.allow("form-action", origin)
    }

    pub fn allow_images_from(self, origin: impl Into<String>) -> Csp {
        self.allow("img-src", origin)
    }

    pub fn header_value(&self) -> String {
        self.directives
            .iter()
            .map(|(directive, sources)| format!("{directive} {}", sources.join(" ")))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// A response with its own policy: `WithCsp(page, Csp::default().allow_images_from(origin))`.
pub struct WithCsp<R>(pub R, pub Csp);

impl<'r, 'o: 'r, R: Responder<'r, 'o>> Responder<'r, 'o> for WithCsp<R> {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'o> {
        let mut response = self.0.respond_to(req)?;
        response.set_header(Header::new(CSP_HEADER, self.1.header_value()));
        Ok(response)
    }
}

const CSP_HEADER: &str = "Content-Security-Policy";

pub struct SecurityHeaders;

/// The header values every response gets unless it set its own, worked out once at ignition
/// rather than on every response.
struct Defaults {
    csp: String,
    hsts: bool,
}

fn set_if_absent<'r>(res: &mut Response<'r>, name: &'static str, value: &'r str) {
    if !res.headers().contains(name) {
        res.set_header(Header::new(name, value));
    }
}

#[rocket::async_trait]
impl Fairing for SecurityHeaders {
    fn info(&self) -> Info {
        Info {
            name: "Security headers",
            kind: Kind::Ignite | Kind::Response,
        }
    }

    async fn on_ignite(&self, rocket: Rocket<Build>) -> fairing::Result {
        let runtime = rocket.state::<Runtime>();
        let mut policy = Csp::default();
        // Avatars of allow-listed local instances may be plain http.
        for host_port in runtime.map_or(&[][..], |r| &r.settings.outbound_allow_private[..]) {
            policy = policy.allow_images_from(format!("http://{host_port}"));
        }
        let defaults = Defaults {
            csp: policy.header_value(),
            hsts: runtime.is_some_and(|r| r.secure_cookies),
        };
        Ok(rocket.manage(defaults))
    }

    async fn on_response<'r>(&self, req: &'r Request<'_>, res: &mut Response<'r>) {
        let Some(defaults) = req.rocket().state::<Defaults>() else {
            return;
        };
        set_if_absent(res, CSP_HEADER, &defaults.csp);
        set_if_absent(res, "X-Content-Type-Options", "nosniff");
        set_if_absent(res, "Referrer-Policy", "same-origin");
        set_if_absent(res, "X-Frame-Options", "DENY");
        set_if_absent(res, "Cross-Origin-Opener-Policy", "same-origin");
        if defaults.hsts {
            set_if_absent(
                res,
                "Strict-Transport-Security",
                "max-age=63072000; includeSubDomains",
            );
        }
        // Pages carry account data and CSRF tokens: never store them. Assets set their own.
        set_if_absent(res, "Cache-Control", "no-store");
    }
}

#[cfg(test)]
mod tests {
    use super::Csp;

    #[test]
    fn default_policy_is_strict_and_additions_replace_none() {
        let default = Csp::default().header_value();
        assert_eq!(
            default,
            "default-src 'self'; img-src 'self' https:; object-src 'none'; base-uri 'none'; \
             frame-ancestors 'none'; form-action 'self'"
        );
        let connect = Csp::default()
            .allow_form_action("https://mastodon.social")
            .allow_images_from("https://files.mastodon.social")
            .allow_images_from("https://files.mastodon.social")
            .allow("frame-ancestors", "https://example.org")
            .header_value();
        assert!(connect.contains("form-action 'self' https://mastodon.social"));
        assert!(connect.contains("img-src 'self' https: https://files.mastodon.social;"));
        assert!(connect.contains("frame-ancestors https://example.org"));
    }
}
