//! The proxy at run time, in the order a request meets it:
//!
//! * [`front`]: the client-facing handlers (sessions, List Tasks, Get Task, in the
//!   REST families and JSON-RPC);
//! * [`sessions`]: client sessions and the pool of vCenter sessions behind them;
//! * [`cache`]: pre-rendered answers, single-flight fetches, stale serving;
//! * [`fanout`]: one question asked of every vCenter at once, merged;
//! * [`lookup`]: one task asked of the vCenter that has it ([`owners`] remembers
//!   which one that is);
//! * [`failure`]: which vCenter failure the client hears of;
//! * [`answer`]: the prepared answer and its conversion into a response ([`body`]:
//!   the response body, sent in parts without copying; its compressed copies come
//!   from [`crate::encoding`]).
//!
//! [`state`] builds the proxy from the configuration, [`reload`] applies a new one
//! to the running proxy, [`server`] runs its listeners; [`admin`] serves operators;
//! [`metrics`] counts.

mod admin;
pub(crate) mod answer;
pub(crate) mod body;
pub(crate) mod cache;
pub(crate) mod failure;
pub(crate) mod fanout;
mod front;
pub(crate) mod lookup;
pub(crate) mod metrics;
pub(crate) mod owners;
mod reload;
mod server;
pub(crate) mod sessions;
pub(crate) mod shared;
mod state;
pub(crate) mod stored;
pub(crate) mod watch;

pub use reload::{ReloadError, ReloadReport};
pub use server::run;
pub use state::{LogControl, Proxy, ProxyError};
pub use watch::WatchSettings;
