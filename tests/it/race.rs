//! The crawl's end-of-work decision under a slow store: a regression test for a race the
//! fault tests found. The dispatcher asked the store for the next due job, and only then
//! looked at what was in flight; a commit in between (in-flight jobs back to `pending` for a
//! retry) went unseen, and the crawl ended with jobs left. A store whose `next_due_at` answers
//! late, with what was true when it was asked, makes that window wide every time.

use crate::common;

use std::time::Duration;

use common::{Scratch, env_with_key, loaded};
use isbn_crawler::crawl::{self, CrawlOptions, Lane, StopReason, retry::RetryPolicy};
use isbn_crawler::domain::Routes;
use isbn_crawler::fake_api::{FakeApi, FakeConfig, Fault};
use isbn_crawler::progress::Reporter;
use isbn_crawler::providers::ProviderId;
use isbn_crawler::providers::google::{Client, ClientConfig};
use isbn_crawler::store::*;

/// Delegates the crawl's part of the store to SQLite, but answers `next_due_at` 100 ms after reading it.
#[derive(Clone)]
struct SlowStore(SqliteStore);

impl QuotaStore for SlowStore {
    async fn quota_day(&self, day: &str) -> Result<QuotaDay> {
        self.0.quota_day(day).await
    }
    async fn mark_quota_exhausted(
        &self,
        key_id: &str,
        day: &str,
        at_ms: i64,
        resets_at_ms: i64,
    ) -> Result<()> {
        self.0
            .mark_quota_exhausted(key_id, day, at_ms, resets_at_ms)
            .await
    }
    async fn reserve_budget(
        &self,
        key_id: &str,
        day: &str,
        want: u64,
        limit: Option<u64>,
        probe: bool,
    ) -> Result<Reservation> {
        self.0.reserve_budget(key_id, day, want, limit, probe).await
    }
    async fn release_budget(&self, key_id: &str, day: &str, units: u64) -> Result<()> {
        self.0.release_budget(key_id, day, units).await
    }
    async fn clear_quota_stop(&self, key_id: &str, day: &str) -> Result<()> {
        self.0.clear_quota_stop(key_id, day).await
    }
}

impl CrawlStore for SlowStore {
    async fn begin_run(&self, info: &RunInfo, now_ms: i64) -> Result<RunId> {
        self.0.begin_run(info, now_ms).await
    }
    async fn ensure_lookups(
        &self,
        asked: &[Asked],
        fill_missing: bool,
        now_ms: i64,
    ) -> Result<u64> {
        self.0.ensure_lookups(asked, fill_missing, now_ms).await
    }
    async fn recover_leases(
        &self,
        me: RunId,
        now_ms: i64,
        is_alive: &(dyn Fn(&RunInfo) -> bool + Sync),
    ) -> Result<u64> {
        self.0.recover_leases(me, now_ms, is_alive).await
    }
    async fn claim(&self, claim: &Claim) -> Result<Vec<ClaimedLookup>> {
        self.0.claim(claim).await
    }
    async fn complete(&self, commit: &Commit<'_>, c: &mut [Completion]) -> Result<u64> {
        self.0.complete(commit, c).await
    }
    async fn heartbeat(&self, run_id: RunId, now_ms: i64, lease_until_ms: i64) -> Result<()> {
        self.0.heartbeat(run_id, now_ms, lease_until_ms).await
    }
    async fn next_due_at(&self, provider: ProviderId, me: RunId) -> Result<Option<i64>> {
        let answer = self.0.next_due_at(provider, me).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        answer
    }
    async fn open_jobs(&self) -> Result<u64> {
        self.0.open_jobs().await
    }
    async fn open_lookups(&self, provider: ProviderId) -> Result<u64> {
        self.0.open_lookups(provider).await
    }
    async fn last_stop_reason(&self) -> Result<Option<String>> {
        self.0.last_stop_reason().await
    }
    async fn end_run(&self, run_id: RunId, end: &RunEnd, now_ms: i64) -> Result<()> {
        self.0.end_run(run_id, end, now_ms).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_during_the_end_of_work_check_does_not_end_the_crawl() {
    let (s, list): (Scratch, Vec<String>) = loaded(4).await;
    // Two 503s each: the jobs go back to pending (retry) while the dispatcher is checking.
    let mut config = FakeConfig {
        latency: Duration::from_millis(20),
        ..FakeConfig::default()
    };
    for isbn in &list {
        config.scripted.insert(
            isbn.clone(),
            [Fault::Unavailable, Fault::Unavailable].into(),
        );
    }
    let api = FakeApi::start(config).await.expect("fake");
    let client = Client::new(ClientConfig {
        api_url: api.url(),
        key: env_with_key().api_key,
        country: "US".into(),
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(5),
    })
    .expect("client");
    let lanes = vec![Lane {
        spec: &isbn_crawler::providers::google::SPEC,
        provider: std::sync::Arc::new(client),
        routes: Routes::All,
        rate: None,
        concurrency: 4,
        batch: Some(1),
        daily_budget: None,
        quota_key: Some("k".into()),
    }];
    let opts = CrawlOptions {
        fill_missing: false,
        wait_for_quota: false,
        quota_probe_interval: Duration::from_secs(60),
        retry: RetryPolicy {
            max_attempts: 5,
            base: Duration::from_millis(1),
            max: Duration::from_millis(2),
        },
        lease: Duration::from_secs(60),
        command: "test".into(),
    };
    let store = SlowStore(s.store().await);
    let summary = crawl::crawl(store, lanes, opts, Default::default(), &Reporter::quiet())
        .await
        .expect("crawl");
    assert_eq!(summary.stop, StopReason::Finished);
    assert_eq!(summary.open_jobs, 0, "the crawl ended with work left");
    assert_eq!(summary.counts.done, 4);
    assert_eq!(s.states().await, [("done".to_string(), 4)].into());
}
