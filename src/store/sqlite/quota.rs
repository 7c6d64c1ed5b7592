/*!
SQLite's [`QuotaStore`]: each write on the one writer connection, in one transaction.
*/

use super::SqliteStore;
use crate::store::contract::QuotaStore;
use crate::store::{QuotaDay, Reservation, Result, sql};

impl QuotaStore for SqliteStore {
    async fn quota_day(&self, day: &str) -> Result<QuotaDay> {
        self.read(async |c| sql::quota_day(c, day).await).await
    }

    async fn mark_quota_exhausted(
        &self,
        key_id: &str,
        day: &str,
        at_ms: i64,
        resets_at_ms: i64,
    ) -> Result<()> {
        self.write(async |c| sql::mark_quota_exhausted(c, key_id, day, at_ms, resets_at_ms).await)
            .await
    }

    async fn release_budget(&self, key_id: &str, day: &str, units: u64) -> Result<()> {
        self.write(async |c| sql::release_budget(c, key_id, day, units).await)
            .await
    }

    async fn clear_quota_stop(&self, key_id: &str, day: &str) -> Result<()> {
        self.write(async |c| sql::clear_quota_stop(c, key_id, day).await)
            .await
    }

    async fn reserve_budget(
        &self,
        key_id: &str,
        day: &str,
        want: u64,
        limit: Option<u64>,
        probe: bool,
    ) -> Result<Reservation> {
        self.write(async |c| sql::reserve_budget(c, false, key_id, day, want, limit, probe).await)
            .await
    }
}
