/*!
isbn-crawler: turn lists of ISBNs into a SQLite database of book metadata from Google Books
and Open Library.

The library exposes [`run`], which does what the command line asks; `main.rs` only parses
arguments, prints the error once and returns the exit code. Tests drive [`run`] (or the real
binary) against the in-process fake API in [`fake_api`].

Data flows one way: [`input`] → [`load`] → [`store`] (jobs) → [`crawl`] (workers using
[`providers`]) → [`store`] (books, runs) → `status`, exports, [`report`]. See ARCHITECTURE.md
for the map.
*/

pub mod citation;
pub mod cli;
pub mod clock;
mod commands;
pub mod crawl;
pub mod domain;
pub mod dotenv;
pub mod exit;
pub mod export;
pub mod fake_api;
pub mod input;
pub mod isbn;
pub mod load;
pub mod marc_out;
pub mod progress;
pub mod providers;
pub mod report;
pub mod store;
pub mod terminal;
pub mod xml;

pub use commands::Environment;
pub use exit::ExitCode;

/// An error in how the tool was asked to run (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

pub use clock::now_ms;

/// `s` cut to `max` characters, with an ellipsis when it was longer (tables, reports).
pub fn shorten(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_string(),
    }
}

/// Runs one command line. Errors come back for `main` to print once; their exit code is
/// [`ExitCode::for_error`].
pub async fn run(cli: cli::Cli, env: Environment) -> anyhow::Result<ExitCode> {
    commands::run(cli, env).await
}
