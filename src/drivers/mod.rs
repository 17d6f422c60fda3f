//! Hardware types and their interfaces.
//!
//! A hardware type is a bundle of interfaces — power, management, boot,
//! deploy, network and the optional rest — each chosen per node through its
//! `*_interface` fields. The conductor reaches hardware only through the
//! traits here. Every method says whether it is idempotent (safe to retry).
//!
//! The hardware types are data: one row each in [`HARDWARE_TYPES`] (allowed
//! interfaces per kind, default first, and driver_info keys), and every
//! interface implementation is built once from [`IMPLEMENTATIONS`].

pub mod direct;
pub mod fake;
pub mod ipmi;
pub mod ipmitool;
pub mod pxe;
pub mod redfish;
pub mod vmedia;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::model::{HistoryEntry, Interfaces, Node, Port, PowerState, Severity};

/// A boxed future, so the traits stay object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why an interface refused or failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A required driver_info / instance_info key is missing.
    #[error("{0}")]
    MissingParameter(String),
    /// A parameter is present but wrong.
    #[error("{0}")]
    InvalidParameter(String),
    /// The hardware or a resource it needs failed.
    #[error("{0}")]
    Failed(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// Everything an interface may look at while working on one node. Interfaces
/// record what they did with [`Task::record`]; the conductor writes those
/// records into the node history together with the outcome.
pub struct Task {
    pub node: Node,
    pub ports: Vec<Port>,
    pub http: reqwest::Client,
    pub settings: Settings,
    records: Mutex<Vec<HistoryEntry>>,
}

/// Limits the interfaces honour, from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long an image reachability check may take.
    pub image_check_timeout: Duration,
    /// How long a power action may take to settle.
    pub power_state_change_timeout: Duration,
    /// Directories `file://` image references may point into.
    pub file_url_allowed_paths: Vec<std::path::PathBuf>,
    /// Where network-boot images are staged (None: not staged, as in unit tests).
    pub cache: Option<std::sync::Arc<crate::images::cache::Cache>>,
    /// Virtual media: where per-node ISOs are written (served by the boot
    /// HTTP server at `/vmedia/`), the boot loaders, the boot HTTP server's
    /// URL (set once it listens) and the inspection ramdisk's extra
    /// kernel parameters.
    pub vmedia: Vmedia,
}

/// What the virtual media boot interface needs from the appliance.
#[derive(Debug, Clone, Default)]
pub struct Vmedia {
    pub dir: Option<std::path::PathBuf>,
    pub loaders: crate::images::bootiso::Loaders,
    pub boot_url: Arc<std::sync::OnceLock<String>>,
    pub inspection_params: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            image_check_timeout: Duration::from_secs(10),
            power_state_change_timeout: Duration::from_secs(60),
            file_url_allowed_paths: ["/var/lib/rackboot", "/srv", "/tmp", "/var/tmp"]
                .iter()
                .map(std::path::PathBuf::from)
                .collect(),
            cache: None,
            vmedia: Vmedia::default(),
        }
    }
}

impl Task {
    pub fn new(node: Node, ports: Vec<Port>, http: reqwest::Client, settings: Settings) -> Task {
        Task {
            node,
            ports,
            http,
            settings,
            records: Mutex::new(Vec::new()),
        }
    }

    /// Notes an event for the node history (and the log).
    pub fn record(&self, severity: Severity, event_type: &str, event: impl Into<String>) {
        let event = event.into();
        // Logged at info when it is saved to the history (conductor::log_history).
        tracing::debug!(node = %self.node.uuid, event_type, "{event}");
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(HistoryEntry::new(severity, event_type, event));
    }

