//! The `redfish` hardware type's power and management interfaces.
//!
//! driver_info is parsed once into [`RedfishInfo`] (Ironic's keys and
//! checks); the BMC is reached through the kept connections of
//! [`client::Pool`]. Links are followed from the service root and the
//! System (`@odata.id`, the Reset action's `target`), never guessed.

pub mod client;

use std::net::Ipv6Addr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::{BoxFuture, Error, Management, Power, Result, Task};
use crate::model::{Node, PowerState, Severity};
use client::{AuthType, Bmc, Endpoint, Pool, VerifyCa};

/// driver_info keys of the `redfish` hardware type.
pub const PROPERTIES: &[(&str, &str)] = &[
    ("redfish_address", "URL of the BMC's Redfish service: https is assumed without a scheme (https://bmc-1.rack.example); a path replaces /redfish/v1/ as the service root. Required."),
    ("redfish_system_id", "The ComputerSystem of this node: its path (/redfish/v1/Systems/1) or its Id. Needed only when the BMC manages more than one system. Optional."),
    ("redfish_username", "BMC user, with the Operator or Administrator role. Optional."),
    ("redfish_password", "BMC password. Optional; never shown or logged."),
    ("redfish_verify_ca", "true (check the BMC's certificate against the system's CAs, the default), false (do not check), or the path of a CA file or directory. Optional."),
    ("redfish_auth_type", "basic, session or auto (a session, falling back to basic). Optional; default: [conductor] redfish_auth_type."),
];

/// A node's BMC access, parsed from driver_info.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedfishInfo {
    pub endpoint: Endpoint,
    /// A path or an Id; None when the BMC has one system.
    pub system_id: Option<String>,
}

fn text(v: &Value) -> Option<String> {
    super::ipmi::text(v)
}

fn optional_text(node: &Node, key: &str) -> Result<Option<String>> {
    match node.driver_info.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => text(v)
            .map(Some)
            .ok_or_else(|| Error::InvalidParameter(format!("driver_info/{key} must be a string"))),
    }
}

/// Parses `redfish_address` as Ironic does: https when no scheme is given,
/// a bare IPv6 address bracketed, a path taken as the service root.
/// Returns (`scheme://authority`, root path).
pub fn parse_address(raw: &str) -> std::result::Result<(String, String), String> {
    let raw = raw.trim();
    let bad = || {
        format!(
            "Invalid Redfish address {raw:?} set in driver_info/redfish_address: give a URL such as https://10.0.0.5 or bmc-1.rack.example"
        )
    };
    let escaped = match raw.parse::<Ipv6Addr>() {
        Ok(_) => format!("[{raw}]"),
        Err(_) => raw.to_string(),
    };
    let with_scheme = if escaped.contains("://") {
        escaped
    } else {
        format!("https://{escaped}")
    };
    let url = reqwest::Url::parse(&with_scheme).map_err(|_| bad())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "driver_info/redfish_address {raw:?} must be an http:// or https:// URL"
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "driver_info/redfish_address must not carry credentials; set redfish_username and redfish_password"
                .into(),
        );
    }
    let host = url.host().ok_or_else(bad)?;
    let base = match url.port() {
        Some(p) => format!("{}://{host}:{p}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    };
    let root = match url.path() {
        "" | "/" => "/redfish/v1/".to_string(),
        p => p.to_string(),
    };
    Ok((base, root))
}

/// Ironic's strict boolean words.
fn bool_word(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "t" | "true" | "on" | "y" | "yes" => Some(true),
        "0" | "f" | "false" | "off" | "n" | "no" => Some(false),
        _ => None,
    }
}

/// Parses and checks a node's Redfish driver_info. Never echoes the password.
pub fn parse_driver_info(node: &Node, default_auth: AuthType) -> Result<RedfishInfo> {
    let address = match node.driver_info.get("redfish_address") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(v) => {
            return Err(Error::InvalidParameter(format!(
            "Invalid Redfish address {v} set in driver_info/redfish_address: it must be a string"
        )))
        }
    };
    let Some(address) = address else {
        return Err(Error::MissingParameter(format!(
            "Missing the following Redfish properties in node {} driver_info: ['redfish_address']. \
             Set it with: baremetal node set <node> --driver-info redfish_address=https://<BMC address>",
            node.uuid
        )));
    };
    let (base, root) = parse_address(&address).map_err(Error::InvalidParameter)?;
    let system_id = match node.driver_info.get("redfish_system_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.trim().is_empty() && !s.contains(char::is_whitespace) => {
            Some(s.trim().to_string())
        }
        Some(v) => {
            return Err(Error::InvalidParameter(format!(
                "Invalid value {v} set in driver_info/redfish_system_id on node {}. The value should be a path (string) to the resource that the driver will interact with. For example: /redfish/v1/Systems/1",
                node.uuid
            )))
        }
    };
    let verify_ca = match node.driver_info.get("redfish_verify_ca") {
        None | Some(Value::Null) => VerifyCa::Yes,
        Some(Value::Bool(true)) => VerifyCa::Yes,
        Some(Value::Bool(false)) => VerifyCa::No,
        Some(Value::String(s)) => {
            let p = std::path::Path::new(s.trim());
            if p.is_absolute() && (p.is_file() || p.is_dir()) {
                VerifyCa::Path(p.to_path_buf())
            } else {
                match bool_word(s) {
                    Some(true) => VerifyCa::Yes,
                    Some(false) => VerifyCa::No,
                    None => {
                        return Err(Error::InvalidParameter(format!(
                            "Invalid value type set in driver_info/redfish_verify_ca on node {}. The value should be a Boolean or the path to a file/directory, not {s:?}",
                            node.uuid
                        )))
                    }
                }
            }
        }
        Some(v) => {
            return Err(Error::InvalidParameter(format!(
                "Invalid value type set in driver_info/redfish_verify_ca on node {}. The value should be a Boolean or the path to a file/directory, not {v}",
                node.uuid
            )))
        }
    };
    let auth = match optional_text(node, "redfish_auth_type")? {
        None => default_auth,
        Some(s) => AuthType::parse(&s).ok_or_else(|| {
            Error::InvalidParameter(format!(
                "Invalid value {s:?} set in driver_info/redfish_auth_type on node {}. The value should be one of \"basic\", \"session\" or \"auto\".",
                node.uuid
            ))
        })?,
    };
    let username = optional_text(node, "redfish_username")?;
    let password = optional_text(node, "redfish_password")?;
    for key in ["deploy_kernel", "deploy_ramdisk", "deploy_iso"] {
        if let Some(v) = node.driver_info.get(key) {
            super::pxe::check_image_ref(&format!("driver_info/{key}"), v)?;
        }
    }
    Ok(RedfishInfo {
        endpoint: Endpoint {
            base,
            root,
            username,
            password,
            verify_ca,
            auth,
        },
        system_id,
    })
}

