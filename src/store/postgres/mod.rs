/*!
The PostgreSQL backend of [`Store`](crate::store::Store): several machines on one job table.

The rules are SQLite's (see the module docs of [`super`]); what differs is how concurrency is
made safe when many processes write at once instead of taking turns on one lock:

- A claim is one statement: a CTE picks the due rows `FOR UPDATE SKIP LOCKED` (so claimers
  never wait on each other's rows, nor take the same one) and the `UPDATE` leases exactly those.
- A commit locks the jobs it touches (in id order) before it stores records, merges books or
  derives states, so two crawlers finishing different providers' lookups of one book take
  turns, and the second sees the first's record. A deadlock or serialization failure the server
  reports is retried (the transaction had no effect).
- `load` copies each batch into a temporary table with `COPY` and inserts from there in one
  statement. Loads hold a shared advisory lock and `ensure_lookups` the exclusive one, so the
  "lookups made up to job id N" mark never passes a job id a load has not yet committed.

Everything is bound as arrays: each statement has one text, prepared once per connection,
whatever the batch size. Joins start from `unnest($1)` into a unique index, so the one
(generic) plan suits one row and 2,048 alike; `isbn13 = ANY($1)` in the merge got a plan that
scanned, and a commit's merge grew with the table (163 ms at 12,000 books).
*/

use std::time::Duration;

use secrecy::SecretString;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, Postgres};

use crate::store::{Error, Location, Result};

/// Runs `$body` (which uses the transaction `$tx`) and commits, again when the server aborted
/// it for a deadlock or a serialization failure (nothing of it took effect).
macro_rules! in_tx {
    ($store:expr, $tx:ident => $body:expr) => {{
        let mut tries = 0;
        loop {
            let mut $tx = $store.begin().await?;
            let outcome = match $crate::store::postgres::typed(async { $body }).await {
                Ok(v) => $tx.commit().await.map(|()| v),
                Err(e) => Err(e),
            };
            match outcome {
                Err(e)
                    if tries < $crate::store::postgres::RETRIES
                        && $crate::store::postgres::is_conflict(&e) =>
                {
                    tries += 1;
                    tracing::debug!("transaction retried after a conflict: {e}");
                }
                other => break other.map_err(|e| $store.err(e)),
            }
        }
    }};
}

mod commit;
mod crawl;
mod load;
mod quota;
mod read;

pub use crawl::CLAIM_SQL;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The advisory lock loads share and `ensure_lookups` takes alone (an arbitrary constant).
const LOAD_LOCK: i64 = 0x6973_626e_6c6f_6164;

/// How many times a transaction the server aborted for a deadlock is tried again.
const RETRIES: u32 = 4;

#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
    shown: String,
}

type Tx = sqlx::Transaction<'static, sqlx::Postgres>;

