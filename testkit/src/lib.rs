//! The test kit: what vcproxy's integration tests (`tests/`) and its load benchmark
//! (`benches/load/`) share.
//!
//! * [`Http`] and [`Resp`]: one HTTP client (hyper-util's pooled client, plain or
//!   TLS, HTTP/1.1 or HTTP/2) with the vCenter calls (login, List Tasks) built in.
//! * [`start_sims`], [`sim_config`], [`ADMIN`], [`OPERATOR`]: simulated vCenters.
//! * [`Env`], [`config`], [`bind_proxy`]: the proxy in this process in front of them.
//! * [`ten_encodings`], [`every_service_query`], [`rest_keys`]: List Tasks questions
//!   and answers.
//! * [`Pki`]: a fresh CA and a server certificate it issued, for clients that verify
//!   a chain (the Python SDK).
//! * [`Redis`]: a `redis-server` of a test's own, for replicas sharing it.
//!
//! Why a crate: the tests and the benchmark are separate targets, so before this each
//! carried its own client, `basic()` and simulator start-up, and they drifted. A
//! workspace member used as a dev-dependency is compiled once and shared; it links
//! the same `vcproxy` as the tests that use it.
//!
//! Everything here panics on what a test cannot go on from (a simulator that does
//! not start, an invalid configuration), except the `try_` methods of [`Http`], which
//! the benchmark uses to report a failure in its table.

mod client;
mod env;
mod local;
mod logs;
mod proxy;
mod queries;
mod redis_server;
mod sims;
mod tls;
pub mod typed;

pub use client::{basic, Http, Resp, SESSION};
pub use env::{config, config_toml, parse_config, Env, LISTEN};
pub use local::{free_port, roots, temp_dir};
pub use logs::LogBuffer;
pub use proxy::{bind_proxy, BoundProxy};
pub use queries::{every_service_query, rest_keys, ten_encodings, RestQuery};
pub use redis_server::Redis;
pub use sims::{sim_config, start_sim, start_sims, ADMIN, OPERATOR};
pub use tls::{Pki, PkiFiles};
