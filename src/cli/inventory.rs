//! Bifrost inventories, read for `rackboot enroll`: the JSON or YAML mapping
//! of node names to entries, each checked into what the API is to be sent (node
//! fields, ports) before anything is written, and the diff that decides which
//! fields of an existing node or port need a PATCH. Pure: no I/O.
//!
//! The format is Bifrost's: `{NAME: {name, uuid, driver, driver_info, nics:
//! [{mac, …}], properties, instance_info, …}}`. Older files nest `driver_info`
//! under `power`, `deploy`, `management` and `console`; those are flattened.
//! Keys that only mean something to Bifrost or Ansible (`ipv4_address`,
//! `host_groups`, …) are not node fields and are collected as ignored.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::Path;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

use crate::model::mac::Mac;
use crate::redact::Masked;

/// The largest inventory file read, in bytes.
pub(super) const MAX_FILE_BYTES: u64 = 32 << 20;

/// Node fields that are mappings; an existing node's are merged key by key.
const NODE_MAPS: &[&str] = &[
    "driver_info",
    "properties",
    "instance_info",
    "extra",
    "network_data",
];

/// Node fields that are strings.
const NODE_STRINGS: &[&str] = &[
    "name",
    "uuid",
    "driver",
    "resource_class",
    "description",
    "owner",
    "lessee",
    "conductor_group",
    "chassis_uuid",
    "instance_uuid",
    "retired_reason",
    "shard",
    "parent_node",
    "bios_interface",
    "boot_interface",
    "console_interface",
    "deploy_interface",
    "firmware_interface",
    "inspect_interface",
    "management_interface",
    "power_interface",
    "raid_interface",
    "rescue_interface",
    "storage_interface",
    "vendor_interface",
];

/// Node fields that are flags (passed as given; the API checks them).
const NODE_FLAGS: &[&str] = &["automated_clean", "retired", "disable_power_off"];

/// Legacy `driver_info` sub-sections that are flattened into it.
const DRIVER_INFO_SECTIONS: &[&str] = &["power", "deploy", "management", "console"];

/// Port fields a nic may carry besides `mac`.
const PORT_MAPS: &[&str] = &["extra", "local_link_connection"];
const PORT_STRINGS: &[&str] = &[
    "physical_network",
    "name",
    "description",
    "vendor",
    "category",
];
const PORT_FLAGS: &[&str] = &["pxe_enabled", "is_smartnic"];

/// Which masked maps the API shows (field, extra masked keys): a secret
/// there reads `******`, so it can only be compared masked.
pub(super) const NODE_MASKED: &[(&str, &[&str])] =
    &[("driver_info", &[]), ("instance_info", &["image_url"])];

/// How the file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    Json,
    Yaml,
}

impl Format {
    /// By extension (`.json`, `.yaml`, `.yml`), else by content: a document
    /// that opens with `{` is JSON.
    pub(super) fn detect(path: &Path, text: &str) -> Format {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("json") => Format::Json,
            Some("yaml" | "yml") => Format::Yaml,
            _ if text.trim_start().starts_with('{') => Format::Json,
            _ => Format::Yaml,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Format::Json => "JSON",
            Format::Yaml => "YAML",
        }
    }
}

/// Why a file is not an inventory at all: nothing is enrolled from it.
#[derive(Debug, thiserror::Error)]
pub(super) enum Error {
    #[error("not valid {format} at line {line}, column {column}: {message}")]
    Syntax {
        format: &'static str,
        line: u64,
        column: u64,
        message: String,
    },
    #[error("not valid {format}: {message}")]
    Unplaced {
        format: &'static str,
        message: String,
    },
    #[error("the inventory is empty")]
    Empty,
    #[error("node {key:?} is listed twice (line {line})")]
    DuplicateKey { key: String, line: usize },
}

