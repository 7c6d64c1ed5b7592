/*!
The report's overview, aggregated in the database: the statements both dialects read alike are
here, those they word their own way come in an [`OverviewSql`], and the backend supplies the
connection and the status (its own statements) it starts from.
*/

use super::exec::{Conn, Param};
use super::{
    Completeness, FailureClass, GroupCounts, Overview, ProviderCounts, RecentBook, RunRow,
    SourceCounts, Status, sql,
};

/// The report's statements that differ between the dialects (index hints, JSON functions).
pub(super) struct OverviewSql {
    pub failures: &'static str,
    /// `(year, books)`, ascending.
    pub years: &'static str,
    /// The top languages, publishers and categories: `(name, books)`, most first.
    pub top: [&'static str; 3],
    pub recent: &'static str,
}

/// How complete one provider's (`$1`) records are.
const COMPLETENESS_SQL: &str = "SELECT count(*) AS records, count(description) AS description,
        count(page_count) AS page_count, count(thumbnail) AS cover, count(authors) AS authors,
        count(publisher) AS publisher, count(published_year) AS year
    FROM provider_books WHERE provider = $1";

/// What each input file gave: lines, queued, rejected, and its jobs' states.
const SOURCES_SQL: &str = "SELECT source, CAST(sum(lines) AS BIGINT) AS lines,
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
         GROUP BY source ORDER BY source";

/// Books only one provider has: one ordered pass over provider_books' key.
const ONLY_SQL: &str = "SELECT provider, count(*) FROM (
             SELECT min(provider) AS provider, count(*) AS n FROM provider_books
             GROUP BY isbn13) o
         WHERE n = 1 GROUP BY provider";

/// Completeness of the merged books.
const MERGED_SQL: &str = "SELECT count(*) AS records, count(description) AS description,
                count(page_count) AS page_count, count(thumbnail) AS cover,
                count(authors) AS authors, count(publisher) AS publisher,
                count(published_year) AS year
         FROM books";

/// The latest runs, newest first.
const RUNS_SQL: &str = "SELECT id, command, started_at, ended_at, stop_reason, requests, done,
                books_per_request
         FROM runs ORDER BY id DESC LIMIT 20";

/// Everything the report shows after `status`, on one connection, with the backend's own
/// statements `own`.
pub(super) async fn overview(
    conn: &mut impl Conn,
    status: Status,
    own: &OverviewSql,
) -> sqlx::Result<Overview> {
    let sources: Vec<SourceCounts> = conn.rows(SOURCES_SQL, &[]).await?;
    let providers = providers(conn, &status).await?;
    let merged: Completeness = conn.row(MERGED_SQL, &[]).await?;
    let failures: Vec<FailureClass> = conn.rows(own.failures, &[]).await?;
    let quota_days: Vec<(String, i64)> = conn
        .rows("SELECT day, requests FROM quota_days ORDER BY day", &[])
        .await?;
    let runs: Vec<RunRow> = conn.rows(RUNS_SQL, &[]).await?;
    let years: Vec<(i64, i64)> = conn.rows(own.years, &[]).await?;
    let mut top = Vec::new();
    for q in own.top {
        let rows: Vec<(String, i64)> = conn.rows(q, &[]).await?;
        top.push(counted(rows));
    }
    let recent: Vec<RecentBook> = conn.rows(own.recent, &[]).await?;
    let groups = groups(conn).await?;
    let counts: Vec<(String, u64)> = status
        .rejected_lines
        .iter()
        .map(|(r, n)| (r.clone(), *n))
        .collect();
    let rejects = sql::reject_groups(conn, &counts, 2).await?;
    let [languages, publishers, categories] =
        <[Vec<(String, u64)>; 3]>::try_from(top).unwrap_or_default();
    Ok(Overview {
        status,
        sources,
        providers,
        merged,
        rejects,
        failures,
        quota_days: counted(quota_days),
        runs,
        decades: sql::decades(years),
        languages,
        publishers,
        categories,
        recent,
        groups,
    })
}

/// Jobs and found books per eight-digit prefix: enough to tell every registration group.
const PREFIX_SQL: &str = "SELECT substr(j.isbn13, 1, 8) AS prefix, count(*) AS books,
        count(b.isbn13) AS found
    FROM jobs j LEFT JOIN books b ON b.isbn13 = j.isbn13 GROUP BY 1";
/// Provider records per eight-digit prefix.
const PREFIX_PROVIDER_SQL: &str = "SELECT substr(isbn13, 1, 8) AS prefix, provider, count(*)
    FROM provider_books GROUP BY 1, 2";

/// [`GroupCounts`] of every group with jobs, the most books first.
async fn groups(conn: &mut impl Conn) -> sqlx::Result<Vec<GroupCounts>> {
    let jobs: Vec<(String, i64, i64)> = conn.rows(PREFIX_SQL, &[]).await?;
    let records: Vec<(String, String, i64)> = conn.rows(PREFIX_PROVIDER_SQL, &[]).await?;
    let mut out: Vec<GroupCounts> = Vec::new();
    for (prefix, books, found) in jobs {
        let g = group_of(&mut out, &prefix);
        g.books += books as u64;
        g.found += found as u64;
    }
    for (prefix, provider, n) in records {
        *group_of(&mut out, &prefix)
            .by_provider
            .entry(provider)
            .or_default() += n as u64;
    }
    out.sort_by(|a, b| b.books.cmp(&a.books).then_with(|| a.group.cmp(&b.group)));
    Ok(out)
}

/// The counts of the group `prefix` belongs to, made on first sight.
fn group_of<'a>(groups: &'a mut Vec<GroupCounts>, prefix: &str) -> &'a mut GroupCounts {
    let group = crate::isbn::registration_group(prefix).unwrap_or_else(|| "other".into());
    let i = match groups.iter().position(|g| g.group == group) {
        Some(i) => i,
        None => {
            groups.push(GroupCounts {
                name: crate::isbn::group_name(&group),
                group,
                ..GroupCounts::default()
            });
            groups.len() - 1
        }
    };
    &mut groups[i]
}

/// Each provider with lookups: their states, the books only it has, its records' completeness.
async fn providers(conn: &mut impl Conn, status: &Status) -> sqlx::Result<Vec<ProviderCounts>> {
    let only: Vec<(String, i64)> = conn.rows(ONLY_SQL, &[]).await?;
    let mut providers = Vec::new();
    for (provider, lookups) in &status.lookups {
        let completeness: Completeness =
            conn.row(COMPLETENESS_SQL, &[Param::Text(provider)]).await?;
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
    Ok(providers)
}

/// Counts as the report holds them.
fn counted(rows: Vec<(String, i64)>) -> Vec<(String, u64)> {
    rows.into_iter().map(|(k, n)| (k, n as u64)).collect()
}
