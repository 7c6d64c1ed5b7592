/*!
SQLite's `complete`: a crawl's commit in two round trips to sqlx's SQLite thread, whatever its
size. The texts take a few shapes (rows padded to a power of two) so each stays prepared.
*/

use crate::store::RunId;
use crate::store::contract::Commit;
use std::collections::HashMap;
use std::sync::LazyLock;

use sqlx::Sqlite;

use super::crawl::DERIVE_JOBS_SQL;
use super::{SqliteStore, json_rows};
use crate::domain::ProviderId;
use crate::store::merge::{Dialect, merge_sql};
use crate::store::tally::{Tally, job_change};
use crate::store::{Completion, JobResult, Result};

/// Which of the lookups in the first parameter (a JSON array of ids) the run in the second
/// still holds, as one JSON row `[[id, job_id], ...]`: those its results apply to.
const HELD_SQL: &str = "SELECT json_group_array(json_array(id, job_id)) FROM lookups
    WHERE id IN (SELECT value FROM json_each(?)) AND state = 'in_progress' AND lease_owner = ?";

/// The results of `rows` lookups (padded to a power of two with NULL rows, which match no
/// lookup, so the text takes one of nine shapes and stays prepared) on those the run still
/// holds. Parameters: now, then per row `(id, state, next_attempt_at, last_error, refund,
/// give_back)` as [`job_change`] says, then the run. `NOT INDEXED` keeps the lookups read by
/// id: SQLite otherwise may walk the run's leases (`lookups_leased`, hundreds with the claims
/// ahead) for each row.
fn results_sql(rows: usize) -> String {
    format!(
        "UPDATE lookups NOT INDEXED SET state = v.column2,
            next_attempt_at = coalesce(v.column3, lookups.next_attempt_at),
            last_error = CASE WHEN v.column6 THEN lookups.last_error ELSE v.column4 END,
            attempts = CASE WHEN v.column5 THEN max(lookups.attempts - 1, 0)
                            ELSE lookups.attempts END,
            lease_owner = NULL, lease_until = NULL, updated_at = ?
        FROM (VALUES {}) AS v
        WHERE lookups.id = v.column1 AND lookups.state = 'in_progress'
            AND lookups.lease_owner = ?",
        placeholder_rows(rows, RESULT_COLUMNS)
    )
}

/// Values a result row carries (see [`results_sql`]).
const RESULT_COLUMNS: usize = 6;

/// `(?, ?, ...), (...)`: `rows` rows of `columns` anonymous parameters.
fn placeholder_rows(rows: usize, columns: usize) -> String {
    let row = format!("({})", vec!["?"; columns].join(", "));
    vec![row; rows].join(", ")
}

/// The texts `make` gives for 1, 2, 4, ... [`MAX_ROWS`] rows, made once.
fn power_shapes(make: fn(usize) -> String) -> Vec<String> {
    (0..=MAX_ROWS.ilog2()).map(|k| make(1 << k)).collect()
}

/// The text for `rows` from `shapes` (made by `make`) when it is one of them: a power of two,
/// at most [`MAX_ROWS`], as the callers pad to; else made afresh.
fn shape(
    shapes: &'static [String],
    rows: usize,
    make: fn(usize) -> String,
) -> std::borrow::Cow<'static, str> {
    match shapes.get(rows.trailing_zeros() as usize) {
        Some(text) if rows.is_power_of_two() => text.as_str().into(),
        _ => make(rows).into(),
    }
}

static RESULTS_SQL: LazyLock<Vec<String>> = LazyLock::new(|| power_shapes(results_sql));
static RECORDS_SQL: LazyLock<Vec<String>> = LazyLock::new(|| power_shapes(held_and_records_sql));

/// The outcome of several `Arguments::add`s as one: they fail only for a value that cannot
/// be encoded.
fn added<const N: usize>(
    adds: [std::result::Result<(), sqlx::error::BoxDynError>; N],
) -> std::result::Result<(), sqlx::Error> {
    adds.into_iter()
        .try_for_each(|r| r)
        .map_err(sqlx::Error::Encode)
}

/// Adds NULLs for `rows` rows of `columns`: the padding of a power-of-two shape.
fn add_null_rows(
    args: &mut sqlx::sqlite::SqliteArguments<'_>,
    rows: usize,
    columns: usize,
) -> std::result::Result<(), sqlx::Error> {
    use sqlx::Arguments as _;
    for _ in 0..rows * columns {
        added([args.add(None::<i64>)])?;
    }
    Ok(())
}

