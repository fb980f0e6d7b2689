//! The proxy at run time.

pub mod cache;
pub mod fanout;
pub mod metrics;
pub mod server;
pub mod sessions;
