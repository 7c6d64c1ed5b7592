/*!
The crawl loop: claim, wait for a permit and a unit of budget, fetch, classify, store.

```text
 dispatcher ──claim N (lease)──▶ job channel ──▶ workers (×concurrency) ──▶ completion channel
     ▲                                              │ limiter permit, budget,       │
     │ notify after each commit                     │ client.lookup, job_result     ▼
     └──────────────────────────────────────────────────────────────────────  writer (one task,
                                                                             one transaction per
                                                                             batch of completions)
```

Why this shape:
- One dispatcher claims in batches, so claiming costs one statement per batch, not per ISBN.
  It claims only as many jobs as there are free slots, so a leased job waits at most a few
  permits before its request.
- One writer applies every completion that is waiting in one transaction ("group commit"),
  so storing costs a few transactions per second however fast the API answers, and a result
  stays uncommitted only while the previous commit runs: that window is what a kill -9 costs.
- The writer counts what it has committed (`in_flight`) and wakes the dispatcher, which is how
  the dispatcher knows the crawl is over: nothing claimable, nothing in flight, no retry due,
  and no lookup leased by another run (it could come back if that run dies).

Several crawlers on one database (SQLite on one machine, PostgreSQL on many): the heartbeat
also takes back the leases of runs that are gone (`is_alive`: same `host_id` and process gone;
one whose process exists but cannot be read is alive until its lease expires) or ran out, and
wakes the lanes; Google's budget is reserved from the store a block at a time
([`quota::Budget`]), so `--daily-budget` and a quota stop hold for all crawlers of one key.

Providers: one *lane* per provider (its own dispatcher, workers, writer, rate limiter and, for
Google, the daily budget), all in one run. A lane claims only its provider's lookups, so a
Google quota stop pauses Google alone while Open Library goes on. With `--fill missing` a
lane's "not found" makes the next provider's lookup in the same transaction, and that lane does
not finish while the lanes feeding it may still make work.

Stopping: the first stop request of a lane wins ([`StopReason`]). A stop for the quota, a refused key or
a signal stops claiming at once; jobs not yet sent go back to `pending` with their attempt
refunded. Requests in flight finish, except after an interrupt's grace period (`abort`).
*/

pub mod batch;
pub mod limiter;
pub mod quota;
pub mod retry;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use std::collections::VecDeque;

use crate::isbn::Isbn13;
use crate::progress::Reporter;
use crate::providers::{Answer, Outcome, Provider, ProviderId, Rejection};
use crate::store::{self, ClaimedJob, Completion, JobResult, RunEnd, RunInfo, Store};
use batch::{BatchSize, MissPool};
use limiter::Limiter;
use quota::{Budget, Take};
use retry::RetryPolicy;

/// What the whole run shares.
#[derive(Debug, Clone)]
pub struct CrawlOptions {
    pub wait_for_quota: bool,
    pub quota_probe_interval: Duration,
    pub retry: RetryPolicy,
    pub lease: Duration,
    /// `--fill missing`: a later provider is asked only where every earlier one found nothing.
    pub fill_missing: bool,
    /// What the `runs` table calls this run (`crawl`, `run`, `demo`).
    pub command: String,
}

/// One provider's part of a run, in precedence order.
#[derive(Clone)]
pub struct Lane {
    pub provider: Arc<dyn Provider>,
    /// Requests per second; `None` is unlimited.
    pub rate: Option<f64>,
    pub concurrency: usize,
    /// ISBNs asked per request (1 to the provider's maximum), or `None` to adapt (see
    /// [`batch`]); see `process_group`.
    pub batch: Option<usize>,
    /// Requests allowed per quota day (Google's; counted in `quota_days`).
    pub daily_budget: Option<u64>,
    /// Whose daily quota the lane spends ([`quota::key_id`] of Google's key; `None` for providers
    /// without one): crawlers with the same key share its budget and quota stop.
    pub quota_key: Option<String>,
}

/// How one lane ended.
#[derive(Debug, Clone)]
pub struct LaneSummary {
    pub provider: ProviderId,
    pub stop: StopReason,
    pub counts: Counts,
    /// ISBNs per request at the end (the adaptive size, or the fixed one).
    pub batch: usize,
}

/// Why a crawl ended.
#[derive(Debug, Clone, PartialEq)]
pub enum StopReason {
    /// Nothing left to do.
    Finished,
    /// Google says the day's quota is spent.
    QuotaExhausted { message: String },
    /// `--daily-budget` is spent.
    BudgetSpent,
    /// Google refused the key or project.
    ApiRejected { kind: Rejection, message: String },
    /// Ctrl-C or SIGTERM.
    Interrupted,
    /// The store failed (the error itself is returned by [`crawl`]).
    StoreFailed,
}

impl StopReason {
    /// The `runs.stop_reason` value.
    pub fn code(&self) -> &'static str {
        match self {
            StopReason::Finished => "finished",
            StopReason::QuotaExhausted { .. } => "quota",
            StopReason::BudgetSpent => "budget",
            StopReason::ApiRejected { .. } => "api-rejected",
            StopReason::Interrupted => "interrupted",
            StopReason::StoreFailed => "error",
        }
    }
}

/// Live counts of what this run has committed.
#[derive(Debug, Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub done: AtomicU64,
    pub not_found: AtomicU64,
    pub failed: AtomicU64,
    pub retried: AtomicU64,
    pub given_back: AtomicU64,
    /// Google's ISBNs per request now (0 until it asked), for the progress line.
    pub batch: AtomicU64,
    /// Misses that `--fill missing` handed to the next provider (a lookup each).
    pub chained: AtomicU64,
}

/// A copy of [`Counters`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub requests: u64,
    pub done: u64,
    pub not_found: u64,
    pub failed: u64,
    pub retried: u64,
    pub given_back: u64,
}

impl crate::progress::Source for Counters {
    fn tally(&self) -> crate::progress::Tally {
        let c = self.snapshot();
        crate::progress::Tally {
            requests: c.requests,
            done: c.done,
            not_found: c.not_found,
            failed: c.failed,
            retried: c.retried,
            chained: self.chained.load(Ordering::Relaxed),
            batch: self.batch.load(Ordering::Relaxed),
        }
    }
}