    /// Takes the records noted so far.
    pub fn take_records(&self) -> Vec<HistoryEntry> {
        std::mem::take(&mut *self.records.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Power control.
pub trait Power: Send + Sync {
    /// Checks driver_info without contacting the BMC. Idempotent.
    fn validate(&self, node: &Node) -> Result<()>;
    /// Reads the power state. Idempotent, safe to retry.
    fn get_power_state<'a>(&'a self, task: &'a Task) -> BoxFuture<'a, Result<PowerState>>;
    /// Moves the node to `target` and waits until it is there. `power on` /
    /// `power off` are idempotent; reboots are not.
    fn set_power_state<'a>(
        &'a self,
        task: &'a Task,
        target: PowerState,
    ) -> BoxFuture<'a, Result<()>>;
}

/// Boot devices a management interface can set.
pub const BOOT_DEVICES: &[&str] = &["pxe", "disk", "cdrom", "bios", "safe"];

/// Boot-device control.
pub trait Management: Send + Sync {
    /// Checks driver_info without contacting the BMC. Idempotent.
    fn validate(&self, node: &Node) -> Result<()>;
    /// Sets the next boot device. Idempotent.
    fn set_boot_device<'a>(
        &'a self,
        task: &'a mut Task,
        device: &'a str,
        persistent: bool,
    ) -> BoxFuture<'a, Result<()>>;
    /// Reads the boot device, if the hardware tells. Idempotent.
    fn get_boot_device<'a>(
        &'a self,
        task: &'a Task,
    ) -> BoxFuture<'a, Result<(Option<String>, Option<bool>)>>;
    /// The devices `set_boot_device` accepts.
    fn supported_boot_devices(&self) -> &'static [&'static str] {
        BOOT_DEVICES
    }
    /// Sends a diagnostic interrupt (NMI). Not idempotent.
    fn inject_nmi<'a>(&'a self, task: &'a mut Task) -> BoxFuture<'a, Result<String>> {
        let _ = task;
        Box::pin(async {
            Err(Error::InvalidParameter(
                "this management interface cannot inject an NMI".into(),
            ))
        })
    }
    /// Whether the BMC presents images as virtual media.
    fn has_virtual_media(&self) -> bool {
        false
    }
    /// Inserts the image at `url` as a `device` (`cdrom`, `disk`, `floppy`),
    /// ejecting what that device held. Says what it did. Idempotent.
    fn attach_virtual_media<'a>(
        &'a self,
        task: &'a mut Task,
        device: &'a str,
        url: &'a str,
    ) -> BoxFuture<'a, Result<String>> {
        let _ = (task, device, url);
        Box::pin(async {
            Err(Error::InvalidParameter(
                "this management interface has no virtual media".into(),
            ))
        })
    }
    /// Ejects the `devices` (all when empty). Says what it did. Idempotent.
    fn detach_virtual_media<'a>(
        &'a self,
        task: &'a mut Task,
        devices: &'a [String],
    ) -> BoxFuture<'a, Result<String>> {
        let _ = (task, devices);
        Box::pin(async {
            Err(Error::InvalidParameter(
                "this management interface has no virtual media".into(),
            ))
        })
    }
}

/// What a node boots and how it is told: Ironic's boot interface.
///
/// The ramdisk operations boot and forget the deploy ramdisk (cleaning);
/// the instance operations record, boot and forget what a deployed node
/// runs. Methods that make the machine boot get the node's whole
/// [`Bundle`], and reach power and boot-device control only through it.
pub trait Boot: Send + Sync {
    /// Checks that a later network boot of this node can work: ports, deploy
    /// images, the instance image. Touches no hardware; may read images.
    /// Idempotent.
    fn validate<'a>(&'a self, task: &'a Task) -> BoxFuture<'a, Result<()>>;
    /// Makes the node boot the deploy ramdisk now: stages it, sets the boot
    /// device and powers the machine on (or reboots it). Says how, for the
    /// history. Not idempotent: it may reboot a running machine.
    fn prepare_ramdisk<'a>(
        &'a self,
        task: &'a mut Task,
        bundle: &'a Bundle,
    ) -> BoxFuture<'a, Result<String>>;
    /// Forgets what [`Boot::prepare_ramdisk`] set up for this node. Sends no
    /// power action (virtual media is ejected at the BMC). Idempotent.
    fn clean_up_ramdisk<'a>(&'a self, task: &'a mut Task) -> BoxFuture<'a, Result<()>>;
    /// Records what the node should boot from now on (its boot decision),
    /// without touching the machine. Idempotent.
    fn prepare_instance<'a>(&'a self, task: &'a mut Task) -> BoxFuture<'a, Result<()>>;
    /// Makes a node whose instance network-boots boot it now: sets the boot
    /// device and powers the machine on (or reboots it). Says how, for the
    /// history. Not idempotent: it may reboot a running machine.
    fn boot_instance<'a>(
        &'a self,
        task: &'a mut Task,
        bundle: &'a Bundle,
    ) -> BoxFuture<'a, Result<String>>;
    /// Forgets what the node boots (its boot decision); sends no power
    /// action (virtual media is ejected at the BMC). Idempotent.
    fn clean_up_instance<'a>(&'a self, task: &'a mut Task) -> BoxFuture<'a, Result<()>>;
}

