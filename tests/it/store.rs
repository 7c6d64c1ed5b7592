//! The store's conformance suite: every method and rule of the store's contract
//! (`src/store/contract.rs`), written once and run against each backend (River's driver tests
//! are the model). `sqlite::*` runs each test on a temp file; `postgres::*` on a database of its own (see `tests/it/common/pg.rs` for when it skips).

use crate::common;

use std::collections::HashSet;

use common::pg::PgDb;
use futures_util::TryStreamExt;
use isbn_crawler::domain::Routes;
use isbn_crawler::isbn::{Isbn13, RejectReason, synthetic};
use isbn_crawler::providers::ProviderId;
use isbn_crawler::store::*;

const G: ProviderId = isbn_crawler::providers::google::ID;
const OL: ProviderId = isbn_crawler::providers::open_library::ID;
/// The first catalogue of `sru::profile::ALL`, the DNB (`registry::parse` is not `const`).
const DNB: ProviderId = isbn_crawler::providers::sru::SPECS[0].id;

/// What keeps a test's database alive (and removes it afterwards).
enum Keep {
    Dir(#[allow(dead_code)] tempfile::TempDir),
    Pg(#[allow(dead_code)] PgDb),
}

async fn sqlite() -> Option<(Keep, AnyStore, Location)> {
    let dir = tempfile::tempdir().expect("dir");
    let location: Location = dir
        .path()
        .join("t.db")
        .display()
        .to_string()
        .parse()
        .expect("path");
    let store = AnyStore::open(&location, true, std::time::Duration::from_secs(10))
        .await
        .expect("open");
    Some((Keep::Dir(dir), store, location))
}

async fn postgres() -> Option<(Keep, AnyStore, Location)> {
    let db = PgDb::create().await?;
    let location: Location = db.url().parse().expect("url");
    let store = AnyStore::open(&location, true, std::time::Duration::from_secs(10))
        .await
        .expect("open");
    Some((Keep::Pg(db), store, location))
}

/// Writes each test once, for both backends.
macro_rules! conformance {
    ($($name:ident($store:ident, $location:ident) $body:block)*) => {
        mod sqlite {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some((_keep, $store, $location)) = super::sqlite().await else { return };
                    let _ = &$location;
                    $body
                }
            )*
        }
        mod postgres {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some((_keep, $store, $location)) = super::postgres().await else { return };
                    let _ = &$location;
                    $body
                }
            )*
        }
    };
}

/// The `i`-th of a run of valid ISBN-13s.
fn isbn(i: usize) -> Isbn13 {
    synthetic(500_000 + i as u64)
}

/// A batch of one ISBN in each of `prefixes`, the `n`-th and on.
fn of(prefixes: &[&str], n: u64) -> LoadBatch {
    LoadBatch {
        jobs: prefixes
            .iter()
            .enumerate()
            .map(|(i, p)| NewJob {
                isbn: isbn_crawler::isbn::synthetic_in(p, n + i as u64),
                line: n + i as u64 + 1,
            })
            .collect(),
        ..LoadBatch::default()
    }
}

fn batch(range: std::ops::Range<usize>) -> LoadBatch {
    LoadBatch {
        jobs: range
            .map(|i| NewJob {
                isbn: isbn(i),
                line: i as u64 + 1,
            })
            .collect(),
        ..LoadBatch::default()
    }
}

/// Each of `providers`, asked about every ISBN.
fn everything(providers: &[ProviderId]) -> Vec<Asked> {
    providers.iter().map(|p| Asked::everything(*p)).collect()
}

async fn loaded(store: &AnyStore, n: usize, providers: &[ProviderId]) {
    store
        .save_load_batch("t", &batch(0..n), 0)
        .await
        .expect("load");
    store
        .ensure_lookups(&everything(providers), false, 0)
        .await
        .expect("lookups");
}

fn info() -> RunInfo {
    RunInfo {
        command: "test".into(),
        host: "h".into(),
        host_id: Some("boot/pid:[1]".into()),
        pid: 1,
        pid_start: None,
        daily_budget: None,
    }
}

fn found(lookup_id: i64, provider: ProviderId, isbn: &Isbn13, title: &str) -> Completion {
    Completion {
        lookup_id,
        provider,
        then: None,
        requests: 1,
        result: JobResult::Done(Box::new(Book {
            isbn13: isbn.to_string(),
            title: Some(title.into()),
            raw_json: "{}".into(),
            ..Book::default()
        })),
    }
}

fn ended(lookup_id: i64, provider: ProviderId, result: JobResult) -> Completion {
    Completion {
        lookup_id,
        provider,
        then: None,
        requests: 1,
        result,
    }
}