impl Counters {
    fn add(&self, batch: &[Completion]) {
        for c in batch {
            self.requests
                .fetch_add(u64::from(c.requests), Ordering::Relaxed);
            let counter = match c.result {
                JobResult::Done(_) => &self.done,
                JobResult::NotFound { .. } => &self.not_found,
                JobResult::Failed { .. } => &self.failed,
                JobResult::Retry { .. } => &self.retried,
                JobResult::GiveBack => &self.given_back,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            let missed = matches!(
                c.result,
                JobResult::NotFound { .. } | JobResult::Failed { .. }
            );
            if missed && c.then.is_some() {
                self.chained.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub fn snapshot(&self) -> Counts {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Counts {
            requests: get(&self.requests),
            done: get(&self.done),
            not_found: get(&self.not_found),
            failed: get(&self.failed),
            retried: get(&self.retried),
            given_back: get(&self.given_back),
        }
    }
}

/// What the caller learns when the crawl is over.
#[derive(Debug, Clone)]
pub struct Summary {
    pub run_id: i64,
    /// The lanes' stops combined: the one that most needs the user (an error, an interrupt, a
    /// refusal, the quota), else finished.
    pub stop: StopReason,
    pub lanes: Vec<LaneSummary>,
    pub counts: Counts,
    /// Jobs a dead run held that this run took back before starting.
    pub recovered: u64,
    /// Jobs still pending or in progress.
    pub open_jobs: u64,
    /// When the quota day ends, after a quota or budget stop.
    pub quota_resets_at: Option<DateTime<Utc>>,
    pub elapsed: Duration,
}

/// Signals from outside: `interrupt` stops claiming, `abort` also cuts requests in flight.
#[derive(Debug, Clone, Default)]
pub struct Control {
    pub interrupt: CancellationToken,
    pub abort: CancellationToken,
}

/// The first stop request of a session, and the tokens that carry it to every task.
#[derive(Debug, Clone)]
struct Stop {
    soft: CancellationToken,
    hard: CancellationToken,
    interrupt: CancellationToken,
    reason: Arc<Mutex<Option<StopReason>>>,
    error: Arc<Mutex<Option<store::Error>>>,
}

impl Stop {
    fn new(control: &Control) -> Stop {
        Stop {
            soft: control.interrupt.child_token(),
            hard: control.abort.child_token(),
            interrupt: control.interrupt.clone(),
            reason: Arc::default(),
            error: Arc::default(),
        }
    }

    fn request(&self, reason: StopReason) {
        let mut slot = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            tracing::info!(reason = reason.code(), "stopping");
            *slot = Some(reason);
        }
        self.soft.cancel();
    }

    fn fail(&self, e: store::Error) {
        // The first error ends the crawl and is printed once, by `main`; later ones (often its
        // echoes from other tasks) only in the log.
        let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
        match &*slot {
            Some(_) => tracing::debug!("after the first store error: {e}"),
            None => *slot = Some(e),
        }
        drop(slot);
        self.request(StopReason::StoreFailed);
        self.hard.cancel();
    }

    fn is_stopping(&self) -> bool {
        self.soft.is_cancelled()
    }

    fn reason(&self) -> StopReason {
        let slot = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        match &*slot {
            Some(r) => r.clone(),
            None if self.interrupt.is_cancelled() => StopReason::Interrupted,
            None => StopReason::Finished,
        }
    }

    fn take_error(&self) -> Option<store::Error> {
        self.error.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// What every task of one lane shares.
struct Ctx<S> {
    store: S,
    /// The lane's provider's id (its `lane.provider.id()`, kept at hand).
    id: ProviderId,
    lane: Lane,
    opts: CrawlOptions,
    run_id: i64,
    /// This process, to tell which other runs are gone.
    process: RunInfo,
    limiter: Limiter,
    budget: Budget,
    /// The next request is the probe after a quota stop.
    probing: std::sync::atomic::AtomicBool,
    /// This lane's counts, and the run's.
    counters: Arc<Counters>,
    total: Arc<Counters>,
    /// The provider to ask next where this one finds nothing (`--fill missing`).
    then: Option<ProviderId>,
    precedence: Vec<ProviderId>,
    /// Lanes that may still make lookups for this one; it waits for them before finishing.
    upstream: Vec<Arc<std::sync::atomic::AtomicBool>>,
    running: Arc<std::sync::atomic::AtomicBool>,
    /// Woken when any lane commits or ends.
    wake: Arc<Notify>,
    /// ISBNs per request, fixed or adapting.
    size: BatchSize,
    /// Misses of OR answers waiting for a batch of misses.
    misses: MissPool,
}

/// A request's worth of lookups, each with the OR batches of misses it has been through.
type Group = Vec<(ClaimedJob, u8)>;

pub use crate::clock::now_ms;

/// Runs a crawl to its end: everything done, or a stop. See the module docs.
pub async fn crawl<S: Store>(
    store: S,
    lanes: Vec<Lane>,
    opts: CrawlOptions,
    control: Control,
    progress: &Reporter,
) -> Result<Summary, store::Error> {
    let started = tokio::time::Instant::now();
    let budget = lanes
        .iter()
        .find(|l| l.provider.id() == ProviderId::Google)
        .and_then(|l| l.daily_budget);
    let info = this_process(&opts.command, budget);
    let run_id = store.begin_run(&info, now_ms()).await?;
    let recovered = recover(&store, run_id, &info).await?;
    let order: Vec<ProviderId> = lanes.iter().map(|l| l.provider.id()).collect();
    store
        .ensure_lookups(&order, opts.fill_missing, now_ms())
        .await?;
    let today = quota::quota_day(quota::now());
    let quota_today = store.quota_day(&today).await?;
    let used = quota_today.requests;
    // After a quota stop (even one whose wait was interrupted), one request alone first.
    let probe = store.last_stop_reason().await?.as_deref() == Some("quota")
        || quota_today.exhausted_at.is_some();
    progress.attach_budget(used, budget);
    let open = store.status(now_ms(), &today).await?;
    progress.set_total(
        order
            .iter()
            .filter_map(|p| open.lookups.get(p.as_str()))
            .map(|per| per.get("pending").unwrap_or(&0) + per.get("in_progress").unwrap_or(&0))
            .sum(),
    );
    let total = Arc::new(Counters::default());
    progress.attach(total.clone());
    let wake = Arc::new(Notify::new());
    let running: Vec<_> = lanes
        .iter()
        .map(|_| Arc::new(std::sync::atomic::AtomicBool::new(true)))
        .collect();
    let ctxs: Vec<Arc<Ctx<S>>> = lanes
        .into_iter()
        .enumerate()
        .map(|(i, lane)| {
            let id = lane.provider.id();
            let max = lane.provider.max_batch();
            Arc::new(Ctx {
                size: match lane.batch {
                    Some(n) => BatchSize::fixed(n.clamp(1, max)),
                    None => BatchSize::adaptive(max),
                },
                misses: MissPool::default(),
                limiter: Limiter::new(lane.rate),
                budget: match (&lane.quota_key, lane.daily_budget) {
                    (Some(key), Some(_)) => Budget::shared(key, lane.daily_budget, BUDGET_BLOCK),
                    (Some(key), None) => {
                        let block = a_second_ahead(lane.rate, UNLIMITED_BLOCK as usize);
                        Budget::shared(key, None, block as u64)
                    }
                    (None, _) => Budget::unlimited(),
                },
                probing: std::sync::atomic::AtomicBool::new(false),
                counters: Arc::new(Counters::default()),
                total: total.clone(),
                then: order.get(i + 1).copied().filter(|_| opts.fill_missing),
                precedence: ProviderId::precedence(&order),
                upstream: if opts.fill_missing {
                    running[..i].to_vec()
                } else {
                    Vec::new()
                },
                running: running[i].clone(),
                wake: wake.clone(),
                id,
                lane,
                store: store.clone(),
                opts: opts.clone(),
                run_id,
                process: info.clone(),
            })
        })
        .collect();

    let heartbeat = ctxs.first().map(|c| tokio::spawn(heartbeat(c.clone())));
    let ended = futures_util::future::join_all(ctxs.iter().map(|ctx| {
        let probe = probe && ctx.id == ProviderId::Google;
        let control = control.clone();
        async move {
            let r = lane(ctx, &control, progress, probe).await;
            ctx.running.store(false, Ordering::SeqCst);
            ctx.wake.notify_waiters();
            r
        }
    }))
    .await;
    if let Some(h) = heartbeat {
        h.abort();
    }

    let mut error = None;
    let mut summaries = Vec::new();
    for (ctx, (stop, e)) in ctxs.iter().zip(ended) {
        if error.is_none() {
            error = e;
        }
        summaries.push(LaneSummary {
            provider: ctx.id,
            stop,
            counts: ctx.counters.snapshot(),
            batch: ctx.size.current(),
        });
    }
    let stop = combined(&summaries);
    let google = ctxs.iter().find(|c| c.id == ProviderId::Google);
    let end = RunEnd {
        stop_reason: stop.code().to_string(),
        batch_size: google.map(|c| c.size.current() as u64),
    };
    let ended = store.end_run(run_id, &end, now_ms()).await;
    if let Some(e) = error {
        return Err(e);
    }
    ended?;
    let quota_resets_at = summaries
        .iter()
        .any(|l| {
            matches!(
                l.stop,
                StopReason::QuotaExhausted { .. } | StopReason::BudgetSpent
            )
        })
        .then(|| quota::day_end(quota::now()));
    Ok(Summary {
        run_id,
        stop,
        lanes: summaries,
        counts: total.snapshot(),
        recovered,
        open_jobs: store.open_jobs().await?,
        quota_resets_at,
        elapsed: started.elapsed(),
    })
}

/// The stop that most needs the user, of all lanes.
fn combined(lanes: &[LaneSummary]) -> StopReason {
    let rank = |s: &StopReason| match s {
        StopReason::StoreFailed => 5,
        StopReason::Interrupted => 4,
        StopReason::ApiRejected { .. } => 3,
        StopReason::QuotaExhausted { .. } => 2,
        StopReason::BudgetSpent => 1,
        StopReason::Finished => 0,
    };
    lanes
        .iter()
        .map(|l| &l.stop)
        .max_by_key(|s| rank(s))
        .cloned()
        .unwrap_or(StopReason::Finished)
}

/// One lane to its end: sessions, and between them the waits for Google's quota.
async fn lane<S: Store>(
    ctx: &Arc<Ctx<S>>,
    control: &Control,
    progress: &Reporter,
    mut probe: bool,
) -> (StopReason, Option<store::Error>) {
    loop {
        let stop = Stop::new(control);
        session(ctx, &stop, probe).await;
        let reason = stop.reason();
        if let Some(e) = stop.take_error() {
            return (reason, Some(e));
        }
        let spent = matches!(
            reason,
            StopReason::QuotaExhausted { .. } | StopReason::BudgetSpent
        );
        // Google's quota is the key's, whoever met it: other crawlers on the database stop
        // sending too. A spent --daily-budget is this crawler's own limit and stops only those
        // that share it, through their reservations.
        if let (StopReason::QuotaExhausted { .. }, Some(key)) = (&reason, &ctx.lane.quota_key) {
            let now = quota::now();
            let day = quota::quota_day(now);
            if let Err(e) = ctx
                .store
                .mark_quota_exhausted(
                    key,
                    &day,
                    now.timestamp_millis(),
                    quota::day_end(now).timestamp_millis(),
                )
                .await
            {
                return (StopReason::StoreFailed, Some(e));
            }
        }
        if !(spent && ctx.opts.wait_for_quota) {
            return (reason, None);
        }
        // Sleep until the quota day ends (or the next probe), then try one request alone.
        probe = matches!(reason, StopReason::QuotaExhausted { .. });
        let now = quota::now();
        let until_reset = (quota::day_end(now) - now).to_std().unwrap_or_default();
        let wait = if probe {
            until_reset.min(ctx.opts.quota_probe_interval)
        } else {
            until_reset
        };
        progress.message(&format!(
            "{}: quota spent; waiting {} before trying again (Ctrl-C to stop)",
            ctx.id.title(),
            crate::progress::human_duration(wait)
        ));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = control.interrupt.cancelled() => return (StopReason::Interrupted, None),
        }
    }
}

/// One stretch of crawling, until everything is done or a stop.
async fn session<S: Store>(ctx: &Arc<Ctx<S>>, stop: &Stop, probe: bool) {
    let concurrency = ctx.lane.concurrency.max(1);
    // Jobs travel in groups of one request's worth (`--batch`). Room for two claims of a group
    // per worker: one being worked through, one refilled.
    let (job_tx, job_rx) = mpsc::channel::<Group>(2 * concurrency);
    let (done_tx, done_rx) = mpsc::channel::<Completion>(concurrency * 4 + 64);
    let in_flight = Arc::new(AtomicUsize::new(0));
    let committed = Arc::new(Notify::new());

    let writer = tokio::spawn(writer(
        ctx.clone(),
        done_rx,
        in_flight.clone(),
        committed.clone(),
        stop.clone(),
    ));
    let job_rx = Arc::new(tokio::sync::Mutex::new(job_rx));
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            tokio::spawn(worker(
                ctx.clone(),
                stop.clone(),
                job_rx.clone(),
                done_tx.clone(),
            ))
        })
        .collect();

    // Jobs claimed ahead of the workers; what a stop leaves here goes back.
    let mut ahead = VecDeque::new();
    if let Err(e) = dispatch(
        ctx, stop, &job_tx, &mut ahead, &in_flight, &committed, probe,
    )
    .await
    {
        stop.fail(e);
    }
    drop(job_tx);
    for job in ahead {
        if done_tx.send(give_back(ctx, &job, 0)).await.is_err() {
            break;
        }
    }
    for w in workers {
        if let Err(e) = w.await {
            tracing::error!("a worker panicked: {e}");
        }
    }
    // A stop can leave misses waiting for a batch: they go back, attempts refunded.
    for (job, _) in ctx.misses.drain() {
        if done_tx.send(give_back(ctx, &job, 0)).await.is_err() {
            break;
        }
    }
    drop(done_tx);
    if let Err(e) = writer.await {
        tracing::error!("the writer panicked: {e}");
    }
    if let Err(e) = ctx.budget.release(&ctx.store).await {
        tracing::warn!("could not give back the unused budget: {e}");
    }
}

/// Claims due jobs into free worker slots until nothing is left or a stop. Single-ISBN
/// requests are claimed [`a_second_ahead`] at a time and wait in `ahead` for slots.
async fn dispatch<S: Store>(
    ctx: &Ctx<S>,
    stop: &Stop,
    job_tx: &mpsc::Sender<Group>,
    ahead: &mut VecDeque<ClaimedJob>,
    in_flight: &AtomicUsize,
    committed: &Notify,
    mut probe: bool,
) -> Result<(), store::Error> {
    let lease_ms = ctx.opts.lease.as_millis() as i64;
    let groups = ctx.lane.concurrency.max(1);
    let mut held_since = None;
    loop {
        let per_request = ctx.size.next();
        // Hand out a request's worth for every worker at a time, once that many slots are
        // free: workers never wait on an empty channel.
        ctx.probing.store(probe, Ordering::SeqCst);
        let (want_groups, want) = if probe {
            (1, 1)
        } else {
            (groups, groups * per_request)
        };
        let permits = tokio::select! {
            biased;
            _ = stop.soft.cancelled() => return Ok(()),
            p = job_tx.reserve_many(want_groups) => match p {
                Ok(p) => p,
                Err(_) => return Ok(()),
            },
        };
        if ahead.len() < want {
            // Claims of batches are not made ahead: groups claimed at a size `--batch auto`
            // has since left would still go out at the old size.
            let ask = if per_request == 1 && !probe {
                want.max(a_second_ahead(ctx.lane.rate, MIN_CLAIM))
            } else {
                want
            };
            let now = now_ms();
            let claimed = ctx
                .store
                .claim(
                    ctx.run_id,
                    ctx.id,
                    (ask - ahead.len()) as u32,
                    now,
                    now + lease_ms,
                )
                .await?;
            in_flight.fetch_add(claimed.len(), Ordering::SeqCst);
            ahead.extend(claimed);
        }
        let wait = if probe || ahead.len() >= per_request {
            None
        } else {
            gathering(ctx, ahead, &mut held_since).await?
        };
        if let Some(wait) = wait {
            // A partial batch while more come due within GATHER (retries of one failed batch,
            // spread by their jitter): held in `ahead` until they join it.
            drop(permits);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.soft.cancelled() => return Ok(()),
            }
            continue;
        }
        held_since = None;
        let jobs: Vec<ClaimedJob> = ahead.drain(..want.min(ahead.len())).collect();
        if jobs.is_empty() {
            // Nothing new: misses waiting for a batch go out once nothing else is in flight
            // that could add to them, however few they are.
            let waiting = ctx.misses.waiting();
            let only_misses = waiting > 0 && in_flight.load(Ordering::SeqCst) == waiting;
            if only_misses && let Some(group) = ctx.misses.take(per_request.max(2), true) {
                if let Some(permit) = permits.into_iter().next() {
                    permit.send(group);
                }
                continue;
            }
            drop(permits);
            // Read `in_flight` before asking for the next due job: a commit landing between
            // the two could otherwise turn in-flight jobs into pending ones unseen, and the
            // crawl would end with work left. With nothing in flight, nothing can commit.
            let idle = in_flight.load(Ordering::SeqCst) == 0;
            // Lanes feeding this one (`--fill missing`) may still make lookups for it.
            let fed = ctx.upstream.iter().any(|r| r.load(Ordering::SeqCst));
            let next_due = ctx.store.next_due_at(ctx.id, ctx.run_id).await?;
            if idle && next_due.is_none() && !fed {
                return Ok(());
            }
            let now = now_ms();
            if next_due.is_some() {
                // Work is left but none claimable: it may be held by a run that is gone (its
                // process ended on this host, or its lease ran out elsewhere). An idle lane
                // looks every time it wakes (at least once a second), not only at heartbeats.
                recover(&ctx.store, ctx.run_id, &ctx.process).await?;
            }
            // Wait for a commit (which may bring a retry), the next due time, or a stop; at most
            // a second, since another run's commits (on this machine or another) wake nobody here.
            let wait_ms = next_due.map_or(1000, |t| (t - now).clamp(10, 1000));
            tokio::select! {
                _ = committed.notified() => {}
                _ = ctx.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(wait_ms as u64)) => {}
                _ = stop.soft.cancelled() => return Ok(()),
            }
            continue;
        }
        // At most `want` jobs: at most one group per permit; unused permits free their slots.
        for (permit, group) in permits.zip(jobs.chunks(per_request)) {
            permit.send(group.iter().map(|j| (j.clone(), 0)).collect());
        }
        if probe {
            // After a quota stop, one request alone tells whether the quota is back.
            while in_flight.load(Ordering::SeqCst) > 0 {
                tokio::select! {
                    _ = committed.notified() => {}
                    _ = stop.soft.cancelled() => return Ok(()),
                }
            }
            ctx.probing.store(false, Ordering::SeqCst);
            if stop.is_stopping() {
                return Ok(());
            }
            // It was answered: other crawlers with the key may send again too.
            if let Some(key) = &ctx.lane.quota_key {
                let day = quota::quota_day(quota::now());
                ctx.store.clear_quota_stop(key, &day).await?;
            }
            probe = false;
        }
    }
}