/// Why one entry is refused: nothing is written for it. Never holds a value
/// that could be a secret (only keys, MACs, UUIDs and names).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum EntryError {
    #[error("the entry is not a mapping of fields")]
    NotAMapping,
    #[error("'driver' is required")]
    MissingDriver,
    #[error("{field} must be {expected}")]
    WrongType {
        field: String,
        expected: &'static str,
    },
    #[error("uuid {0:?} is not a UUID")]
    BadUuid(String),
    #[error("{at}: {value:?} is not a MAC address")]
    BadMac { at: String, value: String },
    #[error("nics[{0}] has no 'mac'")]
    NoMac(usize),
    #[error("driver_info.{section}.{key} and driver_info.{key} differ")]
    DriverInfoConflict { section: String, key: String },
    #[error("MAC {mac} is also listed for node {other:?}")]
    DuplicateMac { mac: Mac, other: String },
    #[error("{what} {value:?} is also used by node {other:?}")]
    Duplicate {
        what: &'static str,
        value: String,
        other: String,
    },
}

/// A nic of an entry: the port to have.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Nic {
    pub(super) mac: Mac,
    /// Port fields besides the address and the node.
    pub(super) fields: Map<String, Value>,
}

/// A checked entry: what the node and its ports should be.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Planned {
    /// The node's name (its `name`, else its key).
    pub(super) name: String,
    pub(super) uuid: Option<String>,
    /// Node fields to send, `name` and `driver` included.
    pub(super) fields: Map<String, Value>,
    pub(super) nics: Vec<Nic>,
}

/// One entry of the file, checked or refused.
#[derive(Debug)]
pub(super) struct Entry {
    pub(super) key: String,
    /// 1-based line of the entry's key, when it could be found.
    pub(super) line: Option<usize>,
    pub(super) checked: Result<Planned, EntryError>,
}

/// A parsed inventory, in file order.
#[derive(Debug)]
pub(super) struct Inventory {
    pub(super) entries: Vec<Entry>,
    /// Keys that are not node or port fields, ignored (sorted, once each).
    pub(super) ignored: BTreeSet<String>,
}

/// The top-level mapping in file order (a JSON or YAML map of name → entry).
struct RawEntries(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for RawEntries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawEntries;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping of node names to node entries")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<RawEntries, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, Value>()? {
                    out.push((k, v));
                }
                Ok(RawEntries(out))
            }
        }
        // `any`, so that a list or a scalar gets the visitor's own words.
        d.deserialize_any(V)
    }
}

/// Parses and checks a whole inventory.
pub(super) fn parse(text: &str, format: Format) -> Result<Inventory, Error> {
    if text.trim().is_empty() {
        return Err(Error::Empty);
    }
    let raw = match format {
        Format::Json => serde_json::from_str::<RawEntries>(text).map_err(|e| {
            let full = e.to_string();
            let suffix = format!(" at line {} column {}", e.line(), e.column());
            Error::Syntax {
                format: format.as_str(),
                line: e.line() as u64,
                column: e.column() as u64,
                message: full.strip_suffix(&suffix).unwrap_or(&full).to_string(),
            }
        })?,
        Format::Yaml => {
            // No source snippet in messages: the lines around an error may hold a password.
            let mut options = serde_saphyr::Options::default();
            options.with_snippet = false;
            serde_saphyr::from_str_with_options::<RawEntries>(text, options).map_err(|e| {
                let e = e.without_snippet();
                match e.location() {
                    Some(loc) if loc.line() > 0 => Error::Syntax {
                        format: format.as_str(),
                        line: loc.line(),
                        column: loc.column(),
                        message: yaml_message(e),
                    },
                    _ => Error::Unplaced {
                        format: format.as_str(),
                        message: yaml_message(e),
                    },
                }
            })?
        }
    };
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (key, _) in &raw.0 {
        if seen.insert(key, 0).is_some() {
            return Err(Error::DuplicateKey {
                key: key.clone(),
                line: key_line(text, key).unwrap_or(0),
            });
        }
    }

    let mut ignored = BTreeSet::new();
    let mut entries: Vec<Entry> = raw
        .0
        .into_iter()
        .map(|(key, value)| Entry {
            line: key_line(text, &key),
            checked: check_entry(&key, value, &mut ignored),
            key,
        })
        .collect();
    refuse_duplicates(&mut entries);
    Ok(Inventory { entries, ignored })
}