/// How a deploy ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeployOutcome {
    /// The node is deployed.
    Done,
    /// The node network-boots; the deploy ends when its ramdisk calls back
    /// (wait call-back), or fails after deploy_callback_timeout.
    Wait,
}

/// Deployment and takeover.
pub trait Deploy: Send + Sync {
    /// Checks instance_info for a deploy. Idempotent.
    fn validate(&self, node: &Node) -> Result<()>;
    /// Stages what a later boot needs (images), without touching the
    /// machine. Idempotent.
    fn prepare<'a>(&'a self, task: &'a mut Task) -> BoxFuture<'a, Result<()>>;
    /// Takes over a node that is already running (adoption). Touches nothing.
    /// Idempotent.
    fn take_over<'a>(&'a self, task: &'a mut Task) -> BoxFuture<'a, Result<()>>;
    /// Deploys the node, through the node's interfaces in `bundle`. Not
    /// idempotent.
    fn deploy<'a>(
        &'a self,
        task: &'a mut Task,
        bundle: &'a Bundle,
    ) -> BoxFuture<'a, Result<DeployOutcome>>;
    /// Tears the deployment down, through the node's interfaces in `bundle`;
    /// ends with the boot interface's clean-up, so the node's boot decision
    /// is forgotten. Idempotent.
    fn tear_down<'a>(&'a self, task: &'a mut Task, bundle: &'a Bundle)
        -> BoxFuture<'a, Result<()>>;
    /// Whether cleaning with this interface would write to the node's disks.
    fn cleaning_touches_disks(&self) -> bool;
}

/// One row of the hardware-type table: a type's interfaces per kind, default
/// first, and the driver_info keys its interfaces read.
pub struct HardwareTypeRow {
    pub name: &'static str,
    pub interfaces: &'static [(&'static str, &'static [&'static str])],
    pub properties: &'static [&'static [(&'static str, &'static str)]],
}

