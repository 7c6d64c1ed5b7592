/*!
What the two backends share: the merge of provider records (generated for either dialect from
one description), what a result does to its lookup, the tally of a commit for the `runs` row,
and the folds that turn aggregate rows into the report's figures. Each backend keeps its own
statements; the rules they encode live here once.
*/

use std::collections::HashMap;
use std::sync::LazyLock;

use super::{
    Book, ClaimedLookup, Completion, Eta, JobResult, JobState, RejectGroup, RejectedLine, RunInfo,
    Status,
};
use crate::domain::ProviderId;
use crate::isbn::Isbn13;

/// The SQL dialect a statement is generated for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dialect {
    Sqlite,
    Postgres,
}

/// The fields merged from providers' records into `books`, each from the first provider (in
/// precedence order) that has it. `published_year` follows `published_date`.
pub(super) const MERGED: [&str; 12] = [
    "title",
    "subtitle",
    "authors",
    "publisher",
    "published_date",
    "description",
    "page_count",
    "categories",
    "language",
    "average_rating",
    "ratings_count",
    "thumbnail",
];

/// A job joined with its book, as [`super::Record`] reads it (both dialects).
pub(super) const RECORD_SELECT: &str = "SELECT j.isbn13, j.isbn10, j.state, j.attempts,
        j.next_attempt_at, j.last_error, j.source, j.source_line, j.source_ref, j.created_at,
        j.updated_at, b.openlibrary_key, b.provenance,
        b.volume_id, b.title, b.subtitle, b.authors, b.publisher, b.published_date,
        b.published_year, b.description, b.page_count, b.categories, b.language,
        b.average_rating, b.ratings_count, b.thumbnail, b.raw_json, b.fetched_at, b.run_id
    FROM jobs j LEFT JOIN books b ON b.isbn13 = j.isbn13";

/// One job with its book (`$1`: its ISBN-13). sqlx numbers `$N` parameters on SQLite too, so
/// the statements below are one text for both backends.
pub(super) static RECORD_BY_ISBN_SQL: LazyLock<String> =
    LazyLock::new(|| format!("{RECORD_SELECT} WHERE j.isbn13 = $1"));

