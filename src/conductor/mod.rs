//! The conductor: the only writer of nodes and ports, and of
//! `provision_state` only through [`states::next`].
//!
//! Every verb takes the node's lock (Ironic's `reservation`, a
//! compare-and-set in the store), moves the node with [`states::next`] and
//! commits the transient state, its target and a history row in one
//! transaction *before* the caller is answered; a worker task then runs the
//! workflow through the node's driver interfaces and commits the outcome and
//! the lock's release the same way. A busy node answers `NodeLocked`. At
//! start-up, the nodes this appliance held in transient states are failed as
//! Ironic fails them, with a `last_error` saying the appliance restarted.
//!
//! Files: `locking` (reservations), `recovery` (start-up, drain), `nodes`,
//! `ports`, `provision` (verbs and their checks), `callbacks` (heartbeat,
//! call-back timeouts), `power` (power, boot device, validation), `workers`
//! (launch and outcome), `workflows` (what a worker runs), `sync` (power
//! state), `update` (node JSON patch).

mod agent;
pub mod agent_clean;
pub mod agent_client;
pub mod agent_deploy;
pub mod allocations;
mod callbacks;
pub mod inspection;
mod locking;
mod nodes;
mod ports;
mod power;
mod provision;
mod recovery;
pub mod sync;
pub mod update;
mod vifs;
mod vmedia;
mod volume;
mod workers;
mod workflows;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{Notify, Semaphore};
use uuid::Uuid;

use crate::drivers::{self, Bundle, DeployOutcome, Registry, Task};
use crate::model::states::{self, Event, State};
use crate::model::{internal, now, HistoryEntry, Interfaces, Node, PowerState, Severity};
use crate::store::{self, Store};
use workers::Job;

use locking::LockGuard;
pub use ports::{bad_mac, patch_port};

pub use allocations::AllocationRequest;
pub use callbacks::Heartbeat;
pub use update::PatchOp;
pub use vifs::VifTarget;
pub use volume::VolumeChange;

/// Conductor failures, each mapped to one Ironic error by the API.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error("Node {node} is locked by host {host}, please retry after the current operation is completed.")]
    NodeLocked { node: String, host: String },
    #[error("The requested action \"{action}\" can not be performed on node \"{node}\" while it is in state \"{state}\".")]
    InvalidStateRequested {
        action: String,
        node: String,
        state: String,
    },
    /// A conflict with the node's current state (Ironic's InvalidState, 409).
    #[error("{0}")]
    InvalidState(String),
    #[error("The {action} action can not be performed on node {node} because it is in maintenance mode.")]
    NodeInMaintenance { action: String, node: String },
    #[error("Node {node} is protected and cannot be undeployed, rebuilt or deleted")]
    NodeProtected { node: String },
    #[error("Node {node} is associated with instance {instance}.")]
    NodeAssociated { node: String, instance: String },
    /// Bad input (Ironic's InvalidParameterValue, 400).
    #[error("{0}")]
    Invalid(String),
    /// A request refused to protect a production machine (400).
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Driver(#[from] drivers::ChoiceError),
    #[error("Node {node} doesn't have a trait '{name}'")]
    TraitNotFound { node: String, name: String },
    #[error("No free conductor workers available")]
    NoFreeWorker,
    #[error("The appliance is shutting down; retry once it is back")]
    ShuttingDown,
}

pub type Result<T> = std::result::Result<T, Error>;

impl From<crate::model::input::InvalidInput> for Error {
    fn from(e: crate::model::input::InvalidInput) -> Self {
        Error::Invalid(e.0)
    }
}

/// Conductor settings from the configuration.
/// Where the conductor reads the time for deadlines it stores (unix
/// seconds, kept across restarts).
#[derive(Debug, Clone, Copy)]
pub enum Clock {
    /// The wall clock, read at every look (so a clock set by NTP after
    /// start-up is followed).
    Wall,
    /// Unix second `at` when tokio's clock read `start`, moved on by tokio's
    /// clock: paused time in tests moves deadlines too.
    #[cfg(test)]
    Tokio {
        start: tokio::time::Instant,
        at: i64,
    },
}

impl Clock {
    /// Tokio's clock, starting now.
    #[cfg(test)]
    pub fn tokio() -> Clock {
        Clock::Tokio {
            start: tokio::time::Instant::now(),
            at: jiff::Timestamp::now().as_second(),
        }
    }