/// The YAML error's own words, without the location it carries separately.
fn yaml_message(e: &serde_saphyr::Error) -> String {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or_default().trim();
    // serde-saphyr ends messages with " at line L, column C"; the location is shown apart.
    match first.rfind(" at line ") {
        Some(i) => first[..i].to_string(),
        None => first.to_string(),
    }
}

/// The 1-based line where `key` is written as a mapping key, at the least
/// indentation found (the top level): `key:`, `"key":` or `'key':`.
pub(super) fn key_line(text: &str, key: &str) -> Option<usize> {
    let forms = [format!("\"{key}\""), format!("'{key}'"), key.to_string()];
    let mut best: Option<(usize, usize)> = None;
    for (i, line) in text.lines().enumerate() {
        let body = line.trim_start();
        let indent = line.len() - body.len();
        // In JSON several keys may share a line (`{"a": {...}, "b": …`); the first one counts.
        let body = body.trim_start_matches(['{', ',', ' ']);
        let hit = forms.iter().any(|f| {
            body.strip_prefix(f.as_str())
                .is_some_and(|rest| rest.trim_start().starts_with(':'))
        });
        if hit && best.is_none_or(|(_, d)| indent < d) {
            best = Some((i + 1, indent));
        }
    }
    best.map(|(l, _)| l)
}

fn wrong(field: impl Into<String>, expected: &'static str) -> EntryError {
    EntryError::WrongType {
        field: field.into(),
        expected,
    }
}

/// Checks one entry into the node and ports it asks for.
fn check_entry(
    key: &str,
    value: Value,
    ignored: &mut BTreeSet<String>,
) -> Result<Planned, EntryError> {
    let Value::Object(entry) = value else {
        return Err(EntryError::NotAMapping);
    };
    let mut fields = Map::new();
    let mut nics = Vec::new();
    for (k, v) in entry {
        // A null is an unset field, as Bifrost treats it.
        if v.is_null() {
            continue;
        }
        let k = k.as_str();
        if k == "nics" {
            nics = check_nics(v, ignored)?;
        } else if k == "driver_info" {
            fields.insert(k.into(), Value::Object(flatten_driver_info(v)?));
        } else if NODE_MAPS.contains(&k) {
            if !v.is_object() {
                return Err(wrong(k, "a mapping"));
            }
            fields.insert(k.into(), v);
        } else if NODE_STRINGS.contains(&k) {
            if !v.is_string() {
                return Err(wrong(k, "a string"));
            }
            fields.insert(k.into(), v);
        } else if NODE_FLAGS.contains(&k) {
            fields.insert(k.into(), v);
        } else {
            // Bifrost's and Ansible's own settings (ipv4_address, host_groups,
            // ansible_ssh_host, ipa_kernel_url, …), and network_interface,
            // which Bifrost itself drops (it names a host NIC there).
            ignored.insert(k.to_string());
        }
    }
    match fields.get("driver") {
        Some(Value::String(d)) if !d.is_empty() => {}
        _ => return Err(EntryError::MissingDriver),
    }
    let name = match fields.get("name") {
        Some(Value::String(n)) => n.clone(),
        _ => {
            fields.insert("name".into(), Value::String(key.to_string()));
            key.to_string()
        }
    };
    let uuid = match fields.get("uuid") {
        Some(Value::String(u)) => {
            let parsed: uuid::Uuid = u.parse().map_err(|_| EntryError::BadUuid(u.clone()))?;
            let u = parsed.hyphenated().to_string();
            fields.insert("uuid".into(), Value::String(u.clone()));
            Some(u)
        }
        _ => None,
    };
    Ok(Planned {
        name,
        uuid,
        fields,
        nics,
    })
}

