/*!
How many ISBNs a Google request asks for (`--batch auto`), and the pool of ISBNs an OR answer
left out.

Google answers `isbn:A OR isbn:B ...` like a relevance search: most requested books come back,
some do not, and a Google that stopped honouring OR would return only the first term's. The
size judges whether OR is honoured, never how many of the asked books exist: an answer that
brings two asked books, or one that is not the first term's, shows OR at work and grows the
size toward the maximum; an answer that brings the first term's book alone, or none, is what
an ignored OR looks like (its first term known, or not), and [`UNPROVEN_TO_HALVE`] of them
with no honoured answer between halve it, down to one. At one, an occasional pair tests
whether OR works again.

Judging by coverage (the share of asked books found) halved the size on the populations that
need batches most: under `--fill missing` Google is asked exactly the books Open Library lacked,
many unknown to Google too, and a low share there is no sign of a broken OR (one night: 926
requests for 2,166 such misses, 1.9 times the floor). Answers to batches of misses are not
judged (the crawl loop's choice), nor those to the retries of a failed one
([`MissPool::sent_back`]).

A book an OR answer left out is not a verdict. It is pooled with other such misses and asked
again in OR batches of misses ([`MAX_REBATCH`] times) before it is asked alone, where only the
single request can make it `not_found`.
*/

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::store::ClaimedLookup;

/// Where a group starts when the size is adaptive.
pub const START: usize = 10;
/// OR batches of misses a book goes through before it is asked alone.
pub const MAX_REBATCH: u8 = 2;
/// At size one, every this many groups try two again.
const RETRY_PAIR_EVERY: usize = 50;
/// Answers showing no sign of OR (the first term's book alone, or none), with no honoured
/// answer between, that halve the size. With OR honoured a group of 40 rarely shows none: with
/// half of the books unknown and 10% of the rest left out, (0.55)^40 of the time; a group of
/// books 95% unknown does one time in six, and three running once in 200 (where the floor is
/// nearly one request per book whatever the size). A Google answering the first term only takes
/// it from 10 to 1 in about 10 answers.
pub const UNPROVEN_TO_HALVE: usize = 3;

/// What one answer to an OR request of several says about OR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// Two or more asked books, or one that is not the first term's.
    Honoured,
    /// The first term's book alone, or no asked book: what an ignored OR answers.
    Unproven,
}

impl Reading {
    /// Reads an answer to `found` (whether each asked ISBN came back, in the query's order).
    pub fn of(found: &[bool]) -> Reading {
        let others = found.iter().skip(1).any(|f| *f);
        if others {
            Reading::Honoured
        } else {
            Reading::Unproven
        }
    }
}

/// The request size of one lane: fixed, or adapting to the answers.
#[derive(Debug)]
pub struct BatchSize {
    adaptive: bool,
    max: usize,
    current: AtomicUsize,
    singles: AtomicUsize,
    /// Unproven answers since the last honoured one or the last halving.
    unproven: AtomicUsize,
}

impl BatchSize {
    fn new(adaptive: bool, max: usize, start: usize) -> BatchSize {
        BatchSize {
            adaptive,
            max,
            current: AtomicUsize::new(start),
            singles: AtomicUsize::new(0),
            unproven: AtomicUsize::new(0),
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

    /// Learns from an answer to a group of more than one: `found` says, in the query's order,
    /// whether each asked ISBN came back.
    pub fn record(&self, found: &[bool]) {
        if !self.adaptive || found.len() < 2 {
            return;
        }
        let n = self.current.load(Ordering::Relaxed);
        match Reading::of(found) {
            Reading::Honoured => {
                self.unproven.store(0, Ordering::Relaxed);
                self.current
                    .store((n + (n / 4).max(1)).min(self.max), Ordering::Relaxed);
            }
            Reading::Unproven => {
                if self.unproven.fetch_add(1, Ordering::Relaxed) + 1 >= UNPROVEN_TO_HALVE {
                    self.unproven.store(0, Ordering::Relaxed);
                    self.current.store((n / 2).max(1), Ordering::Relaxed);
                }
            }
        }
    }
}

/// ISBNs OR answers left out, waiting for an OR batch of misses; with how many they have been
/// through.
#[derive(Debug, Default)]
pub struct MissPool {
    jobs: Mutex<Vec<(ClaimedLookup, u8)>>,
    /// Lookups (ids) a failed batch of misses sent back to the store to be retried: claimed
    /// again they come back as new jobs, but are still misses, mostly unknown books.
    sent_back: Mutex<HashSet<i64>>,
}

impl MissPool {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(ClaimedLookup, u8)>> {
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

    pub fn push(&self, job: ClaimedLookup, rounds: u8) {
        self.lock().push((job, rounds));
    }

    /// A group of `n` when that many wait; with `any`, whatever waits (up to `n`).
    pub fn take(&self, n: usize, any: bool) -> Option<Vec<(ClaimedLookup, u8)>> {
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

    pub fn drain(&self) -> Vec<(ClaimedLookup, u8)> {
        std::mem::take(&mut *self.lock())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An answer to `n` asked that found those at `at`.
    fn answer(n: usize, at: &[usize]) -> Vec<bool> {
        (0..n).map(|i| at.contains(&i)).collect()
    }

    #[test]
    fn an_answer_is_read_for_or_not_for_coverage() {
        assert_eq!(Reading::of(&answer(40, &[])), Reading::Unproven);
        assert_eq!(Reading::of(&answer(40, &[0])), Reading::Unproven);
        assert_eq!(Reading::of(&answer(40, &[7])), Reading::Honoured);
        assert_eq!(Reading::of(&answer(40, &[0, 39])), Reading::Honoured);
    }

    #[test]
    fn grows_while_or_is_honoured_and_halves_while_only_the_first_term_comes_back() {
        let b = BatchSize::adaptive(40);
        assert_eq!(b.next(), 10);
        for _ in 0..10 {
            b.record(&answer(b.current(), &[1, 2]));
        }
        assert_eq!(b.current(), 40, "honoured answers grow it to the maximum");
        for _ in 0..60 {
            b.record(&answer(b.current().max(2), &[0]));
        }
        assert_eq!(b.current(), 1);
        let pairs = (0..100).filter(|_| b.next() == 2).count();
        assert_eq!(pairs, 2, "at one, an occasional pair tests OR again");
        b.record(&answer(2, &[0, 1]));
        assert_eq!(b.current(), 2, "a pair that came back whole grows it again");
        let fixed = BatchSize::fixed(20);
        fixed.record(&answer(20, &[0]));
        assert_eq!(fixed.next(), 20);
    }

    #[test]
    fn a_population_of_mostly_unknown_books_keeps_the_top_size() {
        let b = BatchSize::adaptive(40);
        for _ in 0..10 {
            b.record(&answer(b.current(), &[3, 9]));
        }
        assert_eq!(b.current(), 40);
        // Books another provider lacked: most unknown here too; answers bring one or two,
        // sometimes none, now and then the first term's alone.
        for round in 0..200 {
            let found: &[usize] = match round % 5 {
                0 => &[],
                1 => &[0],
                2 => &[17],
                3 => &[],
                _ => &[0, 30],
            };
            b.record(&answer(40, found));
            assert_eq!(b.current(), 40, "round {round}");
        }
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
            // The first term is unknown one time in ten: that answer is silent.
            let found: &[usize] = if answers % 10 == 9 { &[] } else { &[0] };
            b.record(&answer(b.current(), found));
            answers += 1;
            assert!(
                answers <= 16,
                "still at {} after {answers} answers",
                b.current()
            );
        }
    }
}
