/*!
The job store: the one place that knows where jobs, books, rejected lines and runs live.

Everything above this module speaks the [`Store`] traits (`contract.rs`: one per consumer,
`Store` all of them). Two backends implement them, each in a folder of its own SQL:
[`SqliteStore`] (a file, one machine) and [`PgStore`] (a server several machines share); the
commands open an [`AnyStore`] from `--db` ([`Location`]) and never ask which it is. One
conformance suite (`tests/it/store.rs`) holds both to the rules below.

# The lookup state machine

Each job (one book) is asked of each provider in a *lookup* of its own; lookups carry the
crawl's state, attempts, backoff and lease.

```text
             crawl (a lookup made for a job and provider)
                   │
                   ▼
   ┌──────────▶ pending ◀───────────────────────────────┐
   │               │ claim: attempts += 1, lease set     │ transient error, attempts left:
   │               ▼                                     │   next_attempt_at = now + backoff
   │          in_progress ───────────────────────────────┤ rate limited (429): attempt refunded
   │   give back   │                                     │
   └── (quota, bad key, signal, a dead run's lease:      │
        attempt refunded)                                │
                   │ verified record   no match     attempts spent / permanent error
                   ▼                    ▼                ▼
                 done              not_found           failed
```

A job's state follows from its lookups, recomputed in the transaction that changes them:
`done` if any provider found the book; else `in_progress`, `pending`, `failed` in that order;
`not_found` when every lookup says so. A job without lookups (loaded, never crawled) is
`pending`.

Rules every backend keeps:
1. A lookup changes state only inside a store transaction; a provider's record (and the merged
   book) is written in the same transaction that marks its lookup `done`.
2. Only the lease owner (`lease_owner` = the run's id) can complete a lookup; a completion for
   a lease that was taken back changes nothing.
3. `done`, `not_found` and `failed` are terminal for `crawl`; `load` never changes a job that
   exists, so re-loading never resets a state or a stored result.
*/

mod any;
mod contract;
mod exec;
mod location;
mod merge;
mod overview;
pub mod postgres;
mod routing;
mod sql;
pub mod sqlite;
mod tally;

pub use any::AnyStore;
pub use contract::{Claim, Commit, CrawlStore, LoadStore, QuotaStore, ReadStore, Store};
pub use location::Location;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

use std::collections::BTreeMap;

use serde::Serialize;

pub use crate::domain::Book;
use crate::domain::ProviderId;
use crate::isbn::{Isbn13, RejectReason};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong in the store, sorted by what the user can do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "database {path} is locked by another process (waited {waited_ms} ms); try again when it is done"
    )]
    Locked { path: String, waited_ms: u64 },
    #[error(
        "database {path}: the disk is full; free some space and run again (nothing stored is lost)"
    )]
    DiskFull { path: String },
    #[error("database {path} is read-only; check the permissions of the file and its directory")]
    ReadOnly { path: String },
    #[error("{path} is not an isbn-crawler SQLite database")]
    NotADatabase { path: String },
    #[error(
        "database {path} was written by a newer isbn-crawler (schema version {version}); upgrade the tool"
    )]
    NewerSchema { path: String, version: i64 },
    #[error("no database at {path}; `isbn-crawler load FILE` creates one")]
    Missing { path: String },
    #[error(
        "cannot open database {path}: the file or its directory is not writable (a read-only file system? permissions?)"
    )]
    CannotOpen { path: String },
    #[error(
        "cannot reach the database server {path} ({reason}); is PostgreSQL running and accepting connections there?"
    )]
    Unreachable { path: String, reason: String },
    /// The server answered but would not let us in: a role, password or database it does not
    /// know (its message names them, never the password).
    #[error(
        "the database server {path} refused the connection ({reason}); check the user, password and database name in --db (or ISBN_CRAWLER_DB) and the server's pg_hba.conf"
    )]
    Refused { path: String, reason: String },
    #[error(
        "lost the connection to the database server {path} ({reason}); nothing stored is lost: run again once it is back"
    )]
    ConnectionLost { path: String, reason: String },
    /// The value is not repeated: it may hold a password.
    #[error(
        "--db (or ISBN_CRAWLER_DB) is not a valid postgres:// URL; the form is postgres://user[:password]@host:port/dbname"
    )]
    BadUrl,
    #[error(
        "{path} holds tables that are not isbn-crawler's and was left as it is; give the crawler a new file or an empty database (on PostgreSQL, a schema of its own)"
    )]
    Foreign { path: String },
    /// Anything else. The SQLite error is part of the message, not a `source`: sqlx's errors
    /// repeat their cause in their own text, and `{:#}` would print it three times.
    #[error("database {path}: {error}")]
    Other { path: String, error: sqlx::Error },
}