    pub fn unix_now(&self) -> i64 {
        match self {
            Clock::Wall => jiff::Timestamp::now().as_second(),
            #[cfg(test)]
            Clock::Tokio { start, at } => at + start.elapsed().as_secs() as i64,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// This appliance's name, shown as the `reservation` and `conductor`.
    pub host: String,
    /// Reservations of other host names that start-up recovery takes over
    /// as this appliance's own (an appliance renamed, or gone for good).
    pub take_over_hosts: Vec<String>,
    /// Where deadlines read the time.
    pub clock: Clock,
    /// Clean nodes on provide and undeploy (default off).
    pub automated_clean: bool,
    /// Workflows that may run at once.
    pub max_workers: usize,
    /// How long a request waits for a busy node's lock before NodeLocked.
    pub node_locked_wait: Duration,
    /// How long a verb waits for a quick workflow to finish before answering,
    /// so a client polling at once already sees the end state.
    pub answer_wait: Duration,
    /// How long a node may wait in `wait call-back` for its heartbeat.
    pub deploy_callback_timeout: Duration,
    /// How long a node may wait in `clean wait` for its heartbeat.
    pub clean_callback_timeout: Duration,
    /// How long a node may wait in `inspect wait` for its data (0: forever).
    pub inspect_wait_timeout: Duration,
    /// What inspection does with the agent's data.
    pub inspection: crate::inspection::Settings,
    /// Power the node off once inspection data is processed.
    pub inspection_power_off: bool,
    /// Discovery of unknown machines (None: off).
    pub discovery: Option<Discovery>,
    /// The agent command client's limits.
    pub agent: agent_client::AgentSettings,
    /// Priorities of the agent's clean steps that replace its own
    /// (`interface.step` -> priority; 0 keeps a step out of cleaning).
    pub clean_step_overrides: std::collections::BTreeMap<String, u64>,
    /// Interface limits.
    pub drivers: drivers::Settings,
    /// The power-state sync loop.
    pub sync: sync::SyncSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            host: "rackboot".into(),
            take_over_hosts: Vec::new(),
            clock: Clock::Wall,
            automated_clean: false,
            max_workers: 256,
            node_locked_wait: Duration::from_secs(1),
            answer_wait: Duration::from_millis(250),
            deploy_callback_timeout: Duration::from_secs(1800),
            clean_callback_timeout: Duration::from_secs(1800),
            inspect_wait_timeout: Duration::from_secs(1800),
            inspection: crate::inspection::Settings::default(),
            inspection_power_off: true,
            discovery: None,
            agent: agent_client::AgentSettings::default(),
            clean_step_overrides: [("deploy.erase_devices".to_string(), 0)].into(),
            sync: sync::SyncSettings::default(),
            drivers: drivers::Settings::default(),
        }
    }
}

/// What discovered nodes get.
#[derive(Debug, Clone)]
pub struct Discovery {
    /// Their hardware type.
    pub driver: String,
    pub resource_class: Option<String>,
}

/// The `extra` key through which a `baremetal` user consents, once, to a
/// destructive action on an adopted node.
pub const CONSENT_KEY: &str = "rackboot_allow_destructive";

/// Options of a provisioning request beyond its target.
#[derive(Debug, Clone, Default)]
pub struct ProvisionOptions {
    /// Explicit consent to a destructive action on an adopted node.
    pub confirm_destructive: bool,
    /// Who asked (for the history).
    pub user: Option<String>,
    /// `configdrive` given with `active` or `rebuild` (a JSON document, a
    /// URL, or a gzipped base64 ISO), kept in `instance_info/configdrive`.
    pub configdrive: Option<Value>,
    /// The steps of a manual cleaning (`clean`), checked by the API.
    pub clean_steps: Option<Vec<Value>>,
    /// `deploy_steps` given with `active` or `rebuild`, checked by the API.
    pub deploy_steps: Option<Vec<Value>>,
}

/// The conductor. Cheap to clone.
#[derive(Clone)]
pub struct Conductor {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    registry: Arc<Registry>,
    settings: Settings,
    http: reqwest::Client,
    /// Calls ironic-python-agent's command API.
    agent: agent_client::AgentClient,
    /// Signalled whenever this conductor releases a node's lock.
    released: Notify,

