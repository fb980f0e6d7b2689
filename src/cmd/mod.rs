//! The commands of the `vcproxy` binary besides `serve`, as library functions so
//! that tests run them too; `main.rs` only parses the command line.

pub mod check;
pub mod demo;
pub mod logging;
pub mod notify;
pub mod signal;
pub mod sim;