/// The hardware types this appliance has. A new type is a new row (and its
/// interfaces a new entry in [`IMPLEMENTATIONS`]); nothing else changes.
pub const HARDWARE_TYPES: &[HardwareTypeRow] = &[
    HardwareTypeRow {
        name: "fake-hardware",
        interfaces: &[
            ("power", &["fake"]),
            ("management", &["fake"]),
            ("boot", &["fake", "ipxe", "pxe"]),
            ("deploy", &["fake", "ramdisk", "direct"]),
            ("network", &["noop", "flat"]),
            ("bios", &["no-bios", "fake"]),
            ("console", &["no-console", "fake"]),
            ("firmware", &["no-firmware", "fake"]),
            ("inspect", &["no-inspect", "fake", "agent"]),
            ("raid", &["no-raid", "fake"]),
            ("rescue", &["no-rescue", "fake"]),
            ("storage", &["noop", "fake"]),
            ("vendor", &["no-vendor", "fake"]),
        ],
        properties: &[fake::PROPERTIES, pxe::PROPERTIES],
    },
    HardwareTypeRow {
        name: "ipmi",
        interfaces: &[
            ("power", &["ipmi", "ipmitool"]),
            ("management", &["ipmi", "ipmitool"]),
            ("boot", &["ipxe", "pxe"]),
            // Ironic's default: the agent writes the image.
            ("deploy", &["direct", "ramdisk"]),
            ("network", &["noop", "flat"]),
            // The optional kinds this appliance implements only as "none".
            ("bios", &["no-bios"]),
            ("console", &["no-console"]),
            ("firmware", &["no-firmware"]),
            // In-band inspection with ironic-python-agent (Ironic's default).
            ("inspect", &["agent", "no-inspect"]),
            ("raid", &["no-raid"]),
            ("rescue", &["no-rescue"]),
            ("storage", &["noop"]),
            ("vendor", &["no-vendor"]),
        ],
        properties: &[ipmi::PROPERTIES, pxe::PROPERTIES],
    },
    HardwareTypeRow {
        name: "redfish",
        interfaces: &[
            ("power", &["redfish"]),
            ("management", &["redfish"]),
            ("boot", &["ipxe", "pxe", "redfish-virtual-media"]),
            ("deploy", &["direct", "ramdisk"]),
            ("network", &["noop", "flat"]),
            ("bios", &["no-bios"]),
            ("console", &["no-console"]),
            ("firmware", &["no-firmware"]),
            ("inspect", &["agent", "no-inspect"]),
            ("raid", &["no-raid"]),
            ("rescue", &["no-rescue"]),
            ("storage", &["noop"]),
            ("vendor", &["no-vendor"]),
        ],
        properties: &[redfish::PROPERTIES, pxe::PROPERTIES, vmedia::PROPERTIES],
    },
];

/// What interface constructors share.
pub struct Context {
    /// One session pool for every IPMI interface: one command in flight per BMC.
    ipmi_pool: Arc<ipmi::pool::Pool>,
    /// One connection (and session) per Redfish BMC.
    redfish_pool: Arc<redfish::client::Pool>,
}

impl Context {
    pub fn new(ipmi: ipmi::pool::PoolSettings, redfish: redfish::client::Settings) -> Context {
        Context {
            ipmi_pool: ipmi::pool::Pool::new(ipmi),
            redfish_pool: redfish::client::Pool::new(redfish),
        }
    }
}

/// How one interface implementation is built; the variant is its kind.
#[derive(Clone, Copy)]
pub enum Constructor {
    Power(fn(&Context) -> Arc<dyn Power>),
    Management(fn(&Context) -> Arc<dyn Management>),
    Boot(fn(&Context) -> Arc<dyn Boot>),
    Deploy(fn(&Context) -> Arc<dyn Deploy>),
}

/// The interface implementations, by name (unique per kind). Kinds without
/// an entry (network and the optional ones) have nothing to call.
pub const IMPLEMENTATIONS: &[(&str, Constructor)] = &[
    ("fake", Constructor::Power(|_| Arc::new(fake::FakePower))),
    (
        "ipmi",
        Constructor::Power(|c| {
            Arc::new(ipmi::IpmiPower {
                pool: c.ipmi_pool.clone(),
            })
        }),
    ),
    (
        "ipmitool",
        Constructor::Power(|_| Arc::new(ipmitool::IpmitoolPower)),
    ),
    (
        "redfish",
        Constructor::Power(|c| {
            Arc::new(redfish::RedfishPower {
                pool: c.redfish_pool.clone(),
            })
        }),
    ),
    (
        "fake",
        Constructor::Management(|_| Arc::new(fake::FakeManagement)),
    ),
    (
        "redfish",
        Constructor::Management(|c| {
            Arc::new(redfish::RedfishManagement {
                pool: c.redfish_pool.clone(),
            })
        }),
    ),
    (
        "ipmi",
        Constructor::Management(|c| {
            Arc::new(ipmi::IpmiManagement {
                pool: c.ipmi_pool.clone(),
            })
        }),
    ),
    (
        "ipmitool",
        Constructor::Management(|_| Arc::new(ipmitool::IpmitoolManagement)),
    ),
    ("fake", Constructor::Boot(|_| Arc::new(fake::FakeBoot))),
    ("ipxe", Constructor::Boot(|_| Arc::new(pxe::PxeBoot))),
    ("pxe", Constructor::Boot(|_| Arc::new(pxe::PxeBoot))),
    (
        "redfish-virtual-media",
        Constructor::Boot(|c| {
            Arc::new(vmedia::VirtualMediaBoot {
                management: Arc::new(redfish::RedfishManagement {
                    pool: c.redfish_pool.clone(),
                }),
            })
        }),
    ),
    ("fake", Constructor::Deploy(|_| Arc::new(fake::FakeDeploy))),
    (
        "ramdisk",
        Constructor::Deploy(|_| Arc::new(pxe::RamdiskDeploy)),
    ),
    (
        "direct",
        Constructor::Deploy(|_| Arc::new(direct::DirectDeploy)),
    ),
];

