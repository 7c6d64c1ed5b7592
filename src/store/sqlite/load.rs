/*!
SQLite's [`LoadStore`]: a load's batches in multi-row inserts, its summary, and `requeue`.
*/

use sqlx::{QueryBuilder, Sqlite};

use super::SqliteStore;
use super::crawl::derive_jobs;
use crate::store::contract::LoadStore;
use crate::store::{LoadBatch, LoadRecord, RequeueFilter, Result, sql};

/// The page cache of a connection that loads: 20 MiB (negative means KiB to SQLite), so a load
/// batch does not spill to the WAL mid-transaction, and a load of any length stays under the
/// 64 MB bound (larger caches broke it; see docs/performance.md). Other work keeps SQLite's
/// 2 MiB default: crawls touch few pages, and exports stream.
const LOAD_CACHE_SIZE: &str = "PRAGMA cache_size = -20480";

/// SQLite allows 32766 bound parameters per statement; stay well below it.
const ROWS_PER_INSERT: usize = 1000;

impl LoadStore for SqliteStore {
    async fn record_load(&self, load: &LoadRecord, now_ms: i64) -> Result<()> {
        self.write(async |c| sql::record_load(c, load, now_ms).await)
            .await
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
}
