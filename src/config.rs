//! Configuration: TOML with embedded defaults, validated once with errors that
//! say which key is wrong and how to fix it. Every limit lives here.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};

use crate::pxe::dhcp::handler::Mode;
pub use crate::pxe::dhcp::handler::ProxyStrategy;

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config: {0}")]
    Invalid(String),
}

/// A duration written as `500ms`, `30s`, `5m`, `1h` or `2d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl Dur {
    pub fn parse(s: &str) -> Result<Dur, String> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: u64 = num.parse().map_err(|_| {
            format!("{s:?} is not a duration; write e.g. \"500ms\", \"30s\", \"5m\", \"1h\"")
        })?;
        let d = match unit {
            "ms" => Duration::from_millis(n),
            "s" | "" => Duration::from_secs(n),
            "m" => Duration::from_secs(n * 60),
            "h" => Duration::from_secs(n * 3600),
            "d" => Duration::from_secs(n * 86400),
            _ => {
                return Err(format!(
                    "{s:?} has an unknown unit {unit:?}; use ms, s, m, h or d"
                ))
            }
        };
        Ok(Dur(d))
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Secs(u64),
        }
        match Raw::deserialize(d)? {
            Raw::Text(s) => Dur::parse(&s).map_err(serde::de::Error::custom),
            Raw::Secs(n) => Ok(Dur(Duration::from_secs(n))),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub data: Data,
    pub api: Api,
    pub http: Http,
    pub tftp: Tftp,
    pub dhcp: Dhcp,
    pub conductor: Conductor,
    pub images: Images,
    pub inspector: Inspector,
    pub discovery: Discovery,
    pub agent: Agent,
    /// `[vmedia]`: the boot loaders of the virtual media ISOs.
    pub vmedia: crate::images::bootiso::Loaders,
}

/// `[inspector]`: what in-band inspection does with the data the agent
/// posts (Ironic's option names).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Inspector {
    /// Which NICs become ports: "pxe", "active", "all" or "disabled".
    pub add_ports: crate::inspection::AddPorts,
    /// Which existing ports are kept: "all", "present" or "added".
    pub keep_ports: crate::inspection::KeepPorts,
    /// Set each port's pxe_enabled from the NIC the ramdisk booted from.
    pub update_pxe_enabled: bool,
    /// The hooks run on the data, in order (Ironic's names).
    pub hooks: Vec<String>,
    /// Power the node off once the data is processed.
    pub power_off: bool,
    /// Largest inspection data body accepted (`/v1/continue_inspection`).
    pub max_data_bytes: usize,
    /// Extra kernel parameters of the inspection ramdisk.
    pub extra_kernel_params: String,
}

impl Default for Inspector {
    fn default() -> Self {
        let d = crate::inspection::Settings::default();
        Inspector {
            add_ports: d.add_ports,
            keep_ports: d.keep_ports,
            update_pxe_enabled: d.update_pxe_enabled,
            hooks: d.hooks,
            power_off: true,
            max_data_bytes: 16 << 20,
            extra_kernel_params: String::new(),
        }
    }
}

/// `[discovery]`: unknown machines that network-boot on the provisioning
/// interface get the inspection ramdisk and are enrolled from what it
/// reports. Off unless asked for.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Discovery {
    pub enabled: bool,
    /// The hardware type discovered nodes get (e.g. "ipmi").
    pub driver: Option<String>,
    /// The ramdisk unknown machines boot (file:// or http(s)://).
    pub deploy_kernel: Option<String>,
    pub deploy_ramdisk: Option<String>,
    /// Kernel parameters of the discovery ramdisk (e.g. "console=ttyS0").
    pub kernel_append_params: String,
    /// Resource class discovered nodes get.
    pub resource_class: Option<String>,
}

/// `[agent]`: how the conductor calls ironic-python-agent's command API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Agent {
    /// Deadline of one call to the agent.
    pub command_timeout: Dur,
    /// Tries of a call whose connection fails.
    pub max_command_attempts: u32,
    /// Wait between two reads of a running command.
    pub poll_interval: Dur,
    /// Reads of a running command before it counts as stuck.
    pub poll_attempts: u32,
    /// Largest answer read from the agent.
    pub max_answer_bytes: usize,
}

