//! In-band inspection's deciders: what the inspection data that
//! ironic-python-agent posts (`inventory` plus plugin data) does to a node
//! and its ports, as Ironic's inspection hooks do it. Pure functions over
//! the node, its ports and the data; the conductor stores the outcome.
//!
//! Hooks, by Ironic's names, run in the configured order:
//! `ramdisk-error`, `validate-interfaces`, `ports`, `architecture`, `cpus`,
//! `memory`, `root-device` (local_gb), `boot-mode`, `cpu-capabilities`,
//! `local-link-connection` (LLDP).

pub mod lldp;
pub mod rules;

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::model::{Mac, Node, Port};

/// Which NICs become ports (Ironic's `[inspector] add_ports`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AddPorts {
    /// The NIC the node booted from (all NICs when the ramdisk does not say).
    Pxe,
    /// NICs that had an IP address in the ramdisk.
    Active,
    /// Every NIC with a MAC.
    All,
    /// No port is created.
    Disabled,
}

/// Which existing ports are kept (Ironic's `[inspector] keep_ports`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeepPorts {
    /// Every port.
    All,
    /// Ports whose MAC the inventory lists.
    Present,
    /// Ports of the NICs `add_ports` chose.
    Added,
}

/// The hooks this appliance runs, by Ironic's names.
pub const HOOKS: &[&str] = &[
    "ramdisk-error",
    "validate-interfaces",
    "ports",
    "architecture",
    "cpus",
    "memory",
    "root-device",
    "boot-mode",
    "cpu-capabilities",
    "local-link-connection",
];

/// Hooks that need another one earlier in the list.
const NEEDS: &[(&str, &str)] = &[
    ("ports", "validate-interfaces"),
    ("local-link-connection", "validate-interfaces"),
];

/// How inspection treats the data (`[inspector]` in the configuration).
#[derive(Debug, Clone)]
pub struct Settings {
    pub add_ports: AddPorts,
    pub keep_ports: KeepPorts,
    pub update_pxe_enabled: bool,
    pub hooks: Vec<String>,
    /// CPU flag → capability name (Ironic's `[inspector] cpu_capabilities`).
    pub cpu_capabilities: BTreeMap<String, String>,
    /// Subtract 1 GiB from the root disk for partitioning (Ironic's
    /// `disk_partitioning_spacing`).
    pub disk_partitioning_spacing: bool,
}

/// Ironic's default hooks plus the ones that fill the scheduling
/// properties, so an inspected node is ready to deploy.
pub fn default_hooks() -> Vec<String> {
    HOOKS.iter().map(|s| s.to_string()).collect()
}

pub fn default_cpu_capabilities() -> BTreeMap<String, String> {
    [
        ("vmx", "cpu_vt"),
        ("svm", "cpu_vt"),
        ("aes", "cpu_aes"),
        ("pse", "cpu_hugepages"),
        ("pdpe1gb", "cpu_hugepages_1g"),
        ("smx", "cpu_txt"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect()
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            add_ports: AddPorts::Pxe,
            keep_ports: KeepPorts::All,
            update_pxe_enabled: true,
            hooks: default_hooks(),
            cpu_capabilities: default_cpu_capabilities(),
            disk_partitioning_spacing: true,
        }
    }
}

/// Checks a hook list: known names, each needed hook earlier.
pub fn check_hooks(hooks: &[String]) -> Result<(), String> {
    for (i, h) in hooks.iter().enumerate() {
        if !HOOKS.contains(&h.as_str()) {
            return Err(format!(
                "unknown inspection hook {h:?}; known hooks: {}",
                HOOKS.join(", ")
            ));
        }
        for (hook, needed) in NEEDS {
            if h == hook && !hooks[..i].iter().any(|x| x == needed) {
                return Err(format!(
                    "inspection hook {hook:?} needs {needed:?} earlier in the list"
                ));
            }
        }
    }
    Ok(())
}

/// A port as the hooks leave it.
#[derive(Debug, Clone, PartialEq)]
pub enum PortChange {
    Create(Port),
    Update(Port),
    Delete(Port),
}

/// What the hooks did: the node is changed in place; these are the rest.
#[derive(Debug, Default)]
pub struct Outcome {
    pub ports: Vec<PortChange>,
    /// One line per thing done, for the node's history.
    pub notes: Vec<String>,
    /// Things skipped that an operator may want to know.
    pub warnings: Vec<String>,
}

/// The inspection data as posted: the inventory, and the rest of the body
/// as plugin data.
pub struct Data {
    pub inventory: Value,
    pub plugin_data: Map<String, Value>,
}

