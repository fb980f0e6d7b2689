//! Exact request counters.
//!
//! The proxy's tests and the load benchmark prove how much load vcproxy removes
//! from a vCenter by reading these counters, so they count exactly: every request
//! that reached a vCenter endpoint (whatever it was answered, faults included) is
//! counted once, before any work, and in-flight requests are tracked by a guard
//! that is released when the handler finishes or is dropped (a client hanging up).
//! Control requests under `/_sim/` are not counted.

use crate::protocol::Family;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

/// A vCenter API operation the simulator serves, named after its vAPI operation.
/// JSON-RPC calls (`POST /api`) count under the operation they invoke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// Log in: `POST /rest/com/vmware/cis/session`, `POST /api/session`, JSON-RPC
    /// `com.vmware.cis.session` `create`.
    SessionCreate,
    /// Who am I: `POST /rest/com/vmware/cis/session?~action=get`, `GET /api/session`,
    /// JSON-RPC `com.vmware.cis.session` `get`.
    SessionGet,
    /// Log out: `DELETE` on either session path, JSON-RPC `com.vmware.cis.session`
    /// `delete`.
    SessionDelete,
    /// List Tasks: `GET /rest/cis/tasks`, `POST /api/cis/tasks?action=list`, JSON-RPC
    /// `com.vmware.cis.tasks` `list`.
    TasksList,
    /// Get one task: `GET /rest/cis/tasks/{task}`, `GET /api/cis/tasks/{task}`,
    /// JSON-RPC `com.vmware.cis.tasks` `get`.
    TasksGet,
    /// Anything else under `/rest` or `/api` (answered 404 `not_found`), and
    /// JSON-RPC requests that invoke no operation the simulator serves (answered
    /// `operation_not_found`, or a JSON-RPC protocol error).
    Other,
}

impl Endpoint {
    pub const ALL: [Endpoint; 6] = [
        Endpoint::SessionCreate,
        Endpoint::SessionGet,
        Endpoint::SessionDelete,
        Endpoint::TasksList,
        Endpoint::TasksGet,
        Endpoint::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::SessionCreate => "session_create",
            Endpoint::SessionGet => "session_get",
            Endpoint::SessionDelete => "session_delete",
            Endpoint::TasksList => "tasks_list",
            Endpoint::TasksGet => "tasks_get",
            Endpoint::Other => "other",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Endpoint {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Endpoint::ALL
            .into_iter()
            .find(|e| e.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Endpoint::ALL.iter().map(|e| e.as_str()).collect();
                format!("unknown endpoint {s:?} (one of {})", names.join(", "))
            })
    }
}

/// Requests to one endpoint, per family.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FamilyCounts {
    pub rest: u64,
    pub api: u64,
    /// JSON-RPC calls (`POST /api`), counted by the operation they invoke.
    #[serde(default)]
    pub jsonrpc: u64,
}

/// How many times each fault was injected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultCounts {
    /// `service_unavailable` answers (503, or a JSON-RPC `result.error`).
    pub unavailable: u64,
    /// 500 answers with a non-JSON body.
    pub http500: u64,
    /// Requests accepted and never answered.
    pub hang: u64,
    /// Answers whose connection was closed mid-body.
    pub truncate: u64,
}

/// A snapshot of the simulator's counters (`GET /_sim/stats`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Requests received per endpoint and family; every endpoint is present.
    pub requests: BTreeMap<Endpoint, FamilyCounts>,
    /// Sessions opened since start.
    pub sessions_opened: u64,
    /// Sessions open now (not logged out, expired or idle past the timeout).
    pub sessions_open: u64,
    /// vCenter API requests being handled now (hanging ones included).
    pub in_flight: u64,
    /// Faults injected since start.
    pub faults: FaultCounts,
    /// The W3C `traceparent` of the last vCenter API request that carried one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_traceparent: Option<String>,
}

impl Stats {
    /// Requests to `endpoint` in `family`.
    pub fn requests(&self, endpoint: Endpoint, family: Family) -> u64 {
        self.requests.get(&endpoint).map_or(0, |c| match family {
            Family::Rest => c.rest,
            Family::Api => c.api,
            Family::JsonRpc => c.jsonrpc,
        })
    }

