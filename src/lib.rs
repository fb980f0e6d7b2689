//! vcproxy: a caching, aggregating reverse proxy for VMware vCenter's task API.
//!
//! A request travels one way through the layers, each a folder:
//!
//! * `proxy`: the front end (routing, sessions), the response cache, the fan-out
//!   to every vCenter, the prepared answer;
//! * [`protocol`]: what the bytes mean: the `/rest` and `/api` protocols, the List
//!   Tasks filter and its cache key, the merge of several answers, vAPI errors;
//! * `upstream`: the HTTP client per vCenter, its TLS trust, its session service;
//! * [`net`]: the accept loop, TLS for the listeners, the head-first write;
//! * [`encoding`]: an answer's stored compressed copies and validators, and which
//!   copy a request's `Accept-Encoding` picks;
//! * [`config`]: the TOML file, validated once at start; [`auth`]: credentials;
//! * [`cmd`]: the commands besides `serve`; [`sim`]: a vCenter simulator;
//! * `cluster`: the Redis layer replicas share answers, fetch locks and sessions through.
//!
//! The public API is what the binary, the tests, the benchmarks and the fuzz
//! targets use: [`Proxy`] and [`run`] to serve, [`config`] to configure,
//! [`protocol`]'s filter and merge and [`encoding`] (benchmarked and fuzzed on
//! their own), [`sim`],
//! [`cmd`], and the TLS and password helpers in [`net`] and [`auth`]. Everything
//! else is `pub(crate)`.

pub mod auth;
pub(crate) mod cluster;
pub mod cmd;
pub mod config;
pub mod encoding;
pub mod net;
pub mod protocol;
mod proxy;
pub mod sim;
mod upstream;

pub use protocol::{ErrorKind, Family, VapiError};
pub use proxy::{run, LogControl, Proxy, ProxyError, ReloadError, ReloadReport, WatchSettings};
