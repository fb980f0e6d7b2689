//! vcproxy: a caching, aggregating reverse proxy for VMware vCenter's task API.

pub mod auth;
pub mod cmd;
pub mod config;
pub mod net;
pub mod protocol;
pub mod proxy;
pub mod sim;
pub mod upstream;

pub use protocol::{ErrorKind, Family, VapiError};