/// How long to hold the partial batch in `ahead` (fewer than a request's worth, not empty)
/// before claiming again: until the lane's next lookup comes due, if that is within
/// [`GATHER`], and for at most [`GATHER`] in all. A batch costs one request however few it
/// asks for.
async fn gathering<S: Store>(
    ctx: &Ctx<S>,
    ahead: &VecDeque<ClaimedJob>,
    held_since: &mut Option<tokio::time::Instant>,
) -> Result<Option<Duration>, store::Error> {
    if ahead.is_empty() {
        return Ok(None);
    }
    let since = *held_since.get_or_insert_with(tokio::time::Instant::now);
    let left = GATHER.saturating_sub(since.elapsed());
    if left.is_zero() {
        return Ok(None);
    }
    let Some(due) = ctx.store.next_due_at(ctx.id, ctx.run_id).await? else {
        return Ok(None);
    };
    let until = Duration::from_millis((due - now_ms()).max(10) as u64);
    Ok((until <= left).then_some(until))
}

fn give_back<S>(ctx: &Ctx<S>, job: &ClaimedJob, requests: u32) -> Completion {
    Completion {
        lookup_id: job.id,
        provider: ctx.id,
        result: JobResult::GiveBack,
        requests,
        then: None,
    }
}

async fn worker<S: Store>(
    ctx: Arc<Ctx<S>>,
    stop: Stop,
    jobs: Arc<tokio::sync::Mutex<mpsc::Receiver<Group>>>,
    done: mpsc::Sender<Completion>,
) {
    loop {
        let group = jobs.lock().await.recv().await;
        let Some(group) = group else { return };
        if !process_group(&ctx, &stop, group, &done).await {
            return;
        }
    }
}

