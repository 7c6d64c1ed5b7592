//! The integration tests, in one binary: they link the library once. Each module is one
//! concern (its docs say which promise it keeps); `common` holds the scratch directories, the
//! fake's helpers and the ISBN generator they share. Tests that need a process of their own
//! (SQLite's process-wide setting, a counting global allocator) are binaries beside this one:
//! `tests/sqlite_process.rs`, `tests/memory.rs`.

mod common;

mod architecture;
mod batch;
mod chaos;
mod crawl;
mod formats;
mod fuzz;
mod load;
mod machines;
mod postgres;
mod providers;
mod race;
mod reliability;
mod report;
mod results;
mod sru;
mod storage;
mod store;
mod terminal;
mod upgrade;
