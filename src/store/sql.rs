/*!
The statements that read the same in both dialects, each with the plain function that binds
and runs it on either backend's connection ([`Conn`]), and the small rules both backends
apply to rows (claimed lookups, dead runs, reject groups, the estimate). A backend chooses the
connection and the transaction (SQLite's one writer for every write); what the statement says
lives here once. Statements that differ (claims, commits, loads, the status counts) are each
backend's own.
*/

use std::sync::LazyLock;

use super::exec::{Conn, Param};
use super::{
    ClaimedLookup, Eta, JobState, LoadRecord, ProviderRecord, QuotaDay, Record, RejectGroup,
    RejectedLine, Reservation, RunEnd, RunId, RunInfo, Status,
};
use crate::isbn::Isbn13;

/// A job joined with its book, as [`super::Record`] reads it (both dialects).
pub(super) const RECORD_SELECT: &str = "SELECT j.isbn13, j.isbn10, j.state, j.attempts,
        j.next_attempt_at, j.last_error, j.source, j.source_line, j.source_ref, j.created_at,
        j.updated_at, b.openlibrary_key, b.provenance,
        b.volume_id, b.title, b.subtitle, b.authors, b.publisher, b.published_date,
        b.published_year, b.description, b.page_count, b.categories, b.language,
        b.average_rating, b.ratings_count, b.thumbnail, b.ddc, b.lcc, b.lccn, b.attribution,
        b.raw_json,
        b.fetched_at, b.run_id
    FROM jobs j LEFT JOIN books b ON b.isbn13 = j.isbn13";

/// One job with its book (`$1`: its ISBN-13). sqlx numbers `$N` parameters on SQLite too, so
/// the statements below are one text for both backends.
pub(super) static RECORD_BY_ISBN_SQL: LazyLock<String> =
    LazyLock::new(|| format!("{RECORD_SELECT} WHERE j.isbn13 = $1"));

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

/// The runs not ended, other than `$1`: who might still hold leases.
pub(super) const RUNNING_SQL: &str = "SELECT id, command, host, pid, pid_start, host_id FROM runs
    WHERE ended_at IS NULL AND id != $1";

