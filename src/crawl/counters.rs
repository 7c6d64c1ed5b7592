/*!
What a run has committed, counted live for the progress line and the summary.
*/

use std::sync::atomic::{AtomicU64, Ordering};

use crate::store::{Completion, JobResult};

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
    pub(super) fn add(&self, batch: &[Completion]) {
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