/// The `Store` methods whose statements read the same in both dialects, written once: each
/// backend's `impl Store` expands them over its own `pool` and `err`.
macro_rules! shared_methods {
    () => {
        async fn status(
            &self,
            now_ms: i64,
            quota_day: &str,
        ) -> $crate::store::Result<$crate::store::Status> {
            let mut conn = self.pool.acquire().await.map_err(|e| self.err(e))?;
            status_on(&mut conn, now_ms, quota_day, true)
                .await
                .map_err(|e| self.err(e))
        }

        async fn record_load(
            &self,
            load: &$crate::store::LoadRecord,
            now_ms: i64,
        ) -> $crate::store::Result<()> {
            use $crate::store::sql::text;
            sqlx::query(
                "INSERT INTO loads (source, lines, valid, queued, rejected, read_as, problem,
                                    loaded_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(text(&load.source).as_ref())
            .bind(load.lines as i64)
            .bind(load.valid as i64)
            .bind(load.queued as i64)
            .bind(load.rejected as i64)
            .bind(&load.read_as)
            .bind(load.problem.as_deref().map(text))
            .bind(now_ms)
            .execute(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
            Ok(())
        }

        async fn record(
            &self,
            isbn13: &str,
        ) -> $crate::store::Result<Option<$crate::store::Record>> {
            sqlx::query_as($crate::store::sql::RECORD_BY_ISBN_SQL.as_str())
                .bind(isbn13)
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| self.err(e))
        }

        fn rejected_lines(
            &self,
        ) -> futures_util::stream::BoxStream<'_, $crate::store::Result<$crate::store::RejectedLine>>
        {
            use futures_util::{StreamExt, TryStreamExt};
            sqlx::query_as("SELECT source, line, raw, reason FROM rejected_lines ORDER BY id")
                .fetch(&self.pool)
                .map_err(|e| self.err(e))
                .boxed()
        }

        async fn provider_records(
            &self,
            isbn13: &str,
        ) -> $crate::store::Result<Vec<$crate::store::ProviderRecord>> {
            sqlx::query_as(
                "SELECT l.provider, l.state, l.attempts, l.last_error, p.record_id, p.title,
                        p.subtitle, p.authors, p.publisher, p.published_date, p.page_count,
                        p.categories, p.language, p.description, p.thumbnail, p.raw_json,
                        p.fetched_at
                 FROM jobs j
                 JOIN lookups l ON l.job_id = j.id
                 LEFT JOIN provider_books p ON p.isbn13 = l.isbn13 AND p.provider = l.provider
                 WHERE j.isbn13 = $1 ORDER BY l.provider",
            )
            .bind(isbn13)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err(e))
        }

        async fn begin_run(
            &self,
            info: &$crate::store::RunInfo,
            now_ms: i64,
        ) -> $crate::store::Result<i64> {
            sqlx::query_scalar(
                "INSERT INTO runs (command, host, host_id, pid, pid_start, started_at,
                                   heartbeat_at, daily_budget)
                 VALUES ($1, $2, $3, $4, $5, $6, $6, $7) RETURNING id",
            )
            .bind(&info.command)
            .bind(&info.host)
            .bind(&info.host_id)
            .bind(i64::from(info.pid))
            .bind(&info.pid_start)
            .bind(now_ms)
            .bind(info.daily_budget.map(|b| b as i64))
            .fetch_one(&self.pool)
            .await
            .map_err(|e| self.err(e))
        }

        async fn quota_day(&self, day: &str) -> $crate::store::Result<$crate::store::QuotaDay> {
            let row: Option<(i64, Option<i64>)> =
                sqlx::query_as("SELECT requests, exhausted_at FROM quota_days WHERE day = $1")
                    .bind(day)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(|e| self.err(e))?;
            Ok(row
                .map(|(requests, exhausted_at)| $crate::store::QuotaDay {
                    requests: requests as u64,
                    exhausted_at,
                })
                .unwrap_or_default())
        }

        async fn mark_quota_exhausted(
            &self,
            key_id: &str,
            day: &str,
            at_ms: i64,
            resets_at_ms: i64,
        ) -> $crate::store::Result<()> {
            for sql in [
                "INSERT INTO quota_days (day, requests, exhausted_at, resets_at)
                 VALUES ($1, 0, $2, $3)
                 ON CONFLICT (day) DO UPDATE SET exhausted_at = $2, resets_at = $3",
                "INSERT INTO key_days (day, key_id, exhausted_at) VALUES ($1, $4, $2)
                 ON CONFLICT (key_id, day) DO UPDATE SET exhausted_at = $2",
            ] {
                sqlx::query(sql)
                    .bind(day)
                    .bind(at_ms)
                    .bind(resets_at_ms)
                    .bind(key_id)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| self.err(e))?;
            }
            Ok(())
        }

        async fn release_budget(
            &self,
            key_id: &str,
            day: &str,
            units: u64,
        ) -> $crate::store::Result<()> {
            sqlx::query(
                "UPDATE key_days
                 SET reserved = CASE WHEN reserved > $1 THEN reserved - $1 ELSE 0 END
                 WHERE day = $2 AND key_id = $3",
            )
            .bind(units as i64)
            .bind(day)
            .bind(key_id)
            .execute(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
            Ok(())
        }

        async fn clear_quota_stop(&self, key_id: &str, day: &str) -> $crate::store::Result<()> {
            for sql in [
                "UPDATE quota_days SET exhausted_at = NULL, resets_at = NULL WHERE day = $1",
                "UPDATE key_days SET exhausted_at = NULL WHERE day = $1 AND key_id = $2",
            ] {
                sqlx::query(sql)
                    .bind(day)
                    .bind(key_id)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| self.err(e))?;
            }
            Ok(())
        }

        async fn last_stop_reason(&self) -> $crate::store::Result<Option<String>> {
            let reason: Option<Option<String>> = sqlx::query_scalar(
                "SELECT stop_reason FROM runs
                 WHERE ended_at IS NOT NULL AND stop_reason != 'killed'
                 ORDER BY ended_at DESC, id DESC LIMIT 1",
            )
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
            Ok(reason.flatten())
        }

        async fn reject_groups(
            &self,
            examples: u32,
        ) -> $crate::store::Result<Vec<$crate::store::RejectGroup>> {
            let mut conn = self.pool.acquire().await.map_err(|e| self.err(e))?;
            let counts = reject_counts(&mut conn).await.map_err(|e| self.err(e))?;
            reject_groups_on(&mut conn, &counts, examples)
                .await
                .map_err(|e| self.err(e))
        }

        async fn end_run(
            &self,
            run_id: i64,
            end: &$crate::store::RunEnd,
            now_ms: i64,
        ) -> $crate::store::Result<()> {
            sqlx::query("UPDATE runs SET ended_at = $1, stop_reason = $2 WHERE id = $3")
                .bind(now_ms)
                .bind(&end.stop_reason)
                .bind(run_id)
                .execute(&self.pool)
                .await
                .map_err(|e| self.err(e))?;
            for (provider, size) in &end.batch_sizes {
                sqlx::query(
                    "INSERT INTO run_providers (run_id, provider, batch_size) VALUES ($1, $2, $3)
                     ON CONFLICT (run_id, provider) DO UPDATE SET batch_size = excluded.batch_size",
                )
                .bind(run_id)
                .bind(provider.as_str())
                .bind(*size as i64)
                .execute(&self.pool)
                .await
                .map_err(|e| self.err(e))?;
            }
            Ok(())
        }
    };
}
pub(super) use shared_methods;