/// Whether any lease is stranded (`$1`: now): run out, or held by a run that has ended. When
/// none is and no run is dead, lease recovery writes nothing: it runs at every heartbeat and
/// whenever an idle lane wakes.
pub(super) const STRANDED_SQL: &str = "SELECT EXISTS (SELECT 1 FROM lookups
    WHERE state = 'in_progress'
      AND (lease_until < $1 OR lease_owner IN (SELECT id FROM runs WHERE ended_at IS NOT NULL)))";

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
fn group_rejects(counts: &[(String, u64)], firsts: Vec<RejectedLine>) -> Vec<RejectGroup> {
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

/// Adds the counts of jobs not yet asked (`routing::unasked`) to each provider's pending lookups.
pub(super) fn add_unasked(status: &mut Status, unasked: &[(String, i64)]) {
    for (provider, n) in unasked {
        let Some(p) = crate::providers::registry::parse(provider) else {
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
    crate::providers::registry::with_daily_quota().map_or("", |s| s.id.as_str())
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

/// Keeps what one load of a source read.
pub(super) async fn record_load(
    conn: &mut impl Conn,
    load: &LoadRecord,
    now_ms: i64,
) -> sqlx::Result<()> {
    let source = text(&load.source);
    let problem = load.problem.as_deref().map(text);
    conn.run(
        "INSERT INTO loads (source, lines, valid, queued, rejected, read_as, problem, loaded_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            Param::Text(&source),
            Param::Int(load.lines as i64),
            Param::Int(load.valid as i64),
            Param::Int(load.queued as i64),
            Param::Int(load.rejected as i64),
            Param::MaybeText(load.read_as.as_deref()),
            Param::MaybeText(problem.as_deref()),
            Param::Int(now_ms),
        ],
    )
    .await?;
    Ok(())
}

/// One job with its book.
pub(super) async fn record(conn: &mut impl Conn, isbn13: &str) -> sqlx::Result<Option<Record>> {
    let rows = conn
        .rows(&RECORD_BY_ISBN_SQL, &[Param::Text(isbn13)])
        .await?;
    Ok(rows.into_iter().next())
}

/// Each provider's record and lookup of one book, in provider order.
pub(super) async fn provider_records(
    conn: &mut impl Conn,
    isbn13: &str,
) -> sqlx::Result<Vec<ProviderRecord>> {
    conn.rows(
        "SELECT l.provider, l.state, l.attempts, l.last_error, p.record_id, p.title,
                p.subtitle, p.authors, p.publisher, p.published_date, p.page_count,
                p.categories, p.language, p.description, p.thumbnail, p.ddc, p.lcc, p.lccn,
                p.attribution, p.raw_json, p.fetched_at
         FROM jobs j
         JOIN lookups l ON l.job_id = j.id
         LEFT JOIN provider_books p ON p.isbn13 = l.isbn13 AND p.provider = l.provider
         WHERE j.isbn13 = $1 ORDER BY l.provider",
        &[Param::Text(isbn13)],
    )
    .await
}

/// Every rejected line, in the order they were stored.
pub(super) const REJECTED_LINES_SQL: &str =
    "SELECT source, line, raw, reason FROM rejected_lines ORDER BY id";

/// Rejected lines per reason (from the reason index).
pub(super) async fn reject_counts(conn: &mut impl Conn) -> sqlx::Result<Vec<(String, u64)>> {
    let rows: Vec<(String, i64)> = conn
        .rows(
            "SELECT reason, count(*) FROM rejected_lines GROUP BY reason",
            &[],
        )
        .await?;
    Ok(rows.into_iter().map(|(r, n)| (r, n as u64)).collect())
}

/// The reasons of `counts`, most first, each with its first `examples` lines.
pub(super) async fn reject_groups(
    conn: &mut impl Conn,
    counts: &[(String, u64)],
    examples: u32,
) -> sqlx::Result<Vec<RejectGroup>> {
    let firsts: Vec<RejectedLine> = conn
        .rows(
            "SELECT source, line, raw, reason FROM (
                 SELECT *, row_number() OVER (PARTITION BY reason ORDER BY id) AS n
                 FROM rejected_lines) r
             WHERE n <= $1 ORDER BY id",
            &[Param::Int(i64::from(examples))],
        )
        .await?;
    Ok(group_rejects(counts, firsts))
}

/// Records a new run and returns its id.
pub(super) async fn begin_run(
    conn: &mut impl Conn,
    info: &RunInfo,
    now_ms: i64,
) -> sqlx::Result<RunId> {
    let (id,): (RunId,) = conn
        .row(
            "INSERT INTO runs (command, host, host_id, pid, pid_start, started_at,
                               heartbeat_at, daily_budget)
             VALUES ($1, $2, $3, $4, $5, $6, $6, $7) RETURNING id",
            &[
                Param::Text(&info.command),
                Param::Text(&info.host),
                Param::MaybeText(info.host_id.as_deref()),
                Param::Int(i64::from(info.pid)),
                Param::MaybeText(info.pid_start.as_deref()),
                Param::Int(now_ms),
                Param::MaybeInt(info.daily_budget.map(|b| b as i64)),
            ],
        )
        .await?;
    Ok(id)
}

/// Ends a run: its stop reason, then each lane's batch size. Two statements: the caller runs
/// them in one transaction.
pub(super) async fn end_run(
    tx: &mut impl Conn,
    run_id: RunId,
    end: &RunEnd,
    now_ms: i64,
) -> sqlx::Result<()> {
    tx.run(
        "UPDATE runs SET ended_at = $1, stop_reason = $2 WHERE id = $3",
        &[
            Param::Int(now_ms),
            Param::Text(&end.stop_reason),
            Param::Int(run_id.0),
        ],
    )
    .await?;
    for (provider, size) in &end.batch_sizes {
        tx.run(
            "INSERT INTO run_providers (run_id, provider, batch_size) VALUES ($1, $2, $3)
             ON CONFLICT (run_id, provider) DO UPDATE SET batch_size = excluded.batch_size",
            &[
                Param::Int(run_id.0),
                Param::Text(provider.as_str()),
                Param::Int(*size as i64),
            ],
        )
        .await?;
    }
    Ok(())
}

/// The stop reason of the latest finished run that was not killed.
pub(super) async fn last_stop_reason(conn: &mut impl Conn) -> sqlx::Result<Option<String>> {
    let rows: Vec<(Option<String>,)> = conn
        .rows(
            "SELECT stop_reason FROM runs
             WHERE ended_at IS NOT NULL AND stop_reason != 'killed'
             ORDER BY ended_at DESC, id DESC LIMIT 1",
            &[],
        )
        .await?;
    Ok(rows.into_iter().next().and_then(|(r,)| r))
}

/// What lease recovery must do before it writes anything: `Some(dead run ids)` (possibly
/// empty when only stranded leases are left), or `None` when no run is dead and no lease
/// stranded.
pub(super) async fn recovery_needed(
    conn: &mut impl Conn,
    me: RunId,
    now_ms: i64,
    is_alive: &(dyn Fn(&RunInfo) -> bool + Sync),
) -> sqlx::Result<Option<Vec<i64>>> {
    let runs: Vec<RunningRow> = conn.rows(RUNNING_SQL, &[Param::Int(me.0)]).await?;
    let dead = dead_runs(runs, is_alive);
    let (stranded,): (bool,) = conn.row(STRANDED_SQL, &[Param::Int(now_ms)]).await?;
    Ok((!dead.is_empty() || stranded).then_some(dead))
}

/// What is known of a quota day.
pub(super) async fn quota_day(conn: &mut impl Conn, day: &str) -> sqlx::Result<QuotaDay> {
    let rows: Vec<(i64, Option<i64>)> = conn
        .rows(
            "SELECT requests, exhausted_at FROM quota_days WHERE day = $1",
            &[Param::Text(day)],
        )
        .await?;
    Ok(rows
        .into_iter()
        .next()
        .map(|(requests, exhausted_at)| QuotaDay {
            requests: requests as u64,
            exhausted_at,
        })
        .unwrap_or_default())
}

/// Marks the day and the key's day spent. Two statements: the caller runs them in one
/// transaction, so `quota_days` and `key_days` never disagree.
pub(super) async fn mark_quota_exhausted(
    tx: &mut impl Conn,
    key_id: &str,
    day: &str,
    at_ms: i64,
    resets_at_ms: i64,
) -> sqlx::Result<()> {
    tx.run(
        "INSERT INTO quota_days (day, requests, exhausted_at, resets_at) VALUES ($1, 0, $2, $3)
         ON CONFLICT (day) DO UPDATE SET exhausted_at = $2, resets_at = $3",
        &[
            Param::Text(day),
            Param::Int(at_ms),
            Param::Int(resets_at_ms),
        ],
    )
    .await?;
    tx.run(
        "INSERT INTO key_days (day, key_id, exhausted_at) VALUES ($1, $2, $3)
         ON CONFLICT (key_id, day) DO UPDATE SET exhausted_at = $3",
        &[Param::Text(day), Param::Text(key_id), Param::Int(at_ms)],
    )
    .await?;
    Ok(())
}

/// Clears the day's and the key's stop. Two statements: the caller runs them in one
/// transaction.
pub(super) async fn clear_quota_stop(
    tx: &mut impl Conn,
    key_id: &str,
    day: &str,
) -> sqlx::Result<()> {
    tx.run(
        "UPDATE quota_days SET exhausted_at = NULL, resets_at = NULL WHERE day = $1",
        &[Param::Text(day)],
    )
    .await?;
    tx.run(
        "UPDATE key_days SET exhausted_at = NULL WHERE day = $1 AND key_id = $2",
        &[Param::Text(day), Param::Text(key_id)],
    )
    .await?;
    Ok(())
}

/// Reserves budget units of the key's day: makes the row, reads what it has reserved and
/// whether its quota stopped, adds the grant. The caller runs this in one transaction that
/// holds the row: SQLite's write lock, or (`lock_row`) PostgreSQL's `FOR UPDATE`.
#[allow(clippy::too_many_arguments)]
pub(super) async fn reserve_budget(
    tx: &mut impl Conn,
    lock_row: bool,
    key_id: &str,
    day: &str,
    want: u64,
    limit: Option<u64>,
    probe: bool,
) -> sqlx::Result<Reservation> {
    let key = [Param::Text(day), Param::Text(key_id)];
    tx.run(
        "INSERT INTO key_days (day, key_id) VALUES ($1, $2) ON CONFLICT (key_id, day) DO NOTHING",
        &key,
    )
    .await?;
    let read = if lock_row {
        "SELECT reserved, exhausted_at FROM key_days WHERE day = $1 AND key_id = $2 FOR UPDATE"
    } else {
        "SELECT reserved, exhausted_at FROM key_days WHERE day = $1 AND key_id = $2"
    };
    let (reserved, exhausted): (i64, Option<i64>) = tx.row(read, &key).await?;
    let grant = Reservation::grant(reserved, exhausted.is_some(), want, limit, probe);
    tx.run(
        "UPDATE key_days SET reserved = reserved + $3 WHERE day = $1 AND key_id = $2",
        &[key[0], key[1], Param::Int(grant.granted as i64)],
    )
    .await?;
    Ok(grant)
}

/// Gives back reserved units that were not spent.
pub(super) async fn release_budget(
    conn: &mut impl Conn,
    key_id: &str,
    day: &str,
    units: u64,
) -> sqlx::Result<()> {
    conn.run(
        "UPDATE key_days
         SET reserved = CASE WHEN reserved > $1 THEN reserved - $1 ELSE 0 END
         WHERE day = $2 AND key_id = $3",
        &[
            Param::Int(units as i64),
            Param::Text(day),
            Param::Text(key_id),
        ],
    )
    .await?;
    Ok(())
}