impl PgStore {
    /// Closes every connection (the server ends their sessions now, not at a timeout).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Connects to the database at `url` (shown as `shown`), migrating it when `create` is
    /// true; without `create`, a database with no isbn-crawler tables is `Missing`.
    pub async fn open(url: &SecretString, shown: &str, create: bool) -> Result<PgStore> {
        let unreachable = |reason: String| Error::Unreachable {
            path: shown.to_string(),
            reason,
        };
        let options = Location::pg_options(url)
            .map_err(unreachable)?
            .application_name("isbn-crawler")
            .log_statements(log::LevelFilter::Trace)
            .log_slow_statements(log::LevelFilter::Off, Duration::from_secs(60));
        let refused = |e: sqlx::Error| match e {
            // Class 28 (a role or password refused) and 3D000 (no such database): what the URL
            // says is wrong, not the server.
            sqlx::Error::Database(db)
                if db
                    .code()
                    .is_some_and(|c| c.starts_with("28") || c == "3D000") =>
            {
                Error::Refused {
                    path: shown.to_string(),
                    reason: db.message().to_string(),
                }
            }
            sqlx::Error::Database(db) => Error::Other {
                path: shown.to_string(),
                error: sqlx::Error::Database(db),
            },
            e => unreachable(reason(&e)),
        };
        // One plain connection first: the pool would retry a refused connection for its whole
        // acquire timeout, and a server that is not there should be said at once.
        let probe = options.connect().await.map_err(refused)?;
        let _ = probe.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(refused)?;
        let store = PgStore {
            pool,
            shown: shown.to_string(),
        };
        store.check_ours(create).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Refuses a database that holds other tables and none of ours.
    async fn check_ours(&self, create: bool) -> Result<()> {
        let (ours, tables): (bool, i64) = sqlx::query_as(
            "SELECT to_regclass('_sqlx_migrations') IS NOT NULL,
                    (SELECT count(*) FROM information_schema.tables
                     WHERE table_schema = current_schema())",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        match (ours, tables) {
            (true, _) => Ok(()),
            (false, 0) if create => Ok(()),
            (false, 0) => Err(Error::Missing {
                path: self.shown.clone(),
            }),
            (false, _) => Err(Error::Foreign {
                path: self.shown.clone(),
            }),
        }
    }

    async fn migrate(&self) -> Result<()> {
        match MIGRATOR.run(&self.pool).await {
            Ok(()) => Ok(()),
            Err(sqlx::migrate::MigrateError::VersionMissing(version)) => Err(Error::NewerSchema {
                path: self.shown.clone(),
                version,
            }),
            Err(sqlx::migrate::MigrateError::Execute(e)) => Err(self.err(e)),
            Err(e) => Err(self.err(sqlx::Error::Migrate(Box::new(e)))),
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn err(&self, e: sqlx::Error) -> Error {
        map_err(&self.shown, e)
    }

    /// A connection of the pool, for one statement.
    async fn conn(&self) -> Result<PoolConnection<Postgres>> {
        self.pool.acquire().await.map_err(|e| self.err(e))
    }

    /// Runs `f` on a connection of the pool: a read, or one statement that commits by itself
    /// (several statements that must hold together go through `in_tx!`).
    async fn on_conn<T>(
        &self,
        f: impl AsyncFnOnce(&mut PgConnection) -> sqlx::Result<T>,
    ) -> Result<T> {
        let mut conn = self.conn().await?;
        f(&mut conn).await.map_err(|e| self.err(e))
    }

    async fn begin(&self) -> Result<Tx> {
        self.pool.begin().await.map_err(|e| self.err(e))
    }
}

/// Pins the error type of a transaction body, so `?` inside it needs no annotation.
fn typed<T, F: std::future::Future<Output = std::result::Result<T, sqlx::Error>>>(f: F) -> F {
    f
}

fn is_conflict(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db)
        if matches!(db.code().as_deref(), Some("40P01") | Some("40001")))
}

/// The reason of a connection error, in a few words (never the URL).
fn reason(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Io(io) => io.to_string(),
        sqlx::Error::PoolTimedOut => "no connection within 10 s".into(),
        sqlx::Error::Tls(_) => "TLS failed".into(),
        sqlx::Error::Protocol(p) => p.clone(),
        other => other.to_string(),
    }
}

/// Turns PostgreSQL's SQLSTATEs into errors that say what to do.
fn map_err(path: &str, e: sqlx::Error) -> Error {
    let path = path.to_string();
    match &e {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.to_string()).unwrap_or_default();
            match code.as_str() {
                "53100" => return Error::DiskFull { path },
                "25006" => return Error::ReadOnly { path },
                // The server shut down or restarted (admin shutdown, crash, cannot connect now),
                // or the connection broke.
                c if c.starts_with("57P") || c.starts_with("08") => {
                    return Error::ConnectionLost {
                        path,
                        reason: db.message().to_string(),
                    };
                }
                _ => {}
            }
        }
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Protocol(_) => {
            return Error::ConnectionLost {
                reason: reason(&e),
                path,
            };
        }
        _ => {}
    }
    Error::Other { path, error: e }
}
