//! The conductor: the only writer of `provision_state`.
//!
//! Every verb takes the node's lock (Ironic's `reservation`), moves the node
//! with [`states::next`] and commits the transient state, its target and a
//! history row in one transaction *before* the caller is answered; a worker
//! task then runs the workflow through the node's driver interfaces and
//! commits the outcome the same way. A busy node answers `NodeLocked`.
//! At start-up, nodes left in transient states are failed as Ironic fails
//! them, with a `last_error` saying the appliance restarted.

pub mod sync;
pub mod update;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{Notify, Semaphore};
use uuid::Uuid;

use crate::drivers::{self, Bundle, DeployOutcome, Registry, Task};
use crate::model::states::{self, Event, State};
use crate::model::{now, HistoryEntry, Interfaces, Node, PowerState, Severity};
use crate::store::{self, PortFilter, Store};

pub use update::PatchOp;

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
    #[error("No free conductor workers available")]
    NoFreeWorker,
    #[error("The appliance is shutting down; retry once it is back")]
    ShuttingDown,
}

pub type Result<T> = std::result::Result<T, Error>;

/// Conductor settings from the configuration.
/// driver_internal_info key: unix second by which the ramdisk must call back.
const CALLBACK_DEADLINE: &str = "callback_deadline";

#[derive(Debug, Clone)]
pub struct Settings {
    /// This appliance's name, shown as the `reservation` and `conductor`.
    pub host: String,
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
    /// Interface limits.
    pub drivers: drivers::Settings,
    /// The power-state sync loop.
    pub sync: sync::SyncSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            host: "rackboot".into(),
            automated_clean: false,
            max_workers: 256,
            node_locked_wait: Duration::from_secs(1),
            answer_wait: Duration::from_millis(250),
            deploy_callback_timeout: Duration::from_secs(1800),
            clean_callback_timeout: Duration::from_secs(1800),
            sync: sync::SyncSettings::default(),
            drivers: drivers::Settings::default(),
        }
    }
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
    locks: Mutex<HashSet<Uuid>>,
    released: Notify,
    workers: Arc<Semaphore>,
    running: AtomicUsize,
    idle: Notify,
    stopping: AtomicBool,
}

/// Holds a node's lock; dropping it releases the lock.
pub struct LockGuard {
    inner: Arc<Inner>,
    uuid: Uuid,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.inner
            .locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.uuid);
        self.inner.released.notify_waiters();
    }
}

/// The workflow a worker runs after the transition was committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Job {
    Verify,
    Adopt,
    Clean,
    Deploy,
    TearDown,
    Power(PowerState),
}

/// Counts a running workflow for the shutdown drain, however it ends.
struct RunningGuard {
    inner: Arc<Inner>,
}

impl RunningGuard {
    fn new(inner: Arc<Inner>) -> RunningGuard {
        inner.running.fetch_add(1, Ordering::SeqCst);
        RunningGuard { inner }
    }
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        if self.inner.running.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.inner.idle.notify_waiters();
        }
    }
}

