/*!
What an outcome does to its job: the state it moves to, and when a retry is due.

Transient errors back off exponentially with full jitter (a random delay between zero and
`base * 2^(attempt-1)`, capped), so many jobs failing together do not come back together.
A `Retry-After` is honoured as a floor. Rate limiting, quota and a refused key are not the job's
fault and never use up an attempt.
*/

use std::time::Duration;

use rand::Rng;

use crate::providers::Outcome;
use crate::store::JobResult;

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base: Duration,
    pub max: Duration,
}

impl RetryPolicy {
    /// The longest delay before attempt `attempts + 1`.
    pub fn ceiling(&self, attempts: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempts.saturating_sub(1).min(30));
        self.base.saturating_mul(factor).min(self.max)
    }

    /// A delay in `0..=ceiling`, but at least `retry_after`.
    pub fn delay(
        &self,
        attempts: u32,
        retry_after: Option<Duration>,
        rng: &mut impl Rng,
    ) -> Duration {
        let ceiling = self.ceiling(attempts).as_millis() as u64;
        let jittered = Duration::from_millis(rng.random_range(0..=ceiling));
        retry_after.map_or(jittered, |r| jittered.max(r))
    }
}

/// A retry delay for a rate-limited request when the server names none.
pub const RATE_LIMITED_DELAY: Duration = Duration::from_secs(1);

/// The job result for `outcome`, for a job on its `attempts`-th attempt.
pub fn job_result(
    outcome: Outcome,
    attempts: u32,
    policy: &RetryPolicy,
    now_ms: i64,
    rng: &mut impl Rng,
) -> JobResult {
    let at = |d: Duration| now_ms.saturating_add(d.as_millis() as i64);
    match outcome {
        Outcome::Found(book) => JobResult::Done(book),
        Outcome::NotFound { items: 0 } => JobResult::NotFound {
            note: "no item for this ISBN".into(),
        },
        Outcome::NotFound { items } => JobResult::NotFound {
            note: format!("{items} item(s) returned, none with this ISBN"),
        },
        Outcome::Transient { error, .. } if attempts >= policy.max_attempts => JobResult::Failed {
            error: format!("{error} (gave up after {attempts} attempts)"),
        },
        Outcome::Transient { error, retry_after } => JobResult::Retry {
            at: at(policy.delay(attempts, retry_after, rng)),
            error,
            refund: false,
        },
        Outcome::RateLimited { retry_after } => JobResult::Retry {
            at: at(retry_after.unwrap_or(RATE_LIMITED_DELAY)),
            error: "rate limited (429)".into(),
            refund: true,
        },
        Outcome::QuotaExhausted { .. } | Outcome::ApiRejected { .. } => JobResult::GiveBack,
        Outcome::Permanent { error } => JobResult::Failed { error },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 3,
        base: Duration::from_secs(2),
        max: Duration::from_secs(60),
    };

    #[test]
    fn backoff_doubles_is_capped_and_jittered_within_its_ceiling() {
        assert_eq!(POLICY.ceiling(1), Duration::from_secs(2));
        assert_eq!(POLICY.ceiling(3), Duration::from_secs(8));
        assert_eq!(POLICY.ceiling(40), Duration::from_secs(60));
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let delays: Vec<Duration> = (0..200).map(|_| POLICY.delay(3, None, &mut rng)).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(8)));
        assert!(
            delays.iter().any(|d| *d < Duration::from_secs(4)),
            "jitter spreads delays"
        );
        let floor = POLICY.delay(1, Some(Duration::from_secs(30)), &mut rng);
        assert_eq!(floor, Duration::from_secs(30), "Retry-After is a floor");
    }

    #[test]
    fn transient_errors_retry_until_attempts_run_out() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let transient = || Outcome::Transient {
            error: "HTTP 503".into(),
            retry_after: None,
        };
        match job_result(transient(), 2, &POLICY, 1000, &mut rng) {
            JobResult::Retry { at, refund, .. } => {
                assert!((1000..=1000 + 4000).contains(&at));
                assert!(!refund);
            }
            other => panic!("{other:?}"),
        }
        match job_result(transient(), 3, &POLICY, 1000, &mut rng) {
            JobResult::Failed { error } => assert!(error.contains("HTTP 503")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn stops_and_rate_limits_cost_no_attempt() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let rl = Outcome::RateLimited { retry_after: None };
        assert!(matches!(
            job_result(rl, 3, &POLICY, 0, &mut rng),
            JobResult::Retry {
                refund: true,
                at: 1000,
                ..
            }
        ));
        let quota = Outcome::QuotaExhausted {
            message: String::new(),
        };
        assert!(matches!(
            job_result(quota, 1, &POLICY, 0, &mut rng),
            JobResult::GiveBack
        ));
    }
}
