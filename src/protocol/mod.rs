//! The vSphere Automation API as vcproxy speaks it.

pub mod error;
pub mod filter;
pub(crate) mod json;
pub mod merge;

pub use error::{ErrorKind, Family, VapiError};