/// How often power is polled while waiting for a change.
const POWER_POLL: Duration = Duration::from_secs(1);
/// Tries of a power-on the BMC refuses as a conflict right after a
/// power-off (iDRAC's ActionParameterValueConflict), as Ironic does.
const POWER_ON_CONFLICT_TRIES: u32 = 6;
/// Wait between those tries.
const POWER_ON_CONFLICT_WAIT: Duration = Duration::from_secs(5);
/// How long a PATCH or action with a task monitor may run.
const TASK_DEADLINE: Duration = Duration::from_secs(120);

/// Redfish `PowerState` in Ironic's terms (None: not a state Ironic maps).
pub fn power_of(system: &Value) -> Option<PowerState> {
    match system.get("PowerState").and_then(Value::as_str)? {
        "On" | "PoweringOn" => Some(PowerState::On),
        "Off" | "PoweringOff" => Some(PowerState::Off),
        _ => None,
    }
}

/// The reset types and the power state each waits for, to reach `target`
/// from `on` (Ironic: reboot is ForceOff then On when on).
pub fn reset_plan(target: PowerState, on: bool) -> Option<Vec<(&'static str, PowerState)>> {
    Some(match (target, on) {
        (PowerState::On, true) | (PowerState::Off | PowerState::SoftOff, false) => vec![],
        (PowerState::On, false) | (PowerState::Rebooting, false) => {
            vec![("On", PowerState::On)]
        }
        (PowerState::Off, true) => vec![("ForceOff", PowerState::Off)],
        (PowerState::Rebooting, true) => {
            vec![("ForceOff", PowerState::Off), ("On", PowerState::On)]
        }
        (PowerState::SoftRebooting, _) => vec![("GracefulRestart", PowerState::On)],
        (PowerState::SoftOff, true) => vec![("GracefulShutdown", PowerState::Off)],
        (PowerState::Error, _) => return None,
    })
}

/// A connection to the node's BMC.
pub fn connect(pool: &Pool, info: &RedfishInfo) -> Result<Arc<Bmc>> {
    pool.bmc(&info.endpoint)
}

/// Power state of the node's system.
pub async fn power_state(bmc: &Bmc, info: &RedfishInfo) -> Result<PowerState> {
    let (path, sys) = bmc.system(info.system_id.as_deref()).await?;
    power_of(&sys.body).ok_or_else(|| {
        Error::Failed(format!(
            "Redfish BMC {}: system {path} reports PowerState {}, which is neither on nor off",
            bmc.base(),
            sys.body.get("PowerState").unwrap_or(&Value::Null)
        ))
    })
}

