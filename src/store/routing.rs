/*!
Which lookups a crawl makes, written once for both backends (over [`Conn`]): one per job and
provider the crawl asks, limited to the ISBNs the provider is routed (a national library
gets its country's registration groups), and under `--fill missing` only where every earlier
provider routed to the ISBN has not found it.

A routed ISBN filter is a range of the `isbn13` text per prefix (`'9783' <= isbn13 < '9784'`),
so either database reads it through the jobs' unique index. Prefixes are digits (the registry
checks a `--route`'s; a prefix that is not is dropped here rather than written into SQL).

`lookup_marks` says how far (in job ids, which only grow) a provider's lookups were made for
every job, and under which routes: a mark made for other routes counts for nothing, so a
widened `--route` reaches the jobs loaded before it.
*/

use super::Asked;
use super::exec::{Conn, Param};
use crate::domain::Routes;

/// `routes` as a SQL condition on the ISBN-13 text `column`.
pub(super) fn isbn_filter(column: &str, routes: &Routes) -> String {
    let Some(prefixes) = routes.prefixes() else {
        return "TRUE".into();
    };
    let ranges: Vec<String> = prefixes
        .iter()
        .filter_map(|p| {
            let end = next_prefix(p)?;
            Some(format!("({column} >= '{p}' AND {column} < '{end}')"))
        })
        .collect();
    if ranges.is_empty() {
        return "FALSE".into();
    }
    format!("({})", ranges.join(" OR "))
}

/// The digit string just past every string starting with `prefix` ("9783" → "9784", "9789" →
/// "9790"); `None` for one that is not digits (or all nines, which no ISBN starts with).
fn next_prefix(prefix: &str) -> Option<String> {
    if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut digits = prefix.as_bytes().to_vec();
    for i in (0..digits.len()).rev() {
        if digits[i] == b'9' {
            digits[i] = b'0';
        } else {
            digits[i] += 1;
            return String::from_utf8(digits).ok();
        }
    }
    None
}

/// The routes as `lookup_marks.routes` keeps them: `NULL` for every ISBN (as before routes
/// existed), else the prefixes joined by commas.
fn routes_key(routes: &Routes) -> Option<String> {
    routes.prefixes().map(|p| p.join(","))
}

/// `routes_key` read back.
fn routes_of_key(key: Option<&str>) -> Routes {
    match key {
        None => Routes::All,
        Some(k) => Routes::Prefixes(k.split(',').map(str::to_string).collect()),
    }
}

/// A provider name as a SQL literal: registry names are lowercase letters and digits, which
/// this checks rather than trusts.
fn literal(name: &str) -> String {
    debug_assert!(name.bytes().all(|b| b.is_ascii_alphanumeric()));
    let safe: String = name.chars().filter(char::is_ascii_alphanumeric).collect();
    format!("'{safe}'")
}

/// A lookup of `asked` for every routed job from its mark on that has none; jobs every other
/// provider had given up on become pending again. Returns how many were made.
pub(super) async fn every_job(
    conn: &mut impl Conn,
    asked: &Asked,
    now_ms: i64,
) -> sqlx::Result<u64> {
    let provider = asked.provider.as_str();
    let key = routes_key(&asked.routes);
    let marks: Vec<(i64, Option<String>)> = conn
        .rows(
            "SELECT job_id, routes FROM lookup_marks WHERE provider = $1",
            &[Param::Text(provider)],
        )
        .await?;
    let mark = match marks.first() {
        Some((job_id, routes)) if *routes == key => *job_id,
        _ => 0,
    };
    let made = conn
        .run(
            &format!(
                "INSERT INTO lookups (job_id, isbn13, provider, created_at, updated_at)
                 SELECT j.id, j.isbn13, $1, $2, $2 FROM jobs j
                 WHERE j.id > $3 AND {}
                   AND NOT EXISTS (SELECT 1 FROM lookups l
                                   WHERE l.job_id = j.id AND l.provider = $1)
                 ORDER BY j.id
                 ON CONFLICT DO NOTHING",
                isbn_filter("j.isbn13", &asked.routes)
            ),
            &[Param::Text(provider), Param::Int(now_ms), Param::Int(mark)],
        )
        .await?;
    if made > 0 {
        conn.run(
            "UPDATE jobs SET state = 'pending', updated_at = $1
             WHERE id > $2 AND state IN ('not_found', 'failed') AND EXISTS (
                 SELECT 1 FROM lookups l WHERE l.job_id = jobs.id AND l.state = 'pending')",
            &[Param::Int(now_ms), Param::Int(mark)],
        )
        .await?;
    }
    conn.run(
        "INSERT INTO lookup_marks (provider, job_id, routes)
         VALUES ($1, (SELECT coalesce(max(id), 0) FROM jobs), $2)
         ON CONFLICT (provider) DO UPDATE SET job_id = excluded.job_id, routes = excluded.routes",
        &[Param::Text(provider), Param::MaybeText(key.as_deref())],
    )
    .await?;
    Ok(made)
}

