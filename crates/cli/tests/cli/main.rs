//! The `agreements` binary's integration tests, one binary: the commands as an operator runs them,
//! and real `agreements serve` processes loaded, killed and restarted.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod audit;
mod bench;
mod bulk;
mod commands;
mod common;
mod notify;
mod soak;
mod transport;
