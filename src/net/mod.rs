//! Serving connections: the accept loop, TLS, and the head-first write;
//! [`untrusted`], how values from outside are written into the logs; and
//! [`trace_context`], the W3C `traceparent` carried from clients to vCenters.

pub mod head_first;
pub mod listener;
pub mod tls;
pub mod trace_context;
pub mod untrusted;