/// Waits for a rate permit and takes a unit of budget; `false` means the run is stopping.
async fn permit_and_budget<S: Store>(ctx: &Ctx<S>, stop: &Stop) -> bool {
    if stop.is_stopping() {
        return false;
    }
    tokio::select! {
        biased;
        _ = stop.soft.cancelled() => return false,
        _ = ctx.limiter.until_ready() => {}
    }
    let day = quota::quota_day(quota::now());
    let probe = ctx.probing.load(Ordering::SeqCst);
    match ctx.budget.take(&ctx.store, &day, probe).await {
        Ok(Take::Granted) => true,
        Ok(Take::Spent) => {
            stop.request(StopReason::BudgetSpent);
            false
        }
        Ok(Take::QuotaStopped) => {
            stop.request(StopReason::QuotaExhausted {
                message: "another crawler on this database met Google's daily quota".into(),
            });
            false
        }
        Err(e) => {
            stop.fail(e);
            false
        }
    }
}

/// What an outcome means for the whole crawl: the rate, and whether to stop.
fn react<S: Store>(ctx: &Ctx<S>, stop: &Stop, outcome: &Outcome) {
    match outcome {
        Outcome::Found(_) | Outcome::NotFound { .. } => ctx.limiter.on_success(),
        Outcome::RateLimited { .. } => ctx.limiter.on_rate_limited(),
        Outcome::QuotaExhausted { message } => stop.request(StopReason::QuotaExhausted {
            message: message.clone(),
        }),
        Outcome::ApiRejected { kind, message } => stop.request(StopReason::ApiRejected {
            kind: *kind,
            message: message.clone(),
        }),
        Outcome::Transient { error, .. } | Outcome::Permanent { error } => {
            tracing::debug!("{error}");
        }
    }
}