/// The states of a job; their names are what the `jobs.state` column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Pending,
    InProgress,
    Done,
    NotFound,
    Failed,
}

impl JobState {
    pub const ALL: [JobState; 5] = [
        JobState::Pending,
        JobState::InProgress,
        JobState::Done,
        JobState::NotFound,
        JobState::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::InProgress => "in_progress",
            JobState::Done => "done",
            JobState::NotFound => "not_found",
            JobState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// A valid ISBN read from an input, with where it was read.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub isbn: Isbn13,
    pub line: u64,
}

/// What one load transaction saves: new jobs, rejected lines, and the own identifiers of the
/// records some jobs came from (`(line, reference)`, sorted by line; only MARC has them, so
/// they live beside the jobs instead of making every job larger).
#[derive(Debug, Clone, Default)]
pub struct LoadBatch {
    pub jobs: Vec<NewJob>,
    pub rejects: Vec<Reject>,
    pub references: Vec<(u64, String)>,
}

impl LoadBatch {
    /// The reference of the record at `line`, if it has one.
    pub fn reference(&self, line: u64) -> Option<&str> {
        self.references
            .binary_search_by_key(&line, |(l, _)| *l)
            .ok()
            .map(|i| self.references[i].1.as_str())
    }
}

/// An input line that yielded no valid ISBN.
#[derive(Debug, Clone)]
pub struct Reject {
    pub line: u64,
    pub raw: String,
    pub reason: RejectReason,
}

/// The job table at a glance (`status`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    /// Jobs per state; every state is present, with 0 when it has no jobs.
    pub jobs: BTreeMap<&'static str, u64>,
    pub total: u64,
    /// Pending jobs whose `next_attempt_at` has come.
    pub due_now: u64,
    /// Rejected input lines per reason code.
    pub rejected_lines: BTreeMap<String, u64>,
    /// Requests sent to Google in the current quota day (Pacific), and that day.
    pub quota_day: String,
    pub requests_today: u64,
    /// Lookups per provider and state (only providers that have lookups).
    pub lookups: BTreeMap<&'static str, BTreeMap<&'static str, u64>>,
    /// How many quota days Google's part still needs, when anything is left for Google and
    /// runs have measured how many books a request brings.
    pub eta: Option<Eta>,
}

/// "About N quota days left": Google lookups still open ÷ books per request ÷ daily budget.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Eta {
    pub google_open: u64,
    /// Books Google found per request over the latest runs (up to ten) that asked it.
    pub books_per_request: f64,
    pub daily_budget: u64,
    /// No run set `--daily-budget`: Google's default of 1,000 is assumed.
    pub default_budget: bool,
    pub days: f64,
}

/// Everything the report shows, aggregated in the database (never by loading rows).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Overview {
    pub status: Status,
    pub sources: Vec<SourceCounts>,
    pub providers: Vec<ProviderCounts>,
    /// Completeness of the merged books.
    pub merged: Completeness,
    pub rejects: Vec<RejectGroup>,
    /// The most common reasons lookups ended `not_found` or `failed`.
    pub failures: Vec<FailureClass>,
    /// Google requests per quota day, oldest first (the estimate is `status.eta`).
    pub quota_days: Vec<(String, u64)>,
    /// The latest runs, newest first.
    pub runs: Vec<RunRow>,
    /// Books per published decade (the decade's first year).
    pub decades: Vec<(i64, u64)>,
    pub languages: Vec<(String, u64)>,
    pub publishers: Vec<(String, u64)>,
    pub categories: Vec<(String, u64)>,
    /// The latest books stored: (isbn13, title, authors as text, year, provenance).
    pub recent: Vec<RecentBook>,
    /// Books per registration group, most first: which catalogue to add next.
    pub groups: Vec<GroupCounts>,
}

/// One registration group (`978-3`): its books, how many were found, and by whom.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GroupCounts {
    pub group: String,
    /// The language area or country, where the group is a common one.
    pub name: Option<&'static str>,
    pub books: u64,
    pub found: u64,
    /// Records per provider (a book found by two counts for both).
    pub by_provider: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, Serialize, sqlx::FromRow)]
