/*!
PostgreSQL's `complete`: the lookups' results in one statement over arrays, then (with the
touched jobs locked in id order) the records, the merge, the chained lookups, the jobs' states
and the run's counts.
*/

use crate::store::RunId;
use crate::store::contract::Commit;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use super::crawl::{derive_locked, lock_jobs};
use super::{PgStore, Tx};
use crate::domain::ProviderId;
use crate::store::merge::{Dialect, merge_sql};
use crate::store::sql::text;
use crate::store::tally::{Tally, job_change};
use crate::store::{Completion, JobResult, Result};

impl PgStore {
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
        let merge = merge_text(precedence);
        in_tx!(self, tx => {
            complete_in(&mut tx, run_id, completions, &merge, quota_day, now_ms).await
        })
    }
}

/// [`merge_sql`] for `precedence`, made once: a run has one precedence, and its text is some
/// hundred strings formatted (SQLite's `commit_sql` keeps its own the same way).
fn merge_text(precedence: &[ProviderId]) -> Arc<str> {
    static TEXTS: LazyLock<Mutex<HashMap<Vec<ProviderId>, Arc<str>>>> =
        LazyLock::new(Default::default);
    // A poisoned lock holds only finished texts: take it back.
    let mut texts = TEXTS.lock().unwrap_or_else(|p| p.into_inner());
    texts
        .entry(precedence.to_vec())
        .or_insert_with(|| merge_sql(precedence, Dialect::Postgres).into())
        .clone()
}

/// One `complete`, inside its transaction: see [`CrawlStore::complete`](crate::store::CrawlStore::complete).
async fn complete_in(
    tx: &mut Tx,
    run_id: RunId,
    completions: &[Completion],
    merge: &str,
    quota_day: &str,
    now_ms: i64,
) -> std::result::Result<u64, sqlx::Error> {
    let applied = apply_results(tx, run_id, completions, now_ms).await?;
    let mut jobs: Vec<i64> = applied.values().copied().collect();
    jobs.sort_unstable();
    jobs.dedup();
    // Before anything reads another lookup of these jobs: wait for (and then see) a crawler
    // committing the other provider's lookup of the same book.
    lock_jobs(tx, &jobs).await?;
    let t = Tally::of(completions, &applied);
    if !t.books.is_empty() {
        insert_records(tx, &t.books, run_id, now_ms).await?;
        // Once each: two providers' records of one book in one commit would otherwise make
        // the upsert touch its row twice, which PostgreSQL refuses (SQLite's `IN` dedups).
        let mut isbns: Vec<&str> = t.books.iter().map(|(_, b)| b.isbn13.as_str()).collect();
        isbns.sort_unstable();
        isbns.dedup();
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
    count(tx, &t, run_id, quota_day, now_ms).await?;
    Ok(applied.len() as u64)
}

/// The lookups' results on those the run still holds, in one statement over arrays. Returns
/// the lookups applied (lookup id → job id).
async fn apply_results(
    tx: &mut Tx,
    run_id: RunId,
    completions: &[Completion],
    now_ms: i64,
) -> std::result::Result<HashMap<i64, i64>, sqlx::Error> {
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
    sqlx::query_as(
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
    .await
    .map(|rows: Vec<(i64, i64)>| rows.into_iter().collect())
}

/// What the commit adds to the day's quota requests and the run's rows.
async fn count(
    tx: &mut Tx,
    t: &Tally<'_>,
    run_id: RunId,
    quota_day: &str,
    now_ms: i64,
) -> std::result::Result<(), sqlx::Error> {
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
    Ok(())
}

/// Stores each provider's record whole, replacing an older one, in one statement.
async fn insert_records(
    tx: &mut Tx,
    books: &[(ProviderId, &crate::store::Book)],
    run_id: RunId,
    now_ms: i64,
) -> std::result::Result<(), sqlx::Error> {
    let opt = |f: &dyn Fn(&crate::store::Book) -> Option<&str>| -> Vec<Option<String>> {
        books
            .iter()
            .map(|(_, b)| f(b).map(|s| text(s).into_owned()))
            .collect()
    };
    let int = |f: &dyn Fn(&crate::store::Book) -> Option<i64>| -> Vec<Option<i64>> {
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
             language, average_rating, ratings_count, thumbnail, ddc, lcc, lccn, attribution,
             raw_json, fetched_at, run_id)
         SELECT *, $22::bigint, $23::bigint FROM unnest($1::text[], $2::text[], $3::text[],
             $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::bigint[],
             $10::text[], $11::bigint[], $12::text[], $13::text[], $14::float8[], $15::bigint[],
             $16::text[], $17::text[], $18::text[], $19::text[], $20::text[],
             $21::text[])
         ON CONFLICT (isbn13, provider) DO UPDATE SET record_id = EXCLUDED.record_id,
             title = EXCLUDED.title, subtitle = EXCLUDED.subtitle, authors = EXCLUDED.authors,
             publisher = EXCLUDED.publisher, published_date = EXCLUDED.published_date,
             published_year = EXCLUDED.published_year, description = EXCLUDED.description,
             page_count = EXCLUDED.page_count, categories = EXCLUDED.categories,
             language = EXCLUDED.language, average_rating = EXCLUDED.average_rating,
             ratings_count = EXCLUDED.ratings_count, thumbnail = EXCLUDED.thumbnail,
             ddc = EXCLUDED.ddc, lcc = EXCLUDED.lcc, lccn = EXCLUDED.lccn,
             attribution = EXCLUDED.attribution,
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
    .bind(opt(&|b| b.ddc.as_deref()))
    .bind(opt(&|b| b.lcc.as_deref()))
    .bind(opt(&|b| b.lccn.as_deref()))
    .bind(opt(&|b| b.attribution.as_deref()))
    .bind(&raw)
    .bind(now_ms)
    .bind(run_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