/// The Reset action's target and the reset types the BMC offers.
fn reset_action(path: &str, system: &Value) -> (String, Option<Vec<String>>) {
    let action = system.pointer("/Actions/#ComputerSystem.Reset");
    let target = action
        .and_then(|a| a.get("target"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| {
            format!(
                "{}/Actions/ComputerSystem.Reset",
                path.trim_end_matches('/')
            )
        });
    let allowed = action
        .and_then(|a| a.get("ResetType@Redfish.AllowableValues"))
        .and_then(Value::as_array)
        .map(|v| {
            v.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        });
    (target, allowed)
}

/// Sends one `ComputerSystem.Reset`.
pub async fn reset(bmc: &Bmc, path: &str, system: &Value, reset_type: &str) -> Result<()> {
    let (target, allowed) = reset_action(path, system);
    if let Some(allowed) = allowed.filter(|a| !a.is_empty()) {
        if !allowed.iter().any(|a| a == reset_type) {
            return Err(Error::Failed(format!(
                "Redfish BMC {}: system {path} does not offer ResetType {reset_type} (it offers {})",
                bmc.base(),
                allowed.join(", ")
            )));
        }
    }
    bmc.post(&target, &json!({ "ResetType": reset_type }), TASK_DEADLINE)
        .await
        .map(|_| ())
}

/// Waits until the system reports `want`.
async fn wait_power(
    bmc: &Bmc,
    info: &RedfishInfo,
    want: PowerState,
    timeout: Duration,
) -> Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let now = power_state(bmc, info).await?;
        if now == want {
            return Ok(());
        }
        if tokio::time::Instant::now() + POWER_POLL > deadline {
            return Err(Error::Failed(format!(
                "Redfish BMC {}: power did not reach {want} within {} s (it reports {now})",
                bmc.base(),
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(POWER_POLL).await;
    }
}

/// Moves the node's system to `target` with Ironic's semantics and waits.
/// A reset the BMC refuses (400/409) while the system is already where it
/// was sent counts as done, as in Ironic.
pub async fn set_power(
    bmc: &Bmc,
    info: &RedfishInfo,
    target: PowerState,
    timeout: Duration,
) -> Result<Vec<&'static str>> {
    let (path, sys) = bmc.system(info.system_id.as_deref()).await?;
    let on = power_of(&sys.body) == Some(PowerState::On);
    let plan = reset_plan(target, on)
        .ok_or_else(|| Error::InvalidParameter(format!("\"{target}\" is not a power target")))?;
    let mut sent = Vec::new();
    for (reset_type, want) in plan {
        let mut tries = 0;
        loop {
            tries += 1;
            match reset(bmc, &path, &sys.body, reset_type).await {
                Ok(()) => break,
                Err(Error::Failed(why))
                    if reset_type == "On"
                        && why.contains(" 409 ")
                        && why.contains("ActionParameterValueConflict")
                        && tries < POWER_ON_CONFLICT_TRIES =>
                {
                    tracing::warn!(bmc = %bmc.base(), "BMC refused power-on as a conflict; retrying: {why}");
                    tokio::time::sleep(POWER_ON_CONFLICT_WAIT).await;
                }
                Err(Error::Failed(why)) if why.contains(" 400 ") || why.contains(" 409 ") => {
                    if power_state(bmc, info).await.ok() == Some(want) {
                        tracing::info!(bmc = %bmc.base(), "reset {reset_type} refused but the system is already {want}: {why}");
                        break;
                    }
                    return Err(Error::Failed(why));
                }
                Err(e) => return Err(e),
            }
        }
        sent.push(reset_type);
        wait_power(bmc, info, want, timeout).await?;
    }
    Ok(sent)
}

/// Sends an NMI (diagnostic interrupt).
pub async fn inject_nmi(bmc: &Bmc, info: &RedfishInfo) -> Result<()> {
    let (path, sys) = bmc.system(info.system_id.as_deref()).await?;
    reset(bmc, &path, &sys.body, "Nmi").await
}

/// Redfish boot source of an Ironic boot device.
pub fn boot_target(device: &str) -> Option<&'static str> {
    Some(match device {
        "pxe" => "Pxe",
        "disk" => "Hdd",
        "cdrom" => "Cd",
        "bios" => "BiosSetup",
        "uefihttp" => "UefiHttp",
        _ => return None,
    })
}

/// Ironic boot device of a Redfish boot source.
pub fn boot_device_of(target: &str) -> Option<&'static str> {
    Some(match target {
        "Pxe" => "pxe",
        "Hdd" => "disk",
        "Cd" => "cdrom",
        "BiosSetup" => "bios",
        "UefiHttp" => "uefihttp",
        _ => return None,
    })
}

/// Boot devices the `redfish` management interface sets.
pub const BOOT_DEVICES: &[&str] = &["pxe", "disk", "cdrom", "bios"];

/// Boot mode as Redfish names it (`BootSourceOverrideMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootMode {
    Uefi,
    Legacy,
}

impl BootMode {
    pub fn redfish(self) -> &'static str {
        match self {
            BootMode::Uefi => "UEFI",
            BootMode::Legacy => "Legacy",
        }
    }

    /// Ironic's words: `uefi`, `bios`.
    pub fn parse(s: &str) -> Option<BootMode> {
        match s.trim().to_ascii_lowercase().as_str() {
            "uefi" => Some(BootMode::Uefi),
            "bios" | "legacy" => Some(BootMode::Legacy),
            _ => None,
        }
    }
}

/// The boot mode a node asks for: `instance_info/deploy_boot_mode`, the
/// `boot_mode` capability, or the node's recorded `boot_mode`; None leaves
/// the BMC's mode as it is.
pub fn wanted_boot_mode(node: &Node) -> Option<BootMode> {
    if let Some(m) = node
        .instance_info
        .get("deploy_boot_mode")
        .and_then(Value::as_str)
        .and_then(BootMode::parse)
    {
        return Some(m);
    }
    let caps = node.properties.get("capabilities").and_then(Value::as_str);
    if let Some(m) = caps.and_then(|c| {
        c.split(',')
            .filter_map(|kv| kv.split_once(':'))
            .find(|(k, _)| k.trim() == "boot_mode")
            .and_then(|(_, v)| BootMode::parse(v))
    }) {
        return Some(m);
    }
    node.boot_mode.as_deref().and_then(BootMode::parse)
}

/// The `Boot` properties to PATCH: the target always, the override
/// enablement and mode only when they differ from what the BMC has (Ironic:
/// some BMCs refuse an unchanged BootSourceOverrideEnabled).
pub fn boot_patch(
    current: &Value,
    target: &str,
    persistent: bool,
    mode: Option<BootMode>,
) -> Value {
    let mut boot = serde_json::Map::new();
    boot.insert("BootSourceOverrideTarget".into(), json!(target));
    let enabled = if persistent { "Continuous" } else { "Once" };
    if current
        .get("BootSourceOverrideEnabled")
        .and_then(Value::as_str)
        != Some(enabled)
    {
        boot.insert("BootSourceOverrideEnabled".into(), json!(enabled));
    }
    if let Some(m) = mode {
        if current
            .get("BootSourceOverrideMode")
            .and_then(Value::as_str)
            != Some(m.redfish())
        {
            boot.insert("BootSourceOverrideMode".into(), json!(m.redfish()));
        }
    }
    Value::Object(boot)
}

/// Splits `Boot` properties between the system and its `@Redfish.Settings`
/// object: a property the settings object advertises goes there (applied
/// at the next reset), the rest to the system, as sushy does.
pub fn split_boot_patch(boot: &Value, settings_boot: Option<&Value>) -> (Value, Value) {
    let mut now = serde_json::Map::new();
    let mut later = serde_json::Map::new();
    if let Some(props) = boot.as_object() {
        for (k, v) in props {
            if settings_boot.and_then(|s| s.get(k)).is_some() {
                later.insert(k.clone(), v.clone());
            } else {
                now.insert(k.clone(), v.clone());
            }
        }
    }
    (Value::Object(now), Value::Object(later))
}