/// `reject_counts(conn)`: rejected lines per reason (from the reason index); and
/// `reject_groups_on(conn, counts, examples)`: the reasons, most first, each with its first
/// `examples` lines. For connections of type `$conn`.
macro_rules! reject_fns {
    ($conn:ty) => {
        async fn reject_counts(
            conn: &mut $conn,
        ) -> std::result::Result<Vec<(String, u64)>, sqlx::Error> {
            let rows: Vec<(String, i64)> =
                sqlx::query_as("SELECT reason, count(*) FROM rejected_lines GROUP BY reason")
                    .fetch_all(&mut *conn)
                    .await?;
            Ok(rows.into_iter().map(|(r, n)| (r, n as u64)).collect())
        }

        async fn reject_groups_on(
            conn: &mut $conn,
            counts: &[(String, u64)],
            examples: u32,
        ) -> std::result::Result<Vec<$crate::store::RejectGroup>, sqlx::Error> {
            let firsts: Vec<$crate::store::RejectedLine> = sqlx::query_as(
                "SELECT source, line, raw, reason FROM (
                     SELECT *, row_number() OVER (PARTITION BY reason ORDER BY id) AS n
                     FROM rejected_lines) r
                 WHERE n <= $1 ORDER BY id",
            )
            .bind(i64::from(examples))
            .fetch_all(&mut *conn)
            .await?;
            Ok($crate::store::sql::reject_groups(counts, firsts))
        }
    };
}
pub(super) use reject_fns;

