//! Serving connections: the accept loop, TLS, and the head-first write.

pub mod head_first;
pub mod listener;
pub mod tls;
