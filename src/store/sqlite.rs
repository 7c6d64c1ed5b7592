/*!
The SQLite backend of [`Store`].

Pragmas are set through typed [`SqliteConnectOptions`] (never a raw `PRAGMA` string that
SQLite would silently ignore when misspelt) and a test reads them back: WAL so readers never
block the writer, `synchronous=NORMAL` (durable at each checkpoint, safe against corruption),
a busy timeout so two processes take turns instead of failing, and foreign keys on.

Writes take the lock up front (`BEGIN IMMEDIATE`): a deferred transaction that reads first
and writes later can fail with SQLITE_BUSY where waiting would have worked.
*/

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::LazyLock;
use std::time::Duration;

use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection as _, QueryBuilder, Row, Sqlite};

use super::sql::{self, Dialect, RECORD_SELECT, Tally, job_change, merge_sql, shared_methods};
use super::{
    ClaimedLookup, Completion, Error, Eta, JobResult, JobState, LoadBatch, Overview, Record,
    RequeueFilter, Reservation, Result, RunInfo, Status, Store,
};
use crate::domain::ProviderId;

/// How long a statement waits for another connection's write lock before giving up.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The page cache of a connection that loads: 20 MiB (negative means KiB to SQLite), so a load
/// batch does not spill to the WAL mid-transaction; with 125k-item batches it keeps a 10M-line
/// load under 64 MB (32 MiB was a little faster and peaked at 79 MB; 64 MiB was slower). Other
/// work keeps SQLite's 2 MiB default: crawls touch few pages, and exports stream.
const LOAD_CACHE_SIZE: &str = "PRAGMA cache_size = -20480";

/// The page size of a database this tool creates (see `open_with`).
pub const PAGE_SIZE: u32 = 16 * 1024;

/// SQLite allows 32766 bound parameters per statement; stay well below it.
const ROWS_PER_INSERT: usize = 1000;

/// The next due pending lookups (`?1` provider, `?2` now, `?3` how many) as one JSON row,
/// `[[id, isbn13, attempts after the claim], ...]` (the ISBN always as text, so a row edited
/// by hand is skipped by `sql::claimed`, not a failed claim). `INDEXED BY` pins the plan to the
/// partial index of due rows (an error, not a silent table scan, if the index were missing).
pub const CLAIM_DUE_SQL: &str = "SELECT json_group_array(
        json_array(id, CAST(isbn13 AS TEXT), attempts + 1))
    FROM (SELECT id, isbn13, attempts FROM lookups INDEXED BY lookups_due
          WHERE state = 'pending' AND provider = ?1 AND next_attempt_at <= ?2
          ORDER BY next_attempt_at, id LIMIT ?3)";

/// Leases the lookups `CLAIM_DUE_SQL` chose (`?4`) to run `?1` until `?2` (`?3`: now).
const CLAIM_LEASE_SQL: &str = "UPDATE lookups SET state = 'in_progress',
        attempts = attempts + 1, lease_owner = ?1, lease_until = ?2, updated_at = ?3
    WHERE id IN (SELECT value ->> 0 FROM json_each(?4))";

/// Which of the lookups in the first parameter (a JSON array of ids) the run in the second
/// still holds, as one JSON row `[[id, job_id], ...]`: those its results apply to.
const HELD_SQL: &str = "SELECT json_group_array(json_array(id, job_id)) FROM lookups
    WHERE id IN (SELECT value FROM json_each(?)) AND state = 'in_progress' AND lease_owner = ?";

/// A job's state from its lookups (two anonymous parameters, in this order: now, a JSON array
/// of job ids): done if any provider found the book, then in progress, pending, failed; not
/// found when every lookup says so.
const DERIVE_JOBS_SQL: &str = "UPDATE jobs SET state = d.state, attempts = d.attempts,
        last_error = d.last_error, updated_at = ?
    FROM (SELECT l.job_id,
                 CASE WHEN max(l.state = 'done') THEN 'done'
                      WHEN max(l.state = 'in_progress') THEN 'in_progress'
                      WHEN max(l.state = 'pending') THEN 'pending'
                      WHEN max(l.state = 'failed') THEN 'failed'
                      ELSE 'not_found' END AS state,
                 sum(l.attempts) AS attempts,
                 CASE WHEN max(l.state = 'done') THEN NULL ELSE
                     (SELECT e.last_error FROM lookups e
                      WHERE e.job_id = l.job_id AND e.last_error IS NOT NULL
                      ORDER BY e.updated_at DESC, e.id DESC LIMIT 1) END AS last_error
          FROM lookups l WHERE l.job_id IN (SELECT value FROM json_each(?))
          GROUP BY l.job_id) AS d
    WHERE jobs.id = d.job_id";

/// The results of `rows` lookups (padded to a power of two with NULL rows, which match no
/// lookup, so the text takes one of nine shapes and stays prepared) on those the run still
/// holds. Parameters: now, then per row `(id, state, next_attempt_at, last_error, refund,
/// give_back)` as [`job_change`] says, then the run. `NOT INDEXED` keeps the lookups read by
/// id: SQLite otherwise may walk the run's leases (`lookups_leased`, hundreds with the claims
/// ahead) for each row.
fn results_sql(rows: usize) -> String {
    format!(
        "UPDATE lookups NOT INDEXED SET state = v.column2,
            next_attempt_at = coalesce(v.column3, lookups.next_attempt_at),
            last_error = CASE WHEN v.column6 THEN lookups.last_error ELSE v.column4 END,
            attempts = CASE WHEN v.column5 THEN max(lookups.attempts - 1, 0)
                            ELSE lookups.attempts END,
            lease_owner = NULL, lease_until = NULL, updated_at = ?
        FROM (VALUES {}) AS v
        WHERE lookups.id = v.column1 AND lookups.state = 'in_progress'
            AND lookups.lease_owner = ?",
        placeholder_rows(rows, RESULT_COLUMNS)
    )
}

/// Values a result row carries (see [`results_sql`]).
const RESULT_COLUMNS: usize = 6;

/// `(?, ?, ...), (...)`: `rows` rows of `columns` anonymous parameters.
fn placeholder_rows(rows: usize, columns: usize) -> String {
    let row = format!("({})", vec!["?"; columns].join(", "));
    vec![row; rows].join(", ")
}

