//! A bare-metal node with Ironic's fields, and its history entries.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{PowerState, State};

/// The interface chosen for each capability of a node's hardware type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Interfaces {
    pub bios: String,
    pub boot: String,
    pub console: String,
    pub deploy: String,
    pub firmware: String,
    pub inspect: String,
    pub management: String,
    pub network: String,
    pub power: String,
    pub raid: String,
    pub rescue: String,
    pub storage: String,
    pub vendor: String,
}

impl Interfaces {
    /// The interface kinds, by the name Ironic's `*_interface` fields use.
    pub const KINDS: [&'static str; 13] = [
        "bios",
        "boot",
        "console",
        "deploy",
        "firmware",
        "inspect",
        "management",
        "network",
        "power",
        "raid",
        "rescue",
        "storage",
        "vendor",
    ];

    pub fn get(&self, kind: &str) -> Option<&str> {
        Some(match kind {
            "bios" => &self.bios,
            "boot" => &self.boot,
            "console" => &self.console,
            "deploy" => &self.deploy,
            "firmware" => &self.firmware,
            "inspect" => &self.inspect,
            "management" => &self.management,
            "network" => &self.network,
            "power" => &self.power,
            "raid" => &self.raid,
            "rescue" => &self.rescue,
            "storage" => &self.storage,
            "vendor" => &self.vendor,
            _ => return None,
        })
    }

    pub fn get_mut(&mut self, kind: &str) -> Option<&mut String> {
        Some(match kind {
            "bios" => &mut self.bios,
            "boot" => &mut self.boot,
            "console" => &mut self.console,
            "deploy" => &mut self.deploy,
            "firmware" => &mut self.firmware,
            "inspect" => &mut self.inspect,
            "management" => &mut self.management,
            "network" => &mut self.network,
            "power" => &mut self.power,
            "raid" => &mut self.raid,
            "rescue" => &mut self.rescue,
            "storage" => &mut self.storage,
            "vendor" => &mut self.vendor,
            _ => return None,
        })
    }
}

/// The `driver_internal_info` keys the appliance keeps, named once.
pub mod internal {
    /// How an active node boots: "local" or "network" ([`super::BootDecision`]).
    pub const BOOT_DECISION: &str = "boot_decision";
    /// The node was adopted and its disks were never cleaned since.
    pub const ADOPTED: &str = "adopted";
    /// When it was adopted.
    pub const ADOPTED_AT: &str = "adopted_at";
    /// Unix second by which the ramdisk must call back.
    pub const CALLBACK_DEADLINE: &str = "callback_deadline";
    /// The power state first seen at `manage` (enforced on adopted nodes).
    pub const FIRST_POWER_STATE: &str = "first_power_state";
    /// Power-state reads that failed in a row.
    pub const POWER_SYNC_FAILURES: &str = "power_sync_failures";
    /// The agent token issued at the ramdisk's first lookup (Ironic's key;
    /// shown masked, as every key holding "token").
    pub const AGENT_TOKEN: &str = "agent_secret_token";
    /// Where the running agent's command API is (from its heartbeat).
    pub const AGENT_URL: &str = "agent_url";
    /// The agent's version (from its heartbeat).
    pub const AGENT_VERSION: &str = "agent_version";
    /// When the agent last heartbeated (Unix seconds).
    pub const AGENT_LAST_HEARTBEAT: &str = "agent_last_heartbeat";
    /// The agent's TLS certificate, if it sent one.
    pub const AGENT_VERIFY_CA: &str = "agent_verify_ca";
}

/// How an active node boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootDecision {
    /// From its own disk.
    Local,
    /// Its instance over the network (the ramdisk deploy).
    Network,
}

impl BootDecision {
    pub fn as_str(self) -> &'static str {
        match self {
            BootDecision::Local => "local",
            BootDecision::Network => "network",
        }
    }
}