/// `driver_info` with the legacy `power`/`deploy`/`management`/`console`
/// sections folded in.
fn flatten_driver_info(v: Value) -> Result<Map<String, Value>, EntryError> {
    let Value::Object(info) = v else {
        return Err(wrong("driver_info", "a mapping"));
    };
    let mut flat = Map::new();
    let mut sections = Vec::new();
    for (k, v) in info {
        if DRIVER_INFO_SECTIONS.contains(&k.as_str()) && v.is_object() {
            sections.push((k, v));
        } else {
            flat.insert(k, v);
        }
    }
    for (section, v) in sections {
        let Value::Object(inner) = v else { continue };
        for (k, v) in inner {
            match flat.get(&k) {
                Some(existing) if *existing != v => {
                    return Err(EntryError::DriverInfoConflict { section, key: k });
                }
                _ => {
                    flat.insert(k, v);
                }
            }
        }
    }
    Ok(flat)
}

fn check_nics(v: Value, ignored: &mut BTreeSet<String>) -> Result<Vec<Nic>, EntryError> {
    let Value::Array(items) = v else {
        return Err(wrong("nics", "a list"));
    };
    let mut nics = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let Value::Object(nic) = item else {
            return Err(wrong(format!("nics[{i}]"), "a mapping"));
        };
        let mut mac = None;
        let mut fields = Map::new();
        for (k, v) in nic {
            let k = k.as_str();
            if v.is_null() {
                continue;
            }
            if k == "mac" {
                let Value::String(s) = &v else {
                    return Err(wrong(format!("nics[{i}].mac"), "a string"));
                };
                mac = Some(s.parse::<Mac>().map_err(|_| EntryError::BadMac {
                    at: format!("nics[{i}].mac"),
                    value: s.clone(),
                })?);
            } else if PORT_MAPS.contains(&k) {
                if !v.is_object() {
                    return Err(wrong(format!("nics[{i}].{k}"), "a mapping"));
                }
                fields.insert(k.into(), v);
            } else if PORT_STRINGS.contains(&k) {
                if !v.is_string() {
                    return Err(wrong(format!("nics[{i}].{k}"), "a string"));
                }
                fields.insert(k.into(), v);
            } else if PORT_FLAGS.contains(&k) {
                fields.insert(k.into(), v);
            } else {
                ignored.insert(format!("nics[].{k}"));
            }
        }
        let mac = mac.ok_or(EntryError::NoMac(i))?;
        nics.push(Nic { mac, fields });
    }
    Ok(nics)
}

/// Refuses entries that repeat an earlier entry's MAC, name or UUID: both
/// would claim one port or node.
fn refuse_duplicates(entries: &mut [Entry]) {
    let mut macs: HashMap<Mac, String> = HashMap::new();
    let mut names: HashMap<String, String> = HashMap::new();
    let mut uuids: HashMap<String, String> = HashMap::new();
    for e in entries.iter_mut() {
        let Ok(p) = &e.checked else { continue };
        let mut refusal = None;
        if let Some(other) = names.get(&p.name) {
            refusal = Some(EntryError::Duplicate {
                what: "name",
                value: p.name.clone(),
                other: other.clone(),
            });
        }
        if let Some(other) = p.uuid.as_ref().and_then(|u| uuids.get(u)) {
            refusal = Some(EntryError::Duplicate {
                what: "uuid",
                value: p.uuid.clone().unwrap_or_default(),
                other: other.clone(),
            });
        }
        let mut own = BTreeSet::new();
        for nic in &p.nics {
            if let Some(other) = macs.get(&nic.mac) {
                refusal = Some(EntryError::DuplicateMac {
                    mac: nic.mac,
                    other: other.clone(),
                });
            } else if !own.insert(nic.mac) {
                refusal = Some(EntryError::DuplicateMac {
                    mac: nic.mac,
                    other: e.key.clone(),
                });
            }
        }
        if let Some(r) = refusal {
            e.checked = Err(r);
            continue;
        }
        names.insert(p.name.clone(), e.key.clone());
        if let Some(u) = &p.uuid {
            uuids.insert(u.clone(), e.key.clone());
        }
        for nic in &p.nics {
            macs.insert(nic.mac, e.key.clone());
        }
    }
}