/// The texts `make` gives for 1, 2, 4, ... [`MAX_ROWS`] rows, made once.
fn power_shapes(make: fn(usize) -> String) -> Vec<String> {
    (0..=MAX_ROWS.ilog2()).map(|k| make(1 << k)).collect()
}

/// The text for `rows` from `shapes` (made by `make`) when it is one of them: a power of two,
/// at most [`MAX_ROWS`], as the callers pad to; else made afresh.
fn shape(
    shapes: &'static [String],
    rows: usize,
    make: fn(usize) -> String,
) -> std::borrow::Cow<'static, str> {
    match shapes.get(rows.trailing_zeros() as usize) {
        Some(text) if rows.is_power_of_two() => text.as_str().into(),
        _ => make(rows).into(),
    }
}

static RESULTS_SQL: LazyLock<Vec<String>> = LazyLock::new(|| power_shapes(results_sql));
static RECORDS_SQL: LazyLock<Vec<String>> = LazyLock::new(|| power_shapes(held_and_records_sql));

/// The outcome of several `Arguments::add`s as one: they fail only for a value that cannot
/// be encoded.
fn added<const N: usize>(
    adds: [std::result::Result<(), sqlx::error::BoxDynError>; N],
) -> std::result::Result<(), sqlx::Error> {
    adds.into_iter()
        .try_for_each(|r| r)
        .map_err(sqlx::Error::Encode)
}

/// Adds NULLs for `rows` rows of `columns`: the padding of a power-of-two shape.
fn add_null_rows(
    args: &mut sqlx::sqlite::SqliteArguments<'_>,
    rows: usize,
    columns: usize,
) -> std::result::Result<(), sqlx::Error> {
    use sqlx::Arguments as _;
    for _ in 0..rows * columns {
        added([args.add(None::<i64>)])?;
    }
    Ok(())
}

/// [`results_sql`]'s parameters for `chunk`, padded to `rows`.
fn add_results<'q>(
    args: &mut sqlx::sqlite::SqliteArguments<'q>,
    chunk: &'q [Completion],
    rows: usize,
    run_id: i64,
    now_ms: i64,
) -> std::result::Result<(), sqlx::Error> {
    use sqlx::Arguments as _;
    added([args.add(now_ms)])?;
    for c in chunk {
        let (state, next_at, error, refund) = job_change(&c.result);
        let give_back = matches!(c.result, JobResult::GiveBack);
        added([
            args.add(c.lookup_id),
            args.add(state),
            args.add(next_at),
            args.add(error),
            args.add(refund),
            args.add(give_back),
        ])?;
    }
    add_null_rows(args, rows - chunk.len(), RESULT_COLUMNS)?;
    added([args.add(run_id)])
}

/// What a commit does after its lookups' results (the same query, see `complete`): the merged
/// `books` rows of the ISBNs stored (a JSON array); the lookups `--fill missing` chains (now,
/// now, `[[job_id, provider], ...]`); the jobs' states (now, job ids); the day's Google
/// requests (day, count, count); the run's counters. Constant for a run, so it stays prepared.
fn commit_rest_sql(precedence: &[ProviderId]) -> String {
    format!(
        "{merge};
        INSERT OR IGNORE INTO lookups (job_id, isbn13, provider, created_at, updated_at)
            SELECT j.id, j.isbn13, c.value ->> 1, ?, ?
            FROM json_each(?) c JOIN jobs j ON j.id = c.value ->> 0;
        {DERIVE_JOBS_SQL};
        INSERT INTO quota_days (day, requests) SELECT ?, ? WHERE ? > 0
            ON CONFLICT (day) DO UPDATE SET requests = requests + excluded.requests;
        UPDATE runs SET requests = requests + ?, done = done + ?, not_found = not_found + ?,
            failed = failed + ?, retried = retried + ?, given_back = given_back + ?,
            heartbeat_at = ?
        WHERE id = ?;
        INSERT INTO run_providers (run_id, provider, requests, done, not_found, failed)
            SELECT ?, value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4
            FROM json_each(?) WHERE true
            ON CONFLICT (run_id, provider) DO UPDATE SET
                requests = requests + excluded.requests, done = done + excluded.done,
                not_found = not_found + excluded.not_found, failed = failed + excluded.failed",
        merge = merge_sql(precedence, Dialect::Sqlite),
    )
}

/// A commit's last query: the results of `rows` lookups ([`results_sql`]) and then
/// [`commit_rest_sql`]. Made once per precedence and shape (a run has one precedence, and ten
/// shapes at most): the merge's text alone is some hundred strings formatted.
fn commit_sql(precedence: &[ProviderId], rows: usize) -> std::sync::Arc<str> {
    type Texts = std::collections::HashMap<(Vec<ProviderId>, usize), std::sync::Arc<str>>;
    static TEXTS: LazyLock<std::sync::Mutex<Texts>> = LazyLock::new(Default::default);
    let make = || -> std::sync::Arc<str> {
        format!(
            "{};\n{}",
            shape(&RESULTS_SQL, rows, results_sql),
            commit_rest_sql(precedence)
        )
        .into()
    };
    // A poisoned lock holds only finished texts: take it back.
    let mut texts = TEXTS.lock().unwrap_or_else(|p| p.into_inner());
    texts
        .entry((precedence.to_vec(), rows))
        .or_insert_with(make)
        .clone()
}

/// Records of the states in a JSON array (`?1`), in load order.
static RECORDS_BY_STATE_SQL: LazyLock<String> = LazyLock::new(|| {
    format!("{RECORD_SELECT} WHERE j.state IN (SELECT value FROM json_each(?1)) ORDER BY j.id")
});

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Turns SQLite's memory statistics off for the process (`main` does, first thing). With them
/// on (SQLite's default), each of SQLite's allocations takes a process-wide mutex to count
/// bytes that nothing here reads: about 100 an ISBN in a crawl. SQLite takes the setting only
/// before it initialises; later it refuses it (`SQLITE_MISUSE`) and nothing changes, so the
/// result is not checked.
///
/// # Safety
/// No other thread may be calling SQLite meanwhile (`sqlite3_config` is not thread-safe):
/// call it before any thread that could call SQLite exists.
pub unsafe fn without_memory_statistics() {
    // SAFETY: SQLITE_CONFIG_MEMSTATUS takes one int; the caller keeps other threads out.
    unsafe {
        libsqlite3_sys::sqlite3_config(libsqlite3_sys::SQLITE_CONFIG_MEMSTATUS, 0);
    }
}