/// A node, with the Ironic fields the appliance keeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub uuid: Uuid,
    pub name: Option<String>,
    pub driver: String,
    #[serde(default)]
    pub driver_info: Map<String, Value>,
    #[serde(default)]
    pub driver_internal_info: Map<String, Value>,
    #[serde(default)]
    pub instance_info: Map<String, Value>,
    pub instance_uuid: Option<String>,
    #[serde(default)]
    pub properties: Map<String, Value>,
    #[serde(default)]
    pub extra: Map<String, Value>,
    pub provision_state: State,
    pub target_provision_state: Option<State>,
    pub provision_updated_at: Option<String>,
    pub power_state: Option<PowerState>,
    pub target_power_state: Option<PowerState>,
    pub last_error: Option<String>,
    pub maintenance: bool,
    pub maintenance_reason: Option<String>,
    pub fault: Option<String>,
    /// Who holds the node's lock: kept by the store's reservation
    /// compare-and-set, never written with the node's document.
    #[serde(skip)]
    pub reservation: Option<String>,
    pub protected: bool,
    pub protected_reason: Option<String>,
    pub retired: bool,
    pub retired_reason: Option<String>,
    pub owner: Option<String>,
    pub lessee: Option<String>,
    pub description: Option<String>,
    #[serde(default)]
    pub conductor_group: String,
    pub resource_class: Option<String>,
    pub automated_clean: Option<bool>,
    #[serde(default)]
    pub network_data: Map<String, Value>,
    pub boot_mode: Option<String>,
    pub secure_boot: Option<bool>,
    pub shard: Option<String>,
    pub parent_node: Option<String>,
    #[serde(default)]
    pub disable_power_off: bool,
    pub instance_name: Option<String>,
    /// The chassis the node is in.
    #[serde(default)]
    pub chassis_uuid: Option<Uuid>,
    /// The allocation that picked (or was backfilled for) the node.
    #[serde(default)]
    pub allocation_uuid: Option<Uuid>,
    /// When the last inspection started and ended (Ironic's fields).
    #[serde(default)]
    pub inspection_started_at: Option<String>,
    #[serde(default)]
    pub inspection_finished_at: Option<String>,
    /// The node's traits (standard os-traits names or `CUSTOM_…`), sorted.
    #[serde(default)]
    pub traits: Vec<String>,
    pub interfaces: Interfaces,
    pub created_at: String,
    pub updated_at: Option<String>,
    /// The stored row's version: every write checks it and moves it on,
    /// so a write made on a stale copy is refused (kept by the store).
    #[serde(skip)]
    pub version: u64,
}

impl Node {
    /// Moves to provision state `to`: a stable state has no target, any
    /// other keeps its default target (Ironic's TaskManager rule); the
    /// change time is now.
    pub fn enter(&mut self, to: super::states::State) {
        use super::states::State as S;
        let cleaning = |s: S| matches!(s, S::Cleaning | S::CleanWait | S::CleanHold);
        // Within one cleaning the target stays: `manageable` for manual
        // cleaning (and its failure), `available` for automated.
        let keep = cleaning(self.provision_state)
            && (cleaning(to) || to == S::CleanFailed)
            && self.target_provision_state.is_some();
        self.provision_state = to;
        if !keep {
            self.target_provision_state = if to.is_stable() {
                None
            } else {
                to.default_target()
            };
        }
        self.provision_updated_at = Some(super::now());
    }

    /// How the node boots once active, if decided.
    pub fn boot_decision(&self) -> Option<BootDecision> {
        match self
            .driver_internal_info
            .get(internal::BOOT_DECISION)
            .and_then(Value::as_str)
        {
            Some("local") => Some(BootDecision::Local),
            Some("network") => Some(BootDecision::Network),
            _ => None,
        }
    }

    /// Records (or, with `None`, forgets) how the node boots once active.
    pub fn set_boot_decision(&mut self, decision: Option<BootDecision>) {
        match decision {
            Some(d) => self
                .driver_internal_info
                .insert(internal::BOOT_DECISION.into(), Value::from(d.as_str())),
            None => self.driver_internal_info.remove(internal::BOOT_DECISION),
        };
    }

    /// The unix second by which the ramdisk must call back, if waiting.
    pub fn callback_deadline(&self) -> Option<i64> {
        self.driver_internal_info
            .get(internal::CALLBACK_DEADLINE)
            .and_then(Value::as_i64)
    }