fn complete<S>(ctx: &Ctx<S>, job: &ClaimedJob, outcome: Outcome) -> Completion {
    let policy = &ctx.opts.retry;
    Completion {
        lookup_id: job.id,
        provider: ctx.id,
        result: retry::job_result(outcome, job.attempts, policy, now_ms(), &mut rand::rng()),
        requests: 0,
        then: ctx.then,
    }
}

/// Sends completions to the writer, counting requests not yet counted on the next one.
struct Outbox<'a> {
    done: &'a mpsc::Sender<Completion>,
    uncounted: u32,
}

impl Outbox<'_> {
    /// `false` when the writer is gone.
    async fn send(&mut self, mut c: Completion) -> bool {
        c.requests += std::mem::take(&mut self.uncounted);
        self.done.send(c).await.is_ok()
    }

    async fn give_back_all<S>(
        &mut self,
        ctx: &Ctx<S>,
        jobs: impl IntoIterator<Item = ClaimedJob>,
    ) -> bool {
        for j in jobs {
            if !self.send(give_back(ctx, &j, 0)).await {
                return false;
            }
        }
        true
    }
}

/// One group of lookups (one request's worth), to a verdict for each. Every request waits for
/// a rate permit and a unit of budget and counts once, on the next completion sent. An answer
/// that is no verdict for some ISBNs has them asked again: Google's OR misses go to the lane's
/// pool for OR batches of misses ([`batch::MAX_REBATCH`] of them) and then alone; Open
/// Library's `{}` batch is halved ([`Provider::regroup`]). A permanent refusal of a batch has
/// each asked alone. Returns `false` when the writer is gone.
async fn process_group<S: Store>(
    ctx: &Ctx<S>,
    stop: &Stop,
    jobs: Group,
    done: &mpsc::Sender<Completion>,
) -> bool {
    let mut out = Outbox { done, uncounted: 0 };
    let mut queue = VecDeque::from([jobs]);
    let give_all = |queue: VecDeque<Group>, group: Group| {
        queue
            .into_iter()
            .flatten()
            .chain(group)
            .map(|(j, _)| j)
            .collect::<Vec<_>>()
    };
    while let Some(group) = queue.pop_front() {
        if !permit_and_budget(ctx, stop).await {
            return out.give_back_all(ctx, give_all(queue, group)).await;
        }
        out.uncounted += 1;
        let isbns: Vec<Isbn13> = group.iter().map(|(j, _)| j.isbn).collect();
        let answer = tokio::select! {
            biased;
            _ = stop.hard.cancelled() => {
                return out.give_back_all(ctx, give_all(queue, group)).await;
            }
            a = ctx.lane.provider.lookup(&isbns) => a,
        };
        match answer {
            Answer::Items(items) => {
                ctx.limiter.on_success();
                let found: Vec<bool> = items
                    .iter()
                    .map(|i| matches!(i, Some(Outcome::Found(_))))
                    .collect();
                // Batches of misses are mostly unknown books, and so are the retries of a
                // failed one (they come back as new claims): neither is judged.
                let sent_back = ctx
                    .misses
                    .answered_any_sent_back(group.iter().map(|(j, _)| j.id));
                if !sent_back && group.iter().all(|(_, rounds)| *rounds == 0) {
                    ctx.size.record(&found);
                }
                if ctx.id == ProviderId::Google {
                    ctx.total
                        .batch
                        .store(ctx.size.current() as u64, Ordering::Relaxed);
                }
                let mut unsure = Vec::new();
                for ((job, rounds), item) in group.into_iter().zip(items) {
                    match item {
                        Some(outcome) => {
                            if !out.send(complete(ctx, &job, outcome)).await {
                                return false;
                            }
                        }
                        None => unsure.push((job, rounds)),
                    }
                }
                if unsure.len() == 1 && isbns.len() == 1 {
                    // A provider unsure of a request of one: take it as not found.
                    let (job, _) = unsure.remove(0);
                    if !out
                        .send(complete(ctx, &job, Outcome::NotFound { items: 0 }))
                        .await
                    {
                        return false;
                    }
                }
                if ctx.lane.provider.rebatch_misses() {
                    for (job, rounds) in unsure {
                        if rounds < batch::MAX_REBATCH {
                            ctx.misses.push(job, rounds + 1);
                        } else {
                            queue.push_back(vec![(job, rounds)]);
                        }
                    }
                    // A full batch of misses goes out with this worker; a partial one waits,
                    // and the dispatcher (woken here) sends it when nothing else is in flight.
                    queue.extend(ctx.misses.take(ctx.size.current().max(2), false));
                    ctx.wake.notify_waiters();
                } else {
                    let size = ctx.lane.provider.regroup(unsure.len()).max(1);
                    queue.extend(unsure.chunks(size).map(<[(ClaimedJob, u8)]>::to_vec));
                }
            }
            // A refusal no retry of the batch can fix: ask each alone.
            Answer::Failed(Outcome::Permanent { .. }) if group.len() > 1 => {
                queue.extend(group.into_iter().map(|j| vec![j]));
            }
            Answer::Failed(outcome) => {
                react(ctx, stop, &outcome);
                ctx.misses.sent_back(
                    group
                        .iter()
                        .filter(|(_, rounds)| *rounds > 0)
                        .map(|(j, _)| j.id),
                );
                for (job, _) in &group {
                    if !out.send(complete(ctx, job, outcome.clone())).await {
                        return false;
                    }
                }
            }
        }
    }
    true
}