#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// Every write transaction and claim, in turn (see `open_with`).
    writer: SqlitePool,
    path: PathBuf,
    busy_timeout: Duration,
}

impl SqliteStore {
    /// Opens (creating and migrating when `create` is true) the database at `path`.
    pub async fn open(path: &Path, create: bool) -> Result<SqliteStore> {
        Self::open_with(path, create, BUSY_TIMEOUT).await
    }

    pub async fn open_with(path: &Path, create: bool, busy_timeout: Duration) -> Result<Self> {
        let shown = path.display().to_string();
        if !create && !path.exists() {
            return Err(Error::Missing { path: shown });
        }
        check_ours(path, &shown, busy_timeout).await?;
        if create && let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::Other {
                path: shown.clone(),
                error: sqlx::Error::Io(e),
            })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(create)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(busy_timeout)
            .foreign_keys(true)
            // New databases only (an existing file keeps its page size): a crawl's commit writes
            // whole pages to the WAL and checkpoints them back, and each ISBN dirties about one
            // page of rows and one leaf in each ISBN-keyed index. 16 KiB pages made a third of
            // the page writes and a fifth of the page reads of 4 KiB ones (SQLite's default),
            // for about 10% less CPU per crawled ISBN at concurrency 16.
            .page_size(PAGE_SIZE)
            // A checkpoint every 256 pages (4 MiB of 16 KiB ones), as SQLite's default 1,000
            // pages of 4 KiB did: at 16 MiB each one held the write connection long enough to
            // starve claims, and a crawl at concurrency 256 lost 3% of its throughput.
            .pragma("wal_autocheckpoint", "256")
            // Statement journals (multi-row upserts) stay in memory instead of temp files.
            .pragma("temp_store", "memory")
            // Long reads (export streams) are not slow statements; keep them out of the logs.
            .log_statements(log::LevelFilter::Trace)
            .log_slow_statements(log::LevelFilter::Off, Duration::from_secs(60));
        // No ping before each checkout (sqlx's default): a SQLite connection is a file handle
        // on sqlx's own thread, and the ping was a round trip to that thread per transaction.
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await
            .map_err(|e| map_err(&shown, busy_timeout, e))?;
        // SQLite takes one writer at a time anyway. Giving writes one connection keeps its page
        // cache: a connection drops its whole cache when it sees another one's commit, and a
        // crawl's claims and commits on different connections re-read their pages every time
        // (0.75 page reads an ISBN more, and 3.5% more instructions).
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_lazy_with(options);
        let store = SqliteStore {
            pool,
            writer,
            path: path.to_path_buf(),
            busy_timeout,
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<()> {
        match MIGRATOR.run(&self.pool).await {
            Ok(()) => Ok(()),
            Err(sqlx::migrate::MigrateError::VersionMissing(version)) => Err(Error::NewerSchema {
                path: self.shown(),
                version,
            }),
            Err(sqlx::migrate::MigrateError::Execute(e)) => Err(self.err(e)),
            Err(e) => Err(self.err(sqlx::Error::Migrate(Box::new(e)))),
        }
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Moves the WAL into the database file, then closes every connection, so the file alone
    /// holds everything: a process that just exits leaves its writes in the `-wal` file beside
    /// it, and a copy of the database file without it is missing them. The checkpoint comes
    /// first because SQLite removes `-wal` only at the last connection's close, which a
    /// connection still held by a task being dropped can delay past the process's exit.
    pub async fn close(&self) {
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.writer)
            .await
        {
            tracing::debug!("no checkpoint at close: {e}");
        }
        self.writer.close().await;
        self.pool.close().await;
    }

    fn shown(&self) -> String {
        self.path.display().to_string()
    }

    fn err(&self, e: sqlx::Error) -> Error {
        map_err(&self.shown(), self.busy_timeout, e)
    }

    async fn begin_immediate(&self) -> Result<sqlx::Transaction<'static, Sqlite>> {
        self.writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| self.err(e))
    }
}

/// Rows that came back as one JSON array (`json_group_array`): one row crosses from sqlx's
/// SQLite thread where `RETURNING` sent each row alone.
fn json_rows<T: serde::de::DeserializeOwned>(
    json: &str,
) -> std::result::Result<Vec<T>, sqlx::Error> {
    serde_json::from_str(json).map_err(|e| sqlx::Error::Decode(e.into()))
}

/// Turns SQLite's result codes into errors that say what to do.
/// Refuses, before anything writes to it, a file that holds tables and is not ours (another
/// application's database must not gain our tables, nor be switched to WAL): this connection
/// sets no journal mode and creates nothing. A new path, an empty file and a database without
/// tables are ours to make.
async fn check_ours(path: &Path, shown: &str, busy: Duration) -> Result<()> {
    if std::fs::metadata(path).map_or(true, |m| m.len() == 0) {
        return Ok(());
    }
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false)
        .busy_timeout(busy);
    let mut conn = options
        .connect()
        .await
        .map_err(|e| map_err(shown, busy, e))?;
    let tables: std::result::Result<(i64, i64), sqlx::Error> = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE name IN ('_sqlx_migrations', 'jobs'))
         FROM sqlite_schema WHERE type = 'table'",
    )
    .fetch_one(&mut conn)
    .await;
    let _ = conn.close().await;
    match tables.map_err(|e| map_err(shown, busy, e))? {
        (0, _) | (_, 2) => Ok(()),
        _ => Err(Error::Foreign {
            path: shown.to_string(),
        }),
    }
}

