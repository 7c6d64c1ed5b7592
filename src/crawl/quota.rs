/*!
Quota days and the daily budget.

Google's quotas reset at midnight Pacific time (documented for other Google APIs, assumed for
Books), so requests are counted per Pacific date. The count lives in the database
(`quota_days`), so a second run on the same day continues it.
*/

use crate::store::{QuotaStore, Result as StoreResult};

use chrono::{DateTime, Days, NaiveDate, TimeZone, Utc};
use chrono_tz::America::Los_Angeles;

/// The quota day (a Pacific date, `YYYY-MM-DD`) that `at` falls in. Every request asks, and
/// converting to Pacific time and formatting each time showed in the crawler's profile, so
/// the last day asked is kept with its bounds and reused while `at` is in it.
pub fn quota_day(at: DateTime<Utc>) -> String {
    type Last = Option<(std::ops::Range<DateTime<Utc>>, String)>;
    static LAST: std::sync::Mutex<Last> = std::sync::Mutex::new(None);
    let mut last = LAST
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((bounds, day)) = &*last
        && bounds.contains(&at)
    {
        return day.clone();
    }
    let date = at.with_timezone(&Los_Angeles).date_naive();
    let day = date.format("%Y-%m-%d").to_string();
    *last = Some((start_of(date).unwrap_or(at)..end_of(date, at), day.clone()));
    day
}

/// When the quota day of `at` ends: the next midnight in Pacific time.
pub fn day_end(at: DateTime<Utc>) -> DateTime<Utc> {
    end_of(at.with_timezone(&Los_Angeles).date_naive(), at)
}

/// The midnight after the Pacific `date`, which `at` falls in.
fn end_of(date: NaiveDate, at: DateTime<Utc>) -> DateTime<Utc> {
    let next = date.checked_add_days(Days::new(1)).unwrap_or(date);
    // Midnight never falls in a DST gap in Los Angeles; a day is the safe fallback.
    start_of(next).unwrap_or(at + chrono::Duration::days(1))
}

/// Midnight starting `date` in Pacific time.
fn start_of(date: NaiveDate) -> Option<DateTime<Utc>> {
    let midnight = date.and_hms_opt(0, 0, 0)?;
    Los_Angeles
        .from_local_datetime(&midnight)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

pub use crate::clock::now;

/// A key's fingerprint: whose budget and quota stop a crawler shares. Crawlers with one key
/// share them; with different keys (projects) each has its own. 16 hex digits of FNV-1a: stable
/// across builds and machines, and no way back to the key, which never reaches the database.
pub fn key_id(key: &str) -> String {
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{hash:016x}")
}

/// Google's budget for one lane: units of the day reserved in the database a block at a time,
/// so crawlers on one database share `--daily-budget` and see a quota stop another met.
#[derive(Debug)]
pub struct Budget {
    /// Whose quota: the key's fingerprint ([`key_id`]); `None` for providers without a daily
    /// quota, whose every take is granted and nothing stored.
    key_id: Option<String>,
    limit: Option<u64>,
    block: u64,
    held: tokio::sync::Mutex<Held>,
}

#[derive(Debug, Default)]
struct Held {
    day: String,
    units: u64,
}

/// What a lane may do about its next request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    Granted,
    /// `--daily-budget` is reached (by all crawlers together).
    Spent,
    /// A crawler met Google's daily quota this day.
    QuotaStopped,
}

impl Budget {
    /// A budget reserved `block` units at a time: a crawler killed mid-day loses at most one
    /// block of the day; a quota stop elsewhere is seen within one block.
    pub fn shared(key_id: &str, limit: Option<u64>, block: u64) -> Budget {
        Budget {
            key_id: Some(key_id.to_string()),
            limit,
            block: block.max(1),
            held: tokio::sync::Mutex::new(Held::default()),
        }
    }

    pub fn unlimited() -> Budget {
        Budget {
            key_id: None,
            limit: None,
            block: 1,
            held: tokio::sync::Mutex::new(Held::default()),
        }
    }

