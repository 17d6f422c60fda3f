//! DHCP lease rows: one per address, written in batches by the DHCP server.

use rusqlite::{params, TransactionBehavior};

use super::Sqlite;
use crate::model::{Lease, LeaseState, Mac};
use crate::store::Result;

impl Sqlite {
    pub(super) fn upsert_leases(&self, leases: &[Lease]) -> Result<()> {
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for l in leases {
            tx.prepare_cached(
                "INSERT INTO dhcp_leases (ip, mac, state, expires) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(ip) DO UPDATE SET mac = ?2, state = ?3, expires = ?4",
            )?
            .execute(params![
                l.ip.to_string(),
                Mac(l.mac).to_string(),
                l.state.as_str(),
                l.expires as i64
            ])?;
        }
        tx.commit()?;
        Ok(())
    }

    pub(super) fn select_leases(&self) -> Result<Vec<Lease>> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached("SELECT ip, mac, state, expires FROM dhcp_leases")?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let (ip, mac, state, expires): (String, String, String, i64) =
                (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
            match (ip.parse(), mac.parse::<Mac>(), LeaseState::parse(&state)) {
                (Ok(ip), Ok(mac), Some(state)) => out.push(Lease {
                    ip,
                    mac: mac.0,
                    state,
                    expires: expires.max(0) as u64,
                }),
                _ => tracing::warn!(%ip, %mac, %state, "skipping an unreadable DHCP lease row"),
            }
        }
        Ok(out)
    }
}
