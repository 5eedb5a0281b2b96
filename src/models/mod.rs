//! A model per table; each keeps its SQL beside the struct it loads. Handlers never hold SQL.

pub mod platform;
pub mod session;
pub mod user;

pub use platform::{NewPlatform, Platform, PlatformType};
pub use session::{NewSession, SessionRecord};
pub use user::{NewUser, Role, User};