    /// Takes one request's unit of `day`, reserving a block when none is held. A `probe` (the
    /// one request after a quota stop) asks for one unit, past the stop.
    pub async fn take<S: QuotaStore>(
        &self,
        store: &S,
        day: &str,
        probe: bool,
    ) -> StoreResult<Take> {
        let Some(key_id) = &self.key_id else {
            return Ok(Take::Granted);
        };
        let mut held = self.held.lock().await;
        if held.day != day {
            // Units of a day that has ended are worth nothing: the new day starts empty.
            *held = Held {
                day: day.to_string(),
                units: 0,
            };
        }
        if held.units == 0 {
            let want = if probe { 1 } else { self.block };
            let got = store
                .reserve_budget(key_id, day, want, self.limit, probe)
                .await?;
            if got.granted == 0 {
                return Ok(if got.quota_stopped {
                    Take::QuotaStopped
                } else {
                    Take::Spent
                });
            }
            held.units = got.granted;
        }
        held.units -= 1;
        Ok(Take::Granted)
    }

    /// Gives the units held but not spent back to the day, for other crawlers (or the next run).
    pub async fn release<S: QuotaStore>(&self, store: &S) -> StoreResult<()> {
        let mut held = self.held.lock().await;
        if let (Some(key_id), 1..) = (&self.key_id, held.units) {
            store.release_budget(key_id, &held.day, held.units).await?;
            held.units = 0;
        }
        Ok(())
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
        // The day kept from the last call is reused only within its bounds, either way.
        assert_eq!(quota_day(utc("2026-01-16T07:59:59Z")), "2026-01-15");
        assert_eq!(quota_day(utc("2026-01-15T07:59:59Z")), "2026-01-14");
        assert_eq!(quota_day(utc("2026-01-16T08:00:00Z")), "2026-01-16");
        // The day DST ends (1 November 2026) is 25 hours long: 07:00 to 08:00 UTC next day.
        assert_eq!(quota_day(utc("2026-11-01T07:00:00Z")), "2026-11-01");
        assert_eq!(quota_day(utc("2026-11-02T07:59:59Z")), "2026-11-01");
        assert_eq!(quota_day(utc("2026-11-01T06:59:59Z")), "2026-10-31");
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

    #[tokio::test]
    async fn crawlers_on_one_database_share_the_budget_and_see_a_quota_stop() {
        let dir = tempfile::tempdir().expect("dir");
        let store = crate::store::SqliteStore::open(&dir.path().join("b.db"), true)
            .await
            .expect("open");
        let (a, b) = (
            Budget::shared("k", Some(5), 2),
            Budget::shared("k", Some(5), 2),
        );
        let mut granted = 0;
        for _ in 0..4 {
            for budget in [&a, &b] {
                if budget.take(&store, "d1", false).await.expect("take") == Take::Granted {
                    granted += 1;
                }
            }
        }
        assert_eq!(granted, 5, "two crawlers together stay within the limit");
        assert_eq!(
            b.take(&store, "d1", false).await.expect("take"),
            Take::Spent
        );
        // Units held but not spent go back for the other crawlers; a new day starts whole.
        let c = Budget::shared("k", Some(8), 4);
        assert_eq!(
            c.take(&store, "d1", false).await.expect("take"),
            Take::Granted
        );
        c.release(&store).await.expect("release");
        let e = Budget::shared("k", Some(8), 10);
        let mut more = 0;
        while e.take(&store, "d1", false).await.expect("take") == Take::Granted {
            more += 1;
        }
        assert_eq!(more, 2, "8 minus the 5 and the 1 spent");
        assert_eq!(
            a.take(&store, "d2", false).await.expect("take"),
            Take::Granted
        );
        // A quota stop is seen by every crawler once its block is spent; a probe passes.
        store
            .mark_quota_exhausted("k", "d3", 1, 2)
            .await
            .expect("mark");
        let d = Budget::shared("k", None, 3);
        assert_eq!(
            d.take(&store, "d3", false).await.expect("take"),
            Take::QuotaStopped
        );
        assert_eq!(
            d.take(&store, "d3", true).await.expect("take"),
            Take::Granted
        );
        store.clear_quota_stop("k", "d3").await.expect("clear");
        assert_eq!(
            d.take(&store, "d3", false).await.expect("take"),
            Take::Granted
        );
        // Another key has a budget and a quota of its own.
        let other = Budget::shared("other", Some(5), 2);
        assert_eq!(
            other.take(&store, "d1", false).await.expect("take"),
            Take::Granted
        );
        assert_eq!(
            other.take(&store, "d3", false).await.expect("take"),
            Take::Granted
        );
        assert_ne!(key_id("AIza-one"), key_id("AIza-two"));
        assert_eq!(key_id("AIza-one"), key_id("AIza-one"));
        assert!(!key_id("AIza-one").contains("AIza"));
        let unlimited = Budget::unlimited();
        assert_eq!(
            unlimited.take(&store, "d3", false).await.expect("take"),
            Take::Granted
        );
    }
}