/// The report's statements that differ between the dialects; the rest of the overview is
/// [`overview_fn!`]'s, once.
pub(super) struct OverviewSql {
    pub completeness_of_provider: &'static str,
    pub failures: &'static str,
    /// `(year, books)`, ascending.
    pub years: &'static str,
    /// The top languages, publishers and categories: `(name, books)`, most first.
    pub top: [&'static str; 3],
    pub recent: &'static str,
}

/// `overview_on(conn, now_ms, quota_day)`: everything the report shows, on one connection of
/// type `$conn`, with the backend's `status_on` and `reject_groups_on` and its [`OverviewSql`].
macro_rules! overview_fn {
    ($conn:ty, $sql:expr) => {
        async fn overview_on(
            conn: &mut $conn,
            now_ms: i64,
            quota_day: &str,
        ) -> std::result::Result<$crate::store::Overview, sqlx::Error> {
            use $crate::store::{
                Completeness, FailureClass, ProviderCounts, RecentBook, RunRow, SourceCounts,
            };
            // The page does not show what is due now: spare the probe of every open job.
            let status = status_on(&mut *conn, now_ms, quota_day, false).await?;
            let sources: Vec<SourceCounts> = sqlx::query_as(
                "SELECT source, CAST(sum(lines) AS BIGINT) AS lines,
                        CAST(sum(queued) AS BIGINT) AS queued,
                        CAST(sum(rejected) AS BIGINT) AS rejected,
                        CAST(sum(found) AS BIGINT) AS found,
                        CAST(sum(not_found) AS BIGINT) AS not_found,
                        CAST(sum(failed) AS BIGINT) AS failed, CAST(sum(open) AS BIGINT) AS open
                 FROM (SELECT coalesce(source, '') AS source, 0 AS lines, 1 AS queued,
                              0 AS rejected,
                              CASE WHEN state = 'done' THEN 1 ELSE 0 END AS found,
                              CASE WHEN state = 'not_found' THEN 1 ELSE 0 END AS not_found,
                              CASE WHEN state = 'failed' THEN 1 ELSE 0 END AS failed,
                              CASE WHEN state IN ('pending', 'in_progress') THEN 1 ELSE 0 END
                                  AS open
                       FROM jobs
                       UNION ALL
                       SELECT source, 0, 0, 1, 0, 0, 0, 0 FROM rejected_lines
                       UNION ALL
                       SELECT source, lines, 0, 0, 0, 0, 0, 0 FROM loads) s
                 GROUP BY source ORDER BY source",
            )
            .fetch_all(&mut *conn)
            .await?;
            // Books only one provider has: one ordered pass over provider_books' key.
            let only: Vec<(String, i64)> = sqlx::query_as(
                "SELECT provider, count(*) FROM (
                     SELECT min(provider) AS provider, count(*) AS n FROM provider_books
                     GROUP BY isbn13) o
                 WHERE n = 1 GROUP BY provider",
            )
            .fetch_all(&mut *conn)
            .await?;
            let mut providers = Vec::new();
            for (provider, lookups) in &status.lookups {
                let completeness: Completeness = sqlx::query_as($sql.completeness_of_provider)
                    .bind(provider)
                    .fetch_one(&mut *conn)
                    .await?;
                providers.push(ProviderCounts {
                    provider: provider.to_string(),
                    lookups: lookups.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
                    only_here: only
                        .iter()
                        .find(|(p, _)| p == provider)
                        .map_or(0, |(_, n)| *n as u64),
                    completeness,
                });
            }
            let merged: Completeness = sqlx::query_as(
                "SELECT count(*) AS records, count(description) AS description,
                        count(page_count) AS page_count, count(thumbnail) AS cover,
                        count(authors) AS authors, count(publisher) AS publisher,
                        count(published_year) AS year
                 FROM books",
            )
            .fetch_one(&mut *conn)
            .await?;
            let failures: Vec<FailureClass> =
                sqlx::query_as($sql.failures).fetch_all(&mut *conn).await?;
            let quota_days: Vec<(String, i64)> =
                sqlx::query_as("SELECT day, requests FROM quota_days ORDER BY day")
                    .fetch_all(&mut *conn)
                    .await?;
            let runs: Vec<RunRow> = sqlx::query_as(
                "SELECT id, command, started_at, ended_at, stop_reason, requests, done,
                        books_per_request
                 FROM runs ORDER BY id DESC LIMIT 20",
            )
            .fetch_all(&mut *conn)
            .await?;
            let years: Vec<(i64, i64)> = sqlx::query_as($sql.years).fetch_all(&mut *conn).await?;
            let mut top = Vec::new();
            for q in $sql.top {
                let rows: Vec<(String, i64)> = sqlx::query_as(q).fetch_all(&mut *conn).await?;
                top.push(rows.into_iter().map(|(k, n)| (k, n as u64)).collect::<Vec<_>>());
            }
            let recent: Vec<RecentBook> =
                sqlx::query_as($sql.recent).fetch_all(&mut *conn).await?;
            let counts: Vec<(String, u64)> = status
                .rejected_lines
                .iter()
                .map(|(r, n)| (r.clone(), *n))
                .collect();
            let rejects = reject_groups_on(&mut *conn, &counts, 2).await?;
            let [languages, publishers, categories] = <[Vec<(String, u64)>; 3]>::try_from(top)
                .unwrap_or_default();
            Ok($crate::store::Overview {
                status,
                sources,
                providers,
                merged,
                rejects,
                failures,
                quota_days: quota_days.into_iter().map(|(d, n)| (d, n as u64)).collect(),
                runs,
                decades: $crate::store::sql::decades(years),
                languages,
                publishers,
                categories,
                recent,
            })
        }
    };
}
pub(super) use overview_fn;

