/*!
PostgreSQL's [`QuotaStore`]: each multi-statement write in one transaction, the key's row
held `FOR UPDATE` while a reservation reads it.
*/

use super::PgStore;
use crate::store::contract::QuotaStore;
use crate::store::{QuotaDay, Reservation, Result, sql};

impl QuotaStore for PgStore {
    async fn quota_day(&self, day: &str) -> Result<QuotaDay> {
        self.on_conn(async |c| sql::quota_day(c, day).await).await
    }

    async fn mark_quota_exhausted(
        &self,
        key_id: &str,
        day: &str,
        at_ms: i64,
        resets_at_ms: i64,
    ) -> Result<()> {
        in_tx!(self, tx => {
            sql::mark_quota_exhausted(&mut *tx, key_id, day, at_ms, resets_at_ms).await
        })
    }

    async fn release_budget(&self, key_id: &str, day: &str, units: u64) -> Result<()> {
        self.on_conn(async |c| sql::release_budget(c, key_id, day, units).await)
            .await
    }

    async fn clear_quota_stop(&self, key_id: &str, day: &str) -> Result<()> {
        in_tx!(self, tx => sql::clear_quota_stop(&mut *tx, key_id, day).await)
    }

    async fn reserve_budget(
        &self,
        key_id: &str,
        day: &str,
        want: u64,
        limit: Option<u64>,
        probe: bool,
    ) -> Result<Reservation> {
        in_tx!(self, tx => {
            sql::reserve_budget(&mut *tx, true, key_id, day, want, limit, probe).await
        })
    }
}