/// [`results_sql`]'s parameters for `chunk`, padded to `rows`.
fn add_results<'q>(
    args: &mut sqlx::sqlite::SqliteArguments<'q>,
    chunk: &'q [Completion],
    rows: usize,
    run_id: RunId,
    now_ms: i64,
) -> std::result::Result<(), sqlx::Error> {
    use sqlx::Arguments as _;
    added([args.add(now_ms)])?;
    for c in chunk {
        let (state, next_at, error, refund) = job_change(&c.result);
        let give_back = matches!(c.result, JobResult::GiveBack);
        added([
            args.add(c.lookup_id),
            args.add(state),
            args.add(next_at),
            args.add(error),
            args.add(refund),
            args.add(give_back),
        ])?;
    }
    add_null_rows(args, rows - chunk.len(), RESULT_COLUMNS)?;
    added([args.add(run_id)])
}

/// What a commit does after its lookups' results (the same query, see `complete`): the merged
/// `books` rows of the ISBNs stored (a JSON array); the lookups `--fill missing` chains (now,
/// now, `[[job_id, provider], ...]`); the jobs' states (now, job ids); the day's Google
/// requests (day, count, count); the run's counters. Constant for a run, so it stays prepared.
fn commit_rest_sql(precedence: &[ProviderId]) -> String {
    format!(
        "{merge};
        INSERT OR IGNORE INTO lookups (job_id, isbn13, provider, created_at, updated_at)
            SELECT j.id, j.isbn13, c.value ->> 1, ?, ?
            FROM json_each(?) c JOIN jobs j ON j.id = c.value ->> 0;
        {DERIVE_JOBS_SQL};
        INSERT INTO quota_days (day, requests) SELECT ?, ? WHERE ? > 0
            ON CONFLICT (day) DO UPDATE SET requests = requests + excluded.requests;
        UPDATE runs SET requests = requests + ?, done = done + ?, not_found = not_found + ?,
            failed = failed + ?, retried = retried + ?, given_back = given_back + ?,
            heartbeat_at = ?
        WHERE id = ?;
        INSERT INTO run_providers (run_id, provider, requests, done, not_found, failed)
            SELECT ?, value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4
            FROM json_each(?) WHERE true
            ON CONFLICT (run_id, provider) DO UPDATE SET
                requests = requests + excluded.requests, done = done + excluded.done,
                not_found = not_found + excluded.not_found, failed = failed + excluded.failed",
        merge = merge_sql(precedence, Dialect::Sqlite),
    )
}

/// A commit's last query: the results of `rows` lookups ([`results_sql`]) and then
/// [`commit_rest_sql`]. Made once per precedence and shape (a run has one precedence, and ten
/// shapes at most): the merge's text alone is some hundred strings formatted.
fn commit_sql(precedence: &[ProviderId], rows: usize) -> std::sync::Arc<str> {
    type Texts = std::collections::HashMap<(Vec<ProviderId>, usize), std::sync::Arc<str>>;
    static TEXTS: LazyLock<std::sync::Mutex<Texts>> = LazyLock::new(Default::default);
    let make = || -> std::sync::Arc<str> {
        format!(
            "{};\n{}",
            shape(&RESULTS_SQL, rows, results_sql),
            commit_rest_sql(precedence)
        )
        .into()
    };
    // A poisoned lock holds only finished texts: take it back.
    let mut texts = TEXTS.lock().unwrap_or_else(|p| p.into_inner());
    texts
        .entry((precedence.to_vec(), rows))
        .or_insert_with(make)
        .clone()
}

