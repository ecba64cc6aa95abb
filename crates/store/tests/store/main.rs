//! The store's integration tests, one binary: every test runs on SQLite, and on PostgreSQL too when
//! `AGREEMENTS_TEST_DATABASE_URL` names a server.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod audit;
mod load;
mod outbox;
mod schema;
mod story;
mod upgrade;