async fn states(store: &AnyStore) -> std::collections::BTreeMap<&'static str, u64> {
    let s = store.status(0, "d").await.expect("status");
    s.jobs.into_iter().filter(|(_, n)| *n > 0).collect()
}

/// A commit of run `run_id` at `now_ms`, merging by `precedence`, on quota day "d".
fn at(run_id: RunId, precedence: &[ProviderId], now_ms: i64) -> Commit<'_> {
    Commit {
        run_id,
        precedence,
        quota_day: "d",
        now_ms,
    }
}

/// One number from `sql` (a test's look at a table the contract does not read back).
async fn scalar(store: &AnyStore, sql: &str) -> i64 {
    match store {
        AnyStore::Sqlite(s) => sqlx::query_scalar(sql).fetch_one(s.pool()).await,
        AnyStore::Postgres(s) => sqlx::query_scalar(sql).fetch_one(s.pool()).await,
    }
    .expect("scalar")
}

fn reject(line: u64, raw: &str, reason: RejectReason) -> Reject {
    Reject {
        line,
        raw: raw.into(),
        reason,
    }
}

conformance! {
    a_completion_from_a_lost_lease_changes_nothing(store, _l) {
        loaded(&store, 1, &[G]).await;
        let a = store.begin_run(&info(), 0).await.expect("run a");
        let claimed = store
            .claim(&Claim { run_id: a, provider: G, max: 1, now_ms: 10, lease_until_ms: 1000 })
            .await
            .expect("claim");
        assert_eq!(claimed.len(), 1);
        // Run a stops beating; its lease runs out and run b takes the job.
        let b = store.begin_run(&info(), 2000).await.expect("run b");
        let back = store.recover_leases(b, 2000, &|_| true).await.expect("recover");
        assert_eq!(back, 1);
        let again = store
            .claim(&Claim { run_id: b, provider: G, max: 1, now_ms: 2000, lease_until_ms: 9000 })
            .await
            .expect("claim");
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].attempts, 1, "the lost attempt was refunded");
        let isbn = &claimed[0].isbn;
        let applied = store
            .complete(&at(a, &[G], 2500), &mut [found(claimed[0].id, G, isbn, "stale")])
            .await
            .expect("complete");
        assert_eq!(applied, 0, "the stale worker's result is dropped");
        assert_eq!(store.record(isbn.as_str()).await.expect("record").expect("job").title, None);
        let kept = store.provider_records(isbn.as_str()).await.expect("provider records");
        assert!(
            kept.iter().all(|r| r.title.is_none()),
            "nor is its record stored: {:?}",
            kept.iter().map(|r| &r.title).collect::<Vec<_>>()
        );
        let applied = store
            .complete(&at(b, &[G], 2600), &mut [found(again[0].id, G, isbn, "fresh")])
            .await
            .expect("complete");
        assert_eq!(applied, 1);
        let record = store.record(isbn.as_str()).await.expect("record").expect("job");
        assert_eq!((record.state.as_str(), record.title.as_deref()), ("done", Some("fresh")));
    }

    concurrent_claims_never_share_a_job(store, _l) {
        loaded(&store, 401, &[G]).await;
        let mut runs = Vec::new();
        for _ in 0..4 {
            runs.push(store.begin_run(&info(), 0).await.expect("run"));
        }
        let claims = runs.iter().map(|&r| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let got = store
                        .claim(&Claim { run_id: r, provider: G, max: 7, now_ms: 10, lease_until_ms: 100_000 })
                        .await
                        .expect("claim");
                    if got.is_empty() {
                        return mine;
                    }
                    mine.extend(got.into_iter().map(|j| j.id));
                }
            })
        });
        let mut all = Vec::new();
        for c in claims {
            all.extend(c.await.expect("task"));
        }
        let total = all.len();
        let distinct: HashSet<i64> = all.into_iter().collect();
        assert_eq!(distinct.len(), total, "a lookup was leased twice");
        assert_eq!(total, 401);
    }

    claims_go_oldest_first_and_only_when_due(store, _l) {
        loaded(&store, 5, &[G]).await;
        let run = store.begin_run(&info(), 0).await.expect("run");
        let first = store
            .claim(&Claim { run_id: run, provider: G, max: 2, now_ms: 10, lease_until_ms: 1000 })
            .await
            .expect("claim");
        let isbns: Vec<String> = first.iter().map(|j| j.isbn.to_string()).collect();
        assert_eq!(isbns, [isbn(0).to_string(), isbn(1).to_string()]);
        // A retry due later is not claimable before its time.
        let retry = JobResult::Retry { at: 5000, error: "503".into(), refund: false };
        store.complete(&at(run, &[G], 20), &mut [ended(first[0].id, G, retry)]).await.expect("complete");
        let rest = store
            .claim(&Claim { run_id: run, provider: G, max: 10, now_ms: 30, lease_until_ms: 1000 })
            .await
            .expect("claim");
        assert_eq!(rest.len(), 3, "the retry waits for its time");
        assert_eq!(store.next_due_at(G, run).await.expect("due"), Some(5000));
        let later = store
            .claim(&Claim { run_id: run, provider: G, max: 10, now_ms: 5000, lease_until_ms: 9000 })
            .await
            .expect("claim");
        assert_eq!(later.len(), 1);
        assert_eq!(later[0].attempts, 2);
    }

    next_due_counts_the_leases_other_runs_hold(store, _l) {
        loaded(&store, 1, &[G]).await;
        let (a, b) = (
            store.begin_run(&info(), 0).await.expect("a"),
            store.begin_run(&info(), 0).await.expect("b"),
        );
        store
            .claim(&Claim { run_id: a, provider: G, max: 1, now_ms: 10, lease_until_ms: 7777 })
            .await
            .expect("claim");
        assert_eq!(store.next_due_at(G, a).await.expect("due"), None, "its own lease");
        assert_eq!(store.next_due_at(G, b).await.expect("due"), Some(7777));
        assert_eq!(store.next_due_at(OL, b).await.expect("due"), None);
    }

    dead_runs_lose_their_leases_and_are_marked_killed(store, _l) {
        loaded(&store, 2, &[G]).await;
        let dead = store.begin_run(&info(), 0).await.expect("run");
        let alive = store.begin_run(&info(), 0).await.expect("run");
        store
            .claim(&Claim { run_id: dead, provider: G, max: 1, now_ms: 10, lease_until_ms: i64::MAX })
            .await
            .expect("claim");
        store
            .claim(&Claim { run_id: alive, provider: G, max: 1, now_ms: 10, lease_until_ms: i64::MAX })
            .await
            .expect("claim");
        let me = store.begin_run(&info(), 20).await.expect("run");
        let back = store
            .recover_leases(me, 30, &|_| false)
            .await
            .expect("recover");
        assert_eq!(back, 2, "both runs are gone");
        assert_eq!(states(&store).await, [("pending", 2)].into());
        let record = store.record(isbn(0).as_str()).await.expect("record").expect("job");
        assert_eq!(record.attempts, 0, "the attempt of a killed run is refunded");
        assert_eq!(store.last_stop_reason().await.expect("reason"), None, "killed runs do not count");
    }

    give_backs_refund_and_results_follow_the_rules(store, _l) {
        loaded(&store, 4, &[G]).await;
        let run = store.begin_run(&info(), 0).await.expect("run");
        let c = store
            .claim(&Claim { run_id: run, provider: G, max: 4, now_ms: 10, lease_until_ms: 1000 })
            .await
            .expect("claim");
        let mut done = [
            ended(c[0].id, G, JobResult::GiveBack),
            ended(c[1].id, G, JobResult::NotFound { note: "no match".into() }),
            ended(c[2].id, G, JobResult::Failed { error: "HTTP 500".into() }),
            found(c[3].id, G, &c[3].isbn, "Book"),
        ];
        assert_eq!(store.complete(&at(run, &[G], 20), &mut done).await.expect("complete"), 4);
        assert_eq!(
            states(&store).await,
            [("done", 1), ("failed", 1), ("not_found", 1), ("pending", 1)].into()
        );
        let back = store.record(c[0].isbn.as_str()).await.expect("r").expect("job");
        assert_eq!(back.attempts, 0, "a give-back costs no attempt");
        let failed = store.record(c[2].isbn.as_str()).await.expect("r").expect("job");
        assert_eq!(failed.last_error.as_deref(), Some("HTTP 500"));
        assert_eq!(store.quota_day("d").await.expect("day").requests, 4);
        // Requeue the failed one: pending again, attempts fresh.
        let filter = RequeueFilter { states: vec![JobState::Failed], ..RequeueFilter::default() };
        assert_eq!(store.requeue(&filter, 30).await.expect("requeue"), 1);
        assert_eq!(
            states(&store).await,
            [("done", 1), ("not_found", 1), ("pending", 2)].into()
        );
    }

    a_commit_larger_than_one_statement_applies_every_result(store, _l) {
        // 300 results: more rows than one statement carries (256), so both the extra
        // statements and the closing one are used, with NULL padding in each.
        loaded(&store, 301, &[G]).await;
        let run = store.begin_run(&info(), 0).await.expect("run");
        let c = store
            .claim(&Claim { run_id: run, provider: G, max: 301, now_ms: 10, lease_until_ms: 1000 })
            .await
            .expect("claim");
        assert_eq!(c.len(), 301);
        let (stale, mine) = c.split_last().expect("claimed");
        let mut done: Vec<Completion> = mine
            .iter()
            .enumerate()
            .map(|(i, j)| match i % 3 {
                0 => found(j.id, G, &j.isbn, &format!("Book {i}")),
                1 => ended(j.id, G, JobResult::NotFound { note: "no match".into() }),
                _ => ended(j.id, G, JobResult::Retry { at: 5000, error: "503".into(), refund: true }),
            })
            .collect();
        assert_eq!(store.complete(&at(run, &[G], 20), &mut done).await.expect("complete"), 300);
        assert_eq!(
            states(&store).await,
            [("done", 100), ("not_found", 100), ("pending", 101)].into()
        );
        let last = &mine[297];
        let record = store.record(last.isbn.as_str()).await.expect("r").expect("job");
        assert_eq!(record.title.as_deref(), Some("Book 297"));
        let retried = store.record(mine[299].isbn.as_str()).await.expect("r").expect("job");
        assert_eq!((retried.attempts, retried.last_error.as_deref()), (0, Some("503")));
        assert_eq!(store.quota_day("d").await.expect("day").requests, 300);
        // The one not in the commit keeps its lease.
        let held = store.provider_records(stale.isbn.as_str()).await.expect("lookups");
        assert_eq!(held.iter().map(|l| l.state.as_str()).collect::<Vec<_>>(), ["in_progress"]);
    }

    load_is_idempotent_and_keeps_rejects_once(store, _l) {
        let mut b = batch(0..50);
        b.jobs.push(NewJob { isbn: isbn(3), line: 99 });
        b.rejects.push(Reject {
            line: 7,
            raw: "tab\there, back\\slash, newline\nand NUL \0".into(),
            reason: RejectReason::BadCheckDigit,
        });
        b.references.push((1, "ocm0001".into()));
        assert_eq!(store.save_load_batch("a.csv", &b, 0).await.expect("load"), 50);
        assert_eq!(store.save_load_batch("a.csv", &b, 0).await.expect("load"), 0);
        let status = store.status(0, "d").await.expect("status");
        assert_eq!(status.total, 50);
        assert_eq!(status.rejected_lines.get("bad-check-digit"), Some(&1));
        let lines: Vec<RejectedLine> = store.rejected_lines().try_collect().await.expect("rejects");
        assert_eq!(lines.len(), 1);
        assert!(lines[0].raw.starts_with("tab\there, back\\slash, newline\nand NUL "), "{:?}", lines[0].raw);
        let first = store.record(isbn(0).as_str()).await.expect("r").expect("job");
        assert_eq!(
            (first.source.as_deref(), first.source_line, first.source_ref.as_deref()),
            (Some("a.csv"), Some(1), Some("ocm0001"))
        );
        let records: Vec<Record> = store.records(&JobState::ALL).try_collect().await.expect("all");
        let order: Vec<i64> = records.iter().filter_map(|r| r.source_line).collect();
        assert_eq!(order, (1..=50).collect::<Vec<i64>>(), "load order");
    }

    concurrent_loads_of_overlapping_lists_keep_each_book_once(store, _l) {
        // Four loaders at once, each a window of 3,000 over the same 6,000 ISBNs.
        let loads = (0..4).map(|k| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut b = batch(k * 1_000..k * 1_000 + 3_000);
                b.jobs.sort_by(|x, y| x.isbn.as_str().cmp(y.isbn.as_str()));
                store.save_load_batch(&format!("list{k}"), &b, 0).await.expect("load")
            })
        });
        let mut new = 0;
        for l in loads {
            new += l.await.expect("task");
        }
        assert_eq!(new, 6_000, "each book counted new once");
        assert_eq!(store.status(0, "d").await.expect("status").total, 6_000);
    }

    two_providers_merge_with_provenance(store, _l) {
        loaded(&store, 1, &[G, OL]).await;
        let run = store.begin_run(&info(), 0).await.expect("run");
        let g = store
            .claim(&Claim { run_id: run, provider: G, max: 1, now_ms: 10, lease_until_ms: 1000 })
            .await
            .expect("claim");
        let o = store
            .claim(&Claim { run_id: run, provider: OL, max: 1, now_ms: 10, lease_until_ms: 1000 })
            .await
            .expect("claim");
        let mut from_ol = found(o[0].id, OL, &o[0].isbn, "Open title");
        if let JobResult::Done(book) = &mut from_ol.result {
            book.page_count = Some(321);
            book.ddc = Some("813.54".into());
            book.lcc = Some("PS3563.O8749 H37".into());
            book.lccn = Some("89007588".into());
        }
        store.complete(&at(run, &[G, OL], 20), &mut [from_ol]).await.expect("ol");
        store
            .complete(&at(run, &[G, OL], 30), &mut [found(g[0].id, G, &g[0].isbn, "Google title")])
            .await
            .expect("g");
        let r = store.record(g[0].isbn.as_str()).await.expect("r").expect("job");
        assert_eq!(r.title.as_deref(), Some("Google title"));
        assert_eq!(r.page_count, Some(321));
        assert_eq!(
            (r.ddc.as_deref(), r.lcc.as_deref(), r.lccn.as_deref()),
            (Some("813.54"), Some("PS3563.O8749 H37"), Some("89007588"))
        );
        assert_eq!(
            r.provenance.as_deref(),
            Some(
                r#"{"title":"google","page_count":"openlibrary","ddc":"openlibrary","lcc":"openlibrary","lccn":"openlibrary"}"#
            )
        );
        let per = store.provider_records(g[0].isbn.as_str()).await.expect("per provider");
        assert_eq!(per.len(), 2);
        let ol = per.iter().find(|p| p.provider == "openlibrary").expect("ol's record");
        assert_eq!(ol.lccn.as_deref(), Some("89007588"));
        assert_eq!(scalar(&store, "SELECT count(*) FROM books_flat WHERE ddc = '813.54'").await, 1);
        assert_eq!(store.status(0, "d").await.expect("s").lookups["openlibrary"]["done"], 1);
    }

    jobs_loaded_after_a_crawl_are_pending_for_each_provider_that_asked_every_job(store, _l) {
        loaded(&store, 3, &[G, OL]).await;
        let run = store.begin_run(&info(), 0).await.expect("run");
        let g = store
            .claim(&Claim { run_id: run, provider: G, max: 3, now_ms: 10, lease_until_ms: 1000 })
            .await
            .expect("claim");
        let mut done: Vec<Completion> =
            g.iter().map(|c| found(c.id, G, &c.isbn, "T")).collect();
        store.complete(&at(run, &[G, OL], 20), &mut done).await.expect("complete");
        // Two more jobs, no crawl since: no lookup exists for them yet.
        store.save_load_batch("t", &batch(3..5), 0).await.expect("load");
        let s = store.status(0, "d").await.expect("status");
        assert_eq!(s.lookups["google"]["pending"], 2, "{:?}", s.lookups);
        assert_eq!(s.lookups["google"]["done"], 3);
        assert_eq!(s.lookups["openlibrary"]["pending"], 5, "{:?}", s.lookups);
        // Google's ETA counts them: 2 open, at the 1 book a request measured.
        let eta = s.eta.clone().expect("an ETA");
        assert_eq!((eta.google_open, eta.books_per_request), (2, 1.0));
        // The next crawl makes them; the counts stay what they were.
        store.ensure_lookups(&everything(&[G, OL]), false, 0).await.expect("lookups");
        let again = store.status(0, "d").await.expect("status");
        assert_eq!(again.lookups, s.lookups);
        // The progress line's total: pending and leased, per provider.
        assert_eq!(store.open_lookups(G).await.expect("open"), 2);
        assert_eq!(store.open_lookups(OL).await.expect("open"), 5);
        let run = store.begin_run(&info(), 0).await.expect("run");
        store
            .claim(&Claim { run_id: run, provider: OL, max: 2, now_ms: 10, lease_until_ms: 1000 })
            .await
            .expect("claim");
        assert_eq!(store.open_lookups(OL).await.expect("open"), 5, "leased still open");
    }

    fill_missing_chains_the_next_provider(store, _l) {
        loaded(&store, 2, &[G]).await;
        store.ensure_lookups(&everything(&[G, OL]), true, 0).await.expect("lookups");
        let run = store.begin_run(&info(), 0).await.expect("run");
        let g = store
            .claim(&Claim { run_id: run, provider: G, max: 2, now_ms: 10, lease_until_ms: 1000 })
            .await
            .expect("claim");
        let mut missed = ended(g[0].id, G, JobResult::NotFound { note: "none".into() });
        missed.then = Some(OL);
        let hit = found(g[1].id, G, &g[1].isbn, "Here");
        store.complete(&at(run, &[G, OL], 20), &mut [missed, hit]).await.expect("complete");
        let o = store
            .claim(&Claim { run_id: run, provider: OL, max: 5, now_ms: 30, lease_until_ms: 1000 })
            .await
            .expect("claim");
        assert_eq!(o.len(), 1, "only the book Google did not find is asked of Open Library");
        assert_eq!(o[0].isbn, g[0].isbn);
    }

    a_provider_gets_lookups_only_for_the_isbns_routed_to_it(store, _l) {
        let dnb = Asked { provider: DNB, routes: Routes::Prefixes(vec!["9783".into()]) };
        store.save_load_batch("t", &of(&["9783", "9783", "9782", "9780"], 0), 0).await.expect("load");
        store.ensure_lookups(std::slice::from_ref(&dnb), false, 0).await.expect("lookups");
        assert_eq!(store.open_lookups(DNB).await.expect("open"), 2, "the German books only");
        // Loaded since: status counts the routed one as pending, not the other.
        store.save_load_batch("t", &of(&["9783", "9781"], 10), 0).await.expect("load");
        let s = store.status(0, "d").await.expect("status");
        assert_eq!(s.lookups["dnb"]["pending"], 3, "{:?}", s.lookups);
        store.ensure_lookups(std::slice::from_ref(&dnb), false, 0).await.expect("lookups");
        assert_eq!(store.open_lookups(DNB).await.expect("open"), 3);
        // A wider route reaches the jobs loaded before it, though the mark had passed them.
        let wide = Asked { provider: DNB, routes: Routes::Prefixes(vec!["9783".into(), "9782".into()]) };
        store.ensure_lookups(&[wide], false, 0).await.expect("lookups");
        assert_eq!(store.open_lookups(DNB).await.expect("open"), 4);
        store.ensure_lookups(&[Asked::everything(DNB)], false, 0).await.expect("lookups");
        assert_eq!(store.open_lookups(DNB).await.expect("open"), 6);
    }

    fill_missing_passes_over_a_provider_not_routed_to_the_isbn(store, _l) {
        // Open Library, then the DNB for German books, then Google; nothing found so far.
        store.save_load_batch("t", &of(&["9783", "9780"], 0), 0).await.expect("load");
        let dnb = Asked { provider: DNB, routes: Routes::Prefixes(vec!["9783".into()]) };
        let order = [Asked::everything(OL), dnb, Asked::everything(G)];
        store.ensure_lookups(&order, true, 0).await.expect("lookups");
        let run = store.begin_run(&info(), 0).await.expect("run");
        let o = store
            .claim(&Claim { run_id: run, provider: OL, max: 5, now_ms: 10, lease_until_ms: 1000 })
            .await
            .expect("claim");
        assert_eq!(o.len(), 2);
        let misses: Vec<Completion> = o
            .iter()
            .map(|l| ended(l.id, OL, JobResult::NotFound { note: "none".into() }))
            .collect();
        store.complete(&at(run, &[OL, DNB, G], 20), &mut misses.clone()).await.expect("complete");
        // A later crawl catches up on what this one's writer would have chained.
        store.ensure_lookups(&order, true, 30).await.expect("lookups");
        assert_eq!(store.open_lookups(DNB).await.expect("open"), 1, "the German book");
        let g = store
            .claim(&Claim { run_id: run, provider: G, max: 5, now_ms: 40, lease_until_ms: 1000 })
            .await
            .expect("claim");
        assert_eq!(g.len(), 1, "Google gets the English book now, the German one after the DNB");
        assert!(g[0].isbn.as_str().starts_with("9780"), "{}", g[0].isbn);
    }

    the_budget_is_shared_per_key_and_a_quota_stop_seen(store, _l) {
        let granted = store.reserve_budget("k", "d", 4, Some(6), false).await.expect("a");
        assert_eq!(granted.granted, 4);
        assert_eq!(store.reserve_budget("k", "d", 4, Some(6), false).await.expect("b").granted, 2);
        assert_eq!(store.reserve_budget("k", "d", 4, Some(6), false).await.expect("c").granted, 0);
        store.release_budget("k", "d", 3).await.expect("release");
        assert_eq!(store.reserve_budget("k", "d", 4, Some(6), false).await.expect("d").granted, 3);
        // Another key: a budget of its own.
        assert_eq!(store.reserve_budget("j", "d", 4, Some(6), false).await.expect("j").granted, 4);
        store.mark_quota_exhausted("k", "d", 1, 2).await.expect("mark");
        let stopped = store.reserve_budget("k", "d", 4, None, false).await.expect("e");
        assert_eq!((stopped.granted, stopped.quota_stopped), (0, true));
        let other = store.reserve_budget("j", "d", 1, None, false).await.expect("j2");
        assert_eq!((other.granted, other.quota_stopped), (1, false), "another key's quota");
        assert_eq!(store.reserve_budget("k", "d", 1, None, true).await.expect("probe").granted, 1);
        store.clear_quota_stop("k", "d").await.expect("clear");
        assert_eq!(store.reserve_budget("k", "d", 2, None, false).await.expect("f").granted, 2);
        assert_eq!(store.quota_day("d").await.expect("day").exhausted_at, None);
    }

    migrations_run_once_and_a_newer_schema_is_refused(store, location) {
        loaded(&store, 3, &[G]).await;
        let again = AnyStore::open(&location, false, std::time::Duration::from_secs(1))
            .await
            .expect("reopen");
        assert_eq!(again.status(0, "d").await.expect("status").total, 3);
        let future = "INSERT INTO _sqlx_migrations (version, description, success, checksum, \
                      execution_time) VALUES (9999, 'future', true, '\\x00', 0)";
        match &store {
            AnyStore::Sqlite(s) => {
                sqlx::query(&future.replace("'\\x00'", "x'00'"))
                    .execute(s.pool())
                    .await
                    .expect("insert");
            }
            AnyStore::Postgres(s) => {
                sqlx::query(&future.replace("'\\x00'", "'\\x00'::bytea"))
                    .execute(s.pool())
                    .await
                    .expect("insert");
            }
        }
        let err = AnyStore::open(&location, false, std::time::Duration::from_secs(1))
            .await
            .expect_err("newer schema");
        assert!(matches!(err, Error::NewerSchema { version: 9999, .. }), "{err}");
    }

    heartbeats_keep_leases_and_claimed_rows_stay_out_of_other_claims(store, _l) {
        loaded(&store, 3, &[G]).await;
        let a = store.begin_run(&info(), 0).await.expect("a");
        let b = store.begin_run(&info(), 0).await.expect("b");
        store
            .claim(&Claim { run_id: a, provider: G, max: 3, now_ms: 10, lease_until_ms: 100 })
            .await
            .expect("claim");
        store.heartbeat(a, 90, 10_000).await.expect("beat");
        assert_eq!(store.recover_leases(b, 5000, &|_| true).await.expect("recover"), 0);
        assert!(store
            .claim(&Claim { run_id: b, provider: G, max: 3, now_ms: 5000, lease_until_ms: 9000 })
            .await
            .expect("claim")
            .is_empty());
        assert_eq!(store.open_jobs().await.expect("open"), 3);
    }

    a_load_keeps_its_summary_and_its_rejects_group_by_reason(store, _l) {
        let mut b = batch(0..3);
        b.rejects = vec![
            reject(4, "12345", RejectReason::WrongLength),
            reject(5, "978000000000X", RejectReason::MisplacedX),
            reject(6, "1234", RejectReason::WrongLength),
        ];
        assert_eq!(store.save_load_batch("list.csv", &b, 5).await.expect("load"), 3);
        let summary = LoadRecord {
            source: "list.csv".into(),
            lines: 6,
            valid: 3,
            queued: 3,
            rejected: 3,
            read_as: Some("csv".into()),
            problem: Some("a NUL \0 in a name".into()),
        };
        store.record_load(&summary, 6).await.expect("record load");
        assert_eq!(scalar(&store, "SELECT count(*) FROM loads").await, 1);
        assert_eq!(
            scalar(&store, "SELECT count(*) FROM loads WHERE problem LIKE '%\u{FFFD}%'").await,
            1,
            "a NUL is stored as U+FFFD on both backends"
        );
        let groups = store.reject_groups(1).await.expect("groups");
        let reasons: Vec<(&str, u64, usize)> = groups
            .iter()
            .map(|g| (g.reason.as_str(), g.count, g.examples.len()))
            .collect();
        assert_eq!(reasons, [("wrong-length", 2, 1), ("misplaced-x", 1, 1)]);
        assert_eq!(groups[0].examples[0].raw, "12345", "the first line of its reason");
        let lines: Vec<RejectedLine> = store.rejected_lines().try_collect().await.expect("lines");
        assert_eq!(lines.iter().map(|l| l.line).collect::<Vec<_>>(), [4, 5, 6]);
        let overview = store.overview(10, "d").await.expect("overview");
        assert_eq!(overview.sources.len(), 1);
        let source = &overview.sources[0];
        assert_eq!(
            (source.source.as_str(), source.lines, source.queued, source.rejected, source.open),
            ("list.csv", 6, 3, 3, 3)
        );
        assert_eq!(overview.rejects.len(), 2);
        assert_eq!(overview.rejects[0].examples.len(), 2, "the report shows two of each");
    }

    a_run_ends_with_its_reason_and_each_lanes_batch_size(store, _l) {
        loaded(&store, 2, &[G, OL]).await;
        assert_eq!(store.last_stop_reason().await.expect("none yet"), None);
        let run = store.begin_run(&info(), 0).await.expect("run");
        let g = store
            .claim(&Claim { run_id: run, provider: G, max: 2, now_ms: 10, lease_until_ms: 1000 })
            .await
            .expect("claim");
        let mut done: Vec<Completion> = g.iter().map(|c| found(c.id, G, &c.isbn, "T")).collect();
        assert_eq!(store.complete(&at(run, &[G], 20), &mut done).await.expect("complete"), 2);
        let end = RunEnd {
            stop_reason: "quota".into(),
            batch_sizes: vec![(G, 20), (OL, 1)],
        };
        store.end_run(run, &end, 30).await.expect("end");
        assert_eq!(store.last_stop_reason().await.expect("reason").as_deref(), Some("quota"));
        assert_eq!(
            scalar(&store, "SELECT batch_size FROM run_providers WHERE provider = 'google'").await,
            20
        );
        assert_eq!(
            scalar(&store, "SELECT requests FROM run_providers WHERE provider = 'google'").await,
            2,
            "the commit's counts and the end's batch size share one row"
        );
        assert_eq!(
            scalar(&store, "SELECT batch_size FROM run_providers WHERE provider = 'openlibrary'").await,
            1
        );
        // A killed run does not hide the last real stop from the next crawl.
        let killed = store.begin_run(&info(), 40).await.expect("run");
        let gone = RunEnd { stop_reason: "killed".into(), batch_sizes: vec![] };
        store.end_run(killed, &gone, 50).await.expect("end");
        assert_eq!(store.last_stop_reason().await.expect("reason").as_deref(), Some("quota"));
        let overview = store.overview(60, "d").await.expect("overview");
        let runs: Vec<(i64, Option<&str>, i64, i64)> = overview
            .runs
            .iter()
            .map(|r| (r.id, r.stop_reason.as_deref(), r.requests, r.done))
            .collect();
        assert_eq!(runs, [(killed.0, Some("killed"), 0, 0), (run.0, Some("quota"), 2, 2)]);
        assert_eq!(overview.quota_days, [("d".to_string(), 2)]);
    }

    the_overview_counts_each_providers_books_and_misses(store, _l) {
        loaded(&store, 3, &[G, OL]).await;
        let run = store.begin_run(&info(), 0).await.expect("run");
        let g = store
            .claim(&Claim { run_id: run, provider: G, max: 3, now_ms: 10, lease_until_ms: 1000 })
            .await
            .expect("claim");
        let o = store
            .claim(&Claim { run_id: run, provider: OL, max: 3, now_ms: 10, lease_until_ms: 1000 })
            .await
            .expect("claim");
        // Google finds the first book; Open Library the first two; the third nobody.
        let miss = || JobResult::NotFound { note: "no match".into() };
        let mut done = vec![
            found(g[0].id, G, &g[0].isbn, "From Google"),
            ended(g[1].id, G, miss()),
            ended(g[2].id, G, miss()),
            found(o[0].id, OL, &o[0].isbn, "From OL"),
            found(o[1].id, OL, &o[1].isbn, "Only OL"),
            ended(o[2].id, OL, miss()),
        ];
        assert_eq!(store.complete(&at(run, &[G, OL], 20), &mut done).await.expect("complete"), 6);
        let overview = store.overview(30, "d").await.expect("overview");
        let providers: Vec<(&str, u64, i64)> = overview
            .providers
            .iter()
            .map(|p| (p.provider.as_str(), p.only_here, p.completeness.records))
            .collect();
        assert_eq!(providers, [("google", 0, 1), ("openlibrary", 1, 2)]);
        assert_eq!(overview.merged.records, 2);
        let misses: u64 = overview.failures.iter().map(|f| f.count as u64).sum();
        assert_eq!(misses, 3, "{:?}", overview.failures);
        assert!(overview.failures.iter().all(|f| f.state == "not_found" && f.error == "no match"));
        let mut titles: Vec<Option<String>> =
            overview.recent.iter().map(|b| b.title.clone()).collect();
        titles.sort();
        assert_eq!(titles, [Some("From Google".into()), Some("Only OL".into())]);
        assert_eq!(overview.status.jobs["done"], 2);
        assert_eq!(overview.status.jobs["not_found"], 1);
    }

    a_quota_stop_marks_the_day_and_the_key_together_and_a_probe_clears_both(store, _l) {
        store.mark_quota_exhausted("k", "d", 100, 200).await.expect("mark");
        assert_eq!(store.quota_day("d").await.expect("day").exhausted_at, Some(100));
        let r = store.reserve_budget("k", "d", 10, None, false).await.expect("reserve");
        assert_eq!((r.granted, r.quota_stopped), (0, true));
        let probe = store.reserve_budget("k", "d", 1, None, true).await.expect("probe");
        assert_eq!((probe.granted, probe.quota_stopped), (1, true));
        store.clear_quota_stop("k", "d").await.expect("clear");
        assert_eq!(store.quota_day("d").await.expect("day").exhausted_at, None);
        assert_eq!(
            scalar(&store, "SELECT count(*) FROM key_days WHERE exhausted_at IS NOT NULL").await,
            0
        );
        let after = store.reserve_budget("k", "d", 10, Some(5), false).await.expect("reserve");
        assert_eq!((after.granted, after.quota_stopped), (4, false), "the probe's unit counts");
        store.release_budget("k", "d", 3).await.expect("release");
        let again = store.reserve_budget("k", "d", 10, Some(5), false).await.expect("reserve");
        assert_eq!(again.granted, 3, "released units can be reserved again");
    }

}
