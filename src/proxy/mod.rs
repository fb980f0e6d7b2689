//! The proxy at run time, in the order a request meets it:
//!
//! * [`front`]: the client-facing handlers (sessions, List Tasks, not-found);
//! * [`sessions`]: client sessions and the pool of vCenter sessions behind them;
//! * [`cache`]: pre-rendered answers, single-flight fetches, stale serving;
//! * [`fanout`]: one question asked of every vCenter at once, merged;
//! * [`failure`]: which vCenter failure the client hears of;
//! * [`answer`]: the prepared answer and its conversion into a response.
//!
//! [`state`] builds the proxy from the configuration, [`server`] runs its listeners;
//! [`admin`] serves operators; [`metrics`] counts.

mod admin;
pub(crate) mod answer;
pub(crate) mod cache;
pub(crate) mod failure;
pub(crate) mod fanout;
mod front;
pub(crate) mod metrics;
mod server;
pub(crate) mod sessions;
mod state;

pub use server::run;
pub use state::{Proxy, ProxyError};