    /// Requests to `endpoint` in both families.
    pub fn endpoint_total(&self, endpoint: Endpoint) -> u64 {
        self.requests
            .get(&endpoint)
            .map_or(0, |c| c.rest + c.api + c.jsonrpc)
    }

    /// Every vCenter API request received.
    pub fn total_requests(&self) -> u64 {
        self.requests
            .values()
            .map(|c| c.rest + c.api + c.jsonrpc)
            .sum()
    }
}

/// Which fault was injected, for [`Counters::fault`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FaultKind {
    Unavailable,
    Http500,
    Hang,
    Truncate,
}

/// The live counters behind [`Stats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    requests: [[AtomicU64; 3]; 6],
    in_flight: AtomicU64,
    faults: [AtomicU64; 4],
    last_traceparent: std::sync::Mutex<Option<String>>,
}

fn family_index(f: Family) -> usize {
    match f {
        Family::Rest => 0,
        Family::Api => 1,
        Family::JsonRpc => 2,
    }
}

impl Counters {
    /// Counts one request and marks it in flight until the guard drops.
    pub(crate) fn begin(&self, endpoint: Endpoint, family: Family) -> InFlight<'_> {
        self.requests[endpoint.index()][family_index(family)].fetch_add(1, Ordering::SeqCst);
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(&self.in_flight)
    }

    pub(crate) fn saw_traceparent(&self, value: &[u8]) {
        let value = String::from_utf8_lossy(value).into_owned();
        *self
            .last_traceparent
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(value);
    }

    pub(crate) fn fault(&self, kind: FaultKind) {
        self.faults[kind as usize].fetch_add(1, Ordering::SeqCst);
    }

    /// A snapshot; session figures are filled in by the caller.
    pub(crate) fn snapshot(&self) -> Stats {
        let load = |a: &AtomicU64| a.load(Ordering::SeqCst);
        let requests = Endpoint::ALL
            .into_iter()
            .map(|e| {
                let c = &self.requests[e.index()];
                (
                    e,
                    FamilyCounts {
                        rest: load(&c[0]),
                        api: load(&c[1]),
                        jsonrpc: load(&c[2]),
                    },
                )
            })
            .collect();
        Stats {
            requests,
            sessions_opened: 0,
            sessions_open: 0,
            in_flight: load(&self.in_flight),
            faults: FaultCounts {
                unavailable: load(&self.faults[FaultKind::Unavailable as usize]),
                http500: load(&self.faults[FaultKind::Http500 as usize]),
                hang: load(&self.faults[FaultKind::Hang as usize]),
                truncate: load(&self.faults[FaultKind::Truncate as usize]),
            },
            last_traceparent: self
                .last_traceparent
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }
}

/// Marks one request in flight while alive.
pub(crate) struct InFlight<'a>(&'a AtomicU64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_serializes() {
        let c = Counters::default();
        {
            let _a = c.begin(Endpoint::TasksList, Family::Rest);
            let _b = c.begin(Endpoint::TasksList, Family::Api);
            assert_eq!(c.snapshot().in_flight, 2);
        }
        c.fault(FaultKind::Hang);
        let s = c.snapshot();
        assert_eq!(s.in_flight, 0);
        assert_eq!(s.requests(Endpoint::TasksList, Family::Rest), 1);
        assert_eq!(s.endpoint_total(Endpoint::TasksList), 2);
        assert_eq!(s.total_requests(), 2);
        assert_eq!(s.faults.hang, 1);
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["requests"]["tasks_list"]["api"], 1);
        assert_eq!(json["requests"]["session_create"]["rest"], 0);
        let back: Stats = serde_json::from_value(json).unwrap();
        assert_eq!(back, s);
        assert_eq!("tasks_get".parse::<Endpoint>(), Ok(Endpoint::TasksGet));
        assert!("nope".parse::<Endpoint>().is_err());
    }
}