/// Google budget units a crawler reserves at a time under `--daily-budget`: few, so a killed
/// crawler strands little of the day.
const BUDGET_BLOCK: u64 = 8;
/// Without a budget only a quota stop met elsewhere is watched for: larger blocks (at least
/// this, up to [`a_second_ahead`]) keep the reservation off most requests, and a stop is still
/// seen within a block.
const UNLIMITED_BLOCK: u64 = 64;

/// How long a result waits for its commit (plus the commit itself) while answers come slowly:
/// what a kill -9 can cost. Long enough that a commit carries many results at modest rates
/// (much of a commit's cost is the same for 1 result or 80: the WAL frames of the index pages
/// it touches, a round trip per statement); short beside what a person notices, and at the
/// default 1 request a second a kill loses at most one answer.
const COMMIT_WINDOW: Duration = Duration::from_millis(250);
/// Results that make a window busy: when this many came within [`COMMIT_WINDOW`] (256 a second
/// or more), the commit waits up to [`BUSY_WINDOW`] instead.
const BUSY_RESULTS: usize = 64;
/// The window of a busy writer: at concurrency 16 and 50 ms (320 answers a second) commits of
/// about 256 results instead of 80 took sqlx's SQLite thread from 29-30 to 21-24 µs an ISBN,
/// and the crawl from 86-96 to 75-92 µs (interleaved runs; one at 101). A kill then costs no
/// more answers than [`COMMIT_ENOUGH`], as at full speed before; slow crawls (and `demo`) keep
/// the short window, so their results are not held longer.
const BUSY_WINDOW: Duration = Duration::from_secs(1);
/// Results that are worth a commit without waiting out the window: at high rates a kill then
/// costs at most this many answers, and commits stay small enough to keep the lock briefly.
const COMMIT_ENOUGH: usize = 256;
/// How long a partial batch waits for lookups about to come due, at most.
const GATHER: Duration = Duration::from_secs(2);
/// The fewest single-ISBN requests one claim asks for: a claim is a write transaction whose
/// cost hardly depends on its size, and at concurrency 16 claiming one per worker made claims
/// a third of the store's work. The leases are held a little longer (and renewed by the
/// heartbeat); a stop gives back what was not sent.
const MIN_CLAIM: usize = 64;
/// The most a claim or a budget block reaches ahead (see [`a_second_ahead`]).
const AHEAD_MOST: usize = 256;

/// About one second of a lane's requests at its `--rate`, between `floor` and [`AHEAD_MOST`]:
/// how far claims of single-ISBN requests and budget blocks without `--daily-budget` reach.
/// Each claim and reservation is a write transaction of several round trips to SQLite's
/// thread, each waking two sleeping threads; with only 64 requests to share one, at `--rate
/// unlimited` and concurrency 16, 256 took futex calls from 6,412 to 4,603 for 5,000 ISBNs
/// and CPU from 94-122 to 88-100 µs an ISBN (interleaved runs). At the default 1/s the floor
/// holds: other crawlers on the job table are not kept waiting by longer look-aheads.
fn a_second_ahead(rate: Option<f64>, floor: usize) -> usize {
    rate.map_or(AHEAD_MOST, |r| r.ceil() as usize)
        .clamp(floor, AHEAD_MOST)
}

