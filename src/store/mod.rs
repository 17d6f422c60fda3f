//! The inventory's persistence: SQLite (bundled, WAL) behind typed methods.
//!
//! This is the only module that names rusqlite. Each node is kept as one JSON
//! document plus the columns that are queried or must be unique; every change
//! of a node is written together with its history rows in one transaction,
//! so a crash leaves either both or neither. One writer connection and a small
//! pool of readers; all methods are blocking — async callers go through
//! [`Store::call`], which runs them on tokio's blocking pool.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use uuid::Uuid;

use crate::model::{HistoryEntry, Mac, Node, Port, State};

/// Store failures. Not-found and uniqueness violations are values the API
/// turns into Ironic's 404 and 409; the rest are internal.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Node {0} could not be found.")]
    NodeNotFound(String),
    #[error("Port {0} could not be found.")]
    PortNotFound(String),
    #[error("A node with name {0} already exists.")]
    DuplicateName(String),
    #[error("A node with UUID {0} already exists.")]
    DuplicateNodeUuid(Uuid),
    #[error("A port with UUID {0} already exists.")]
    DuplicatePortUuid(Uuid),
    #[error("A port with MAC address {0} already exists.")]
    DuplicateMac(Mac),
    #[error("Instance {instance} is already associated with a node, it cannot be associated with this other node {node}")]
    InstanceAssociated { instance: String, node: String },
    #[error("database error: {0}")]
    Database(String),
    #[error("stored record is unreadable: {0}")]
    Corrupt(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Database(e.to_string())
    }
}

/// Which nodes a listing returns.
#[derive(Debug, Clone, Default)]
pub struct NodeFilter {
    pub provision_state: Option<State>,
    pub driver: Option<String>,
    pub maintenance: Option<bool>,
    pub associated: Option<bool>,
    pub instance_uuid: Option<String>,
    pub resource_class: Option<String>,
    pub conductor_group: Option<String>,
    pub fault: Option<String>,
    pub owner: Option<String>,
}

/// Which ports a listing returns.
#[derive(Debug, Clone, Default)]
pub struct PortFilter {
    pub node_uuid: Option<Uuid>,
    pub address: Option<Mac>,
}

/// A page request: at most `limit` rows after `marker`, ascending or not.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub marker: Option<Uuid>,
    pub limit: usize,
    pub descending: bool,
}

/// Schema migrations; entry `i` moves the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: nodes, ports, history
    "CREATE TABLE nodes (
        id INTEGER PRIMARY KEY,
        uuid TEXT NOT NULL UNIQUE,
        name TEXT UNIQUE,
        instance_uuid TEXT UNIQUE,
        driver TEXT NOT NULL,
        provision_state TEXT NOT NULL,
        maintenance INTEGER NOT NULL,
        reservation TEXT,
        resource_class TEXT,
        conductor_group TEXT NOT NULL DEFAULT '',
        fault TEXT,
        owner TEXT,
        doc TEXT NOT NULL
     );
     CREATE INDEX nodes_provision_state ON nodes(provision_state);
     CREATE TABLE ports (
        id INTEGER PRIMARY KEY,
        uuid TEXT NOT NULL UNIQUE,
        address TEXT NOT NULL UNIQUE,
        node_id INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
        doc TEXT NOT NULL
     );
     CREATE INDEX ports_node ON ports(node_id);
     CREATE TABLE node_history (
        id INTEGER PRIMARY KEY,
        node_id INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
        doc TEXT NOT NULL
     );
     CREATE INDEX node_history_node ON node_history(node_id, id);",
    // 2: DHCP leases (one row per address; written in batches)
    "CREATE TABLE dhcp_leases (
        ip TEXT PRIMARY KEY,
        mac TEXT NOT NULL,
        state TEXT NOT NULL,
        expires INTEGER NOT NULL
     );",
];

/// Settings the store takes from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// History rows kept per node; older ones are dropped.
    pub history_max_entries: usize,
    /// Reader connections beside the one writer.
    pub readers: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            history_max_entries: 300,
            readers: 2,
        }
    }
}

/// The inventory store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    options: Options,
    generation: tokio::sync::watch::Sender<u64>,
    /// Rows appended per node since its history was last trimmed.
    trim_debt: Mutex<std::collections::HashMap<i64, u32>>,
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(())
}

fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // A panic while holding a connection cannot leave SQLite inconsistent
    // (transactions roll back on drop), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

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

fn node_from_doc(doc: &str) -> Result<Node> {
    serde_json::from_str(doc).map_err(|e| Error::Corrupt(format!("node document: {e}")))
}

fn port_from_doc(doc: &str) -> Result<Port> {
    serde_json::from_str(doc).map_err(|e| Error::Corrupt(format!("port document: {e}")))
}

fn to_doc<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::Corrupt(e.to_string()))
}

impl Store {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub fn open(path: &Path, options: Options) -> Result<Store> {
        let writer = Connection::open(path)?;
        writer.pragma_update(None, "journal_mode", "WAL")?;
        configure(&writer)?;
        migrate(&writer)?;
        let mut readers = Vec::new();
        for _ in 0..options.readers.max(1) {
            let r = Connection::open(path)?;
            configure(&r)?;
            readers.push(Mutex::new(r));
        }
        Ok(Store {
            inner: Arc::new(Inner {
                writer: Mutex::new(writer),
                readers,
                next_reader: AtomicUsize::new(0),
                options,
                generation: tokio::sync::watch::Sender::new(0),
                trim_debt: Mutex::new(Default::default()),
            }),
        })
    }

    /// A counter that moves on every node or port write (not on history,
    /// lease or other bookkeeping writes): the BootBackend reloads on it.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.generation.subscribe()
    }

    fn changed(&self) {
        self.inner.generation.send_modify(|g| *g += 1);
    }

    /// Inserts a new node with its first history row.
    pub fn create_node(&self, node: &Node, history: &HistoryEntry) -> Result<()> {
        let r = self.create_node_inner(node, history);
        if r.is_ok() {
            self.changed();
        }
        r
    }

    /// Writes a node (matched by UUID) and its history rows in one transaction.
    pub fn save_node(&self, node: &Node, history: &[HistoryEntry]) -> Result<()> {
        let r = self.save_node_inner(node, history);
        if r.is_ok() {
            self.changed();
        }
        r
    }

    /// Deletes a node with its ports and history.
    pub fn delete_node(&self, uuid: Uuid) -> Result<()> {
        let r = self.delete_node_inner(uuid);
        if r.is_ok() {
            self.changed();
        }
        r
    }

    /// Inserts a port; its node must exist.
    pub fn create_port(&self, port: &Port) -> Result<()> {
        let r = self.create_port_inner(port);
        if r.is_ok() {
            self.changed();
        }
        r
    }

    /// Writes a changed port (matched by UUID).
    pub fn save_port(&self, port: &Port) -> Result<()> {
        let r = self.save_port_inner(port);
        if r.is_ok() {
            self.changed();
        }
        r
    }

    /// Deletes a port.
    pub fn delete_port(&self, uuid: Uuid) -> Result<()> {
        let r = self.delete_port_inner(uuid);
        if r.is_ok() {
            self.changed();
        }
        r
    }

    /// Runs blocking store work on tokio's blocking pool.
    pub async fn call<R, F>(&self, f: F) -> R
    where
        F: FnOnce(&Store) -> R + Send + 'static,
        R: Send + 'static,
    {
        let store = self.clone();
        match tokio::task::spawn_blocking(move || f(&store)).await {
            Ok(r) => r,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    fn reader(&self) -> MutexGuard<'_, Connection> {
        let readers = &self.inner.readers;
        let start = self.inner.next_reader.fetch_add(1, Ordering::Relaxed);
        for i in 0..readers.len() {
            if let Ok(guard) = readers[(start + i) % readers.len()].try_lock() {
                return guard;
            }
        }
        lock(&readers[start % readers.len()])
    }

    fn writer(&self) -> MutexGuard<'_, Connection> {
        lock(&self.inner.writer)
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<i64> {
        Ok(self
            .reader()
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    // ---- nodes ----------------------------------------------------------

    fn create_node_inner(&self, node: &Node, history: &HistoryEntry) -> Result<()> {
        let doc = to_doc(node)?;
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let res = tx.execute(
            "INSERT INTO nodes (uuid, name, instance_uuid, driver, provision_state, maintenance,
                                reservation, resource_class, conductor_group, fault, owner, doc)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                node.uuid.to_string(),
                node.name,
                node.instance_uuid,
                node.driver,
                node.provision_state.as_str(),
                node.maintenance,
                node.reservation,
                node.resource_class,
                node.conductor_group,
                node.fault,
                node.owner,
                doc
            ],
        );
        if let Err(e) = res {
            return Err(node_conflict(&tx, &e, node).unwrap_or_else(|| e.into()));
        }
        let id = tx.last_insert_rowid();
        insert_history(&tx, id, history, self.inner.options.history_max_entries)?;
        tx.commit()?;
        Ok(())
    }

    /// Finds a node by UUID or name.
    pub fn get_node(&self, ident: &str) -> Result<Node> {
        let conn = self.reader();
        let doc: Option<String> = match ident.parse::<Uuid>() {
            Ok(u) => conn
                .prepare_cached("SELECT doc FROM nodes WHERE uuid = ?1")?
                .query_row([u.to_string()], |r| r.get(0))
                .optional()?,
            Err(_) => conn
                .prepare_cached("SELECT doc FROM nodes WHERE name = ?1")?
                .query_row([ident], |r| r.get(0))
                .optional()?,
        };
        match doc {
            Some(d) => node_from_doc(&d),
            None => Err(Error::NodeNotFound(ident.to_string())),
        }
    }

    /// Lists nodes in id order (creation order), one page at a time.
    pub fn list_nodes(&self, filter: &NodeFilter, page: Page) -> Result<Vec<Node>> {
        let mut sql = String::from("SELECT doc FROM nodes WHERE 1=1");
        let mut args: Vec<Box<dyn rusqlite::ToSql>> = Vec::new();
        let mut eq = |col: &str, v: Box<dyn rusqlite::ToSql>, sql: &mut String| {
            args.push(v);
            sql.push_str(&format!(" AND {col} = ?{}", args.len()));
        };
        if let Some(s) = filter.provision_state {
            eq("provision_state", Box::new(s.as_str()), &mut sql);
        }
        if let Some(d) = &filter.driver {
            eq("driver", Box::new(d.clone()), &mut sql);
        }
        if let Some(m) = filter.maintenance {
            eq("maintenance", Box::new(m), &mut sql);
        }
        if let Some(i) = &filter.instance_uuid {
            eq("instance_uuid", Box::new(i.clone()), &mut sql);
        }
        if let Some(r) = &filter.resource_class {
            eq("resource_class", Box::new(r.clone()), &mut sql);
        }
        if let Some(g) = &filter.conductor_group {
            eq("conductor_group", Box::new(g.clone()), &mut sql);
        }
        if let Some(f) = &filter.fault {
            eq("fault", Box::new(f.clone()), &mut sql);
        }
        if let Some(o) = &filter.owner {
            eq("owner", Box::new(o.clone()), &mut sql);
        }
        match filter.associated {
            Some(true) => sql.push_str(" AND instance_uuid IS NOT NULL"),
            Some(false) => sql.push_str(" AND instance_uuid IS NULL"),
            None => {}
        }
        let conn = self.reader();
        if let Some(marker) = page.marker {
            let id: Option<i64> = conn
                .prepare_cached("SELECT id FROM nodes WHERE uuid = ?1")?
                .query_row([marker.to_string()], |r| r.get(0))
                .optional()?;
            let id = id.ok_or_else(|| Error::NodeNotFound(marker.to_string()))?;
            args.push(Box::new(id));
            let op = if page.descending { "<" } else { ">" };
            sql.push_str(&format!(" AND id {op} ?{}", args.len()));
        }
        let dir = if page.descending { "DESC" } else { "ASC" };
        sql.push_str(&format!(" ORDER BY id {dir} LIMIT {}", page.limit));
        let mut stmt = conn.prepare_cached(&sql)?;
        let params: Vec<&dyn rusqlite::ToSql> = args.iter().map(|b| b.as_ref()).collect();
        let out = collect(stmt.query(params.as_slice())?, node_from_doc)?;
        Ok(out)
    }

    /// Every node in one of `states`.
    pub fn nodes_in_states(&self, states: &[State]) -> Result<Vec<Node>> {
        let conn = self.reader();
        let mut stmt =
            conn.prepare_cached("SELECT doc FROM nodes WHERE provision_state = ?1 ORDER BY id")?;
        let mut out = Vec::new();
        for s in states {
            out.extend(collect(stmt.query([s.as_str()])?, node_from_doc)?);
        }
        Ok(out)
    }

    /// Every node with a reservation set.
    pub fn reserved_nodes(&self) -> Result<Vec<Node>> {
        let conn = self.reader();
        let mut stmt =
            conn.prepare_cached("SELECT doc FROM nodes WHERE reservation IS NOT NULL")?;
        let out = collect(stmt.query([])?, node_from_doc)?;
        Ok(out)
    }

    fn save_node_inner(&self, node: &Node, history: &[HistoryEntry]) -> Result<()> {
        let doc = to_doc(node)?;
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let res = tx.execute(
            "UPDATE nodes SET name = ?2, instance_uuid = ?3, driver = ?4, provision_state = ?5,
                maintenance = ?6, reservation = ?7, resource_class = ?8, conductor_group = ?9,
                fault = ?10, owner = ?11, doc = ?12
             WHERE uuid = ?1",
            params![
                node.uuid.to_string(),
                node.name,
                node.instance_uuid,
                node.driver,
                node.provision_state.as_str(),
                node.maintenance,
                node.reservation,
                node.resource_class,
                node.conductor_group,
                node.fault,
                node.owner,
                doc
            ],
        );
        let changed = match res {
            Ok(n) => n,
            Err(e) => return Err(node_conflict(&tx, &e, node).unwrap_or_else(|| e.into())),
        };
        if changed == 0 {
            return Err(Error::NodeNotFound(node.uuid.to_string()));
        }
        if !history.is_empty() {
            let id: i64 = tx.query_row(
                "SELECT id FROM nodes WHERE uuid = ?1",
                [node.uuid.to_string()],
                |r| r.get(0),
            )?;
            for h in history {
                insert_history(&tx, id, h, self.inner.options.history_max_entries)?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn delete_node_inner(&self, uuid: Uuid) -> Result<()> {
        let conn = self.writer();
        let n = conn.execute("DELETE FROM nodes WHERE uuid = ?1", [uuid.to_string()])?;
        if n == 0 {
            return Err(Error::NodeNotFound(uuid.to_string()));
        }
        Ok(())
    }

    /// A node's history, oldest first.
    pub fn node_history(&self, uuid: Uuid) -> Result<Vec<HistoryEntry>> {
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

    /// Clears every node's reservation (at start-up: no task survives a
    /// restart). Returns the UUIDs that were reserved.
    pub fn clear_reservations(&self) -> Result<Vec<Uuid>> {
        let reserved = self.reserved_nodes()?;
        let mut out = Vec::new();
        for mut node in reserved {
            node.reservation = None;
            node.target_power_state = None;
            self.save_node(&node, &[])?;
            out.push(node.uuid);
        }
        Ok(out)
    }

    // ---- ports ----------------------------------------------------------

    fn create_port_inner(&self, port: &Port) -> Result<()> {
        let doc = to_doc(port)?;
        let conn = self.writer();
        let node_id: Option<i64> = conn
            .query_row(
                "SELECT id FROM nodes WHERE uuid = ?1",
                [port.node_uuid.to_string()],
                |r| r.get(0),
            )
            .optional()?;
        let node_id = node_id.ok_or_else(|| Error::NodeNotFound(port.node_uuid.to_string()))?;
        let res = conn.execute(
            "INSERT INTO ports (uuid, address, node_id, doc) VALUES (?1, ?2, ?3, ?4)",
            params![
                port.uuid.to_string(),
                port.address.to_string(),
                node_id,
                doc
            ],
        );
        match res {
            Ok(_) => Ok(()),
            Err(e) => Err(match unique_violation(&e) {
                Some(m) if m.contains("ports.address") => Error::DuplicateMac(port.address),
                Some(m) if m.contains("ports.uuid") => Error::DuplicatePortUuid(port.uuid),
                _ => e.into(),
            }),
        }
    }

    /// Finds a port by UUID or MAC address.
    pub fn get_port(&self, ident: &str) -> Result<Port> {
        let conn = self.reader();
        let doc: Option<String> = if let Ok(u) = ident.parse::<Uuid>() {
            conn.prepare_cached("SELECT doc FROM ports WHERE uuid = ?1")?
                .query_row([u.to_string()], |r| r.get(0))
                .optional()?
        } else if let Ok(m) = ident.parse::<Mac>() {
            conn.prepare_cached("SELECT doc FROM ports WHERE address = ?1")?
                .query_row([m.to_string()], |r| r.get(0))
                .optional()?
        } else {
            None
        };
        match doc {
            Some(d) => port_from_doc(&d),
            None => Err(Error::PortNotFound(ident.to_string())),
        }
    }

    /// Lists ports in creation order, one page at a time.
    pub fn list_ports(&self, filter: &PortFilter, page: Page) -> Result<Vec<Port>> {
        let conn = self.reader();
        let mut sql =
            String::from("SELECT p.doc FROM ports p JOIN nodes n ON n.id = p.node_id WHERE 1=1");
        let mut args: Vec<String> = Vec::new();
        if let Some(n) = filter.node_uuid {
            args.push(n.to_string());
            sql.push_str(&format!(" AND n.uuid = ?{}", args.len()));
        }
        if let Some(a) = filter.address {
            args.push(a.to_string());
            sql.push_str(&format!(" AND p.address = ?{}", args.len()));
        }
        if let Some(m) = page.marker {
            let known: Option<i64> = conn
                .prepare_cached("SELECT id FROM ports WHERE uuid = ?1")?
                .query_row([m.to_string()], |r| r.get(0))
                .optional()?;
            if known.is_none() {
                return Err(Error::PortNotFound(m.to_string()));
            }
            args.push(m.to_string());
            let op = if page.descending { "<" } else { ">" };
            sql.push_str(&format!(
                " AND p.id {op} (SELECT id FROM ports WHERE uuid = ?{})",
                args.len()
            ));
        }
        let dir = if page.descending { "DESC" } else { "ASC" };
        sql.push_str(&format!(" ORDER BY p.id {dir} LIMIT {}", page.limit));
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query(rusqlite::params_from_iter(args.iter()))?;
        let out = collect(rows, port_from_doc)?;
        Ok(out)
    }

    fn save_port_inner(&self, port: &Port) -> Result<()> {
        let doc = to_doc(port)?;
        let conn = self.writer();
        let node_id: Option<i64> = conn
            .query_row(
                "SELECT id FROM nodes WHERE uuid = ?1",
                [port.node_uuid.to_string()],
                |r| r.get(0),
            )
            .optional()?;
        let node_id = node_id.ok_or_else(|| Error::NodeNotFound(port.node_uuid.to_string()))?;
        let res = conn.execute(
            "UPDATE ports SET address = ?2, node_id = ?3, doc = ?4 WHERE uuid = ?1",
            params![
                port.uuid.to_string(),
                port.address.to_string(),
                node_id,
                doc
            ],
        );
        match res {
            Ok(0) => Err(Error::PortNotFound(port.uuid.to_string())),
            Ok(_) => Ok(()),
            Err(e) => Err(match unique_violation(&e) {
                Some(m) if m.contains("ports.address") => Error::DuplicateMac(port.address),
                _ => e.into(),
            }),
        }
    }

    fn delete_port_inner(&self, uuid: Uuid) -> Result<()> {
        let conn = self.writer();
        let n = conn.execute("DELETE FROM ports WHERE uuid = ?1", [uuid.to_string()])?;
        if n == 0 {
            return Err(Error::PortNotFound(uuid.to_string()));
        }
        Ok(())
    }

    /// Counts nodes and ports (for start-up logging and tests).
    /// Nodes per provision state (for metrics).
    pub fn nodes_by_state(&self) -> Result<Vec<(String, u64)>> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT provision_state, count(*) FROM nodes GROUP BY provision_state ORDER BY provision_state",
        )?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let n: i64 = r.get(1)?;
            out.push((r.get::<_, String>(0)?, n as u64));
        }
        Ok(out)
    }

    pub fn counts(&self) -> Result<(u64, u64)> {
        let conn = self.reader();
        let nodes: i64 = conn.query_row("SELECT count(*) FROM nodes", [], |r| r.get(0))?;
        let ports: i64 = conn.query_row("SELECT count(*) FROM ports", [], |r| r.get(0))?;
        Ok((nodes as u64, ports as u64))
    }
}

fn node_conflict(tx: &Connection, e: &rusqlite::Error, node: &Node) -> Option<Error> {
    let msg = unique_violation(e)?;
    if msg.contains("nodes.name") {
        return Some(Error::DuplicateName(node.name.clone().unwrap_or_default()));
    }
    if msg.contains("nodes.uuid") {
        return Some(Error::DuplicateNodeUuid(node.uuid));
    }
    if msg.contains("nodes.instance_uuid") {
        let instance = node.instance_uuid.clone().unwrap_or_default();
        let other: Option<String> = tx
            .query_row(
                "SELECT uuid FROM nodes WHERE instance_uuid = ?1",
                [&instance],
                |r| r.get(0),
            )
            .optional()
            .ok()
            .flatten();
        return Some(Error::InstanceAssociated {
            instance,
            node: other.unwrap_or_default(),
        });
    }
    None
}

/// A DHCP lease row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    pub ip: std::net::Ipv4Addr,
    pub mac: Mac,
    pub state: String,
    pub expires: u64,
}

