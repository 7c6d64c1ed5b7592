/*!
PostgreSQL's [`ReadStore`]: the status, the report's overview, records and rejected lines
streamed.
*/

use std::sync::LazyLock;

use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use sqlx::postgres::PgConnection;

use super::PgStore;
use crate::store::contract::ReadStore;
use crate::store::overview::{self, OverviewSql};
use crate::store::routing;
use crate::store::sql::{self, RECORD_SELECT};
use crate::store::{
    JobState, Overview, ProviderRecord, Record, RejectGroup, RejectedLine, Result, Status,
};

static RECORDS_BY_STATE_SQL: LazyLock<String> =
    LazyLock::new(|| format!("{RECORD_SELECT} WHERE j.state = ANY($1) ORDER BY j.id"));

impl ReadStore for PgStore {
    async fn status(&self, now_ms: i64, quota_day: &str) -> Result<Status> {
        let mut conn = self.conn().await?;
        status_on(&mut conn, now_ms, quota_day, true)
            .await
            .map_err(|e| self.err(e))
    }

    async fn record(&self, isbn13: &str) -> Result<Option<Record>> {
        self.on_conn(async |c| sql::record(c, isbn13).await).await
    }

    async fn provider_records(&self, isbn13: &str) -> Result<Vec<ProviderRecord>> {
        self.on_conn(async |c| sql::provider_records(c, isbn13).await)
            .await
    }

    async fn reject_groups(&self, examples: u32) -> Result<Vec<RejectGroup>> {
        let mut conn = self.conn().await?;
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
        let mut conn = self.conn().await?;
        // The page does not show what is due now: spare the probe of every open job.
        let status = status_on(&mut conn, now_ms, quota_day, false)
            .await
            .map_err(|e| self.err(e))?;
        overview::overview(&mut *conn, status, &OVERVIEW_SQL)
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
    status.rejected_lines = sql::reject_counts(&mut *conn).await?.into_iter().collect();
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
    for p in crate::providers::registry::ids() {
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
    let unasked = routing::unasked(&mut *conn).await?;
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
const OVERVIEW_SQL: OverviewSql = OverviewSql {
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