/// The MAC of the NIC the ramdisk booted from: `inventory.boot.pxe_interface`
/// (`01-aa-bb-…` or `aa:bb:…`).
pub fn pxe_mac(inventory: &Value) -> Option<Mac> {
    let raw = inventory.pointer("/boot/pxe_interface")?.as_str()?;
    let raw = raw.strip_prefix("01-").unwrap_or(raw);
    raw.parse().ok()
}

/// The MACs of the inventory's interfaces (for the node lookup).
pub fn inventory_macs(inventory: &Value) -> Vec<Mac> {
    inventory
        .get("interfaces")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|i| i.get("mac_address")?.as_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The BMC addresses the inventory reports (for the node lookup).
pub fn bmc_addresses(inventory: &Value) -> Vec<String> {
    ["bmc_address", "bmc_v6address"]
        .iter()
        .filter_map(|k| inventory.get(*k)?.as_str())
        .filter(|s| !s.is_empty() && *s != "0.0.0.0" && *s != "::/0")
        .map(str::to_string)
        .collect()
}

fn is_loopback(ip: &str) -> bool {
    ip.parse::<std::net::IpAddr>()
        .is_ok_and(|a| a.is_loopback())
}

/// Capabilities as a map, from Ironic's `"k1:v1,k2:v2"` (or a JSON object).
pub fn parse_capabilities(v: Option<&Value>) -> Result<Vec<(String, String)>, String> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(Vec::new()),
        Some(Value::String(s)) => s
            .split(',')
            .map(|kv| match kv.split_once(':') {
                Some((k, v)) if !k.trim().is_empty() => {
                    Ok((k.trim().to_string(), v.trim().to_string()))
                }
                _ => Err(format!("Invalid capabilities string '{s}'.")),
            })
            .collect(),
        Some(Value::Object(m)) => Ok(m
            .iter()
            .map(|(k, v)| {
                let v = v
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string());
                (k.clone(), v)
            })
            .collect()),
        Some(other) => Err(format!("Invalid capabilities string '{other}'.")),
    }
}

/// Sets capabilities on the node, keeping the others (and their order).
pub fn set_capabilities(node: &mut Node, new: &[(String, String)]) -> Result<(), String> {
    let mut caps = parse_capabilities(node.properties.get("capabilities"))?;
    for (k, v) in new {
        match caps.iter_mut().find(|(ck, _)| ck == k) {
            Some(c) => c.1 = v.clone(),
            None => caps.push((k.clone(), v.clone())),
        }
    }
    let text = caps
        .iter()
        .map(|(k, v)| format!("{k}:{v}"))
        .collect::<Vec<_>>()
        .join(",");
    node.properties
        .insert("capabilities".into(), Value::String(text));
    Ok(())
}

/// A valid interface of the inventory.
#[derive(Debug, Clone)]
struct Nic {
    name: String,
    mac: Mac,
    pxe: bool,
    client_id: Option<String>,
    doc: Map<String, Value>,
}

