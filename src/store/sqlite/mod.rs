//! The embedded SQLite backend (rusqlite, bundled, WAL): the only code that
//! names rusqlite. Each node is kept as one JSON document plus the columns
//! that are queried, must be unique, or are kept outside the document (the
//! reservation and the row version). One writer connection and a small pool
//! of readers; several processes may open one database file, and the
//! reservation compare-and-set and version checks hold across them.

mod history;
mod leases;
mod nodes;
mod ports;
mod records;
mod schema;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use rusqlite::Connection;
use uuid::Uuid;

use super::{
    Backend, Error, Kind, NodeFilter, NodeNotes, Options, Page, PortFilter, RecordFilter,
    RecordRow, RecordWrite, Reservation, Result,
};
use crate::model::{HistoryEntry, Lease, Node, Port, State};

/// How long a connection waits for another process's write lock (SQLite's
/// busy timeout) before the write fails as a database error.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Database(e.to_string())
    }
}

/// The SQLite backend.
pub struct Sqlite {
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    options: Options,
    generation: tokio::sync::watch::Sender<u64>,
    /// Rows appended per node since its history was last trimmed.
    trim_debt: Mutex<std::collections::HashMap<i64, u32>>,
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(())
}

fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // A panic while holding a connection cannot leave SQLite inconsistent
    // (transactions roll back on drop), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The constraint a failed write violated, from SQLite's message.
fn unique_violation(e: &rusqlite::Error) -> Option<String> {
    match e {
        rusqlite::Error::SqliteFailure(f, Some(msg))
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Some(msg.clone())
        }
        _ => None,
    }
}

/// Reads every row's first column (a JSON document) through `parse`.
fn collect<T>(mut rows: rusqlite::Rows<'_>, parse: fn(&str) -> Result<T>) -> Result<Vec<T>> {
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let doc: String = row.get(0)?;
        out.push(parse(&doc)?);
    }
    Ok(out)
}

fn to_doc<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::Corrupt(e.to_string()))
}

impl Sqlite {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub fn open(path: &Path, options: Options) -> Result<Sqlite> {
        let writer = Connection::open(path)?;
        writer.pragma_update(None, "journal_mode", "WAL")?;
        configure(&writer)?;
        schema::migrate(&writer)?;
        let mut readers = Vec::new();
        for _ in 0..options.readers.max(1) {
            let r = Connection::open(path)?;
            configure(&r)?;
            readers.push(Mutex::new(r));
        }
        Ok(Sqlite {
            writer: Mutex::new(writer),
            readers,
            next_reader: AtomicUsize::new(0),
            options,
            generation: tokio::sync::watch::Sender::new(0),
            trim_debt: Mutex::new(Default::default()),
        })
    }

    fn changed(&self) {
        self.generation.send_modify(|g| *g += 1);
    }

    /// Runs a write and, if it succeeded, moves the change feed on.
    fn notify<T>(&self, r: Result<T>) -> Result<T> {
        if r.is_ok() {
            self.changed();
        }
        r
    }

    fn reader(&self) -> MutexGuard<'_, Connection> {
        let readers = &self.readers;
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        for i in 0..readers.len() {
            if let Ok(guard) = readers[(start + i) % readers.len()].try_lock() {
                return guard;
            }
        }
        lock(&readers[start % readers.len()])
    }

    fn writer(&self) -> MutexGuard<'_, Connection> {
        lock(&self.writer)
    }
}