pub struct RecentBook {
    pub isbn13: String,
    pub title: Option<String>,
    pub authors: Option<String>,
    pub published_year: Option<i64>,
    pub provenance: Option<String>,
}

/// What one load of a source read.
#[derive(Debug, Clone, Default)]
pub struct LoadRecord {
    pub source: String,
    pub lines: u64,
    pub valid: u64,
    pub queued: u64,
    pub rejected: u64,
    pub read_as: Option<String>,
    pub problem: Option<String>,
}

/// One input file: what it gave.
#[derive(Debug, Clone, Default, Serialize, sqlx::FromRow)]
pub struct SourceCounts {
    pub source: String,
    /// Content lines read, over every load of the file.
    pub lines: i64,
    pub queued: i64,
    pub rejected: i64,
    pub found: i64,
    pub not_found: i64,
    pub failed: i64,
    pub open: i64,
}

/// One provider: its lookups by state, books only it found, and how complete its records are.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProviderCounts {
    pub provider: String,
    pub lookups: BTreeMap<String, u64>,
    pub only_here: u64,
    pub completeness: Completeness,
}

/// How many records have each field.
#[derive(Debug, Clone, Default, Serialize, sqlx::FromRow)]
pub struct Completeness {
    pub records: i64,
    pub description: i64,
    pub page_count: i64,
    pub cover: i64,
    pub authors: i64,
    pub publisher: i64,
    pub year: i64,
}

#[derive(Debug, Clone, Default, Serialize, sqlx::FromRow)]
pub struct FailureClass {
    pub provider: String,
    pub state: String,
    pub error: String,
    pub count: i64,
}

#[derive(Debug, Clone, Default, Serialize, sqlx::FromRow)]
pub struct RunRow {
    pub id: i64,
    pub command: String,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub stop_reason: Option<String>,
    pub requests: i64,
    pub done: i64,
    pub books_per_request: Option<f64>,
}

/// One provider's record of a book, and its lookup: what `show` prints per provider.
#[derive(Debug, Clone, Default, PartialEq, Serialize, sqlx::FromRow)]
pub struct ProviderRecord {
    pub provider: String,
    pub state: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub record_id: Option<String>,
    pub title: Option<String>,
    pub subtitle: Option<String>,
    pub authors: Option<String>,
    pub publisher: Option<String>,
    pub published_date: Option<String>,
    pub page_count: Option<i64>,
    pub categories: Option<String>,
    pub language: Option<String>,
    pub description: Option<String>,
    pub thumbnail: Option<String>,
    pub ddc: Option<String>,
    pub lcc: Option<String>,
    pub lccn: Option<String>,
    pub attribution: Option<String>,
    pub raw_json: Option<String>,
    pub fetched_at: Option<i64>,
}

/// A run's id: the lease owner of what it claims. A type of its own so that a run id and a
/// time (both `i64` in the tables) cannot trade places in a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, sqlx::Type)]
#[sqlx(transparent)]
pub struct RunId(pub i64);

impl std::fmt::Display for RunId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A lookup (one job, one provider) a run has leased.
#[derive(Debug, Clone)]
pub struct ClaimedLookup {
    /// The lookup's id.
    pub id: i64,
    pub isbn: Isbn13,
    /// Attempts including the one this claim starts.
    pub attempts: u32,
}

/// How one claimed job ended in this run.
#[derive(Debug, Clone)]
pub enum JobResult {
    /// A verified book: store it, job `done`.
    Done(Box<Book>),
    /// The API answered but nothing matched: job `not_found`, with why in `last_error`.
    NotFound { note: String },
    /// Try again at `at` (Unix ms). `refund` gives the attempt back (rate limiting is not the
    /// job's fault).
    Retry {
        at: i64,
        error: String,
        refund: bool,
    },
    /// No attempts left, or an error no retry can fix.
    Failed { error: String },
    /// The run is stopping (quota, bad key, signal): back to `pending`, attempt refunded.
    GiveBack,
}

/// A provider a crawl asks, and which ISBNs it asks it about.
#[derive(Debug, Clone, PartialEq)]
pub struct Asked {
    pub provider: ProviderId,
    pub routes: crate::domain::Routes,
}

impl Asked {
    /// `provider`, asked about every ISBN.
    pub fn everything(provider: ProviderId) -> Asked {
        Asked {
            provider,
            routes: crate::domain::Routes::All,
        }
    }
}

