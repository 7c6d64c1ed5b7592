/*!
The rate limiter: governor's permits at a rate that adapts to 429s.

A per-minute 429 means the configured rate is more than the key is allowed now, so the whole
crawl halves its rate (at most once per cooldown, since the requests already in flight will
bring more 429s for the same cause) and climbs back by a quarter after each quiet period, never
above what the user configured. The arithmetic is [`AdaptiveRate`], pure and tested with
explicit instants; [`Limiter`] applies it to a governor limiter.
*/

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// The lowest rate a slow-down goes to: one request a minute.
pub const MIN_RATE: f64 = 1.0 / 60.0;
/// A second 429 within this time of a slow-down does not slow down again.
pub const COOLDOWN: Duration = Duration::from_secs(2);
/// A quiet period this long lets the rate climb back a step.
pub const RECOVER_AFTER: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct AdaptiveRate {
    configured: Option<f64>,
    current: Option<f64>,
    last_change: Option<Instant>,
    /// Requests started in the current and the previous whole second (for unlimited runs).
    window: (Option<Instant>, u32, u32),
}

impl AdaptiveRate {
    pub fn new(configured: Option<f64>) -> AdaptiveRate {
        AdaptiveRate {
            configured,
            current: configured,
            last_change: None,
            window: (None, 0, 0),
        }
    }

    /// Requests per second now; `None` is unlimited.
    pub fn current(&self) -> Option<f64> {
        self.current
    }

    /// Counts a request that starts at `now`.
    pub fn note_request(&mut self, now: Instant) {
        match self.window.0 {
            Some(start) if now.duration_since(start) < Duration::from_secs(1) => self.window.1 += 1,
            Some(start) if now.duration_since(start) < Duration::from_secs(2) => {
                self.window = (Some(start + Duration::from_secs(1)), 1, self.window.1);
            }
            _ => self.window = (Some(now), 1, 0),
        }
    }

    /// A 429 at `now`; returns whether the rate changed.
    pub fn slow_down(&mut self, now: Instant) -> bool {
        if self
            .last_change
            .is_some_and(|t| now.duration_since(t) < COOLDOWN)
        {
            return false;
        }
        let from = self
            .current
            .unwrap_or_else(|| f64::from(self.window.2.max(self.window.1).max(2)));
        self.current = Some((from / 2.0).max(MIN_RATE));
        self.last_change = Some(now);
        true
    }

    /// A success at `now`; returns whether the rate climbed back a step.
    pub fn recover(&mut self, now: Instant) -> bool {
        let Some(current) = self.current else {
            return false;
        };
        if self.current == self.configured
            || self
                .last_change
                .is_some_and(|t| now.duration_since(t) < RECOVER_AFTER)
        {
            return false;
        }
        let next = current * 1.25;
        self.current = match self.configured {
            Some(cap) => Some(next.min(cap)),
            // Unlimited: climb until far beyond anything a key allows, then stop limiting.
            None if next > 10_000.0 => None,
            None => Some(next),
        };
        self.last_change = Some(now);
        true
    }
}

fn governor_for(rate: Option<f64>) -> Option<Arc<DefaultDirectRateLimiter>> {
    let rate = rate?;
    let period = Duration::try_from_secs_f64(1.0 / rate).ok()?;
    // Burst 1: requests are spread evenly, so no window ever sees more than the rate allows.
    let quota = Quota::with_period(period)?.allow_burst(NonZeroU32::MIN);
    Some(Arc::new(RateLimiter::direct(quota)))
}

/// The crawl's shared limiter.
#[derive(Debug)]
pub struct Limiter {
    state: Mutex<(AdaptiveRate, Option<Arc<DefaultDirectRateLimiter>>)>,
}

impl Limiter {
    pub fn new(rate: Option<f64>) -> Limiter {
        Limiter {
            state: Mutex::new((AdaptiveRate::new(rate), governor_for(rate))),
        }
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, (AdaptiveRate, Option<Arc<DefaultDirectRateLimiter>>)> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for a permit to send one request.
    pub async fn until_ready(&self) {
        let governor = self.lock().1.clone();
        if let Some(g) = governor {
            g.until_ready().await;
        }
        self.lock().0.note_request(Instant::now());
    }

    pub fn on_rate_limited(&self) {
        let mut st = self.lock();
        if st.0.slow_down(Instant::now()) {
            st.1 = governor_for(st.0.current());
            tracing::warn!(rate = ?st.0.current(), "a 429 (or a failing catalogue): slowing down");
        }
    }

    pub fn on_success(&self) {
        let mut st = self.lock();
        if st.0.recover(Instant::now()) {
            st.1 = governor_for(st.0.current());
            tracing::info!(rate = ?st.0.current(), "no 429 for a while: speeding up");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_once_per_cooldown_and_recovers_to_the_configured_rate() {
        let t0 = Instant::now();
        let mut r = AdaptiveRate::new(Some(8.0));
        assert!(r.slow_down(t0));
        assert_eq!(r.current(), Some(4.0));
        assert!(
            !r.slow_down(t0 + Duration::from_millis(500)),
            "in-flight 429s"
        );
        assert!(r.slow_down(t0 + COOLDOWN));
        assert_eq!(r.current(), Some(2.0));
        assert!(!r.recover(t0 + COOLDOWN + Duration::from_secs(1)));
        let mut t = t0 + COOLDOWN;
        for _ in 0..20 {
            t += RECOVER_AFTER;
            r.recover(t);
        }
        assert_eq!(r.current(), Some(8.0), "never above what was configured");
        assert!(!r.recover(t + RECOVER_AFTER));
    }

    #[test]
    fn never_below_the_floor() {
        let t0 = Instant::now();
        let mut r = AdaptiveRate::new(Some(0.02));
        for i in 0..10 {
            r.slow_down(t0 + COOLDOWN * i);
        }
        assert_eq!(r.current(), Some(MIN_RATE));
    }

    #[test]
    fn unlimited_starts_from_the_observed_rate() {
        let t0 = Instant::now();
        let mut r = AdaptiveRate::new(None);
        for i in 0..100 {
            r.note_request(t0 + Duration::from_millis(i * 10));
        }
        for i in 0..40 {
            r.note_request(t0 + Duration::from_millis(1000 + i * 10));
        }
        assert!(r.slow_down(t0 + Duration::from_millis(1500)));
        assert_eq!(
            r.current(),
            Some(50.0),
            "half of the 100 requests in the last second"
        );
    }
}