/// One hardware type: the interfaces it supports per kind, default first.
#[derive(Debug, Clone)]
pub struct HardwareType {
    pub name: &'static str,
    pub supported: BTreeMap<&'static str, Vec<&'static str>>,
    /// driver_info keys its interfaces read, with their meaning.
    pub properties: BTreeMap<&'static str, &'static str>,
}

impl HardwareType {
    fn from_row(row: &HardwareTypeRow) -> HardwareType {
        HardwareType {
            name: row.name,
            supported: row
                .interfaces
                .iter()
                .map(|(kind, names)| (*kind, names.to_vec()))
                .collect(),
            properties: row
                .properties
                .iter()
                .flat_map(|p| p.iter().copied())
                .collect(),
        }
    }

    /// The default interface of every kind (the first supported).
    pub fn defaults(&self) -> Interfaces {
        let mut i = Interfaces::default();
        for kind in Interfaces::KINDS {
            if let (Some(slot), Some(list)) = (i.get_mut(kind), self.supported.get(kind)) {
                *slot = list[0].to_string();
            }
        }
        i
    }
}

/// The hardware types and interface implementations this appliance has.
pub struct Registry {
    types: Vec<HardwareType>,
    power: BTreeMap<&'static str, Arc<dyn Power>>,
    management: BTreeMap<&'static str, Arc<dyn Management>>,
    boot: BTreeMap<&'static str, Arc<dyn Boot>>,
    deploy: BTreeMap<&'static str, Arc<dyn Deploy>>,
    context: Context,
}

/// A node's resolved interfaces.
#[derive(Clone)]
pub struct Bundle {
    pub power: Arc<dyn Power>,
    pub management: Arc<dyn Management>,
    pub boot: Arc<dyn Boot>,
    pub deploy: Arc<dyn Deploy>,
}

/// Why a node's driver or interface choice is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChoiceError {
    #[error("No valid host was found. Reason: No conductor service registered which supports driver {0} for conductor group \"\". Ensure the driver is valid and enabled.")]
    UnknownDriver(String),
    #[error("Could not find the following interface in the 'ironic.hardware.interfaces.{kind}' entrypoint: {name}. Valid interfaces are {valid}.")]
    UnknownInterface {
        kind: String,
        name: String,
        valid: String,
    },
}

impl Registry {
    /// The standard registry with default BMC session limits (tests).
    #[cfg(test)]
    pub fn standard() -> Registry {
        Registry::new(
            HARDWARE_TYPES,
            Context::new(
                ipmi::pool::PoolSettings::default(),
                redfish::client::Settings::default(),
            ),
        )
    }

    /// A registry of the hardware types in `rows`, each interface built
    /// once, from [`IMPLEMENTATIONS`], with `context`.
    pub fn new(rows: &[HardwareTypeRow], context: Context) -> Registry {
        let mut power = BTreeMap::new();
        let mut management = BTreeMap::new();
        let mut boot = BTreeMap::new();
        let mut deploy = BTreeMap::new();
        for (name, make) in IMPLEMENTATIONS {
            match make {
                Constructor::Power(f) => {
                    power.insert(*name, f(&context));
                }
                Constructor::Management(f) => {
                    management.insert(*name, f(&context));
                }
                Constructor::Boot(f) => {
                    boot.insert(*name, f(&context));
                }
                Constructor::Deploy(f) => {
                    deploy.insert(*name, f(&context));
                }
            }
        }
        Registry {
            types: rows.iter().map(HardwareType::from_row).collect(),
            power,
            management,
            boot,
            deploy,
            context,
        }
    }