/// Applies completions in as few transactions as the arrival rate allows.
async fn writer<S: Store>(
    ctx: Arc<Ctx<S>>,
    mut rx: mpsc::Receiver<Completion>,
    in_flight: Arc<AtomicUsize>,
    committed: Arc<Notify>,
    stop: Stop,
) {
    let mut batch = Vec::with_capacity(256);
    let mut broken = false;
    while let Some(first) = rx.recv().await {
        // Gather what arrives within the commit window: one transaction for many results,
        // while no result waits uncommitted much longer than the window.
        batch.push(first);
        gather(&mut rx, &mut batch, &in_flight, feeds_work).await;
        if !broken {
            let now = quota::now();
            let day = quota::quota_day(now);
            match ctx
                .store
                .complete(
                    ctx.run_id,
                    &mut batch,
                    &ctx.precedence,
                    &day,
                    now.timestamp_millis(),
                )
                .await
            {
                Ok(_) => {
                    ctx.counters.add(&batch);
                    ctx.total.add(&batch);
                }
                Err(e) => {
                    // Nothing of this batch is stored; its jobs keep this run's lease and the
                    // next run takes them back. Later batches are not attempted, nor this one
                    // again: its books' texts may have gone into the failed query.
                    broken = true;
                    stop.fail(e);
                }
            }
        }
        in_flight.fetch_sub(batch.len(), Ordering::SeqCst);
        committed.notify_one();
        if batch.iter().any(|c| c.then.is_some()) {
            ctx.wake.notify_waiters();
        }
        batch.clear();
    }
}

/// Adds to `batch` (which holds the first result) what arrives before its commit is due: when
/// [`COMMIT_ENOUGH`] results are in, when everything in flight is (nothing more can come, so
/// waiting would only add latency), or when the window closes: [`COMMIT_WINDOW`] after the
/// first result, or [`BUSY_WINDOW`] once [`BUSY_RESULTS`] came within it, unless `urgent`
/// says one of them feeds more work (a retry, a lookup to chain): the store must see those
/// soon, since batches of retries are formed from what has come due there.
async fn gather<T>(
    rx: &mut mpsc::Receiver<T>,
    batch: &mut Vec<T>,
    in_flight: &AtomicUsize,
    urgent: impl Fn(&T) -> bool,
) {
    let opened = tokio::time::Instant::now();
    let mut hurry = batch.iter().any(&urgent);
    while batch.len() < COMMIT_ENOUGH && batch.len() < in_flight.load(Ordering::SeqCst) {
        let room = COMMIT_ENOUGH - batch.len();
        let window = if batch.len() >= BUSY_RESULTS && !hurry {
            BUSY_WINDOW
        } else {
            COMMIT_WINDOW
        };
        let before = batch.len();
        tokio::select! {
            biased;
            n = rx.recv_many(batch, room) => {
                if n == 0 {
                    break;
                }
                hurry |= batch[before..].iter().any(&urgent);
            }
            _ = tokio::time::sleep_until(opened + window) => break,
        }
    }
}

/// A result the store should see soon because more work follows from it: a retry coming due,
/// a give-back, a lookup `--fill missing` chains.
fn feeds_work(c: &Completion) -> bool {
    c.then.is_some() || matches!(c.result, JobResult::Retry { .. } | JobResult::GiveBack)
}

/// Keeps this run's row fresh and its leases from running out while it works, and takes back
/// the lookups of runs that died meanwhile (another crawler on the database killed), waking the
/// lanes to claim them.
async fn heartbeat<S: Store>(ctx: Arc<Ctx<S>>) {
    let every = (ctx.opts.lease / 3).max(Duration::from_millis(100));
    let lease_ms = ctx.opts.lease.as_millis() as i64;
    loop {
        tokio::time::sleep(every).await;
        let now = now_ms();
        if let Err(e) = ctx.store.heartbeat(ctx.run_id, now, now + lease_ms).await {
            tracing::warn!("heartbeat: {e}");
        }
        match recover(&ctx.store, ctx.run_id, &ctx.process).await {
            Ok(0) => {}
            Ok(_) => ctx.wake.notify_waiters(),
            Err(e) => tracing::warn!("taking back the leases of dead runs: {e}"),
        }
    }
}

/// Gives back the leases of runs that are gone (see [`is_alive`]) or ran out.
async fn recover<S: Store>(store: &S, run_id: i64, me: &RunInfo) -> Result<u64, store::Error> {
    let recovered = store
        .recover_leases(run_id, now_ms(), &|other| is_alive(other, me))
        .await?;
    if recovered > 0 {
        tracing::info!(recovered, "took back the leases of runs that are gone");
    }
    Ok(recovered)
}

/// Who this process is, for the `runs` table.
pub fn this_process(command: &str, daily_budget: Option<u64>) -> RunInfo {
    let pid = std::process::id();
    RunInfo {
        command: command.to_string(),
        host: hostname(),
        host_id: host_id(),
        pid,
        pid_start: pid_start(pid),
        daily_budget,
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Which kernel boot and PID namespace this process lives in. Two containers may share a host
/// name (and a machine id), but never both the boot and the PID namespace: runs alike in this
/// can see each other's processes, so one whose process is gone is known dead.
fn host_id() -> Option<String> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let pid_ns = std::fs::read_link("/proc/self/ns/pid").ok()?;
    Some(format!("{}/{}", boot.trim(), pid_ns.display()))
}

/// The start time of a process (Linux: field 22 of /proc/PID/stat), so a reused pid is told
/// apart from the run that had it.
fn pid_start(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19).map(str::to_string)
}

