//! Two sources: Open Library beside Google. Every row of Open Library's outcome table end to
//! end, precedence and provenance, `--fill missing`, Open Library alone without a key, a Google
//! quota stop while Open Library goes on, and upgrading a database of the previous release.

use crate::common;

use std::collections::HashSet;
use std::time::Duration;

use common::{Scratch, binary_async, crawl, loaded, start_fake, text};
use isbn_crawler::ExitCode;
use isbn_crawler::fake_api::{FakeConfig, OpenLibraryConfig, OpenLibraryFault, title_for};

const BOTH: [&str; 2] = ["--providers", "google,openlibrary"];

fn set(list: &[String]) -> HashSet<String> {
    list.iter().cloned().collect()
}

/// Lookups of one provider per state.
async fn lookups(s: &Scratch, provider: &str) -> std::collections::BTreeMap<String, i64> {
    s.grouped(&format!(
        "SELECT state, count(*) FROM lookups WHERE provider = '{provider}' GROUP BY state"
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_library_alone_needs_no_key() {
    let (s, list) = loaded(60).await;
    let api = start_fake(FakeConfig::default()).await;
    let url = api.url();
    let out = binary_async()
        .args(["--db", &s.db_str(), "crawl", "--providers", "openlibrary"])
        .args(["--openlibrary-url", &url, "--openlibrary-rate", "unlimited"])
        .output()
        .await
        .expect("run");
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert_eq!(s.states().await, [("done".to_string(), 60)].into());
    assert_eq!(api.google_requests(), 0);
    // 60 ISBNs at the default 25 per request: 3 requests.
    let mut sizes = api.openlibrary_requests();
    sizes.sort_unstable();
    assert_eq!(sizes, [10, 25, 25]);
    let titles = s.strings("SELECT title FROM books ORDER BY isbn13").await;
    let mut want: Vec<String> = list
        .iter()
        .map(|i| format!("{} (Open Library)", title_for(i)))
        .collect();
    want.sort();
    assert_eq!(titles, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_key_google_in_the_list_names_both_fixes() {
    let (s, _) = loaded(3).await;
    let out = binary_async()
        .args(["--db", &s.db_str(), "crawl"])
        .output()
        .await
        .expect("run");
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(
        stderr.contains("GOOGLE_BOOKS_API_KEY") && stderr.contains("--providers openlibrary"),
        "{stderr}"
    );
    // Above 3/s against the real Open Library is refused.
    let out = binary_async()
        .args(["--db", &s.db_str(), "crawl", "--providers", "openlibrary"])
        .args(["--openlibrary-rate", "5/s"])
        .output()
        .await
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("at most 3 requests a second"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_merge_by_precedence_and_provenance_says_from_where() {
    let (s, list) = loaded(6).await;
    let (google_only, ol_only) = (&list[0], &list[1]);
    let mut config = FakeConfig::default();
    config.unknown.insert(ol_only.clone());
    config.openlibrary.unknown.insert(google_only.clone());
    let api = start_fake(config).await;
    assert_eq!(crawl(&s, &api, &BOTH).await, ExitCode::Success);
    assert_eq!(s.states().await, [("done".to_string(), 6)].into());
    assert_eq!(lookups(&s, "google").await["done"], 5);
    assert_eq!(lookups(&s, "openlibrary").await["done"], 5);
    assert_eq!(s.scalar("SELECT count(*) FROM provider_books").await, 10);

    let field = |isbn: &str, sql: &str| format!("SELECT {sql} FROM books WHERE isbn13 = '{isbn}'");
    // Both know list[2]: Google first for what both have; Open Library's edition key kept.
    let both = &list[2];
    assert_eq!(s.strings(&field(both, "title")).await, [title_for(both)]);
    assert_eq!(
        s.strings(&field(both, "provenance ->> 'title'")).await,
        ["google"]
    );
    assert_eq!(
        s.scalar(&field(both, "openlibrary_key IS NOT NULL")).await,
        1
    );
    // Only Open Library has it: every field is Open Library's, and says so.
    assert_eq!(
        s.strings(&field(ol_only, "title")).await,
        [format!("{} (Open Library)", title_for(ol_only))]
    );
    assert_eq!(
        s.strings(&field(
            ol_only,
            "(SELECT group_concat(DISTINCT value) FROM json_each(provenance))"
        ))
        .await,
        ["openlibrary"]
    );
    assert_eq!(s.scalar(&field(ol_only, "description IS NULL")).await, 1);
    // Only Google: the description (Open Library's data has none) is Google's.
    assert_eq!(
        s.strings(&field(google_only, "provenance ->> 'description'"))
            .await,
        ["google"]
    );

    // Open Library first: its title wins for a book both know.
    let (s2, _) = common::loaded(6).await;
    let api2 = start_fake(FakeConfig::default()).await;
    let first = ["--providers", "openlibrary,google"];
    assert_eq!(crawl(&s2, &api2, &first).await, ExitCode::Success);
    assert_eq!(
        s2.strings(&field(both, "provenance ->> 'title'")).await,
        ["openlibrary"]
    );
    assert_eq!(
        s2.strings(&field(both, "provenance ->> 'description'"))
            .await,
        ["google"],
        "a field Open Library lacks still comes from Google"
    );
    // show prints both records and where each field came from.
    let out = binary_async()
        .args(["--db", &s2.db_str(), "show", both])
        .output()
        .await
        .expect("show");
    let (stdout, _) = text(&out);
    assert!(
        stdout.contains("google") && stdout.contains("openlibrary"),
        "{stdout}"
    );
    assert!(stdout.contains("title (openlibrary)"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fill_missing_spends_google_requests_only_on_open_library_misses() {
    let (s, list) = loaded(100).await;
    let missing: HashSet<String> = list.iter().step_by(5).cloned().collect();
    let config = FakeConfig {
        openlibrary: OpenLibraryConfig {
            unknown: missing.clone(),
            ..OpenLibraryConfig::default()
        },
        ..FakeConfig::default()
    };
    let api = start_fake(config.clone()).await;
    let args = ["--providers", "openlibrary,google", "--fill", "missing"];
    assert_eq!(crawl(&s, &api, &args).await, ExitCode::Success);
    assert_eq!(s.states().await, [("done".to_string(), 100)].into());
    // 20 Google requests instead of 100: only the ISBNs Open Library did not find.
    assert_eq!(api.google_requests(), 20);
    assert_eq!(
        set(&api.requests_per_isbn().into_keys().collect::<Vec<_>>()),
        missing
    );
    assert_eq!(lookups(&s, "google").await["done"], 20);
    // Each provider's part of the run is a row of its own; they add up to the run's.
    assert_eq!(
        s.grouped("SELECT provider, requests FROM run_providers")
            .await["google"],
        20
    );
    assert_eq!(
        s.grouped("SELECT provider, done FROM run_providers").await["openlibrary"],
        80
    );
    assert_eq!(
        s.grouped("SELECT provider, not_found FROM run_providers")
            .await["openlibrary"],
        20
    );
    assert_eq!(
        s.scalar("SELECT sum(requests) FROM run_providers").await,
        s.scalar("SELECT requests FROM runs").await
    );

    // The same list with --fill all asks Google for all 100.
    let (s2, _) = loaded(100).await;
    let api2 = start_fake(config).await;
    let all = ["--providers", "openlibrary,google"];
    assert_eq!(crawl(&s2, &api2, &all).await, ExitCode::Success);
    assert_eq!(api2.google_requests(), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_google_quota_stop_pauses_google_alone() {
    let (s, _) = loaded(40).await;
    let api = start_fake(FakeConfig {
        daily_quota: Some(10),
        ..FakeConfig::default()
    })
    .await;
    let out = common::crawl_binary(&s, &api, &BOTH)
        .arg("--concurrency")
        .arg("1")
        .output()
        .await
        .expect("run");
    let (stdout, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(ExitCode::QuotaExhausted.code().into()),
        "{stdout}{stderr}"
    );
    // Open Library went on to the end; every job has a book.
    assert_eq!(lookups(&s, "openlibrary").await["done"], 40);
    assert_eq!(s.states().await, [("done".to_string(), 40)].into());
    let google = lookups(&s, "google").await;
    assert_eq!(google["done"], 10);
    assert_eq!(google["pending"], 30, "{google:?}");
    assert_eq!(
        s.scalar(
            "SELECT sum(attempts) FROM lookups WHERE provider = 'google' AND state = 'pending'"
        )
        .await,
        0,
        "the stop cost no attempt"
    );
    // Only Google's requests count against its quota.
    assert_eq!(s.scalar("SELECT sum(requests) FROM quota_days").await, 11);
}

/// A fake whose Open Library half answers the first requests with `faults`, then normally.
async fn open_library_with(faults: Vec<OpenLibraryFault>) -> isbn_crawler::fake_api::FakeApi {
    start_fake(FakeConfig {
        openlibrary: OpenLibraryConfig {
            scripted: faults.into(),
            ..OpenLibraryConfig::default()
        },
        ..FakeConfig::default()
    })
    .await
}

const OL_ONLY: [&str; 2] = ["--providers", "openlibrary"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_library_outcome_table_end_to_end() {
    use OpenLibraryFault::*;
    // Transient: 502/504 HTML, resets, truncated JSON, a stall past the timeout: retried.
    for fault in [
        Offline,
        GatewayTimeout,
        Reset,
        Truncated,
        Stall(Duration::from_secs(5)),
    ] {
        // One request's worth, so the retry is the same group whatever the timing.
        let (s, _) = loaded(20).await;
        let api = open_library_with(vec![fault.clone()]).await;
        let one_at_a_time = [
            "--providers",
            "openlibrary",
            "--openlibrary-concurrency",
            "1",
            "--timeout",
            "500ms",
        ];
        assert_eq!(
            crawl(&s, &api, &one_at_a_time).await,
            ExitCode::Success,
            "{fault:?}"
        );
        assert_eq!(
            s.states().await,
            [("done".to_string(), 20)].into(),
            "{fault:?}"
        );
        assert_eq!(
            s.scalar("SELECT max(attempts) FROM lookups").await,
            2,
            "{fault:?}: a failed attempt, then the answer"
        );
    }
    // 422: failed with the error.
    let (s, _) = loaded(3).await;
    let api = open_library_with(vec![Unprocessable]).await;
    assert_eq!(
        crawl(
            &s,
            &api,
            &["--providers", "openlibrary", "--openlibrary-batch", "1"]
        )
        .await,
        ExitCode::JobsFailed
    );
    assert_eq!(
        s.strings("SELECT last_error FROM lookups WHERE state = 'failed'")
            .await
            .len(),
        1
    );
    // 403: Open Library stops, exit 6, nothing lost.
    let (s, _) = loaded(30).await;
    let api = open_library_with(vec![Blocked]).await;
    let one = [
        "--providers",
        "openlibrary",
        "--openlibrary-concurrency",
        "1",
    ];
    assert_eq!(crawl(&s, &api, &one).await, ExitCode::ApiRejected);
    assert_eq!(lookups(&s, "openlibrary").await["pending"], 30);
    assert_eq!(s.scalar("SELECT sum(attempts) FROM lookups").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_slows_open_library_down_and_costs_no_attempt() {
    // Open Library sends no Retry-After; the lookups come back after 10 s, attempts refunded.
    let (s, _) = loaded(20).await;
    let api = open_library_with(vec![OpenLibraryFault::RateLimited]).await;
    assert_eq!(crawl(&s, &api, &OL_ONLY).await, ExitCode::Success);
    assert_eq!(s.states().await, [("done".to_string(), 20)].into());
    assert_eq!(s.scalar("SELECT max(attempts) FROM lookups").await, 1);
    // The first request was refused; the 20 came back later (in one request or more, as
    // their retry times fell due).
    let sizes = api.openlibrary_requests();
    assert_eq!(sizes[0], 20);
    assert_eq!(sizes[1..].iter().sum::<usize>(), 20, "{sizes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_batch_is_split_never_a_verdict_and_wrong_editions_are_not_stored() {
    let (s, list) = loaded(25).await;
    let unknown: HashSet<String> = list[..3].iter().cloned().collect();
    let wrong = list[3].clone();
    let api = start_fake(FakeConfig {
        openlibrary: OpenLibraryConfig {
            unknown: unknown.clone(),
            wrong_edition: [wrong.clone()].into(),
            scripted: [OpenLibraryFault::EmptyBatch, OpenLibraryFault::EmptyBatch].into(),
            ..OpenLibraryConfig::default()
        },
        ..FakeConfig::default()
    })
    .await;
    assert_eq!(crawl(&s, &api, &OL_ONLY).await, ExitCode::Success);
    let ol = lookups(&s, "openlibrary").await;
    assert_eq!(ol["done"], 21, "{ol:?}");
    assert_eq!(ol["not_found"], 4, "{ol:?}");
    let not_found = set(&s
        .strings("SELECT isbn13 FROM lookups WHERE state = 'not_found'")
        .await);
    let mut want = unknown;
    want.insert(wrong.clone());
    assert_eq!(not_found, want);
    assert_eq!(
        s.scalar(&format!(
            "SELECT count(*) FROM provider_books WHERE isbn13 = '{wrong}'"
        ))
        .await,
        0,
        "another edition is not stored as this book"
    );
    // The first {} came for the whole 25, the second for its first half; then halves of halves.
    let sizes = api.openlibrary_requests();
    assert_eq!(&sizes[..3], &[25, 13, 12], "{sizes:?}");
}