fn map_err(path: &str, busy: Duration, e: sqlx::Error) -> Error {
    let path = path.to_string();
    if let sqlx::Error::Database(db) = &e {
        let primary = db
            .code()
            .and_then(|c| i64::from_str(&c).ok())
            .map(|c| c & 0xff);
        match primary {
            Some(5) | Some(6) => {
                return Error::Locked {
                    path,
                    waited_ms: busy.as_millis() as u64,
                };
            }
            Some(13) => return Error::DiskFull { path },
            Some(8) => return Error::ReadOnly { path },
            Some(26) => return Error::NotADatabase { path },
            Some(14) => return Error::CannotOpen { path },
            _ => {}
        }
    }
    Error::Other { path, error: e }
}

impl Store for SqliteStore {
    shared_methods!();

    /// Chooses and leases in one write transaction: the choice comes back as one JSON row and
    /// one UPDATE leases it. (One `UPDATE ... RETURNING` sent its rows one at a time from
    /// sqlx's SQLite thread, each a wake-up of this one and a contended channel lock: about
    /// two futex calls per claimed lookup.)
    async fn claim(
        &self,
        run_id: i64,
        provider: ProviderId,
        n: u32,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> Result<Vec<ClaimedLookup>> {
        let mut tx = self.begin_immediate().await?;
        let due: String = sqlx::query_scalar(CLAIM_DUE_SQL)
            .bind(provider.as_str())
            .bind(now_ms)
            .bind(i64::from(n))
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        let rows: Vec<(i64, String, i64)> = json_rows(&due).map_err(|e| self.err(e))?;
        if !rows.is_empty() {
            sqlx::query(CLAIM_LEASE_SQL)
                .bind(run_id)
                .bind(lease_until_ms)
                .bind(now_ms)
                .bind(&due)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err(e))?;
        }
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(sql::claimed(rows))
    }