/// Runs the configured hooks on `node` (changed in place) with its current
/// `ports`. Err is the reason the inspection fails, in Ironic's words.
pub fn run_hooks(
    node: &mut Node,
    ports: &[Port],
    data: &mut Data,
    s: &Settings,
) -> Result<Outcome, String> {
    let mut out = Outcome::default();
    let uuid = node.uuid;
    let on = |h: &str| s.hooks.iter().any(|x| x == h);
    let inv = &data.inventory;
    let pd = &mut data.plugin_data;

    // Preprocess: the ramdisk's own error, then the interfaces.
    let mut failures = Vec::new();
    if on("ramdisk-error") {
        match pd.get("error") {
            None | Some(Value::Null) | Some(Value::Bool(false)) => {}
            Some(Value::String(e)) if e.is_empty() => {}
            Some(e) => {
                let e = e
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| e.to_string());
                failures.push(format!("Ramdisk reported error: {e}"));
            }
        }
    }
    let mut all: Vec<Nic> = Vec::new();
    let mut valid: Vec<Nic> = Vec::new();
    let pxe = pxe_mac(inv);
    if on("validate-interfaces") {
        match validate_interfaces(uuid, inv, pxe, s.add_ports) {
            Ok((a, v)) => {
                let doc = |nics: &[Nic]| {
                    Value::Object(
                        nics.iter()
                            .map(|n| (n.name.clone(), Value::Object(n.doc.clone())))
                            .collect(),
                    )
                };
                pd.insert("all_interfaces".into(), doc(&a));
                pd.insert("valid_interfaces".into(), doc(&v));
                pd.insert(
                    "macs".into(),
                    Value::Array(v.iter().map(|n| Value::String(n.mac.to_string())).collect()),
                );
                (all, valid) = (a, v);
            }
            Err(e) => failures.push(e),
        }
    }
    if !failures.is_empty() {
        return Err(format!(
            "The following failures happened while running preprocess hooks for node {uuid}:\n{}",
            failures.join("\n")
        ));
    }

    // The ports as they will be: existing ones, then the new ones.
    let mut working: Vec<(Port, bool, bool)> =
        ports.iter().map(|p| (p.clone(), false, false)).collect();
    for hook in &s.hooks {
        match hook.as_str() {
            "ports" => ports_hook(node, &mut working, &all, &valid, pxe, s, &mut out),
            "architecture" => {
                let arch = inv
                    .pointer("/cpu/architecture")
                    .and_then(Value::as_str)
                    .filter(|a| !a.is_empty())
                    .ok_or_else(|| {
                        format!(
                            "Inventory has malformed or missing CPU architecture information: {}",
                            inv.get("cpu").cloned().unwrap_or(Value::Null)
                        )
                    })?;
                node.properties.insert("cpu_arch".into(), Value::from(arch));
                out.notes.push(format!("cpu_arch {arch}"));
            }
            "cpus" => match inv.pointer("/cpu/count").and_then(Value::as_u64) {
                Some(n) if n > 0 => {
                    node.properties.insert("cpus".into(), Value::from(n));
                    out.notes.push(format!("cpus {n}"));
                }
                _ => out
                    .warnings
                    .push("the inventory has no CPU count; cpus left as it was".into()),
            },
            "memory" => {
                let mb = inv
                    .pointer("/memory/physical_mb")
                    .and_then(Value::as_u64)
                    .filter(|m| *m > 0)
                    .ok_or_else(|| {
                        format!(
                            "Inventory has missing memory information: {}",
                            inv.get("memory").cloned().unwrap_or(Value::Null)
                        )
                    })?;
                node.properties.insert("memory_mb".into(), Value::from(mb));
                out.notes.push(format!("memory_mb {mb}"));
            }
            "root-device" => {
                let root = pd.get("root_disk").cloned();
                let gb = match root
                    .as_ref()
                    .and_then(|d| d.get("size"))
                    .and_then(Value::as_u64)
                {
                    None => {
                        out.warnings
                            .push("no root disk reported: local_gb 0 (diskless)".into());
                        0
                    }
                    Some(bytes) => {
                        let gb = bytes >> 30;
                        if gb >= 1 && s.disk_partitioning_spacing {
                            gb - 1
                        } else {
                            gb
                        }
                    }
                };
                node.properties.insert("local_gb".into(), Value::from(gb));
                pd.insert("local_gb".into(), Value::from(gb));
                let name = root
                    .as_ref()
                    .and_then(|d| d.get("name"))
                    .and_then(Value::as_str)
                    .unwrap_or("none");
                out.notes.push(format!("local_gb {gb} (root disk {name})"));
            }
            "boot-mode" => {
                if let Some(mode) = inv
                    .pointer("/boot/current_boot_mode")
                    .and_then(Value::as_str)
                {
                    set_capabilities(node, &[("boot_mode".into(), mode.into())])?;
                    out.notes.push(format!("capability boot_mode:{mode}"));
                }
            }
            "cpu-capabilities" => {
                let flags: Vec<&str> = inv
                    .pointer("/cpu/flags")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let mut caps: Vec<(String, String)> = Vec::new();
                for (flag, name) in &s.cpu_capabilities {
                    if flags.contains(&flag.as_str()) && !caps.iter().any(|(k, _)| k == name) {
                        caps.push((name.clone(), "true".into()));
                    }
                }
                if !caps.is_empty() {
                    set_capabilities(node, &caps)?;
                }
            }
            "local-link-connection" => {
                for nic in &all {
                    let Some((port, _, changed)) =
                        working.iter_mut().find(|(p, _, _)| p.address == nic.mac)
                    else {
                        continue;
                    };
                    let tlvs = pd
                        .get("lldp_raw")
                        .and_then(|r| r.get(&nic.name))
                        .or_else(|| nic.doc.get("lldp"))
                        .filter(|t| !t.is_null());
                    // The agent reports `lldp: null` when it collected none.
                    let Some(tlvs) = tlvs else { continue };
                    match lldp::local_link_connection(tlvs) {
                        Ok(found) => {
                            for (k, v) in found {
                                if !port.local_link_connection.contains_key(&k) {
                                    out.notes.push(format!("port {} {k} {v}", port.address));
                                    port.local_link_connection.insert(k, Value::String(v));
                                    *changed = true;
                                }
                            }
                        }
                        Err(e) => out.warnings.push(format!("LLDP of {}: {e}", nic.name)),
                    }
                }
            }
            _ => {}
        }
    }
    for (port, new, changed) in working {
        if new {
            out.ports.push(PortChange::Create(port));
        } else if changed {
            out.ports.push(PortChange::Update(port));
        }
    }
    Ok(out)
}

