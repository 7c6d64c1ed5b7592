/*!
The writer: one task per lane that applies completions in as few transactions as their
arrival allows, and wakes the dispatcher after each commit.
*/

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};

use super::lane::Ctx;
use super::quota;
use super::stop::Stop;
use crate::store::{Commit, Completion, CrawlStore, JobResult};

/// How long a result waits for its commit (plus the commit itself) while answers come slowly:
/// what a kill -9 can cost. Long enough that a commit carries many results at modest rates
/// (much of a commit's cost is the same for 1 result or 80: the WAL frames of the index pages
/// it touches, a round trip per statement); short beside what a person notices, and at the
/// default 1 request a second a kill loses at most one answer.
pub(super) const COMMIT_WINDOW: Duration = Duration::from_millis(250);
/// Results that make a window busy: when this many came within [`COMMIT_WINDOW`] (256 a second
/// or more), the commit waits up to [`BUSY_WINDOW`] instead.
pub(super) const BUSY_RESULTS: usize = 64;
/// The window of a busy writer: a commit costs about the same for 80 results as for 256, so
/// busy crawls commit fewer, larger batches (measured in docs/performance.md, "The writer's
/// window"). A kill then costs no more answers than [`COMMIT_ENOUGH`]; slow crawls (and `demo`)
/// keep the short window, so their results are not held longer.
pub(super) const BUSY_WINDOW: Duration = Duration::from_secs(1);
/// Results that are worth a commit without waiting out the window: at high rates a kill then
/// costs at most this many answers, and commits stay small enough to keep the lock briefly.
pub(super) const COMMIT_ENOUGH: usize = 256;
/// Applies completions in as few transactions as the arrival rate allows.
pub(super) async fn writer<S: CrawlStore>(
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
                    &Commit {
                        run_id: ctx.run_id,
                        precedence: &ctx.precedence,
                        quota_day: &day,
                        now_ms: now.timestamp_millis(),
                    },
                    &mut batch,
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
pub(super) async fn gather<T>(
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
pub(super) fn feeds_work(c: &Completion) -> bool {
    c.then.is_some() || matches!(c.result, JobResult::Retry { .. } | JobResult::GiveBack)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

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
}
