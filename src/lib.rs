//! vcproxy: a caching, aggregating reverse proxy for VMware vCenter's task API.
//!
//! The library does the work; `src/main.rs` is a thin command line over it.
//! Modules are named for one responsibility each:
//!
//! * [`filter`]: parse every encoding of a List Tasks filter, normalize it into the
//!   cache key, and encode it again for a vCenter.
//! * [`merge`]: merge several vCenters' List Tasks answers into one, in either family.
//! * [`vapi_error`]: the vAPI standard errors vcproxy produces itself, in both families.
//! * [`sim`]: a vCenter simulator for tests, benchmarks and the demo.

pub mod basic_auth;
pub mod cache;
pub mod check;
pub mod config;
pub mod demo;
pub mod fanout;
pub mod filter;
pub mod head_first;
pub mod listener;
pub mod merge;
pub mod metrics;
pub mod server;
pub mod session;
pub mod sim;
pub mod tls;
pub mod upstream;
pub mod users;
pub mod vapi_error;

pub use vapi_error::{ErrorKind, Family, VapiError};