/// Claimed rows `(lookup id, isbn13, attempts)` as jobs, in id order. The job table only ever
/// holds ISBNs that passed `isbn::parse`; a row edited by hand into something else is skipped
/// rather than trusted.
pub(super) fn claimed(rows: Vec<(i64, String, i64)>) -> Vec<ClaimedLookup> {
    let mut jobs: Vec<ClaimedLookup> = rows
        .into_iter()
        .filter_map(|(id, isbn13, attempts)| {
            let Ok(isbn) = isbn13.parse::<Isbn13>() else {
                tracing::warn!(isbn13, "job row holds an invalid ISBN; skipped");
                return None;
            };
            Some(ClaimedLookup {
                id,
                isbn,
                attempts: attempts as u32,
            })
        })
        .collect();
    jobs.sort_by_key(|j| j.id);
    jobs
}

/// A reservation of budget units (`$1` day, `$2` key id, `$3` units granted): make the key's
/// day, read what it has reserved and whether its quota stopped, add the grant. The backend
/// runs them in one transaction that holds the row (SQLite's write lock; PostgreSQL adds
/// `FOR UPDATE` to the read).
pub(super) const RESERVE_SQL: [&str; 3] = [
    "INSERT INTO key_days (day, key_id) VALUES ($1, $2) ON CONFLICT (key_id, day) DO NOTHING",
    "SELECT reserved, exhausted_at FROM key_days WHERE day = $1 AND key_id = $2",
    "UPDATE key_days SET reserved = reserved + $3 WHERE day = $1 AND key_id = $2",
];

/// The runs not ended, other than `$1`: who might still hold leases.
pub(super) const RUNNING_SQL: &str = "SELECT id, command, host, pid, pid_start, host_id FROM runs
    WHERE ended_at IS NULL AND id != $1";

/// Whether any lease is stranded (`$1`: now): run out, or held by a run that has ended. When
/// none is and no run is dead, lease recovery writes nothing: it runs at every heartbeat and
/// whenever an idle lane wakes.
pub(super) const STRANDED_SQL: &str = "SELECT EXISTS (SELECT 1 FROM lookups
    WHERE state = 'in_progress'
      AND (lease_until < $1 OR lease_owner IN (SELECT id FROM runs WHERE ended_at IS NOT NULL)))";

/// What lease recovery must do before it writes anything, the same on both backends:
/// `Some(dead run ids)` (possibly empty when only stranded leases are left), or `None` when no
/// run is dead and no lease stranded. Expands in a `recover_leases` with `self.pool`/`err`.
macro_rules! recovery_needed {
    ($store:ident, $me:expr, $now_ms:expr, $is_alive:expr) => {{
        let runs: Vec<sql::RunningRow> = sqlx::query_as(sql::RUNNING_SQL)
            .bind($me)
            .fetch_all(&$store.pool)
            .await
            .map_err(|e| $store.err(e))?;
        let dead = sql::dead_runs(runs, $is_alive);
        let stranded: bool = sqlx::query_scalar(sql::STRANDED_SQL)
            .bind($now_ms)
            .fetch_one(&$store.pool)
            .await
            .map_err(|e| $store.err(e))?;
        (!dead.is_empty() || stranded).then_some(dead)
    }};
}
pub(super) use recovery_needed;

/// A row of [`RUNNING_SQL`].
pub(super) type RunningRow = (i64, String, String, i64, Option<String>, Option<String>);

/// The ids of the runs `is_alive` says are gone.
pub(super) fn dead_runs(
    runs: Vec<RunningRow>,
    is_alive: &(dyn Fn(&RunInfo) -> bool + Sync),
) -> Vec<i64> {
    runs.into_iter()
        .filter(|(_, command, host, pid, pid_start, host_id)| {
            !is_alive(&RunInfo {
                command: command.clone(),
                host: host.clone(),
                host_id: host_id.clone(),
                pid: *pid as u32,
                pid_start: pid_start.clone(),
                daily_budget: None,
            })
        })
        .map(|(id, ..)| id)
        .collect()
}

