/*!
SQLite's [`CrawlStore`]: runs, lookups, claims and leases. Every write goes through the one
writer connection in a `BEGIN IMMEDIATE` transaction; reads of a lane's due times and counts
use the read pool.
*/

use sqlx::Sqlite;

use super::{SqliteStore, json_rows};
use crate::domain::ProviderId;
use crate::store::RunId;
use crate::store::contract::{Claim, Commit, CrawlStore};
use crate::store::{Asked, ClaimedLookup, Completion, Result, RunEnd, RunInfo, routing, sql};

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

/// A job's state from its lookups (two anonymous parameters, in this order: now, a JSON array
/// of job ids): done if any provider found the book, then in progress, pending, failed; not
/// found when every lookup says so.
pub(super) const DERIVE_JOBS_SQL: &str = "UPDATE jobs SET state = d.state, attempts = d.attempts,
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

impl CrawlStore for SqliteStore {
    async fn begin_run(&self, info: &RunInfo, now_ms: i64) -> Result<RunId> {
        self.write(async |c| sql::begin_run(c, info, now_ms).await)
            .await
    }

    async fn complete(&self, commit: &Commit<'_>, completions: &mut [Completion]) -> Result<u64> {
        self.commit(commit, completions).await
    }

    async fn last_stop_reason(&self) -> Result<Option<String>> {
        self.read(async |c| sql::last_stop_reason(c).await).await
    }

    async fn end_run(&self, run_id: RunId, end: &RunEnd, now_ms: i64) -> Result<()> {
        self.write(async |c| sql::end_run(c, run_id, end, now_ms).await)
            .await
    }

    /// Chooses and leases in one write transaction: the choice comes back as one JSON row and
    /// one UPDATE leases it. (One `UPDATE ... RETURNING` sent its rows one at a time from
    /// sqlx's SQLite thread, each a wake-up of this one and a contended channel lock: about
    /// two futex calls per claimed lookup.)
    async fn claim(&self, claim: &Claim) -> Result<Vec<ClaimedLookup>> {
        let Claim {
            run_id,
            provider,
            max: n,
            now_ms,
            lease_until_ms,
        } = *claim;
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

    async fn ensure_lookups(
        &self,
        asked: &[Asked],
        fill_missing: bool,
        now_ms: i64,
    ) -> Result<u64> {
        let mut tx = self.begin_immediate().await?;
        let mut made = 0;
        for (i, a) in asked.iter().enumerate() {
            if !fill_missing || i == 0 {
                made += routing::every_job(&mut *tx, a, now_ms)
                    .await
                    .map_err(|e| self.err(e))?;
                continue;
            }
            let jobs = routing::after_misses(&mut *tx, a, &asked[..i], now_ms)
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
        me: RunId,
        now_ms: i64,
        is_alive: &(dyn Fn(&RunInfo) -> bool + Sync),
    ) -> Result<u64> {
        let needed = {
            let mut conn = self.reader().await?;
            sql::recovery_needed(&mut *conn, me, now_ms, is_alive).await
        };
        let Some(dead) = needed.map_err(|e| self.err(e))? else {
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

    async fn heartbeat(&self, run_id: RunId, now_ms: i64, lease_until_ms: i64) -> Result<()> {
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

    async fn next_due_at(&self, provider: ProviderId, me: RunId) -> Result<Option<i64>> {
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
}

/// Recomputes the state, attempts and last error of `jobs` from their lookups.
pub(super) async fn derive_jobs(
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
