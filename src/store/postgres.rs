/*!
The PostgreSQL backend of [`Store`]: several machines on one job table.

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

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use secrecy::SecretString;
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};

use super::sql::{
    self, Dialect, RECORD_SELECT, Tally, job_change, merge_sql, shared_methods, text,
};
use super::{
    ClaimedLookup, Completion, Error, JobResult, JobState, LoadBatch, Location, Overview, Record,
    RequeueFilter, Reservation, Result, RunInfo, Status, Store,
};
use crate::domain::ProviderId;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The advisory lock loads share and `ensure_lookups` takes alone (an arbitrary constant).
const LOAD_LOCK: i64 = 0x6973_626e_6c6f_6164;

/// How many times a transaction the server aborted for a deadlock is tried again.
const RETRIES: u32 = 4;

static RECORDS_BY_STATE_SQL: LazyLock<String> =
    LazyLock::new(|| format!("{RECORD_SELECT} WHERE j.state = ANY($1) ORDER BY j.id"));

/// Leases up to `$4` due lookups of provider `$5` to run `$1` until `$2` (`$3`: now).
pub const CLAIM_SQL: &str = "WITH due AS (
        SELECT id FROM lookups
        WHERE state = 'pending' AND provider = $5 AND next_attempt_at <= $3
        ORDER BY next_attempt_at, id LIMIT $4
        FOR UPDATE SKIP LOCKED)
    UPDATE lookups l SET state = 'in_progress', attempts = l.attempts + 1,
        lease_owner = $1, lease_until = $2, updated_at = $3
    FROM due WHERE l.id = due.id
    RETURNING l.id, l.isbn13, l.attempts";

/// A job's state from its lookups (`$1`: job ids), as SQLite's `DERIVE_JOBS_SQL`.
const DERIVE_JOBS_SQL: &str = "UPDATE jobs SET state = d.state, attempts = d.attempts,
        last_error = d.last_error, updated_at = $2
    FROM (SELECT l.job_id,
                 CASE WHEN bool_or(l.state = 'done') THEN 'done'
                      WHEN bool_or(l.state = 'in_progress') THEN 'in_progress'
                      WHEN bool_or(l.state = 'pending') THEN 'pending'
                      WHEN bool_or(l.state = 'failed') THEN 'failed'
                      ELSE 'not_found' END AS state,
                 sum(l.attempts)::bigint AS attempts,
                 CASE WHEN bool_or(l.state = 'done') THEN NULL ELSE
                     (SELECT e.last_error FROM lookups e
                      WHERE e.job_id = l.job_id AND e.last_error IS NOT NULL
                      ORDER BY e.updated_at DESC, e.id DESC LIMIT 1) END AS last_error
          FROM unnest($1::bigint[]) AS x(job_id) JOIN lookups l ON l.job_id = x.job_id
          GROUP BY l.job_id) AS d
    WHERE jobs.id = d.job_id";

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

    async fn begin(&self) -> Result<Tx> {
        self.pool.begin().await.map_err(|e| self.err(e))
    }
}

/// Runs `$body` (which uses the transaction `$tx`) and commits, again when the server aborted
/// it for a deadlock or a serialization failure (nothing of it took effect).
macro_rules! in_tx {
    ($store:expr, $tx:ident => $body:expr) => {{
        let mut tries = 0;
        loop {
            let mut $tx = $store.begin().await?;
            let outcome = match typed(async { $body }).await {
                Ok(v) => $tx.commit().await.map(|()| v),
                Err(e) => Err(e),
            };
            match outcome {
                Err(e) if tries < RETRIES && is_conflict(&e) => {
                    tries += 1;
                    tracing::debug!("transaction retried after a conflict: {e}");
                }
                other => break other.map_err(|e| $store.err(e)),
            }
        }
    }};
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

/// Appends `s` as a field of COPY's text format.
fn copy_field(out: &mut String, s: Option<&str>) {
    let Some(s) = s else {
        out.push_str("\\N");
        return;
    };
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}

/// Copies `rows` (each a row of fields) into `table` with COPY's text format.
async fn copy_rows(
    conn: &mut PgConnection,
    table: &str,
    rows: impl Iterator<Item = Vec<Option<String>>>,
) -> std::result::Result<(), sqlx::Error> {
    let mut buf = String::with_capacity(1 << 20);
    let mut copy = conn
        .copy_in_raw(&format!("COPY {table} FROM STDIN"))
        .await?;
    for row in rows {
        for (i, field) in row.iter().enumerate() {
            if i > 0 {
                buf.push('\t');
            }
            copy_field(&mut buf, field.as_deref());
        }
        buf.push('\n');
        if buf.len() >= 1 << 20 {
            copy.send(buf.as_bytes()).await?;
            buf.clear();
        }
    }
    if !buf.is_empty() {
        copy.send(buf.as_bytes()).await?;
    }
    copy.finish().await?;
    Ok(())
}

impl Store for PgStore {
    shared_methods!();

    /// Leases up to `n` due lookups in one statement (`CLAIM_SQL`): rows another run is
    /// claiming at the same moment are skipped, not waited for.
    async fn claim(
        &self,
        run_id: i64,
        provider: ProviderId,
        n: u32,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> Result<Vec<ClaimedLookup>> {
        let rows = sqlx::query_as(CLAIM_SQL)
            .bind(run_id)
            .bind(lease_until_ms)
            .bind(now_ms)
            .bind(i64::from(n))
            .bind(provider.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(sql::claimed(rows))
    }

    async fn save_load_batch(&self, source: &str, batch: &LoadBatch, now: i64) -> Result<u64> {
        // Two machines loading lists that share ISBNs wait on each other's new rows; rows go
        // in key order, and a deadlock the server breaks anyway is tried again.
        in_tx!(self, tx => {
            sqlx::query("SELECT pg_advisory_xact_lock_shared($1)")
                .bind(LOAD_LOCK)
                .execute(&mut *tx)
                .await?;
            for ddl in [
                "CREATE TEMP TABLE IF NOT EXISTS load_jobs (n BIGINT, isbn13 TEXT, isbn10 TEXT,
                     line BIGINT, ref TEXT) ON COMMIT DELETE ROWS",
                "CREATE TEMP TABLE IF NOT EXISTS load_rejects (n BIGINT, line BIGINT, raw TEXT,
                     reason TEXT) ON COMMIT DELETE ROWS",
            ] {
                sqlx::query(ddl).execute(&mut *tx).await?;
            }
            let jobs = batch.jobs.iter().enumerate().map(|(n, job)| {
                let ten = job.isbn.isbn10_ascii();
                vec![
                    Some(n.to_string()),
                    Some(job.isbn.as_str().to_string()),
                    ten.and_then(|t| String::from_utf8(t.to_vec()).ok()),
                    Some(job.line.to_string()),
                    batch.reference(job.line).map(str::to_string),
                ]
            });
            copy_rows(&mut tx, "load_jobs", jobs).await?;
            let rejects = batch.rejects.iter().enumerate().map(|(n, r)| {
                vec![
                    Some(n.to_string()),
                    Some(r.line.to_string()),
                    Some(r.raw.clone()),
                    Some(r.reason.as_str().to_string()),
                ]
            });
            copy_rows(&mut tx, "load_rejects", rejects).await?;
            let inserted = sqlx::query(
                "INSERT INTO jobs (isbn13, isbn10, source, source_line, source_ref, created_at,
                                   updated_at)
                 SELECT isbn13, isbn10, $1, line, ref, $2, $2 FROM load_jobs ORDER BY n
                 ON CONFLICT (isbn13) DO NOTHING",
            )
            .bind(text(source).as_ref())
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            sqlx::query(
                "INSERT INTO rejected_lines (source, line, raw, reason, created_at)
                 SELECT $1, line, raw, reason, $2 FROM load_rejects ORDER BY n
                 ON CONFLICT DO NOTHING",
            )
            .bind(text(source).as_ref())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            Ok(inserted)
        })
    }

    async fn overview(&self, now_ms: i64, quota_day: &str) -> Result<Overview> {
        let mut conn = self.pool.acquire().await.map_err(|e| self.err(e))?;
        overview_on(&mut conn, now_ms, quota_day)
            .await
            .map_err(|e| self.err(e))
    }

    fn records<'a>(&'a self, states: &[JobState]) -> BoxStream<'a, Result<Record>> {
        let states: Vec<String> = states.iter().map(|s| s.as_str().to_string()).collect();
        sqlx::query_as(RECORDS_BY_STATE_SQL.as_str())
            .bind(states)
            .fetch(&self.pool)
            .map_err(|e| self.err(e))
            .boxed()
    }

    async fn requeue(&self, filter: &RequeueFilter, now_ms: i64) -> Result<u64> {
        let states: Vec<String> = filter.states.iter().map(|s| s.as_str().into()).collect();
        let providers: Vec<String> = filter.providers.iter().map(|p| p.as_str().into()).collect();
        in_tx!(self, tx => {
            let jobs: Vec<i64> = sqlx::query_scalar(
                "UPDATE lookups SET state = 'pending', attempts = 0, next_attempt_at = 0,
                        updated_at = $1
                 WHERE state = ANY($2) AND state != 'in_progress'
                   AND (cardinality($5::text[]) = 0 OR provider = ANY($5))
                   AND ($3::bigint IS NULL OR updated_at < $3)
                   AND ($4::text IS NULL OR strpos(coalesce(last_error, ''), $4) > 0)
                 RETURNING job_id",
            )
            .bind(now_ms)
            .bind(&states)
            .bind(filter.updated_before_ms)
            .bind(filter.error_contains.as_deref())
            .bind(&providers)
            .fetch_all(&mut *tx)
            .await?;
            derive_jobs(&mut tx, &jobs, now_ms).await?;
            Ok(jobs.len() as u64)
        })
    }

    async fn ensure_lookups(
        &self,
        providers: &[ProviderId],
        fill_missing: bool,
        now_ms: i64,
    ) -> Result<u64> {
        in_tx!(self, tx => {
            // Alone: no load is half-committed while the marks move, and two crawlers
            // starting together do not make the same lookups.
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(LOAD_LOCK)
                .execute(&mut *tx)
                .await?;
            let mut made = 0;
            for (i, p) in providers.iter().enumerate() {
                let earlier: &[ProviderId] = if fill_missing { &providers[..i] } else { &[] };
                let Some((first, rest)) = earlier.split_first() else {
                    made += ensure_every_job(&mut tx, *p, now_ms).await?;
                    continue;
                };
                let rest: Vec<String> = rest.iter().map(|e| e.as_str().into()).collect();
                let jobs: Vec<i64> = sqlx::query_scalar(
                    "INSERT INTO lookups (job_id, isbn13, provider, created_at, updated_at)
                     SELECT e.job_id, e.isbn13, $1, $2, $2 FROM lookups e
                     WHERE e.provider = $3 AND e.state IN ('not_found', 'failed')
                       AND NOT EXISTS (SELECT 1 FROM lookups l
                                       WHERE l.job_id = e.job_id AND l.provider = $1)
                       AND NOT EXISTS (SELECT 1 FROM unnest($4::text[]) r(provider)
                           WHERE NOT EXISTS (SELECT 1 FROM lookups m WHERE m.job_id = e.job_id
                               AND m.provider = r.provider AND m.state IN ('not_found', 'failed')))
                     ORDER BY e.job_id
                     ON CONFLICT DO NOTHING
                     RETURNING job_id",
                )
                .bind(p.as_str())
                .bind(now_ms)
                .bind(first.as_str())
                .bind(&rest)
                .fetch_all(&mut *tx)
                .await?;
                made += jobs.len() as u64;
                derive_jobs(&mut tx, &jobs, now_ms).await?;
            }
            Ok(made)
        })
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
        in_tx!(self, tx => {
            sqlx::query(
                "UPDATE runs SET ended_at = heartbeat_at, stop_reason = 'killed'
                 WHERE id = ANY($1) AND ended_at IS NULL",
            )
            .bind(&dead)
            .execute(&mut *tx)
            .await?;
            // Leases of runs that are gone or ended, and leases that ran out (a run on
            // another host that stopped beating).
            let jobs: Vec<i64> = sqlx::query_scalar(
                "UPDATE lookups SET state = 'pending', attempts = greatest(attempts - 1, 0),
                        lease_owner = NULL, lease_until = NULL, updated_at = $1
                 WHERE state = 'in_progress'
                   AND (lease_until < $1
                        OR lease_owner IN (SELECT id FROM runs WHERE ended_at IS NOT NULL))
                 RETURNING job_id",
            )
            .bind(now_ms)
            .fetch_all(&mut *tx)
            .await?;
            derive_jobs(&mut tx, &jobs, now_ms).await?;
            Ok(jobs.len() as u64)
        })
    }

    async fn complete(
        &self,
        run_id: i64,
        completions: &mut [Completion],
        precedence: &[ProviderId],
        quota_day: &str,
        now_ms: i64,
    ) -> Result<u64> {
        let merge = merge_sql(precedence, Dialect::Postgres);
        in_tx!(self, tx => {
            complete_in(&mut tx, run_id, completions, &merge, quota_day, now_ms).await
        })
    }

    async fn heartbeat(&self, run_id: i64, now_ms: i64, lease_until_ms: i64) -> Result<()> {
        in_tx!(self, tx => {
            sqlx::query("UPDATE runs SET heartbeat_at = $1 WHERE id = $2")
                .bind(now_ms)
                .bind(run_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "UPDATE lookups SET lease_until = $1
                 WHERE state = 'in_progress' AND lease_owner = $2",
            )
            .bind(lease_until_ms)
            .bind(run_id)
            .execute(&mut *tx)
            .await?;
            Ok(())
        })
    }

    async fn next_due_at(&self, provider: ProviderId, me: i64) -> Result<Option<i64>> {
        sqlx::query_scalar(
            "SELECT least(
                 (SELECT min(next_attempt_at) FROM lookups
                  WHERE state = 'pending' AND provider = $1),
                 (SELECT min(lease_until) FROM lookups
                  WHERE state = 'in_progress' AND provider = $1 AND lease_owner != $2))",
        )
        .bind(provider.as_str())
        .bind(me)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| self.err(e))
    }

    async fn open_jobs(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM jobs WHERE state IN ('pending', 'in_progress')",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(n as u64)
    }

    async fn open_lookups(&self, provider: ProviderId) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM lookups
             WHERE provider = $1 AND state IN ('pending', 'in_progress')",
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
        let [insert, select, update] = sql::RESERVE_SQL;
        let select = format!("{select} FOR UPDATE");
        in_tx!(self, tx => {
            sqlx::query(insert)
                .bind(day)
                .bind(key_id)
                .execute(&mut *tx)
                .await?;
            let (reserved, exhausted): (i64, Option<i64>) = sqlx::query_as(&select)
                .bind(day)
                .bind(key_id)
                .fetch_one(&mut *tx)
                .await?;
            let grant = Reservation::grant(reserved, exhausted.is_some(), want, limit, probe);
            sqlx::query(update)
                .bind(day)
                .bind(key_id)
                .bind(grant.granted as i64)
                .execute(&mut *tx)
                .await?;
            Ok(grant)
        })
    }
}

/// One `complete`, inside its transaction: see [`Store::complete`].
async fn complete_in(
    tx: &mut Tx,
    run_id: i64,
    completions: &[Completion],
    merge: &str,
    quota_day: &str,
    now_ms: i64,
) -> std::result::Result<u64, sqlx::Error> {
    let n = completions.len();
    let (mut ids, mut states, mut next_at, mut errors, mut refunds, mut give_backs) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for c in completions {
        let (state, at, error, refund) = job_change(&c.result);
        ids.push(c.lookup_id);
        states.push(state);
        next_at.push(at);
        errors.push(error.map(|e| text(e).into_owned()));
        refunds.push(refund);
        give_backs.push(matches!(c.result, JobResult::GiveBack));
    }
    let applied: HashMap<i64, i64> = sqlx::query_as(
        "UPDATE lookups l SET state = v.state,
             next_attempt_at = coalesce(v.next_at, l.next_attempt_at),
             last_error = CASE WHEN v.give_back THEN l.last_error ELSE v.error END,
             attempts = CASE WHEN v.refund THEN greatest(l.attempts - 1, 0) ELSE l.attempts END,
             lease_owner = NULL, lease_until = NULL, updated_at = $7
         FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::bool[], $6::bool[])
              AS v(id, state, next_at, error, refund, give_back)
         WHERE l.id = v.id AND l.state = 'in_progress' AND l.lease_owner = $8
         RETURNING l.id, l.job_id",
    )
    .bind(&ids)
    .bind(&states)
    .bind(&next_at)
    .bind(&errors)
    .bind(&refunds)
    .bind(&give_backs)
    .bind(now_ms)
    .bind(run_id)
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .collect();
    let mut jobs: Vec<i64> = applied.values().copied().collect();
    jobs.sort_unstable();
    jobs.dedup();
    // Before anything reads another lookup of these jobs: wait for (and then see) a crawler
    // committing the other provider's lookup of the same book.
    lock_jobs(tx, &jobs).await?;
    let t = Tally::of(completions, &applied);
    if !t.books.is_empty() {
        insert_records(tx, &t.books, run_id, now_ms).await?;
        let isbns: Vec<&str> = t.books.iter().map(|(_, b)| b.isbn13.as_str()).collect();
        sqlx::query(merge).bind(&isbns).execute(&mut **tx).await?;
    }
    if !t.chained.is_empty() {
        let (job_ids, providers): (Vec<i64>, Vec<&str>) =
            t.chained.iter().map(|(j, p)| (*j, p.as_str())).unzip();
        sqlx::query(
            "INSERT INTO lookups (job_id, isbn13, provider, created_at, updated_at)
             SELECT j.id, j.isbn13, c.provider, $3, $3
             FROM unnest($1::bigint[], $2::text[]) AS c(job_id, provider)
             JOIN jobs j ON j.id = c.job_id
             ON CONFLICT DO NOTHING",
        )
        .bind(&job_ids)
        .bind(&providers)
        .bind(now_ms)
        .execute(&mut **tx)
        .await?;
    }
    derive_locked(tx, &jobs, now_ms).await?;
    if t.quota_requests > 0 {
        sqlx::query(
            "INSERT INTO quota_days (day, requests) VALUES ($1, $2)
             ON CONFLICT (day) DO UPDATE SET requests = quota_days.requests + $2",
        )
        .bind(quota_day)
        .bind(t.quota_requests)
        .execute(&mut **tx)
        .await?;
    }
    sqlx::query(
        "UPDATE runs SET requests = requests + $1, done = done + $2, not_found = not_found + $3,
                failed = failed + $4, retried = retried + $5, given_back = given_back + $6,
                heartbeat_at = $7
         WHERE id = $8",
    )
    .bind(t.requests)
    .bind(t.done)
    .bind(t.not_found)
    .bind(t.failed)
    .bind(t.retried)
    .bind(t.given_back)
    .bind(now_ms)
    .bind(run_id)
    .execute(&mut **tx)
    .await?;
    for (provider, [requests, done, not_found, failed]) in &t.per_provider {
        sqlx::query(
            "INSERT INTO run_providers AS r (run_id, provider, requests, done, not_found, failed)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (run_id, provider) DO UPDATE SET
                 requests = r.requests + $3, done = r.done + $4,
                 not_found = r.not_found + $5, failed = r.failed + $6",
        )
        .bind(run_id)
        .bind(provider.as_str())
        .bind(requests)
        .bind(done)
        .bind(not_found)
        .bind(failed)
        .execute(&mut **tx)
        .await?;
    }
    Ok(applied.len() as u64)
}

/// Stores each provider's record whole, replacing an older one, in one statement.
async fn insert_records(
    tx: &mut Tx,
    books: &[(ProviderId, &super::Book)],
    run_id: i64,
    now_ms: i64,
) -> std::result::Result<(), sqlx::Error> {
    let opt = |f: &dyn Fn(&super::Book) -> Option<&str>| -> Vec<Option<String>> {
        books
            .iter()
            .map(|(_, b)| f(b).map(|s| text(s).into_owned()))
            .collect()
    };
    let int = |f: &dyn Fn(&super::Book) -> Option<i64>| -> Vec<Option<i64>> {
        books.iter().map(|(_, b)| f(b)).collect()
    };
    let isbns: Vec<&str> = books.iter().map(|(_, b)| b.isbn13.as_str()).collect();
    let providers: Vec<&str> = books.iter().map(|(p, _)| p.as_str()).collect();
    let ratings: Vec<Option<f64>> = books.iter().map(|(_, b)| b.average_rating).collect();
    let raw: Vec<String> = books
        .iter()
        .map(|(_, b)| text(&b.raw_json).into_owned())
        .collect();
    sqlx::query(
        "INSERT INTO provider_books (isbn13, provider, record_id, title, subtitle, authors,
             publisher, published_date, published_year, description, page_count, categories,
             language, average_rating, ratings_count, thumbnail, raw_json, fetched_at, run_id)
         SELECT *, $18::bigint, $19::bigint FROM unnest($1::text[], $2::text[], $3::text[],
             $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::bigint[],
             $10::text[], $11::bigint[], $12::text[], $13::text[], $14::float8[], $15::bigint[],
             $16::text[], $17::text[])
         ON CONFLICT (isbn13, provider) DO UPDATE SET record_id = EXCLUDED.record_id,
             title = EXCLUDED.title, subtitle = EXCLUDED.subtitle, authors = EXCLUDED.authors,
             publisher = EXCLUDED.publisher, published_date = EXCLUDED.published_date,
             published_year = EXCLUDED.published_year, description = EXCLUDED.description,
             page_count = EXCLUDED.page_count, categories = EXCLUDED.categories,
             language = EXCLUDED.language, average_rating = EXCLUDED.average_rating,
             ratings_count = EXCLUDED.ratings_count, thumbnail = EXCLUDED.thumbnail,
             raw_json = EXCLUDED.raw_json, fetched_at = EXCLUDED.fetched_at,
             run_id = EXCLUDED.run_id",
    )
    .bind(&isbns)
    .bind(&providers)
    .bind(opt(&|b| b.volume_id.as_deref()))
    .bind(opt(&|b| b.title.as_deref()))
    .bind(opt(&|b| b.subtitle.as_deref()))
    .bind(opt(&|b| b.authors.as_deref()))
    .bind(opt(&|b| b.publisher.as_deref()))
    .bind(opt(&|b| b.published_date.as_deref()))
    .bind(int(&|b| b.published_year))
    .bind(opt(&|b| b.description.as_deref()))
    .bind(int(&|b| b.page_count))
    .bind(opt(&|b| b.categories.as_deref()))
    .bind(opt(&|b| b.language.as_deref()))
    .bind(&ratings)
    .bind(int(&|b| b.ratings_count))
    .bind(opt(&|b| b.thumbnail.as_deref()))
    .bind(&raw)
    .bind(now_ms)
    .bind(run_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A lookup of `provider` for every job from the provider's mark on that has none; jobs every
/// other provider had given up on become pending again. Returns how many were made.
async fn ensure_every_job(
    tx: &mut Tx,
    provider: ProviderId,
    now_ms: i64,
) -> std::result::Result<u64, sqlx::Error> {
    let mark: i64 = sqlx::query_scalar(
        "SELECT coalesce((SELECT job_id FROM lookup_marks WHERE provider = $1), 0)",
    )
    .bind(provider.as_str())
    .fetch_one(&mut **tx)
    .await?;
    let made = sqlx::query(
        "INSERT INTO lookups (job_id, isbn13, provider, created_at, updated_at)
         SELECT j.id, j.isbn13, $1, $2, $2 FROM jobs j
         WHERE j.id > $3
           AND NOT EXISTS (SELECT 1 FROM lookups l WHERE l.job_id = j.id AND l.provider = $1)
         ORDER BY j.id
         ON CONFLICT DO NOTHING",
    )
    .bind(provider.as_str())
    .bind(now_ms)
    .bind(mark)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if made > 0 {
        sqlx::query(
            "UPDATE jobs SET state = 'pending', updated_at = $1
             WHERE id > $2 AND state IN ('not_found', 'failed') AND EXISTS (
                 SELECT 1 FROM lookups l WHERE l.job_id = jobs.id AND l.state = 'pending')",
        )
        .bind(now_ms)
        .bind(mark)
        .execute(&mut **tx)
        .await?;
    }
    sqlx::query(
        "INSERT INTO lookup_marks (provider, job_id)
         VALUES ($1, (SELECT coalesce(max(id), 0) FROM jobs))
         ON CONFLICT (provider) DO UPDATE SET job_id = EXCLUDED.job_id",
    )
    .bind(provider.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(made)
}

/// Recomputes the state, attempts and last error of `jobs` from their lookups, the job rows
/// locked first.
async fn derive_jobs(
    tx: &mut Tx,
    jobs: &[i64],
    now_ms: i64,
) -> std::result::Result<(), sqlx::Error> {
    lock_jobs(tx, jobs).await?;
    derive_locked(tx, jobs, now_ms).await
}

/// Locks the rows of `jobs` in id order, so two transactions never wait on each other in a
/// cycle, and a second one reads the first's committed lookups once it has the lock.
async fn lock_jobs(tx: &mut Tx, jobs: &[i64]) -> std::result::Result<(), sqlx::Error> {
    if !jobs.is_empty() {
        sqlx::query("SELECT id FROM jobs WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE")
            .bind(jobs)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// [`derive_jobs`] for rows the transaction has locked already.
async fn derive_locked(
    tx: &mut Tx,
    jobs: &[i64],
    now_ms: i64,
) -> std::result::Result<(), sqlx::Error> {
    if !jobs.is_empty() {
        sqlx::query(DERIVE_JOBS_SQL)
            .bind(jobs)
            .bind(now_ms)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// The job table at a glance.
async fn status_on(
    conn: &mut PgConnection,
    now_ms: i64,
    quota_day: &str,
    with_due: bool,
) -> std::result::Result<Status, sqlx::Error> {
    let mut status = Status {
        quota_day: quota_day.to_string(),
        ..Status::default()
    };
    let per_state: Vec<(String, i64)> =
        sqlx::query_as("SELECT state, count(*) FROM jobs GROUP BY state")
            .fetch_all(&mut *conn)
            .await?;
    for st in JobState::ALL {
        let n = per_state
            .iter()
            .find(|(s, _)| s == st.as_str())
            .map_or(0, |(_, n)| *n as u64);
        status.jobs.insert(st.as_str(), n);
        status.total += n;
    }
    if with_due {
        let due: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM jobs WHERE state = 'pending' AND (
                 NOT EXISTS (SELECT 1 FROM lookups l WHERE l.job_id = jobs.id)
                 OR EXISTS (SELECT 1 FROM lookups l WHERE l.job_id = jobs.id
                            AND l.state = 'pending' AND l.next_attempt_at <= $1))",
        )
        .bind(now_ms)
        .fetch_one(&mut *conn)
        .await?;
        status.due_now = due as u64;
    }
    status.rejected_lines = reject_counts(&mut *conn).await?.into_iter().collect();
    let requests: Option<i64> =
        sqlx::query_scalar("SELECT requests FROM quota_days WHERE day = $1")
            .bind(quota_day)
            .fetch_optional(&mut *conn)
            .await?;
    status.requests_today = requests.unwrap_or(0) as u64;
    let per_lookup: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT provider, state, count(*) FROM lookups GROUP BY provider, state")
            .fetch_all(&mut *conn)
            .await?;
    for p in ProviderId::ALL {
        let mut per = std::collections::BTreeMap::new();
        for st in JobState::ALL {
            let n = per_lookup
                .iter()
                .find(|(pp, s, _)| pp == p.as_str() && s == st.as_str())
                .map_or(0, |(_, _, n)| *n as u64);
            per.insert(st.as_str(), n);
        }
        if per.values().any(|&n| n > 0) {
            status.lookups.insert(p.as_str(), per);
        }
    }
    let unasked: Vec<(String, i64)> = sqlx::query_as(sql::UNASKED_SQL)
        .fetch_all(&mut *conn)
        .await?;
    sql::add_unasked(&mut status, &unasked);
    let (done, requests): (Option<i64>, Option<i64>) = sqlx::query_as(
        "SELECT sum(done)::bigint, sum(requests)::bigint FROM (
             SELECT done, requests FROM run_providers WHERE provider = $1 AND requests > 0
             ORDER BY run_id DESC LIMIT 10) r",
    )
    .bind(sql::quota_provider())
    .fetch_one(&mut *conn)
    .await?;
    let budget: Option<i64> = sqlx::query_scalar(
        "SELECT daily_budget FROM runs WHERE daily_budget IS NOT NULL ORDER BY id DESC LIMIT 1",
    )
    .fetch_optional(&mut *conn)
    .await?;
    status.eta = sql::eta(&status, done, requests, budget);
    Ok(status)
}

/// The statements of the report's overview that PostgreSQL words its own way (jsonb).
const OVERVIEW_SQL: sql::OverviewSql = sql::OverviewSql {
    completeness_of_provider: "SELECT count(*) AS records, count(description) AS description,
        count(page_count) AS page_count, count(thumbnail) AS cover, count(authors) AS authors,
        count(publisher) AS publisher, count(published_year) AS year
        FROM provider_books WHERE provider = $1",
    failures: "SELECT provider, state, coalesce(substr(last_error, 1, 80), '') AS error,
                count(*) AS count
         FROM lookups WHERE state IN ('not_found', 'failed')
         GROUP BY provider, state, substr(last_error, 1, 80)
         ORDER BY count DESC LIMIT 10",
    years: "SELECT published_year, count(*) FROM books WHERE published_year IS NOT NULL
         GROUP BY published_year ORDER BY published_year",
    top: [
        "SELECT language, count(*) AS n FROM books WHERE language IS NOT NULL
         GROUP BY language ORDER BY n DESC, language LIMIT 10",
        "SELECT publisher, count(*) AS n FROM books WHERE publisher IS NOT NULL
         GROUP BY publisher ORDER BY n DESC, publisher LIMIT 10",
        "SELECT c, count(*) AS n FROM books, jsonb_array_elements_text(books.categories::jsonb) c
         WHERE books.categories LIKE '[%'
         GROUP BY c ORDER BY n DESC, c LIMIT 10",
    ],
    recent: "SELECT isbn13, title,
                (SELECT string_agg(a, '; ') FROM jsonb_array_elements_text(
                     CASE WHEN authors LIKE '[%' THEN authors::jsonb END) a) AS authors,
                published_year, provenance
         FROM books ORDER BY fetched_at DESC LIMIT 10",
};

sql::reject_fns!(PgConnection);

sql::overview_fn!(PgConnection, OVERVIEW_SQL);
