/*!
The backend `--db` names, chosen once when the database is opened: the commands and the crawl
hold an [`AnyStore`] and never ask which it is.
*/

use crate::store::RunId;
use futures_util::stream::BoxStream;

use super::{
    Asked, Claim, ClaimedLookup, Commit, Completion, CrawlStore, JobState, LoadBatch, LoadRecord,
    LoadStore, Location, Overview, PgStore, ProviderRecord, QuotaDay, QuotaStore, ReadStore,
    Record, RejectGroup, RejectedLine, RequeueFilter, Reservation, Result, RunEnd, RunInfo,
    SqliteStore, Status,
};
use crate::domain::ProviderId;

#[derive(Clone, Debug)]
pub enum AnyStore {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl AnyStore {
    /// Opens the database at `location`; `create` makes (and migrates) it when it is missing.
    /// `busy_timeout` is how long SQLite waits for another process's write lock.
    pub async fn open(
        location: &Location,
        create: bool,
        busy_timeout: std::time::Duration,
    ) -> Result<AnyStore> {
        Ok(match location {
            Location::Sqlite(path) => {
                AnyStore::Sqlite(SqliteStore::open_with(path, create, busy_timeout).await?)
            }
            Location::Postgres { url, shown } => {
                AnyStore::Postgres(PgStore::open(url, shown, create).await?)
            }
            Location::Invalid => return Err(super::Error::BadUrl),
        })
    }

    /// Closes the backend's connections; on SQLite this leaves the database one file. Waits
    /// at most a few seconds for connections still in use (a task the command left behind): a
    /// store not closed loses nothing, its writes are in the WAL.
    pub async fn close(&self) {
        let close = async {
            match self {
                AnyStore::Sqlite(s) => s.close().await,
                AnyStore::Postgres(s) => s.close().await,
            }
        };
        if tokio::time::timeout(CLOSE_WAIT, close).await.is_err() {
            tracing::debug!("connections still in use after {CLOSE_WAIT:?}; not closed");
        }
    }
}

/// How long [`AnyStore::close`] waits for connections in use.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Calls the same method on whichever backend this is.
macro_rules! each {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            AnyStore::Sqlite($s) => $call,
            AnyStore::Postgres($s) => $call,
        }
    };
}

impl LoadStore for AnyStore {
    async fn save_load_batch(&self, source: &str, batch: &LoadBatch, now_ms: i64) -> Result<u64> {
        each!(self, s => s.save_load_batch(source, batch, now_ms).await)
    }
    async fn record_load(&self, load: &LoadRecord, now_ms: i64) -> Result<()> {
        each!(self, s => s.record_load(load, now_ms).await)
    }
    async fn requeue(&self, filter: &RequeueFilter, now_ms: i64) -> Result<u64> {
        each!(self, s => s.requeue(filter, now_ms).await)
    }
}

impl ReadStore for AnyStore {
    async fn status(&self, now_ms: i64, quota_day: &str) -> Result<Status> {
        each!(self, s => s.status(now_ms, quota_day).await)
    }
    async fn overview(&self, now_ms: i64, quota_day: &str) -> Result<Overview> {
        each!(self, s => s.overview(now_ms, quota_day).await)
    }
    async fn record(&self, isbn13: &str) -> Result<Option<Record>> {
        each!(self, s => s.record(isbn13).await)
    }
    fn records<'a>(&'a self, states: &[JobState]) -> BoxStream<'a, Result<Record>> {
        each!(self, s => s.records(states))
    }
    async fn provider_records(&self, isbn13: &str) -> Result<Vec<ProviderRecord>> {
        each!(self, s => s.provider_records(isbn13).await)
    }
    async fn reject_groups(&self, examples: u32) -> Result<Vec<RejectGroup>> {
        each!(self, s => s.reject_groups(examples).await)
    }
    fn rejected_lines(&self) -> BoxStream<'_, Result<RejectedLine>> {
        each!(self, s => s.rejected_lines())
    }
}

impl QuotaStore for AnyStore {
    async fn quota_day(&self, day: &str) -> Result<QuotaDay> {
        each!(self, s => s.quota_day(day).await)
    }
    async fn mark_quota_exhausted(
        &self,
        key_id: &str,
        day: &str,
        at_ms: i64,
        resets_at_ms: i64,
    ) -> Result<()> {
        each!(self, s => s.mark_quota_exhausted(key_id, day, at_ms, resets_at_ms).await)
    }
    async fn reserve_budget(
        &self,
        key_id: &str,
        day: &str,
        want: u64,
        limit: Option<u64>,
        probe: bool,
    ) -> Result<Reservation> {
        each!(self, s => s.reserve_budget(key_id, day, want, limit, probe).await)
    }
    async fn release_budget(&self, key_id: &str, day: &str, units: u64) -> Result<()> {
        each!(self, s => s.release_budget(key_id, day, units).await)
    }
    async fn clear_quota_stop(&self, key_id: &str, day: &str) -> Result<()> {
        each!(self, s => s.clear_quota_stop(key_id, day).await)
    }
}

impl CrawlStore for AnyStore {
    async fn begin_run(&self, info: &RunInfo, now_ms: i64) -> Result<RunId> {
        each!(self, s => s.begin_run(info, now_ms).await)
    }
    async fn ensure_lookups(
        &self,
        asked: &[Asked],
        fill_missing: bool,
        now_ms: i64,
    ) -> Result<u64> {
        each!(self, s => s.ensure_lookups(asked, fill_missing, now_ms).await)
    }
    async fn recover_leases(
        &self,
        me: RunId,
        now_ms: i64,
        is_alive: &(dyn Fn(&RunInfo) -> bool + Sync),
    ) -> Result<u64> {
        each!(self, s => s.recover_leases(me, now_ms, is_alive).await)
    }
    async fn claim(&self, claim: &Claim) -> Result<Vec<ClaimedLookup>> {
        each!(self, s => s.claim(claim).await)
    }
    async fn complete(&self, commit: &Commit<'_>, completions: &mut [Completion]) -> Result<u64> {
        each!(self, s => s.complete(commit, completions).await)
    }
    async fn heartbeat(&self, run_id: RunId, now_ms: i64, lease_until_ms: i64) -> Result<()> {
        each!(self, s => s.heartbeat(run_id, now_ms, lease_until_ms).await)
    }
    async fn next_due_at(&self, provider: ProviderId, me: RunId) -> Result<Option<i64>> {
        each!(self, s => s.next_due_at(provider, me).await)
    }
    async fn open_jobs(&self) -> Result<u64> {
        each!(self, s => s.open_jobs().await)
    }
    async fn open_lookups(&self, provider: ProviderId) -> Result<u64> {
        each!(self, s => s.open_lookups(provider).await)
    }
    async fn last_stop_reason(&self) -> Result<Option<String>> {
        each!(self, s => s.last_stop_reason().await)
    }
    async fn end_run(&self, run_id: RunId, end: &RunEnd, now_ms: i64) -> Result<()> {
        each!(self, s => s.end_run(run_id, end, now_ms).await)
    }
}