/// PostgreSQL text cannot hold NUL; SQLite's can. A NUL read from a file or an API becomes
/// U+FFFD rather than failing the whole batch (on either backend, so both store the same).
pub(super) fn text(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains('\0') {
        s.replace('\0', "\u{FFFD}").into()
    } else {
        s.into()
    }
}

/// Upserts into `books` the merged rows of the ISBNs in its one parameter (SQLite: a JSON
/// array, an anonymous `?` so the text can join others; PostgreSQL: a text array, `$1`), with
/// `precedence` deciding each field and `provenance` (compact JSON, the same text from both
/// backends) saying which provider gave it.
pub(super) fn merge_sql(precedence: &[ProviderId], dialect: Dialect) -> String {
    // Every provider takes part, those not named last: a record stored by another run counts.
    let precedence = &ProviderId::precedence(precedence);
    let alias = |p: ProviderId| format!("p_{}", p.as_str());
    let first_of = |field: &str, value: &dyn Fn(&str) -> String| {
        let arms: Vec<String> = precedence
            .iter()
            .map(|p| {
                format!(
                    "WHEN {a}.{field} IS NOT NULL THEN {}",
                    value(&alias(*p)),
                    a = alias(*p)
                )
            })
            .collect();
        format!("CASE {} END", arms.join(" "))
    };
    let mut columns = vec!["isbn13".to_string(), "isbn10".into()];
    let mut values = vec!["j.isbn13".to_string(), "j.isbn10".into()];
    // Each provider's record id in the column its spec names.
    for spec in crate::providers::registry::ALL {
        if let Some(column) = spec.record_column {
            columns.push(column.into());
            values.push(format!("{}.record_id", alias(spec.id)));
        }
    }
    let mut provenance = Vec::new();
    for field in MERGED {
        columns.push(field.into());
        values.push(first_of(field, &|a| format!("{a}.{field}")));
        // `'"title":"<provider>"'`, or NULL when no provider has the field.
        provenance.push(first_of(field, &|a| {
            format!("'\"{field}\":\"{}\"'", &a[2..])
        }));
    }
    columns.push("published_year".into());
    values.push(first_of("published_date", &|a| {
        format!("{a}.published_year")
    }));
    columns.push("raw_json".into());
    values.push(first_of("raw_json", &|a| format!("{a}.raw_json")));
    columns.push("provenance".into());
    // `{"title":"google",...}` in field order, fields no provider has left out (concat_ws
    // skips NULLs). Plain text: SQLite's json_patch(json_object(...)) cost about as much as
    // the rest of the merge.
    values.push(format!(
        "'{{' || concat_ws(',', {}) || '}}'",
        provenance.join(", ")
    ));
    columns.push("fetched_at".into());
    let fetched: Vec<String> = precedence
        .iter()
        .map(|p| format!("coalesce({}.fetched_at, 0)", alias(*p)))
        .collect();
    values.push(match dialect {
        Dialect::Sqlite => format!("max({}, 0)", fetched.join(", ")),
        Dialect::Postgres => format!("greatest({}, 0)", fetched.join(", ")),
    });
    columns.push("run_id".into());
    let runs: Vec<String> = precedence
        .iter()
        .map(|p| format!("{}.run_id", alias(*p)))
        .collect();
    values.push(format!("coalesce({})", runs.join(", ")));
    let joins: Vec<String> = precedence
        .iter()
        .map(|p| {
            format!(
                "LEFT JOIN provider_books {a} ON {a}.isbn13 = j.isbn13 AND {a}.provider = '{}'",
                p.as_str(),
                a = alias(*p)
            )
        })
        .collect();
    let any: Vec<String> = precedence
        .iter()
        .map(|p| format!("{}.isbn13 IS NOT NULL", alias(*p)))
        .collect();
    // PostgreSQL walks the array (`unnest`) into the jobs' unique index: a plan that is good
    // for 1 ISBN and for 2,048, where `isbn13 = ANY($1)` got a generic plan that scanned.
    let (verb, from, which, upsert) = match dialect {
        Dialect::Sqlite => (
            "INSERT OR REPLACE",
            "jobs j",
            "j.isbn13 IN (SELECT value FROM json_each(?)) AND",
            String::new(),
        ),
        Dialect::Postgres => {
            let set: Vec<String> = columns
                .iter()
                .skip(1)
                .map(|c| format!("{c} = EXCLUDED.{c}"))
                .collect();
            (
                "INSERT",
                "unnest($1::text[]) AS x(isbn13) JOIN jobs j ON j.isbn13 = x.isbn13",
                "",
                format!(" ON CONFLICT (isbn13) DO UPDATE SET {}", set.join(", ")),
            )
        }
    };
    format!(
        "{verb} INTO books ({}) SELECT {} FROM {from} {} WHERE {which} ({}){upsert}",
        columns.join(", "),
        values.join(", "),
        joins.join(" "),
        any.join(" OR ")
    )
}