    /// Closes the BMC sessions kept open (at shutdown).
    pub async fn close_sessions(&self) {
        self.context.ipmi_pool.close_all().await;
        self.context.redfish_pool.close_all().await;
    }

    pub fn hardware_types(&self) -> &[HardwareType] {
        &self.types
    }

    pub fn hardware_type(&self, name: &str) -> std::result::Result<&HardwareType, ChoiceError> {
        self.types
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| ChoiceError::UnknownDriver(name.to_string()))
    }

    /// Checks that `name` is an interface of `kind` that `driver` supports.
    pub fn check_interface(
        &self,
        driver: &str,
        kind: &str,
        name: &str,
    ) -> std::result::Result<(), ChoiceError> {
        let hw = self.hardware_type(driver)?;
        let valid = hw.supported.get(kind).cloned().unwrap_or_default();
        if valid.contains(&name) {
            Ok(())
        } else {
            Err(ChoiceError::UnknownInterface {
                kind: kind.to_string(),
                name: name.to_string(),
                valid: format!("{valid:?} for hardware type {driver}"),
            })
        }
    }

    /// Resolves a node's interfaces to implementations.
    pub fn bundle(&self, node: &Node) -> std::result::Result<Bundle, ChoiceError> {
        let i = &node.interfaces;
        for kind in ["power", "management", "boot", "deploy"] {
            self.check_interface(&node.driver, kind, i.get(kind).unwrap_or(""))?;
        }
        let missing = |kind: &str, name: &str| ChoiceError::UnknownInterface {
            kind: kind.to_string(),
            name: name.to_string(),
            valid: "none".to_string(),
        };
        Ok(Bundle {
            power: self
                .power
                .get(i.power.as_str())
                .cloned()
                .ok_or_else(|| missing("power", &i.power))?,
            management: self
                .management
                .get(i.management.as_str())
                .cloned()
                .ok_or_else(|| missing("management", &i.management))?,
            boot: self
                .boot
                .get(i.boot.as_str())
                .cloned()
                .ok_or_else(|| missing("boot", &i.boot))?,
            deploy: self
                .deploy
                .get(i.deploy.as_str())
                .cloned()
                .ok_or_else(|| missing("deploy", &i.deploy))?,
        })
    }

    /// driver_info keys a hardware type understands, with their meaning
    /// (none for an unknown type).
    pub fn driver_properties(&self, driver: &str) -> BTreeMap<&'static str, &'static str> {
        self.hardware_type(driver)
            .map(|t| t.properties.clone())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_choices() {
        let r = Registry::standard();
        let fake = r.hardware_type("fake-hardware").unwrap().defaults();
        assert_eq!(
            (
                fake.power.as_str(),
                fake.boot.as_str(),
                fake.deploy.as_str()
            ),
            ("fake", "fake", "fake")
        );
        let ipmi = r.hardware_type("ipmi").unwrap().defaults();
        assert_eq!(
            (
                ipmi.power.as_str(),
                ipmi.boot.as_str(),
                ipmi.deploy.as_str()
            ),
            ("ipmi", "ipxe", "direct")
        );
        assert_eq!(ipmi.vendor, "no-vendor");
        let cases = [
            ("fake-hardware", "boot", "ipxe", true),
            ("fake-hardware", "deploy", "ramdisk", true),
            ("fake-hardware", "power", "ipmi", false),
            ("ipmi", "power", "fake", false),
            ("ipmi", "power", "ipmitool", true),
            ("ipmi", "power", "redfish", false),
            ("ipmi", "nonsense", "fake", false),
            ("redfish", "power", "redfish", true),
            ("redfish", "power", "ipmi", false),
            ("redfish", "management", "redfish", true),
        ];
        for (driver, kind, name, ok) in cases {
            assert_eq!(
                r.check_interface(driver, kind, name).is_ok(),
                ok,
                "{driver} {kind} {name}"
            );
        }
        assert!(matches!(
            r.hardware_type("idrac"),
            Err(ChoiceError::UnknownDriver(_))
        ));
        let redfish = r.hardware_type("redfish").unwrap().defaults();
        assert_eq!(
            (
                redfish.power.as_str(),
                redfish.management.as_str(),
                redfish.boot.as_str(),
                redfish.deploy.as_str()
            ),
            ("redfish", "redfish", "ipxe", "direct")
        );
    }

    /// The table gives every type the interfaces it had when they were
    /// listed by hand (`Registry::with_ipmi`), in the same order.
    #[test]
    fn table_rows_keep_the_listed_interfaces_and_properties() {
        let optional = |fake: bool| {
            [
                ("bios", "no-bios"),
                ("console", "no-console"),
                ("firmware", "no-firmware"),
                ("raid", "no-raid"),
                ("rescue", "no-rescue"),
                ("storage", "noop"),
                ("vendor", "no-vendor"),
            ]
            .map(|(kind, none)| {
                let mut names = vec![none];
                if fake {
                    names.push("fake");
                }
                (kind, names)
            })
        };
        let mut fake_hw: BTreeMap<&str, Vec<&str>> = BTreeMap::from([
            ("power", vec!["fake"]),
            ("management", vec!["fake"]),
            ("boot", vec!["fake", "ipxe", "pxe"]),
            ("deploy", vec!["fake", "ramdisk", "direct"]),
            ("network", vec!["noop", "flat"]),
        ]);
        fake_hw.extend(optional(true));
        fake_hw.insert("inspect", vec!["no-inspect", "fake", "agent"]);
        let mut ipmi_hw: BTreeMap<&str, Vec<&str>> = BTreeMap::from([
            ("power", vec!["ipmi", "ipmitool"]),
            ("management", vec!["ipmi", "ipmitool"]),
            ("boot", vec!["ipxe", "pxe"]),
            ("deploy", vec!["direct", "ramdisk"]),
            ("network", vec!["noop", "flat"]),
        ]);
        ipmi_hw.extend(optional(false));
        ipmi_hw.insert("inspect", vec!["agent", "no-inspect"]);
        let r = Registry::standard();
        let names: Vec<_> = r.hardware_types().iter().map(|t| t.name).collect();
        assert_eq!(names, ["fake-hardware", "ipmi", "redfish"]);
        assert_eq!(r.hardware_type("fake-hardware").unwrap().supported, fake_hw);
        assert_eq!(r.hardware_type("ipmi").unwrap().supported, ipmi_hw);

        let keys = |p: &[&[(&'static str, &'static str)]]| -> BTreeMap<_, _> {
            p.iter().flat_map(|p| p.iter().copied()).collect()
        };
        assert_eq!(
            r.driver_properties("ipmi"),
            keys(&[ipmi::PROPERTIES, pxe::PROPERTIES])
        );
        assert!(r.driver_properties("ipmi").contains_key("ipmi_address"));
        assert_eq!(
            r.driver_properties("fake-hardware"),
            keys(&[fake::PROPERTIES, pxe::PROPERTIES])
        );
        assert!(r
            .driver_properties("fake-hardware")
            .contains_key("deploy_kernel"));
    }

    /// Every power, management, boot and deploy interface a row names has
    /// an implementation, so every choice the rows allow resolves.
    #[test]
    fn every_listed_interface_resolves() {
        let r = Registry::standard();
        for t in r.hardware_types() {
            for kind in ["power", "management", "boot", "deploy"] {
                for name in &t.supported[kind] {
                    let mut node = Node::new(
                        uuid::Uuid::new_v4(),
                        t.name,
                        t.defaults(),
                        crate::model::State::Enroll,
                        String::new(),
                    );
                    *node.interfaces.get_mut(kind).unwrap() = name.to_string();
                    assert!(r.bundle(&node).is_ok(), "{} {kind} {name}", t.name);
                }
            }
        }
    }
}
