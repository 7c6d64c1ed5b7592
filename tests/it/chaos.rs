//! The promise "kill it any time, nothing is lost, nothing stored is fetched again", tried
//! hard: a faulty fake API and SIGKILL at random moments, at least 8 times, then a run to the
//! end. The seed is printed; set CHAOS_SEED to replay a failure.

use crate::common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{FAST, KEY, Scratch, crawl_binary, isbns, kill_after, text};
use isbn_crawler::ExitCode;
use isbn_crawler::fake_api::{FakeApi, FakeConfig, FaultRates, OpenLibraryConfig, title_for};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::Row;

const ISBNS: usize = 3_000;
const KILLS: usize = 8;
const CONCURRENCY: u32 = 16;
const MAX_ATTEMPTS: i64 = 8;

/// Each lookup with its provider's stored title: (isbn13, provider, state, attempts, title).
async fn lookup_rows(s: &Scratch) -> Vec<(String, String, String, i64, Option<String>)> {
    let store = s.store().await;
    sqlx::query_as(
        "SELECT l.isbn13, l.provider, l.state, l.attempts, p.title
         FROM lookups l LEFT JOIN provider_books p
           ON p.isbn13 = l.isbn13 AND p.provider = l.provider",
    )
    .fetch_all(store.pool())
    .await
    .expect("query")
}

/// The last run after the kills, to its end (0, or 4 where some lookups failed for good),
/// leaves no lookup open.
async fn every_lookup_terminal(s: &Scratch, last: tokio::process::Command, seed: u64) {
    let (code, output) = final_run(last).await;
    assert!(matches!(code, Some(0 | 4)), "seed {seed}: {output}");
    let open = s
        .scalar("SELECT count(*) FROM lookups WHERE state IN ('pending', 'in_progress')")
        .await;
    assert_eq!(open, 0, "seed {seed}: every lookup terminal");
}

/// Faults every half of the fake serves in the multi-provider rounds.
fn storm(seed: u64) -> FaultRates {
    FaultRates {
        unavailable: 0.04,
        reset: 0.03,
        truncated: 0.03,
        stall: 0.01,
        stall_for: Duration::from_secs(2),
        seed,
    }
}

/// The run to the end after the kills: its exit code and output.
async fn final_run(mut cmd: tokio::process::Command) -> (Option<i32>, String) {
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("the last run finishes within 120 s")
        .expect("run");
    let (stdout, stderr) = text(&out);
    (out.status.code(), format!("{stdout}{stderr}"))
}

/// `CHAOS_SEED`, or a fresh one (printed by the tests, so a failure can be replayed).
fn seed() -> u64 {
    std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
}

