/*!
A worker: one group of lookups (one request's worth) at a time, to a verdict for each: a rate
permit and a unit of budget, the request, what its outcome means for the lane.
*/

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::mpsc;

use super::lane::{Ctx, Group, give_back};
use super::quota::{self, Take};
use super::stop::{Stop, StopReason};
use super::{batch, retry};
use crate::clock::now_ms;
use crate::isbn::Isbn13;
use crate::providers::{Answer, Outcome};
use crate::store::{ClaimedLookup, Completion, CrawlStore};

pub(super) async fn worker<S: CrawlStore>(
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
pub(super) async fn permit_and_budget<S: CrawlStore>(ctx: &Ctx<S>, stop: &Stop) -> bool {
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
                message: format!(
                    "another crawler on this database met {}'s daily quota",
                    ctx.lane.spec.owner
                ),
            });
            false
        }
        Err(e) => {
            stop.fail(e);
            false
        }
    }
}

/// Transient failures in a row that slow a lane whose spec asks for it (`slow_on_fault`).
pub(super) const FAULTS_TO_SLOW_DOWN: u32 = 3;

/// Counts a transient failure; `true` (and the count starts again) at the
/// [`FAULTS_TO_SLOW_DOWN`]th in a row.
fn one_fault_more(in_a_row: &std::sync::atomic::AtomicU32) -> bool {
    let n = in_a_row.fetch_add(1, Ordering::Relaxed) + 1;
    if n >= FAULTS_TO_SLOW_DOWN {
        in_a_row.store(0, Ordering::Relaxed);
    }
    n >= FAULTS_TO_SLOW_DOWN
}

/// What an outcome means for the whole crawl: the rate, and whether to stop.
pub(super) fn react<S: CrawlStore>(ctx: &Ctx<S>, stop: &Stop, outcome: &Outcome) {
    match outcome {
        Outcome::Found(_) | Outcome::NotFound { .. } => {
            ctx.faults_in_a_row.store(0, Ordering::Relaxed);
            ctx.limiter.on_success();
        }
        Outcome::RateLimited { .. } => ctx.limiter.on_rate_limited(),
        Outcome::QuotaExhausted { message } => stop.request(StopReason::QuotaExhausted {
            message: message.clone(),
        }),
        Outcome::ApiRejected { kind, message } => stop.request(StopReason::ApiRejected {
            provider: ctx.id,
            kind: *kind,
            message: message.clone(),
        }),
        // Failures in a row, not a stray one: a catalogue with the odd 503 keeps its pace.
        Outcome::Transient { error, .. } if ctx.lane.spec.slow_on_fault => {
            tracing::debug!("{error}");
            if one_fault_more(&ctx.faults_in_a_row) {
                ctx.limiter.on_rate_limited();
            }
        }
        Outcome::Transient { error, .. } | Outcome::Permanent { error } => {
            tracing::debug!("{error}");
        }
    }
}

pub(super) fn complete<S>(ctx: &Ctx<S>, job: &ClaimedLookup, outcome: Outcome) -> Completion {
    let policy = &ctx.opts.retry;
    Completion {
        lookup_id: job.id,
        provider: ctx.id,
        result: retry::job_result(outcome, job.attempts, policy, now_ms(), &mut rand::rng()),
        requests: 0,
        then: ctx
            .then
            .iter()
            .find(|a| a.routes.admit(job.isbn.as_str()))
            .map(|a| a.provider),
    }
}

/// Sends completions to the writer, counting requests not yet counted on the next one.
pub(super) struct Outbox<'a> {
    pub(super) done: &'a mpsc::Sender<Completion>,
    pub(super) uncounted: u32,
}

impl Outbox<'_> {
    /// `false` when the writer is gone.
    pub(super) async fn send(&mut self, mut c: Completion) -> bool {
        c.requests += std::mem::take(&mut self.uncounted);
        self.done.send(c).await.is_ok()
    }

    pub(super) async fn give_back_all<S>(
        &mut self,
        ctx: &Ctx<S>,
        jobs: impl IntoIterator<Item = ClaimedLookup>,
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
pub(super) async fn process_group<S: CrawlStore>(
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
                if !answered(ctx, group, items, &mut out, &mut queue).await {
                    return false;
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

/// An answer item by item: a verdict sent for each item that is one, the rest asked again
/// (Google's OR misses pooled for a batch of misses, then alone; other providers' regrouped
/// smaller). `false` when the writer is gone.
async fn answered<S: CrawlStore>(
    ctx: &Ctx<S>,
    group: Group,
    items: Vec<Option<Outcome>>,
    out: &mut Outbox<'_>,
    queue: &mut VecDeque<Group>,
) -> bool {
    ctx.limiter.on_success();
    let found: Vec<bool> = items
        .iter()
        .map(|i| matches!(i, Some(Outcome::Found(_))))
        .collect();
    // Batches of misses are mostly unknown books, and so are the retries of a failed one (they
    // come back as new claims): neither is judged.
    let sent_back = ctx
        .misses
        .answered_any_sent_back(group.iter().map(|(j, _)| j.id));
    if !sent_back && group.iter().all(|(_, rounds)| *rounds == 0) {
        ctx.size.record(&found);
    }
    if ctx.lane.spec.daily_quota {
        ctx.total
            .batch
            .store(ctx.size.current() as u64, Ordering::Relaxed);
    }
    let asked = group.len();
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
    if unsure.len() == 1 && asked == 1 {
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
        // A full batch of misses goes out with this worker; a partial one waits, and the
        // dispatcher (woken here) sends it when nothing else is in flight.
        queue.extend(ctx.misses.take(ctx.size.current().max(2), false));
        ctx.wake.notify_waiters();
    } else {
        let size = ctx.lane.provider.regroup(unsure.len()).max(1);
        queue.extend(unsure.chunks(size).map(<[(ClaimedLookup, u8)]>::to_vec));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lane_slows_down_at_the_third_fault_in_a_row_not_at_a_stray_one() {
        let n = std::sync::atomic::AtomicU32::new(0);
        assert!(!one_fault_more(&n) && !one_fault_more(&n));
        assert!(one_fault_more(&n), "the third in a row");
        assert!(!one_fault_more(&n), "counting starts again");
        n.store(0, Ordering::Relaxed); // an answer came
        assert!(!one_fault_more(&n) && !one_fault_more(&n));
    }
}
