//! A vCenter simulator: a faithful stand-in for sessions, List Tasks, Get Task and
//! faults, for vcproxy's tests, its load benchmark, `vcproxy demo`, and anyone who
//! wants to try a client without a vCenter.
//!
//! It serves the part of the vSphere Automation API that vcproxy fronts, in both
//! URL families and exactly in the shapes of `shared/vsphere/API-NOTES.md`:
//!
//! | | `/rest` | `/api` |
//! |---|---|---|
//! | log in (Basic) | `POST /rest/com/vmware/cis/session` → 200 `{"value":id}` | `POST /api/session` → 201 `"id"` |
//! | who am I | `POST /rest/com/vmware/cis/session?~action=get` | `GET /api/session` |
//! | log out | `DELETE /rest/com/vmware/cis/session` → 200 | `DELETE /api/session` → 204 |
//! | List Tasks | `GET /rest/cis/tasks` (query, either style, or JSON body) | `POST /api/cis/tasks?action=list` |
//! | Get Task | `GET /rest/cis/tasks/{task}` (`spec.exclude_result` in the query or `{"spec":{..}}` body) | `GET /api/cis/tasks/{task}` (`?exclude_result=true`) |
//!
//! and vAPI JSON-RPC 2.0, the official SDKs' protocol, on `POST /api` (no query), as
//! `shared/vsphere/JSONRPC-NOTES.md` records it: `com.vmware.cis.session` `create`
//! (`user_pass` credentials in the body), `get`, `delete`, and
//! `com.vmware.cis.tasks` `list`, `get`; typed values, every answer HTTP 200 with
//! `result.output` or `result.error` and the request's `id` echoed. Sessions are
//! one store for all three protocols.
//!
//! and a JSON control API, not counted and not faulted:
//! `GET`/`PUT /_sim/faults`, `POST /_sim/expire-sessions`, `GET /_sim/tasks` (every
//! task, `/api` map), `GET /_sim/stats`, `POST /_sim/advance` (`{"by":"60s"}`).
//!
//! Use it in-process with [`start`] and [`SimConfig`]; the returned [`SimHandle`]
//! changes faults, reads [`Stats`], expires sessions, advances time and shuts
//! down. On the command line it is `vcproxy sim` (`crate::cmd::sim`).
//!
//! Modules: `data` (generation and evolution), `model` (typed Info and its
//! rendering in the REST families), `typed` (its JSON-RPC typed-value encoding),
//! `query` (List Tasks semantics), `sessions`, `faults`, `stats`, `routes` (HTTP
//! handling, faults, the REST families), `jsonrpc` (JSON-RPC calls), `server`
//! (in-process API, and which of `routes` and `jsonrpc` answers a request).

mod data;
mod faults;
mod jsonrpc;
mod model;
mod query;
mod rng;
mod routes;
mod server;
mod sessions;
mod stats;
mod typed;

pub use data::service_ids;
pub use faults::{Faults, InvalidFaults};
pub use server::{start, SimConfig, SimHandle};
pub use sessions::{UserSpec, DEFAULT_PASSWORD, DEFAULT_USER};
pub use stats::{Endpoint, FamilyCounts, FaultCounts, Stats};
