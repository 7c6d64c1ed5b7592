/*!
SQLite's [`ReadStore`]: the status from each table's partial indexes (no pass over the
tables), the report's overview, records and rejected lines streamed. Reads use the pool,
never the writer.
*/

use std::sync::LazyLock;

use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use sqlx::Row as _;

use super::SqliteStore;
use crate::store::contract::ReadStore;
use crate::store::overview::{self, OverviewSql};
use crate::store::routing;
use crate::store::sql::{self, RECORD_SELECT};
use crate::store::{
    Eta, JobState, Overview, ProviderRecord, Record, RejectGroup, RejectedLine, Result, Status,
};

/// Records of the states in a JSON array (`?1`), in load order.
static RECORDS_BY_STATE_SQL: LazyLock<String> = LazyLock::new(|| {
    format!("{RECORD_SELECT} WHERE j.state IN (SELECT value FROM json_each(?1)) ORDER BY j.id")
});

impl ReadStore for SqliteStore {
    async fn status(&self, now_ms: i64, quota_day: &str) -> Result<Status> {
        let mut conn = self.reader().await?;
        status_on(&mut conn, now_ms, quota_day, true)
            .await
            .map_err(|e| self.err(e))
    }

    async fn record(&self, isbn13: &str) -> Result<Option<Record>> {
        self.read(async |c| sql::record(c, isbn13).await).await
    }

    async fn provider_records(&self, isbn13: &str) -> Result<Vec<ProviderRecord>> {
        self.read(async |c| sql::provider_records(c, isbn13).await)
            .await
    }

    async fn reject_groups(&self, examples: u32) -> Result<Vec<RejectGroup>> {
        let mut conn = self.reader().await?;
        let counts = sql::reject_counts(&mut *conn)
            .await
            .map_err(|e| self.err(e))?;
        sql::reject_groups(&mut *conn, &counts, examples)
            .await
            .map_err(|e| self.err(e))
    }

    fn rejected_lines(&self) -> BoxStream<'_, Result<RejectedLine>> {
        sqlx::query_as(sql::REJECTED_LINES_SQL)
            .fetch(&self.pool)
            .map_err(|e| self.err(e))
            .boxed()
    }

    async fn overview(&self, now_ms: i64, quota_day: &str) -> Result<Overview> {
        let mut conn = self.reader().await?;
        // Aggregates over a million rows sort a lot: let SQLite spill to temporary files
        // instead of holding the sorts in memory (this connection only, and only for this).
        sqlx::query("PRAGMA temp_store = FILE")
            .execute(&mut *conn)
            .await
            .map_err(|e| self.err(e))?;
        // The page does not show what is due now: spare the probe of every open job.
        let overview = match status_on(&mut conn, now_ms, quota_day, false).await {
            Ok(status) => overview::overview(&mut *conn, status, &OVERVIEW_SQL).await,
            Err(e) => Err(e),
        };
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
    status.rejected_lines = sql::reject_counts(&mut *conn).await?.into_iter().collect();
    let requests: Option<i64> = sqlx::query_scalar("SELECT requests FROM quota_days WHERE day = ?")
        .bind(quota_day)
        .fetch_optional(&mut *conn)
        .await?;
    status.requests_today = requests.unwrap_or(0) as u64;
    // Each state of each provider from its own partial index: no pass over the table.
    for p in crate::providers::registry::ids() {
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
    let unasked = routing::unasked(&mut *conn).await?;
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
const OVERVIEW_SQL: OverviewSql = OverviewSql {
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
