//! Serving connections: the accept loop, TLS, and the head-first write; and
//! [`untrusted`], how values from outside are written into the logs.

pub mod head_first;
pub mod listener;
pub mod tls;
pub mod untrusted;
