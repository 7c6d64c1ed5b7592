//! The rest of "prove it survives": hostile responses, rate adherence, quota days at scale,
//! and two processes on one database.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::{crawl, crawl_binary, loaded, start_fake, text};
use isbn_crawler::ExitCode;
use isbn_crawler::fake_api::{FakeConfig, Fault};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_responses_fail_their_job_and_nothing_else() {
    let (s, list) = loaded(4).await;
    let huge = format!(
        r#"{{"kind":"books#volumes","totalItems":1,"items":[{{"x":"{}"}}]}}"#,
        "x".repeat(50 * 1024 * 1024)
    );
    let deep = format!("{}{}", "[".repeat(200_000), "]".repeat(200_000));
    let ids: Vec<String> = (0..10_000)
        .map(|i| format!(r#"{{"type":"OTHER","identifier":"GENT:{i}"}}"#))
        .chain([format!(
            r#"{{"type":"ISBN_13","identifier":"{}"}}"#,
            list[2]
        )])
        .collect();
    let many = format!(
        r#"{{"kind":"books#volumes","totalItems":1,"items":[{{"id":"many","volumeInfo":{{"title":"Many","industryIdentifiers":[{}]}}}}]}}"#,
        ids.join(",")
    );
    let mut config = FakeConfig::default();
    let raw = |body: String| [Fault::Raw(200, Arc::new(body))].into();
    config.scripted.insert(list[0].clone(), raw(huge));
    config.scripted.insert(
        list[1].clone(),
        [
            Fault::Raw(200, Arc::new(deep.clone())),
            Fault::Raw(200, Arc::new(deep)),
        ]
        .into(),
    );
    config.scripted.insert(list[2].clone(), raw(many));
    let api = start_fake(config).await;
    let code = crawl(
        &s,
        &api,
        &[
            "--rate",
            "unlimited",
            "--max-attempts",
            "2",
            "--backoff-base",
            "1ms",
        ],
    )
    .await;
    assert_eq!(code, ExitCode::JobsFailed);
    let state = |i: usize| {
        format!(
            "SELECT state || ': ' || coalesce(last_error, '') FROM jobs WHERE isbn13 = '{}'",
            list[i]
        )
    };
    assert_eq!(
        s.strings(&state(0)).await,
        ["failed: response larger than 8 MiB"]
    );
    let deep_state = s.strings(&state(1)).await.join("");
    assert!(
        deep_state.starts_with("not_found") || deep_state.starts_with("failed"),
        "{deep_state}"
    );
    assert_eq!(s.strings(&state(2)).await, ["done: "]);
    assert_eq!(s.strings(&state(3)).await, ["done: "]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_configured_rate_the_fake_sees_almost_no_429() {
    let (s, _) = loaded(100).await;
    let api = start_fake(FakeConfig {
        per_second_limit: Some(20),
        ..FakeConfig::default()
    })
    .await;
    let code = crawl(&s, &api, &["--rate", "20/s", "--concurrency", "4"]).await;
    assert_eq!(code, ExitCode::Success);
    assert_eq!(s.states().await, [("done".to_string(), 100)].into());
    let rejected = api.total_requests() - 100;
    assert!(
        rejected <= 1,
        "{rejected} requests got a 429 (1% of 100 allowed)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fake_stricter_than_the_configured_rate_slows_the_crawl_down() {
    let (s, _) = loaded(60).await;
    let api = start_fake(FakeConfig {
        per_second_limit: Some(10),
        ..FakeConfig::default()
    })
    .await;
    // --max-attempts 1: a job failed for rate reasons would show at once.
    let code = crawl(
        &s,
        &api,
        &[
            "--rate",
            "40/s",
            "--concurrency",
            "4",
            "--max-attempts",
            "1",
        ],
    )
    .await;
    assert_eq!(code, ExitCode::Success);
    assert_eq!(s.states().await, [("done".to_string(), 60)].into());
    // The crawl found the fake's pace: most requests went through.
    let total = api.total_requests();
    assert!(total < 60 * 2, "{total} requests for 60 books");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_quota_days_for_two_thousand_isbns() {
    const CONCURRENCY: u64 = 4;
    let (s, _) = loaded(2_000).await;
    let api = start_fake(FakeConfig {
        daily_quota: Some(500),
        ..FakeConfig::default()
    })
    .await;
    let day_run = || crawl(&s, &api, &["--concurrency", "4"]);
    let mut probes = 0;
    for day in 1..=4 {
        let code = day_run().await;
        let done = s.states().await.get("done").copied().unwrap_or(0);
        assert_eq!(done, 500 * day, "day {day}");
        assert_eq!(s.states().await.get("in_progress"), None);
        assert_eq!(
            s.scalar("SELECT count(*) FROM jobs WHERE state = 'pending' AND attempts > 0")
                .await,
            0,
            "attempts untouched"
        );
        if day < 4 {
            assert_eq!(code, ExitCode::QuotaExhausted, "day {day}");
            // Before the reset: one probe, and a stop.
            let before = api.total_requests();
            assert_eq!(day_run().await, ExitCode::QuotaExhausted);
            assert_eq!(api.total_requests(), before + 1);
            probes += 1;
        } else {
            assert_eq!(code, ExitCode::Success);
        }
        api.new_day();
    }
    assert!(api.requests_per_isbn().values().all(|&n| n <= 3));
    let stored_twice = s
        .scalar(
            "SELECT count(*) FROM (SELECT isbn13 FROM books GROUP BY isbn13 HAVING count(*) > 1)",
        )
        .await;
    assert_eq!(stored_twice, 0);
    let total = api.total_requests();
    assert!(
        total <= 2_000 + 4 * (CONCURRENCY + 1) + probes,
        "{total} requests"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_database_never_fetch_the_same_isbn() {
    let (s, _) = loaded(600).await;
    let api = start_fake(FakeConfig {
        latency: Duration::from_millis(5),
        ..FakeConfig::default()
    })
    .await;
    let spawn = || crawl_binary(&s, &api, &["--concurrency", "8"]).output();
    let (a, b) = tokio::join!(spawn(), spawn());
    for out in [a.expect("a"), b.expect("b")] {
        let (o, e) = text(&out);
        assert_eq!(out.status.code(), Some(0), "{o}{e}");
    }
    assert_eq!(s.states().await, [("done".to_string(), 600)].into());
    assert!(api.requests_per_isbn().values().all(|&n| n == 1));
    // Both ran and were recorded.
    let per_run = s.grouped("SELECT CAST(id AS TEXT), done FROM runs").await;
    assert_eq!(per_run.len(), 2);
}
