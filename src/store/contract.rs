/*!
The store's contract, split by who consumes it: `load` and `requeue` put work in the queue
([`LoadStore`]), the commands that show results read ([`ReadStore`]), the crawl leases and
completes lookups ([`CrawlStore`]) and keeps a key's daily quota with the other crawlers of
that key ([`QuotaStore`]). [`Store`] is all four: what a backend implements, and what the
commands hold. A consumer asks only for the part it uses, so a test double of the crawl's
store (`tests/it/race.rs`) writes the crawl's methods, not the report's.

Each method is one transaction. Times are Unix milliseconds (`now_ms` is always the caller's
clock, so tests can set it).
*/

use std::future::Future;

use futures_util::stream::BoxStream;

use super::{
    Asked, ClaimedLookup, Completion, JobState, LoadBatch, LoadRecord, Overview, ProviderRecord,
    QuotaDay, Record, RejectGroup, RejectedLine, RequeueFilter, Reservation, Result, RunEnd, RunId,
    RunInfo, Status,
};
use crate::domain::ProviderId;

/// What puts work in the queue: a load's batches and its summary, and `requeue`.
pub trait LoadStore: Clone + Send + Sync + 'static {
    /// Adds the jobs that are new and the rejects not seen before, in one transaction.
    /// Returns how many jobs were new. Existing jobs are never changed.
    fn save_load_batch(
        &self,
        source: &str,
        batch: &LoadBatch,
        now_ms: i64,
    ) -> impl Future<Output = Result<u64>> + Send;

    /// Keeps what one load of a source read (`loads`), for the report.
    fn record_load(
        &self,
        load: &LoadRecord,
        now_ms: i64,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Moves matching lookups back to `pending`, due now, with fresh attempts, and their jobs
    /// with them. Returns how many lookups. Stored books stay until a re-fetch replaces them.
    fn requeue(
        &self,
        filter: &RequeueFilter,
        now_ms: i64,
    ) -> impl Future<Output = Result<u64>> + Send;
}

/// What `status`, `show`, `export`, `results` and `report` read.
pub trait ReadStore: Clone + Send + Sync + 'static {
    fn status(&self, now_ms: i64, quota_day: &str) -> impl Future<Output = Result<Status>> + Send;

    /// Everything the report shows, aggregated in the database.
    fn overview(
        &self,
        now_ms: i64,
        quota_day: &str,
    ) -> impl Future<Output = Result<Overview>> + Send;

    /// One job with its book, by ISBN-13.
    fn record(&self, isbn13: &str) -> impl Future<Output = Result<Option<Record>>> + Send;

    /// Every job in one of `states`, in load order, streamed.
    fn records<'a>(&'a self, states: &[JobState]) -> BoxStream<'a, Result<Record>>;

    /// Each provider's record and lookup of one book, in provider order.
    fn provider_records(
        &self,
        isbn13: &str,
    ) -> impl Future<Output = Result<Vec<ProviderRecord>>> + Send;

    /// Rejected lines per reason (most first), with the first `examples` of each.
    fn reject_groups(&self, examples: u32)
    -> impl Future<Output = Result<Vec<RejectGroup>>> + Send;

    /// Every rejected line, in the order they were stored, streamed.
    fn rejected_lines(&self) -> BoxStream<'_, Result<RejectedLine>>;
}

/// A daily quota's book-keeping, shared by every crawler of one key on one database.
pub trait QuotaStore: Clone + Send + Sync + 'static {
    fn quota_day(&self, day: &str) -> impl Future<Output = Result<QuotaDay>> + Send;

    /// The provider said the quota of the key `key_id` is spent this `day`: its other
    /// crawlers stop. The day's row and the key's row change together.
    fn mark_quota_exhausted(
        &self,
        key_id: &str,
        day: &str,
        at_ms: i64,
        resets_at_ms: i64,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Reserves up to `want` units of `day`'s budget of the key `key_id`, so the key's
    /// crawlers on one database never send more than `limit` together. Grants none when
    /// `limit` is reached, or when a crawler has met the key's quota this day (unless `probe`:
    /// the one request that asks whether the quota is back).
    fn reserve_budget(
        &self,
        key_id: &str,
        day: &str,
        want: u64,
        limit: Option<u64>,
        probe: bool,
    ) -> impl Future<Output = Result<Reservation>> + Send;

    /// Gives back reserved units that were not spent.
    fn release_budget(
        &self,
        key_id: &str,
        day: &str,
        units: u64,
    ) -> impl Future<Output = Result<()>> + Send;

    /// A probe got an answer: the quota is back, and other crawlers may send again. The day's
    /// row and the key's row change together.
    fn clear_quota_stop(&self, key_id: &str, day: &str) -> impl Future<Output = Result<()>> + Send;
}