impl SqliteStore {
    pub(super) async fn commit(
        &self,
        commit: &Commit<'_>,
        completions: &mut [Completion],
    ) -> Result<u64> {
        let Commit {
            run_id,
            precedence,
            quota_day,
            now_ms,
        } = *commit;
        let mut tx = self.begin_immediate().await?;
        let applied = held_and_stored(&mut tx, completions, run_id, now_ms)
            .await
            .map_err(|e| self.err(e))?;
        // From here the found books hold only their isbn13 (the rest went into the records).
        let completions = &*completions;
        let counts = Tally::of(completions, &applied);
        // The results and everything else in one round trip (sqlx runs every statement of a
        // query in one command; their parameters are anonymous and bound in order, as sqlx
        // binds the numbers a statement skips as anonymous ones and stops past the last
        // value): at a few dozen results a commit the trips cost more than the statements.
        let mut chunks = completions.chunks(MAX_ROWS);
        let last = chunks.next_back().unwrap_or_default();
        for chunk in chunks {
            let rows = chunk.len().next_power_of_two();
            let mut args = sqlx::sqlite::SqliteArguments::default();
            add_results(&mut args, chunk, rows, run_id, now_ms).map_err(|e| self.err(e))?;
            sqlx::query_with(&shape(&RESULTS_SQL, rows, results_sql), args)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err(e))?;
        }
        let rows = last.len().next_power_of_two();
        let sql = commit_sql(precedence, rows);
        let mut args = sqlx::sqlite::SqliteArguments::default();
        add_results(&mut args, last, rows, run_id, now_ms).map_err(|e| self.err(e))?;
        let jobs: Vec<i64> = applied.values().copied().collect();
        add_rest(&mut args, &counts, &jobs, run_id, quota_day, now_ms).map_err(|e| self.err(e))?;
        sqlx::query_with(&sql, args)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(applied.len() as u64)
    }
}

/// The lookups of `completions` the run still holds (lookup id → job id), read as one row
/// under the write lock, so the guarded UPDATEs after change exactly these; and the found
/// records stored. The read and the first records go in one round trip: the records are
/// guarded by the lease in SQL, so they need not wait for the read.
async fn held_and_stored(
    tx: &mut sqlx::Transaction<'static, Sqlite>,
    completions: &mut [Completion],
    run_id: RunId,
    now_ms: i64,
) -> std::result::Result<HashMap<i64, i64>, sqlx::Error> {
    let ids: Vec<i64> = completions.iter().map(|c| c.lookup_id).collect();
    let mut found: Vec<_> = completions
        .iter_mut()
        .filter_map(|c| match &mut c.result {
            JobResult::Done(book) => Some((c.lookup_id, c.provider, book.as_mut())),
            _ => None,
        })
        .collect();
    let mut chunks = found.chunks_mut(MAX_ROWS);
    let first = chunks.next().unwrap_or_default();
    let held = held_and_records(tx, &ids, run_id, first, now_ms).await?;
    for chunk in chunks {
        held_and_records(tx, &[], run_id, chunk, now_ms).await?;
    }
    Ok(json_rows::<(i64, i64)>(&held)?.into_iter().collect())
}

/// [`commit_rest_sql`]'s parameters, after the last chunk's results.
fn add_rest<'q>(
    args: &mut sqlx::sqlite::SqliteArguments<'q>,
    counts: &Tally<'q>,
    jobs: &[i64],
    run_id: RunId,
    quota_day: &'q str,
    now_ms: i64,
) -> std::result::Result<(), sqlx::Error> {
    use sqlx::Arguments as _;
    let isbns: Vec<&str> = counts
        .books
        .iter()
        .map(|(_, b)| b.isbn13.as_str())
        .collect();
    let pairs: Vec<(i64, &str)> = counts
        .chained
        .iter()
        .map(|(j, p)| (*j, p.as_str()))
        .collect();
    let json =
        |v: std::result::Result<String, serde_json::Error>| v.unwrap_or_else(|_| "[]".into());
    added([
        args.add(json(serde_json::to_string(&isbns))),
        args.add(now_ms),
        args.add(now_ms),
        args.add(json(serde_json::to_string(&pairs))),
        args.add(now_ms),
        args.add(json(serde_json::to_string(jobs))),
        args.add(quota_day),
        args.add(counts.quota_requests),
        args.add(counts.quota_requests),
        args.add(counts.requests),
        args.add(counts.done),
        args.add(counts.not_found),
        args.add(counts.failed),
        args.add(counts.retried),
        args.add(counts.given_back),
        args.add(now_ms),
        args.add(run_id),
        args.add(run_id),
        args.add(counts.per_provider_json()),
    ])
}