    /// Sets (or clears) the call-back deadline.
    pub fn set_callback_deadline(&mut self, deadline: Option<i64>) {
        match deadline {
            Some(d) => self
                .driver_internal_info
                .insert(internal::CALLBACK_DEADLINE.into(), Value::from(d)),
            None => self
                .driver_internal_info
                .remove(internal::CALLBACK_DEADLINE),
        };
    }

    /// The agent token issued for this boot of the ramdisk, if any.
    pub fn agent_token(&self) -> Option<&str> {
        self.driver_internal_info
            .get(internal::AGENT_TOKEN)
            .and_then(Value::as_str)
    }

    /// Forgets the agent of the last boot: its token, URL and certificate
    /// (before the node boots a ramdisk again, and once it is done with one).
    pub fn wipe_agent(&mut self) {
        for key in [
            internal::AGENT_TOKEN,
            internal::AGENT_URL,
            internal::AGENT_VERIFY_CA,
        ] {
            self.driver_internal_info.remove(key);
        }
    }

    /// Marks the node adopted (at `at`), or, with `None`, no longer so: its
    /// disks were written or cleaned since.
    pub fn set_adopted(&mut self, at: Option<String>) {
        match at {
            Some(at) => {
                self.driver_internal_info
                    .insert(internal::ADOPTED.into(), Value::Bool(true));
                self.driver_internal_info
                    .insert(internal::ADOPTED_AT.into(), Value::String(at));
            }
            None => {
                self.driver_internal_info.remove(internal::ADOPTED);
            }
        }
    }

    /// Whether boot devices are set for UEFI: yes unless `boot_mode` is
    /// `bios` (Ironic's default boot mode is UEFI).
    pub fn boots_uefi(&self) -> bool {
        self.boot_mode.as_deref() != Some("bios")
    }

    /// A new node in `state` with no optional fields set.
    pub fn new(
        uuid: Uuid,
        driver: &str,
        interfaces: Interfaces,
        state: State,
        now: String,
    ) -> Node {
        Node {
            uuid,
            name: None,
            driver: driver.to_string(),
            driver_info: Map::new(),
            driver_internal_info: Map::new(),
            instance_info: Map::new(),
            instance_uuid: None,
            properties: Map::new(),
            extra: Map::new(),
            provision_state: state,
            target_provision_state: None,
            provision_updated_at: None,
            power_state: None,
            target_power_state: None,
            last_error: None,
            maintenance: false,
            maintenance_reason: None,
            fault: None,
            reservation: None,
            protected: false,
            protected_reason: None,
            retired: false,
            retired_reason: None,
            owner: None,
            lessee: None,
            description: None,
            conductor_group: String::new(),
            resource_class: None,
            automated_clean: None,
            network_data: Map::new(),
            boot_mode: None,
            secure_boot: None,
            shard: None,
            parent_node: None,
            disable_power_off: false,
            instance_name: None,
            chassis_uuid: None,
            allocation_uuid: None,
            inspection_started_at: None,
            inspection_finished_at: None,
            traits: Vec::new(),
            interfaces,
            created_at: now,
            updated_at: None,
            version: 0,
        }
    }

    /// The name if the node has one, else its UUID: how messages refer to it.
    pub fn ident(&self) -> String {
        match &self.name {
            Some(n) => n.clone(),
            None => self.uuid.to_string(),
        }
    }

    /// True once the node was brought to `active` by adoption rather than by
    /// a deploy of this appliance.
    pub fn is_adopted(&self) -> bool {
        self.driver_internal_info
            .get(internal::ADOPTED)
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }
}

/// How serious a history entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "INFO",
            Severity::Warning => "WARNING",
            Severity::Error => "ERROR",
        }
    }
}

/// One row of a node's history (Ironic's node history shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub uuid: Uuid,
    pub created_at: String,
    pub severity: Severity,
    /// What kind of event: `provisioning`, `power`, `driver`, `api`, `startup`…
    pub event_type: String,
    pub event: String,
    pub conductor: Option<String>,
    pub user: Option<String>,
}

impl HistoryEntry {
    pub fn new(severity: Severity, event_type: &str, event: impl Into<String>) -> HistoryEntry {
        HistoryEntry {
            uuid: Uuid::new_v4(),
            created_at: super::now(),
            severity,
            event_type: event_type.to_string(),
            event: event.into(),
            conductor: None,
            user: None,
        }
    }
}
