/*!
Quota days and the daily budget.

Google's quotas reset at midnight Pacific time (documented for other Google APIs, assumed for
Books), so requests are counted per Pacific date. The count lives in the database
(`quota_days`), so a second run on the same day continues it.
*/

use std::sync::Mutex;

use chrono::{DateTime, Days, TimeZone, Utc};
use chrono_tz::America::Los_Angeles;

/// The quota day (a Pacific date, `YYYY-MM-DD`) that `at` falls in.
pub fn quota_day(at: DateTime<Utc>) -> String {
    at.with_timezone(&Los_Angeles)
        .date_naive()
        .format("%Y-%m-%d")
        .to_string()
}

/// When the quota day of `at` ends: the next midnight in Pacific time.
pub fn day_end(at: DateTime<Utc>) -> DateTime<Utc> {
    let date = at.with_timezone(&Los_Angeles).date_naive();
    let next = date.checked_add_days(Days::new(1)).unwrap_or(date);
    let midnight = next.and_hms_opt(0, 0, 0).unwrap_or_default();
    Los_Angeles
        .from_local_datetime(&midnight)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        // Midnight never falls in a DST gap in Los Angeles; a day is the safe fallback.
        .unwrap_or(at + chrono::Duration::days(1))
}

pub fn now() -> DateTime<Utc> {
    Utc::now()
}

/// `--daily-budget`: requests left today, shared by the workers of one run.
#[derive(Debug)]
pub struct Budget {
    limit: Option<u64>,
    state: Mutex<(String, u64)>,
}

impl Budget {
    /// `used` is what the database says this day has spent already.
    pub fn new(limit: Option<u64>, day: String, used: u64) -> Budget {
        Budget {
            limit,
            state: Mutex::new((day, used)),
        }
    }

    /// Takes one request from today's budget, or says none is left.
    pub fn try_take(&self, day: &str) -> bool {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.0 != day {
            *st = (day.to_string(), 0);
        }
        match self.limit {
            Some(limit) if st.1 >= limit => false,
            _ => {
                st.1 += 1;
                true
            }
        }
    }

    pub fn has_room(&self, day: &str) -> bool {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match self.limit {
            Some(limit) => st.0 != day || st.1 < limit,
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().expect("timestamp")
    }

    #[test]
    fn pacific_days_and_their_ends() {
        // 07:59 UTC in winter is 23:59 the day before in Los Angeles (UTC-8).
        assert_eq!(quota_day(utc("2026-01-15T07:59:00Z")), "2026-01-14");
        assert_eq!(quota_day(utc("2026-01-15T08:00:00Z")), "2026-01-15");
        assert_eq!(
            day_end(utc("2026-01-15T07:59:00Z")),
            utc("2026-01-15T08:00:00Z")
        );
        // Summer time: UTC-7.
        assert_eq!(
            day_end(utc("2026-07-01T12:00:00Z")),
            utc("2026-07-02T07:00:00Z")
        );
        // The day DST starts (8 March 2026) is 23 hours long.
        assert_eq!(
            day_end(utc("2026-03-08T09:00:00Z")),
            utc("2026-03-09T07:00:00Z")
        );
    }

    #[test]
    fn the_budget_stops_at_its_limit_and_starts_again_the_next_day() {
        let b = Budget::new(Some(3), "d1".into(), 1);
        assert!(b.try_take("d1"));
        assert!(b.try_take("d1"));
        assert!(!b.try_take("d1"));
        assert!(!b.has_room("d1"));
        assert!(b.has_room("d2"));
        assert!(b.try_take("d2"));
        assert!(b.try_take("d2"));
        assert!(b.try_take("d2"));
        assert!(!b.try_take("d2"), "a new day has the whole limit, no more");
        let unlimited = Budget::new(None, "d1".into(), 10_000);
        assert!(unlimited.try_take("d1"));
    }
}