/// What a result does to its lookup: (state, next_attempt_at, last_error, refund attempt).
pub(super) fn job_change(result: &JobResult) -> (&'static str, Option<i64>, Option<&str>, bool) {
    match result {
        JobResult::Done(_) => (JobState::Done.as_str(), None, None, false),
        JobResult::NotFound { note } => (JobState::NotFound.as_str(), None, Some(note), false),
        JobResult::Retry { at, error, refund } => {
            (JobState::Pending.as_str(), Some(*at), Some(error), *refund)
        }
        JobResult::Failed { error } => (JobState::Failed.as_str(), None, Some(error), false),
        JobResult::GiveBack => (JobState::Pending.as_str(), None, None, true),
    }
}

/// What one `complete` adds to its run's row, the records to store, and the lookups to chain.
#[derive(Default)]
pub(super) struct Tally<'a> {
    pub requests: i64,
    /// Requests that spent a daily quota (the providers whose spec says so).
    pub quota_requests: i64,
    /// Per provider: requests, done, not found, failed (rows of `run_providers`).
    pub per_provider: Vec<(ProviderId, [i64; 4])>,
    pub done: i64,
    pub not_found: i64,
    pub failed: i64,
    pub retried: i64,
    pub given_back: i64,
    pub books: Vec<(ProviderId, &'a Book)>,
    /// `(job id, provider)`: lookups `--fill missing` makes next.
    pub chained: Vec<(i64, ProviderId)>,
}

impl<'a> Tally<'a> {
    fn count(&mut self, provider: ProviderId, column: usize, n: i64) {
        match self.per_provider.iter_mut().find(|(p, _)| *p == provider) {
            Some((_, figures)) => figures[column] += n,
            None => {
                let mut figures = [0; 4];
                figures[column] = n;
                self.per_provider.push((provider, figures));
            }
        }
    }

    /// [`Tally::per_provider`] as a JSON array of `[provider, requests, done, not_found,
    /// failed]`, one statement's worth for SQLite's `json_each`.
    pub fn per_provider_json(&self) -> String {
        let rows: Vec<serde_json::Value> = self
            .per_provider
            .iter()
            .map(|(p, f)| serde_json::json!([p.as_str(), f[0], f[1], f[2], f[3]]))
            .collect();
        serde_json::Value::Array(rows).to_string()
    }

