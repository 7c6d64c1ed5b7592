/*!
PostgreSQL's [`LoadStore`]: a load's batches through `COPY` into temporary tables, its
summary, and `requeue`.
*/

use sqlx::postgres::PgConnection;

use super::crawl::derive_jobs;
use super::{LOAD_LOCK, PgStore};
use crate::store::contract::LoadStore;
use crate::store::sql::{self, text};
use crate::store::{LoadBatch, LoadRecord, RequeueFilter, Result};

impl LoadStore for PgStore {
    async fn record_load(&self, load: &LoadRecord, now_ms: i64) -> Result<()> {
        self.on_conn(async |c| sql::record_load(c, load, now_ms).await)
            .await
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