    async fn save_load_batch(&self, source: &str, batch: &LoadBatch, now: i64) -> Result<u64> {
        let (jobs, rejects) = (&batch.jobs, &batch.rejects);
        let mut tx = self.begin_immediate().await?;
        sqlx::query(LOAD_CACHE_SIZE)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        let mut inserted = 0u64;
        // ISBN-10s are made once per batch and bound by reference: no allocation per row.
        let tens: Vec<Option<[u8; 10]>> = jobs.iter().map(|j| j.isbn.isbn10_ascii()).collect();
        for (chunk, chunk_tens) in jobs
            .chunks(ROWS_PER_INSERT)
            .zip(tens.chunks(ROWS_PER_INSERT))
        {
            let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO jobs (isbn13, isbn10, source, source_line, source_ref, created_at, \
                 updated_at) ",
            );
            qb.push_values(chunk.iter().zip(chunk_tens), |mut row, (job, ten)| {
                row.push_bind(job.isbn.as_str())
                    .push_bind(ten.as_ref().and_then(|t| std::str::from_utf8(t).ok()))
                    .push_bind(source)
                    .push_bind(job.line as i64)
                    .push_bind(batch.reference(job.line))
                    .push_bind(now)
                    .push_bind(now);
            });
            qb.push(" ON CONFLICT (isbn13) DO NOTHING");
            let done = qb
                .build()
                .persistent(true)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err(e))?;
            inserted += done.rows_affected();
        }
        for chunk in rejects.chunks(ROWS_PER_INSERT) {
            let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT OR IGNORE INTO rejected_lines (source, line, raw, reason, created_at) ",
            );
            qb.push_values(chunk, |mut row, r| {
                row.push_bind(source)
                    .push_bind(r.line as i64)
                    .push_bind(r.raw.as_str())
                    .push_bind(r.reason.as_str())
                    .push_bind(now);
            });
            qb.build()
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err(e))?;
        }
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(inserted)
    }

    async fn overview(&self, now_ms: i64, quota_day: &str) -> Result<Overview> {
        let mut conn = self.pool.acquire().await.map_err(|e| self.err(e))?;
        // Aggregates over a million rows sort a lot: let SQLite spill to temporary files
        // instead of holding the sorts in memory (this connection only, and only for this).
        sqlx::query("PRAGMA temp_store = FILE")
            .execute(&mut *conn)
            .await
            .map_err(|e| self.err(e))?;
        let overview = overview_on(&mut conn, now_ms, quota_day).await;
        let reset = sqlx::query("PRAGMA temp_store = MEMORY")
            .execute(&mut *conn)
            .await;
        let overview = overview.map_err(|e| self.err(e))?;
        reset.map_err(|e| self.err(e))?;
        Ok(overview)
    }

    fn records<'a>(&'a self, states: &[JobState]) -> BoxStream<'a, Result<Record>> {
        let states: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
        let states = serde_json::to_string(&states).unwrap_or_else(|_| "[]".into());
        sqlx::query_as(RECORDS_BY_STATE_SQL.as_str())
            .bind(states)
            .fetch(&self.pool)
            .map_err(|e| self.err(e))
            .boxed()
    }

    async fn requeue(&self, filter: &RequeueFilter, now_ms: i64) -> Result<u64> {
        let states: Vec<&str> = filter.states.iter().map(|s| s.as_str()).collect();
        let states = serde_json::to_string(&states).unwrap_or_else(|_| "[]".into());
        let providers: Vec<&str> = filter.providers.iter().map(|p| p.as_str()).collect();
        let providers = serde_json::to_string(&providers).unwrap_or_else(|_| "[]".into());
        let mut tx = self.begin_immediate().await?;
        let jobs: Vec<i64> = sqlx::query_scalar(
            "UPDATE lookups SET state = 'pending', attempts = 0, next_attempt_at = 0, updated_at = ?1
             WHERE state IN (SELECT value FROM json_each(?2))
               AND state != 'in_progress'
               AND (json_array_length(?5) = 0 OR provider IN (SELECT value FROM json_each(?5)))
               AND (?3 IS NULL OR updated_at < ?3)
               AND (?4 IS NULL OR instr(coalesce(last_error, ''), ?4) > 0)
             RETURNING job_id",
        )
        .bind(now_ms)
        .bind(states)
        .bind(filter.updated_before_ms)
        .bind(filter.error_contains.as_deref())
        .bind(providers)
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        derive_jobs(&mut tx, &jobs, now_ms)
            .await
            .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(jobs.len() as u64)
    }

    async fn ensure_lookups(
        &self,
        providers: &[ProviderId],
        fill_missing: bool,
        now_ms: i64,
    ) -> Result<u64> {
        let mut tx = self.begin_immediate().await?;
        let mut made = 0;
        for (i, p) in providers.iter().enumerate() {
            let earlier: &[ProviderId] = if fill_missing { &providers[..i] } else { &[] };
            let Some((first, rest)) = earlier.split_first() else {
                made += ensure_every_job(&mut tx, *p, now_ms)
                    .await
                    .map_err(|e| self.err(e))?;
                continue;
            };
            // Under --fill missing, a later provider is asked only where every earlier one
            // has not found the book (the writer chains these as it goes; this catches up on
            // what runs in another mode or order left).
            let rest: Vec<&str> = rest.iter().map(|e| e.as_str()).collect();
            let jobs: Vec<i64> = sqlx::query_scalar(
                "INSERT INTO lookups (job_id, isbn13, provider, created_at, updated_at)
                 SELECT e.job_id, e.isbn13, ?1, ?2, ?2 FROM lookups e INDEXED BY lookups_missed
                 WHERE e.provider = ?3 AND e.state IN ('not_found', 'failed')
                   AND NOT EXISTS (SELECT 1 FROM lookups l
                                   WHERE l.job_id = e.job_id AND l.provider = ?1)
                   AND NOT EXISTS (SELECT 1 FROM json_each(?4) r WHERE NOT EXISTS (
                       SELECT 1 FROM lookups m WHERE m.job_id = e.job_id
                          AND m.provider = r.value AND m.state IN ('not_found', 'failed')))
                 ORDER BY e.job_id
                 RETURNING job_id",
            )
            .bind(p.as_str())
            .bind(now_ms)
            .bind(first.as_str())
            .bind(serde_json::to_string(&rest).unwrap_or_else(|_| "[]".into()))
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
            made += jobs.len() as u64;
            // Those jobs have a new chance: their states follow their lookups (pending).
            derive_jobs(&mut tx, &jobs, now_ms)
                .await
                .map_err(|e| self.err(e))?;
        }
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(made)
    }

    async fn recover_leases(
        &self,
        me: i64,
        now_ms: i64,
        is_alive: &(dyn Fn(&RunInfo) -> bool + Sync),
    ) -> Result<u64> {
        let Some(dead) = sql::recovery_needed!(self, me, now_ms, is_alive) else {
            return Ok(0);
        };
        let mut tx = self.begin_immediate().await?;
        let mut recovered = 0;
        let mut touched: Vec<i64> = Vec::new();
        for id in &dead {
            let jobs: Vec<i64> = sqlx::query_scalar(
                "UPDATE lookups SET state = 'pending', attempts = max(attempts - 1, 0),
                        lease_owner = NULL, lease_until = NULL, updated_at = ?
                 WHERE state = 'in_progress' AND lease_owner = ?
                 RETURNING job_id",
            )
            .bind(now_ms)
            .bind(id)
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
            recovered += jobs.len() as u64;
            touched.extend(jobs);
            sqlx::query(
                "UPDATE runs SET ended_at = heartbeat_at, stop_reason = 'killed' WHERE id = ?",
            )
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        }
        // Leases of runs that ended without giving them back (a failed write), and leases
        // that simply ran out (a run on another host that stopped beating).
        for sql in [
            "UPDATE lookups SET state = 'pending', attempts = max(attempts - 1, 0),
                    lease_owner = NULL, lease_until = NULL, updated_at = ?1
             WHERE state = 'in_progress'
               AND lease_owner IN (SELECT id FROM runs WHERE ended_at IS NOT NULL)
             RETURNING job_id",
            "UPDATE lookups SET state = 'pending', attempts = max(attempts - 1, 0),
                    lease_owner = NULL, lease_until = NULL, updated_at = ?1
             WHERE state = 'in_progress' AND lease_until < ?1
             RETURNING job_id",
        ] {
            let jobs: Vec<i64> = sqlx::query_scalar(sql)
                .bind(now_ms)
                .fetch_all(&mut *tx)
                .await
                .map_err(|e| self.err(e))?;
            recovered += jobs.len() as u64;
            touched.extend(jobs);
        }
        // Their jobs' states follow (a job a killed run showed in progress is pending again).
        derive_jobs(&mut tx, &touched, now_ms)
            .await
            .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(recovered)
    }

    async fn complete(
        &self,
        run_id: i64,
        completions: &mut [Completion],
        precedence: &[ProviderId],
        quota_day: &str,
        now_ms: i64,
    ) -> Result<u64> {
        let mut tx = self.begin_immediate().await?;
        // The lookups this run still holds are those its results apply to: read as one row
        // under the write lock, so the guarded UPDATEs below change exactly these.
        let ids: Vec<i64> = completions.iter().map(|c| c.lookup_id).collect();
        let mut found: Vec<_> = completions
            .iter_mut()
            .filter_map(|c| match &mut c.result {
                JobResult::Done(book) => Some((c.lookup_id, c.provider, book.as_mut())),
                _ => None,
            })
            .collect();
        let mut chunks = found.chunks_mut(MAX_ROWS);
        // The read and the first records in one round trip; the records are guarded by the
        // lease in SQL, so they need not wait for the read.
        let first = chunks.next().unwrap_or_default();
        let held = held_and_records(&mut tx, &ids, run_id, first, now_ms)
            .await
            .map_err(|e| self.err(e))?;
        for chunk in chunks {
            held_and_records(&mut tx, &[], run_id, chunk, now_ms)
                .await
                .map_err(|e| self.err(e))?;
        }
        let applied: std::collections::HashMap<i64, i64> = json_rows::<(i64, i64)>(&held)
            .map_err(|e| self.err(e))?
            .into_iter()
            .collect();
        // From here the found books hold only their isbn13 (the rest went into the records).
        let completions = &*completions;
        let counts = Tally::of(completions, &applied);
        let (books, chained) = (&counts.books, &counts.chained);
        // The results and everything else in one round trip (sqlx runs every statement of a
        // query in one command; their parameters are anonymous and bound in order, as sqlx
        // binds the numbers a statement skips as anonymous ones and stops past the last
        // value): at a few dozen results a commit the trips cost more than the statements.
        let mut chunks = completions.chunks(MAX_ROWS);
        let last = chunks.next_back().unwrap_or_default();
        for chunk in chunks {
            let rows = chunk.len().next_power_of_two();
            let mut args = sqlx::sqlite::SqliteArguments::default();
            add_results(&mut args, chunk, rows, run_id, now_ms).map_err(|e| self.err(e))?;
            sqlx::query_with(&shape(&RESULTS_SQL, rows, results_sql), args)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err(e))?;
        }
        let rows = last.len().next_power_of_two();
        let sql = commit_sql(precedence, rows);
        let mut args = sqlx::sqlite::SqliteArguments::default();
        add_results(&mut args, last, rows, run_id, now_ms).map_err(|e| self.err(e))?;
        let isbns: Vec<&str> = books.iter().map(|(_, b)| b.isbn13.as_str()).collect();
        let pairs: Vec<(i64, &str)> = chained.iter().map(|(j, p)| (*j, p.as_str())).collect();
        let jobs: Vec<i64> = applied.values().copied().collect();
        let json = |v: Result<String, serde_json::Error>| v.unwrap_or_else(|_| "[]".into());
        {
            use sqlx::Arguments as _;
            added([
                args.add(json(serde_json::to_string(&isbns))),
                args.add(now_ms),
                args.add(now_ms),
                args.add(json(serde_json::to_string(&pairs))),
                args.add(now_ms),
                args.add(json(serde_json::to_string(&jobs))),
                args.add(quota_day),
                args.add(counts.quota_requests),
                args.add(counts.quota_requests),
                args.add(counts.requests),
                args.add(counts.done),
                args.add(counts.not_found),
                args.add(counts.failed),
                args.add(counts.retried),
                args.add(counts.given_back),
                args.add(now_ms),
                args.add(run_id),
                args.add(run_id),
                args.add(json(Ok(counts.per_provider_json()))),
            ])
            .map_err(|e| self.err(e))?;
        }
        sqlx::query_with(&sql, args)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(applied.len() as u64)
    }

    async fn heartbeat(&self, run_id: i64, now_ms: i64, lease_until_ms: i64) -> Result<()> {
        let mut tx = self.begin_immediate().await?;
        sqlx::query("UPDATE runs SET heartbeat_at = ? WHERE id = ?")
            .bind(now_ms)
            .bind(run_id)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        sqlx::query(
            "UPDATE lookups SET lease_until = ? WHERE state = 'in_progress' AND lease_owner = ?",
        )
        .bind(lease_until_ms)
        .bind(run_id)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))
    }

    async fn next_due_at(&self, provider: ProviderId, me: i64) -> Result<Option<i64>> {
        sqlx::query_scalar(
            // (Not the two-argument min(), which is NULL when either is.)
            "SELECT min(t) FROM (
                 SELECT min(next_attempt_at) AS t FROM lookups INDEXED BY lookups_due
                 WHERE state = 'pending' AND provider = ?1
                 UNION ALL
                 SELECT min(lease_until) FROM lookups INDEXED BY lookups_leased
                 WHERE state = 'in_progress' AND provider = ?1 AND lease_owner != ?2)",
        )
        .bind(provider.as_str())
        .bind(me)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| self.err(e))
    }

    async fn open_jobs(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM jobs INDEXED BY jobs_open
             WHERE state IN ('pending', 'in_progress')",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(n as u64)
    }

    async fn open_lookups(&self, provider: ProviderId) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM lookups INDEXED BY lookups_due
                     WHERE state = 'pending' AND provider = ?1)
                  + (SELECT count(*) FROM lookups INDEXED BY lookups_leased
                     WHERE state = 'in_progress' AND provider = ?1)",
        )
        .bind(provider.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(n as u64)
    }

    async fn reserve_budget(
        &self,
        key_id: &str,
        day: &str,
        want: u64,
        limit: Option<u64>,
        probe: bool,
    ) -> Result<Reservation> {
        let mut tx = self.begin_immediate().await?;
        let [insert, select, update] = sql::RESERVE_SQL;
        sqlx::query(insert)
            .bind(day)
            .bind(key_id)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        let (reserved, exhausted): (i64, Option<i64>) = sqlx::query_as(select)
            .bind(day)
            .bind(key_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        let grant = Reservation::grant(reserved, exhausted.is_some(), want, limit, probe);
        sqlx::query(update)
            .bind(day)
            .bind(key_id)
            .bind(grant.granted as i64)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(grant)
    }
}

