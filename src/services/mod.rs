//! Workflows: the multi-step work behind a form or an API call, each a plain async function of a
//! connection scope and plain values. Handlers parse, call one of these and render; background
//! jobs and the CLI call the same functions without a request.
//!
//! Every check that a write depends on runs inside the write's transaction, after the lock that
//! serialises changes to the same user (see `User::lock`), so a check cannot go stale between
//! the check and the write.

pub mod accounts;
pub mod admin;
pub mod connect;
pub mod media_audit;
pub mod platforms;
pub mod sessions;