fn etag_of(r: &client::Reply) -> Option<String> {
    r.etag.clone().or_else(|| {
        r.body
            .get("@odata.etag")
            .and_then(Value::as_str)
            .map(str::to_string)
    })
}

/// What setting a boot device did, for the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootSet {
    /// The properties sent, with where (system or settings object).
    pub sent: Value,
    /// What the BMC reads back as enabled (may differ: sushy-tools' fake
    /// driver reads Once back as Continuous).
    pub enabled_read_back: Option<String>,
    pub mode_read_back: Option<String>,
}

/// Sets the next boot device (and mode, when asked), then reads it back.
pub async fn set_boot(
    bmc: &Bmc,
    info: &RedfishInfo,
    device: &str,
    persistent: bool,
    mode: Option<BootMode>,
) -> Result<BootSet> {
    let target = boot_target(device).ok_or_else(|| {
        Error::InvalidParameter(format!(
            "boot device {device:?} is not one the redfish management interface sets ({})",
            BOOT_DEVICES.join(", ")
        ))
    })?;
    let (path, sys) = bmc.system(info.system_id.as_deref()).await?;
    let current = sys.body.get("Boot").cloned().unwrap_or(Value::Null);
    if let Some(allowed) = current
        .get("BootSourceOverrideTarget@Redfish.AllowableValues")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
    {
        if !allowed.iter().any(|a| a.as_str() == Some(target)) {
            let offered: Vec<&str> = allowed.iter().filter_map(Value::as_str).collect();
            return Err(Error::Failed(format!(
                "Redfish BMC {}: system {path} cannot boot from {target} (it offers {})",
                bmc.base(),
                offered.join(", ")
            )));
        }
    }
    let boot = boot_patch(&current, target, persistent, mode);
    let settings = client::odata_id(sys.body.pointer("/@Redfish.Settings/SettingsObject"));
    let (now, later, settings_reply) = match &settings {
        Some(s) => {
            let r = bmc.get(s).await?;
            let (now, later) = split_boot_patch(&boot, r.body.get("Boot"));
            (now, later, Some(r))
        }
        None => (boot.clone(), json!({}), None),
    };
    if now.as_object().is_some_and(|m| !m.is_empty()) {
        bmc.patch(
            &path,
            &json!({ "Boot": now }),
            etag_of(&sys).as_deref(),
            TASK_DEADLINE,
        )
        .await?;
    }
    if let (Some(s), Some(r)) = (&settings, &settings_reply) {
        if later.as_object().is_some_and(|m| !m.is_empty()) {
            bmc.patch(
                s,
                &json!({ "Boot": later }),
                etag_of(r).as_deref(),
                TASK_DEADLINE,
            )
            .await?;
        }
    }
    // Read back what was applied now (settings wait for the next reset).
    let (_, after) = bmc.system(info.system_id.as_deref()).await?;
    let got = after.body.get("Boot").cloned().unwrap_or(Value::Null);
    let read = |k: &str| got.get(k).and_then(Value::as_str).map(str::to_string);
    if now.get("BootSourceOverrideTarget").is_some()
        && read("BootSourceOverrideTarget").as_deref() != Some(target)
    {
        return Err(Error::Failed(format!(
            "Redfish BMC {}: system {path} accepted boot device {target} but reads back {}",
            bmc.base(),
            read("BootSourceOverrideTarget").unwrap_or_else(|| "nothing".into())
        )));
    }
    if let Some(m) = now.get("BootSourceOverrideMode").and_then(Value::as_str) {
        if read("BootSourceOverrideMode").as_deref() != Some(m) {
            return Err(Error::Failed(format!(
                "Redfish BMC {}: system {path} accepted boot mode {m} but reads back {}",
                bmc.base(),
                read("BootSourceOverrideMode").unwrap_or_else(|| "nothing".into())
            )));
        }
    }
    Ok(BootSet {
        sent: json!({ "system": now, "settings": later }),
        enabled_read_back: read("BootSourceOverrideEnabled"),
        mode_read_back: read("BootSourceOverrideMode"),
    })
}

/// The boot device and whether it is persistent.
pub async fn get_boot(bmc: &Bmc, info: &RedfishInfo) -> Result<(Option<String>, Option<bool>)> {
    let (_, sys) = bmc.system(info.system_id.as_deref()).await?;
    let boot = sys.body.get("Boot");
    let device = boot
        .and_then(|b| b.get("BootSourceOverrideTarget"))
        .and_then(Value::as_str)
        .and_then(boot_device_of)
        .map(str::to_string);
    let persistent = match boot
        .and_then(|b| b.get("BootSourceOverrideEnabled"))
        .and_then(Value::as_str)
    {
        Some("Continuous") => Some(true),
        Some("Once") => Some(false),
        _ => None,
    };
    Ok((device, persistent))
}

/// A node's Redfish driver_info, with the pool's default authentication.
fn info_of(pool: &Pool, node: &Node) -> Result<RedfishInfo> {
    parse_driver_info(node, pool.settings().default_auth)
}

/// A node's driver_info and the kept connection to its BMC.
fn bmc_of(pool: &Pool, node: &Node) -> Result<(RedfishInfo, Arc<Bmc>)> {
    let info = info_of(pool, node)?;
    let bmc = connect(pool, &info)?;
    Ok((info, bmc))
}

/// Redfish power control.
pub struct RedfishPower {
    pub pool: Arc<Pool>,
}

impl Power for RedfishPower {
    fn validate(&self, node: &Node) -> Result<()> {
        info_of(&self.pool, node).map(|_| ())
    }