/// A worker slot and the node's lock, carried by a spawned workflow.
struct WorkerTicket {
    _permit: tokio::sync::OwnedSemaphorePermit,
    _lock: LockGuard,
    /// Counted from the moment the ticket exists, so a drain that starts
    /// between the ticket and the task still waits for it.
    _running: RunningGuard,
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
        Conductor {
            inner: Arc::new(Inner {
                store,
                registry,
                settings,
                http,
                locks: Mutex::new(HashSet::new()),
                released: Notify::new(),
                workers,
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

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    pub fn host(&self) -> &str {
        &self.inner.settings.host
    }

    // ---- start-up and shutdown --------------------------------------------

    /// Clears stale reservations and fails nodes left in transient states, as
    /// Ironic does when a conductor starts. Returns how many nodes moved.
    pub async fn recover(&self) -> Result<usize> {
        let host = self.host().to_string();
        self.store()
            .call(move |s| -> Result<usize> {
                s.clear_reservations()?;
                let stuck: Vec<State> = State::ALL.iter().copied().filter(|s| s.is_stuck_after_restart()).collect();
                let nodes = s.nodes_in_states(&stuck)?;
                let count = nodes.len();
                for mut node in nodes {
                    let from = node.provision_state;
                    let Some(to) = states::next(from, Event::Fail) else { continue };
                    let msg = format!(
                        "The {from} state can't be resumed by conductor {host}: the appliance restarted while the node was {from}. Moving to fail state."
                    );
                    node.enter(to);
                    node.last_error = Some(msg.clone());
                    node.updated_at = Some(now());
                    tracing::warn!(node = %node.uuid, %from, %to, "failing node left in a transient state at start-up");
                    s.save_node(&node, &[HistoryEntry::new(Severity::Error, "startup", format!("{from} -> {to}: {msg}"))])?;
                }
                Ok(count)
            })
            .await
    }

    /// Stops accepting work and waits up to `timeout` for running workflows.
    /// Returns how many were still running when the wait ended.
    pub async fn drain(&self, timeout: Duration) -> usize {
        self.inner.stopping.store(true, Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let idle = self.inner.idle.notified();
            let running = self.inner.running.load(Ordering::SeqCst);
            if running == 0 {
                return 0;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return self.inner.running.load(Ordering::SeqCst);
            }
        }
    }

    // ---- locking -----------------------------------------------------------

    /// Takes a node's lock only if it is free right now.
    fn try_lock(&self, uuid: Uuid) -> Option<LockGuard> {
        let fresh = self
            .inner
            .locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(uuid);
        fresh.then(|| LockGuard {
            inner: self.inner.clone(),
            uuid,
        })
    }

    async fn lock(&self, uuid: Uuid, ident: &str) -> Result<LockGuard> {
        let deadline = tokio::time::Instant::now() + self.inner.settings.node_locked_wait;
        loop {
            let released = self.inner.released.notified();
            if self
                .inner
                .locks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(uuid)
            {
                return Ok(LockGuard {
                    inner: self.inner.clone(),
                    uuid,
                });
            }
            if tokio::time::timeout_at(deadline, released).await.is_err() {
                return Err(Error::NodeLocked {
                    node: ident.to_string(),
                    host: self.host().to_string(),
                });
            }
        }
    }

    fn worker_ticket(&self, lock: LockGuard) -> Result<WorkerTicket> {
        // Count first, then look at `stopping`: a drain that set it after
        // this point sees the count and waits.
        let running = RunningGuard::new(self.inner.clone());
        if self.inner.stopping.load(Ordering::SeqCst) {
            return Err(Error::ShuttingDown);
        }
        let permit = self
            .inner
            .workers
            .clone()
            .try_acquire_owned()
            .map_err(|_| Error::NoFreeWorker)?;
        Ok(WorkerTicket {
            _permit: permit,
            _lock: lock,
            _running: running,
        })
    }

    async fn load(&self, ident: &str) -> Result<Node> {
        let ident = ident.to_string();
        Ok(self.store().call(move |s| s.get_node(&ident)).await?)
    }

    /// Saves under a node lock that is released only once the write has
    /// landed, even if the caller's future is dropped meanwhile (the blocking
    /// write goes on without it).
    async fn save_locked(
        &self,
        node: Node,
        history: Vec<HistoryEntry>,
        lock: LockGuard,
    ) -> Result<()> {
        log_history(&node, &history);
        Ok(self
            .store()
            .call(move |s| {
                let _lock = lock;
                s.save_node(&node, &history)
            })
            .await?)
    }

    async fn save(&self, node: Node, history: Vec<HistoryEntry>) -> Result<()> {
        log_history(&node, &history);
        Ok(self
            .store()
            .call(move |s| s.save_node(&node, &history))
            .await?)
    }

    fn bundle(&self, node: &Node) -> Result<Bundle> {
        Ok(self.inner.registry.bundle(node)?)
    }

    async fn task(&self, node: Node) -> Result<Task> {
        let uuid = node.uuid;
        let ports = self
            .store()
            .call(move |s| {
                s.list_ports(
                    &PortFilter {
                        node_uuid: Some(uuid),
                        address: None,
                    },
                    store::Page {
                        marker: None,
                        limit: usize::MAX >> 1,
                        descending: false,
                    },
                )
            })
            .await?;
        Ok(Task::new(
            node,
            ports,
            self.inner.http.clone(),
            self.inner.settings.drivers.clone(),
        ))
    }

    /// Takes a node's lock for work outside the conductor that must not run
    /// beside a workflow (port changes). Busy → `NodeLocked`.
    pub async fn lock_node(&self, uuid: Uuid, ident: &str) -> Result<LockGuard> {
        self.lock(uuid, ident).await
    }

    // ---- nodes -------------------------------------------------------------

    /// Creates a node (in `enroll`, or `available` for API < 1.11).
    pub async fn create_node(&self, node: Node, user: Option<String>) -> Result<Node> {
        self.inner.registry.hardware_type(&node.driver)?;
        for kind in ["power", "management", "boot", "deploy", "network"] {
            let name = node.interfaces.get(kind).unwrap_or_default();
            self.inner
                .registry
                .check_interface(&node.driver, kind, name)?;
        }
        let h = history(
            Severity::Info,
            "provisioning",
            format!(
                "node created in {} with driver {}",
                node.provision_state, node.driver
            ),
            &user,
        );
        let n = node.clone();
        self.store().call(move |s| s.create_node(&n, &h)).await?;
        tracing::info!(node = %node.uuid, driver = %node.driver, "node created");
        Ok(node)
    }

    /// Applies a JSON patch to a node under its lock.
    pub async fn update_node(
        &self,
        ident: &str,
        ops: Vec<PatchOp>,
        reset_interfaces: Option<bool>,
    ) -> Result<Node> {
        let node = self.load(ident).await?;
        let lock = self.lock(node.uuid, ident).await?;
        let old = self.load(&node.uuid.to_string()).await?;
        let new = update::apply(&old, &ops, &self.inner.registry, reset_interfaces)?;
        let changed: Vec<&str> = ops.iter().map(|o| o.path.as_str()).collect();
        let h = HistoryEntry::new(
            Severity::Info,
            "api",
            format!("node updated: {}", changed.join(", ")),
        );
        self.save_locked(new.clone(), vec![h], lock).await?;
        Ok(new)
    }

    /// Deletes a node and its ports, without cleaning or touching the machine.
    pub async fn delete_node(&self, ident: &str) -> Result<()> {
        let node = self.load(ident).await?;
        let lock = self.lock(node.uuid, ident).await?;
        let node = self.load(&node.uuid.to_string()).await?;
        if node.protected {
            return Err(Error::NodeProtected {
                node: ident.to_string(),
            });
        }
        if !node.maintenance {
            if let Some(instance) = &node.instance_uuid {
                return Err(Error::NodeAssociated {
                    node: ident.to_string(),
                    instance: instance.clone(),
                });
            }
            if !node.provision_state.delete_allowed() {
                return Err(Error::InvalidState(format!(
                    "Can not delete node \"{ident}\" while it is in provision state \"{}\". Valid provision states to perform deletion are: \"manageable, enroll, adopt failed, available\", or set the node into maintenance mode",
                    node.provision_state
                )));
            }
        }
        let uuid = node.uuid;
        self.store()
            .call(move |s| {
                let _lock = lock;
                s.delete_node(uuid)
            })
            .await?;
        tracing::info!(node = %uuid, state = %node.provision_state, "node deleted (no cleaning, no power action)");
        Ok(())
    }

    /// Sets or clears maintenance.
    pub async fn set_maintenance(
        &self,
        ident: &str,
        on: bool,
        reason: Option<String>,
    ) -> Result<()> {
        let node = self.load(ident).await?;
        let lock = self.lock(node.uuid, ident).await?;
        let mut node = self.load(&node.uuid.to_string()).await?;
        node.maintenance = on;
        if on {
            node.maintenance_reason = reason;
        } else {
            node.maintenance_reason = None;
            node.fault = None;
        }
        node.updated_at = Some(now());
        let h = HistoryEntry::new(
            Severity::Info,
            "maintenance",
            if on {
                "maintenance set"
            } else {
                "maintenance cleared"
            },
        );
        self.save_locked(node, vec![h], lock).await
    }

    // ---- provisioning ------------------------------------------------------

    /// Runs a provision verb (`manage`, `adopt`, `provide`, `active`, …).
    /// Returns once the node is in its next state (transient or final).
    pub async fn provision(&self, ident: &str, target: &str, opts: ProvisionOptions) -> Result<()> {
        let api = states::api_target(target).ok_or_else(|| Error::InvalidStateRequested {
            action: target.to_string(),
            node: ident.to_string(),
            state: "unknown".into(),
        })?;
        let event = api.event;
        let node = self.load(ident).await?;
        let not_actionable = |node: &Node| Error::InvalidStateRequested {
            action: target.to_string(),
            node: ident.to_string(),
            state: node.provision_state.to_string(),
        };
        if !states::is_actionable(node.provision_state, event) {
            if node.reservation.is_some() {
                return Err(Error::NodeLocked {
                    node: ident.to_string(),
                    host: self.host().to_string(),
                });
            }
            return Err(not_actionable(&node));
        }
        if matches!(event, Event::Deploy | Event::Rebuild) && node.maintenance {
            return Err(Error::NodeInMaintenance {
                action: target.to_string(),
                node: ident.to_string(),
            });
        }
        let lock = self.lock(node.uuid, ident).await?;
        let mut node = self.load(&node.uuid.to_string()).await?;
        let from = node.provision_state;
        let Some(to) = states::next(from, event) else {
            return Err(not_actionable(&node));
        };
        let used_extra_consent = self.check_provision(&node, event, target, &opts)?;
        if used_extra_consent {
            // Consent through `extra` is for one action, not forever.
            node.extra.remove(CONSENT_KEY);
        }

        let job = match (from, event) {
            (State::Enroll, Event::Manage) => Some(Job::Verify),
            (_, Event::Adopt) => Some(Job::Adopt),
            (State::Manageable, Event::Provide) => Some(Job::Clean),
            (_, Event::Deploy) | (_, Event::Rebuild) => Some(Job::Deploy),
            (_, Event::Delete) => Some(Job::TearDown),
            _ => None,
        };
        let Some(job) = job else {
            // Synchronous transitions: manage back to manageable, abort.
            node.enter(to);
            if event == Event::Abort {
                node.last_error = Some(format!("{from} aborted by request"));
            }
            node.updated_at = Some(now());
            let h = history(
                Severity::Info,
                "provisioning",
                format!("{target}: {from} -> {to}"),
                &opts.user,
            );
            self.save_locked(node, vec![h], lock).await?;
            return Ok(());
        };
        let ticket = self.worker_ticket(lock)?;
        node.provision_state = to;
        node.target_provision_state = to.default_target();
        node.last_error = None;
        node.reservation = Some(self.host().to_string());
        node.provision_updated_at = Some(now());
        node.updated_at = Some(now());
        let target_text = node
            .target_provision_state
            .map(|t| t.to_string())
            .unwrap_or_else(|| "none".into());
        let h = history(
            Severity::Info,
            "provisioning",
            format!("{target}: {from} -> {to} (target {target_text})"),
            &opts.user,
        );
        self.launch(ticket, node, h, job).await
    }

    /// Refusals that depend on the node, checked under its lock.
    fn check_provision(
        &self,
        node: &Node,
        event: Event,
        target: &str,
        opts: &ProvisionOptions,
    ) -> Result<bool> {
        let ident = node.ident();
        if matches!(event, Event::Delete | Event::Rebuild) && node.protected {
            return Err(Error::NodeProtected { node: ident });
        }
        let bundle = self.bundle(node)?;
        match event {
            Event::Manage if node.provision_state == State::Enroll => {}
            Event::Deploy | Event::Rebuild => {
                bundle.power.validate(node).map_err(|e| {
                    Error::Invalid(format!(
                        "Failed to validate power driver interface for node {}: {e}",
                        node.uuid
                    ))
                })?;
                bundle.deploy.validate(node).map_err(|e| {
                    Error::Invalid(format!(
                        "Failed to validate deploy driver interface for node {}: {e}",
                        node.uuid
                    ))
                })?;
            }
            Event::Delete => {
                bundle.power.validate(node).map_err(|e| {
                    Error::Invalid(format!(
                        "Failed to validate power driver interface for node {}: {e}",
                        node.uuid
                    ))
                })?;
            }
            _ => {}
        }
        if node.is_adopted() && matches!(event, Event::Provide | Event::Rebuild | Event::Delete) {
            return self.check_adopted_guard(node, target, opts, &bundle);
        }
        Ok(false)
    }

    /// Goes beyond Ironic: an adopted machine may not be what the appliance
    /// thinks it is, so actions that could re-image or clean it need consent.
    /// Returns whether the consent in `extra` was used (and must be spent).
    fn check_adopted_guard(
        &self,
        node: &Node,
        target: &str,
        opts: &ProvisionOptions,
        bundle: &Bundle,
    ) -> Result<bool> {
        let has_checksum = ["image_checksum", "image_os_hash_value"].iter().any(|k| {
            node.instance_info
                .get(*k)
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty())
        });
        let cleans = self.automated_clean(node) && bundle.deploy.cleaning_touches_disks();
        let why = match (has_checksum, cleans) {
            (_, true) => "automated cleaning would wipe its disks",
            (false, false) => "its instance_info has no image_checksum, so the recorded image may not be the one it runs and a re-deploy could wipe it",
            (true, false) => return Ok(false),
        };
        // Consent is looked at (and spent) only where the guard would refuse.
        if opts.confirm_destructive {
            return Ok(false);
        }
        let extra_consent = match node.extra.get(CONSENT_KEY) {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => {
                matches!(s.to_ascii_lowercase().as_str(), "true" | "yes" | "1")
            }
            _ => false,
        };
        if extra_consent {
            return Ok(true);
        }
        let ident = node.ident();
        Err(Error::Refused(format!(
            "Refusing \"{target}\" on node {ident}: it was adopted and {why}. To go ahead anyway, run \
             `baremetal node set {ident} --extra rackboot_allow_destructive=true` (or `rackboot node {} {ident} --confirm-destructive`), \
             or record the image's checksum with `baremetal node set {ident} --instance-info image_checksum=<sha256>`.",
            match target {
                "deleted" => "undeploy",
                "active" => "deploy",
                t => t,
            }
        )))
    }

    fn automated_clean(&self, node: &Node) -> bool {
        node.automated_clean
            .unwrap_or(self.inner.settings.automated_clean)
    }

    // ---- agent call-back ---------------------------------------------------

    /// A booted ramdisk's heartbeat (`POST /v1/heartbeat/{node}` on the boot
    /// HTTP listener). A node waiting for it in `wait call-back` finishes its
    /// deploy: wait call-back -> deploying -> active. In any other state it
    /// is only noted. `from` is the caller's address, for the history.
    pub async fn heartbeat(&self, ident: &str, from: &str) -> Result<State> {
        let node = self.load(ident).await?;
        let lock = self.lock(node.uuid, ident).await?;
        let mut node = self.load(&node.uuid.to_string()).await?;
        let state = node.provision_state;
        if !matches!(state, State::WaitCallBack | State::CleanWait) {
            let h = HistoryEntry::new(
                Severity::Info,
                "agent",
                format!("heartbeat from {from} (node is {state}: nothing to do)"),
            );
            self.save_locked(node, vec![h], lock).await?;
            return Ok(state);
        }
        let resumed = states::next(state, Event::Resume).unwrap_or(State::Deploying);
        let to = states::next(resumed, Event::Done).unwrap_or(State::Active);
        if state == State::CleanWait {
            // The deploy ramdisk cleaned (nothing to run in it here); the
            // machine stays on it until deployed: leave the boot decision.
            node.driver_internal_info.remove("boot_decision");
        }
        node.driver_internal_info.remove(CALLBACK_DEADLINE);
        node.driver_internal_info.remove("adopted");
        node.enter(to);
        node.updated_at = Some(now());
        node.last_error = None;
        let h = vec![
            HistoryEntry::new(
                Severity::Info,
                "agent",
                format!("heartbeat from {from}: the ramdisk is up"),
            ),
            HistoryEntry::new(
                Severity::Info,
                "provisioning",
                format!("{state} -> {resumed} -> {to}"),
            ),
        ];
        self.save_locked(node, h, lock).await?;
        Ok(to)
    }

    /// Fails deploys whose call-back did not come in time.
    pub async fn check_callback_timeouts(&self) -> usize {
        let nodes = match self
            .store()
            .call(|s| s.nodes_in_states(&[State::WaitCallBack, State::CleanWait]))
            .await
        {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "cannot list nodes waiting for a call-back");
                return 0;
            }
        };
        let now_s = jiff::Timestamp::now().as_second();
        let mut failed = 0;
        for n in nodes {
            let due = n
                .driver_internal_info
                .get(CALLBACK_DEADLINE)
                .and_then(Value::as_i64)
                .is_some_and(|d| d <= now_s);
            if !due {
                continue;
            }
            let Some(lock) = self.try_lock(n.uuid) else {
                continue;
            };
            let Ok(mut node) = self.load(&n.uuid.to_string()).await else {
                continue;
            };
            let from = node.provision_state;
            if !matches!(from, State::WaitCallBack | State::CleanWait) {
                continue;
            }
            let to = states::next(from, Event::Fail).unwrap_or(State::DeployFailed);
            let msg = if from == State::CleanWait {
                format!(
                    "Timeout reached while cleaning the node {} ({} s, [conductor] clean_callback_timeout): the deploy ramdisk never called back",
                    node.uuid,
                    self.inner.settings.clean_callback_timeout.as_secs()
                )
            } else {
                format!(
                    "Timeout reached while waiting for callback for node {} ({} s, [conductor] deploy_callback_timeout)",
                    node.uuid,
                    self.inner.settings.deploy_callback_timeout.as_secs()
                )
            };
            node.driver_internal_info.remove(CALLBACK_DEADLINE);
            node.enter(to);
            node.updated_at = Some(now());
            node.last_error = Some(msg.clone());
            let h = HistoryEntry::new(
                Severity::Error,
                "provisioning",
                format!("wait call-back -> {to}: {msg}"),
            );
            if self.save_locked(node, vec![h], lock).await.is_ok() {
                failed += 1;
            }
        }
        failed
    }

