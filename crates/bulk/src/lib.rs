//! Bulk data for the agreement world (agreements.md §8): the documented file formats (JSON Lines
//! and CSV, UTF-8 or GBK, one kind of record per file), streaming readers that validate every row
//! with the API's own types, the import and export drivers over the store's batch loader, and a
//! deterministic synthetic world generator. No terminal output here: callers observe progress.

pub mod columns;
pub mod export;
pub mod files;
pub mod import;
pub mod world;

pub use files::{Encoding, Format, Source};
