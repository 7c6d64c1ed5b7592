/*!
SQLite's [`QuotaStore`]: each write on the one writer connection, in one transaction.
*/

use super::SqliteStore;
use crate::store::contract::QuotaStore;
use crate::store::{QuotaDay, Reservation, Result, sql};

impl QuotaStore for SqliteStore {
    async fn quota_day(&self, day: &str) -> Result<QuotaDay> {
        let mut conn = self.reader().await?;
        sql::quota_day(&mut *conn, day)
            .await
            .map_err(|e| self.err(e))
    }

    async fn mark_quota_exhausted(
        &self,
        key_id: &str,
        day: &str,
        at_ms: i64,
        resets_at_ms: i64,
    ) -> Result<()> {
        let mut tx = self.begin_immediate().await?;
        sql::mark_quota_exhausted(&mut *tx, key_id, day, at_ms, resets_at_ms)
            .await
            .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))
    }

    async fn release_budget(&self, key_id: &str, day: &str, units: u64) -> Result<()> {
        let mut tx = self.begin_immediate().await?;
        sql::release_budget(&mut *tx, key_id, day, units)
            .await
            .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))
    }

    async fn clear_quota_stop(&self, key_id: &str, day: &str) -> Result<()> {
        let mut tx = self.begin_immediate().await?;
        sql::clear_quota_stop(&mut *tx, key_id, day)
            .await
            .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))
    }

    async fn reserve_budget(
        &self,
        key_id: &str,
        day: &str,
        want: u64,
        limit: Option<u64>,
        probe: bool,
    ) -> Result<Reservation> {
        let mut tx = self.begin_immediate().await?;
        let grant = sql::reserve_budget(&mut *tx, false, key_id, day, want, limit, probe)
            .await
            .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(grant)
    }
}