    /// Runs `check_callback_timeouts` periodically until `stop`.
    pub async fn run_callback_timeouts(&self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let every = (self
            .inner
            .settings
            .deploy_callback_timeout
            .min(self.inner.settings.clean_callback_timeout)
            / 4)
        .clamp(Duration::from_millis(200), Duration::from_secs(10));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            self.check_callback_timeouts().await;
        }
    }

    // ---- power -------------------------------------------------------------

    /// Starts a power action; returns once `target_power_state` is recorded.
    pub async fn set_power(
        &self,
        ident: &str,
        target: PowerState,
        user: Option<String>,
    ) -> Result<()> {
        let node = self.load(ident).await?;
        if matches!(node.provision_state, State::Cleaning | State::CleanWait) {
            return Err(Error::InvalidStateRequested {
                action: target.to_string(),
                node: ident.to_string(),
                state: node.provision_state.to_string(),
            });
        }
        let lock = self.lock(node.uuid, ident).await?;
        let mut node = self.load(&node.uuid.to_string()).await?;
        if matches!(target, PowerState::Off | PowerState::SoftOff) && node.disable_power_off {
            return Err(Error::InvalidState(format!(
                "Node {ident} cannot be powered off: disable_power_off is set"
            )));
        }
        let bundle = self.bundle(&node)?;
        bundle.power.validate(&node).map_err(|e| {
            Error::Invalid(format!(
                "Failed to validate power driver interface for node {}: {e}",
                node.uuid
            ))
        })?;
        let ticket = self.worker_ticket(lock)?;
        node.target_power_state = Some(target.settled());
        node.last_error = None;
        node.reservation = Some(self.host().to_string());
        node.updated_at = Some(now());
        let h = history(
            Severity::Info,
            "power",
            format!("power action requested: {target}"),
            &user,
        );
        self.launch(ticket, node, h, Job::Power(target)).await
    }

    /// Sets the boot device through the management interface.
    pub async fn set_boot_device(&self, ident: &str, device: &str, persistent: bool) -> Result<()> {
        let node = self.load(ident).await?;
        let lock = self.lock(node.uuid, ident).await?;
        let node = self.load(&node.uuid.to_string()).await?;
        let bundle = self.bundle(&node)?;
        if !bundle.management.supported_boot_devices().contains(&device) {
            return Err(Error::Invalid(format!(
                "Invalid boot device {device} specified; supported: {}",
                bundle.management.supported_boot_devices().join(", ")
            )));
        }
        bundle
            .management
            .validate(&node)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        let mut task = self.task(node).await?;
        let res = bundle
            .management
            .set_boot_device(&mut task, device, persistent)
            .await;
        let mut records = task.take_records();
        if let Err(e) = &res {
            records.push(HistoryEntry::new(
                Severity::Error,
                "management",
                format!("set boot device {device} failed: {e}"),
            ));
        }
        self.save_locked(task.node, records, lock).await?;
        res.map_err(|e| Error::Invalid(e.to_string()))
    }

    /// Reads the boot device through the management interface.
    pub async fn get_boot_device(&self, ident: &str) -> Result<(Option<String>, Option<bool>)> {
        let node = self.load(ident).await?;
        let bundle = self.bundle(&node)?;
        let task = self.task(node).await?;
        bundle
            .management
            .get_boot_device(&task)
            .await
            .map_err(|e| Error::Invalid(e.to_string()))
    }

    /// The boot devices a node's management interface supports.
    pub async fn supported_boot_devices(&self, ident: &str) -> Result<Vec<String>> {
        let node = self.load(ident).await?;
        let bundle = self.bundle(&node)?;
        Ok(bundle
            .management
            .supported_boot_devices()
            .iter()
            .map(|s| s.to_string())
            .collect())
    }

    /// Validates every interface of a node, as `GET …/validate` reports it.
    pub async fn validate(
        &self,
        ident: &str,
    ) -> Result<Vec<(&'static str, Option<bool>, Option<String>)>> {
        let node = self.load(ident).await?;
        let bundle = self.bundle(&node)?;
        let task = self.task(node.clone()).await?;
        let verdict = |r: drivers::Result<()>| match r {
            Ok(()) => (Some(true), None),
            Err(e) => (Some(false), Some(e.to_string())),
        };
        let mut out = Vec::new();
        // Every kind Ironic reports, i.e. all but vendor.
        for kind in Interfaces::KINDS.into_iter().filter(|k| *k != "vendor") {
            let (result, reason) = match kind {
                "power" => verdict(bundle.power.validate(&node)),
                "management" => verdict(bundle.management.validate(&node)),
                "boot" => verdict(bundle.boot.validate(&task).await),
                "deploy" => verdict(bundle.deploy.validate(&node)),
                "network" => (Some(true), None),
                other => match node.interfaces.get(other) {
                    Some("fake") => (Some(true), None),
                    _ => (None, Some("not supported".to_string())),
                },
            };
            out.push((kind, result, reason));
        }
        Ok(out)
    }

    // ---- workers -----------------------------------------------------------

    /// Commits the node's begin state and runs its workflow in a task of its
    /// own, so a cancelled request (client gone, request timeout) can neither
    /// lose the workflow nor leave a reserved node without one. Returns once
    /// the begin state is committed, after waiting up to `answer_wait` for a
    /// quick workflow to finish.
    async fn launch(
        &self,
        ticket: WorkerTicket,
        node: Node,
        begin: HistoryEntry,
        job: Job,
    ) -> Result<()> {
        let (begun_tx, begun_rx) = tokio::sync::oneshot::channel::<Result<()>>();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let this = self.clone();
        tokio::spawn(async move {
            let _ticket = ticket;
            let uuid = node.uuid;
            if let Err(e) = this.save(node.clone(), vec![begin]).await {
                let _ = begun_tx.send(Err(e));
                return;
            }
            let _ = begun_tx.send(Ok(()));
            // The workflow runs in a nested task so that a panic in a driver
            // is caught here and the node is failed instead of left reserved.
            let worker = this.clone();
            let problem = match tokio::spawn(async move { worker.run(node, job).await }).await {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(format!("the workflow could not record its outcome: {e}")),
                Err(e) if e.is_panic() => Some(
                    "the workflow failed unexpectedly (internal error); see the appliance log"
                        .to_string(),
                ),
                Err(_) => Some("the workflow was cancelled".to_string()),
            };
            if let Some(msg) = problem {
                tracing::error!(node = %uuid, ?job, "{msg}");
                if let Err(e) = this.fail_node(uuid, job, &msg).await {
                    tracing::error!(node = %uuid, error = %e, "cannot record the failed workflow");
                }
            }
            let _ = done_tx.send(());
        });
        match begun_rx.await {
            Ok(r) => r?,
            Err(_) => {
                return Err(Error::Store(store::Error::Database(
                    "the workflow task ended before it started".into(),
                )))
            }
        }
        let _ = tokio::time::timeout(self.inner.settings.answer_wait, done_rx).await;
        Ok(())
    }

    /// Fails a node whose workflow ended abnormally: the failure transition
    /// (where the table has one), `last_error`, and the reservation released.
    async fn fail_node(&self, uuid: Uuid, job: Job, msg: &str) -> Result<()> {
        let mut node = self.load(&uuid.to_string()).await?;
        node.reservation = None;
        node.updated_at = Some(now());
        node.last_error = Some(msg.to_string());
        if matches!(job, Job::Power(_)) {
            node.target_power_state = None;
        } else if let Some(to) = states::next(node.provision_state, Event::Fail) {
            node.enter(to);
        }
        let h = HistoryEntry::new(
            Severity::Error,
            "provisioning",
            format!("workflow ended abnormally: {msg}"),
        );
        self.save(node, vec![h]).await
    }

    async fn run(&self, node: Node, job: Job) -> Result<()> {
        let bundle = match self.bundle(&node) {
            Ok(b) => b,
            Err(e) => return self.finish(node, Err(e.to_string()), Vec::new(), job).await,
        };
        let mut task = self.task(node).await?;
        let started = std::time::Instant::now();
        let outcome = match job {
            Job::Verify => self.verify(&mut task, &bundle).await,
            Job::Adopt => self.adopt(&mut task, &bundle).await,
            Job::Clean => self.clean(&mut task, &bundle).await,
            Job::Deploy => self.deploy(&mut task, &bundle).await,
            Job::TearDown => self.tear_down(&mut task, &bundle).await,
            Job::Power(target) => self.power_action(&mut task, &bundle, target).await,
        };
        let name = match job {
            Job::Verify => "manage",
            Job::Adopt => "adopt",
            Job::Clean => "clean",
            Job::Deploy => "deploy",
            Job::TearDown => "undeploy",
            Job::Power(_) => "power",
        };
        let result = match &outcome {
            Ok(Some(Event::Wait)) => "wait",
            Ok(_) => "done",
            Err(_) => "failed",
        };
        crate::metrics::workflow(name, result, started.elapsed().as_secs_f64());
        let records = task.take_records();
        self.finish(task.node, outcome, records, job).await
    }

    /// Commits a workflow's outcome, its records and the release of the
    /// reservation in one transaction.
    async fn finish(
        &self,
        mut node: Node,
        outcome: std::result::Result<Option<Event>, String>,
        mut records: Vec<HistoryEntry>,
        job: Job,
    ) -> Result<()> {
        node.reservation = None;
        node.updated_at = Some(now());
        if let Job::Power(target) = job {
            node.target_power_state = None;
            match outcome {
                Ok(_) => records.push(HistoryEntry::new(
                    Severity::Info,
                    "power",
                    format!(
                        "power action {target} done; power state {}",
                        node.power_state
                            .map(|p| p.to_string())
                            .unwrap_or_else(|| "unknown".into())
                    ),
                )),
                Err(e) => {
                    let msg = format!(
                        "Failed to change power state to '{}' for node {}: {e}",
                        target.settled(),
                        node.uuid
                    );
                    records.push(HistoryEntry::new(Severity::Error, "power", msg.clone()));
                    node.last_error = Some(msg);
                }
            }
            return self.save(node, records).await;
        }
        let from = node.provision_state;
        let (event, error) = match outcome {
            Ok(Some(ev)) => (ev, None),
            Ok(None) => (Event::Done, None),
            Err(e) => (Event::Fail, Some(e)),
        };
        let (to, error) = match states::next(from, event) {
            Some(to) => (to, error),
            None => {
                let msg = format!(
                    "internal error: the workflow ended with event \"{event}\", which state \"{from}\" does not accept"
                );
                tracing::error!(node = %node.uuid, "{msg}");
                let to = states::next(from, Event::Fail).unwrap_or(from);
                (
                    to,
                    Some(error.map(|e| format!("{e}; {msg}")).unwrap_or(msg)),
                )
            }
        };
        node.enter(to);
        match &error {
            Some(e) => {
                node.last_error = Some(e.clone());
                records.push(HistoryEntry::new(
                    Severity::Error,
                    "provisioning",
                    format!("{from} -> {to}: {e}"),
                ));
                tracing::warn!(node = %node.uuid, %from, %to, error = %e, "workflow failed");
            }
            None => {
                records.push(HistoryEntry::new(
                    Severity::Info,
                    "provisioning",
                    format!("{from} -> {to}"),
                ));
                tracing::info!(node = %node.uuid, %from, %to, "workflow done");
            }
        }
        self.save(node, records).await
    }

    async fn verify(
        &self,
        task: &mut Task,
        b: &Bundle,
    ) -> std::result::Result<Option<Event>, String> {
        let uuid = task.node.uuid;
        b.power.validate(&task.node).map_err(|e| {
            format!("Failed to validate power driver interface for node {uuid}. Error: {e}")
        })?;
        let state = b
            .power
            .get_power_state(task)
            .await
            .map_err(|e| format!("Failed to get power state for node {uuid}. Error: {e}"))?;
        task.node.power_state = Some(state);
        task.node
            .driver_internal_info
            .insert("first_power_state".into(), Value::String(state.to_string()));
        task.record(
            Severity::Info,
            "power",
            format!("first observed power state: {state} (recorded for enforcement)"),
        );
        Ok(None)
    }

    /// Adoption: validates boot, stages, takes over. Sends nothing to the
    /// machine — no power, boot-device or disk command.
    async fn adopt(
        &self,
        task: &mut Task,
        b: &Bundle,
    ) -> std::result::Result<Option<Event>, String> {
        let uuid = task.node.uuid;
        let wrap = |step: &str, e: drivers::Error| {
            format!("Error while attempting to adopt node {uuid}: {step} failed: {e}.")
        };
        b.boot
            .validate(task)
            .await
            .map_err(|e| wrap("boot interface validation", e))?;
        b.deploy
            .prepare(task)
            .await
            .map_err(|e| wrap("deploy preparation", e))?;
        b.boot
            .prepare_instance(task)
            .await
            .map_err(|e| wrap("boot preparation", e))?;
        b.deploy
            .take_over(task)
            .await
            .map_err(|e| wrap("takeover", e))?;
        task.node
            .driver_internal_info
            .insert("adopted".into(), Value::Bool(true));
        task.node
            .driver_internal_info
            .insert("adopted_at".into(), Value::String(now()));
        Ok(None)
    }

    async fn clean(
        &self,
        task: &mut Task,
        b: &Bundle,
    ) -> std::result::Result<Option<Event>, String> {
        if self.automated_clean(&task.node) && b.deploy.cleaning_touches_disks() {
            // Boot the deploy ramdisk and wait for its call-back (clean wait).
            let uuid = task.node.uuid;
            let fail =
                |e: drivers::Error| format!("Failed to prepare node {uuid} for cleaning: {e}");
            drivers::pxe::stage_deploy_images(task, true)
                .await
                .map_err(fail)?;
            let how =
                drivers::pxe::boot_from_network(task, b.power.as_ref(), b.management.as_ref())
                    .await
                    .map_err(fail)?;
            let timeout = self.inner.settings.clean_callback_timeout;
            let deadline = jiff::Timestamp::now().as_second() + timeout.as_secs() as i64;
            task.node
                .driver_internal_info
                .insert(CALLBACK_DEADLINE.into(), Value::from(deadline));
            task.record(
                Severity::Info,
                "provisioning",
                format!(
                    "cleaning: booting the deploy ramdisk (boot device pxe, {how}); waiting up to {} s for its call-back",
                    timeout.as_secs()
                ),
            );
            return Ok(Some(Event::Wait));
        }
        task.record(
            Severity::Info,
            "provisioning",
            "cleaning skipped (automated cleaning off or nothing to clean)",
        );
        Ok(None)
    }

    async fn deploy(
        &self,
        task: &mut Task,
        b: &Bundle,
    ) -> std::result::Result<Option<Event>, String> {
        let uuid = task.node.uuid;
        b.deploy
            .validate(&task.node)
            .map_err(|e| format!("Failed to validate deploy interface for node {uuid}: {e}"))?;
        let outcome = b
            .deploy
            .deploy(task, b.power.as_ref(), b.management.as_ref())
            .await
            .map_err(|e| format!("Deploy of node {uuid} failed: {e}"))?;
        task.node.driver_internal_info.remove("adopted");
        Ok(Some(match outcome {
            DeployOutcome::Done => Event::Done,
            DeployOutcome::Wait => {
                let deadline = jiff::Timestamp::now().as_second()
                    + self.inner.settings.deploy_callback_timeout.as_secs() as i64;
                task.node
                    .driver_internal_info
                    .insert(CALLBACK_DEADLINE.into(), Value::from(deadline));
                task.record(
                    Severity::Info,
                    "provisioning",
                    format!(
                        "waiting up to {} s for the ramdisk to call back (heartbeat)",
                        self.inner.settings.deploy_callback_timeout.as_secs()
                    ),
                );
                Event::Wait
            }
        }))
    }

    /// Tear-down then (maybe) cleaning: deleting → cleaning → available.
    async fn tear_down(
        &self,
        task: &mut Task,
        b: &Bundle,
    ) -> std::result::Result<Option<Event>, String> {
        let uuid = task.node.uuid;
        b.deploy
            .tear_down(task, b.power.as_ref())
            .await
            .map_err(|e| format!("Failed to tear down node {uuid}: {e}"))?;
        task.node.instance_info.clear();
        task.node.instance_uuid = None;
        task.node.driver_internal_info.remove("boot_decision");
        // "adopted" stays: without cleaning, the disks still hold what the
        // machine ran, so provide keeps needing consent.
        // deleting --clean--> cleaning, recorded before cleaning runs.
        let mut node = task.node.clone();
        node.enter(State::Cleaning);
        let mut records = task.take_records();
        records.push(HistoryEntry::new(
            Severity::Info,
            "provisioning",
            "deleting -> cleaning",
        ));
        self.save(node.clone(), records)
            .await
            .map_err(|e| e.to_string())?;
        task.node = node;
        self.clean(task, b).await
    }

    async fn power_action(
        &self,
        task: &mut Task,
        b: &Bundle,
        target: PowerState,
    ) -> std::result::Result<Option<Event>, String> {
        let timeout = task.settings.power_state_change_timeout;
        match tokio::time::timeout(timeout, b.power.set_power_state(task, target)).await {
            Err(_) => Err(format!("no result within {}s", timeout.as_secs())),
            Ok(Err(e)) => Err(e.to_string()),
            Ok(Ok(())) => {
                task.node.power_state = Some(target.settled());
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn conductor(dir: &tempfile::TempDir, settings: Settings) -> Conductor {
        let store = Store::open(&dir.path().join("t.db"), store::Options::default()).unwrap();
        Conductor::new(store, Arc::new(Registry::standard()), settings)
    }

    fn fake_node(name: &str, state: State) -> Node {
        let r = Registry::standard();
        let mut n = Node::new(
            Uuid::new_v4(),
            "fake-hardware",
            r.hardware_type("fake-hardware").unwrap().defaults(),
            state,
            now(),
        );
        n.name = Some(name.into());
        n
    }

    async fn wait_for(c: &Conductor, name: &str, state: State) -> Node {
        for _ in 0..500 {
            let n = c.load(name).await.unwrap();
            if n.provision_state == state && n.reservation.is_none() {
                return n;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{name} never reached {state}");
    }

    #[tokio::test]
    async fn adoption_reaches_active_with_no_power_or_management_call() {
        let dir = tempfile::tempdir().unwrap();
        let c = conductor(&dir, Settings::default());
        let n = c
            .create_node(fake_node("a", State::Enroll), None)
            .await
            .unwrap();
        c.provision("a", "manage", ProvisionOptions::default())
            .await
            .unwrap();
        wait_for(&c, "a", State::Manageable).await;
        c.provision("a", "adopt", ProvisionOptions::default())
            .await
            .unwrap();
        let done = wait_for(&c, "a", State::Active).await;
        assert!(done.is_adopted());
        assert_eq!(done.power_state, Some(PowerState::On));
        let history = c.store().node_history(n.uuid).unwrap();
        let start = history
            .iter()
            .position(|h| h.event.starts_with("adopt:"))
            .unwrap();
        let touched: Vec<_> = history[start..]
            .iter()
            .filter(|h| h.event_type == "power" || h.event_type == "management")
            .collect();
        assert!(
            touched.is_empty(),
            "adoption touched the machine: {touched:?}"
        );
    }

    #[tokio::test]
    async fn a_busy_node_answers_node_locked() {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings {
            node_locked_wait: Duration::from_millis(10),
            answer_wait: Duration::ZERO,
            ..Settings::default()
        };
        let c = conductor(&dir, settings);
        let mut n = fake_node("busy", State::Manageable);
        n.driver_info
            .insert("fake_deploy_delay".into(), json!(3600));
        c.create_node(n, None).await.unwrap();
        c.provision("busy", "adopt", ProvisionOptions::default())
            .await
            .unwrap();
        let busy = c.load("busy").await.unwrap();
        assert_eq!(
            (busy.provision_state, busy.target_provision_state),
            (State::Adopting, Some(State::Active))
        );
        assert!(
            busy.reservation.is_some(),
            "the transient state is committed with its reservation"
        );
        for verb in ["manage", "provide", "adopt"] {
            let err = c
                .provision("busy", verb, ProvisionOptions::default())
                .await
                .unwrap_err();
            assert!(matches!(err, Error::NodeLocked { .. }), "{verb}: {err}");
        }
        assert!(matches!(
            c.delete_node("busy").await,
            Err(Error::NodeLocked { .. })
        ));
        assert!(matches!(
            c.set_power("busy", PowerState::Off, None).await,
            Err(Error::NodeLocked { .. })
        ));
    }

    #[tokio::test]
    async fn restart_fails_stuck_states_as_ironic_does() {
        let cases = [
            (State::Verifying, State::Enroll, None),
            (State::Adopting, State::AdoptFailed, Some(State::Active)),
            (State::Deploying, State::DeployFailed, Some(State::Active)),
            (State::Cleaning, State::CleanFailed, Some(State::Available)),
            (State::Deleting, State::Error, None),
            (
                State::Inspecting,
                State::InspectFailed,
                Some(State::Manageable),
            ),
            (State::Rescuing, State::RescueFailed, Some(State::Rescue)),
            (
                State::Unrescuing,
                State::UnrescueFailed,
                Some(State::Active),
            ),
            (State::Servicing, State::ServiceFailed, Some(State::Active)),
            // Wait and stable states are left alone.
            (
                State::WaitCallBack,
                State::WaitCallBack,
                Some(State::Active),
            ),
            (State::Active, State::Active, None),
        ];
        let dir = tempfile::tempdir().unwrap();
        let c = conductor(&dir, Settings::default());
        for (i, (from, _, _)) in cases.iter().enumerate() {
            let mut n = fake_node(&format!("n{i}"), *from);
            n.target_provision_state = from.default_target();
            n.reservation = Some("old-host".into());
            c.store()
                .create_node(&n, &HistoryEntry::new(Severity::Info, "test", "seeded"))
                .unwrap();
        }
        let moved = c.recover().await.unwrap();
        assert_eq!(moved, 9);
        for (i, (from, to, target)) in cases.iter().enumerate() {
            let n = c.load(&format!("n{i}")).await.unwrap();
            assert_eq!(n.provision_state, *to, "{from}");
            assert_eq!(n.target_provision_state, *target, "{from}: target");
            assert_eq!(n.reservation, None, "{from}: reservation cleared");
            if from != to {
                let err = n.last_error.unwrap();
                assert!(
                    err.contains("restarted") && err.contains(from.as_str()),
                    "{err}"
                );
            }
        }
    }

    #[tokio::test]
    async fn adoption_failure_names_the_check_and_keeps_power_state() {
        let dir = tempfile::tempdir().unwrap();
        let c = conductor(&dir, Settings::default());
        let mut n = fake_node("f", State::Manageable);
        n.interfaces.boot = "ipxe".into();
        n.power_state = Some(PowerState::Off);
        c.create_node(n, None).await.unwrap();
        c.provision("f", "adopt", ProvisionOptions::default())
            .await
            .unwrap();
        let failed = wait_for(&c, "f", State::AdoptFailed).await;
        let err = failed.last_error.unwrap();
        assert!(
            err.contains("boot interface validation") && err.contains("PXE-enabled port"),
            "{err}"
        );
        assert_eq!(failed.power_state, Some(PowerState::Off));
        assert_eq!(failed.target_provision_state, Some(State::Active));
        // manage goes back synchronously; delete works there.
        c.provision("f", "manage", ProvisionOptions::default())
            .await
            .unwrap();
        assert_eq!(
            c.load("f").await.unwrap().provision_state,
            State::Manageable
        );
        c.delete_node("f").await.unwrap();
    }
}