/// Which lookups a claim leases, to whom, and until when.
#[derive(Debug, Clone, Copy)]
pub struct Claim {
    /// The run that takes the leases (their `lease_owner`).
    pub run_id: RunId,
    pub provider: ProviderId,
    /// At most this many lookups.
    pub max: u32,
    pub now_ms: i64,
    pub lease_until_ms: i64,
}

/// Whose completions a commit applies, how it merges, and when.
#[derive(Debug, Clone, Copy)]
pub struct Commit<'a> {
    /// The run whose leases guard the completions.
    pub run_id: RunId,
    /// The order of providers the merged fields follow.
    pub precedence: &'a [ProviderId],
    /// The quota day the requests are counted in.
    pub quota_day: &'a str,
    pub now_ms: i64,
}

/// What a crawl does: its run's row, the lookups it makes, leases and completes.
pub trait CrawlStore: QuotaStore {
    /// Records a new run and returns its id (the lease owner of what it claims).
    fn begin_run(&self, info: &RunInfo, now_ms: i64) -> impl Future<Output = Result<RunId>> + Send;

    /// Makes the lookups a crawl with these providers needs: one per job and provider, for the
    /// jobs whose ISBN the provider is routed, or with `fill_missing` one for each provider
    /// where every earlier one routed to the ISBN has not found the book. Returns how many
    /// were made.
    fn ensure_lookups(
        &self,
        asked: &[Asked],
        fill_missing: bool,
        now_ms: i64,
    ) -> impl Future<Output = Result<u64>> + Send;

    /// Ends runs that are gone (`is_alive` says no) and gives their leases back, as well as any
    /// lease past its `lease_until`. Returns how many jobs went back to `pending`.
    fn recover_leases(
        &self,
        me: RunId,
        now_ms: i64,
        is_alive: &(dyn Fn(&RunInfo) -> bool + Sync),
    ) -> impl Future<Output = Result<u64>> + Send;

    /// Leases up to `claim.max` due pending lookups of `claim.provider`, oldest first,
    /// atomically: the choice and the leases under one write lock, so two runs never lease
    /// the same lookup.
    fn claim(&self, claim: &Claim) -> impl Future<Output = Result<Vec<ClaimedLookup>>> + Send;

    /// Applies completions guarded by the lease: stores each found record, re-merges the books
    /// they touch (fields by `commit.precedence`), makes the lookups `then` names, updates the jobs'
    /// states, and counts the requests for the run and (those of a provider with a daily
    /// quota) for `commit.quota_day`, all in one transaction. Returns how many were applied (the rest
    /// had lost their lease).
    ///
    /// A backend may move a found book's texts out (all but `isbn13`) to bind them without a
    /// copy: handing borrowed text to sqlx's SQLite thread copied 13 strings an ISBN. So a
    /// caller reads only the completions' kinds and counts afterwards, and never passes the
    /// same completions again, even after an error (the crawl's writer does neither).
    fn complete(
        &self,
        commit: &Commit<'_>,
        completions: &mut [Completion],
    ) -> impl Future<Output = Result<u64>> + Send;

    /// Keeps the run alive and extends its leases.
    fn heartbeat(
        &self,
        run_id: RunId,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> impl Future<Output = Result<()>> + Send;

    /// When the next lookup of `provider` may be claimed (Unix ms): the earliest due time of a
    /// pending one, or the lease end of one another run holds (it comes back if that run dies).
    /// `None` when there is neither.
    fn next_due_at(
        &self,
        provider: ProviderId,
        me: RunId,
    ) -> impl Future<Output = Result<Option<i64>>> + Send;

    /// Jobs not yet terminal (pending or in progress).
    fn open_jobs(&self) -> impl Future<Output = Result<u64>> + Send;

    /// `provider`'s lookups pending or in progress (the progress line's total), from the
    /// partial indexes of each state: no pass over the tables.
    fn open_lookups(&self, provider: ProviderId) -> impl Future<Output = Result<u64>> + Send;

    /// The stop reason of the latest finished run, if any (a run after a quota stop probes first).
    fn last_stop_reason(&self) -> impl Future<Output = Result<Option<String>>> + Send;

    /// Ends the run: its stop reason, and each lane's batch size (`run_providers`), together.
    fn end_run(
        &self,
        run_id: RunId,
        end: &RunEnd,
        now_ms: i64,
    ) -> impl Future<Output = Result<()>> + Send;
}

/// The whole contract: what each backend implements and what the commands hold.
pub trait Store: LoadStore + ReadStore + CrawlStore {}

impl<T: LoadStore + ReadStore + CrawlStore> Store for T {}
