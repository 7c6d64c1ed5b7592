/*!
The dispatcher: claims a request's worth of lookups for every free worker at once, holds a
partial batch while more come due, and knows when the lane is done.
*/

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};

use super::lane::{Ctx, Group};
use super::liveness::recover;
use super::quota;
use super::stop::Stop;
use crate::clock::now_ms;
use crate::store::{self, ClaimedLookup, CrawlStore};

/// How long a partial batch waits for lookups about to come due, at most.
pub(super) const GATHER: Duration = Duration::from_secs(2);
/// The fewest single-ISBN requests one claim asks for: a claim is a write transaction whose
/// cost hardly depends on its size, and at concurrency 16 claiming one per worker made claims
/// a third of the store's work. The leases are held a little longer (and renewed by the
/// heartbeat); a stop gives back what was not sent.
pub(super) const MIN_CLAIM: usize = 64;
/// The most a claim or a budget block reaches ahead (see [`a_second_ahead`]).
pub(super) const AHEAD_MOST: usize = 256;

/// About one second of a lane's requests at its `--rate`, between `floor` and [`AHEAD_MOST`]:
/// how far claims of single-ISBN requests and budget blocks without `--daily-budget` reach.
/// Each claim and reservation is a write transaction of several round trips to SQLite's
/// thread, each waking two sleeping threads, so fast lanes share one among more requests
/// (docs/performance.md, "How far claims reach"). At the default 1/s the floor holds: other
/// crawlers on the job table are not kept waiting by longer look-aheads.
pub(super) fn a_second_ahead(rate: Option<f64>, floor: usize) -> usize {
    rate.map_or(AHEAD_MOST, |r| r.ceil() as usize)
        .clamp(floor, AHEAD_MOST)
}

/// The channels and counts a dispatcher works with.
pub(super) struct Slots<'a> {
    pub(super) job_tx: &'a mpsc::Sender<Group>,
    /// Lookups claimed ahead of the workers; what a stop leaves here goes back.
    pub(super) ahead: &'a mut VecDeque<ClaimedLookup>,
    /// Lookups claimed and not yet committed.
    pub(super) in_flight: &'a AtomicUsize,
    /// Notified after each commit.
    pub(super) committed: &'a Notify,
}

/// What the dispatcher does after looking for more work.
enum Next {
    Again,
    Done,
}

/// Claims due jobs into free worker slots until nothing is left or a stop. Single-ISBN
/// requests are claimed [`a_second_ahead`] at a time and wait in `ahead` for slots.
pub(super) async fn dispatch<S: CrawlStore>(
    ctx: &Ctx<S>,
    stop: &Stop,
    mut slots: Slots<'_>,
    mut probe: bool,
) -> Result<(), store::Error> {
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
            p = slots.job_tx.reserve_many(want_groups) => match p {
                Ok(p) => p,
                Err(_) => return Ok(()),
            },
        };
        claim_ahead(ctx, &mut slots, want, per_request == 1 && !probe).await?;
        let wait = if probe || slots.ahead.len() >= per_request {
            None
        } else {
            gathering(ctx, slots.ahead, &mut held_since).await?
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
        let jobs: Vec<ClaimedLookup> = slots.ahead.drain(..want.min(slots.ahead.len())).collect();
        if jobs.is_empty() {
            // Nothing new: misses waiting for a batch go out once nothing else is in flight
            // that could add to them, however few they are.
            let waiting = ctx.misses.waiting();
            let only_misses = waiting > 0 && slots.in_flight.load(Ordering::SeqCst) == waiting;
            if only_misses && let Some(group) = ctx.misses.take(per_request.max(2), true) {
                if let Some(permit) = permits.into_iter().next() {
                    permit.send(group);
                }
                continue;
            }
            drop(permits);
            match idle(ctx, stop, &slots).await? {
                Next::Again => continue,
                Next::Done => return Ok(()),
            }
        }
        // At most `want` jobs: at most one group per permit; unused permits free their slots.
        for (permit, group) in permits.zip(jobs.chunks(per_request)) {
            permit.send(group.iter().map(|j| (j.clone(), 0)).collect());
        }
        if probe {
            if !probed(ctx, stop, &slots).await? {
                return Ok(());
            }
            probe = false;
        }
    }
}

