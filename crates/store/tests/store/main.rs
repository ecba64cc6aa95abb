//! The store's integration tests, one binary: every test runs on SQLite, and on PostgreSQL too when
//! `AGREEMENTS_TEST_DATABASE_URL` names a server.

mod load;
mod outbox;
mod story;
mod upgrade;
