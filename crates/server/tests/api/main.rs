//! The gateway end to end: a real server on 127.0.0.1:0 over a fresh SQLite database.
//! One test binary (links once).

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod audit;
mod batch_query;
mod browser;
mod certificates;
mod chaos;
mod codes;
mod delivery;
mod encryption;
mod gateway_errors;
mod helpers;
mod metrics;
mod no_leak;
mod openapi_v3;
mod query;
mod robustness;
mod signing;
mod stall;
mod tokens;
mod transport;
mod unsign;
mod vectors;
