//! Boot services. The BootBackend is the one answer to "what should MAC X
//! boot now?", derived from the node's provision state and boot decision;
//! DHCP, TFTP (through the timeline's address map) and HTTP all ask it.
//! None of them reads the store: `app.rs` hands in what they read
//! ([`BootSource`] and a change feed), where their events go ([`EventSink`])
//! and where leases are kept (`dhcp::LeaseStore`).

pub mod bootfile;
pub mod dhcp;
pub mod files;
pub mod http;
pub mod ra;
pub mod tftp;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use crate::model::states::State;
use crate::model::{BootDecision, HistoryEntry, Mac, Node, Port, Severity};

/// A failure of whatever backs the boot services, as it put it.
pub type SourceError = Box<dyn std::error::Error + Send + Sync>;

/// What the BootBackend reads (blocking calls, made off the reply path).
pub trait BootSource: Send + Sync + 'static {
    /// Every enrolled port with its node.
    fn boot_entries(&self) -> Result<Vec<(Port, Node)>, SourceError>;
    /// Nodes per provision state (the `/metrics` snapshot).
    fn nodes_by_state(&self) -> Result<Vec<(String, u64)>, SourceError>;
}

/// Where boot-service events go: appended to node timelines in batches.
pub trait EventSink: Send + Sync + 'static {
    /// Appends events in one write; events of unknown nodes are dropped.
    fn append(&self, events: &[(Uuid, HistoryEntry)]) -> Result<(), SourceError>;
}

/// Events written to the sink in one batch, at most.
const TIMELINE_BATCH: usize = 256;

/// Boot-service events for node timelines (DHCP, TFTP, HTTP), written to
/// the node history in batches off the reply path; a bounded queue, so a
/// flood drops events (counted) and never slows a reply. It also remembers
/// which node each leased address belongs to, so TFTP and HTTP requests,
/// which only carry an IP, land in the right timeline.
pub struct Timeline {
    tx: mpsc::Sender<(Uuid, HistoryEntry)>,
    pub dropped: AtomicU64,
    ips: Mutex<HashMap<Ipv4Addr, Uuid>>,
}

/// The timeline's writer task; [`TimelineWriter::finish`] writes what is
/// still queued once every sender is gone.
pub struct TimelineWriter {
    task: tokio::task::JoinHandle<()>,
}

impl TimelineWriter {
    /// Waits until the queue is drained into the sink (every
    /// [`Timeline`] handle must be dropped first, or this waits for them).
    pub async fn finish(self) {
        let _ = self.task.await;
    }
}

impl Timeline {
    /// Addresses remembered, at most.
    const MAX_IPS: usize = 65536;

    /// Starts the writer. Events are queued (at most `capacity`) and
    /// written in batches; the writer ends once every handle is dropped and
    /// the queue is written.
    pub fn start(sink: Arc<dyn EventSink>, capacity: usize) -> (Arc<Timeline>, TimelineWriter) {
        let (tx, mut rx) = mpsc::channel::<(Uuid, HistoryEntry)>(capacity.max(1));
        let task = tokio::spawn(async move {
            let mut batch = Vec::new();
            while rx.recv_many(&mut batch, TIMELINE_BATCH).await > 0 {
                let entries = std::mem::take(&mut batch);
                let sink = sink.clone();
                let written = tokio::task::spawn_blocking(move || {
                    sink.append(&entries).map_err(|e| e.to_string())
                })
                .await
                .unwrap_or_else(|e| Err(e.to_string()));
                if let Err(e) = written {
                    tracing::warn!(error = %e, "cannot write boot events to node histories");
                }
            }
        });
        let timeline = Arc::new(Timeline {
            tx,
            dropped: AtomicU64::new(0),
            ips: Mutex::new(HashMap::new()),
        });
        (timeline, TimelineWriter { task })
    }

    pub fn note(&self, node: Uuid, severity: Severity, kind: &str, text: String) {
        if self
            .tx
            .try_send((node, HistoryEntry::new(severity, kind, text)))
            .is_err()
        {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Remembers that `ip` was leased to `node`.
    pub fn learn_ip(&self, ip: Ipv4Addr, node: Uuid) {
        let mut ips = self.ips.lock().unwrap_or_else(|p| p.into_inner());
        if ips.len() >= Self::MAX_IPS && !ips.contains_key(&ip) {
            ips.clear();
        }
        ips.insert(ip, node);
    }

    pub fn node_of(&self, ip: std::net::IpAddr) -> Option<Uuid> {
        let std::net::IpAddr::V4(v4) = ip else {
            return None;
        };
        self.ips
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&v4)
            .copied()
    }
}

/// What a network boot loads. (Virtual media and the agent's own boot
/// join here as they come.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkBoot {
    /// The deploy kernel and ramdisk (`driver_info` deploy_kernel/_ramdisk).
    DeployRamdisk,
    /// The instance's kernel and ramdisk (`instance_info` kernel/ramdisk).
    InstanceKernel,
    /// The instance's ISO (`instance_info` boot_iso), sanbooted.
    InstanceIso,
}