    fn get_power_state<'a>(&'a self, task: &'a Task) -> BoxFuture<'a, Result<PowerState>> {
        Box::pin(async move {
            let (info, bmc) = bmc_of(&self.pool, &task.node)?;
            let state = power_state(&bmc, &info).await?;
            task.record(
                Severity::Info,
                "power",
                format!("Redfish BMC {} power state: {state}", bmc.base()),
            );
            Ok(state)
        })
    }

    fn set_power_state<'a>(
        &'a self,
        task: &'a Task,
        target: PowerState,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let (info, bmc) = bmc_of(&self.pool, &task.node)?;
            let sent = set_power(
                &bmc,
                &info,
                target,
                task.settings.power_state_change_timeout,
            )
            .await?;
            task.record(
                Severity::Info,
                "power",
                format!(
                    "Redfish BMC {} power action {target} done ({})",
                    bmc.base(),
                    if sent.is_empty() {
                        "already there, no reset sent".to_string()
                    } else {
                        format!("ComputerSystem.Reset {}", sent.join(", then "))
                    }
                ),
            );
            Ok(())
        })
    }
}

/// Redfish boot-device control.
pub struct RedfishManagement {
    pub pool: Arc<Pool>,
}

impl Management for RedfishManagement {
    fn validate(&self, node: &Node) -> Result<()> {
        info_of(&self.pool, node).map(|_| ())
    }

    fn set_boot_device<'a>(
        &'a self,
        task: &'a mut Task,
        device: &'a str,
        persistent: bool,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let (info, bmc) = bmc_of(&self.pool, &task.node)?;
            let mode = wanted_boot_mode(&task.node);
            let set = set_boot(&bmc, &info, device, persistent, mode).await?;
            let want = if persistent { "Continuous" } else { "Once" };
            let mut msg = format!(
                "Redfish BMC {} boot device set to {device} (persistent={persistent}, mode {}): sent {}",
                bmc.base(),
                set.mode_read_back.as_deref().unwrap_or("unknown"),
                set.sent
            );
            let mut severity = Severity::Info;
            if let Some(e) = set.enabled_read_back.as_deref().filter(|e| *e != want) {
                msg.push_str(&format!(
                    "; the BMC reads BootSourceOverrideEnabled back as {e}, not {want}"
                ));
                severity = Severity::Warning;
            }
            task.record(severity, "management", msg);
            Ok(())
        })
    }

    fn get_boot_device<'a>(
        &'a self,
        task: &'a Task,
    ) -> BoxFuture<'a, Result<(Option<String>, Option<bool>)>> {
        Box::pin(async move {
            let (info, bmc) = bmc_of(&self.pool, &task.node)?;
            get_boot(&bmc, &info).await
        })
    }

    fn supported_boot_devices(&self) -> &'static [&'static str] {
        BOOT_DEVICES
    }

    fn inject_nmi<'a>(&'a self, task: &'a mut Task) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move {
            let (info, bmc) = bmc_of(&self.pool, &task.node)?;
            inject_nmi(&bmc, &info).await?;
            Ok(format!(
                "Redfish BMC {}: ComputerSystem.Reset Nmi sent",
                bmc.base()
            ))
        })
    }

    fn has_virtual_media(&self) -> bool {
        true
    }

    fn attach_virtual_media<'a>(
        &'a self,
        task: &'a mut Task,
        device: &'a str,
        url: &'a str,
    ) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move {
            let kind = MediaKind::parse(device).ok_or_else(|| {
                Error::InvalidParameter(format!(
                    "virtual media device {device:?} is not cdrom, disk or floppy"
                ))
            })?;
            let (info, bmc) = bmc_of(&self.pool, &task.node)?;
            let path = insert_media(&bmc, &info, kind, url).await?;
            Ok(format!(
                "Redfish BMC {}: {} inserted into {path}",
                bmc.base(),
                crate::redact::redact(url)
            ))
        })
    }

    fn detach_virtual_media<'a>(
        &'a self,
        task: &'a mut Task,
        devices: &'a [String],
    ) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move {
            let (info, bmc) = bmc_of(&self.pool, &task.node)?;
            let mut kinds = Vec::new();
            for d in devices {
                let k = MediaKind::parse(d).ok_or_else(|| {
                    Error::InvalidParameter(format!(
                        "virtual media device {d:?} is not cdrom, disk or floppy"
                    ))
                })?;
                if !kinds.contains(&k) {
                    kinds.push(k);
                }
            }
            let mut ejected = Vec::new();
            if kinds.is_empty() {
                ejected = eject_media(&bmc, &info, None).await?;
            }
            for k in kinds {
                ejected.extend(eject_media(&bmc, &info, Some(k)).await?);
            }
            Ok(if ejected.is_empty() {
                format!("Redfish BMC {}: no virtual media was inserted", bmc.base())
            } else {
                format!("Redfish BMC {}: ejected {}", bmc.base(), ejected.join(", "))
            })
        })
    }
}

/// Which virtual media device an image goes into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    /// A CD or DVD drive (ISOs).
    Cd,
    /// A USB stick or floppy (disk images).
    Disk,
}

impl MediaKind {
    /// Ironic's device_type words: `cdrom`, `disk`, `floppy`.
    pub fn parse(s: &str) -> Option<MediaKind> {
        match s {
            "cdrom" | "cd" | "dvd" => Some(MediaKind::Cd),
            "disk" | "floppy" | "usb" => Some(MediaKind::Disk),
            _ => None,
        }
    }