/// Under `--fill missing`, a lookup of `asked` for each routed job where every `earlier`
/// provider routed to its ISBN has not found it (none routed: the job is asked here first).
/// Returns the jobs given one, whose states the caller derives (they have a new chance).
///
/// The writer chains these as it goes; this catches up on what runs in another mode, order
/// or routing left. Where an earlier provider is asked about every ISBN, only its misses are
/// read (a partial index); otherwise every job is.
pub(super) async fn after_misses(
    conn: &mut impl Conn,
    asked: &Asked,
    earlier: &[Asked],
    now_ms: i64,
) -> sqlx::Result<Vec<i64>> {
    const MISSED: &str = "state IN ('not_found', 'failed')";
    let each_missed: Vec<String> = earlier
        .iter()
        .map(|e| {
            format!(
                "(NOT {} OR EXISTS (SELECT 1 FROM lookups m WHERE m.job_id = j.id \
                 AND m.provider = {} AND m.{MISSED}))",
                isbn_filter("j.isbn13", &e.routes),
                literal(e.provider.as_str())
            )
        })
        .collect();
    let candidates = match earlier.iter().find(|e| e.routes == Routes::All) {
        Some(e) => format!(
            "AND j.id IN (SELECT job_id FROM lookups WHERE provider = {} AND {MISSED})",
            literal(e.provider.as_str())
        ),
        None => String::new(),
    };
    let made: Vec<(i64,)> = conn
        .rows(
            &format!(
                "INSERT INTO lookups (job_id, isbn13, provider, created_at, updated_at)
                 SELECT j.id, j.isbn13, $1, $2, $2 FROM jobs j
                 WHERE {} {candidates}
                   AND NOT EXISTS (SELECT 1 FROM lookups l
                                   WHERE l.job_id = j.id AND l.provider = $1)
                   AND {}
                 ORDER BY j.id
                 ON CONFLICT DO NOTHING
                 RETURNING job_id",
                isbn_filter("j.isbn13", &asked.routes),
                if each_missed.is_empty() {
                    "TRUE".to_string()
                } else {
                    each_missed.join(" AND ")
                }
            ),
            &[Param::Text(asked.provider.as_str()), Param::Int(now_ms)],
        )
        .await?;
    Ok(made.into_iter().map(|(j,)| j).collect())
}

/// Per provider, the routed jobs loaded since it last made a lookup for every job: the next
/// crawl that asks it makes theirs, so `status` counts them as its pending lookups. Only jobs
/// past the provider's mark are read (a range of the primary key), not the whole table.
pub(super) async fn unasked(conn: &mut impl Conn) -> sqlx::Result<Vec<(String, i64)>> {
    let marks: Vec<(String, i64, Option<String>)> = conn
        .rows("SELECT provider, job_id, routes FROM lookup_marks", &[])
        .await?;
    let mut counts = Vec::with_capacity(marks.len());
    for (provider, mark, key) in marks {
        let routes = routes_of_key(key.as_deref());
        let (n,): (i64,) = conn
            .row(
                &format!(
                    "SELECT count(*) FROM jobs j WHERE j.id > $1 AND {} AND NOT EXISTS (
                         SELECT 1 FROM lookups l WHERE l.job_id = j.id AND l.provider = $2)",
                    isbn_filter("j.isbn13", &routes)
                ),
                &[Param::Int(mark), Param::Text(&provider)],
            )
            .await?;
        counts.push((provider, n));
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_is_a_range_of_the_isbn_text() {
        assert_eq!(next_prefix("9783").as_deref(), Some("9784"));
        assert_eq!(next_prefix("97919").as_deref(), Some("97920"));
        assert_eq!(next_prefix("9799").as_deref(), Some("9800"));
        assert_eq!(next_prefix("999"), None);
        assert_eq!(next_prefix("97x"), None);
        let f = isbn_filter("c", &Routes::Prefixes(vec!["9782".into(), "97910".into()]));
        assert_eq!(
            f,
            "((c >= '9782' AND c < '9783') OR (c >= '97910' AND c < '97911'))"
        );
        assert_eq!(isbn_filter("c", &Routes::All), "TRUE");
        // Nothing from outside reaches the SQL text.
        assert_eq!(
            isbn_filter("c", &Routes::Prefixes(vec!["978' OR 1=1 --".into()])),
            "FALSE"
        );
    }

    #[test]
    fn a_mark_keeps_its_routes() {
        for r in [
            Routes::All,
            Routes::Prefixes(vec!["9783".into()]),
            Routes::Prefixes(vec!["9780".into(), "9781".into()]),
        ] {
            assert_eq!(routes_of_key(routes_key(&r).as_deref()), r);
        }
    }
}