/// Whether the run `other` may still be working. Only a run on this host whose process is
/// gone (or is another process now) is known dead; elsewhere, or where its process cannot be
/// read, its lease expiry decides.
fn is_alive(other: &RunInfo, me: &RunInfo) -> bool {
    let same_host = match (&other.host_id, &me.host_id) {
        (Some(a), Some(b)) => a == b,
        // A run of an older version recorded only its host name.
        _ => other.host == me.host,
    };
    if !same_host || !std::path::Path::new("/proc/self/stat").exists() {
        return true;
    }
    still_its_process(look_at(other.pid), other.pid_start.as_deref())
}

/// What this host can tell of a process.
#[derive(Debug)]
enum Seen {
    Gone,
    /// It exists, with its start time when `/proc/PID/stat` can be read (`hidepid=2` hides
    /// other users' processes there, though `kill` still finds them).
    Running(Option<String>),
}

fn look_at(pid: u32) -> Seen {
    let Ok(signed) = libc::pid_t::try_from(pid) else {
        return Seen::Gone; // no process has such a pid
    };
    if signed == 0 {
        return Seen::Gone; // nor this one (0 would ask about our own process group)
    }
    // SAFETY: signal 0 is never delivered; kill only checks that the process exists (EPERM:
    // it does, under another user).
    let sent = unsafe { libc::kill(signed, 0) };
    if sent != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH) {
        return Seen::Gone;
    }
    Seen::Running(pid_start(pid))
}

/// Whether what is seen is still the run's process: gone is dead, an unreadable start time is
/// taken as alive (its lease will say otherwise), another start time is a reused pid.
fn still_its_process(seen: Seen, recorded_start: Option<&str>) -> bool {
    match seen {
        Seen::Gone => false,
        Seen::Running(None) => true,
        Seen::Running(Some(start)) => recorded_start.is_none_or(|s| s == start),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(host: &str, host_id: Option<&str>, pid: u32) -> RunInfo {
        RunInfo {
            command: "crawl".into(),
            host: host.into(),
            host_id: host_id.map(str::to_string),
            pid,
            pid_start: None,
            daily_budget: None,
        }
    }

    /// How long `gather` waits (on the paused clock) and how many it takes, after `sent`
    /// results beyond the first (numbered from 1; `urgent` numbers feed more work) with
    /// `in_flight` outstanding.
    async fn gathered_with(sent: usize, in_flight: usize, urgent: &[usize]) -> (Duration, usize) {
        let (tx, mut rx) = mpsc::channel(1024);
        for i in 1..=sent {
            tx.send(i).await.expect("send");
        }
        let mut batch = vec![0];
        let start = tokio::time::Instant::now();
        gather(&mut rx, &mut batch, &AtomicUsize::new(in_flight), |i| {
            urgent.contains(i)
        })
        .await;
        (start.elapsed(), batch.len())
    }

    async fn gathered(sent: usize, in_flight: usize) -> (Duration, usize) {
        gathered_with(sent, in_flight, &[]).await
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_writer_commits_within_its_window_a_busy_one_gathers_longer() {
        // A result alone waits out the short window.
        assert_eq!(gathered(0, 100).await, (COMMIT_WINDOW, 1));
        assert_eq!(
            gathered(BUSY_RESULTS - 2, 1000).await,
            (COMMIT_WINDOW, BUSY_RESULTS - 1)
        );
        // Busy: the window is a second.
        assert_eq!(
            gathered(BUSY_RESULTS - 1, 1000).await,
            (BUSY_WINDOW, BUSY_RESULTS)
        );
        // Busy, but a result feeds more work: the short window.
        assert_eq!(
            gathered_with(BUSY_RESULTS + 9, 1000, &[BUSY_RESULTS + 5]).await,
            (COMMIT_WINDOW, BUSY_RESULTS + 10)
        );
        // Enough for a commit, or everything in flight: at once.
        assert_eq!(gathered(400, 1000).await, (Duration::ZERO, COMMIT_ENOUGH));
        assert_eq!(gathered(9, 10).await, (Duration::ZERO, 10));
    }

    #[test]
    fn claims_and_budget_blocks_reach_about_a_second_ahead() {
        assert_eq!(a_second_ahead(None, MIN_CLAIM), AHEAD_MOST);
        assert_eq!(a_second_ahead(Some(1.0), MIN_CLAIM), MIN_CLAIM);
        assert_eq!(a_second_ahead(Some(99.5), MIN_CLAIM), 100);
        assert_eq!(a_second_ahead(Some(1e9), MIN_CLAIM), AHEAD_MOST);
        assert_eq!(a_second_ahead(Some(0.01), 64), 64);
    }

    #[test]
    fn a_run_is_known_dead_only_where_its_process_can_be_seen() {
        let me = this_process("crawl", None);
        let here = me.host_id.as_deref();
        assert!(here.is_some(), "Linux gives a boot id and a PID namespace");
        // No process has pid u32::MAX - 1.
        let gone = u32::MAX - 1;
        assert!(
            !is_alive(&run(&me.host, here, gone), &me),
            "same host_id, process gone"
        );
        assert!(
            is_alive(&run(&me.host, here, me.pid), &me),
            "same host_id, alive"
        );
        // Another container with the same host name: another PID namespace, so its pids mean
        // nothing here; only its lease can say it is gone.
        assert!(is_alive(
            &run(&me.host, Some("other-boot/pid:[1]"), gone),
            &me
        ));
        // A run of an older version recorded only its host name.
        assert!(!is_alive(&run(&me.host, None, gone), &me));
        assert!(is_alive(&run("elsewhere", None, gone), &me));
        // A reused pid: the process there started at another time.
        let reused = RunInfo {
            pid_start: Some("1".into()),
            ..run(&me.host, here, me.pid)
        };
        assert!(!is_alive(&reused, &me));
    }

    #[test]
    fn a_process_whose_start_cannot_be_read_is_alive_until_its_lease_expires() {
        // hidepid=2: kill finds the process, /proc/PID/stat does not.
        assert!(still_its_process(Seen::Running(None), Some("123")));
        assert!(still_its_process(
            Seen::Running(Some("123".into())),
            Some("123")
        ));
        assert!(!still_its_process(
            Seen::Running(Some("124".into())),
            Some("123")
        ));
        assert!(!still_its_process(Seen::Gone, Some("123")));
        // pid 1 exists on every Linux, whoever owns it (EPERM counts as existing).
        assert!(matches!(look_at(1), Seen::Running(_)));
        assert!(matches!(look_at(u32::MAX - 1), Seen::Gone));
    }
}