/// One finished lookup, as the crawl's writer hands it to the store.
#[derive(Debug, Clone)]
pub struct Completion {
    pub lookup_id: i64,
    pub provider: ProviderId,
    pub result: JobResult,
    /// Requests sent for it: 0 when given back unsent, 1 usually; a batch request is counted
    /// on one of its lookups. Google's count against the day's quota.
    pub requests: u32,
    /// With `--fill missing`: the provider to ask next if this one did not find the book
    /// (`not_found` or `failed`); its lookup is made in the same transaction.
    pub then: Option<ProviderId>,
}

/// What a run is, for the `runs` table and lease recovery.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub command: String,
    pub host: String,
    /// The kernel boot and PID namespace the run lives in (`None` where that cannot be read):
    /// runs with the same `host_id` can see each other's processes.
    pub host_id: Option<String>,
    pub pid: u32,
    pub pid_start: Option<String>,
    /// Its `--daily-budget`, kept for the report's estimate.
    pub daily_budget: Option<u64>,
}

/// The end of a run, for the `runs` table.
#[derive(Debug, Clone)]
pub struct RunEnd {
    pub stop_reason: String,
    /// Each lane's ISBNs per request at the end.
    pub batch_sizes: Vec<(ProviderId, u64)>,
}

/// What is known of a quota day.
#[derive(Debug, Clone, Default)]
pub struct QuotaDay {
    pub requests: u64,
    pub exhausted_at: Option<i64>,
}

/// What `reserve_budget` granted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reservation {
    pub granted: u64,
    /// Google's quota was met this day (by this crawler or another).
    pub quota_stopped: bool,
}

impl Reservation {
    /// What a request for `want` units gets, with `reserved` taken already this day.
    pub fn grant(
        reserved: i64,
        quota_stopped: bool,
        want: u64,
        limit: Option<u64>,
        probe: bool,
    ) -> Reservation {
        if quota_stopped && !probe {
            return Reservation {
                granted: 0,
                quota_stopped,
            };
        }
        let left = limit.map_or(want, |l| l.saturating_sub(reserved.max(0) as u64));
        Reservation {
            granted: want.min(left),
            quota_stopped,
        }
    }
}

/// A job and, once it is done, its book: what `show` prints and `export` writes.
/// Book fields are `None` until the job is `done`.
#[derive(Debug, Clone, Default, PartialEq, sqlx::FromRow)]
pub struct Record {
    pub isbn13: String,
    pub isbn10: Option<String>,
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub source: Option<String>,
    pub source_line: Option<i64>,
    pub source_ref: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub volume_id: Option<String>,
    pub title: Option<String>,
    pub subtitle: Option<String>,
    /// A JSON array, as stored.
    pub authors: Option<String>,
    pub publisher: Option<String>,
    pub published_date: Option<String>,
    pub published_year: Option<i64>,
    pub description: Option<String>,
    pub page_count: Option<i64>,
    /// A JSON array, as stored.
    pub categories: Option<String>,
    pub language: Option<String>,
    pub average_rating: Option<f64>,
    pub ratings_count: Option<i64>,
    pub thumbnail: Option<String>,
    pub ddc: Option<String>,
    pub lcc: Option<String>,
    pub lccn: Option<String>,
    pub attribution: Option<String>,
    pub raw_json: Option<String>,
    pub fetched_at: Option<i64>,
    pub run_id: Option<i64>,
    pub openlibrary_key: Option<String>,
    /// A JSON object: merged field → the provider it came from.
    pub provenance: Option<String>,
}

/// A rejected input line as stored.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct RejectedLine {
    pub source: String,
    pub line: i64,
    pub raw: String,
    pub reason: String,
}

/// One reject reason: how many lines, and the first few.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RejectGroup {
    pub reason: String,
    pub count: u64,
    pub examples: Vec<RejectedLine>,
}

/// Which lookups `requeue` moves back to `pending`.
#[derive(Debug, Clone, Default)]
pub struct RequeueFilter {
    pub states: Vec<JobState>,
    /// Only these providers' lookups (empty: every provider).
    pub providers: Vec<ProviderId>,
    /// Only jobs last changed before this time (Unix ms).
    pub updated_before_ms: Option<i64>,
    /// Only jobs whose `last_error` contains this text.
    pub error_contains: Option<String>,
}
