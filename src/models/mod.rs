//! A model per table; each keeps its SQL beside the struct it loads. Handlers never hold SQL.

pub mod audit;
pub mod media_audit;
pub mod media_item;
pub mod oauth;
pub mod platform;
pub mod session;
pub mod throttle;
pub mod user;

pub use audit::{AuditAction, AuditEvent, NewAuditEvent, Party};
pub use media_audit::{AuditSnapshot, MediaAudit, ScanState};
pub use media_item::{FoundMedia, MediaFilter, MediaItem, MediaState, MediaSummary};
pub use oauth::{OAuthApp, OAuthState};
pub use platform::{AccountCopy, NewPlatform, Platform, PlatformType, StoredSecrets};
pub use session::{NewSession, SessionRecord, SessionSummary};
pub use throttle::LoginThrottle;
pub use user::{NewUser, Role, User};
