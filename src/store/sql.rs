/*!
What the two backends share: the merge of provider records (generated for either dialect from
one description), what a result does to its lookup, the tally of a commit for the `runs` row,
and the folds that turn aggregate rows into the report's figures. Each backend keeps its own
statements; the rules they encode live here once.
*/

use std::collections::HashMap;

use super::{Book, Completion, Eta, JobResult, JobState, RejectGroup, RejectedLine, Status};
use crate::providers::ProviderId;

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

/// Upserts into `books` the merged rows of the ISBNs in the first parameter (SQLite: a JSON
/// array; PostgreSQL: a text array), with `precedence` deciding each field and `provenance`
/// (compact JSON, the same text from both backends) saying which provider gave it.
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
    let mut columns = vec![
        "isbn13".to_string(),
        "isbn10".into(),
        "volume_id".into(),
        "openlibrary_key".into(),
    ];
    let mut values = vec![
        "j.isbn13".to_string(),
        "j.isbn10".into(),
        format!("{}.record_id", alias(ProviderId::Google)),
        format!("{}.record_id", alias(ProviderId::OpenLibrary)),
    ];
    let mut provenance = Vec::new();
    for field in MERGED {
        columns.push(field.into());
        values.push(first_of(field, &|a| format!("{a}.{field}")));
        // SQLite: `'title', <provider>` pairs for json_object; PostgreSQL: `'"title":"<provider>"'`.
        let named = first_of(field, &|a| match dialect {
            Dialect::Sqlite => format!("'{}'", &a[2..]),
            Dialect::Postgres => format!("'\"{field}\":\"{}\"'", &a[2..]),
        });
        provenance.push(match dialect {
            Dialect::Sqlite => format!("'{field}', {named}"),
            Dialect::Postgres => named,
        });
    }
    columns.push("published_year".into());
    values.push(first_of("published_date", &|a| {
        format!("{a}.published_year")
    }));
    columns.push("raw_json".into());
    values.push(first_of("raw_json", &|a| format!("{a}.raw_json")));
    columns.push("provenance".into());
    // `{"title":"google",...}` in field order, fields no provider has left out.
    values.push(match dialect {
        // json_patch drops the members whose value is null.
        Dialect::Sqlite => format!("json_patch('{{}}', json_object({}))", provenance.join(", ")),
        Dialect::Postgres => format!("'{{' || concat_ws(',', {}) || '}}'", provenance.join(", ")),
    });
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
            "j.isbn13 IN (SELECT value FROM json_each(?1)) AND",
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
    pub google: i64,
    pub google_done: i64,
    pub openlibrary: i64,
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
    /// Counts every completion's requests (sent whether or not the lease held), and the
    /// outcomes of those `applied` (lookup id → job id).
    pub fn of(completions: &'a [Completion], applied: &HashMap<i64, i64>) -> Tally<'a> {
        let mut t = Tally::default();
        for c in completions {
            t.requests += i64::from(c.requests);
            match c.provider {
                ProviderId::Google => t.google += i64::from(c.requests),
                ProviderId::OpenLibrary => t.openlibrary += i64::from(c.requests),
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
                    if c.provider == ProviderId::Google {
                        t.google_done += 1;
                    }
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

/// Quota days left for Google's part, from the books Google found and the requests it took
/// over the latest runs, and the latest `--daily-budget`.
pub(super) fn eta(
    status: &Status,
    done: Option<i64>,
    requests: Option<i64>,
    budget: Option<i64>,
) -> Option<Eta> {
    let open = match status.lookups.get("google") {
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
