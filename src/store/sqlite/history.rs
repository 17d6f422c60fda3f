//! Node history rows: written with the change they record, appended in
//! batches for boot-service events, and trimmed to `history_max_entries`.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use uuid::Uuid;

use super::{collect, to_doc, Sqlite};
use crate::model::HistoryEntry;
use crate::store::{Error, NodeNotes, Result};

/// Appended rows after which a node's history is trimmed again.
const TRIM_EVERY: u32 = 32;
/// Nodes whose trim debt is remembered, at most (then forgotten at once).
const MAX_TRIM_DEBTS: usize = 100_000;

pub(super) fn insert_history(
    tx: &Connection,
    node_id: i64,
    h: &HistoryEntry,
    keep: usize,
) -> Result<()> {
    let doc = to_doc(h)?;
    tx.prepare_cached("INSERT INTO node_history (node_id, doc) VALUES (?1, ?2)")?
        .execute(params![node_id, doc])?;
    trim_history(tx, node_id, keep)
}

/// Writes notes on the nodes they name (skipping nodes that are gone).
pub(super) fn note_nodes(tx: &Connection, notes: NodeNotes, keep: usize) -> Result<()> {
    for (uuid, h) in notes {
        let id: Option<i64> = tx
            .prepare_cached("SELECT id FROM nodes WHERE uuid = ?1")?
            .query_row([uuid.to_string()], |r| r.get(0))
            .optional()?;
        if let Some(id) = id {
            insert_history(tx, id, h, keep)?;
        }
    }
    Ok(())
}

/// Drops a node's history rows beyond the newest `keep`.
fn trim_history(tx: &Connection, node_id: i64, keep: usize) -> Result<()> {
    tx.prepare_cached(
        "DELETE FROM node_history WHERE node_id = ?1 AND id <=
           (SELECT id FROM node_history WHERE node_id = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
    )?
    .execute(params![node_id, keep as i64])?;
    Ok(())
}

impl Sqlite {
    pub(super) fn select_history(&self, uuid: Uuid) -> Result<Vec<HistoryEntry>> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT h.doc FROM node_history h JOIN nodes n ON n.id = h.node_id
             WHERE n.uuid = ?1 ORDER BY h.id",
        )?;
        let out = collect(stmt.query([uuid.to_string()])?, |doc| {
            serde_json::from_str(doc).map_err(|e| Error::Corrupt(format!("history: {e}")))
        })?;
        Ok(out)
    }

    /// To keep a flood of events cheap, a node's history is trimmed back to
    /// `history_max_entries` once every `TRIM_EVERY` appended rows, so it
    /// may briefly hold up to that many more.
    pub(super) fn append(&self, entries: &[(Uuid, HistoryEntry)]) -> Result<()> {
        let keep = self.options.history_max_entries;
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut ids: std::collections::HashMap<Uuid, Option<i64>> = Default::default();
        let mut debt = self.trim_debt.lock().unwrap_or_else(|p| p.into_inner());
        if debt.len() > MAX_TRIM_DEBTS {
            debt.clear();
        }
        for (uuid, h) in entries {
            let id = match ids.get(uuid) {
                Some(id) => *id,
                None => {
                    let id: Option<i64> = tx
                        .prepare_cached("SELECT id FROM nodes WHERE uuid = ?1")?
                        .query_row([uuid.to_string()], |r| r.get(0))
                        .optional()?;
                    ids.insert(*uuid, id);
                    id
                }
            };
            let Some(id) = id else { continue };
            tx.prepare_cached("INSERT INTO node_history (node_id, doc) VALUES (?1, ?2)")?
                .execute(params![id, to_doc(h)?])?;
            let d = debt.entry(id).or_insert(0);
            *d += 1;
            if *d >= TRIM_EVERY {
                *d = 0;
                trim_history(&tx, id, keep)?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}
