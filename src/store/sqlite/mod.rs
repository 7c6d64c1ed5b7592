/*!
The SQLite backend of [`Store`](crate::store::Store).

Pragmas are set through typed [`SqliteConnectOptions`] (never a raw `PRAGMA` string that
SQLite would silently ignore when misspelt) and a test reads them back: WAL so readers never
block the writer, `synchronous=NORMAL` (durable at each checkpoint, safe against corruption),
a busy timeout so two processes take turns instead of failing, and foreign keys on.

Writes take the lock up front (`BEGIN IMMEDIATE`): a deferred transaction that reads first
and writes later can fail with SQLITE_BUSY where waiting would have worked.
*/

mod commit;
mod crawl;
mod load;
mod quota;
mod read;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection as _, Sqlite};

use super::Error;
use super::Result;

pub use crawl::CLAIM_DUE_SQL;

/// How long a statement waits for another connection's write lock before giving up.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The page size of a database this tool creates (see `open_with`).
pub const PAGE_SIZE: u32 = 16 * 1024;

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
            // page of rows and one leaf in each ISBN-keyed index: 16 KiB pages write and read
            // far fewer pages than 4 KiB ones (SQLite's default) for the same commits.
            .page_size(PAGE_SIZE)
            // A checkpoint every 256 pages (4 MiB of 16 KiB ones), as SQLite's default 1,000
            // pages of 4 KiB did: larger checkpoints held the write connection long enough to
            // starve claims.
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
        // crawl's claims and commits on different connections re-read their pages every time.
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

    /// A connection of the read pool.
    async fn reader(&self) -> Result<PoolConnection<Sqlite>> {
        self.pool.acquire().await.map_err(|e| self.err(e))
    }

    /// Runs `f` on a connection of the read pool.
    async fn read<T>(
        &self,
        f: impl AsyncFnOnce(&mut sqlx::SqliteConnection) -> sqlx::Result<T>,
    ) -> Result<T> {
        let mut conn = self.reader().await?;
        f(&mut conn).await.map_err(|e| self.err(e))
    }

    /// Runs `f` in one write transaction on the writer connection, and commits.
    async fn write<T>(
        &self,
        f: impl AsyncFnOnce(&mut sqlx::SqliteConnection) -> sqlx::Result<T>,
    ) -> Result<T> {
        let mut tx = self.begin_immediate().await?;
        let value = f(&mut tx).await.map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(value)
    }

    /// A write transaction on the one writer connection, holding the write lock from its start.
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

/// Turns SQLite's result codes into errors that say what to do.
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

#[cfg(test)]
mod tests {
    use super::*;

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
