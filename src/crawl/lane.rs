/*!
One lane (one provider's part of a run): what its tasks share, its sessions between quota
waits, and a session's tasks (dispatcher, workers, writer) started and drained.
*/

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use tokio::sync::{Notify, mpsc};

use super::batch::{BatchSize, MissPool};
use super::dispatch::{Slots, dispatch};
use super::limiter::Limiter;
use super::quota::{self, Budget};
use super::stop::{Control, Stop, StopReason};
use super::worker::worker;
use super::writer::writer;
use super::{Counters, CrawlOptions, Lane};
use crate::domain::ProviderId;
use crate::progress::Reporter;
use crate::store::Asked;
use crate::store::{self, ClaimedLookup, Completion, CrawlStore, JobResult, RunInfo};

/// What every task of one lane shares.
pub(super) struct Ctx<S> {
    pub(super) store: S,
    /// The lane's provider's id (its `lane.spec.id`, kept at hand).
    pub(super) id: ProviderId,
    pub(super) lane: Lane,
    pub(super) opts: CrawlOptions,
    pub(super) run_id: crate::store::RunId,
    /// This process, to tell which other runs are gone.
    pub(super) process: RunInfo,
    pub(super) limiter: Limiter,
    pub(super) budget: Budget,
    /// The next request is the probe after a quota stop.
    pub(super) probing: std::sync::atomic::AtomicBool,
    /// This lane's counts, and the run's.
    pub(super) counters: Arc<Counters>,
    pub(super) total: Arc<Counters>,
    /// The providers after this one (`--fill missing`): where it finds nothing, the first of
    /// them routed to the ISBN is asked next.
    pub(super) then: Vec<Asked>,
    pub(super) precedence: Vec<ProviderId>,
    /// Lanes that may still make lookups for this one; it waits for them before finishing.
    pub(super) upstream: Vec<Arc<std::sync::atomic::AtomicBool>>,
    pub(super) running: Arc<std::sync::atomic::AtomicBool>,
    /// Woken when any lane commits or ends.
    pub(super) wake: Arc<Notify>,
    /// ISBNs per request, fixed or adapting.
    pub(super) size: BatchSize,
    /// Misses of OR answers waiting for a batch of misses.
    pub(super) misses: MissPool,
    /// Transient failures since the last answer (see `worker::react`).
    pub(super) faults_in_a_row: std::sync::atomic::AtomicU32,
}

/// A request's worth of lookups, each with the OR batches of misses it has been through.
pub(super) type Group = Vec<(ClaimedLookup, u8)>;

/// One lane to its end: sessions, and between them the waits for Google's quota.
pub(super) async fn lane<S: CrawlStore>(
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
            ctx.lane.spec.title,
            crate::progress::human_duration(wait)
        ));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = control.interrupt.cancelled() => return (StopReason::Interrupted, None),
        }
    }
}

/// One stretch of crawling, until everything is done or a stop.
pub(super) async fn session<S: CrawlStore>(ctx: &Arc<Ctx<S>>, stop: &Stop, probe: bool) {
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
    let slots = Slots {
        job_tx: &job_tx,
        ahead: &mut ahead,
        in_flight: &in_flight,
        committed: &committed,
    };
    if let Err(e) = dispatch(ctx, stop, slots, probe).await {
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

pub(super) fn give_back<S>(ctx: &Ctx<S>, job: &ClaimedLookup, requests: u32) -> Completion {
    Completion {
        lookup_id: job.id,
        provider: ctx.id,
        result: JobResult::GiveBack,
        requests,
        then: None,
    }
}