    /// Counts every completion's requests (sent whether or not the lease held), and the
    /// outcomes of those `applied` (lookup id → job id).
    pub fn of(completions: &'a [Completion], applied: &HashMap<i64, i64>) -> Tally<'a> {
        let mut t = Tally::default();
        for c in completions {
            t.requests += i64::from(c.requests);
            if crate::providers::registry::spec(c.provider).daily_quota {
                t.quota_requests += i64::from(c.requests);
            }
            let column = match &c.result {
                _ if !applied.contains_key(&c.lookup_id) => None,
                JobResult::Done(_) => Some(1),
                JobResult::NotFound { .. } => Some(2),
                JobResult::Failed { .. } => Some(3),
                _ => None,
            };
            t.count(c.provider, 0, i64::from(c.requests));
            if let Some(column) = column {
                t.count(c.provider, column, 1);
            }
            let Some(&job_id) = applied.get(&c.lookup_id) else {
                tracing::warn!(
                    lookup = c.lookup_id,
                    "lease lost before completion; result dropped"
                );
                continue;
            };
            match &c.result {
                JobResult::Done(book) => {
                    t.done += 1;
                    t.books.push((c.provider, book.as_ref()));
                }
                JobResult::NotFound { .. } => t.not_found += 1,
                JobResult::Retry { .. } => t.retried += 1,
                JobResult::Failed { .. } => t.failed += 1,
                JobResult::GiveBack => t.given_back += 1,
            }
            if let (Some(next), JobResult::NotFound { .. } | JobResult::Failed { .. }) =
                (c.then, &c.result)
            {
                t.chained.push((job_id, next));
            }
        }
        t
    }
}

/// Books per published year (ascending) summed into decades (the decade's first year).
pub(super) fn decades(years: Vec<(i64, i64)>) -> Vec<(i64, u64)> {
    let mut decades: Vec<(i64, u64)> = Vec::new();
    for (year, n) in years {
        let decade = year.div_euclid(10) * 10;
        match decades.last_mut() {
            Some((d, count)) if *d == decade => *count += n as u64,
            _ => decades.push((decade, n as u64)),
        }
    }
    decades
}

/// The reasons with their `counts`, most first, each with its first lines of `firsts`.
pub(super) fn reject_groups(
    counts: &[(String, u64)],
    firsts: Vec<RejectedLine>,
) -> Vec<RejectGroup> {
    let mut groups: Vec<RejectGroup> = counts
        .iter()
        .map(|(reason, count)| RejectGroup {
            reason: reason.clone(),
            count: *count,
            examples: Vec::new(),
        })
        .collect();
    for line in firsts {
        if let Some(g) = groups.iter_mut().find(|g| g.reason == line.reason) {
            g.examples.push(line);
        }
    }
    groups.sort_by(|a, b| b.count.cmp(&a.count).then(a.reason.cmp(&b.reason)));
    groups
}

/// Per provider, the jobs loaded since it last made a lookup for every job: the next crawl that
/// asks it makes theirs, so `status` counts them as its pending lookups. Only jobs past the
/// provider's mark are read (a range of the primary key), not the whole table.
pub(super) const UNASKED_SQL: &str = "SELECT m.provider, (SELECT count(*) FROM jobs j
         WHERE j.id > m.job_id AND NOT EXISTS (
             SELECT 1 FROM lookups l WHERE l.job_id = j.id AND l.provider = m.provider))
     FROM lookup_marks m";

/// Adds [`UNASKED_SQL`]'s counts to each provider's pending lookups.
pub(super) fn add_unasked(status: &mut Status, unasked: &[(String, i64)]) {
    for (provider, n) in unasked {
        let Some(p) = ProviderId::ALL.iter().find(|p| p.as_str() == provider) else {
            continue;
        };
        if *n <= 0 {
            continue;
        }
        let per = status
            .lookups
            .entry(p.as_str())
            .or_insert_with(|| JobState::ALL.iter().map(|st| (st.as_str(), 0)).collect());
        *per.entry(JobState::Pending.as_str()).or_insert(0) += *n as u64;
    }
}

/// The provider whose requests spend a daily quota (the ETA is its part), by its spec.
pub(super) fn quota_provider() -> &'static str {
    crate::providers::registry::ALL
        .iter()
        .find(|s| s.daily_quota)
        .map_or("", |s| s.id.as_str())
}

/// Quota days left for Google's part, from the books Google found and the requests it took
/// over the latest runs, and the latest `--daily-budget`.
pub(super) fn eta(
    status: &Status,
    done: Option<i64>,
    requests: Option<i64>,
    budget: Option<i64>,
) -> Option<Eta> {
    let open = match status.lookups.get(quota_provider()) {
        Some(g) => {
            g.get("pending").copied().unwrap_or(0) + g.get("in_progress").copied().unwrap_or(0)
        }
        // Never crawled: every open job will be asked of Google.
        None => status.jobs.get("pending").copied().unwrap_or(0),
    };
    let (done, requests) = (done?, requests?);
    if open == 0 || done <= 0 || requests <= 0 {
        return None;
    }
    let books_per_request = done as f64 / requests as f64;
    let daily_budget = budget.map_or(1000, |b| b.max(1) as u64);
    Some(Eta {
        google_open: open,
        books_per_request,
        daily_budget,
        default_budget: budget.is_none(),
        days: open as f64 / books_per_request / daily_budget as f64,
    })
}
