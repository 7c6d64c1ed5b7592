//! Several machines on one job table, for real: four crawler processes on one PostgreSQL
//! database and one faulty fake API, 20,000 ISBNs. First they share a daily budget and stop
//! together without passing it; then, on a larger budget, one of them is killed with SIGKILL
//! mid-run and the other three finish its work without a restart. Every ISBN ends terminal,
//! none is asked again once stored, and none more often than its attempts plus the one kill.

use crate::common;

use std::time::{Duration, UNIX_EPOCH};

use common::{FAST, Scratch, crawl_binary, isbns, text, wait_for_requests};
use isbn_crawler::ExitCode;
use isbn_crawler::fake_api::{FakeConfig, FaultRates, title_for};
use sqlx::Row;

const ISBNS: usize = 20_000;
const CRAWLERS: usize = 4;
const CONCURRENCY: i64 = 8;
const BUDGET: u64 = 1_500;

fn crawlers(
    s: &Scratch,
    api: &isbn_crawler::fake_api::FakeApi,
    budget: u64,
) -> Vec<tokio::process::Child> {
    let budget = budget.to_string();
    (0..CRAWLERS)
        .map(|_| {
            let mut args = FAST.to_vec();
            args.extend([
                "--concurrency",
                "8",
                "--lease",
                "30s",
                "--daily-budget",
                &budget,
            ]);
            crawl_binary(s, api, &args).spawn().expect("spawn")
        })
        .collect()
}

async fn exit_codes(children: Vec<tokio::process::Child>) -> Vec<(Option<i32>, String)> {
    let mut codes = Vec::new();
    for child in children {
        let out = tokio::time::timeout(Duration::from_secs(300), child.wait_with_output())
            .await
            .expect("a crawler finishes within 300 s")
            .expect("wait");
        let (o, e) = text(&out);
        codes.push((out.status.code(), format!("{o}{e}")));
    }
    codes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_crawlers_share_one_database_a_budget_and_a_killed_ones_work() {
    let Some(s) = Scratch::postgres().await else {
        return;
    };
    let list = isbns(ISBNS);
    assert_eq!(s.load_lines(&list).await, ExitCode::Success);
    let api = common::start_fake(FakeConfig {
        latency: Duration::from_millis(1),
        random: FaultRates {
            unavailable: 0.03,
            reset: 0.02,
            truncated: 0.02,
            seed: 7,
            ..FaultRates::default()
        },
        ..FakeConfig::default()
    })
    .await;

    // One budget for all: together they stop at it, each saying the budget is spent.
    for (code, out) in exit_codes(crawlers(&s, &api, BUDGET)).await {
        assert_eq!(
            code,
            Some(i32::from(ExitCode::QuotaExhausted.code())),
            "{out}"
        );
    }
    let sent = api.total_requests();
    assert!(
        sent <= BUDGET,
        "{sent} requests for a budget of {BUDGET} shared by {CRAWLERS} crawlers"
    );
    assert!(
        sent + 4 * CRAWLERS as u64 * 8 >= BUDGET,
        "the budget was used ({sent})"
    );
    assert_eq!(
        s.scalar("SELECT sum(requests)::bigint FROM quota_days")
            .await as u64,
        sent
    );

    // A larger budget; one crawler is killed mid-run and the others take over its leases.
    let mut children = crawlers(&s, &api, 1_000_000);
    let victim = children.remove(0);
    let mut victim = victim;
    let target = api.total_requests() + 3_000;
    if let Err(status) = wait_for_requests(&api, &mut victim, target).await {
        panic!("the crawler ended before the kill: {status}");
    }
    victim.start_kill().expect("SIGKILL");
    assert_eq!(victim.wait().await.expect("wait").code(), None);
    for (code, out) in exit_codes(children).await {
        assert!(
            code == Some(0) || code == Some(i32::from(ExitCode::JobsFailed.code())),
            "{out}"
        );
    }
    assert_eq!(
        s.scalar("SELECT count(*) FROM runs WHERE stop_reason = 'killed'")
            .await,
        1,
        "the killed crawler's run was found dead and its leases taken back"
    );

    // Every ISBN terminal, books where done, none asked after it was stored, none more often
    // than its attempts plus the kill.
    let states = s.states().await;
    assert_eq!(states.get("pending"), None, "{states:?}");
    assert_eq!(states.get("in_progress"), None, "{states:?}");
    let pool = sqlx::PgPool::connect(&s.db_str()).await.expect("connect");
    let rows = sqlx::query(
        "SELECT j.isbn13, j.state, j.attempts, b.title, b.fetched_at
         FROM jobs j LEFT JOIN books b ON b.isbn13 = j.isbn13",
    )
    .fetch_all(&pool)
    .await
    .expect("rows");
    assert_eq!(rows.len(), ISBNS);
    let asked = api.requests_per_isbn();
    let last_asked = api.last_request_at();
    let mut attempts_total = 0;
    for row in &rows {
        let isbn: String = row.get(0);
        let state: String = row.get(1);
        let attempts: i64 = row.get(2);
        attempts_total += attempts;
        let title: Option<String> = row.get(3);
        let fetched_at: Option<i64> = row.get(4);
        match state.as_str() {
            "done" => assert_eq!(title, Some(title_for(&isbn)), "{isbn}"),
            "failed" => assert_eq!(attempts, 8, "{isbn}"),
            other => panic!("{isbn} is {other}"),
        }
        if let (Some(stored), Some(last)) = (fetched_at, last_asked.get(&isbn)) {
            let last_ms = last
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            assert!(last_ms <= stored, "{isbn} asked after it was stored");
        }
        let n = i64::from(asked.get(&isbn).copied().unwrap_or(0));
        assert!(
            (1..=attempts + 1).contains(&n),
            "{isbn} asked {n} times for {attempts} attempts"
        );
    }
    // In all: one request per attempt, plus what the kill cut off: in flight, and answered but
    // not committed (a commit under way and the next one gathering, at most 256 answers each).
    let per_kill = CONCURRENCY + 2 * 256;
    let total = api.total_requests() as i64;
    assert!(
        total <= attempts_total + per_kill,
        "{total} requests for {attempts_total} attempts"
    );
}