/// Tops `ahead` up to `want` lookups (single-ISBN requests: [`a_second_ahead`] of them).
/// Claims of batches are not made ahead: groups claimed at a size `--batch auto` has since left
/// would still go out at the old size.
async fn claim_ahead<S: CrawlStore>(
    ctx: &Ctx<S>,
    slots: &mut Slots<'_>,
    want: usize,
    singles: bool,
) -> Result<(), store::Error> {
    let ahead = &mut *slots.ahead;
    if ahead.len() >= want {
        return Ok(());
    }
    let ask = if singles {
        want.max(a_second_ahead(ctx.lane.rate, MIN_CLAIM))
    } else {
        want
    };
    let now = now_ms();
    let lease_ms = ctx.opts.lease.as_millis() as i64;
    let claimed = ctx
        .store
        .claim(&store::Claim {
            run_id: ctx.run_id,
            provider: ctx.id,
            max: (ask - ahead.len()) as u32,
            now_ms: now,
            lease_until_ms: now + lease_ms,
        })
        .await?;
    slots.in_flight.fetch_add(claimed.len(), Ordering::SeqCst);
    ahead.extend(claimed);
    Ok(())
}

/// Nothing to hand out: ends the lane when nothing is in flight, due or to come from the lanes
/// feeding it; otherwise takes back what dead runs hold and waits for a commit, the next due
/// time or a stop.
async fn idle<S: CrawlStore>(
    ctx: &Ctx<S>,
    stop: &Stop,
    slots: &Slots<'_>,
) -> Result<Next, store::Error> {
    // Read `in_flight` before asking for the next due job: a commit landing between the two
    // could otherwise turn in-flight jobs into pending ones unseen, and the crawl would end
    // with work left. With nothing in flight, nothing can commit.
    let idle = slots.in_flight.load(Ordering::SeqCst) == 0;
    // Lanes feeding this one (`--fill missing`) may still make lookups for it.
    let fed = ctx.upstream.iter().any(|r| r.load(Ordering::SeqCst));
    let next_due = ctx.store.next_due_at(ctx.id, ctx.run_id).await?;
    if idle && next_due.is_none() && !fed {
        return Ok(Next::Done);
    }
    let now = now_ms();
    if next_due.is_some() {
        // Work is left but none claimable: it may be held by a run that is gone (its process
        // ended on this host, or its lease ran out elsewhere). An idle lane looks every time it
        // wakes (at least once a second), not only at heartbeats.
        recover(&ctx.store, ctx.run_id, &ctx.process).await?;
    }
    // Wait for a commit (which may bring a retry), the next due time, or a stop; at most a
    // second, since another run's commits (on this machine or another) wake nobody here.
    let wait_ms = next_due.map_or(1000, |t| (t - now).clamp(10, 1000));
    tokio::select! {
        _ = slots.committed.notified() => {}
        _ = ctx.wake.notified() => {}
        _ = tokio::time::sleep(Duration::from_millis(wait_ms as u64)) => {}
        _ = stop.soft.cancelled() => return Ok(Next::Done),
    }
    Ok(Next::Again)
}

/// After a quota stop, one request alone tells whether the quota is back: waits for its
/// answer, and once answered lets other crawlers with the key send again. `false` if stopping.
async fn probed<S: CrawlStore>(
    ctx: &Ctx<S>,
    stop: &Stop,
    slots: &Slots<'_>,
) -> Result<bool, store::Error> {
    while slots.in_flight.load(Ordering::SeqCst) > 0 {
        tokio::select! {
            _ = slots.committed.notified() => {}
            _ = stop.soft.cancelled() => return Ok(false),
        }
    }
    ctx.probing.store(false, Ordering::SeqCst);
    if stop.is_stopping() {
        return Ok(false);
    }
    if let Some(key) = &ctx.lane.quota_key {
        let day = quota::quota_day(quota::now());
        ctx.store.clear_quota_stop(key, &day).await?;
    }
    Ok(true)
}

/// How long to hold the partial batch in `ahead` (fewer than a request's worth, not empty)
/// before claiming again: until the lane's next lookup comes due, if that is within
/// [`GATHER`], and for at most [`GATHER`] in all. A batch costs one request however few it
/// asks for.
pub(super) async fn gathering<S: CrawlStore>(
    ctx: &Ctx<S>,
    ahead: &VecDeque<ClaimedLookup>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_and_budget_blocks_reach_about_a_second_ahead() {
        assert_eq!(a_second_ahead(None, MIN_CLAIM), AHEAD_MOST);
        assert_eq!(a_second_ahead(Some(1.0), MIN_CLAIM), MIN_CLAIM);
        assert_eq!(a_second_ahead(Some(99.5), MIN_CLAIM), 100);
        assert_eq!(a_second_ahead(Some(1e9), MIN_CLAIM), AHEAD_MOST);
        assert_eq!(a_second_ahead(Some(0.01), 64), 64);
    }
}