/// Ironic's validate-interfaces: (every NIC with a name and MAC, the ones
/// `add_ports` chooses).
fn validate_interfaces(
    uuid: uuid::Uuid,
    inv: &Value,
    pxe: Option<Mac>,
    add: AddPorts,
) -> Result<(Vec<Nic>, Vec<Nic>), String> {
    let invalid = |why: &str| format!("Inventory for node {uuid} is invalid: {why}");
    let list = inv
        .get("interfaces")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("no interfaces present in inventory"))?;
    let mut all = Vec::new();
    for i in list {
        let Some(obj) = i.as_object() else { continue };
        let name = obj
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty());
        let mac = obj
            .get("mac_address")
            .and_then(Value::as_str)
            .and_then(|m| m.parse::<Mac>().ok());
        let (Some(name), Some(mac)) = (name, mac) else {
            continue;
        };
        let mut doc = obj.clone();
        doc.insert("mac_address".into(), Value::String(mac.to_string()));
        if let Some(Value::String(v6)) = doc.get("ipv6_address").cloned() {
            if let Some((addr, _)) = v6.split_once('%') {
                doc.insert("ipv6_address".into(), Value::String(addr.into()));
            }
        }
        let is_pxe = Some(mac) == pxe;
        doc.insert("pxe_enabled".into(), Value::Bool(is_pxe));
        all.push(Nic {
            name: name.to_string(),
            mac,
            pxe: is_pxe,
            client_id: obj
                .get("client_id")
                .and_then(Value::as_str)
                .map(str::to_string),
            doc,
        });
    }
    if all.is_empty() {
        return Err(invalid("no valid network interfaces"));
    }
    let ip_of = |n: &Nic| {
        ["ipv4_address", "ipv6_address"]
            .iter()
            .find_map(|k| {
                n.doc
                    .get(*k)
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
            })
            .map(str::to_string)
    };
    let valid: Vec<Nic> = all
        .iter()
        .filter(|n| n.name != "lo" && !ip_of(n).is_some_and(|ip| is_loopback(&ip)))
        .filter(|n| match add {
            AddPorts::Pxe => pxe.is_none() || n.pxe,
            AddPorts::Active => ip_of(n).is_some(),
            AddPorts::All | AddPorts::Disabled => true,
        })
        .cloned()
        .collect();
    if valid.is_empty() {
        let v = match add {
            AddPorts::Pxe => "pxe",
            AddPorts::Active => "active",
            AddPorts::All => "all",
            AddPorts::Disabled => "disabled",
        };
        return Err(invalid(&format!(
            "no network interfaces match the configuration (add_ports set to \"{v}\")"
        )));
    }
    Ok((all, valid))
}

/// Ironic's ports hook on the working set (port, new, changed).
fn ports_hook(
    node: &Node,
    working: &mut Vec<(Port, bool, bool)>,
    all: &[Nic],
    valid: &[Nic],
    pxe: Option<Mac>,
    s: &Settings,
    out: &mut Outcome,
) {
    if s.add_ports != AddPorts::Disabled {
        for nic in valid {
            if working.iter().any(|(p, _, _)| p.address == nic.mac) {
                continue;
            }
            let mut p = Port::new(nic.mac, node.uuid);
            p.pxe_enabled = nic.pxe;
            if let Some(c) = &nic.client_id {
                p.extra.insert("client-id".into(), Value::String(c.clone()));
            }
            out.notes.push(format!(
                "port {} ({}) created, pxe_enabled {}",
                nic.mac, nic.name, nic.pxe
            ));
            working.push((p, true, false));
        }
    }
    let keep = |mac: Mac| match s.keep_ports {
        KeepPorts::All => true,
        KeepPorts::Present => all.iter().any(|n| n.mac == mac),
        KeepPorts::Added => valid.iter().any(|n| n.mac == mac),
    };
    let mut i = 0;
    while i < working.len() {
        let (port, new, changed) = &mut working[i];
        if !*new && !keep(port.address) {
            out.notes.push(format!(
                "port {} deleted ([inspector] keep_ports)",
                port.address
            ));
            out.ports.push(PortChange::Delete(port.clone()));
            working.remove(i);
            continue;
        }
        if s.update_pxe_enabled && !*new {
            let want = Some(port.address) == pxe;
            if pxe.is_some() && port.pxe_enabled != want {
                port.pxe_enabled = want;
                *changed = true;
                out.notes
                    .push(format!("port {} pxe_enabled {want}", port.address));
            }
        }
        if let Some(c) = all
            .iter()
            .find(|n| n.mac == port.address)
            .and_then(|n| n.client_id.clone())
        {
            if port.extra.get("client-id").and_then(Value::as_str) != Some(c.as_str()) {
                port.extra.insert("client-id".into(), Value::String(c));
                *changed = true;
            }
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests;