impl Default for Agent {
    fn default() -> Self {
        let d = crate::conductor::agent_client::AgentSettings::default();
        Agent {
            command_timeout: Dur(d.command_timeout),
            max_command_attempts: d.max_command_attempts,
            poll_interval: Dur(d.poll_interval),
            poll_attempts: d.poll_attempts,
            max_answer_bytes: d.max_answer_bytes,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Images {
    /// Size cap of the image cache (`<data dir>/cache`), in MiB.
    pub cache_size_mib: u64,
    /// Longest silence while downloading an image.
    pub read_timeout: Dur,
}

impl Default for Images {
    fn default() -> Self {
        Images {
            cache_size_mib: 20480,
            read_timeout: Dur(Duration::from_secs(60)),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Data {
    /// Where the database (`rackboot.db`) and the image cache (`cache/`) live.
    pub dir: PathBuf,
    /// History rows kept per node.
    pub history_max_entries: usize,
    /// SQLite reader connections beside the one writer: reads (API listings,
    /// boot backend reloads, the sync loop) run this many at once, never
    /// waiting for a write (WAL).
    pub readers: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Auth {
    None,
    HttpBasic,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Api {
    pub listen: SocketAddr,
    pub auth: Auth,
    /// htpasswd file with bcrypt entries, for `auth = "http_basic"`.
    pub htpasswd: Option<PathBuf>,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Longest a request may take.
    pub request_timeout: Dur,
    /// Requests served at once; more wait.
    pub max_concurrent_requests: usize,
    /// Largest page a listing returns (Ironic's `[api]max_limit`).
    pub max_limit: usize,
    /// Open connections at once; further clients wait in the backlog.
    pub max_connections: usize,
    /// A connection that moves no byte this long is closed.
    pub idle_timeout: Dur,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Http {
    pub listen: SocketAddr,
    pub public_url: Option<String>,
    /// Open boot HTTP connections at once (a boot storm's worth).
    pub max_connections: usize,
    /// A connection that moves no byte this long is closed.
    pub idle_timeout: Dur,
    /// Largest request body (heartbeats are small).
    pub max_body_bytes: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tftp {
    pub listen: SocketAddr,
    pub root: PathBuf,
    /// Largest block size granted (MTU − 32 for IPv4 on a 1500-byte link).
    pub max_blksize: u16,
    /// Largest window granted (RFC 7440).
    pub max_windowsize: u16,
    /// Retransmission timeout unless the client asks for one.
    pub timeout: Dur,
    /// Retransmissions of a packet before a transfer is dropped.
    pub retries: u32,
    /// Transfers at once; more are refused with an ERROR.
    pub max_transfers: usize,
}

/// `[dhcp] mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DhcpMode {
    /// No DHCP server (the default: one must never start by surprise).
    Off,
    /// This server hands out addresses from `range`.
    Authoritative,
    /// Another server hands out addresses; this one tells PXE clients what
    /// to boot.
    Proxy,
}

impl DhcpMode {
    /// The value as written in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            DhcpMode::Off => "off",
            DhcpMode::Authoritative => "authoritative",
            DhcpMode::Proxy => "proxy",
        }
    }

    /// The DHCP server's mode, or `None` when DHCP is off.
    pub fn server(self) -> Option<Mode> {
        match self {
            DhcpMode::Off => None,
            DhcpMode::Authoritative => Some(Mode::Authoritative),
            DhcpMode::Proxy => Some(Mode::Proxy),
        }
    }
}

/// `[dhcp] unknown`: what MACs that are not enrolled get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unknown {
    /// Nothing.
    Ignore,
    /// An address, never a boot file (authoritative mode only).
    Allow,
}

/// `[dhcp] range`: the pool, first and last address included, written
/// `["first", "last"]` (`[]`: none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub first: Ipv4Addr,
    pub last: Ipv4Addr,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Dhcp {
    #[serde(deserialize_with = "dhcp_key::mode")]
    pub mode: DhcpMode,
    pub interface: Option<String>,
    #[serde(deserialize_with = "dhcp_key::range")]
    pub range: Option<Range>,
    pub lease_time: Dur,
    /// Option 3.
    #[serde(deserialize_with = "dhcp_key::router")]
    pub router: Option<Ipv4Addr>,
    /// Option 6.
    #[serde(deserialize_with = "dhcp_key::dns")]
    pub dns: Vec<Ipv4Addr>,
    #[serde(deserialize_with = "dhcp_key::unknown")]
    pub unknown: Unknown,
    /// Option 54 and siaddr; default: the interface's IPv4 address.
    #[serde(deserialize_with = "dhcp_key::server_address")]
    pub server_address: Option<Ipv4Addr>,
    /// Option 1; default: the interface's netmask.
    #[serde(deserialize_with = "dhcp_key::subnet_mask")]
    pub subnet_mask: Option<Ipv4Addr>,
    /// Option 15.
    pub domain: Option<String>,
    /// How long an offered address is held for the client it was offered to.
    pub offer_hold: Dur,
    /// How often changed leases are written to the database.
    pub lease_flush_interval: Dur,
    /// Proxy mode, per firmware: "offer" (boot file in the proxy offer) or
    /// "port4011" (the firmware asks the PXE boot server on 4011).
    #[serde(deserialize_with = "dhcp_key::proxy_bios")]
    pub proxy_bios: ProxyStrategy,
    #[serde(deserialize_with = "dhcp_key::proxy_uefi")]
    pub proxy_uefi: ProxyStrategy,
    /// Loader file names (TFTP root and `/assets/`).
    pub bios_loader: String,
    pub uefi_loader: String,
    pub arm64_loader: String,
    /// Answer IPv6 router solicitations on the interface (ends iPXE's wait).
    pub router_advertisements: bool,
    /// DHCP events waiting to be written to node histories, at most.
    pub event_queue: usize,
    /// UDP ports (tests may move them).
    pub port: u16,
    pub pxe_port: u16,
}

/// A typed `[dhcp]` value, and the words that refuse anything else.
trait DhcpValue: DeserializeOwned {
    /// Follows `[dhcp] key = "value"` in the error.
    const REFUSAL: &'static str;
}

impl DhcpValue for Ipv4Addr {
    const REFUSAL: &'static str = "is not an IPv4 address (write e.g. \"10.77.0.1\")";
}

impl DhcpValue for DhcpMode {
    const REFUSAL: &'static str = "is invalid; use \"off\", \"authoritative\" or \"proxy\"";
}

impl DhcpValue for Unknown {
    const REFUSAL: &'static str = "is invalid; use \"ignore\" (answer enrolled MACs only) or \"allow\" (addresses, never boot files, for others)";
}

impl DhcpValue for ProxyStrategy {
    const REFUSAL: &'static str = "is invalid; use \"offer\" or \"port4011\"";
}

/// `deserialize_with` readers for the typed `[dhcp]` keys. The value's own
/// type does the one parse; what it refuses is reported with the key and
/// what the key accepts (serde's "unknown variant" or "invalid IPv4 address
/// syntax" name neither).
mod dhcp_key {
    use super::*;

    /// A value as the operator wrote it.
    fn shown(v: &toml::Value) -> String {
        match v {
            toml::Value::String(s) => format!("{s:?}"),
            other => other.to_string(),
        }
    }

    fn typed<T: DhcpValue>(v: &toml::Value) -> Option<T> {
        T::deserialize(v.clone()).ok()
    }

    fn one<'de, D: Deserializer<'de>, T: DhcpValue>(d: D, key: &str) -> Result<T, D::Error> {
        let v = toml::Value::deserialize(d)?;
        typed(&v)
            .ok_or_else(|| D::Error::custom(format!("[dhcp] {key} = {} {}", shown(&v), T::REFUSAL)))
    }

    fn list<'de, D: Deserializer<'de>, T: DhcpValue>(
        d: D,
        key: &str,
        example: &str,
    ) -> Result<Vec<T>, D::Error> {
        let toml::Value::Array(items) = toml::Value::deserialize(d)? else {
            return Err(D::Error::custom(format!(
                "[dhcp] {key} must be a list, such as {example}"
            )));
        };
        items
            .iter()
            .map(|v| {
                typed(v).ok_or_else(|| {
                    D::Error::custom(format!("[dhcp] {key}: {} {}", shown(v), T::REFUSAL))
                })
            })
            .collect()
    }

    pub fn mode<'de, D: Deserializer<'de>>(d: D) -> Result<DhcpMode, D::Error> {
        one(d, "mode")
    }
    pub fn unknown<'de, D: Deserializer<'de>>(d: D) -> Result<Unknown, D::Error> {
        one(d, "unknown")
    }
    pub fn proxy_bios<'de, D: Deserializer<'de>>(d: D) -> Result<ProxyStrategy, D::Error> {
        one(d, "proxy_bios")
    }
    pub fn proxy_uefi<'de, D: Deserializer<'de>>(d: D) -> Result<ProxyStrategy, D::Error> {
        one(d, "proxy_uefi")
    }
    pub fn router<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Ipv4Addr>, D::Error> {
        one(d, "router").map(Some)
    }
    pub fn server_address<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Ipv4Addr>, D::Error> {
        one(d, "server_address").map(Some)
    }
    pub fn subnet_mask<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Ipv4Addr>, D::Error> {
        one(d, "subnet_mask").map(Some)
    }
    pub fn dns<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Ipv4Addr>, D::Error> {
        list(d, "dns", "[\"10.77.0.1\"]")
    }
    pub fn range<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Range>, D::Error> {
        match list(d, "range", "[\"10.77.0.100\", \"10.77.0.199\"]")?[..] {
            [] => Ok(None),
            [first, last] if first <= last => Ok(Some(Range { first, last })),
            [first, last] => Err(D::Error::custom(format!(
                "[dhcp] range = [\"{first}\", \"{last}\"] starts after it ends; write the lower address first"
            ))),
            _ => Err(D::Error::custom(
                "[dhcp] range must be two addresses: [\"first\", \"last\"]",
            )),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Conductor {
    /// Name shown as `reservation`/`conductor`; default: the host name.
    pub host: Option<String>,
    /// Host names whose node reservations start-up takes over as its own.
    pub take_over_hosts: Vec<String>,
    pub sync_power_state_interval: Dur,
    pub force_power_state_during_sync: bool,
    pub power_state_sync_max_retries: u32,
    /// Nodes the sync loop reads at once.
    pub power_state_sync_workers: usize,
    /// A BMC session unused this long is closed and re-opened on next use.
    pub ipmi_session_idle_timeout: Dur,
    /// A BMC session used this recently is kept open past the idle timeout
    /// with a Get Device ID at half of it; zero closes sessions when idle.
    pub ipmi_session_keep: Dur,
    /// BMC calls in flight at once, over all BMCs (one per BMC at most).
    pub ipmi_max_concurrent_calls: usize,
    /// Wait for the first answer to an IPMI packet; doubled on each retransmit.
    pub ipmi_retry_first_wait: Dur,
    /// Sends of one IPMI packet before the BMC counts as unreachable.
    pub ipmi_tries: u32,
    /// How long a connection to a Redfish BMC may take.
    pub redfish_connect_timeout: Dur,
    /// How long a Redfish BMC may take to answer one request.
    pub redfish_read_timeout: Dur,
    /// Redfish requests in flight at once, over all BMCs.
    pub redfish_max_concurrent_calls: usize,
    /// Redfish requests in flight at once to one BMC.
    pub redfish_calls_per_bmc: usize,
    /// Redfish BMC connections (and sessions) kept open.
    pub redfish_connection_cache_size: usize,
    /// Tries of a Redfish request whose connection the BMC did not accept.
    pub redfish_connection_attempts: u32,
    /// Wait between those tries.
    pub redfish_connection_retry_interval: Dur,
    /// Authentication of nodes without driver_info/redfish_auth_type:
    /// auto, session or basic.
    pub redfish_auth_type: String,
    pub automated_clean: bool,
    /// Workflows (manage, adopt, deploy, power…) running at once.
    pub max_workers: usize,
    /// How long a request waits for a busy node before 409 NodeLocked.
    pub node_locked_wait: Dur,
    /// How long a verb waits for a quick workflow before answering 202.
    pub answer_wait: Dur,
    /// How long a node waits in `wait call-back` for its ramdisk's heartbeat
    /// before the deploy fails (Ironic's deploy_callback_timeout).
    pub deploy_callback_timeout: Dur,
    /// How long a node waits in `clean wait` for the deploy ramdisk's
    /// heartbeat before cleaning fails (Ironic's clean_callback_timeout).
    pub clean_callback_timeout: Dur,
    /// How long a node waits in `inspect wait` for its inspection data
    /// before inspection fails (Ironic's inspect_wait_timeout; 0: forever).
    pub inspect_wait_timeout: Dur,
    pub power_state_change_timeout: Dur,
    /// Deadline of one image reachability check.
    pub image_check_timeout: Dur,
    /// How long SIGTERM waits for running workflows.
    pub shutdown_timeout: Dur,
    /// Directories `file://` image references may point into (the data dir
    /// is always allowed).
    pub file_url_allowed_paths: Vec<PathBuf>,
    /// Priorities of the agent's clean steps that replace its own
    /// (`"interface.step:priority"`, Ironic's form).
    pub clean_step_priority_override: Vec<String>,
}

impl Default for Data {
    fn default() -> Self {
        Data {
            dir: PathBuf::from("./rackboot-data"),
            history_max_entries: 300,
            readers: 2,
        }
    }
}

impl Default for Api {
    fn default() -> Self {
        Api {
            listen: "127.0.0.1:6385".parse().expect("literal address"),
            auth: Auth::None,
            htpasswd: None,
            max_body_bytes: 1 << 20,
            request_timeout: Dur(Duration::from_secs(60)),
            max_concurrent_requests: 512,
            max_limit: 1000,
            max_connections: 1024,
            idle_timeout: Dur(Duration::from_secs(120)),
        }
    }
}

impl Default for Http {
    fn default() -> Self {
        Http {
            listen: "0.0.0.0:8080".parse().expect("literal address"),
            public_url: None,
            max_connections: 1024,
            idle_timeout: Dur(Duration::from_secs(120)),
            max_body_bytes: 65536,
        }
    }
}

impl Default for Tftp {
    fn default() -> Self {
        Tftp {
            listen: "0.0.0.0:69".parse().expect("literal address"),
            root: PathBuf::from("boot-assets"),
            max_blksize: 1468,
            max_windowsize: 64,
            timeout: Dur(Duration::from_secs(1)),
            retries: 5,
            max_transfers: 64,
        }
    }
}

impl Default for Dhcp {
    fn default() -> Self {
        Dhcp {
            mode: DhcpMode::Off,
            interface: None,
            range: None,
            lease_time: Dur(Duration::from_secs(3600)),
            router: None,
            dns: Vec::new(),
            unknown: Unknown::Ignore,
            server_address: None,
            subnet_mask: None,
            domain: None,
            offer_hold: Dur(Duration::from_secs(30)),
            lease_flush_interval: Dur(Duration::from_secs(1)),
            proxy_bios: ProxyStrategy::Offer,
            proxy_uefi: ProxyStrategy::Port4011,
            bios_loader: "undionly.kpxe".into(),
            uefi_loader: "snponly.efi".into(),
            arm64_loader: "snp.efi".into(),
            router_advertisements: true,
            event_queue: 4096,
            port: 67,
            pxe_port: 4011,
        }
    }
}

impl Default for Conductor {
    fn default() -> Self {
        Conductor {
            host: None,
            take_over_hosts: Vec::new(),
            sync_power_state_interval: Dur(Duration::from_secs(60)),
            force_power_state_during_sync: true,
            power_state_sync_max_retries: 3,
            power_state_sync_workers: 8,
            ipmi_session_idle_timeout: Dur(Duration::from_secs(20)),
            ipmi_session_keep: Dur(Duration::from_secs(180)),
            ipmi_max_concurrent_calls: 64,
            ipmi_retry_first_wait: Dur(Duration::from_millis(500)),
            ipmi_tries: 4,
            redfish_connect_timeout: Dur(Duration::from_secs(10)),
            redfish_read_timeout: Dur(Duration::from_secs(60)),
            redfish_max_concurrent_calls: 64,
            redfish_calls_per_bmc: 2,
            redfish_connection_cache_size: 1000,
            redfish_connection_attempts: 3,
            redfish_connection_retry_interval: Dur(Duration::from_secs(2)),
            redfish_auth_type: "auto".into(),
            automated_clean: false,
            max_workers: 256,
            node_locked_wait: Dur(Duration::from_secs(1)),
            answer_wait: Dur(Duration::from_millis(250)),
            deploy_callback_timeout: Dur(Duration::from_secs(1800)),
            clean_callback_timeout: Dur(Duration::from_secs(1800)),
            inspect_wait_timeout: Dur(Duration::from_secs(1800)),
            power_state_change_timeout: Dur(Duration::from_secs(60)),
            image_check_timeout: Dur(Duration::from_secs(10)),
            shutdown_timeout: Dur(Duration::from_secs(30)),
            file_url_allowed_paths: ["/var/lib/rackboot", "/srv", "/tmp", "/var/tmp"]
                .iter()
                .map(PathBuf::from)
                .collect(),
            // Full disk erase off, metadata wipe on (issue 13's default).
            clean_step_priority_override: vec!["deploy.erase_devices:0".into()],
        }
    }
}

impl Config {
    /// Loads `path`, or the embedded defaults when `None`.
    pub fn load(path: Option<&Path>) -> Result<Config, Error> {
        let config = match path {
            None => Config::default(),
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| Error::Read {
                    path: p.into(),
                    source,
                })?;
                Config::parse(&text).map_err(|message| Error::Parse {
                    path: p.into(),
                    message,
                })?
            }
        };
        config.validate()?;
        Ok(config)
    }

    /// Parses TOML text (no validation).
    pub fn parse(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// Checks the values that types alone do not.
    pub fn validate(&self) -> Result<(), Error> {
        let api = &self.api;
        if api.auth == Auth::None && !api.listen.ip().is_loopback() {
            return Err(Error::Invalid(format!(
                "[api] listen = \"{}\" is not a loopback address, and the API refuses to serve without authentication off loopback; \
                 set [api] auth = \"http_basic\" and htpasswd = \"/path/to/htpasswd\" (bcrypt entries: htpasswd -B -c FILE USER), \
                 or listen on 127.0.0.1",
                api.listen
            )));
        }
        if api.auth == Auth::HttpBasic && api.htpasswd.is_none() {
            return Err(Error::Invalid(
                "[api] auth = \"http_basic\" needs [api] htpasswd = \"/path/to/htpasswd\" (create it with: htpasswd -B -c FILE USER)".into(),
            ));
        }
        if api.max_body_bytes < 1024 {
            return Err(Error::Invalid(
                "[api] max_body_bytes must be at least 1024".into(),
            ));
        }
        if api.max_limit == 0 || api.max_concurrent_requests == 0 || api.max_connections == 0 {
            return Err(Error::Invalid(
                "[api] max_limit, max_concurrent_requests and max_connections must be at least 1"
                    .into(),
            ));
        }
        if api.idle_timeout.0 <= api.request_timeout.0 {
            return Err(Error::Invalid(
                "[api] idle_timeout must be longer than request_timeout, or slow answers would be cut".into(),
            ));
        }
        if self.conductor.ipmi_tries == 0
            || self.conductor.ipmi_max_concurrent_calls == 0
            || self.conductor.ipmi_retry_first_wait.0.is_zero()
        {
            return Err(Error::Invalid(
                "[conductor] ipmi_tries, ipmi_max_concurrent_calls and ipmi_retry_first_wait must be above zero".into(),
            ));
        }
        let c = &self.conductor;
        if c.redfish_connect_timeout.0.is_zero()
            || c.redfish_read_timeout.0.is_zero()
            || c.redfish_max_concurrent_calls == 0
            || c.redfish_calls_per_bmc == 0
            || c.redfish_connection_attempts == 0
        {
            return Err(Error::Invalid(
                "[conductor] redfish_connect_timeout, redfish_read_timeout, redfish_max_concurrent_calls, redfish_calls_per_bmc and redfish_connection_attempts must be above zero".into(),
            ));
        }
        if crate::drivers::redfish::client::AuthType::parse(&c.redfish_auth_type).is_none() {
            return Err(Error::Invalid(format!(
                "[conductor] redfish_auth_type {:?} must be auto, session or basic",
                c.redfish_auth_type
            )));
        }
        if self.conductor.max_workers == 0 {
            return Err(Error::Invalid(
                "[conductor] max_workers must be at least 1".into(),
            ));
        }
        if let Some(p) = self
            .conductor
            .file_url_allowed_paths
            .iter()
            .find(|p| !p.is_absolute())
        {
            return Err(Error::Invalid(format!(
                "[conductor] file_url_allowed_paths: {} is not an absolute path",
                p.display()
            )));
        }
        crate::conductor::agent_clean::parse_overrides(
            &self.conductor.clean_step_priority_override,
        )
        .map_err(|e| Error::Invalid(format!("[conductor] clean_step_priority_override: {e}")))?;
        crate::inspection::check_hooks(&self.inspector.hooks)
            .map_err(|e| Error::Invalid(format!("[inspector] hooks: {e}")))?;
        if self.inspector.max_data_bytes < 65536 {
            return Err(Error::Invalid(
                "[inspector] max_data_bytes must be at least 65536 (the agent's inventory alone is tens of KiB)".into(),
            ));
        }
        if self.agent.max_command_attempts == 0
            || self.agent.poll_attempts == 0
            || self.agent.max_answer_bytes < 65536
            || self.agent.command_timeout.0.is_zero()
        {
            return Err(Error::Invalid(
                "[agent] command_timeout, max_command_attempts and poll_attempts must be above zero, and max_answer_bytes at least 65536".into(),
            ));
        }
        if self.discovery.enabled {
            let d = &self.discovery;
            if d.driver.as_deref().is_none_or(str::is_empty) {
                return Err(Error::Invalid(
                    "[discovery] enabled = true needs [discovery] driver, the hardware type discovered nodes get (e.g. \"ipmi\")".into(),
                ));
            }
            if d.deploy_kernel.is_none() || d.deploy_ramdisk.is_none() {
                return Err(Error::Invalid(
                    "[discovery] enabled = true needs [discovery] deploy_kernel and deploy_ramdisk, the inspection ramdisk unknown machines boot (images/build-ipa-ramdisk.sh builds one)".into(),
                ));
            }
        }
        if self.data.history_max_entries == 0 || self.data.readers == 0 {
            return Err(Error::Invalid(
                "[data] history_max_entries and readers must be at least 1".into(),
            ));
        }
        match self.dhcp.mode {
            DhcpMode::Off => {}
            mode if self.dhcp.interface.is_none() => {
                return Err(Error::Invalid(format!(
                    "[dhcp] mode = \"{}\" needs [dhcp] interface, the provisioning network's interface (e.g. \"br0\")",
                    mode.as_str()
                )))
            }
            DhcpMode::Authoritative if self.dhcp.range.is_none() => {
                return Err(Error::Invalid(
                    "[dhcp] mode = \"authoritative\" needs [dhcp] range = [\"first\", \"last\"], the addresses to hand out".into(),
                ))
            }
            DhcpMode::Authoritative | DhcpMode::Proxy => {}
        }
        if let Some(url) = &self.http.public_url {
            let ok = (url.starts_with("http://") || url.starts_with("https://"))
                && url.len() > "https://".len()
                && !url.chars().any(char::is_whitespace);
            if !ok {
                return Err(Error::Invalid(format!(
                    "[http] public_url = {url:?} must be an http:// or https:// URL such as \"http://10.77.0.1:8080\""
                )));
            }
        }
        if let Some(iface) = &self.dhcp.interface {
            if iface.is_empty() || iface.len() > 15 || iface.contains(['/', ' ', ':']) {
                return Err(Error::Invalid(format!(
                    "[dhcp] interface = {iface:?} is not a network interface name (1-15 characters, no '/', ':' or spaces)"
                )));
            }
        }
        for (key, v) in [
            ("bios_loader", &self.dhcp.bios_loader),
            ("uefi_loader", &self.dhcp.uefi_loader),
            ("arm64_loader", &self.dhcp.arm64_loader),
        ] {
            if v.is_empty() || v.len() > 100 || v.contains("..") || v.starts_with('/') {
                return Err(Error::Invalid(format!(
                    "[dhcp] {key} = {v:?} must be a file name inside the TFTP root, such as \"snponly.efi\""
                )));
            }
        }
        if !(8..=65464).contains(&self.tftp.max_blksize) {
            return Err(Error::Invalid(format!(
                "[tftp] max_blksize = {} must be 8..=65464 (1468 suits a 1500-byte MTU)",
                self.tftp.max_blksize
            )));
        }
        if self.tftp.max_windowsize == 0
            || self.tftp.max_transfers == 0
            || self.tftp.timeout.0.is_zero()
        {
            return Err(Error::Invalid(
                "[tftp] max_windowsize, max_transfers and timeout must be above zero".into(),
            ));
        }
        if self.dhcp.event_queue == 0 {
            return Err(Error::Invalid(
                "[dhcp] event_queue must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_systemd_example_config_is_valid() {
        let c = Config::parse(include_str!("../systemd/rackboot.toml.example")).unwrap();
        c.validate().unwrap();
        assert_eq!(c.dhcp.mode, DhcpMode::Off);
    }

    #[test]
    fn defaults_are_valid_and_match_design() {
        let c = Config::load(None).unwrap();
        assert_eq!(c.api.listen.to_string(), "127.0.0.1:6385");
        assert_eq!(c.data.dir, PathBuf::from("./rackboot-data"));
        assert_eq!(c.data.readers, 2);
        assert_eq!(c.dhcp.mode, DhcpMode::Off);
        assert_eq!(c.dhcp.unknown, Unknown::Ignore);
        assert_eq!(c.dhcp.proxy_bios, ProxyStrategy::Offer);
        assert_eq!(c.dhcp.proxy_uefi, ProxyStrategy::Port4011);
        assert_eq!(
            c.conductor.sync_power_state_interval,
            Dur(Duration::from_secs(60))
        );
    }

    #[test]
    fn design_example_parses() {
        let text = r#"
[data]
dir = "./rackboot-data"
[api]
listen = "127.0.0.1:6385"
auth = "none"
[http]
listen = "0.0.0.0:8080"
public_url = "http://10.77.0.1:8080"
[tftp]
listen = "0.0.0.0:69"
root = "boot-assets"
[dhcp]
mode = "off"
interface = "br0"
range = ["10.77.0.100", "10.77.0.199"]
lease_time = "1h"
router = "10.77.0.1"
dns = []
unknown = "ignore"
[conductor]
sync_power_state_interval = "60s"
force_power_state_during_sync = true
automated_clean = false
"#;
        let c = Config::parse(text).unwrap();
        c.validate().unwrap();
        assert_eq!(c.dhcp.lease_time, Dur(Duration::from_secs(3600)));
    }

    #[test]
    fn bad_configs_say_why() {
        let cases = [
            ("[api]\nlisten = \"0.0.0.0:6385\"\n", "http_basic"),
            ("[api]\nauth = \"http_basic\"\n", "htpasswd"),
            ("[api]\nlisten = \"nonsense\"\n", "listen"),
            ("[apii]\n", "apii"),
            ("[conductor]\nnode_locked_wait = \"5 parsecs\"\n", "unit"),
            (
                "[dhcp]\nmode = \"authoritative\"\n",
                "needs [dhcp] interface",
            ),
            (
                "[dhcp]\nmode = \"authoritative\"\ninterface = \"br0\"\n",
                "needs [dhcp] range",
            ),
            (
                "[dhcp]\nmode = \"proxy\"\n",
                "[dhcp] mode = \"proxy\" needs [dhcp] interface",
            ),
            (
                "[dhcp]\nuefi_loader = \"../x.efi\"\n",
                "inside the TFTP root",
            ),
            ("[dhcp]\ninterface = \"a/b\"\n", "interface"),
            ("[data]\nreaders = 0\n", "readers must be at least 1"),
            ("[http]\npublic_url = \"10.0.0.1:8080\"\n", "public_url"),
        ];
        for (text, want) in cases {
            let err = match Config::parse(text) {
                Err(e) => e,
                Ok(c) => c.validate().unwrap_err().to_string(),
            };
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    /// Every typed `[dhcp]` key: what a value parses to, and what a bad one
    /// is told (the key, the value and what is accepted; never a panic).
    #[test]
    fn dhcp_values_parse_once() {
        type Edit = fn(&mut Dhcp);
        let ok: [(&str, Edit); 12] = [
            ("", |_| {}),
            ("mode = \"off\"", |d| d.mode = DhcpMode::Off),
            ("mode = \"proxy\"\ninterface = \"br0\"", |d| {
                d.mode = DhcpMode::Proxy;
                d.interface = Some("br0".into());
            }),
            (
                "mode = \"authoritative\"\ninterface = \"br0\"\nrange = [\"10.0.0.1\", \"10.0.0.9\"]",
                |d| {
                    d.mode = DhcpMode::Authoritative;
                    d.interface = Some("br0".into());
                    d.range = Some(Range {
                        first: "10.0.0.1".parse().unwrap(),
                        last: "10.0.0.9".parse().unwrap(),
                    });
                },
            ),
            ("range = []", |d| d.range = None),
            ("range = [\"10.0.0.5\", \"10.0.0.5\"]", |d| {
                let one = "10.0.0.5".parse().unwrap();
                d.range = Some(Range {
                    first: one,
                    last: one,
                });
            }),
            ("dns = []", |d| d.dns = vec![]),
            ("dns = [\"10.0.0.1\", \"9.9.9.9\"]", |d| {
                d.dns = vec!["10.0.0.1".parse().unwrap(), "9.9.9.9".parse().unwrap()]
            }),
            ("unknown = \"allow\"", |d| d.unknown = Unknown::Allow),
            ("proxy_bios = \"port4011\"\nproxy_uefi = \"offer\"", |d| {
                d.proxy_bios = ProxyStrategy::Port4011;
                d.proxy_uefi = ProxyStrategy::Offer;
            }),
            ("router = \"10.0.0.254\"", |d| {
                d.router = Some("10.0.0.254".parse().unwrap())
            }),
            (
                "server_address = \"10.0.0.2\"\nsubnet_mask = \"255.255.255.0\"",
                |d| {
                    d.server_address = Some("10.0.0.2".parse().unwrap());
                    d.subnet_mask = Some("255.255.255.0".parse().unwrap());
                },
            ),
        ];
        for (text, edit) in ok {
            let c = Config::parse(&format!("[dhcp]\n{text}\n"))
                .unwrap_or_else(|e| panic!("{text}: {e}"));
            c.validate().unwrap_or_else(|e| panic!("{text}: {e}"));
            let mut want = Dhcp::default();
            edit(&mut want);
            assert_eq!(c.dhcp, want, "{text}");
        }

        let bad = [
            // An IPv6 entry passed validation and was dropped when serving.
            ("dns = [\"fd00::1\"]", "[dhcp] dns: \"fd00::1\" is not an IPv4 address"),
            ("dns = [\"10.0.0.1\", \"8.8.8\"]", "[dhcp] dns: \"8.8.8\" is not an IPv4 address"),
            ("dns = [53]", "[dhcp] dns: 53 is not an IPv4 address"),
            ("dns = \"10.0.0.1\"", "[dhcp] dns must be a list, such as [\"10.77.0.1\"]"),
            // An unknown strategy was served as "offer".
            (
                "proxy_uefi = \"fast\"",
                "[dhcp] proxy_uefi = \"fast\" is invalid; use \"offer\" or \"port4011\"",
            ),
            (
                "proxy_bios = \"Offer\"",
                "[dhcp] proxy_bios = \"Offer\" is invalid; use \"offer\" or \"port4011\"",
            ),
            (
                "mode = \"on\"",
                "[dhcp] mode = \"on\" is invalid; use \"off\", \"authoritative\" or \"proxy\"",
            ),
            ("mode = true", "[dhcp] mode = true is invalid"),
            (
                "unknown = \"everyone\"",
                "[dhcp] unknown = \"everyone\" is invalid; use \"ignore\" (answer enrolled MACs only) or \"allow\"",
            ),
            (
                "range = [\"10.0.0.9\", \"10.0.0.1\"]",
                "[dhcp] range = [\"10.0.0.9\", \"10.0.0.1\"] starts after it ends",
            ),
            ("range = [\"10.0.0.1\"]", "[dhcp] range must be two addresses"),
            (
                "range = [\"10.0.0.1\", \"10.0.0.2\", \"10.0.0.3\"]",
                "[dhcp] range must be two addresses",
            ),
            (
                "range = [\"10.0.0.1\", \"10.0.0.300\"]",
                "[dhcp] range: \"10.0.0.300\" is not an IPv4 address",
            ),
            ("range = \"10.0.0.1-10.0.0.9\"", "[dhcp] range must be a list"),
            ("router = \"gateway\"", "[dhcp] router = \"gateway\" is not an IPv4 address"),
            (
                "server_address = \"fd00::1\"",
                "[dhcp] server_address = \"fd00::1\" is not an IPv4 address",
            ),
            (
                "subnet_mask = \"255.255.255\"",
                "[dhcp] subnet_mask = \"255.255.255\" is not an IPv4 address",
            ),
        ];
        for (text, want) in bad {
            let err = Config::parse(&format!("[dhcp]\n{text}\n")).unwrap_err();
            assert!(err.contains(want), "{text}: {err}");
            // toml points at the line too.
            assert!(
                err.contains(&format!("2 | {}", text.lines().next().unwrap())),
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn durations() {
        assert_eq!(
            Dur::parse("500ms").unwrap(),
            Dur(Duration::from_millis(500))
        );
        assert_eq!(Dur::parse("2m").unwrap(), Dur(Duration::from_secs(120)));
        assert!(Dur::parse("").is_err());
        assert!(Dur::parse("-1s").is_err());
    }
}
