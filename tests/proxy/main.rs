//! The proxy end to end: simulated vCenters and the proxy in-process on loopback,
//! a real HTTP client, and the simulators' own counters as the witness of what
//! reached "vCenter".
//!
//! One test binary (one build, one link), a file per topic:
//!
//! * `caching`: one fan-out per question and TTL whatever its spelling, the merged
//!   answer, entries per user, the stale windows, `no-cache`, coalescing, and the
//!   `Server-Timing` a fetched answer carries.
//! * `compression`: the stored gzip and zstd copies, `Accept-Encoding`, `ETag` and
//!   `304`, nothing compressed that carries a secret, JSON-RPC's gzip members.
//! * `sessions`: client logins over pooled vCenter sessions, renewal, idle expiry,
//!   service-account mode, and secrets kept out of the logs.
//! * `get_task`: Get Task via the owning vCenter, cached and coalesced; the SDK's
//!   REST spellings (a body on the GET, `/rest/session`).
//! * `jsonrpc`: the official SDK's protocol: sessions shared with REST, lists
//!   forwarded in JSON-RPC and merged, Get Task, errors on HTTP 200.
//! * `keepalive`: every body read before the answer, so pooled connections live.
//! * `native`: vcproxy's own API: tasks with their vCenter named, per-vCenter
//!   failures, the watch stream.
//! * `observability`: the client's `traceparent` continued to the vCenters.
//! * `reload`: a new configuration applied in place: vCenters, the cache, the
//!   service account, the listener's certificate and limits, under load.
//! * `errors`: bad requests, vCenter errors passed through, timeouts, refused
//!   connections, partial answers.
//! * `silent`: connections that hold a slot without using it (silent, idle, an
//!   unfinished HTTP/2 header block) are closed; `/readyz` while slots run out.
//! * `tls_http2`: the connections themselves: TLS towards vCenters and towards
//!   clients, HTTP/2, large answers, and the client listener's connection and header
//!   limits (these are about the transport, like the rest of this file).
//! * `admin_shutdown`: the admin listener, graceful shutdown (in-process and
//!   `serve` on SIGTERM), and the commands an operator runs around the proxy
//!   (`check`, `demo`).
//!
//! Here: the helpers several topics use. The simulators, the proxy in-process and the
//! HTTP client are the test kit's (`testkit/`), shared with the load benchmark.

mod admin_shutdown;
mod caching;
mod compression;
mod errors;
mod get_task;
mod jsonrpc;
mod keepalive;
mod native;
mod observability;
mod reload;
mod sessions;
mod silent;
mod tls_http2;

/// The test kit, under the name it had as `tests/common/`: the tests moved here
/// verbatim.
use vcproxy_testkit as common;

use common::{sim_config, Env, Http, ADMIN};
use vcproxy::sim::{self, Faults};
use vcproxy::Family;

const SVC: &str = "com.vmware.esx.settings.clusters.software";

/// `faults`, applied to List Tasks only (logins keep working).
fn on_lists(faults: Faults) -> Faults {
    Faults {
        endpoints: vec![sim::Endpoint::TasksList],
        ..faults
    }
}

/// Three static simulators, the proxy in front (with `extra` configuration), and an
/// administrator's session in `family`.
async fn logged_in(extra: &str, family: Family) -> (Env, String) {
    let env = Env::start(three_static(), extra, "").await;
    let sid = env.http.session(family, ADMIN.0, ADMIN.1).await;
    (env, sid)
}

/// A `/rest` query for one service's tasks.
fn svc_query() -> String {
    format!("filter_spec.services={SVC}")
}

/// An `/api` body for one service's tasks.
fn svc_body() -> String {
    format!(r#"{{"filter_spec":{{"services":["{SVC}"]}}}}"#)
}

fn three_static() -> Vec<vcproxy::sim::SimConfig> {
    vec![sim_config(120, 1), sim_config(90, 2), sim_config(60, 3)]
}

/// The same request sent to one simulator directly.
async fn direct_raw(
    sim: &sim::SimHandle,
    family: Family,
    rest_query: &str,
    api_body: &str,
) -> common::Resp {
    let http = Http::new(sim.base_url());
    let sid = http.session(family, ADMIN.0, ADMIN.1).await;
    http.list(family, &sid, rest_query, api_body).await
}