/// [`HELD_SQL`] for `ids`, then (when there are any) `records` (lookup id, provider, book)
/// stored as each provider's record, as one query: one round trip. A record is stored only
/// while its lookup is still this run's, the guard the lookup's own update has. Returns the
/// held lookups' JSON row. The books' texts but `isbn13` are moved into the query (sqlx
/// would copy borrowed ones for its SQLite thread).
async fn held_and_records(
    tx: &mut sqlx::Transaction<'static, Sqlite>,
    ids: &[i64],
    run_id: RunId,
    records: &mut [(i64, ProviderId, &mut crate::store::Book)],
    now_ms: i64,
) -> std::result::Result<String, sqlx::Error> {
    use sqlx::Arguments as _;
    let real = records.len();
    let padded = if real == 0 {
        0
    } else {
        real.next_power_of_two()
    };
    let sql = if padded == 0 {
        HELD_SQL.into()
    } else {
        shape(&RECORDS_SQL, padded, held_and_records_sql)
    };
    let mut args = sqlx::sqlite::SqliteArguments::default();
    added([
        args.add(serde_json::to_string(ids).unwrap_or_else(|_| "[]".into())),
        args.add(run_id),
    ])?;
    for (lookup_id, provider, b) in records.iter_mut() {
        added::<RECORD_COLUMNS>([
            args.add(*lookup_id),
            args.add(b.isbn13.as_str()),
            args.add(provider.as_str()),
            args.add(b.volume_id.take()),
            args.add(b.title.take()),
            args.add(b.subtitle.take()),
            args.add(b.authors.take()),
            args.add(b.publisher.take()),
            args.add(b.published_date.take()),
            args.add(b.published_year),
            args.add(b.description.take()),
            args.add(b.page_count),
            args.add(b.categories.take()),
            args.add(b.language.take()),
            args.add(b.average_rating),
            args.add(b.ratings_count),
            args.add(b.thumbnail.take()),
            args.add(b.ddc.take()),
            args.add(b.lcc.take()),
            args.add(b.lccn.take()),
            args.add(b.attribution.take()),
            args.add(std::mem::take(&mut b.raw_json)),
            args.add(now_ms),
            args.add(run_id),
        ])?;
    }
    add_null_rows(&mut args, padded - real, RECORD_COLUMNS)?;
    if padded > 0 {
        added([args.add(run_id)])?;
    }
    // `fetch_all`: a stream dropped after its first row would leave the INSERT unrun.
    let rows: Vec<String> = sqlx::query_scalar_with(&sql, args)
        .fetch_all(&mut **tx)
        .await?;
    rows.into_iter().next().ok_or(sqlx::Error::RowNotFound)
}

/// Values a record row carries: its lookup's id, then the `provider_books` columns.
const RECORD_COLUMNS: usize = 24;

/// The text of [`held_and_records`] for `rows` records (0: the read alone). Callers pad to a
/// power of two with NULL rows (which join no lookup), so the text takes one of ten shapes and
/// stays prepared: parsing a fresh statement for every batch size cost SQLite more than
/// running it.
fn held_and_records_sql(rows: usize) -> String {
    let mut sql = String::from(HELD_SQL);
    if rows == 0 {
        return sql;
    }
    sql.push_str(
        ";\nINSERT OR REPLACE INTO provider_books (isbn13, provider, record_id, title, subtitle,
            authors, publisher, published_date, published_year, description, page_count,
            categories, language, average_rating, ratings_count, thumbnail, ddc, lcc, lccn,
            attribution, raw_json, fetched_at, run_id)
        SELECT ",
    );
    let columns: Vec<String> = (2..=RECORD_COLUMNS)
        .map(|i| format!("v.column{i}"))
        .collect();
    sql.push_str(&columns.join(", "));
    sql.push_str(" FROM (VALUES ");
    sql.push_str(&placeholder_rows(rows, RECORD_COLUMNS));
    // The values drive the join (CROSS JOIN), and the lookup is read by id (NOT INDEXED), not
    // through the run's leases.
    sql.push_str(
        ") v CROSS JOIN lookups l NOT INDEXED
        WHERE l.id = v.column1 AND l.state = 'in_progress' AND l.lease_owner = ?",
    );
    sql
}

/// The most rows one statement's VALUES carries: a crawl's commit has at most 256 results.
const MAX_ROWS: usize = 256;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_take_ten_statement_shapes() {
        let shapes: std::collections::HashSet<String> = (0..=MAX_ROWS)
            .map(|n| held_and_records_sql(if n == 0 { 0 } else { n.next_power_of_two() }))
            .collect();
        assert_eq!(shapes.len(), 10);
        let one = held_and_records_sql(1);
        assert_eq!(one.matches('?').count(), 2 + RECORD_COLUMNS + 1);
        // The texts made once are the ones a size asks for; other sizes are made afresh.
        assert_eq!(shape(&RESULTS_SQL, 64, results_sql), results_sql(64));
        assert_eq!(shape(&RESULTS_SQL, 3, results_sql), results_sql(3));
        let big = 2 * MAX_ROWS;
        assert_eq!(
            shape(&RECORDS_SQL, big, held_and_records_sql),
            held_and_records_sql(big)
        );
    }
}
