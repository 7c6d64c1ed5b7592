/*!
What one `complete` does, worked out before either backend writes it: what a result does to
its lookup, and what the commit adds to its run's rows.
*/

use std::collections::HashMap;

use super::{Book, Completion, JobResult, JobState};
use crate::domain::ProviderId;

/// What a result does to its lookup: (state, next_attempt_at, last_error, refund attempt).
pub(super) fn job_change(result: &JobResult) -> (&'static str, Option<i64>, Option<&str>, bool) {
    match result {
        JobResult::Done(_) => (JobState::Done.as_str(), None, None, false),
        JobResult::NotFound { note } => (JobState::NotFound.as_str(), None, Some(note), false),
        JobResult::Retry { at, error, refund } => {
            (JobState::Pending.as_str(), Some(*at), Some(error), *refund)
        }
        JobResult::Failed { error } => (JobState::Failed.as_str(), None, Some(error), false),
        JobResult::GiveBack => (JobState::Pending.as_str(), None, None, true),
    }
}

/// What one `complete` adds to its run's row, the records to store, and the lookups to chain.
#[derive(Default)]
pub(super) struct Tally<'a> {
    pub requests: i64,
    /// Requests that spent a daily quota (the providers whose spec says so).
    pub quota_requests: i64,
    /// Per provider: requests, done, not found, failed (rows of `run_providers`).
    pub per_provider: Vec<(ProviderId, [i64; 4])>,
    pub done: i64,
    pub not_found: i64,
    pub failed: i64,
    pub retried: i64,
    pub given_back: i64,
    pub books: Vec<(ProviderId, &'a Book)>,
    /// `(job id, provider)`: lookups `--fill missing` makes next.
    pub chained: Vec<(i64, ProviderId)>,
}

impl<'a> Tally<'a> {
    fn count(&mut self, provider: ProviderId, column: usize, n: i64) {
        match self.per_provider.iter_mut().find(|(p, _)| *p == provider) {
            Some((_, figures)) => figures[column] += n,
            None => {
                let mut figures = [0; 4];
                figures[column] = n;
                self.per_provider.push((provider, figures));
            }
        }
    }

    /// [`Tally::per_provider`] as a JSON array of `[provider, requests, done, not_found,
    /// failed]`, one statement's worth for SQLite's `json_each`.
    pub fn per_provider_json(&self) -> String {
        let rows: Vec<serde_json::Value> = self
            .per_provider
            .iter()
            .map(|(p, f)| serde_json::json!([p.as_str(), f[0], f[1], f[2], f[3]]))
            .collect();
        serde_json::Value::Array(rows).to_string()
    }

    /// Counts every completion's requests (sent whether or not the lease held), and the
    /// outcomes of those `applied` (lookup id → job id).
    pub fn of(completions: &'a [Completion], applied: &HashMap<i64, i64>) -> Tally<'a> {
        let mut t = Tally::default();
        for c in completions {
            t.requests += i64::from(c.requests);
            if crate::providers::registry::spec(c.provider).daily_quota {
                t.quota_requests += i64::from(c.requests);
            }
            let column = match &c.result {
                _ if !applied.contains_key(&c.lookup_id) => None,
                JobResult::Done(_) => Some(1),
                JobResult::NotFound { .. } => Some(2),
                JobResult::Failed { .. } => Some(3),
                _ => None,
            };
            t.count(c.provider, 0, i64::from(c.requests));
            if let Some(column) = column {
                t.count(c.provider, column, 1);
            }
            let Some(&job_id) = applied.get(&c.lookup_id) else {
                tracing::warn!(
                    lookup = c.lookup_id,
                    "lease lost before completion; result dropped"
                );
                continue;
            };
            match &c.result {
                JobResult::Done(book) => {
                    t.done += 1;
                    t.books.push((c.provider, book.as_ref()));
                }
                JobResult::NotFound { .. } => t.not_found += 1,
                JobResult::Retry { .. } => t.retried += 1,
                JobResult::Failed { .. } => t.failed += 1,
                JobResult::GiveBack => t.given_back += 1,
            }
            if let (Some(next), JobResult::NotFound { .. } | JobResult::Failed { .. }) =
                (c.then, &c.result)
            {
                t.chained.push((job_id, next));
            }
        }
        t
    }
}