    fn matches(self, device: &Value) -> bool {
        let types: Vec<&str> = device
            .get("MediaTypes")
            .and_then(Value::as_array)
            .map(|t| t.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        match self {
            MediaKind::Cd => types.iter().any(|t| matches!(*t, "CD" | "DVD")),
            MediaKind::Disk => types.iter().any(|t| matches!(*t, "USBStick" | "Floppy")),
        }
    }
}

/// The virtual media devices of the node's system: the System's own
/// VirtualMedia link (newer BMCs, sushy-tools), else its manager's.
pub async fn media_devices(bmc: &Bmc, info: &RedfishInfo) -> Result<Vec<(String, client::Reply)>> {
    let (path, sys) = bmc.system(info.system_id.as_deref()).await?;
    let collection = match client::odata_id(sys.body.get("VirtualMedia")) {
        Some(c) => c,
        None => {
            let manager = client::odata_id(sys.body.pointer("/Links/ManagedBy/0")).ok_or_else(|| {
                Error::Failed(format!(
                    "Redfish BMC {}: system {path} has no VirtualMedia and no manager; this BMC offers no virtual media",
                    bmc.base()
                ))
            })?;
            let m = bmc.get(&manager).await?;
            client::odata_id(m.body.get("VirtualMedia")).ok_or_else(|| {
                Error::Failed(format!(
                    "Redfish BMC {}: neither system {path} nor manager {manager} has VirtualMedia",
                    bmc.base()
                ))
            })?
        }
    };
    let list = bmc.get(&collection).await?;
    let mut out = Vec::new();
    for m in list
        .body
        .get("Members")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(p) = client::odata_id(Some(m)) {
            let d = bmc.get(&p).await?;
            out.push((p, d));
        }
    }
    Ok(out)
}

