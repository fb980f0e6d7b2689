//! Credentials: HTTP Basic headers, and the proxy-local user list of the
//! service-account mode.

pub mod basic_auth;
pub mod users;