/// The job table at a glance, each table read once and nothing sorted.
async fn status_on(
    conn: &mut sqlx::SqliteConnection,
    now_ms: i64,
    quota_day: &str,
    with_due: bool,
) -> std::result::Result<Status, sqlx::Error> {
    let mut status = Status {
        quota_day: quota_day.to_string(),
        ..Status::default()
    };
    let per_state: Vec<String> = JobState::ALL
        .iter()
        .map(|st| format!("coalesce(sum(state = '{}'), 0)", st.as_str()))
        .collect();
    let row = sqlx::query(&format!(
        "SELECT count(*), {} FROM jobs",
        per_state.join(", ")
    ))
    .fetch_one(&mut *conn)
    .await?;
    status.total = row.get::<i64, _>(0) as u64;
    for (i, st) in JobState::ALL.iter().enumerate() {
        status
            .jobs
            .insert(st.as_str(), row.get::<i64, _>(i + 1) as u64);
    }
    let due: i64 = if !with_due {
        0
    } else {
        sqlx::query_scalar(
            "SELECT count(*) FROM jobs INDEXED BY jobs_open
         WHERE state IN ('pending', 'in_progress') AND state = 'pending' AND (
             NOT EXISTS (SELECT 1 FROM lookups l WHERE l.job_id = jobs.id)
             OR EXISTS (SELECT 1 FROM lookups l WHERE l.job_id = jobs.id
                        AND l.state = 'pending' AND l.next_attempt_at <= ?))",
        )
        .bind(now_ms)
        .fetch_one(&mut *conn)
        .await?
    };
    status.due_now = due as u64;
    status.rejected_lines = reject_counts(&mut *conn).await?.into_iter().collect();
    let requests: Option<i64> = sqlx::query_scalar("SELECT requests FROM quota_days WHERE day = ?")
        .bind(quota_day)
        .fetch_optional(&mut *conn)
        .await?;
    status.requests_today = requests.unwrap_or(0) as u64;
    // Each state of each provider from its own partial index: no pass over the table.
    for p in ProviderId::ALL {
        let row = sqlx::query(
            "SELECT (SELECT count(*) FROM lookups INDEXED BY lookups_due
                     WHERE state = 'pending' AND provider = ?1),
                    (SELECT count(*) FROM lookups INDEXED BY lookups_leased
                     WHERE state = 'in_progress' AND provider = ?1),
                    (SELECT count(*) FROM lookups INDEXED BY lookups_done
                     WHERE state = 'done' AND provider = ?1),
                    (SELECT count(*) FROM lookups INDEXED BY lookups_missed
                     WHERE state IN ('not_found', 'failed') AND provider = ?1
                       AND state = 'not_found'),
                    (SELECT count(*) FROM lookups INDEXED BY lookups_missed
                     WHERE state IN ('not_found', 'failed') AND provider = ?1
                       AND state = 'failed')",
        )
        .bind(p.as_str())
        .fetch_one(&mut *conn)
        .await?;
        let per = status.lookups.entry(p.as_str()).or_default();
        for (i, st) in JobState::ALL.iter().enumerate() {
            per.insert(st.as_str(), row.get::<i64, _>(i) as u64);
        }
    }
    status.lookups.retain(|_, per| per.values().any(|&n| n > 0));
    let unasked: Vec<(String, i64)> = sqlx::query_as(sql::UNASKED_SQL)
        .fetch_all(&mut *conn)
        .await?;
    sql::add_unasked(&mut status, &unasked);
    status.eta = eta_on(&mut *conn, &status).await?;
    Ok(status)
}