fn action_target(device: &Value, action: &str) -> Option<String> {
    device
        .pointer(&format!("/Actions/#VirtualMedia.{action}/target"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn inserted(device: &Value) -> bool {
    device.get("Inserted").and_then(Value::as_bool) == Some(true)
        || device
            .get("Image")
            .and_then(Value::as_str)
            .is_some_and(|i| !i.is_empty())
}

/// Ejects one device: the EjectMedia action, else a PATCH (older BMCs).
async fn eject_device(bmc: &Bmc, path: &str, device: &client::Reply) -> Result<()> {
    match action_target(&device.body, "EjectMedia") {
        Some(t) => bmc.post(&t, &json!({}), TASK_DEADLINE).await.map(|_| ()),
        None => bmc
            .patch(
                path,
                &json!({"Image": null, "Inserted": false}),
                etag_of(device).as_deref(),
                TASK_DEADLINE,
            )
            .await
            .map(|_| ()),
    }
}

/// Ejects what is inserted in the devices of `kind` (all when None);
/// returns the devices it ejected.
pub async fn eject_media(
    bmc: &Bmc,
    info: &RedfishInfo,
    kind: Option<MediaKind>,
) -> Result<Vec<String>> {
    let mut ejected = Vec::new();
    for (path, d) in media_devices(bmc, info).await? {
        if kind.is_some_and(|k| !k.matches(&d.body)) || !inserted(&d.body) {
            continue;
        }
        eject_device(bmc, &path, &d).await?;
        ejected.push(path);
    }
    Ok(ejected)
}

/// Inserts `url` into the first device of `kind`, ejecting what it held;
/// returns the device's path.
pub async fn insert_media(
    bmc: &Bmc,
    info: &RedfishInfo,
    kind: MediaKind,
    url: &str,
) -> Result<String> {
    let devices = media_devices(bmc, info).await?;
    let Some((path, device)) = devices.iter().find(|(_, d)| kind.matches(&d.body)) else {
        return Err(Error::Failed(format!(
            "Redfish BMC {} has no virtual media device for {} (devices: {})",
            bmc.base(),
            match kind {
                MediaKind::Cd => "a CD or DVD",
                MediaKind::Disk => "a USB stick or floppy",
            },
            devices
                .iter()
                .map(|(p, _)| p.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    };
    if inserted(&device.body) {
        eject_device(bmc, path, device).await?;
    }
    match action_target(&device.body, "InsertMedia") {
        Some(t) => {
            let body = json!({"Image": url, "Inserted": true, "WriteProtected": true});
            match bmc.post(&t, &body, TASK_DEADLINE).await {
                Ok(_) => {}
                // Some BMCs want the transfer protocol named (sushy's retry).
                Err(Error::Failed(why)) if why.contains(" 400 ") => {
                    let proto = if url.starts_with("https:") {
                        "HTTPS"
                    } else {
                        "HTTP"
                    };
                    let mut body = body;
                    body["TransferProtocolType"] = json!(proto);
                    bmc.post(&t, &body, TASK_DEADLINE).await.map_err(|e| {
                        Error::Failed(format!(
                            "{e} (first try without TransferProtocolType: {why})"
                        ))
                    })?;
                }
                Err(e) => return Err(e),
            }
        }
        None => {
            bmc.patch(
                path,
                &json!({"Image": url, "Inserted": true}),
                etag_of(device).as_deref(),
                TASK_DEADLINE,
            )
            .await?;
        }
    }
    Ok(path.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Interfaces, State};
    use uuid::Uuid;

    const FIXTURES: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/redfish/sushy-tools-2.2.0-fake"
    );

    fn fixture(name: &str) -> Value {
        let text = std::fs::read_to_string(format!("{FIXTURES}/{name}.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn node(info: Value) -> Node {
        let mut n = Node::new(
            Uuid::new_v4(),
            "redfish",
            Interfaces::default(),
            State::Enroll,
            String::new(),
        );
        n.driver_info = info.as_object().unwrap().clone();
        n
    }

    #[test]
    fn addresses_as_ironic_reads_them() {
        let cases: &[(&str, Option<(&str, &str)>)] = &[
            ("10.0.0.5", Some(("https://10.0.0.5", "/redfish/v1/"))),
            (
                "http://10.0.0.5:8000",
                Some(("http://10.0.0.5:8000", "/redfish/v1/")),
            ),
            (
                "https://bmc-1.rack.example/",
                Some(("https://bmc-1.rack.example", "/redfish/v1/")),
            ),
            ("bmc:8443", Some(("https://bmc:8443", "/redfish/v1/"))),
            (
                "https://bmc/custom/v1/",
                Some(("https://bmc", "/custom/v1/")),
            ),
            ("::1", Some(("https://[::1]", "/redfish/v1/"))),
            (
                "http://[fd00::5]:8000",
                Some(("http://[fd00::5]:8000", "/redfish/v1/")),
            ),
            ("ftp://bmc", None),
            ("https://user:pw@bmc", None),
            ("https://", None),
            ("bad host!", None),
        ];
        for (raw, want) in cases {
            let got = parse_address(raw);
            match want {
                Some((base, root)) => {
                    assert_eq!(got, Ok((base.to_string(), root.to_string())), "{raw}")
                }
                None => {
                    let e = got.expect_err(raw);
                    assert!(e.contains("redfish_address"), "{raw}: {e}");
                    assert!(!e.contains("pw@"), "{e}");
                }
            }
        }
    }

    #[test]
    fn driver_info_cases() {
        let ca = tempfile::NamedTempFile::new().unwrap();
        let ca_path = ca.path().display().to_string();
        #[allow(clippy::type_complexity)]
        let cases: &[(
            Value,
            std::result::Result<(VerifyCa, AuthType, Option<&str>), &str>,
        )] = &[
            (
                json!({"redfish_address": "10.0.0.5"}),
                Ok((VerifyCa::Yes, AuthType::Auto, None)),
            ),
            (
                json!({"redfish_address": "h", "redfish_verify_ca": false, "redfish_auth_type": "basic"}),
                Ok((VerifyCa::No, AuthType::Basic, None)),
            ),
            (
                json!({"redfish_address": "h", "redfish_verify_ca": "False", "redfish_system_id": "/redfish/v1/Systems/1"}),
                Ok((VerifyCa::No, AuthType::Auto, Some("/redfish/v1/Systems/1"))),
            ),
            (
                json!({"redfish_address": "h", "redfish_verify_ca": ca_path, "redfish_auth_type": "session"}),
                Ok((
                    VerifyCa::Path(ca.path().to_path_buf()),
                    AuthType::Session,
                    None,
                )),
            ),
            (json!({}), Err("redfish_address")),
            (json!({"redfish_address": ""}), Err("redfish_address")),
            (json!({"redfish_address": 5}), Err("redfish_address")),
            (
                json!({"redfish_address": "h", "redfish_verify_ca": "maybe"}),
                Err("redfish_verify_ca"),
            ),
            (
                json!({"redfish_address": "h", "redfish_verify_ca": 3}),
                Err("redfish_verify_ca"),
            ),
            (
                json!({"redfish_address": "h", "redfish_auth_type": "kerberos"}),
                Err("redfish_auth_type"),
            ),
            (
                json!({"redfish_address": "h", "redfish_system_id": 1}),
                Err("redfish_system_id"),
            ),
            (
                json!({"redfish_address": "h", "redfish_system_id": ""}),
                Err("redfish_system_id"),
            ),
            (
                json!({"redfish_address": "h", "redfish_password": {"x": 1}}),
                Err("redfish_password"),
            ),
            (
                json!({"redfish_address": "h", "deploy_iso": "ftp://x/y.iso"}),
                Err("deploy_iso"),
            ),
        ];
        for (info, want) in cases {
            let got = parse_driver_info(&node(info.clone()), AuthType::Auto);
            match want {
                Ok((verify, auth, system)) => {
                    let got = got.unwrap_or_else(|e| panic!("{info}: {e}"));
                    assert_eq!(&got.endpoint.verify_ca, verify, "{info}");
                    assert_eq!(got.endpoint.auth, *auth, "{info}");
                    assert_eq!(got.system_id.as_deref(), *system, "{info}");
                }
                Err(key) => {
                    let msg = got.expect_err(&info.to_string()).to_string();
                    assert!(msg.contains(key), "{info}: {msg}");
                }
            }
        }
        // The configured default applies when the node names no auth type.
        let got = parse_driver_info(&node(json!({"redfish_address": "h"})), AuthType::Basic);
        assert_eq!(got.unwrap().endpoint.auth, AuthType::Basic);
    }

    #[test]
    fn password_never_in_errors_or_debug() {
        let bad = node(
            json!({"redfish_address": "h", "redfish_password": "hunter2", "redfish_auth_type": "x"}),
        );
        assert!(!parse_driver_info(&bad, AuthType::Auto)
            .unwrap_err()
            .to_string()
            .contains("hunter2"));
        let ok = parse_driver_info(
            &node(json!({"redfish_address": "h", "redfish_password": "hunter2"})),
            AuthType::Auto,
        )
        .unwrap();
        assert!(!format!("{ok:?}").contains("hunter2"));
    }

    #[test]
    fn reset_plans_follow_ironic() {
        use PowerState::*;
        type Plan = Option<&'static [(&'static str, PowerState)]>;
        let cases: &[(PowerState, bool, Plan)] = &[
            (On, true, Some(&[])),
            (On, false, Some(&[("On", On)])),
            (Off, true, Some(&[("ForceOff", Off)])),
            (Off, false, Some(&[])),
            (Rebooting, true, Some(&[("ForceOff", Off), ("On", On)])),
            (Rebooting, false, Some(&[("On", On)])),
            (SoftRebooting, true, Some(&[("GracefulRestart", On)])),
            (SoftOff, true, Some(&[("GracefulShutdown", Off)])),
            (SoftOff, false, Some(&[])),
            (Error, true, None),
        ];
        for (target, on, want) in cases {
            assert_eq!(
                reset_plan(*target, *on).as_deref(),
                *want,
                "{target} from on={on}"
            );
        }
    }

    #[test]
    fn captured_sushy_tools_answers_read_right() {
        let sys = fixture("system");
        assert_eq!(power_of(&sys), Some(PowerState::On));
        let path = "/redfish/v1/Systems/27946b59-9e44-4fa7-8e91-f3527a1ef094";
        let (target, allowed) = reset_action(path, &sys);
        assert_eq!(target, format!("{path}/Actions/ComputerSystem.Reset"));
        assert_eq!(
            allowed.unwrap(),
            [
                "On",
                "ForceOff",
                "GracefulShutdown",
                "GracefulRestart",
                "ForceRestart",
                "Nmi",
                "ForceOn"
            ]
        );
        // A system without the action: the conventional target.
        let (t, a) = reset_action("/s/1", &json!({}));
        assert_eq!((t.as_str(), a), ("/s/1/Actions/ComputerSystem.Reset", None));
        assert_eq!(
            client::bmc_message(&fixture("reset-bogus")),
            "Power state Bogus is not supported"
        );
        assert_eq!(
            client::bmc_message(&fixture("system-not-found")),
            "Fake system nope was not found"
        );
        let after = fixture("system-after-on-and-pxe");
        assert_eq!(power_of(&after), Some(PowerState::On));
        assert_eq!(after["Boot"]["BootSourceOverrideTarget"], "Pxe");
        assert_eq!(
            client::odata_id(sys.get("VirtualMedia")).unwrap(),
            format!("{path}/VirtualMedia")
        );
        let media = fixture("system-virtual-media");
        assert_eq!(media["Members"].as_array().unwrap().len(), 2);
        // The service root links Systems but offers no sessions.
        let root = fixture("service-root");
        assert_eq!(
            client::odata_id(root.get("Systems")).unwrap(),
            "/redfish/v1/Systems"
        );
        assert!(root.get("SessionService").is_none() && root.pointer("/Links/Sessions").is_none());
    }

    #[test]
    fn boot_patches_send_only_what_changes() {
        let cur = json!({"BootSourceOverrideTarget": "Hdd", "BootSourceOverrideEnabled": "Continuous", "BootSourceOverrideMode": "UEFI"});
        let cases: &[(&str, bool, Option<BootMode>, Value)] = &[
            (
                "Pxe",
                true,
                None,
                json!({"BootSourceOverrideTarget": "Pxe"}),
            ),
            (
                "Pxe",
                false,
                None,
                json!({"BootSourceOverrideTarget": "Pxe", "BootSourceOverrideEnabled": "Once"}),
            ),
            (
                "Cd",
                true,
                Some(BootMode::Uefi),
                json!({"BootSourceOverrideTarget": "Cd"}),
            ),
            (
                "Cd",
                true,
                Some(BootMode::Legacy),
                json!({"BootSourceOverrideTarget": "Cd", "BootSourceOverrideMode": "Legacy"}),
            ),
        ];
        for (target, persistent, mode, want) in cases {
            assert_eq!(
                &boot_patch(&cur, target, *persistent, *mode),
                want,
                "{target} {persistent} {mode:?}"
            );
        }
        // Nothing known about the BMC: everything is sent.
        assert_eq!(
            boot_patch(&Value::Null, "Hdd", true, Some(BootMode::Uefi)),
            json!({"BootSourceOverrideTarget": "Hdd", "BootSourceOverrideEnabled": "Continuous", "BootSourceOverrideMode": "UEFI"})
        );
        // A settings object takes the properties it advertises.
        let boot = json!({"BootSourceOverrideTarget": "Cd", "BootSourceOverrideMode": "Legacy"});
        let (now, later) =
            split_boot_patch(&boot, Some(&json!({"BootSourceOverrideMode": "UEFI"})));
        assert_eq!(now, json!({"BootSourceOverrideTarget": "Cd"}));
        assert_eq!(later, json!({"BootSourceOverrideMode": "Legacy"}));
        let (now, later) = split_boot_patch(&boot, None);
        assert_eq!((now, later), (boot.clone(), json!({})));
    }

    #[test]
    fn wanted_boot_mode_sources() {
        let mut n = node(json!({"redfish_address": "h"}));
        assert_eq!(wanted_boot_mode(&n), None);
        n.boot_mode = Some("uefi".into());
        assert_eq!(wanted_boot_mode(&n), Some(BootMode::Uefi));
        n.properties
            .insert("capabilities".into(), json!("cpu_vt:true,boot_mode:bios"));
        assert_eq!(wanted_boot_mode(&n), Some(BootMode::Legacy));
        n.instance_info
            .insert("deploy_boot_mode".into(), json!("uefi"));
        assert_eq!(wanted_boot_mode(&n), Some(BootMode::Uefi));
        assert_eq!(boot_target("safe"), None);
        for d in BOOT_DEVICES {
            assert_eq!(boot_device_of(boot_target(d).unwrap()), Some(*d));
        }
    }

    #[test]
    fn media_kinds_match_device_types() {
        let cd = json!({"MediaTypes": ["CD", "DVD"]});
        let floppy = json!({"MediaTypes": ["Floppy", "USBStick"]});
        assert!(MediaKind::Cd.matches(&cd) && !MediaKind::Cd.matches(&floppy));
        assert!(MediaKind::Disk.matches(&floppy) && !MediaKind::Disk.matches(&cd));
        assert!(!MediaKind::Cd.matches(&json!({})));
        assert!(inserted(&json!({"Inserted": true})));
        assert!(inserted(&json!({"Image": "http://x/y.iso"})));
        assert!(!inserted(&json!({"Image": "", "Inserted": false})));
    }
}
