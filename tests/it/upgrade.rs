//! Upgrading loses nothing: `tests/fixtures/upgrade/v1.db` was written by the release before
//! Open Library (its `make.sh` says how): 8 done, 2 not found, 3 failed, 1 in progress (its
//! run was killed), 4 pending, 8 books, 3 runs, 14 requests counted today-then.

use crate::common;

use std::collections::BTreeMap;

use common::{Scratch, crawl, start_fake};
use isbn_crawler::ExitCode;
use isbn_crawler::fake_api::FakeConfig;

fn copy_fixture(s: &Scratch) {
    let from = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/upgrade/v1.db");
    std::fs::copy(from, s.db()).expect("copy the fixture");
}

fn counts(pairs: &[(&str, i64)]) -> BTreeMap<String, i64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

const BEFORE: [(&str, i64); 5] = [
    ("done", 8),
    ("failed", 3),
    ("in_progress", 1),
    ("not_found", 2),
    ("pending", 4),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_of_the_previous_release_migrates_in_place_keeping_everything() {
    let s = Scratch::new();
    copy_fixture(&s);
    let before_books = {
        let raw = sqlx::SqlitePool::connect(&format!("sqlite://{}", s.db_str()))
            .await
            .expect("open raw");
        let rows: Vec<(String, String, i64)> =
            sqlx::query_as("SELECT isbn13, title, fetched_at FROM books ORDER BY isbn13")
                .fetch_all(&raw)
                .await
                .expect("books");
        raw.close().await;
        rows
    };
    assert_eq!(before_books.len(), 8);
    // Opening migrates; every job keeps its state and attempts, every book and count stays.
    assert_eq!(s.states().await, counts(&BEFORE));
    let store = s.store().await;
    let after: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT isbn13, title, fetched_at FROM books ORDER BY isbn13")
            .fetch_all(store.pool())
            .await
            .expect("books");
    assert_eq!(after, before_books);
    assert_eq!(
        s.scalar("SELECT count(*) FROM provider_books WHERE provider = 'google'")
            .await,
        8
    );
    assert_eq!(
        s.strings("SELECT DISTINCT provenance ->> 'title' FROM books")
            .await,
        ["google"]
    );
    assert_eq!(s.scalar("SELECT sum(requests) FROM quota_days").await, 14);
    assert_eq!(s.scalar("SELECT count(*) FROM runs").await, 3);
    // Its runs' figures (Google's alone then) are rows of run_providers now, and the provider
    // list is no longer a CHECK of lookups.
    assert_eq!(
        s.scalar("SELECT coalesce(sum(requests), 0) FROM run_providers WHERE provider = 'google'")
            .await,
        s.scalar("SELECT sum(requests) FROM runs").await
    );
    assert_eq!(
        s.scalar("SELECT instr(sql, 'CHECK (provider') FROM sqlite_schema WHERE name = 'lookups'")
            .await,
        0
    );
    assert_eq!(
        s.grouped("SELECT state, count(*) FROM lookups GROUP BY state")
            .await,
        counts(&[
            ("done", 8),
            ("failed", 3),
            ("in_progress", 1),
            ("not_found", 2)
        ]),
        "every job Google touched is its Google lookup; the 4 never asked have none yet"
    );
    assert_eq!(
        s.scalar("SELECT sum(attempts) FROM jobs").await,
        s.scalar("SELECT sum(attempts) FROM lookups").await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_upgrade_a_crawl_asks_each_provider_only_for_what_it_should() {
    // Both providers, --fill all: Google for the 4 never asked and the 1 a killed run held;
    // Open Library for all 18.
    let s = Scratch::new();
    copy_fixture(&s);
    let api = start_fake(FakeConfig::default()).await;
    let both = ["--providers", "google,openlibrary"];
    assert_eq!(crawl(&s, &api, &both).await, ExitCode::Success);
    let asked: Vec<String> = api.requests_per_isbn().into_keys().collect();
    assert_eq!(asked.len(), 5, "{asked:?}");
    assert!(api.requests_per_isbn().values().all(|&n| n == 1));
    let ol: u32 = api.openlibrary_requests_per_isbn().values().sum();
    assert_eq!(ol, 18);
    assert_eq!(s.states().await, counts(&[("done", 18)]));
    assert_eq!(
        s.scalar("SELECT count(*) FROM runs WHERE stop_reason = 'killed'")
            .await,
        1,
        "the killed run is found dead"
    );

    // --fill missing after Google: Open Library only for what Google did not find (its 2 not
    // found and 3 failed); Google as before.
    let s = Scratch::new();
    copy_fixture(&s);
    let api = start_fake(FakeConfig::default()).await;
    let missing = ["--providers", "google,openlibrary", "--fill", "missing"];
    assert_eq!(crawl(&s, &api, &missing).await, ExitCode::Success);
    assert_eq!(api.requests_per_isbn().len(), 5);
    let mut ol: Vec<String> = api.openlibrary_requests_per_isbn().into_keys().collect();
    ol.sort();
    let mut want = s
        .strings(
            "SELECT isbn13 FROM lookups WHERE provider = 'google' AND state IN ('not_found', 'failed')",
        )
        .await;
    want.sort();
    assert_eq!(ol, want);
    assert_eq!(ol.len(), 5);
    assert_eq!(s.states().await, counts(&[("done", 18)]));
}

/// `tests/fixtures/upgrade/v2.db` (its `make-v2.sh` says how) was written by the release
/// before the national libraries: the demo's crawl of Google and Open Library (7 done, 3 not
/// found), then two German and two French ISBNs loaded and never crawled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_release_before_the_national_libraries_upgrades_and_asks_each_only_its_own() {
    let s = Scratch::new();
    let from = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/upgrade/v2.db");
    std::fs::copy(from, s.db()).expect("copy the fixture");
    let records = "SELECT provider || ' ' || isbn13 || ' ' || title || ' ' || raw_json
                   FROM provider_books ORDER BY 1";
    let old_records = s.strings(records).await;
    assert_eq!(s.scalar("SELECT count(*) FROM books").await, 7);
    let old_misses = s
        .strings(
            "SELECT isbn13 FROM lookups WHERE provider = 'openlibrary' AND state = 'not_found'
             ORDER BY isbn13",
        )
        .await;
    let new: Vec<String> = s
        .strings("SELECT isbn13 FROM jobs WHERE state = 'pending' ORDER BY isbn13")
        .await;
    assert_eq!(new.len(), 4);
    let api = start_fake(FakeConfig {
        openlibrary: isbn_crawler::fake_api::OpenLibraryConfig {
            unknown: new.iter().cloned().collect(),
            ..Default::default()
        },
        ..FakeConfig::default()
    })
    .await;
    let sru = common::sru_args(&api);
    let mut args: Vec<&str> = sru.iter().map(String::as_str).collect();
    args.extend([
        "--providers",
        "openlibrary,national,google",
        "--fill",
        "missing",
    ]);
    assert_eq!(crawl(&s, &api, &args).await, ExitCode::Success);
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v.dedup();
        v
    };
    // Open Library: only the books never asked; each catalogue only its own country's, and
    // LoC only the old books Open Library had not found; Google nothing (its old lookups had
    // ended, and the new books were found by free catalogues).
    let ol = sorted(api.openlibrary_requests_per_isbn().into_keys().collect());
    assert_eq!(ol, new);
    let german: Vec<String> = new
        .iter()
        .filter(|i| i.starts_with("9783"))
        .cloned()
        .collect();
    let french: Vec<String> = new
        .iter()
        .filter(|i| i.starts_with("9782"))
        .cloned()
        .collect();
    assert_eq!(sorted(api.sru_asked("dnb").1), german);
    assert_eq!(sorted(api.sru_asked("bnf").1), french);
    assert_eq!(sorted(api.sru_asked("loc").1), old_misses);
    assert_eq!(api.google_requests(), 0);
    assert_eq!(s.states().await, counts(&[("done", 14)]));
    // Every record stored before is as it was; the merged rows follow the new precedence
    // (LoC, named before Google, now gives Gilead's title).
    let kept = s.strings(records).await;
    assert!(old_records.iter().all(|r| kept.contains(r)), "{kept:?}");
    assert_eq!(
        s.strings(
            "SELECT json_extract(provenance, '$.title') FROM books WHERE isbn13 = '9780002005883'"
        )
        .await,
        ["loc"]
    );
}