impl Backend for Sqlite {
    fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.generation.subscribe()
    }

    fn schema_version(&self) -> Result<i64> {
        schema::user_version(&self.reader())
    }

    fn create_node(&self, node: &Node, history: &HistoryEntry) -> Result<()> {
        let r = self.insert_node(node, history);
        self.notify(r)
    }

    fn save_node(
        &self,
        node: &Node,
        history: &[HistoryEntry],
        release: Option<&str>,
    ) -> Result<u64> {
        let r = self.update_node(node, history, release, &[]);
        self.notify(r)
    }

    fn save_node_with(
        &self,
        node: &Node,
        history: &[HistoryEntry],
        release: Option<&str>,
        records: &[RecordWrite],
    ) -> Result<u64> {
        let r = self.update_node(node, history, release, records);
        self.notify(r)
    }

    fn insert_record(&self, kind: Kind, row: &RecordRow) -> Result<()> {
        let r = self.put_record(kind, row, true);
        self.notify(r)
    }

    fn update_record(&self, kind: Kind, row: &RecordRow) -> Result<()> {
        let r = self.put_record(kind, row, false);
        self.notify(r)
    }

    fn remove_record(&self, kind: Kind, uuid: Uuid) -> Result<()> {
        let r = self.drop_record(kind, uuid);
        self.notify(r)
    }

    fn find_record(&self, kind: Kind, ident: &str) -> Result<RecordRow> {
        self.get_record_row(kind, ident)
    }

    fn select_records(
        &self,
        kind: Kind,
        filter: &RecordFilter,
        page: Page,
    ) -> Result<Vec<RecordRow>> {
        self.list_record_rows(kind, filter, page)
    }

    fn delete_node(&self, uuid: Uuid) -> Result<()> {
        let r = self.remove_node(uuid);
        self.notify(r)
    }

    fn get_node(&self, ident: &str) -> Result<Node> {
        self.find_node(ident)
    }

    fn list_nodes(&self, filter: &NodeFilter, page: Page) -> Result<Vec<Node>> {
        self.select_nodes(filter, page)
    }

    fn shard_counts(&self) -> Result<Vec<(Option<String>, u64)>> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT json_extract(doc, '$.shard') AS shard, count(*) AS n FROM nodes
             GROUP BY shard ORDER BY n DESC, shard",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, Option<String>>(0)?, r.get::<_, i64>(1)? as u64))
        })?;
        Ok(rows.collect::<std::result::Result<Vec<_>, _>>()?)
    }

    fn nodes_in_states(&self, states: &[State]) -> Result<Vec<Node>> {
        self.select_in_states(states)
    }

    fn nodes_reserved_by(&self, host: &str) -> Result<Vec<Node>> {
        self.select_reserved_by(host)
    }

    fn reserve(&self, uuid: Uuid, host: &str) -> Result<Reservation> {
        self.compare_and_reserve(uuid, host)
    }

    fn release(&self, uuid: Uuid, host: &str) -> Result<bool> {
        self.release_reservation(uuid, host)
    }

    fn nodes_by_state(&self) -> Result<Vec<(String, u64)>> {
        self.count_by_state()
    }

    fn counts(&self) -> Result<(u64, u64)> {
        let conn = self.reader();
        let nodes: i64 = conn.query_row("SELECT count(*) FROM nodes", [], |r| r.get(0))?;
        let ports: i64 = conn.query_row("SELECT count(*) FROM ports", [], |r| r.get(0))?;
        Ok((nodes as u64, ports as u64))
    }

    fn create_port(&self, port: &Port, notes: NodeNotes) -> Result<()> {
        let r = self.insert_port(port, notes);
        self.notify(r)
    }

    fn save_port(&self, port: &Port, notes: NodeNotes) -> Result<()> {
        let r = self.update_port(port, notes);
        self.notify(r)
    }

    fn delete_port(&self, uuid: Uuid, notes: NodeNotes) -> Result<()> {
        let r = self.remove_port(uuid, notes);
        self.notify(r)
    }

    fn get_port(&self, ident: &str) -> Result<Port> {
        self.find_port(ident)
    }

    fn list_ports(&self, filter: &PortFilter, page: Page) -> Result<Vec<Port>> {
        self.select_ports(filter, page)
    }

    fn boot_entries(&self) -> Result<Vec<(Port, Node)>> {
        self.select_boot_entries()
    }

    fn node_history(&self, uuid: Uuid) -> Result<Vec<HistoryEntry>> {
        self.select_history(uuid)
    }

    fn append_history(&self, entries: &[(Uuid, HistoryEntry)]) -> Result<()> {
        self.append(entries)
    }

    fn save_leases(&self, leases: &[Lease]) -> Result<()> {
        self.upsert_leases(leases)
    }

    fn load_leases(&self) -> Result<Vec<Lease>> {
        self.select_leases()
    }
}

#[cfg(test)]
mod tests;
