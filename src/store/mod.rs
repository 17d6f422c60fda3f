//! The inventory's persistence behind one trait, [`Backend`].
//!
//! Callers hold a [`Store`] (a cheap handle on some backend) and never learn
//! which backend it is: SQLite ([`sqlite::Sqlite`], bundled, WAL) is the
//! embedded default; a backend shared by several appliances implements the
//! same trait. The contract every backend keeps:
//!
//! - each change of a node is written with its history rows in one
//!   transaction, so a crash leaves both or neither;
//! - a node's lock is its `reservation`, taken by a compare-and-set
//!   ([`Backend::reserve`]: set only where nobody holds it) and released only
//!   by its holder, so two appliances on one database never hold one node;
//! - every node row carries a version that each write checks and moves on,
//!   so a write made on a stale copy fails as [`Error::Conflict`] instead of
//!   silently undoing someone else's change;
//! - [`Backend::subscribe`] moves on every node or port write made through
//!   this backend (SQLite's feed is in-process; a backend shared by several
//!   appliances carries the others' writes too).
//!
//! All methods are blocking — async callers go through [`Store::call`], which
//! runs them on tokio's blocking pool.

pub mod records;
pub mod sqlite;

use std::path::Path;
use std::sync::Arc;

use uuid::Uuid;

use crate::model::{HistoryEntry, Lease, Mac, Node, Port, State};
pub use records::{Kind, Record, RecordFilter, RecordRow, RecordWrite, Taken};

/// Store failures. Not-found, uniqueness violations and conflicts are values
/// the API turns into Ironic's 404 and 409; the rest are internal.
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
    /// A write made on a stale copy of a node (optimistic concurrency).
    #[error("Node {node} was changed by someone else while this change was being made (stored version {found}, the change was made on version {expected}); read the node again and retry")]
    Conflict {
        node: Uuid,
        expected: u64,
        found: u64,
    },
    #[error("{} {ident} could not be found.", kind.label())]
    RecordNotFound { kind: Kind, ident: String },
    #[error("{}", records::duplicate_message(*kind, taken))]
    DuplicateRecord { kind: Kind, taken: Taken },
    #[error("database error: {0}")]
    Database(String),
    #[error("stored record is unreadable: {0}")]
    Corrupt(String),
}

pub type Result<T> = std::result::Result<T, Error>;

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
    pub retired: Option<bool>,
    pub lessee: Option<String>,
    /// Nodes whose owner or lessee is this project.
    pub project: Option<String>,
    /// A substring of the description (case-insensitive, as SQL LIKE).
    pub description_contains: Option<String>,
    pub instance_name: Option<String>,
    pub shard: Option<String>,
    /// Whether the node has a shard at all.
    pub sharded: Option<bool>,
    pub parent_node: Option<String>,
    pub chassis_uuid: Option<Uuid>,
    /// Only nodes without a parent (the API's default: Ironic lists child
    /// nodes only with `include_children` or a `parent_node` filter).
    pub exclude_children: bool,
}

/// Which ports a listing returns.
#[derive(Debug, Clone, Default)]
pub struct PortFilter {
    pub node_uuid: Option<Uuid>,
    pub address: Option<Mac>,
    pub portgroup_uuid: Option<Uuid>,
    /// Ports of nodes in one of these shards (when any are given).
    pub shards: Vec<String>,
    /// Ports of nodes in one of these conductor groups (when any).
    pub conductor_groups: Vec<String>,
    /// Ports whose description contains this text.
    pub description_contains: Option<String>,
}

/// A page request: at most `limit` rows after `marker`, ascending or not,
/// in creation order or by the field `sort` (then creation order).
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub marker: Option<Uuid>,
    pub limit: usize,
    pub descending: bool,
    /// A field of the listed object (the API checks it against the kind's
    /// sortable fields); `None` is creation order.
    pub sort: Option<&'static str>,
}

impl Page {
    /// Every row, in creation order.
    pub const ALL: Page = Page {
        marker: None,
        limit: usize::MAX >> 1,
        descending: false,
        sort: None,
    };
}

/// What [`Backend::reserve`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum Reservation {
    /// The caller holds the node now; this is the node as stored.
    Taken(Box<Node>),
    /// Someone else holds it (their host name).
    HeldBy(String),
}

/// History rows for nodes, written in the same transaction as a change.
pub type NodeNotes<'a> = &'a [(Uuid, HistoryEntry)];

/// Settings the store takes from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// History rows kept per node; older ones are dropped.
    pub history_max_entries: usize,
    /// Reader connections beside the one writer (SQLite).
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

/// A store backend. Every method is blocking and idempotent-unless-said.
pub trait Backend: Send + Sync {
    /// A counter that moves on every node or port write (not on history,
    /// lease or reservation writes): the boot services reload on it.
    fn subscribe(&self) -> tokio::sync::watch::Receiver<u64>;
    /// The schema version of the open database (for the start-up log).
    fn schema_version(&self) -> Result<i64>;