impl NetworkBoot {
    /// What it is, for logs, scripts and timelines.
    pub fn describe(self) -> &'static str {
        match self {
            NetworkBoot::DeployRamdisk => "the deploy ramdisk",
            NetworkBoot::InstanceKernel => "the instance kernel and ramdisk",
            NetworkBoot::InstanceIso => "the instance ISO",
        }
    }
}

impl std::fmt::Display for NetworkBoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.describe())
    }
}

/// What a node should boot now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootAction {
    /// Boot over the network.
    Network(NetworkBoot),
    /// Boot its own disk (active local-boot nodes, adopted ones included).
    LocalDisk,
    /// Nothing to boot now, and why.
    Nothing(String),
    /// The node boots from virtual media its BMC presents
    /// (`redfish-virtual-media`): DHCP does not answer it at all.
    VirtualMedia,
}

/// What a network boot loads (references as the node holds them:
/// `http(s)://` URLs or `file://` paths).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BootImages {
    /// The deploy ramdisk (deploying other than ramdisk, cleaning, ...).
    pub deploy: bool,
    pub kernel: Option<String>,
    pub ramdisk: Option<String>,
    pub iso: Option<String>,
    /// Extra kernel parameters (kernel_append_params, ramdisk_kernel_arguments).
    pub append: String,
    /// The deploy ramdisk boots to inspect: it is told where to post its data.
    pub inspect: bool,
    /// The whole-disk image the agent writes (a `direct` deploy), served at
    /// `/images/<node>/image` while the node deploys.
    pub image: Option<String>,
}

/// The BootBackend's answer for one MAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeBoot {
    pub node: Uuid,
    pub name: Option<String>,
    pub state: State,
    pub action: BootAction,
    pub images: BootImages,
}

/// The images a network boot of this node loads.
pub fn images_of(node: &Node, action: &BootAction) -> BootImages {
    let text = |m: &serde_json::Map<String, serde_json::Value>, k: &str| {
        m.get(k)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let BootAction::Network(what) = *action else {
        return BootImages::default();
    };
    let append = [
        text(&node.instance_info, "kernel_append_params")
            .or_else(|| text(&node.driver_info, "kernel_append_params")),
        text(&node.instance_info, "ramdisk_kernel_arguments"),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" ");
    if what == NetworkBoot::DeployRamdisk {
        BootImages {
            deploy: true,
            kernel: text(&node.driver_info, "deploy_kernel"),
            ramdisk: text(&node.driver_info, "deploy_ramdisk"),
            iso: None,
            append,
            inspect: matches!(node.provision_state, State::Inspecting | State::InspectWait),
            image: (node.interfaces.deploy == "direct"
                && matches!(node.provision_state, State::Deploying | State::WaitCallBack))
            .then(|| text(&node.instance_info, "image_source"))
            .flatten(),
        }
    } else {
        BootImages {
            deploy: false,
            kernel: text(&node.instance_info, "kernel"),
            ramdisk: text(&node.instance_info, "ramdisk"),
            iso: text(&node.instance_info, "boot_iso"),
            append,
            inspect: false,
            image: None,
        }
    }
}

impl NodeBoot {
    /// The node as people name it.
    pub fn label(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.node.to_string())
    }
}

/// Derives the boot action from the node and the port the MAC belongs to.
pub fn action_of(node: &Node, port: &Port) -> BootAction {
    if node.interfaces.boot == "redfish-virtual-media" {
        return BootAction::VirtualMedia;
    }
    if !port.pxe_enabled {
        return BootAction::Nothing(format!("port {} has pxe_enabled = false", port.address));
    }
    state_action(node)
}

/// What the node's provision state boots, however it boots (the network,
/// or virtual media: its images are served the same way).
fn state_action(node: &Node) -> BootAction {
    let instance = || {
        let has = |k: &str| node.instance_info.get(k).is_some_and(|v| !v.is_null());
        if has("boot_iso") {
            NetworkBoot::InstanceIso
        } else {
            NetworkBoot::InstanceKernel
        }
    };
    match node.provision_state {
        // The ramdisk deploy boots the instance itself where others boot
        // the deploy ramdisk.
        State::Deploying | State::WaitCallBack if node.interfaces.deploy == "ramdisk" => {
            BootAction::Network(instance())
        }
        s if s.runs_ramdisk() => BootAction::Network(NetworkBoot::DeployRamdisk),
        State::Active => match node.boot_decision() {
            Some(BootDecision::Network) => BootAction::Network(instance()),
            _ => BootAction::LocalDisk,
        },
        other => BootAction::Nothing(format!("the node is {other}: nothing to boot")),
    }
}

