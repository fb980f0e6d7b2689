//! Compressed answers, stored once: what is made per fetch and what is chosen per
//! request.
//!
//! * [`compress`]: after a fetch, a cached success answer gets its gzip and zstd
//!   copies, an entity tag and a `Last-Modified` date ([`Encoded`]), made on the
//!   blocking pool once the fetch has answered its waiters;
//! * [`negotiate`]: a request's `Accept-Encoding` picks one of the copies
//!   ([`Accepted::choose`]); a hit compresses nothing;
//! * [`gzip_member`]: the small gzip members that frame a stored gzip copy in a
//!   JSON-RPC answer, whose head (the request's id) differs per request.
//!
//! Only answers that went through the cache have copies: session answers carry a
//! session id and are never compressed (BREACH), nor are errors (small).

mod compress;
mod gzip_member;
mod negotiate;

pub use compress::{encode, Encoded, Encoders, MIN_COMPRESS};
pub use gzip_member::stored_member;
pub use negotiate::{Accepted, Coding};