/// Runs `crawl()` and SIGKILLs it after a random number of further requests, `kills` times
/// (fewer if a run ends by itself first). Returns how many kills there were.
async fn kill_rounds(
    api: &FakeApi,
    crawl: impl Fn() -> tokio::process::Command,
    kills: usize,
    rng: &mut StdRng,
) -> usize {
    let mut done = 0;
    for round in 1..=kills * 5 {
        if done == kills {
            break;
        }
        let target = api.total_requests() + rng.random_range(20..250);
        match kill_after(api, crawl(), target).await {
            Ok(()) => done += 1,
            // It finished first: nothing left to kill; the final run checks the rest.
            Err(status) => {
                eprintln!("round {round}: the crawl ended by itself ({status})");
                break;
            }
        }
    }
    done
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_rounds_under_a_fault_storm_lose_nothing_and_fetch_nothing_twice() {
    let seed = seed();
    eprintln!("chaos seed: {seed} (replay with CHAOS_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);

    let s = Scratch::new();
    let list = isbns(ISBNS);
    assert_eq!(s.load_lines(&list).await, ExitCode::Success);
    // 10% of the ISBNs are unknown to the catalogue.
    let unknown: HashSet<String> = list
        .iter()
        .filter(|_| rng.random_bool(0.10))
        .cloned()
        .collect();
    let api = FakeApi::start(FakeConfig {
        latency: Duration::from_millis(2),
        unknown: unknown.clone(),
        random: FaultRates {
            unavailable: 0.05,
            reset: 0.03,
            truncated: 0.03,
            stall: 0.01,
            stall_for: Duration::from_secs(2),
            seed,
        },
        ..FakeConfig::default()
    })
    .await
    .expect("fake");
    let crawl = || {
        let mut cmd = crawl_binary(&s, &api, &["--concurrency", "16"]);
        cmd.args(FAST);
        cmd
    };

    let kills = kill_rounds(&api, crawl, KILLS, &mut rng).await;

    let (code, output) = final_run(crawl()).await;
    assert!(
        code == Some(0) || code == Some(i32::from(ExitCode::JobsFailed.code())),
        "seed {seed}: {output}"
    );
    eprintln!(
        "seed {seed}: {kills} kills, {} requests",
        api.total_requests()
    );

    // Every job is terminal.
    let states = s.states().await;
    assert_eq!(states.get("pending"), None, "seed {seed}: {states:?}");
    assert_eq!(states.get("in_progress"), None, "seed {seed}: {states:?}");

    let store = s.store().await;
    let rows = sqlx::query(
        "SELECT j.isbn13, j.state, j.attempts, j.last_error, b.title, b.fetched_at
         FROM jobs j LEFT JOIN books b ON b.isbn13 = j.isbn13",
    )
    .fetch_all(store.pool())
    .await
    .expect("query");
    let asked = api.requests_per_isbn();
    let last_asked = api.last_request_at();
    let mut total_attempts = 0i64;
    for row in &rows {
        let isbn: String = row.get(0);
        let state: String = row.get(1);
        let attempts: i64 = row.get(2);
        let last_error: Option<String> = row.get(3);
        let title: Option<String> = row.get(4);
        let fetched_at: Option<i64> = row.get(5);
        total_attempts += attempts;
        match state.as_str() {
            // books rows equal done jobs, each with the right title.
            "done" => assert_eq!(title, Some(title_for(&isbn)), "seed {seed}: {isbn}"),
            "not_found" => {
                assert!(title.is_none());
                assert!(unknown.contains(&isbn), "seed {seed}: {isbn} is known");
            }
            "failed" => {
                assert!(title.is_none());
                assert!(
                    last_error.is_some_and(|e| !e.is_empty()),
                    "seed {seed}: {isbn}"
                );
                assert_eq!(attempts, MAX_ATTEMPTS);
            }
            other => panic!("seed {seed}: {isbn} is {other}"),
        }
        // Nothing stored was asked for again after it was stored.
        if let (Some(stored), Some(last)) = (fetched_at, last_asked.get(&isbn)) {
            let last_ms = last
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            assert!(
                last_ms <= stored,
                "seed {seed}: {isbn} asked at {last_ms} after it was stored at {stored}"
            );
        }
        // Asked at most once per attempt, plus once per kill that caught it in flight.
        let n = i64::from(asked.get(&isbn).copied().unwrap_or(0));
        assert!(n >= 1, "seed {seed}: {isbn} never asked");
        assert!(
            n <= attempts + kills as i64,
            "seed {seed}: {isbn} asked {n} times for {attempts} attempts and {kills} kills"
        );
    }
    assert_eq!(rows.len(), ISBNS);
    let books = s.scalar("SELECT count(*) FROM books").await;
    assert_eq!(Some(&books), states.get("done"));

    // In total: one request per attempt, plus what kills could cut off (requests in flight
    // and results answered but not yet committed, per kill).
    let per_kill = i64::from(CONCURRENCY) + 2 * (4 * i64::from(CONCURRENCY) + 64);
    let total = api.total_requests() as i64;
    assert!(
        total <= total_attempts + kills as i64 * per_kill,
        "seed {seed}: {total} requests for {total_attempts} attempts and {kills} kills"
    );
    // The key is nowhere in the database's files.
    for file in common::db_files(&s.db()) {
        let bytes = std::fs::read(&file).expect("read db");
        assert!(!bytes.windows(KEY.len()).any(|w| w == KEY.as_bytes()));
    }
    let per_isbn: HashMap<_, _> = asked;
    eprintln!(
        "seed {seed}: {:.3} requests per ISBN",
        per_isbn.values().map(|&n| f64::from(n)).sum::<f64>() / ISBNS as f64
    );
}

/// The same promise with both providers under faults: every lookup ends terminal, none is
/// asked more than once per attempt (plus once per kill), no wrong book is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_rounds_with_both_providers_lose_nothing() {
    const N: usize = 1_000;
    const ROUNDS: usize = 5;
    let seed = seed();
    eprintln!("chaos seed (two providers): {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let s = Scratch::new();
    let list = isbns(N);
    assert_eq!(s.load_lines(&list).await, ExitCode::Success);
    let pick = |rng: &mut StdRng| -> HashSet<String> {
        list.iter()
            .filter(|_| rng.random_bool(0.10))
            .cloned()
            .collect()
    };
    let (google_unknown, ol_unknown) = (pick(&mut rng), pick(&mut rng));
    let faults = storm(seed);
    let api = FakeApi::start(FakeConfig {
        latency: Duration::from_millis(2),
        unknown: google_unknown.clone(),
        random: faults.clone(),
        openlibrary: OpenLibraryConfig {
            unknown: ol_unknown.clone(),
            random: faults,
            ..OpenLibraryConfig::default()
        },
        ..FakeConfig::default()
    })
    .await
    .expect("fake");
    let crawl = || {
        let both = [
            "--providers",
            "google,openlibrary",
            "--concurrency",
            "8",
            "--openlibrary-batch",
            "10",
            "--openlibrary-concurrency",
            "4",
        ];
        let mut cmd = crawl_binary(&s, &api, &both);
        cmd.args(FAST);
        cmd
    };
    let kills = kill_rounds(&api, crawl, ROUNDS, &mut rng).await;
    every_lookup_terminal(&s, crawl(), seed).await;
    assert_eq!(s.scalar("SELECT count(*) FROM lookups").await, 2 * N as i64);
    let rows = lookup_rows(&s).await;
    let (google_asked, ol_asked) = (api.requests_per_isbn(), api.openlibrary_requests_per_isbn());
    for (isbn, provider, state, attempts, title) in rows {
        let (unknown, asked, want_title) = if provider == "google" {
            (&google_unknown, &google_asked, title_for(&isbn))
        } else {
            (
                &ol_unknown,
                &ol_asked,
                format!("{} (Open Library)", title_for(&isbn)),
            )
        };
        match state.as_str() {
            "done" => assert_eq!(title, Some(want_title), "seed {seed}: {provider} {isbn}"),
            "not_found" => assert!(unknown.contains(&isbn), "seed {seed}: {provider} {isbn}"),
            "failed" => assert_eq!(attempts, MAX_ATTEMPTS, "seed {seed}: {provider} {isbn}"),
            other => panic!("seed {seed}: {provider} {isbn} is {other}"),
        }
        let n = i64::from(asked.get(&isbn).copied().unwrap_or(0));
        assert!(
            n <= attempts + kills as i64,
            "seed {seed}: {provider} asked for {isbn} {n} times for {attempts} attempts and {kills} kills"
        );
    }
    // A job is done exactly when some provider stored its book.
    assert_eq!(
        s.scalar("SELECT count(*) FROM jobs WHERE state = 'done'")
            .await,
        s.scalar("SELECT count(DISTINCT isbn13) FROM provider_books")
            .await
    );
    assert_eq!(
        s.scalar("SELECT count(*) FROM books").await,
        s.scalar("SELECT count(*) FROM jobs WHERE state = 'done'")
            .await
    );
    eprintln!(
        "seed {seed}: {kills} kills, {} requests ({} Google, {} Open Library)",
        api.total_requests(),
        api.google_requests(),
        api.openlibrary_requests().len()
    );
}

/// Four providers, two of them national libraries routed by registration group, under faults
/// in every half of the fake (the catalogues' 503 pages, resets, cut-short XML, temporary
/// diagnostics and word-index accidents too): every lookup ends terminal, none is asked more
/// than its attempts allow (plus once per kill), and no wrong book is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_rounds_with_four_providers_lose_nothing() {
    const N: usize = 600;
    const ROUNDS: usize = 5;
    let seed = seed();
    eprintln!("chaos seed (four providers): {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let s = Scratch::new();
    // Half German (DNB's), half English (LoC's).
    let list: Vec<String> = (0..N as u64)
        .map(|i| {
            let prefix = if i % 2 == 0 { "9783" } else { "9780" };
            isbn_crawler::isbn::synthetic_in(prefix, 200_000 + i).to_string()
        })
        .collect();
    assert_eq!(s.load_lines(&list).await, ExitCode::Success);
    let mut pick = |p: f64| -> HashSet<String> {
        list.iter()
            .filter(|_| rng.random_bool(p))
            .cloned()
            .collect()
    };
    let (google_unknown, ol_unknown, sru_unknown, accidents) =
        (pick(0.1), pick(0.1), pick(0.1), pick(0.05));
    let faults = storm(seed);
    let api = FakeApi::start(FakeConfig {
        latency: Duration::from_millis(2),
        unknown: google_unknown.clone(),
        random: faults.clone(),
        openlibrary: OpenLibraryConfig {
            unknown: ol_unknown.clone(),
            random: faults.clone(),
            ..OpenLibraryConfig::default()
        },
        sru: isbn_crawler::fake_api::SruConfig {
            unknown: sru_unknown.clone(),
            false_positive: accidents.clone(),
            random: faults,
            temporary_rate: 0.03,
            ..Default::default()
        },
        ..FakeConfig::default()
    })
    .await
    .expect("fake");
    let sru = common::sru_args(&api);
    let crawl = || {
        let four = [
            "--providers",
            "google,openlibrary,dnb,loc",
            "--concurrency",
            "8",
            "--openlibrary-batch",
            "10",
            "--openlibrary-concurrency",
            "4",
            "--sru-batch",
            "8",
        ];
        let mut cmd = crawl_binary(&s, &api, &four);
        cmd.args(&sru).args(FAST);
        cmd
    };
    let kills = kill_rounds(&api, crawl, ROUNDS, &mut rng).await;
    every_lookup_terminal(&s, crawl(), seed).await;
    // Each book asked of Google, Open Library and the one catalogue of its country.
    assert_eq!(s.scalar("SELECT count(*) FROM lookups").await, 3 * N as i64);
    let rows = lookup_rows(&s).await;
    let counted = |name: &str| -> HashMap<String, i64> {
        let mut per = HashMap::new();
        for isbn in api.sru_asked(name).1 {
            *per.entry(isbn).or_insert(0) += 1;
        }
        per
    };
    let (dnb_asked, loc_asked) = (counted("dnb"), counted("loc"));
    let (google_asked, ol_asked) = (api.requests_per_isbn(), api.openlibrary_requests_per_isbn());
    for (isbn, provider, state, attempts, title) in rows {
        let (missing, asked, want_title, per_attempt): (HashSet<&String>, i64, String, i64) =
            match provider.as_str() {
                "google" => (
                    google_unknown.iter().collect(),
                    i64::from(google_asked.get(&isbn).copied().unwrap_or(0)),
                    title_for(&isbn),
                    1,
                ),
                "openlibrary" => (
                    ol_unknown.iter().collect(),
                    i64::from(ol_asked.get(&isbn).copied().unwrap_or(0)),
                    format!("{} (Open Library)", title_for(&isbn)),
                    1,
                ),
                catalogue => {
                    assert!(
                        (catalogue == "dnb") == isbn.starts_with("9783"),
                        "seed {seed}: {catalogue} asked about {isbn}"
                    );
                    let asked = if catalogue == "dnb" {
                        &dnb_asked
                    } else {
                        &loc_asked
                    };
                    // LoC's batch miss is no verdict: a miss is asked once more, alone, in the
                    // same claim.
                    let per_attempt = if catalogue == "loc" { 2 } else { 1 };
                    (
                        sru_unknown.union(&accidents).collect(),
                        asked.get(&isbn).copied().unwrap_or(0),
                        title_for(&isbn),
                        per_attempt,
                    )
                }
            };
        match state.as_str() {
            "done" => assert_eq!(title, Some(want_title), "seed {seed}: {provider} {isbn}"),
            "not_found" => assert!(missing.contains(&isbn), "seed {seed}: {provider} {isbn}"),
            "failed" => assert_eq!(attempts, MAX_ATTEMPTS, "seed {seed}: {provider} {isbn}"),
            other => panic!("seed {seed}: {provider} {isbn} is {other}"),
        }
        // A kill can cut off a claim's requests (LoC's: the batch and the one alone) after
        // they were sent; lease recovery gives the attempt back.
        assert!(
            asked <= per_attempt * (attempts + kills as i64),
            "seed {seed}: {provider} asked for {isbn} {asked} times for {attempts} attempts and {kills} kills"
        );
    }
    // A word-index accident is never stored as the book.
    for isbn in &accidents {
        let stored = s
            .scalar(&format!(
                "SELECT count(*) FROM provider_books WHERE isbn13 = '{isbn}'
                 AND provider IN ('dnb', 'loc')"
            ))
            .await;
        assert_eq!(stored, 0, "seed {seed}: accident {isbn} stored");
    }
    assert_eq!(
        s.scalar("SELECT count(*) FROM books").await,
        s.scalar("SELECT count(*) FROM jobs WHERE state = 'done'")
            .await
    );
    eprintln!(
        "seed {seed}: {kills} kills, {} requests ({} SRU)",
        api.total_requests(),
        api.sru_requests()
    );
}