/// The MAC → boot answer table, rebuilt from the store whenever a node or
/// port changes (at most every `debounce`), read without waiting.
pub struct BootBackend {
    source: Arc<dyn BootSource>,
    changes: watch::Receiver<u64>,
    table: RwLock<Arc<HashMap<Mac, NodeBoot>>>,
    /// Nodes per provision state at the last reload (for `/metrics`).
    by_state: RwLock<Arc<Vec<(String, u64)>>>,
    /// What MACs nobody enrolled boot while discovery is on.
    discovery: Option<NodeBoot>,
}

/// The answer for MACs nobody enrolled while discovery is on: the agent
/// ramdisk, told to post its inspection data (the node is the nil UUID).
pub fn discovery_boot(kernel: &str, ramdisk: &str, append: &str) -> NodeBoot {
    NodeBoot {
        node: Uuid::nil(),
        name: Some("discovery".into()),
        state: State::InspectWait,
        action: BootAction::Network(NetworkBoot::DeployRamdisk),
        images: BootImages {
            deploy: true,
            kernel: Some(kernel.to_string()),
            ramdisk: Some(ramdisk.to_string()),
            iso: None,
            append: append.to_string(),
            inspect: true,
            image: None,
        },
    }
}

impl BootBackend {
    /// A backend over `source`, reloaded whenever `changes` moves, that
    /// answers MACs nobody enrolled with `discovery` (None: not at all).
    pub fn with_discovery(
        source: Arc<dyn BootSource>,
        changes: watch::Receiver<u64>,
        discovery: Option<NodeBoot>,
    ) -> Arc<BootBackend> {
        Arc::new(BootBackend {
            source,
            changes,
            table: RwLock::new(Arc::new(HashMap::new())),
            by_state: RwLock::new(Arc::new(Vec::new())),
            discovery,
        })
    }

    /// What a MAC boots: its node's answer, or, for a MAC nobody enrolled,
    /// the discovery ramdisk while discovery is on (None: ignore it).
    pub fn boot_for(&self, mac: Mac) -> Option<NodeBoot> {
        self.lookup(mac).or_else(|| self.discovery.clone())
    }

    /// Nodes per provision state, as of the last reload.
    pub fn nodes_by_state(&self) -> Arc<Vec<(String, u64)>> {
        self.by_state
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The answer for a MAC; None when it is not enrolled.
    pub fn lookup(&self, mac: Mac) -> Option<NodeBoot> {
        self.table
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&mac)
            .cloned()
    }

    /// Whether a node booting from the network now uses this image
    /// reference (the cache never evicts those).
    pub fn uses(&self, reference: &str) -> bool {
        let discovery = self.discovery.iter().any(|d| {
            [&d.images.kernel, &d.images.ramdisk]
                .into_iter()
                .any(|r| r.as_deref() == Some(reference))
        });
        discovery
            || self
                .table
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .values()
                .filter(|n| matches!(n.action, BootAction::Network(_)))
                .any(|n| {
                    let i = &n.images;
                    [&i.kernel, &i.ramdisk, &i.iso, &i.image]
                        .into_iter()
                        .any(|r| r.as_deref() == Some(reference))
                })
    }

    /// The answer for any of a node's MACs, by node UUID (the nil UUID:
    /// the discovery answer).
    pub fn by_node(&self, uuid: Uuid) -> Option<NodeBoot> {
        if uuid.is_nil() {
            return self.discovery.clone();
        }
        self.table
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .find(|n| n.node == uuid)
            .cloned()
    }

    /// Rebuilds the table now.
    pub async fn reload(&self) -> Result<usize, SourceError> {
        let source = self.source.clone();
        let (entries, by_state) = tokio::task::spawn_blocking(move || {
            Ok::<_, SourceError>((source.boot_entries()?, source.nodes_by_state()?))
        })
        .await??;
        let mut table = HashMap::with_capacity(entries.len());
        for (port, node) in entries {
            let action = action_of(&node, &port);
            // A node on virtual media fetches what its state needs (the
            // image the agent writes) from the boot HTTP server too.
            let images = match action {
                BootAction::VirtualMedia => images_of(&node, &state_action(&node)),
                ref a => images_of(&node, a),
            };
            table.insert(
                port.address,
                NodeBoot {
                    node: node.uuid,
                    name: node.name.clone(),
                    state: node.provision_state,
                    images,
                    action,
                },
            );
        }
        let n = table.len();
        *self.table.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(table);
        *self.by_state.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(by_state);
        Ok(n)
    }