    workers: Arc<Semaphore>,
    /// When this conductor started (its `created_at` as a conductor).
    started_at: String,
    /// Taken by each allocation's pick, so picks here take turns.
    allocating: tokio::sync::Mutex<()>,
    /// Taken by each discovery, so two boots of one machine make one node.
    discovering: tokio::sync::Mutex<()>,
    running: AtomicUsize,
    idle: Notify,
    stopping: AtomicBool,
}

/// What goes into a node's history also goes to the log, once, as it is
/// saved (events a workflow noted but dropped, such as the sync loop's
/// routine reads, stay at debug level).
fn log_history(node: &Node, history: &[HistoryEntry]) {
    for h in history {
        match h.severity {
            Severity::Error => {
                tracing::warn!(node = %node.uuid, event_type = %h.event_type, "{}", h.event)
            }
            _ => tracing::info!(node = %node.uuid, event_type = %h.event_type, "{}", h.event),
        }
    }
}

fn history(
    severity: Severity,
    event_type: &str,
    event: impl Into<String>,
    user: &Option<String>,
) -> HistoryEntry {
    let mut h = HistoryEntry::new(severity, event_type, event);
    h.user = user.clone();
    h
}

impl Conductor {
    pub fn new(store: Store, registry: Arc<Registry>, settings: Settings) -> Conductor {
        let http = reqwest::Client::builder()
            .connect_timeout(settings.drivers.image_check_timeout)
            .timeout(settings.drivers.image_check_timeout)
            .user_agent(concat!("rackboot/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        let workers = Arc::new(Semaphore::new(settings.max_workers.max(1)));
        let agent = agent_client::AgentClient::new(settings.agent.clone());
        Conductor {
            inner: Arc::new(Inner {
                store,
                registry,
                settings,
                http,
                agent,
                released: Notify::new(),
                workers,
                started_at: now(),
                allocating: tokio::sync::Mutex::new(()),
                discovering: tokio::sync::Mutex::new(()),
                running: AtomicUsize::new(0),
                idle: Notify::new(),
                stopping: AtomicBool::new(false),
            }),
        }
    }

    /// The image cache network boots are staged in.
    pub fn image_cache(&self) -> Option<Arc<crate::images::cache::Cache>> {
        self.inner.settings.drivers.cache.clone()
    }

    /// Virtual media's settings: where ISOs go, and the boot HTTP server's
    /// URL once it listens (`app` sets it).
    pub fn vmedia(&self) -> &crate::drivers::Vmedia {
        &self.inner.settings.drivers.vmedia
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    pub fn host(&self) -> &str {
        &self.inner.settings.host
    }

    /// When this conductor started.
    pub fn started_at(&self) -> &str {
        &self.inner.started_at
    }

    /// Unix seconds now, by the conductor's clock (call-back deadlines).
    fn unix_now(&self) -> i64 {
        self.inner.settings.clock.unix_now()
    }

    async fn load(&self, ident: &str) -> Result<Node> {
        let ident = ident.to_string();
        Ok(self.store().call(move |s| s.get_node(&ident)).await?)
    }

    /// Saves a node this conductor holds, keeping the lock; returns the node
    /// as stored (its new version).
    async fn save(&self, node: Node, history: Vec<HistoryEntry>) -> Result<Node> {
        self.save_with(node, history, Vec::new()).await
    }

    /// [`Conductor::save`] with record writes in the same transaction.
    async fn save_with(
        &self,
        mut node: Node,
        history: Vec<HistoryEntry>,
        records: Vec<store::RecordWrite>,
    ) -> Result<Node> {
        log_history(&node, &history);
        Ok(self
            .store()
            .call(move |s| {
                node.version = s.save_node_with(&node, &history, None, &records)?;
                Ok::<_, store::Error>(node)
            })
            .await?)
    }

    fn bundle(&self, node: &Node) -> Result<Bundle> {
        Ok(self.inner.registry.bundle(node)?)
    }

    async fn task(&self, node: Node) -> Result<Task> {
        let uuid = node.uuid;
        let ports = self.store().call(move |s| s.node_ports(uuid)).await?;
        Ok(Task::new(
            node,
            ports,
            self.inner.http.clone(),
            self.inner.settings.drivers.clone(),
        ))
    }
}

#[cfg(test)]
mod tests;