/// What an existing object needs to match the inventory.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Diff {
    /// JSON patch operations, in field order.
    pub(super) ops: Vec<Value>,
    /// The top-level fields they touch.
    pub(super) fields: Vec<String>,
}

/// JSON pointer escaping of one path segment.
fn pointer_segment(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// How the API would show `value` under `key` of a masked map.
fn masked_view(key: &str, value: &Value, extra: &[&str]) -> Value {
    let mut one = Map::new();
    one.insert(key.to_string(), value.clone());
    serde_json::to_value(Masked { map: &one, extra })
        .ok()
        .and_then(|mut v| v.get_mut(key).map(Value::take))
        .unwrap_or(Value::Null)
}

/// The patch that brings `shown` (an object as the API shows it) to what
/// `desired` asks. Mapping fields are merged key by key: keys the inventory
/// does not name are kept (inspection fills `properties`). A value the API
/// shows masked is taken as unchanged when it masks the same way, unless
/// `update_secrets` (the API never shows a password, so a changed one cannot
/// be seen). `uuid` is how objects are matched, never patched.
pub(super) fn diff(
    shown: &Value,
    desired: &Map<String, Value>,
    masked: &[(&str, &[&str])],
    update_secrets: bool,
) -> Diff {
    let mut out = Diff::default();
    for (field, want) in desired {
        if field == "uuid" {
            continue;
        }
        let before = out.ops.len();
        let have = shown.get(field);
        match (want, have) {
            (Value::Object(want), Some(Value::Object(have))) => {
                let mask = masked.iter().find(|(f, _)| f == field).map(|(_, x)| *x);
                for (k, v) in want {
                    let same = match (have.get(k), mask) {
                        (Some(h), _) if h == v => true,
                        (Some(h), Some(extra)) => {
                            !update_secrets && masked_view(k, v, extra) == *h && h != v
                        }
                        _ => false,
                    };
                    if !same {
                        out.ops.push(serde_json::json!({
                            "op": "add",
                            "path": format!("/{field}/{}", pointer_segment(k)),
                            "value": v,
                        }));
                    }
                }
            }
            (Value::Object(want), _) if want.is_empty() => {}
            (want, have) if have == Some(want) => {}
            (want, _) => out.ops.push(serde_json::json!({
                "op": "add",
                "path": format!("/{}", pointer_segment(field)),
                "value": want,
            })),
        }
        if out.ops.len() > before {
            out.fields.push(field.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const JSON: &str = r#"{
      "node-a": {
        "name": "node-a",
        "uuid": "00000000-0000-0000-0000-0000000000AA",
        "driver": "ipmi",
        "driver_info": {
          "power": {"ipmi_address": "192.0.2.1", "ipmi_password": "pw-a"},
          "deploy": {"deploy_kernel": "http://x/k"},
          "ipmi_username": "admin"
        },
        "nics": [{"mac": "52:54:00:00:00:01"}, {"mac": "52-54-00-00-00-0A", "pxe_enabled": false}],
        "ipv4_address": "192.0.2.10",
        "host_groups": ["baremetal"],
        "properties": {"cpu_arch": "x86_64", "ram": "32760"},
        "instance_info": {"image_source": "http://x/img.qcow2"}
      },
      "node-b": {
        "driver": "fake-hardware",
        "nics": [{"mac": "52:54:00:00:00:02"}]
      }
    }"#;

    const YAML: &str = "---
  node-a:
    name: node-a
    uuid: \"00000000-0000-0000-0000-0000000000AA\"
    driver: ipmi
    driver_info:
      power:
        ipmi_address: 192.0.2.1
        ipmi_password: pw-a
      deploy:
        deploy_kernel: http://x/k
      ipmi_username: admin
    nics:
      - mac: \"52:54:00:00:00:01\"
      - mac: \"52-54-00-00-00-0A\"
        pxe_enabled: false
    ipv4_address: 192.0.2.10
    host_groups: [baremetal]
    properties:
      cpu_arch: x86_64
      ram: \"32760\"
    instance_info:
      image_source: http://x/img.qcow2
  node-b:
    driver: fake-hardware
    nics:
      - mac: \"52:54:00:00:00:02\"
";

    fn planned(inv: &Inventory, i: usize) -> &Planned {
        inv.entries[i].checked.as_ref().unwrap()
    }

    #[test]
    fn parses_json_and_yaml_alike() {
        let j = parse(JSON, Format::Json).unwrap();
        let y = parse(YAML, Format::Yaml).unwrap();
        assert_eq!(j.entries.len(), 2);
        for (a, b) in j.entries.iter().zip(&y.entries) {
            assert_eq!(a.key, b.key);
            assert_eq!(a.checked, b.checked);
        }
        assert_eq!(j.ignored, y.ignored);
        let ignored: Vec<&str> = j.ignored.iter().map(String::as_str).collect();
        assert_eq!(ignored, ["host_groups", "ipv4_address"]);
        // File order, and the key's line.
        assert_eq!(j.entries[0].key, "node-a");
        assert_eq!(j.entries[0].line, Some(2));
        assert_eq!(j.entries[1].line, Some(17));
        assert_eq!(y.entries[0].line, Some(2));
        assert_eq!(y.entries[1].line, Some(24));
    }

    #[test]
    fn flattens_nested_driver_info_and_fills_the_name() {
        let inv = parse(JSON, Format::Json).unwrap();
        let a = planned(&inv, 0);
        assert_eq!(
            a.fields["driver_info"],
            json!({
                "ipmi_address": "192.0.2.1",
                "ipmi_password": "pw-a",
                "deploy_kernel": "http://x/k",
                "ipmi_username": "admin",
            })
        );
        assert_eq!(
            a.uuid.as_deref(),
            Some("00000000-0000-0000-0000-0000000000aa")
        );
        assert_eq!(a.nics.len(), 2);
        assert_eq!(a.nics[1].mac.to_string(), "52:54:00:00:00:0a");
        assert_eq!(
            a.nics[1].fields,
            json!({"pxe_enabled": false}).as_object().cloned().unwrap()
        );
        assert!(!a.fields.contains_key("ipv4_address") && !a.fields.contains_key("nics"));
        let b = planned(&inv, 1);
        assert_eq!(b.name, "node-b");
        assert_eq!(b.fields["name"], "node-b");
        assert_eq!(b.uuid, None);
    }

    #[test]
    fn a_conflicting_nested_driver_info_is_refused() {
        let text = r#"{"n": {"driver": "ipmi", "driver_info": {"ipmi_address": "a", "power": {"ipmi_address": "b"}}}}"#;
        let inv = parse(text, Format::Json).unwrap();
        assert_eq!(
            inv.entries[0].checked,
            Err(EntryError::DriverInfoConflict {
                section: "power".into(),
                key: "ipmi_address".into()
            })
        );
    }

    #[test]
    fn a_bad_entry_is_refused_alone_and_named_with_its_line() {
        let text = "\
good-1:
  driver: fake-hardware
  nics:
    - mac: 52:54:00:00:01:01
bad:
  driver: fake-hardware
  driver_info:
    ipmi_password: hunter2-secret
  nics:
    - mac: 52:54:00:00:01:02
    - mac: 52:54:00:zz:01:03
good-2:
  driver: fake-hardware
";
        let inv = parse(text, Format::Yaml).unwrap();
        assert!(inv.entries[0].checked.is_ok());
        assert!(inv.entries[2].checked.is_ok());
        let bad = &inv.entries[1];
        assert_eq!((bad.key.as_str(), bad.line), ("bad", Some(5)));
        let err = bad.checked.as_ref().unwrap_err();
        assert_eq!(
            *err,
            EntryError::BadMac {
                at: "nics[1].mac".into(),
                value: "52:54:00:zz:01:03".into()
            }
        );
        assert!(!err.to_string().contains("hunter2"));
    }

    #[test]
    fn entries_are_checked_field_by_field() {
        let cases = [
            (r#"{"n": {"name": "n"}}"#, EntryError::MissingDriver),
            (r#"{"n": {"driver": ""}}"#, EntryError::MissingDriver),
            (r#"{"n": ["driver"]}"#, EntryError::NotAMapping),
            (
                r#"{"n": {"driver": "d", "properties": "x"}}"#,
                wrong("properties", "a mapping"),
            ),
            (
                r#"{"n": {"driver": "d", "driver_info": 3}}"#,
                wrong("driver_info", "a mapping"),
            ),
            (
                r#"{"n": {"driver": "d", "boot_interface": 3}}"#,
                wrong("boot_interface", "a string"),
            ),
            (
                r#"{"n": {"driver": "d", "nics": {}}}"#,
                wrong("nics", "a list"),
            ),
            (
                r#"{"n": {"driver": "d", "nics": ["x"]}}"#,
                wrong("nics[0]", "a mapping"),
            ),
            (
                r#"{"n": {"driver": "d", "nics": [{"extra": {}}]}}"#,
                EntryError::NoMac(0),
            ),
            (
                r#"{"n": {"driver": "d", "nics": [{"mac": 5}]}}"#,
                wrong("nics[0].mac", "a string"),
            ),
            (
                r#"{"n": {"driver": "d", "uuid": "nope"}}"#,
                EntryError::BadUuid("nope".into()),
            ),
        ];
        for (text, want) in cases {
            let inv = parse(text, Format::Json).unwrap();
            assert_eq!(inv.entries[0].checked, Err(want), "{text}");
        }
    }

    #[test]
    fn duplicates_across_entries_refuse_the_later_one() {
        let text = r#"{
          "a": {"driver": "d", "nics": [{"mac": "52:54:00:00:00:01"}]},
          "b": {"driver": "d", "nics": [{"mac": "52:54:00:00:00:01"}]},
          "c": {"driver": "d", "name": "a"},
          "d": {"driver": "d", "nics": [{"mac": "52:54:00:00:00:04"}, {"mac": "52:54:00:00:00:04"}]}
        }"#;
        let inv = parse(text, Format::Json).unwrap();
        assert!(inv.entries[0].checked.is_ok());
        assert!(matches!(
            inv.entries[1].checked,
            Err(EntryError::DuplicateMac { ref other, .. }) if other == "a"
        ));
        assert!(matches!(
            inv.entries[2].checked,
            Err(EntryError::Duplicate { what: "name", .. })
        ));
        assert!(matches!(
            inv.entries[3].checked,
            Err(EntryError::DuplicateMac { .. })
        ));
    }

    #[test]
    fn unreadable_files_name_the_place() {
        let e = parse("{\"a\": {\"driver\": \"d\",}\n}", Format::Json).unwrap_err();
        assert!(matches!(e, Error::Syntax { line: 1, .. }), "{e}");
        let e = parse("a:\n  driver: d\n b: [\n", Format::Yaml).unwrap_err();
        assert!(matches!(e, Error::Syntax { .. }), "{e}");
        let e = parse("[1, 2]", Format::Json).unwrap_err();
        assert!(e.to_string().contains("mapping of node names"), "{e}");
        let e = parse("- a\n- b\n", Format::Yaml).unwrap_err();
        assert!(e.to_string().contains("mapping of node names"), "{e}");
        assert!(matches!(parse(" \n", Format::Yaml), Err(Error::Empty)));
        let e = parse(
            "{\"a\": {\"driver\": \"d\"}, \"a\": {\"driver\": \"d\"}}",
            Format::Json,
        )
        .unwrap_err();
        assert!(matches!(e, Error::DuplicateKey { .. }), "{e}");
        // A syntax error next to a password does not show the password.
        let e = parse(
            "a:\n  driver_info:\n    ipmi_password: s3cret-pw\n   bad: [\n",
            Format::Yaml,
        )
        .unwrap_err();
        assert!(!e.to_string().contains("s3cret-pw"), "{e}");
    }

    #[test]
    fn format_by_extension_then_content() {
        assert_eq!(Format::detect(Path::new("i.json"), "a: 1"), Format::Json);
        assert_eq!(Format::detect(Path::new("i.YML"), "{}"), Format::Yaml);
        assert_eq!(Format::detect(Path::new("i.yaml"), "{}"), Format::Yaml);
        assert_eq!(
            Format::detect(Path::new("inv"), "  {\"a\": {}}"),
            Format::Json
        );
        assert_eq!(Format::detect(Path::new("inv"), "a:\n"), Format::Yaml);
    }

    #[test]
    fn key_lines_prefer_the_top_level() {
        let text = "x:\n  a: 1\na:\n  b: 2\n'c' : 3\n";
        assert_eq!(key_line(text, "a"), Some(3));
        assert_eq!(key_line(text, "c"), Some(5));
        assert_eq!(key_line(text, "zz"), None);
        assert_eq!(key_line("{\"a\": {}, \"b\": {}}", "a"), Some(1));
    }

    #[test]
    fn diff_patches_only_what_differs() {
        let shown = json!({
            "uuid": "u",
            "name": "n",
            "driver": "ipmi",
            "driver_info": {"ipmi_address": "192.0.2.1", "ipmi_password": "******"},
            "properties": {"cpu_arch": "x86_64", "memory_mb": 4096},
            "instance_info": {},
            "resource_class": null,
        });
        let same = json!({
            "uuid": "u",
            "name": "n",
            "driver": "ipmi",
            "driver_info": {"ipmi_address": "192.0.2.1", "ipmi_password": "pw"},
            "properties": {"cpu_arch": "x86_64"},
            "instance_info": {},
        });
        let same = same.as_object().unwrap();
        assert_eq!(diff(&shown, same, NODE_MASKED, false), Diff::default());
        // --update-secrets re-sends what cannot be compared.
        let d = diff(&shown, same, NODE_MASKED, true);
        assert_eq!(d.fields, ["driver_info"]);
        assert_eq!(d.ops[0]["path"], "/driver_info/ipmi_password");

        let changed = json!({
            "name": "n",
            "driver": "fake-hardware",
            "driver_info": {"ipmi_address": "192.0.2.9", "ipmi_password": "pw", "a/b": 1},
            "properties": {"cpu_arch": "x86_64", "local_gb": 10},
            "resource_class": "gold",
        });
        let d = diff(&shown, changed.as_object().unwrap(), NODE_MASKED, false);
        assert_eq!(
            d.fields,
            ["driver", "driver_info", "properties", "resource_class"]
        );
        let paths: Vec<&str> = d.ops.iter().map(|o| o["path"].as_str().unwrap()).collect();
        assert_eq!(
            paths,
            [
                "/driver",
                "/driver_info/a~1b",
                "/driver_info/ipmi_address",
                "/properties/local_gb",
                "/resource_class"
            ]
        );
        // A new secret key is added (the node has none yet).
        let d = diff(
            &json!({"driver_info": {}}),
            json!({"driver_info": {"ipmi_password": "pw"}})
                .as_object()
                .unwrap(),
            NODE_MASKED,
            false,
        );
        assert_eq!(d.fields, ["driver_info"]);
        // A whole map is added where the object has none.
        let d = diff(
            &json!({"extra": null}),
            json!({"extra": {"k": "v"}}).as_object().unwrap(),
            &[],
            false,
        );
        assert_eq!(
            d.ops,
            [json!({"op": "add", "path": "/extra", "value": {"k": "v"}})]
        );
    }
}
