//! The vSphere Automation API as vcproxy speaks it, to clients and to vCenters:
//! no I/O here, only what the bytes mean.
//!
//! * [`Family`]: which wire protocol a request speaks; every difference between
//!   protocols is asked of it and answered by that protocol's module (`rest`,
//!   `api`): paths, how an operation is recognized, answer and error shapes.
//! * [`jsonrpc`]: vAPI JSON-RPC 2.0 on `POST /api`, the official SDKs' protocol.
//! * `error`: the vAPI standard errors the proxy produces itself.
//! * [`get_task`]: a Get Task question in every protocol, normalized and keyed.
//! * [`filter`]: a List Tasks question in every client encoding, reduced to one
//!   canonical model and cache key, and encoded again for a vCenter.
//! * [`merge`]: several vCenters' List Tasks answers read and merged into one.

pub(crate) mod api;
pub(crate) mod error;
mod family;
pub mod filter;
pub mod get_task;
pub(crate) mod json;
pub mod jsonrpc;
pub mod merge;
pub mod native;
mod path;
pub(crate) mod rest;

use http::{HeaderName, HeaderValue};

pub use error::{ErrorKind, VapiError};
pub use family::Family;

/// The header every vSphere Automation API call carries its session in.
pub const SESSION_HEADER: HeaderName = HeaderName::from_static("vmware-api-session-id");

/// The content type of every JSON body, sent and answered.
pub const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// What a client asks for, whatever its protocol spells it as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Login,
    WhoAmI,
    Logout,
    ListTasks,
    GetTask,
}

impl Operation {
    /// For logs and the `route` metric label.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Login => "login",
            Operation::WhoAmI => "whoami",
            Operation::Logout => "logout",
            Operation::ListTasks => "list_tasks",
            Operation::GetTask => "get_task",
        }
    }
}
