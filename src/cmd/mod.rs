//! The commands `main.rs` offers besides `serve`, as library functions so tests run
//! them too.

pub mod check;
pub mod demo;
