/*!
How many ISBNs a Google request asks for (`--batch auto`), and the pool of ISBNs an OR answer
left out.

Google answers `isbn:A OR isbn:B ...` like a relevance search: most requested books come back,
some do not, and a Google that stopped honouring OR would return only the first. The size
grows toward the maximum while answers come back nearly complete, and halves while they come
back with many misses, down to one; at one, an occasional pair tests whether OR works again.
Growing takes one nearly complete answer; halving takes [`EVIDENCE`] ISBNs' worth of answers
since the size last changed: a small group (the retries of a failed batch, the tail of a
crawl) with one unknown ISBN in three says little, and when one such answer could halve 40,
some runs spent their last misses in batches of 2 to 4. Answers to batches of misses are not
recorded (the crawl loop's choice), nor those to the retries of a failed one
([`MissPool::sent_back`]): they are mostly unknown books.

A book an OR answer left out is not a verdict. It is pooled with other such misses and asked
again in OR batches of misses ([`MAX_REBATCH`] times) before it is asked alone, where only the
single request can make it `not_found`.
*/

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::store::ClaimedJob;

/// Where a group starts when the size is adaptive.
pub const START: usize = 10;
/// OR batches of misses a book goes through before it is asked alone.
pub const MAX_REBATCH: u8 = 2;
/// An answer that brought this share of what was asked is "nearly complete".
const GROW_ABOVE: f64 = 0.75;
/// At or below this share the size halves (a Google answering only the first of two: 0.5).
const SHRINK_AT: f64 = 0.5;
/// At size one, every this many groups try two again.
const RETRY_PAIR_EVERY: usize = 50;
/// ISBNs asked, in answers since the size last changed, before a low share halves it: with a
/// fifth of every answer missing (a realistic Google), half of 20 ISBNs go missing about once
/// in 600 tries (half of one answer of 40, once in 100,000), and a Google that answers only the
/// first term still takes it from 10 to 1 in 16 answers.
pub const EVIDENCE: usize = 20;

/// The request size of one lane: fixed, or adapting to the answers.
#[derive(Debug)]
pub struct BatchSize {
    adaptive: bool,
    max: usize,
    current: AtomicUsize,
    singles: AtomicUsize,
    /// ISBNs asked and found in the answers since the size last changed.
    seen: Mutex<(usize, usize)>,
}

impl BatchSize {
    fn new(adaptive: bool, max: usize, start: usize) -> BatchSize {
        BatchSize {
            adaptive,
            max,
            current: AtomicUsize::new(start),
            singles: AtomicUsize::new(0),
            seen: Mutex::new((0, 0)),
        }
    }

    pub fn fixed(n: usize) -> BatchSize {
        BatchSize::new(false, n.max(1), n.max(1))
    }

    pub fn adaptive(max: usize) -> BatchSize {
        BatchSize::new(true, max.max(1), START.min(max.max(1)))
    }

    /// The size of the next group.
    pub fn next(&self) -> usize {
        let n = self.current.load(Ordering::Relaxed);
        if self.adaptive && n == 1 {
            let k = self.singles.fetch_add(1, Ordering::Relaxed) + 1;
            if k.is_multiple_of(RETRY_PAIR_EVERY) {
                return 2.min(self.max);
            }
        }
        n
    }

    /// The size now (for the progress line and the summary).
    pub fn current(&self) -> usize {
        self.current.load(Ordering::Relaxed)
    }

    /// Learns from an answer to a group of `asked` (more than one) that found `found`, together
    /// with the answers since the size last changed.
    pub fn record(&self, asked: usize, found: usize) {
        if !self.adaptive || asked < 2 {
            return;
        }
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let (asked, found) = (seen.0 + asked, seen.1 + found);
        let share = found as f64 / asked as f64;
        if share < GROW_ABOVE && asked < EVIDENCE {
            // Not yet enough to decide anything but growth: keep counting.
            *seen = (asked, found);
            return;
        }
        let n = self.current.load(Ordering::Relaxed);
        let next = if share >= GROW_ABOVE {
            (n + (n / 4).max(1)).min(self.max)
        } else if share <= SHRINK_AT {
            (n / 2).max(1)
        } else {
            n
        };
        *seen = (0, 0);
        self.current.store(next, Ordering::Relaxed);
    }
}

/// ISBNs OR answers left out, waiting for an OR batch of misses; with how many they have been
/// through.
#[derive(Debug, Default)]
pub struct MissPool {
    jobs: Mutex<Vec<(ClaimedJob, u8)>>,
    /// Lookups (ids) a failed batch of misses sent back to the store to be retried: claimed
    /// again they come back as new jobs, but are still misses, mostly unknown books.
    sent_back: Mutex<HashSet<i64>>,
}

