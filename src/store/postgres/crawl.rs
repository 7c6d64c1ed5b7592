/*!
PostgreSQL's [`CrawlStore`]: runs, lookups, claims (`FOR UPDATE SKIP LOCKED`) and leases.
*/

use super::{LOAD_LOCK, PgStore, Tx};
use crate::domain::ProviderId;
use crate::store::RunId;
use crate::store::contract::{Claim, Commit, CrawlStore};
use crate::store::{Asked, ClaimedLookup, Completion, Result, RunEnd, RunInfo, routing, sql};

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

impl CrawlStore for PgStore {
    async fn begin_run(&self, info: &RunInfo, now_ms: i64) -> Result<RunId> {
        self.on_conn(async |c| sql::begin_run(c, info, now_ms).await)
            .await
    }

    async fn complete(&self, commit: &Commit<'_>, completions: &mut [Completion]) -> Result<u64> {
        self.commit(commit, completions).await
    }

    async fn last_stop_reason(&self) -> Result<Option<String>> {
        self.on_conn(async |c| sql::last_stop_reason(c).await).await
    }

    async fn end_run(&self, run_id: RunId, end: &RunEnd, now_ms: i64) -> Result<()> {
        in_tx!(self, tx => sql::end_run(&mut *tx, run_id, end, now_ms).await)
    }

    /// Leases up to `n` due lookups in one statement (`CLAIM_SQL`): rows another run is
    /// claiming at the same moment are skipped, not waited for.
    async fn claim(&self, claim: &Claim) -> Result<Vec<ClaimedLookup>> {
        let rows = sqlx::query_as(CLAIM_SQL)
            .bind(claim.run_id)
            .bind(claim.lease_until_ms)
            .bind(claim.now_ms)
            .bind(i64::from(claim.max))
            .bind(claim.provider.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(sql::claimed(rows))
    }

    async fn ensure_lookups(
        &self,
        asked: &[Asked],
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
            for (i, a) in asked.iter().enumerate() {
                if !fill_missing || i == 0 {
                    made += routing::every_job(&mut *tx, a, now_ms).await?;
                    continue;
                }
                let jobs = routing::after_misses(&mut *tx, a, &asked[..i], now_ms).await?;
                made += jobs.len() as u64;
                derive_jobs(&mut tx, &jobs, now_ms).await?;
            }
            Ok(made)
        })
    }

    async fn recover_leases(
        &self,
        me: RunId,
        now_ms: i64,
        is_alive: &(dyn Fn(&RunInfo) -> bool + Sync),
    ) -> Result<u64> {
        let needed = {
            let mut conn = self.conn().await?;
            sql::recovery_needed(&mut *conn, me, now_ms, is_alive).await
        };
        let Some(dead) = needed.map_err(|e| self.err(e))? else {
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

    async fn heartbeat(&self, run_id: RunId, now_ms: i64, lease_until_ms: i64) -> Result<()> {
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

    async fn next_due_at(&self, provider: ProviderId, me: RunId) -> Result<Option<i64>> {
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
}

/// Recomputes the state, attempts and last error of `jobs` from their lookups, the job rows
/// locked first.
pub(super) async fn derive_jobs(
    tx: &mut Tx,
    jobs: &[i64],
    now_ms: i64,
) -> std::result::Result<(), sqlx::Error> {
    lock_jobs(tx, jobs).await?;
    derive_locked(tx, jobs, now_ms).await
}

/// Locks the rows of `jobs` in id order, so two transactions never wait on each other in a
/// cycle, and a second one reads the first's committed lookups once it has the lock.
pub(super) async fn lock_jobs(tx: &mut Tx, jobs: &[i64]) -> std::result::Result<(), sqlx::Error> {
    if !jobs.is_empty() {
        sqlx::query("SELECT id FROM jobs WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE")
            .bind(jobs)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// [`derive_jobs`] for rows the transaction has locked already.
pub(super) async fn derive_locked(
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
