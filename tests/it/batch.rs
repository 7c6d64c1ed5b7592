//! `crawl --batch N|auto`: several ISBNs per request, verified item by item, misses asked again
//! in a batch of misses and then alone before any verdict.

use crate::common;

use std::time::Duration;

use common::{Scratch, crawl, crawl_binary, isbns, kill_after, loaded, start_fake, text};
use isbn_crawler::ExitCode;
use isbn_crawler::fake_api::{FakeApi, FakeConfig, title_for};

async fn crawl_batch(s: &Scratch, api: &FakeApi, batch: &str, extra: &[&str]) -> ExitCode {
    let mut args = vec!["--concurrency", "2", "--batch", batch];
    args.extend_from_slice(extra);
    crawl(s, api, &args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_where_all_come_back_costs_one_request_per_batch() {
    let (s, list) = loaded(40).await;
    let api = start_fake(FakeConfig::default()).await;
    assert_eq!(crawl_batch(&s, &api, "10", &[]).await, ExitCode::Success);
    assert_eq!(s.states().await, [("done".to_string(), 40)].into());
    assert_eq!(api.isbns_per_request(), [10, 10, 10, 10]);
    for isbn in &list {
        let title = s
            .strings(&format!("SELECT title FROM books WHERE isbn13 = '{isbn}'"))
            .await;
        assert_eq!(title, [title_for(isbn)]);
    }
    assert_eq!(s.scalar("SELECT requests FROM runs").await, 4);
    assert_eq!(s.scalar("SELECT sum(requests) FROM quota_days").await, 4);
    assert_eq!(
        s.strings("SELECT CAST(books_per_request AS TEXT) FROM runs")
            .await,
        ["10.0"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misses_are_asked_in_a_batch_of_misses_then_alone_before_any_verdict() {
    let (s, list) = loaded(20).await;
    let mut config = FakeConfig::default();
    // Half of each batch does not come back in the OR search: of those, one is truly
    // unknown and the rest come back when asked alone.
    for isbn in list.iter().skip(1).step_by(2) {
        config.batch_misses.insert(isbn.clone());
    }
    config.unknown.insert(list[1].clone());
    let api = start_fake(config).await;
    assert_eq!(crawl_batch(&s, &api, "10", &[]).await, ExitCode::Success);
    let states = s.states().await;
    assert_eq!(states.get("done"), Some(&19));
    assert_eq!(states.get("not_found"), Some(&1));
    assert_eq!(
        s.strings("SELECT isbn13 FROM jobs WHERE state = 'not_found'")
            .await,
        [list[1].clone()]
    );
    let mut sizes = api.isbns_per_request();
    sizes.sort_unstable();
    // These misses never come back in an OR answer: each batch of misses misses them all.
    let rounds = usize::from(isbn_crawler::crawl::batch::MAX_REBATCH);
    let mut want = vec![1; 10];
    want.extend(vec![10; 2 + rounds]);
    assert_eq!(
        sizes, want,
        "2 batches, the 10 misses in batches of misses, then each alone"
    );
    for (i, isbn) in list.iter().enumerate() {
        let want = if i % 2 == 1 { 2 + rounds as u32 } else { 1 };
        assert_eq!(api.requests_for(isbn), want, "{isbn}");
    }
    assert_eq!(
        s.scalar("SELECT requests FROM runs").await,
        12 + rounds as i64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unrequested_book_is_never_stored_under_a_requested_isbn() {
    let (s, list) = loaded(12).await;
    let intruder = isbns(13).pop().expect("one more");
    let mut config = FakeConfig {
        batch_extra: Some(intruder.clone()),
        ..FakeConfig::default()
    };
    // The book that should have come back for list[0] is missing from the batch: the
    // intruder is first in the answer and must not be taken for it.
    config.batch_misses.insert(list[0].clone());
    let api = start_fake(config).await;
    assert_eq!(crawl_batch(&s, &api, "12", &[]).await, ExitCode::Success);
    assert_eq!(s.states().await, [("done".to_string(), 12)].into());
    assert_eq!(
        s.scalar(&format!(
            "SELECT count(*) FROM books WHERE raw_json LIKE '%{intruder}%'"
        ))
        .await,
        0
    );
    assert_eq!(
        s.strings(&format!(
            "SELECT title FROM books WHERE isbn13 = '{}'",
            list[0]
        ))
        .await,
        [title_for(&list[0])]
    );
    assert_eq!(api.requests_for(&list[0]), 2, "asked alone after the miss");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_stop_gives_every_job_of_the_batch_back() {
    let (s, _) = loaded(60).await;
    let api = start_fake(FakeConfig {
        daily_quota: Some(2),
        ..FakeConfig::default()
    })
    .await;
    assert_eq!(
        crawl_batch(&s, &api, "10", &[]).await,
        ExitCode::QuotaExhausted
    );
    let states = s.states().await;
    assert_eq!(states.get("done"), Some(&20));
    assert_eq!(states.get("pending"), Some(&40));
    assert_eq!(
        s.scalar("SELECT count(*) FROM jobs WHERE state = 'pending' AND attempts > 0")
            .await,
        0
    );
    api.new_day();
    api.configure(|c| c.daily_quota = None);
    assert_eq!(crawl_batch(&s, &api, "10", &[]).await, ExitCode::Success);
    assert_eq!(s.states().await, [("done".to_string(), 60)].into());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_batches_then_a_rerun_finishes() {
    let (s, _) = loaded(600).await;
    let api = start_fake(FakeConfig {
        latency: Duration::from_millis(20),
        ..FakeConfig::default()
    })
    .await;
    let crawl = || crawl_binary(&s, &api, &["--concurrency", "4", "--batch", "10"]);
    if let Err(status) = kill_after(&api, crawl(), 12).await {
        panic!("crawl ended before the kill: {status}");
    }
    let out = crawl().output().await.expect("rerun");
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert_eq!(s.states().await, [("done".to_string(), 600)].into());
    assert!(api.requests_per_isbn().values().all(|&n| n <= 2));
}

/// A fake like Google's relevance search (some unknown, some left out of each OR answer, an
/// unrequested book now and then) or one that ignores OR.
fn relevance_search(list: &[String], ignores_or: bool) -> FakeConfig {
    let mut config = FakeConfig {
        or_leave_out: 0.10,
        or_extra_rate: 0.20,
        or_first_term_only: ignores_or,
        ..FakeConfig::default()
    };
    config.unknown.extend(list.iter().step_by(10).cloned());
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_batches_grow_on_a_relevance_search_and_stay_correct() {
    let (s, list) = loaded(800).await;
    let api = start_fake(relevance_search(&list, false)).await;
    assert_eq!(
        crawl(&s, &api, &["--batch", "auto"]).await,
        ExitCode::Success
    );
    let states = s.states().await;
    assert_eq!(states.get("done"), Some(&720), "every knowable book");
    assert_eq!(states.get("not_found"), Some(&80));
    // Each stored book is the one asked for, and nothing unrequested is stored.
    assert_eq!(
        s.scalar("SELECT count(*) FROM books WHERE title NOT LIKE 'Title of ' || isbn13 || '%'")
            .await,
        0
    );
    // Far fewer requests than ISBNs: the 80 unknown are asked alone once each, the rest ride
    // in batches that grew.
    let requests = api.google_requests();
    assert!(requests < 240, "{requests} requests for 800 ISBNs");
    assert!(
        api.isbns_per_request().iter().any(|&n| n >= 30),
        "the size grew toward 40: {:?}",
        api.isbns_per_request()
    );
    assert!(
        s.scalar("SELECT batch_size FROM run_providers WHERE provider = 'google'")
            .await
            >= 20,
        "the size in use is kept with the run"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_batches_shrink_to_one_when_google_ignores_or() {
    let (s, list) = loaded(300).await;
    let api = start_fake(relevance_search(&list, true)).await;
    // Two workers, so the first batches (before the size falls) are a small share of 300.
    let args = ["--batch", "auto", "--concurrency", "2"];
    assert_eq!(crawl(&s, &api, &args).await, ExitCode::Success);
    assert_eq!(s.states().await.get("done"), Some(&270));
    let requests = api.google_requests();
    assert!(
        requests <= 330,
        "{requests} requests for 300 ISBNs: at most 1.1 each"
    );
}

/// The quota-saving recipe: Google is asked only what Open Library lacked, books many of which
/// Google lacks too. A low share of found books there is no broken OR: the size stays at the top
/// and Google's requests stay near the floor (each book unknown to Google asked alone once, the
/// rest 40 a request).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quota_saving_recipe_keeps_google_near_its_floor() {
    let (s, list) = loaded(2000).await;
    // Open Library lacks two books in five; Google lacks half of those.
    let (config, misses, unknown) = relevance_search(&[], false).lacking_in_both(&list);
    let api = start_fake(config).await;
    let args = [
        "--providers",
        "openlibrary,google",
        "--fill",
        "missing",
        "--batch",
        "auto",
        "--concurrency",
        "2",
    ];
    assert_eq!(crawl(&s, &api, &args).await, ExitCode::Success);
    assert_eq!((misses, unknown), (800, 400));
    assert_eq!(s.states().await.get("not_found"), Some(&400));
    assert_eq!(s.states().await.get("done"), Some(&1600));
    let floor = unknown + (misses - unknown).div_ceil(40);
    let requests = api.google_requests() as usize;
    assert!(
        requests * 4 <= floor * 5,
        "{requests} Google requests for {misses} misses, floor {floor}: {:?}",
        api.isbns_per_request()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_says_how_many_quota_days_are_left() {
    let (s, _) = loaded(50).await;
    let api = start_fake(FakeConfig::default()).await;
    let args = ["--batch", "1", "--daily-budget", "10", "--concurrency", "1"];
    assert_eq!(crawl(&s, &api, &args).await, ExitCode::QuotaExhausted);
    let out = common::binary()
        .args(["--db", &s.db_str(), "status", "--json"])
        .output()
        .expect("status");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let eta = &json["eta"];
    assert_eq!(eta["google_open"], 40, "{json}");
    assert_eq!(eta["books_per_request"], 1.0);
    assert_eq!(eta["daily_budget"], 10);
    assert_eq!(eta["default_budget"], false);
    assert_eq!(eta["days"], 4.0);
    let out = common::binary()
        .args(["--db", &s.db_str(), "status"])
        .output()
        .expect("status");
    assert!(
        text(&out).0.contains("about 4 quota days left"),
        "{}",
        text(&out).0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_of_a_failed_batch_go_out_together() {
    use isbn_crawler::fake_api::Fault;
    let (s, _) = loaded(100).await;
    let first = s
        .strings("SELECT isbn13 FROM jobs ORDER BY id LIMIT 1")
        .await;
    let mut config = FakeConfig::default();
    config
        .scripted
        .insert(first[0].clone(), [Fault::Unavailable].into());
    let api = start_fake(config).await;
    // The first batch fails; its ten retries come due at jittered moments within 300 ms, most
    // after the other nine batches are answered. Sent as they came due, they would take
    // several requests of a few ISBNs; held until the others are due, they take one.
    let backoff = ["--backoff-base", "300ms", "--backoff-max", "300ms"];
    let args = [&["--concurrency", "1", "--batch", "10"][..], &backoff[..]].concat();
    assert_eq!(crawl(&s, &api, &args).await, ExitCode::Success);
    assert_eq!(s.states().await, [("done".to_string(), 100)].into());
    let sizes = api.isbns_per_request();
    assert!(
        sizes.len() <= 12,
        "{} requests for 100 ISBNs in batches of 10, one failed: {sizes:?}",
        sizes.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_batch_of_misses_does_not_shrink_the_size_when_its_retries_come_back() {
    use isbn_crawler::fake_api::Fault;
    let (s, _) = loaded(400).await;
    let by_id = s.strings("SELECT isbn13 FROM jobs ORDER BY id").await;
    // One ISBN in ten unknown, from the sixth job on; all 40 wait in the pool when the last
    // fresh batch is answered and go out as one batch of misses led by the first of them,
    // which fails once (that job leads no fresh batch: they start at jobs 1, 11, 21, ...).
    // Its 40 retries come back as new claims, all unknown: an answer that finds none of 40.
    let unknown: Vec<String> = by_id.iter().skip(5).step_by(10).cloned().collect();
    let mut config = FakeConfig::default();
    config.unknown.extend(unknown.iter().cloned());
    config
        .scripted
        .insert(unknown[0].clone(), [Fault::Unavailable].into());
    let api = start_fake(config).await;
    let args = [
        "--concurrency",
        "1",
        "--batch",
        "auto",
        "--backoff-base",
        "100ms",
        "--backoff-max",
        "100ms",
    ];
    assert_eq!(crawl(&s, &api, &args).await, ExitCode::Success);
    assert_eq!(s.states().await.get("not_found"), Some(&40));
    let sizes = api.isbns_per_request();
    assert!(
        sizes.iter().filter(|&&n| n == 40).count() >= 3,
        "the batch of misses and its retries went out whole: {sizes:?}"
    );
    assert_eq!(
        s.scalar("SELECT batch_size FROM run_providers WHERE provider = 'google'")
            .await,
        40,
        "answers to retried misses say nothing of OR: {sizes:?}"
    );
}