/// Quota days left for Google's part, from the latest runs' books per request.
async fn eta_on(
    conn: &mut sqlx::SqliteConnection,
    status: &Status,
) -> std::result::Result<Option<Eta>, sqlx::Error> {
    let (done, requests): (Option<i64>, Option<i64>) = sqlx::query_as(
        "SELECT sum(done), sum(requests) FROM (
             SELECT done, requests FROM run_providers WHERE provider = ? AND requests > 0
             ORDER BY run_id DESC LIMIT 10)",
    )
    .bind(sql::quota_provider())
    .fetch_one(&mut *conn)
    .await?;
    let budget: Option<i64> = sqlx::query_scalar(
        "SELECT daily_budget FROM runs WHERE daily_budget IS NOT NULL ORDER BY id DESC LIMIT 1",
    )
    .fetch_optional(&mut *conn)
    .await?;
    Ok(sql::eta(status, done, requests, budget))
}

/// The statements of the report's overview that SQLite words its own way (index hints).
const OVERVIEW_SQL: sql::OverviewSql = sql::OverviewSql {
    completeness_of_provider: "SELECT count(*) AS records, count(description) AS description,
        count(page_count) AS page_count, count(thumbnail) AS cover, count(authors) AS authors,
        count(publisher) AS publisher, count(published_year) AS year
        FROM provider_books WHERE provider = $1",
    failures: "SELECT provider, state, coalesce(substr(last_error, 1, 80), '') AS error,
                count(*) AS count
         FROM lookups INDEXED BY lookups_missed WHERE state IN ('not_found', 'failed')
         GROUP BY provider, state, substr(last_error, 1, 80)
         ORDER BY count DESC LIMIT 10",
    // Years come grouped from their index; decades are summed after.
    years: "SELECT published_year, count(*) FROM books INDEXED BY books_year
         WHERE published_year IS NOT NULL GROUP BY published_year",
    top: [
        "SELECT language, count(*) AS n FROM books WHERE language IS NOT NULL
         GROUP BY language ORDER BY n DESC LIMIT 10",
        "SELECT publisher, count(*) AS n FROM books INDEXED BY books_publisher
         WHERE publisher IS NOT NULL GROUP BY publisher ORDER BY n DESC LIMIT 10",
        "SELECT c.value, count(*) AS n FROM books, json_each(books.categories) c
         WHERE books.categories IS NOT NULL AND json_valid(books.categories)
         GROUP BY c.value ORDER BY n DESC LIMIT 10",
    ],
    recent: "SELECT isbn13, title,
                (SELECT group_concat(value, '; ') FROM json_each(authors)) AS authors,
                published_year, provenance
         FROM books INDEXED BY books_fetched ORDER BY fetched_at DESC LIMIT 10",
};

sql::reject_fns!(sqlx::SqliteConnection);

sql::overview_fn!(sqlx::SqliteConnection, OVERVIEW_SQL);