impl MissPool {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(ClaimedJob, u8)>> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_sent_back(&self) -> std::sync::MutexGuard<'_, HashSet<i64>> {
        self.sent_back.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes lookups a failed batch of misses sends back to the store.
    pub fn sent_back(&self, ids: impl IntoIterator<Item = i64>) {
        self.lock_sent_back().extend(ids);
    }

    /// Whether any of `ids` (a group just answered) was sent back by a failed batch of
    /// misses; forgets them, since this answer is theirs.
    pub fn answered_any_sent_back(&self, ids: impl IntoIterator<Item = i64>) -> bool {
        let mut sent_back = self.lock_sent_back();
        if sent_back.is_empty() {
            return false;
        }
        // Every id is forgotten, not only those up to the first one found.
        let mut any = false;
        for id in ids {
            any |= sent_back.remove(&id);
        }
        any
    }

    pub fn push(&self, job: ClaimedJob, rounds: u8) {
        self.lock().push((job, rounds));
    }

    /// A group of `n` when that many wait; with `any`, whatever waits (up to `n`).
    pub fn take(&self, n: usize, any: bool) -> Option<Vec<(ClaimedJob, u8)>> {
        let mut jobs = self.lock();
        if jobs.is_empty() || (!any && jobs.len() < n) {
            return None;
        }
        let keep = jobs.len().saturating_sub(n);
        Some(jobs.split_off(keep))
    }

    /// How many wait.
    pub fn waiting(&self) -> usize {
        self.lock().len()
    }

    pub fn drain(&self) -> Vec<(ClaimedJob, u8)> {
        std::mem::take(&mut *self.lock())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_while_answers_are_complete_and_halves_while_they_are_not() {
        let b = BatchSize::adaptive(40);
        assert_eq!(b.next(), 10);
        for _ in 0..10 {
            b.record(b.current(), b.current() * 9 / 10);
        }
        assert_eq!(b.current(), 40, "complete answers grow it to the maximum");
        // A Google that answers only the first term: one of n.
        for _ in 0..20 {
            b.record(b.current().max(2), 1);
        }
        assert_eq!(b.current(), 1);
        let pairs = (0..100).filter(|_| b.next() == 2).count();
        assert_eq!(pairs, 2, "at one, an occasional pair tests OR again");
        let fixed = BatchSize::fixed(20);
        fixed.record(20, 0);
        assert_eq!(fixed.next(), 20);
    }

    #[test]
    fn small_unlucky_answers_do_not_halve_it_until_enough_were_asked() {
        let b = BatchSize::adaptive(40);
        for _ in 0..10 {
            b.record(b.current(), b.current());
        }
        assert_eq!(b.current(), 40);
        // The retries of a failed batch, one unknown ISBN in each group of three, then of two.
        for _ in 0..6 {
            b.record(3, 1);
        }
        assert_eq!(b.current(), 40, "18 ISBNs asked are not yet evidence");
        b.record(2, 1);
        assert_eq!(b.current(), 20, "20 ISBNs at a share of 0.35 are");
        // Evidence between the thresholds keeps the size and starts the count again.
        for _ in 0..9 {
            b.record(2, 1);
        }
        b.record(2, 2);
        assert_eq!(b.current(), 20, "20 ISBNs at a share of 0.55");
        b.record(2, 1);
        assert_eq!(b.current(), 20);
        b.record(3, 3);
        assert_eq!(
            b.current(),
            25,
            "a share of 0.8 since the last decision grows it"
        );
    }

    #[test]
    fn misses_a_failed_batch_sent_back_are_known_once_claimed_again() {
        let pool = MissPool::default();
        assert!(!pool.answered_any_sent_back([1, 2]));
        pool.sent_back([5, 6]);
        assert!(!pool.answered_any_sent_back([1, 2]), "fresh lookups");
        assert!(pool.answered_any_sent_back([1, 5]));
        assert!(!pool.answered_any_sent_back([5]), "forgotten once answered");
        assert!(pool.answered_any_sent_back([6]));
    }

    #[test]
    fn a_google_answering_only_the_first_term_takes_it_to_one_within_sixteen_answers() {
        let b = BatchSize::adaptive(40);
        let mut answers = 0;
        while b.current() > 1 {
            b.record(b.current(), 1);
            answers += 1;
            assert!(
                answers <= 16,
                "still at {} after {answers} answers",
                b.current()
            );
        }
    }
}