impl Store {
    /// Every port with its node, for the BootBackend.
    pub fn boot_entries(&self) -> Result<Vec<(Port, Node)>> {
        let conn = self.reader();
        let mut stmt = conn
            .prepare_cached("SELECT p.doc, n.doc FROM ports p JOIN nodes n ON n.id = p.node_id")?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let p: String = r.get(0)?;
            let n: String = r.get(1)?;
            out.push((port_from_doc(&p)?, node_from_doc(&n)?));
        }
        Ok(out)
    }

    /// Appends history rows to nodes (boot-service events), in one
    /// transaction. Nodes that no longer exist are skipped. To keep a flood
    /// of events cheap, a node's history is trimmed back to
    /// `history_max_entries` once every `TRIM_EVERY` appended rows, so it
    /// may briefly hold up to that many more.
    pub fn append_history(&self, entries: &[(Uuid, HistoryEntry)]) -> Result<()> {
        const TRIM_EVERY: u32 = 32;
        let keep = self.inner.options.history_max_entries;
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut ids: std::collections::HashMap<Uuid, Option<i64>> = Default::default();
        let mut debt = self
            .inner
            .trim_debt
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if debt.len() > 100_000 {
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

    /// Writes changed DHCP leases in one transaction.
    pub fn save_leases(&self, leases: &[LeaseRow]) -> Result<()> {
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for l in leases {
            tx.prepare_cached(
                "INSERT INTO dhcp_leases (ip, mac, state, expires) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(ip) DO UPDATE SET mac = ?2, state = ?3, expires = ?4",
            )?
            .execute(params![
                l.ip.to_string(),
                l.mac.to_string(),
                l.state,
                l.expires as i64
            ])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Every DHCP lease row; rows that do not parse are skipped with a warning.
    pub fn load_leases(&self) -> Result<Vec<LeaseRow>> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached("SELECT ip, mac, state, expires FROM dhcp_leases")?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let (ip, mac, state, expires): (String, String, String, i64) =
                (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
            match (ip.parse(), mac.parse()) {
                (Ok(ip), Ok(mac)) => out.push(LeaseRow {
                    ip,
                    mac,
                    state,
                    expires: expires.max(0) as u64,
                }),
                _ => tracing::warn!(%ip, %mac, "skipping an unreadable DHCP lease row"),
            }
        }
        Ok(out)
    }
}

fn insert_history(tx: &Connection, node_id: i64, h: &HistoryEntry, keep: usize) -> Result<()> {
    let doc = to_doc(h)?;
    tx.prepare_cached("INSERT INTO node_history (node_id, doc) VALUES (?1, ?2)")?
        .execute(params![node_id, doc])?;
    trim_history(tx, node_id, keep)
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

fn migrate(conn: &Connection) -> Result<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(Error::Database(format!(
            "database schema version {version} is newer than this rackboot understands ({known}); \
             run a newer rackboot or restore a backup"
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {sql}; PRAGMA user_version = {}; COMMIT;",
            i + 1
        ))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Interfaces, Severity};

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("t.db"), Options::default()).unwrap();
        (dir, s)
    }

    fn node(name: &str) -> Node {
        let mut n = Node::new(
            Uuid::new_v4(),
            "fake-hardware",
            Interfaces::default(),
            State::Enroll,
            crate::model::now(),
        );
        n.name = Some(name.to_string());
        n
    }

    fn h(e: &str) -> HistoryEntry {
        HistoryEntry::new(Severity::Info, "provisioning", e)
    }

    #[test]
    fn node_round_trip_by_uuid_and_name() {
        let (_d, s) = store();
        let n = node("a");
        s.create_node(&n, &h("created")).unwrap();
        assert_eq!(s.get_node("a").unwrap(), n);
        assert_eq!(s.get_node(&n.uuid.to_string()).unwrap(), n);
        assert!(matches!(s.get_node("b"), Err(Error::NodeNotFound(_))));
        assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len() as i64);
    }

    #[test]
    fn duplicates_are_named() {
        let (_d, s) = store();
        s.create_node(&node("a"), &h("c")).unwrap();
        assert!(
            matches!(s.create_node(&node("a"), &h("c")), Err(Error::DuplicateName(n)) if n == "a")
        );
        let n = node("b");
        s.create_node(&n, &h("c")).unwrap();
        let mac: Mac = "52:54:00:00:00:01".parse().unwrap();
        let port = |uuid| Port {
            uuid,
            ..Port::new(mac, n.uuid)
        };
        s.create_port(&port(Uuid::new_v4())).unwrap();
        assert!(
            matches!(s.create_port(&port(Uuid::new_v4())), Err(Error::DuplicateMac(m)) if m == mac)
        );
        assert_eq!(s.get_port("52:54:00:00:00:01").unwrap().node_uuid, n.uuid);
        s.delete_node(n.uuid).unwrap();
        assert_eq!(s.counts().unwrap(), (1, 0), "ports go with their node");
    }

    #[test]
    fn history_is_written_with_the_change_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(
            &dir.path().join("t.db"),
            Options {
                history_max_entries: 3,
                readers: 1,
            },
        )
        .unwrap();
        let mut n = node("a");
        s.create_node(&n, &h("0")).unwrap();
        for i in 1..6 {
            n.provision_state = State::Verifying;
            s.save_node(&n, &[h(&i.to_string())]).unwrap();
        }
        let events: Vec<String> = s
            .node_history(n.uuid)
            .unwrap()
            .into_iter()
            .map(|e| e.event)
            .collect();
        assert_eq!(events, ["3", "4", "5"]);
        assert_eq!(s.get_node("a").unwrap().provision_state, State::Verifying);
    }

    #[test]
    fn pages_follow_the_marker() {
        let (_d, s) = store();
        let mut uuids = Vec::new();
        for i in 0..5 {
            let n = node(&format!("n{i}"));
            uuids.push(n.uuid);
            s.create_node(&n, &h("c")).unwrap();
        }
        let page = |marker| Page {
            marker,
            limit: 2,
            descending: false,
        };
        let p1 = s.list_nodes(&NodeFilter::default(), page(None)).unwrap();
        assert_eq!(p1.iter().map(|n| n.uuid).collect::<Vec<_>>(), &uuids[0..2]);
        let p2 = s
            .list_nodes(&NodeFilter::default(), page(Some(uuids[1])))
            .unwrap();
        assert_eq!(p2.iter().map(|n| n.uuid).collect::<Vec<_>>(), &uuids[2..4]);
        let f = NodeFilter {
            provision_state: Some(State::Active),
            ..Default::default()
        };
        assert!(s.list_nodes(&f, page(None)).unwrap().is_empty());
    }

    #[test]
    fn a_newer_schema_is_refused_not_clobbered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        drop(Store::open(&path, Options::default()).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        let err = Store::open(&path, Options::default())
            .err()
            .expect("refused");
        assert!(
            err.to_string()
                .contains("newer than this rackboot understands"),
            "{err}"
        );
    }

    #[test]
    fn reopening_keeps_everything() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let n = node("a");
        {
            let s = Store::open(&path, Options::default()).unwrap();
            s.create_node(&n, &h("c")).unwrap();
        }
        let s = Store::open(&path, Options::default()).unwrap();
        assert_eq!(s.get_node("a").unwrap(), n);
    }
}
