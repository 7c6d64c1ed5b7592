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
mod counters;
mod dispatch;
mod lane;
pub mod limiter;
mod liveness;
pub mod quota;
pub mod retry;
mod stop;
mod worker;
mod writer;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use crate::domain::{ProviderId, Routes};
use crate::progress::Reporter;
use crate::providers::Provider;
use crate::store::{self, Asked, CrawlStore, RunEnd};
use batch::{BatchSize, MissPool};
use dispatch::a_second_ahead;
use lane::{Ctx, lane};
use limiter::Limiter;
use liveness::{heartbeat, recover};
use quota::Budget;
use retry::RetryPolicy;
use stop::combined;

pub use crate::clock::now_ms;
pub use counters::{Counters, Counts};
pub use liveness::this_process;
pub use stop::{Control, StopReason};

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
    /// What the provider can do: the crawl decides by this, never by the provider's name.
    pub spec: &'static crate::providers::Spec,
    pub provider: Arc<dyn Provider>,
    /// The ISBNs it is asked about (its spec's prefixes, or `--route`'s).
    pub routes: Routes,
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

impl Lane {
    /// What the store makes lookups by: the provider and its routes.
    pub fn asked(&self) -> Asked {
        Asked {
            provider: self.spec.id,
            routes: self.routes.clone(),
        }
    }
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

/// What the caller learns when the crawl is over.
#[derive(Debug, Clone)]
pub struct Summary {
    pub run_id: crate::store::RunId,
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

/// Google budget units a crawler reserves at a time under `--daily-budget`: few, so a killed
/// crawler strands little of the day.
pub(crate) const BUDGET_BLOCK: u64 = 8;
/// Without a budget only a quota stop met elsewhere is watched for: larger blocks (at least
/// this, up to [`a_second_ahead`]) keep the reservation off most requests, and a stop is still
/// seen within a block.
pub(crate) const UNLIMITED_BLOCK: u64 = 64;

/// Runs a crawl to its end: everything done, or a stop. See the module docs.
pub async fn crawl<S: CrawlStore>(
    store: S,
    lanes: Vec<Lane>,
    opts: CrawlOptions,
    control: Control,
    progress: &Reporter,
) -> Result<Summary, store::Error> {
    let started = tokio::time::Instant::now();
    let budget = lanes
        .iter()
        .find(|l| l.spec.daily_quota)
        .and_then(|l| l.daily_budget);
    let info = this_process(&opts.command, budget);
    let run_id = store.begin_run(&info, now_ms()).await?;
    let recovered = recover(&store, run_id, &info).await?;
    let order: Vec<ProviderId> = lanes.iter().map(|l| l.spec.id).collect();
    let asked: Vec<Asked> = lanes.iter().map(Lane::asked).collect();
    store
        .ensure_lookups(&asked, opts.fill_missing, now_ms())
        .await?;
    let probe = show_progress(&store, &order, budget, progress).await?;
    let total = Arc::new(Counters::default());
    progress.attach(total.clone());
    let run = Run {
        store: store.clone(),
        opts,
        run_id,
        info,
        order,
        total: total.clone(),
    };
    let ctxs = contexts(&run, lanes);
    let ended = run_lanes(&ctxs, probe, &control, progress).await;
    let (summaries, error) = summaries(&ctxs, ended);
    let stop = combined(&summaries);
    let end = RunEnd {
        stop_reason: stop.code().to_string(),
        batch_sizes: ctxs
            .iter()
            .map(|c| (c.id, c.size.current() as u64))
            .collect(),
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

/// What every lane of one run is built from.
struct Run<S> {
    store: S,
    opts: CrawlOptions,
    run_id: crate::store::RunId,
    info: store::RunInfo,
    /// The providers, in precedence order.
    order: Vec<ProviderId>,
    /// The run's counts (each lane keeps its own too).
    total: Arc<Counters>,
}

/// Gives the progress display the day's budget and the lookups open; returns whether the first
/// request must be the probe after a quota stop (even one whose wait was interrupted).
async fn show_progress<S: CrawlStore>(
    store: &S,
    order: &[ProviderId],
    budget: Option<u64>,
    progress: &Reporter,
) -> Result<bool, store::Error> {
    let today = quota::quota_day(quota::now());
    let quota_today = store.quota_day(&today).await?;
    let probe = store.last_stop_reason().await?.as_deref() == Some("quota")
        || quota_today.exhausted_at.is_some();
    progress.attach_budget(quota_today.requests, budget);
    let mut open = 0;
    for p in order {
        open += store.open_lookups(*p).await?;
    }
    progress.set_total(open);
    Ok(probe)
}

/// One lane's context per lane, in precedence order.
fn contexts<S: CrawlStore>(run: &Run<S>, lanes: Vec<Lane>) -> Vec<Arc<Ctx<S>>> {
    let wake = Arc::new(Notify::new());
    let running: Vec<_> = lanes
        .iter()
        .map(|_| Arc::new(std::sync::atomic::AtomicBool::new(true)))
        .collect();
    let fill_missing = run.opts.fill_missing;
    let later: Vec<Asked> = lanes.iter().map(Lane::asked).collect();
    lanes
        .into_iter()
        .enumerate()
        .map(|(i, lane)| {
            let max = lane.spec.max_batch;
            Arc::new(Ctx {
                size: match lane.batch {
                    Some(n) => BatchSize::fixed(n.clamp(1, max)),
                    None => BatchSize::adaptive(max),
                },
                misses: MissPool::default(),
                faults_in_a_row: Default::default(),
                limiter: Limiter::new(lane.rate),
                budget: budget_of(&lane),
                probing: std::sync::atomic::AtomicBool::new(false),
                counters: Arc::new(Counters::default()),
                total: run.total.clone(),
                then: if fill_missing {
                    later[i + 1..].to_vec()
                } else {
                    Vec::new()
                },
                precedence: crate::providers::registry::precedence(&run.order),
                upstream: if fill_missing {
                    running[..i].to_vec()
                } else {
                    Vec::new()
                },
                running: running[i].clone(),
                wake: wake.clone(),
                id: lane.spec.id,
                lane,
                store: run.store.clone(),
                opts: run.opts.clone(),
                run_id: run.run_id,
                process: run.info.clone(),
            })
        })
        .collect()
}

/// The daily budget of a lane that spends a key's quota; none for the others.
fn budget_of(lane: &Lane) -> Budget {
    match (&lane.quota_key, lane.daily_budget) {
        (Some(key), Some(_)) => Budget::shared(key, lane.daily_budget, BUDGET_BLOCK),
        (Some(key), None) => {
            let block = a_second_ahead(lane.rate, UNLIMITED_BLOCK as usize);
            Budget::shared(key, None, block as u64)
        }
        (None, _) => Budget::unlimited(),
    }
}

/// Every lane to its end, side by side, with one heartbeat for the run.
async fn run_lanes<S: CrawlStore>(
    ctxs: &[Arc<Ctx<S>>],
    probe: bool,
    control: &Control,
    progress: &Reporter,
) -> Vec<(StopReason, Option<store::Error>)> {
    let heartbeat = ctxs.first().map(|c| tokio::spawn(heartbeat(c.clone())));
    let ended = futures_util::future::join_all(ctxs.iter().map(|ctx| {
        // The probe after a quota stop is for the lane that spends the quota.
        let probe = probe && ctx.lane.spec.daily_quota;
        async move {
            let r = lane(ctx, control, progress, probe).await;
            ctx.running.store(false, Ordering::SeqCst);
            ctx.wake.notify_waiters();
            r
        }
    }))
    .await;
    if let Some(h) = heartbeat {
        h.abort();
    }
    ended
}

/// How each lane ended, and the first store error of any.
fn summaries<S>(
    ctxs: &[Arc<Ctx<S>>],
    ended: Vec<(StopReason, Option<store::Error>)>,
) -> (Vec<LaneSummary>, Option<store::Error>) {
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
    (summaries, error)
}
