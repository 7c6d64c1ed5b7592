//! The crawl engine against the in-process fake Google Books, on real SQLite files.

use crate::common;

use std::collections::HashMap;
use std::time::Duration;

use common::{
    KEY, binary_async, crawl, crawl_binary, db_files, env_with_key, isbns, kill_after, loaded,
    start_fake, text, wait_for_requests,
};
use isbn_crawler::ExitCode;
use isbn_crawler::fake_api::{
    FakeConfig, Fault, FaultRates, OpenLibraryConfig, OpenLibraryFault, title_for,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crawl_runs_to_completion_asking_once_per_isbn() {
    let (s, list) = loaded(300).await;
    let api = start_fake(FakeConfig::default()).await;
    assert_eq!(crawl(&s, &api, &[]).await, ExitCode::Success);

    assert_eq!(s.states().await, [("done".to_string(), 300)].into());
    assert_eq!(s.scalar("SELECT count(*) FROM books").await, 300);
    // Google is asked for uncompressed answers (decoding gzip cost more CPU than the crawl).
    assert_eq!(api.gzipped_answers(), 0);
    let per_isbn = api.requests_per_isbn();
    assert_eq!(per_isbn.len(), 300);
    assert!(
        per_isbn.values().all(|&n| n == 1),
        "every ISBN asked exactly once"
    );
    for isbn in list.iter().step_by(37) {
        let title = s
            .strings(&format!("SELECT title FROM books WHERE isbn13 = '{isbn}'"))
            .await;
        assert_eq!(title, [title_for(isbn)]);
    }
    // The run is recorded, with its counts.
    assert_eq!(
        s.strings("SELECT stop_reason FROM runs").await,
        ["finished"]
    );
    assert_eq!(s.scalar("SELECT requests FROM runs").await, 300);
    assert_eq!(s.scalar("SELECT done FROM runs").await, 300);
    assert_eq!(s.scalar("SELECT sum(requests) FROM quota_days").await, 300);
    // The raw item is kept as Google sent it under the fields selector: all of volumeInfo
    // (fields `books` has no column for included), without the sale and access parts.
    let raw = s
        .strings(&format!(
            "SELECT raw_json FROM books WHERE isbn13 = '{}'",
            list[0]
        ))
        .await;
    let item: serde_json::Value = serde_json::from_str(&raw[0]).expect("raw item is JSON");
    assert_eq!(item["volumeInfo"]["maturityRating"], "NOT_MATURE");
    assert_eq!(item["volumeInfo"]["readingModes"]["text"], false);
    assert!(item.get("saleInfo").is_none(), "{item}");

    // A second crawl has nothing to do and sends nothing.
    assert_eq!(crawl(&s, &api, &[]).await, ExitCode::Success);
    assert_eq!(api.total_requests(), 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_compresses_as_google_does_only_when_asked_both_ways() {
    let api = start_fake(FakeConfig::default()).await;
    let isbn = &isbns(1)[0];
    let url = format!(
        "{}/books/v1/volumes?country=US&q=isbn:{isbn}&fields=items(id,volumeInfo)&key={KEY}",
        api.url()
    );
    let get = |agent: &'static str| {
        let url = url.clone();
        async move {
            let client = reqwest::Client::builder()
                .user_agent(agent)
                .gzip(true)
                .build()
                .expect("client");
            // (reqwest decodes a gzipped answer and drops its Content-Encoding.)
            let response = client.get(&url).send().await.expect("answer");
            response.text().await.expect("body")
        }
    };
    let plain = get("app/1").await;
    assert_eq!(api.gzipped_answers(), 0);
    let decoded = get("app/1 (gzip)").await;
    assert_eq!(api.gzipped_answers(), 1);
    assert_eq!(decoded, plain);
    assert!(plain.contains(&format!("\"{isbn}\"")), "{plain}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_book_is_not_found_and_never_stored() {
    let (s, list) = loaded(5).await;
    let mut config = FakeConfig::default();
    config.wrong_book.insert(list[1].clone());
    config.unknown.insert(list[2].clone());
    let api = start_fake(config).await;
    assert_eq!(crawl(&s, &api, &[]).await, ExitCode::Success);
    let state = |i: usize| {
        format!(
            "SELECT state || ' ' || coalesce(last_error, '') FROM jobs WHERE isbn13 = '{}'",
            list[i]
        )
    };
    assert_eq!(
        s.strings(&state(1)).await,
        ["not_found 1 item(s) returned, none with this ISBN"]
    );
    assert_eq!(
        s.strings(&state(2)).await,
        ["not_found no item for this ISBN"]
    );
    assert_eq!(s.strings(&state(0)).await, ["done "]);
    assert_eq!(s.scalar("SELECT count(*) FROM books").await, 3);
    // Nothing is stored under an ISBN whose identifiers do not carry it.
    let stored_wrong = s
        .scalar(&format!(
            "SELECT count(*) FROM books WHERE isbn13 = '{}' OR raw_json LIKE '%9780306406157%'",
            list[1]
        ))
        .await;
    assert_eq!(stored_wrong, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_errors_are_retried_until_done() {
    let (s, list) = loaded(3).await;
    let mut config = FakeConfig::default();
    config.scripted.insert(
        list[0].clone(),
        [
            Fault::Unavailable,
            Fault::Reset,
            Fault::Truncated,
            Fault::ServerError,
        ]
        .into(),
    );
    config.scripted.insert(
        list[1].clone(),
        [Fault::Stall(Duration::from_secs(5))].into(),
    );
    let api = start_fake(config).await;
    assert_eq!(
        crawl(&s, &api, &["--timeout", "300ms"]).await,
        ExitCode::Success
    );
    assert_eq!(s.states().await, [("done".to_string(), 3)].into());
    assert_eq!(api.requests_for(&list[0]), 5);
    assert_eq!(
        api.requests_for(&list[1]),
        2,
        "a stall past the timeout is retried"
    );
    let attempts = s
        .scalar(&format!(
            "SELECT attempts FROM jobs WHERE isbn13 = '{}'",
            list[0]
        ))
        .await;
    assert_eq!(attempts, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_503_fails_after_max_attempts_with_its_last_error() {
    let (s, list) = loaded(4).await;
    let api = start_fake(FakeConfig {
        always: Some(Fault::Unavailable),
        ..FakeConfig::default()
    })
    .await;
    let code = crawl(&s, &api, &["--max-attempts", "3"]).await;
    let states = s.states().await;
    let runs = s
        .strings(
            "SELECT stop_reason || ' ' || requests || ' ' || failed || ' ' || retried FROM runs",
        )
        .await;
    assert_eq!(
        code,
        ExitCode::JobsFailed,
        "{states:?} {runs:?} {:?}",
        api.requests_per_isbn()
    );
    assert_eq!(states, [("failed".to_string(), 4)].into());
    for isbn in &list {
        assert_eq!(api.requests_for(isbn), 3);
    }
    let errors = s.strings("SELECT last_error FROM jobs").await;
    assert!(
        errors.iter().all(|e| e.contains("HTTP 503")
            && e.contains("backendFailed")
            && e.contains("3 attempts")),
        "{errors:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_quota_stops_then_a_probe_then_resumes_the_next_day() {
    let (s, _) = loaded(100).await;
    let api = start_fake(FakeConfig {
        daily_quota: Some(60),
        ..FakeConfig::default()
    })
    .await;
    assert_eq!(
        crawl(&s, &api, &["--concurrency", "4"]).await,
        ExitCode::QuotaExhausted
    );
    let states = s.states().await;
    assert_eq!(states.get("done"), Some(&60));
    assert_eq!(states.get("pending"), Some(&40));
    assert_eq!(states.get("in_progress"), None);
    assert_eq!(
        s.scalar("SELECT count(*) FROM jobs WHERE state = 'pending' AND attempts > 0")
            .await,
        0,
        "no job lost an attempt"
    );
    assert_eq!(s.strings("SELECT stop_reason FROM runs").await, ["quota"]);
    assert_eq!(
        s.scalar("SELECT count(*) FROM quota_days WHERE exhausted_at IS NOT NULL")
            .await,
        1
    );
    let after_first = api.total_requests();
    assert!(after_first <= 60 + 4, "{after_first} requests");

    // Same fake day: one probe, then a stop.
    assert_eq!(
        crawl(&s, &api, &["--concurrency", "4"]).await,
        ExitCode::QuotaExhausted
    );
    assert_eq!(
        api.total_requests(),
        after_first + 1,
        "exactly one probe request"
    );

    api.new_day();
    assert_eq!(
        crawl(&s, &api, &["--concurrency", "4"]).await,
        ExitCode::Success
    );
    assert_eq!(s.states().await, [("done".to_string(), 100)].into());
    assert_eq!(s.scalar("SELECT count(*) FROM books").await, 100);
    assert!(api.total_requests() <= 100 + 2 * (4 + 1) + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_quota_sleeps_through_short_fake_days_in_one_run() {
    let (s, _) = loaded(50).await;
    let api = start_fake(FakeConfig {
        daily_quota: Some(20),
        day_length: Some(Duration::from_millis(300)),
        ..FakeConfig::default()
    })
    .await;
    let code = crawl(
        &s,
        &api,
        &[
            "--concurrency",
            "2",
            "--wait-for-quota",
            "--quota-probe-interval",
            "100ms",
        ],
    )
    .await;
    assert_eq!(code, ExitCode::Success);
    assert_eq!(s.states().await, [("done".to_string(), 50)].into());
    assert!(api.requests_per_isbn().values().all(|&n| n <= 4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_daily_budget_stops_a_rerun_without_any_request() {
    let (s, _) = loaded(20).await;
    let api = start_fake(FakeConfig::default()).await;
    assert_eq!(
        crawl(&s, &api, &["--daily-budget", "5", "--concurrency", "2"]).await,
        ExitCode::QuotaExhausted
    );
    assert_eq!(api.total_requests(), 5);
    assert_eq!(s.states().await.get("done"), Some(&5));
    assert_eq!(
        crawl(&s, &api, &["--daily-budget", "5"]).await,
        ExitCode::QuotaExhausted
    );
    assert_eq!(
        api.total_requests(),
        5,
        "no request once the budget is spent"
    );
    assert_eq!(
        s.scalar("SELECT count(*) FROM jobs WHERE attempts > 0 AND state = 'pending'")
            .await,
        0
    );
    // A bigger budget the same day continues the count.
    assert_eq!(
        crawl(&s, &api, &["--daily-budget", "12"]).await,
        ExitCode::QuotaExhausted
    );
    assert_eq!(api.total_requests(), 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_key_stops_at_the_first_answer_and_burns_no_attempt() {
    let (s, _) = loaded(10).await;
    let api = start_fake(FakeConfig {
        api_key: Some("another-key".into()),
        ..FakeConfig::default()
    })
    .await;
    assert_eq!(
        crawl(&s, &api, &["--concurrency", "1"]).await,
        ExitCode::ApiRejected
    );
    assert_eq!(api.total_requests(), 1);
    assert_eq!(s.states().await, [("pending".to_string(), 10)].into());
    assert_eq!(s.scalar("SELECT max(attempts) FROM jobs").await, 0);
    assert_eq!(
        s.strings("SELECT stop_reason FROM runs").await,
        ["api-rejected"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_minute_429s_slow_the_crawl_and_cost_no_attempt() {
    let (s, _) = loaded(30).await;
    let mut config = FakeConfig::default();
    for isbn in isbns(30).iter().take(10) {
        config.scripted.insert(
            isbn.clone(),
            [Fault::RateLimited(None), Fault::RateLimited(Some(0))].into(),
        );
    }
    let api = start_fake(config).await;
    // max-attempts 1: had a 429 used an attempt, these jobs would fail.
    assert_eq!(
        crawl(&s, &api, &["--max-attempts", "1", "--rate", "200/s"]).await,
        ExitCode::Success
    );
    assert_eq!(s.states().await, [("done".to_string(), 30)].into());
    assert_eq!(s.scalar("SELECT max(attempts) FROM jobs").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_never_sees_more_than_the_configured_rate() {
    let (s, _) = loaded(30).await;
    let api = start_fake(FakeConfig::default()).await;
    assert_eq!(
        crawl(&s, &api, &["--rate", "20/s"]).await,
        ExitCode::Success
    );
    let arrivals = api.arrivals();
    assert_eq!(arrivals.len(), 30);
    // In any window of one second, at most 20 requests (+1 for where the window starts).
    for (i, start) in arrivals.iter().enumerate() {
        let in_window = arrivals[i..]
            .iter()
            .take_while(|t| **t < *start + Duration::from_secs(1))
            .count();
        assert!(
            in_window <= 21,
            "{in_window} requests within a second of {start:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupt_gives_every_unfinished_job_back() {
    let (s, _) = loaded(200).await;
    let api = start_fake(FakeConfig {
        latency: Duration::from_millis(20),
        ..FakeConfig::default()
    })
    .await;
    let env = env_with_key();
    let control = env.control.clone();
    let url = api.url();
    // About 20 requests (10 ISBNs a batch and growing) at 10/s: the first commit (after at
    // most a second) comes well before the last answer.
    let args = [
        "crawl",
        "--providers",
        "google",
        "--api-url",
        &url,
        "--rate",
        "10/s",
        "--concurrency",
        "4",
    ];
    let run = s.run_with(&args, env);
    let interrupt = async {
        // Interrupt once some work has been committed.
        while s.open_jobs().await > 190 {
            tokio::task::yield_now().await;
        }
        control.interrupt.cancel();
    };
    let (code, ()) = tokio::join!(run, interrupt);
    assert_eq!(code, ExitCode::Interrupted);
    let states = s.states().await;
    assert_eq!(states.get("in_progress"), None, "{states:?}");
    assert!(
        states.get("pending").copied().unwrap_or(0) > 0,
        "{states:?}"
    );
    assert_eq!(
        s.scalar("SELECT count(*) FROM jobs WHERE state = 'pending' AND attempts > 0")
            .await,
        0
    );
    assert_eq!(
        s.strings("SELECT stop_reason FROM runs").await,
        ["interrupted"]
    );
    // And the next crawl finishes the rest.
    assert_eq!(crawl(&s, &api, &[]).await, ExitCode::Success);
    assert_eq!(s.states().await, [("done".to_string(), 200)].into());
    assert!(api.requests_per_isbn().values().all(|&n| n == 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_crawl_then_a_rerun_finishes_everything() {
    let (s, _) = loaded(400).await;
    let api = start_fake(FakeConfig {
        latency: Duration::from_millis(10),
        ..FakeConfig::default()
    })
    .await;
    let crawl = || crawl_binary(&s, &api, &["--concurrency", "8"]);
    if let Err(status) = kill_after(&api, crawl(), 150).await {
        panic!("crawl ended before the kill: {status}");
    }
    let before = api.total_requests();
    assert!(before < 400, "killed mid-crawl ({before} requests)");

    let out = crawl().output().await.expect("rerun");
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert_eq!(s.states().await, [("done".to_string(), 400)].into());
    assert_eq!(s.scalar("SELECT count(*) FROM books").await, 400);
    let per_isbn = api.requests_per_isbn();
    assert!(
        per_isbn.values().all(|&n| n <= 2),
        "no ISBN asked more than twice"
    );
    // Only requests in flight at the kill (8 workers) or answered but not yet committed can
    // be repeated: the writer's batch being committed plus what waits in its channel, each at
    // most the channel's capacity (4 x concurrency + 64).
    let repeated = per_isbn.values().filter(|&&n| n == 2).count();
    let bound = 8 + 2 * (4 * 8 + 64);
    assert!(repeated <= bound, "{repeated} repeated, bound {bound}");
    assert_eq!(api.total_requests() as usize, 400 + repeated);
    assert_eq!(
        s.strings("SELECT stop_reason FROM runs ORDER BY id").await,
        ["killed", "finished"]
    );
}

/// `crawl` of Google against the fake, with no key in the environment.
fn keyless_google_crawl(s: &common::Scratch, api: &isbn_crawler::fake_api::FakeApi) -> Vec<String> {
    let args = [
        "--db",
        &s.db_str(),
        "crawl",
        "--providers",
        "google",
        "--api-url",
        &api.url(),
    ];
    args.iter().map(|a| a.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_key_is_a_clear_usage_error_before_any_request() {
    let (s, _) = loaded(3).await;
    let api = start_fake(FakeConfig::default()).await;
    let out = binary_async()
        .args(keyless_google_crawl(&s, &api))
        .output()
        .await
        .expect("run");
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(
        stderr.contains("GOOGLE_BOOKS_API_KEY is not set"),
        "{stderr}"
    );
    assert_eq!(api.total_requests(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_env_file_is_an_error_naming_its_line_and_not_its_text() {
    let (s, _) = loaded(3).await;
    let api = start_fake(FakeConfig::default()).await;
    let dir = s.db().parent().expect("dir").to_path_buf();
    std::fs::write(
        dir.join(".env"),
        format!(
            "GOOGLE_BOOKS_API_KEY={KEY}\n# contact\nISBN_CRAWLER_CONTACT=\"me@example.org {KEY}\n"
        ),
    )
    .expect("write .env");
    let crawl = keyless_google_crawl(&s, &api);
    let out = binary_async()
        .current_dir(&dir)
        .args(&crawl)
        .output()
        .await
        .expect("run");
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(stderr.contains(".env: line 3 cannot be read"), "{stderr}");
    assert!(
        !stderr.contains(KEY),
        "the line's text is not shown: {stderr}"
    );
    assert_eq!(api.total_requests(), 0);

    // Mended, the same file gives the key.
    std::fs::write(dir.join(".env"), format!("GOOGLE_BOOKS_API_KEY={KEY}\n")).expect("write");
    let out = binary_async()
        .current_dir(&dir)
        .args(&crawl)
        .arg("--quiet")
        .output()
        .await
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
}

/// The key must never appear: not in output, logs, errors, or the database's bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_never_leaks_on_any_path() {
    let ok = {
        let mut config = FakeConfig::default();
        config
            .scripted
            .insert(isbns(1)[0].clone(), [Fault::Reset].into());
        start_fake(config).await
    };
    let bad_key = start_fake(FakeConfig {
        api_key: Some("other".into()),
        ..FakeConfig::default()
    })
    .await;
    let quota = start_fake(FakeConfig {
        daily_quota: Some(2),
        ..FakeConfig::default()
    })
    .await;
    let refused = {
        // A port with nothing listening: bind, note it, close.
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", l.local_addr().expect("addr"))
    };
    let mut all_output = String::new();
    for (url, code) in [
        (refused, 4),
        (bad_key.url(), 6),
        (quota.url(), 5),
        (ok.url(), 0),
    ] {
        let (s, _) = loaded(6).await;
        let out = binary_async()
            .args([
                "--db",
                &s.db_str(),
                "crawl",
                "--providers",
                "google",
                "--batch",
                "1",
                "--api-url",
                &url,
                "--rate",
                "unlimited",
                "--max-attempts",
                "2",
                "--backoff-base",
                "1ms",
                "--connect-timeout",
                "1s",
            ])
            .env("GOOGLE_BOOKS_API_KEY", KEY)
            .env("RUST_LOG", "trace")
            .output()
            .await
            .expect("run");
        let (o, e) = text(&out);
        assert_eq!(out.status.code(), Some(code), "{o}{e}");
        all_output.push_str(&o);
        all_output.push_str(&e);
        for file in db_files(&s.db()) {
            let bytes = std::fs::read(&file).expect("read db");
            assert!(
                !bytes.windows(KEY.len()).any(|w| w == KEY.as_bytes()),
                "the key is in {}",
                file.display()
            );
        }
        let errors = s
            .strings("SELECT coalesce(last_error, '') FROM jobs")
            .await
            .join("\n");
        assert!(!errors.contains(KEY));
        if code == 4 {
            assert!(errors.contains("cannot connect"), "{errors}");
        }
    }
    assert!(all_output.contains("API key not valid"), "{all_output}");
    assert!(all_output.contains("daily quota is spent"), "{all_output}");
    assert!(
        !all_output.contains(KEY),
        "the key leaked into output:\n{all_output}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_faults_end_with_every_job_terminal() {
    let (s, _) = loaded(300).await;
    let api = start_fake(FakeConfig {
        random: FaultRates {
            unavailable: 0.05,
            reset: 0.03,
            truncated: 0.03,
            stall: 0.01,
            stall_for: Duration::from_secs(3),
            seed: 42,
        },
        ..FakeConfig::default()
    })
    .await;
    let code = crawl(&s, &api, &["--timeout", "200ms", "--max-attempts", "8"]).await;
    assert_eq!(code, ExitCode::Success);
    assert_eq!(s.states().await, [("done".to_string(), 300)].into());
    let per_isbn: HashMap<String, u32> = api.requests_per_isbn();
    assert!(per_isbn.values().all(|&n| n <= 8));
    assert!(
        api.total_requests() < 300 * 13 / 10,
        "{} requests",
        api.total_requests()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_runs_offline_and_prints_results() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("demo.db");
    let out = binary_async()
        .args(["demo", "--demo-db", &db.display().to_string()])
        .current_dir(dir.path())
        .output()
        .await
        .expect("run");
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("11 new ISBNs queued"), "{stdout}");
    // Real books; Google alone knows Gilead, Open Library alone the Monsoon, Google sends a
    // wrong book for Rage of Angels (Open Library has it), nobody knows three.
    for line in [
        "9780002005883  done       Gilead",
        "9780006380832  done       Empires of the Monsoon",
        "9780006178736  done       Rage of Angels",
        "9780002238304  not_found",
        // Only the national library of its country holds the French book.
        "9782070388097  done       L'Amant de la Chine du Nord",
    ] {
        assert!(stdout.contains(line), "{line:?} in {stdout}");
    }
    assert!(
        stdout.contains("google: 9 fields; openlibrary: page_count"),
        "the merge is shown: {stdout}"
    );
    assert_eq!(stdout.matches("  done  ").count(), 8, "{stdout}");
    assert!(stdout.contains("bnf: 6 fields"), "{stdout}");
    assert!(stdout.contains("Open Library"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_crawls_on_one_database_share_the_work_without_overlap() {
    let (s, _) = loaded(300).await;
    let api = start_fake(FakeConfig {
        latency: Duration::from_millis(2),
        ..FakeConfig::default()
    })
    .await;
    let (a, b) = tokio::join!(crawl(&s, &api, &[]), crawl(&s, &api, &[]));
    assert_eq!((a, b), (ExitCode::Success, ExitCode::Success));
    assert_eq!(s.states().await, [("done".to_string(), 300)].into());
    let per_isbn = api.requests_per_isbn();
    assert_eq!(per_isbn.len(), 300);
    assert!(
        per_isbn.values().all(|&n| n == 1),
        "no ISBN fetched by both"
    );
    assert_eq!(
        s.scalar("SELECT count(*) FROM runs WHERE stop_reason = 'finished'")
            .await,
        2
    );
    assert_eq!(s.scalar("SELECT sum(done) FROM runs").await, 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_gives_jobs_back_and_exits_130() {
    let (s, _) = loaded(300).await;
    let api = start_fake(FakeConfig {
        latency: Duration::from_millis(20),
        ..FakeConfig::default()
    })
    .await;
    let mut child = crawl_binary(&s, &api, &["--concurrency", "4"])
        .spawn()
        .expect("spawn");
    if let Err(status) = wait_for_requests(&api, &mut child, 20).await {
        panic!("crawl ended before the signal: {status}");
    }
    let pid = child.id().expect("pid") as libc::pid_t;
    // SAFETY: plain kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let out = child.wait_with_output().await.expect("wait");
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(130), "{stdout}{stderr}");
    assert!(
        stdout.contains("interrupted; `isbn-crawler crawl` resumes"),
        "{stdout}"
    );
    let states = s.states().await;
    assert_eq!(states.get("in_progress"), None, "{states:?}");
    assert!(states.get("pending").is_some_and(|&n| n > 0), "{states:?}");
    assert_eq!(
        s.scalar("SELECT count(*) FROM jobs WHERE state = 'pending' AND attempts > 0")
            .await,
        0
    );
    assert_eq!(
        s.strings("SELECT stop_reason FROM runs").await,
        ["interrupted"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_exits_at_once_and_the_next_run_recovers() {
    use tokio::io::AsyncBufReadExt;
    let (s, _) = loaded(8).await;
    // Every request stalls, so the first signal's grace period would be spent waiting.
    let api = start_fake(FakeConfig {
        always: Some(Fault::Stall(Duration::from_secs(30))),
        ..FakeConfig::default()
    })
    .await;
    let mut child = crawl_binary(&s, &api, &["--concurrency", "4", "--timeout", "60s"])
        .spawn()
        .expect("spawn");
    if let Err(status) = wait_for_requests(&api, &mut child, 4).await {
        panic!("crawl ended early: {status}");
    }
    let pid = child.id().expect("pid") as libc::pid_t;
    // SAFETY: plain kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let mut stderr = tokio::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
    while let Some(line) = stderr.next_line().await.expect("read") {
        if line.contains("stopping: finishing requests in flight") {
            break;
        }
    }
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let out = child.wait_with_output().await.expect("wait");
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(130), "{stdout}{stderr}");
    assert!(
        !stdout.contains("interrupted;"),
        "no summary: it exited at once"
    );
    assert_eq!(
        s.scalar("SELECT count(*) FROM runs WHERE ended_at IS NULL")
            .await,
        1
    );
    // The next run takes the leases back and finishes.
    api.configure(|c| c.always = None);
    assert_eq!(crawl(&s, &api, &[]).await, ExitCode::Success);
    assert_eq!(s.states().await, [("done".to_string(), 8)].into());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_is_never_followed_and_names_where_it_pointed() {
    let (s, _) = loaded(2).await;
    let elsewhere = start_fake(FakeConfig::default()).await;
    let target = format!("{}/books/v1/volumes?key=OTHER&q=x", elsewhere.url());
    let api = start_fake(FakeConfig {
        always: Some(Fault::Redirect(target.clone())),
        openlibrary: OpenLibraryConfig {
            always: Some(OpenLibraryFault::Redirect(target)),
            ..OpenLibraryConfig::default()
        },
        ..FakeConfig::default()
    })
    .await;
    let code = crawl(
        &s,
        &api,
        &["--providers", "google,openlibrary", "--max-attempts", "2"],
    )
    .await;
    assert_eq!(code, ExitCode::JobsFailed);
    assert_eq!(elsewhere.total_requests(), 0, "the redirect was followed");
    let host = elsewhere.url().trim_start_matches("http://").to_string();
    let errors = s.strings("SELECT last_error FROM lookups").await;
    assert_eq!(errors.len(), 4, "{errors:?}");
    for e in &errors {
        assert!(
            e.contains(&format!(
                "redirect to {host}/books/v1/volumes, not followed"
            )),
            "{e}"
        );
        assert!(!e.contains("key=") && !e.contains(KEY), "{e}");
    }
}