    /// Keeps the table fresh until `stop` turns true.
    pub async fn run(self: Arc<Self>, debounce: Duration, mut stop: watch::Receiver<bool>) {
        let mut changes = self.changes.clone();
        loop {
            if let Err(e) = self.reload().await {
                tracing::error!(error = %e, "boot backend cannot read nodes and ports");
            }
            tokio::select! {
                r = changes.changed() => if r.is_err() { return },
                _ = stop.changed() => return,
            }
            // Let a burst of writes settle into one reload.
            tokio::time::sleep(debounce).await;
            changes.borrow_and_update();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Interfaces;
    use serde_json::json;

    /// A sink that keeps what it is given.
    #[derive(Default)]
    struct Kept(Mutex<Vec<(Uuid, HistoryEntry)>>);

    impl EventSink for Kept {
        fn append(&self, events: &[(Uuid, HistoryEntry)]) -> Result<(), SourceError> {
            self.0.lock().unwrap().extend_from_slice(events);
            Ok(())
        }
    }

    #[tokio::test]
    async fn the_timeline_writes_what_is_queued_when_it_finishes() {
        let sink = Arc::new(Kept::default());
        let (timeline, writer) = Timeline::start(sink.clone(), 1000);
        let node = Uuid::new_v4();
        for i in 0..600 {
            timeline.note(node, Severity::Info, "dhcp", format!("event {i}"));
        }
        drop(timeline);
        writer.finish().await;
        let kept = sink.0.lock().unwrap();
        assert_eq!(kept.len(), 600, "nothing queued is lost at exit");
        assert_eq!(kept[599].1.event, "event 599");
    }

    #[test]
    fn boot_action_table() {
        let mut node = Node::new(
            Uuid::new_v4(),
            "fake-hardware",
            Interfaces::default(),
            State::Enroll,
            crate::model::now(),
        );
        let mut port = Port::new("52:54:00:00:00:01".parse().unwrap(), node.uuid);
        let cases: Vec<(State, &str, Option<&str>, bool, BootAction)> = vec![
            (
                State::Enroll,
                "fake",
                None,
                false,
                BootAction::Nothing("the node is enroll: nothing to boot".into()),
            ),
            (
                State::Manageable,
                "fake",
                None,
                false,
                BootAction::Nothing("the node is manageable: nothing to boot".into()),
            ),
            (
                State::Deploying,
                "ramdisk",
                None,
                false,
                BootAction::Network(NetworkBoot::InstanceKernel),
            ),
            (
                State::WaitCallBack,
                "ramdisk",
                None,
                true,
                BootAction::Network(NetworkBoot::InstanceIso),
            ),
            (
                State::Deploying,
                "direct",
                None,
                false,
                BootAction::Network(NetworkBoot::DeployRamdisk),
            ),
            (
                State::CleanWait,
                "ramdisk",
                None,
                false,
                BootAction::Network(NetworkBoot::DeployRamdisk),
            ),
            (
                State::Active,
                "fake",
                Some("local"),
                false,
                BootAction::LocalDisk,
            ),
            (State::Active, "fake", None, false, BootAction::LocalDisk),
            (
                State::Active,
                "ramdisk",
                Some("network"),
                false,
                BootAction::Network(NetworkBoot::InstanceKernel),
            ),
            (
                State::DeployFailed,
                "ramdisk",
                None,
                false,
                BootAction::Nothing("the node is deploy failed: nothing to boot".into()),
            ),
        ];
        for (state, deploy, decision, iso, want) in cases {
            node.provision_state = state;
            node.interfaces.deploy = deploy.into();
            node.driver_internal_info.clear();
            if let Some(d) = decision {
                node.driver_internal_info
                    .insert("boot_decision".into(), json!(d));
            }
            node.instance_info.clear();
            if iso {
                node.instance_info
                    .insert("boot_iso".into(), json!("http://x/y.iso"));
            }
            assert_eq!(
                action_of(&node, &port),
                want,
                "{state} {deploy} {decision:?}"
            );
        }
        port.pxe_enabled = false;
        assert!(
            matches!(action_of(&node, &port), BootAction::Nothing(w) if w.contains("pxe_enabled = false"))
        );
    }
}