/// A lookup of `provider` for every job that has none, from the provider's mark on; jobs that
/// every other provider had given up on become pending again. Returns how many were made.
async fn ensure_every_job(
    tx: &mut sqlx::Transaction<'static, Sqlite>,
    provider: ProviderId,
    now_ms: i64,
) -> std::result::Result<u64, sqlx::Error> {
    let mark: i64 = sqlx::query_scalar(
        "SELECT coalesce((SELECT job_id FROM lookup_marks WHERE provider = ?), 0)",
    )
    .bind(provider.as_str())
    .fetch_one(&mut **tx)
    .await?;
    let made = sqlx::query(
        "INSERT INTO lookups (job_id, isbn13, provider, created_at, updated_at)
         SELECT j.id, j.isbn13, ?1, ?2, ?2 FROM jobs j
         WHERE j.id > ?3
           AND NOT EXISTS (SELECT 1 FROM lookups l WHERE l.job_id = j.id AND l.provider = ?1)
         ORDER BY j.id",
    )
    .bind(provider.as_str())
    .bind(now_ms)
    .bind(mark)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if made > 0 {
        sqlx::query(
            "UPDATE jobs SET state = 'pending', updated_at = ?1
             WHERE id > ?2 AND state IN ('not_found', 'failed') AND EXISTS (
                 SELECT 1 FROM lookups l WHERE l.job_id = jobs.id AND l.state = 'pending')",
        )
        .bind(now_ms)
        .bind(mark)
        .execute(&mut **tx)
        .await?;
    }
    sqlx::query(
        "INSERT OR REPLACE INTO lookup_marks (provider, job_id)
         VALUES (?1, (SELECT coalesce(max(id), 0) FROM jobs))",
    )
    .bind(provider.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(made)
}

/// Recomputes the state, attempts and last error of `jobs` from their lookups.
async fn derive_jobs(
    tx: &mut sqlx::Transaction<'static, Sqlite>,
    jobs: &[i64],
    now_ms: i64,
) -> std::result::Result<(), sqlx::Error> {
    if jobs.is_empty() {
        return Ok(());
    }
    sqlx::query(DERIVE_JOBS_SQL)
        .bind(now_ms)
        .bind(serde_json::to_string(jobs).unwrap_or_else(|_| "[]".into()))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// [`HELD_SQL`] for `ids`, then (when there are any) `records` (lookup id, provider, book)
/// stored as each provider's record, as one query: one round trip. A record is stored only
/// while its lookup is still this run's, the guard the lookup's own update has. Returns the
/// held lookups' JSON row. The books' texts but `isbn13` are moved into the query (sqlx
/// would copy borrowed ones for its SQLite thread).
async fn held_and_records(
    tx: &mut sqlx::Transaction<'static, Sqlite>,
    ids: &[i64],
    run_id: i64,
    records: &mut [(i64, ProviderId, &mut super::Book)],
    now_ms: i64,
) -> std::result::Result<String, sqlx::Error> {
    use sqlx::Arguments as _;
    let real = records.len();
    let padded = if real == 0 {
        0
    } else {
        real.next_power_of_two()
    };
    let sql = if padded == 0 {
        HELD_SQL.into()
    } else {
        shape(&RECORDS_SQL, padded, held_and_records_sql)
    };
    let mut args = sqlx::sqlite::SqliteArguments::default();
    added([
        args.add(serde_json::to_string(ids).unwrap_or_else(|_| "[]".into())),
        args.add(run_id),
    ])?;
    for (lookup_id, provider, b) in records.iter_mut() {
        added::<RECORD_COLUMNS>([
            args.add(*lookup_id),
            args.add(b.isbn13.as_str()),
            args.add(provider.as_str()),
            args.add(b.volume_id.take()),
            args.add(b.title.take()),
            args.add(b.subtitle.take()),
            args.add(b.authors.take()),
            args.add(b.publisher.take()),
            args.add(b.published_date.take()),
            args.add(b.published_year),
            args.add(b.description.take()),
            args.add(b.page_count),
            args.add(b.categories.take()),
            args.add(b.language.take()),
            args.add(b.average_rating),
            args.add(b.ratings_count),
            args.add(b.thumbnail.take()),
            args.add(std::mem::take(&mut b.raw_json)),
            args.add(now_ms),
            args.add(run_id),
        ])?;
    }
    add_null_rows(&mut args, padded - real, RECORD_COLUMNS)?;
    if padded > 0 {
        added([args.add(run_id)])?;
    }
    // `fetch_all`: a stream dropped after its first row would leave the INSERT unrun.
    let rows: Vec<String> = sqlx::query_scalar_with(&sql, args)
        .fetch_all(&mut **tx)
        .await?;
    rows.into_iter().next().ok_or(sqlx::Error::RowNotFound)
}

/// Values a record row carries: its lookup's id, then the `provider_books` columns.
const RECORD_COLUMNS: usize = 20;

/// The text of [`held_and_records`] for `rows` records (0: the read alone). Callers pad to a
/// power of two with NULL rows (which join no lookup), so the text takes one of ten shapes and
/// stays prepared: parsing a fresh statement for every batch size cost SQLite about 20,000
/// instructions a row, more than running it.
fn held_and_records_sql(rows: usize) -> String {
    let mut sql = String::from(HELD_SQL);
    if rows == 0 {
        return sql;
    }
    sql.push_str(
        ";\nINSERT OR REPLACE INTO provider_books (isbn13, provider, record_id, title, subtitle,
            authors, publisher, published_date, published_year, description, page_count,
            categories, language, average_rating, ratings_count, thumbnail, raw_json, fetched_at,
            run_id)
        SELECT ",
    );
    let columns: Vec<String> = (2..=RECORD_COLUMNS)
        .map(|i| format!("v.column{i}"))
        .collect();
    sql.push_str(&columns.join(", "));
    sql.push_str(" FROM (VALUES ");
    sql.push_str(&placeholder_rows(rows, RECORD_COLUMNS));
    // The values drive the join (CROSS JOIN), and the lookup is read by id (NOT INDEXED), not
    // through the run's leases.
    sql.push_str(
        ") v CROSS JOIN lookups l NOT INDEXED
        WHERE l.id = v.column1 AND l.state = 'in_progress' AND l.lease_owner = ?",
    );
    sql
}

/// The most rows one statement's VALUES carries: a crawl's commit has at most 256 results.
const MAX_ROWS: usize = 256;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_take_ten_statement_shapes() {
        let shapes: std::collections::HashSet<String> = (0..=MAX_ROWS)
            .map(|n| held_and_records_sql(if n == 0 { 0 } else { n.next_power_of_two() }))
            .collect();
        assert_eq!(shapes.len(), 10);
        let one = held_and_records_sql(1);
        assert_eq!(one.matches('?').count(), 2 + RECORD_COLUMNS + 1);
        // The texts made once are the ones a size asks for; other sizes are made afresh.
        assert_eq!(shape(&RESULTS_SQL, 64, results_sql), results_sql(64));
        assert_eq!(shape(&RESULTS_SQL, 3, results_sql), results_sql(3));
        let big = 2 * MAX_ROWS;
        assert_eq!(
            shape(&RECORDS_SQL, big, held_and_records_sql),
            held_and_records_sql(big)
        );
    }

    #[tokio::test]
    async fn a_file_that_is_not_sqlite_is_said_so() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("notes.db");
        std::fs::write(&path, vec![b'x'; 8192]).expect("write");
        let err = SqliteStore::open(&path, true).await.expect_err("must fail");
        assert!(matches!(err, Error::NotADatabase { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("is not an isbn-crawler SQLite database")
        );
    }
}