    // ---- nodes
    /// Inserts a new node with its first history row. Not idempotent.
    fn create_node(&self, node: &Node, history: &HistoryEntry) -> Result<()>;
    /// Writes a node (matched by UUID) and its history rows in one
    /// transaction, if the stored version is still `node.version`; returns
    /// the new version. With `release`, the reservation that host holds is
    /// released in the same transaction. The reservation is never written
    /// otherwise.
    fn save_node(
        &self,
        node: &Node,
        history: &[HistoryEntry],
        release: Option<&str>,
    ) -> Result<u64>;
    /// Deletes a node with its ports and history.
    fn delete_node(&self, uuid: Uuid) -> Result<()>;
    /// Finds a node by UUID or name.
    fn get_node(&self, ident: &str) -> Result<Node>;
    /// Lists nodes in creation order, one page at a time.
    fn list_nodes(&self, filter: &NodeFilter, page: Page) -> Result<Vec<Node>>;
    /// How many nodes each shard has (`None`: nodes without one), most
    /// first (Ironic's `/v1/shards`).
    fn shard_counts(&self) -> Result<Vec<(Option<String>, u64)>>;
    /// Every node in one of `states`.
    fn nodes_in_states(&self, states: &[State]) -> Result<Vec<Node>>;
    /// Every node whose reservation `host` holds.
    fn nodes_reserved_by(&self, host: &str) -> Result<Vec<Node>>;
    /// Takes a node's reservation for `host` only if nobody holds it (a
    /// compare-and-set in the database).
    fn reserve(&self, uuid: Uuid, host: &str) -> Result<Reservation>;
    /// Releases the reservation if `host` holds it; returns whether it did.
    fn release(&self, uuid: Uuid, host: &str) -> Result<bool>;
    /// Nodes per provision state (for metrics).
    fn nodes_by_state(&self) -> Result<Vec<(String, u64)>>;
    /// How many nodes and ports there are.
    fn counts(&self) -> Result<(u64, u64)>;

    // ---- ports (each change writes `notes` in the same transaction)
    /// Inserts a port; its node must exist. Not idempotent.
    fn create_port(&self, port: &Port, notes: NodeNotes) -> Result<()>;
    /// Writes a changed port (matched by UUID).
    fn save_port(&self, port: &Port, notes: NodeNotes) -> Result<()>;
    /// Deletes a port.
    fn delete_port(&self, uuid: Uuid, notes: NodeNotes) -> Result<()>;
    /// Finds a port by UUID or MAC address.
    fn get_port(&self, ident: &str) -> Result<Port>;
    /// Lists ports in creation order, one page at a time.
    fn list_ports(&self, filter: &PortFilter, page: Page) -> Result<Vec<Port>>;
    /// Every port with its node.
    fn boot_entries(&self) -> Result<Vec<(Port, Node)>>;

    // ---- the other records (see [`records`])
    /// Inserts a record; its node, if any, must exist. Not idempotent.
    fn insert_record(&self, kind: Kind, row: &RecordRow) -> Result<()>;
    /// Writes a changed record (matched by UUID).
    fn update_record(&self, kind: Kind, row: &RecordRow) -> Result<()>;
    /// Deletes a record.
    fn remove_record(&self, kind: Kind, uuid: Uuid) -> Result<()>;
    /// Finds a record by UUID or name.
    fn find_record(&self, kind: Kind, ident: &str) -> Result<RecordRow>;
    /// Lists records, one page at a time.
    fn select_records(
        &self,
        kind: Kind,
        filter: &RecordFilter,
        page: Page,
    ) -> Result<Vec<RecordRow>>;
    /// [`Backend::save_node`] with record writes in the same transaction
    /// (an allocation and the node it picked, written together or not at
    /// all).
    fn save_node_with(
        &self,
        node: &Node,
        history: &[HistoryEntry],
        release: Option<&str>,
        records: &[RecordWrite],
    ) -> Result<u64>;

    // ---- history
    /// A node's history, oldest first.
    fn node_history(&self, uuid: Uuid) -> Result<Vec<HistoryEntry>>;
    /// Appends history rows (boot-service events) in one transaction; nodes
    /// that no longer exist are skipped. Not idempotent.
    fn append_history(&self, entries: &[(Uuid, HistoryEntry)]) -> Result<()>;

    // ---- DHCP leases
    /// Writes changed leases in one transaction.
    fn save_leases(&self, leases: &[Lease]) -> Result<()>;
    /// Every lease; records that do not read back are skipped with a warning.
    fn load_leases(&self) -> Result<Vec<Lease>>;
}

/// A handle on the inventory's backend. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    backend: Arc<dyn Backend>,
}

impl std::ops::Deref for Store {
    type Target = dyn Backend;
    fn deref(&self) -> &Self::Target {
        self.backend.as_ref()
    }
}

impl Store {
    pub fn new(backend: Arc<dyn Backend>) -> Store {
        Store { backend }
    }

    /// Opens (creating if needed) the embedded SQLite database at `path`.
    pub fn open(path: &Path, options: Options) -> Result<Store> {
        Ok(Store::new(Arc::new(sqlite::Sqlite::open(path, options)?)))
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

    /// A node's ports.
    pub fn node_ports(&self, node: Uuid) -> Result<Vec<Port>> {
        self.list_ports(
            &PortFilter {
                node_uuid: Some(node),
                ..Default::default()
            },
            Page::ALL,
        )
    }
}
