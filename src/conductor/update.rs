//! Node updates by RFC 6902 JSON patch, with Ironic's rules: which fields may
//! be patched, in which states, and what a change implies.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{Error, Result};
use crate::drivers::Registry;
use crate::model::input::{check_name, parse_bool, InvalidInput};
use crate::model::{Interfaces, Node, State};

/// One JSON-patch operation as the API receives it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchOp {
    pub op: String,
    pub path: String,
    /// `None` only when the operation has no `value` at all; `"value": null`
    /// is `Some(Null)` (how clients detach an instance: `instance_uuid` → null).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub value: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

/// A field that is present, even as `null`, is `Some`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

impl PatchOp {
    /// The top-level field a path names (`/driver_info/x` → `driver_info`).
    pub fn top(&self) -> &str {
        self.path
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or_default()
    }
}

/// Top-level fields a PATCH may change.
const PATCHABLE: &[&str] = &[
    "name",
    "driver",
    "driver_info",
    "instance_info",
    "instance_uuid",
    "properties",
    "extra",
    "maintenance",
    "maintenance_reason",
    "protected",
    "protected_reason",
    "retired",
    "retired_reason",
    "owner",
    "lessee",
    "description",
    "resource_class",
    "conductor_group",
    "automated_clean",
    "network_data",
    "shard",
    "parent_node",
    "disable_power_off",
    "instance_name",
    "chassis_uuid",
    "bios_interface",
    "boot_interface",
    "console_interface",
    "deploy_interface",
    "firmware_interface",
    "inspect_interface",
    "management_interface",
    "network_interface",
    "power_interface",
    "raid_interface",
    "rescue_interface",
    "storage_interface",
    "vendor_interface",
];

/// The node fields Ironic 39 lets a patch change, in the order its refusal
/// lists them (`maintenance_reason` is rackboot's addition to it).
const IRONIC_PATCHABLE: &[&str] = &[
    "automated_clean",
    "bios_interface",
    "boot_interface",
    "chassis_uuid",
    "conductor_group",
    "console_interface",
    "deploy_interface",
    "description",
    "disable_power_off",
    "driver",
    "driver_info",
    "extra",
    "inspect_interface",
    "instance_info",
    "instance_name",
    "instance_uuid",
    "lessee",
    "maintenance",
    "management_interface",
    "name",
    "network_data",
    "network_interface",
    "owner",
    "power_interface",
    "properties",
    "protected",
    "protected_reason",
    "raid_interface",
    "rescue_interface",
    "resource_class",
    "retired",
    "retired_reason",
    "shard",
    "storage_interface",
    "vendor_interface",
    "parent_node",
    "firmware_interface",
];

/// The node's patchable fields as the PATCH document sees them (also how
/// inspection rules read a field before they write it).
pub fn patchable_doc(node: &Node) -> Value {
    let mut m = Map::new();
    let s = |v: &Option<String>| v.clone().map(Value::String).unwrap_or(Value::Null);
    m.insert("name".into(), s(&node.name));
    m.insert("driver".into(), Value::String(node.driver.clone()));
    m.insert(
        "driver_info".into(),
        Value::Object(node.driver_info.clone()),
    );
    m.insert(
        "instance_info".into(),
        Value::Object(node.instance_info.clone()),
    );
    m.insert("instance_uuid".into(), s(&node.instance_uuid));
    m.insert("properties".into(), Value::Object(node.properties.clone()));
    m.insert("extra".into(), Value::Object(node.extra.clone()));
    m.insert("maintenance".into(), Value::Bool(node.maintenance));
    m.insert("maintenance_reason".into(), s(&node.maintenance_reason));
    m.insert("protected".into(), Value::Bool(node.protected));
    m.insert("protected_reason".into(), s(&node.protected_reason));
    m.insert("retired".into(), Value::Bool(node.retired));
    m.insert("retired_reason".into(), s(&node.retired_reason));
    m.insert("owner".into(), s(&node.owner));
    m.insert("lessee".into(), s(&node.lessee));
    m.insert("description".into(), s(&node.description));
    m.insert("resource_class".into(), s(&node.resource_class));
    m.insert(
        "conductor_group".into(),
        Value::String(node.conductor_group.clone()),
    );
    m.insert(
        "automated_clean".into(),
        node.automated_clean.map(Value::Bool).unwrap_or(Value::Null),
    );
    m.insert(
        "network_data".into(),
        Value::Object(node.network_data.clone()),
    );
    m.insert("shard".into(), s(&node.shard));
    m.insert("parent_node".into(), s(&node.parent_node));
    m.insert(
        "disable_power_off".into(),
        Value::Bool(node.disable_power_off),
    );
    m.insert("instance_name".into(), s(&node.instance_name));
    m.insert(
        "chassis_uuid".into(),
        node.chassis_uuid
            .map(|c| Value::String(c.to_string()))
            .unwrap_or(Value::Null),
    );
    for kind in Interfaces::KINDS {
        m.insert(
            format!("{kind}_interface"),
            Value::String(node.interfaces.get(kind).unwrap_or_default().to_string()),
        );
    }
    Value::Object(m)
}

/// A type error that names the field and the JSON type, never the value
/// (it may be a secret).
fn invalid(field: &str, want: &str, got: &Value) -> Error {
    InvalidInput::wrong_type(field, want, got).into()
}

fn opt_string(doc: &Map<String, Value>, field: &str) -> Result<Option<String>> {
    match doc.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(invalid(field, "a string or null", v)),
    }
}

fn bool_field(doc: &Map<String, Value>, field: &str) -> Result<bool> {
    match doc.get(field) {
        None | Some(Value::Null) => Ok(false),
        Some(v) => Ok(parse_bool(field, v)?),
    }
}

fn object(doc: &Map<String, Value>, field: &str) -> Result<Map<String, Value>> {
    match doc.get(field) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(v) => Err(invalid(field, "an object", v)),
    }
}

/// Applies `ops` to `old` and returns the new node, or why not.
pub fn apply(
    old: &Node,
    ops: &[PatchOp],
    registry: &Registry,
    reset_interfaces: Option<bool>,
) -> Result<Node> {
    let ident = old.ident();
    if ops.is_empty() {
        return Err(Error::Invalid(
            "The patch is empty: send a JSON list of operations".into(),
        ));
    }
    // The one change allowed mid-transition: maintenance on + instance_uuid removed.
    let special = ops.len() == 1
        && ops[0].op == "remove"
        && ops[0].path == "/instance_uuid"
        && old.maintenance;
    if old.target_provision_state.is_some() && !old.provision_state.update_allowed() && !special {
        return Err(Error::InvalidState(format!(
            "Node {ident} can not be updated while a state transition is in progress."
        )));
    }
    let mut explicit_interfaces = Vec::new();
    for op in ops {
        if !matches!(op.op.as_str(), "add" | "replace" | "remove") {
            return Err(Error::Invalid(format!(
                "Invalid patch operation {:?} on {}: only add, replace and remove are supported",
                op.op, op.path
            )));
        }
        if op.op != "remove" && op.value.is_none() {
            return Err(Error::Invalid(format!(
                "Patch operation {} on {} needs a value",
                op.op, op.path
            )));
        }
        let top = op.top();
        if !op.path.starts_with('/') || top.is_empty() {
            return Err(Error::Invalid(format!(
                "Invalid patch path {:?}: paths look like /driver_info/ipmi_address",
                op.path
            )));
        }
        if !PATCHABLE.contains(&top) {
            // Ironic 39's words (its list, in its order).
            return Err(Error::Invalid(format!(
                "Cannot patch {}. Only the following can be updated: {}",
                op.path,
                IRONIC_PATCHABLE.join(", ")
            )));
        }
        if let Some(kind) = top.strip_suffix("_interface") {
            explicit_interfaces.push(kind.to_string());
        }
    }
    let mut doc = patchable_doc(old);
    let patch_json: Vec<Value> = ops
        .iter()
        .map(|o| {
            let mut m = Map::new();
            m.insert("op".into(), Value::String(o.op.clone()));
            m.insert("path".into(), Value::String(o.path.clone()));
            if let Some(v) = &o.value {
                m.insert("value".into(), v.clone());
            }
            Value::Object(m)
        })
        .collect();
    let patch: json_patch::Patch = serde_json::from_value(Value::Array(patch_json))
        .map_err(|e| Error::Invalid(format!("Invalid patch: {e}")))?;
    json_patch::patch(&mut doc, &patch)
        .map_err(|e| Error::Invalid(format!("Patch could not be applied: {e}")))?;
    let Value::Object(mut doc) = doc else {
        return Err(Error::Invalid("The patch replaced the whole node".into()));
    };
    // A removed top-level field is reset to null / its default.
    for key in PATCHABLE {
        doc.entry(key.to_string()).or_insert(Value::Null);
    }

    let mut new = old.clone();
    new.name = opt_string(&doc, "name")?;
    if let Some(n) = &new.name {
        check_name(n)?;
    }
    new.driver = match doc.get("driver") {
        Some(Value::String(s)) => s.clone(),
        Some(v) => return Err(invalid("driver", "a driver name", v)),
        None => old.driver.clone(),
    };
    new.driver_info = object(&doc, "driver_info")?;
    new.instance_info = object(&doc, "instance_info")?;
    new.properties = object(&doc, "properties")?;
    new.extra = object(&doc, "extra")?;
    new.network_data = object(&doc, "network_data")?;
    new.instance_uuid = opt_string(&doc, "instance_uuid")?;
    if let Some(u) = &new.instance_uuid {
        if u.parse::<uuid::Uuid>().is_err() {
            return Err(Error::Invalid(format!(
                "Expected a UUID for instance_uuid: {u}"
            )));
        }
        if let Some(prev) = &old.instance_uuid {
            if prev != u {
                return Err(Error::NodeAssociated {
                    node: ident,
                    instance: prev.clone(),
                });
            }
        }
    }
    new.maintenance = bool_field(&doc, "maintenance")?;
    new.maintenance_reason = opt_string(&doc, "maintenance_reason")?;
    new.protected = bool_field(&doc, "protected")?;
    new.protected_reason = opt_string(&doc, "protected_reason")?;
    new.retired = bool_field(&doc, "retired")?;
    new.retired_reason = opt_string(&doc, "retired_reason")?;
    new.owner = opt_string(&doc, "owner")?;
    new.lessee = opt_string(&doc, "lessee")?;
    new.description = opt_string(&doc, "description")?;
    new.resource_class = opt_string(&doc, "resource_class")?;
    new.conductor_group = opt_string(&doc, "conductor_group")?.unwrap_or_default();
    new.automated_clean = match doc.get("automated_clean") {
        None | Some(Value::Null) => None,
        Some(v) => Some(parse_bool("automated_clean", v)?),
    };
    new.shard = opt_string(&doc, "shard")?;
    new.parent_node = opt_string(&doc, "parent_node")?;
    new.disable_power_off = bool_field(&doc, "disable_power_off")?;
    new.instance_name = opt_string(&doc, "instance_name")?;
    new.chassis_uuid = match opt_string(&doc, "chassis_uuid")? {
        None => None,
        Some(c) => Some(
            c.parse()
                .map_err(|_| Error::Invalid(format!("Expected UUID for chassis_uuid: {c}")))?,
        ),
    };

    if !new.maintenance && old.maintenance {
        new.maintenance_reason = None;
        new.fault = None;
    }
    if new.protected
        && !old.protected
        && !matches!(old.provision_state, State::Active | State::Rescue)
    {
        return Err(Error::InvalidState(format!(
            "Node {ident} can only be made protected in provision states \"active\" or \"rescue\", not \"{}\"",
            old.provision_state
        )));
    }
    // instance_name follows instance_info's display_name when it is not set
    // (Ironic's API does this on every PATCH that changes instance_info).
    if new.instance_info != old.instance_info && new.instance_name.is_none() {
        if let Some(Value::String(d)) = new.instance_info.get("display_name") {
            if !d.is_empty() {
                new.instance_name = Some(d.clone());
            }
        }
    }
    // Retirement, as Ironic's conductor checks it (_check_update_retired).
    if new.retired != old.retired {
        if !new.retired {
            new.retired_reason = None;
        } else if old.provision_state == State::Available {
            return Err(Error::InvalidState(format!(
                "Node {} can not have 'retired' set in provision state 'available', the current state is '{}'",
                old.uuid, old.provision_state
            )));
        }
    }
    if new.retired_reason.is_some() && new.retired_reason != old.retired_reason && !new.retired {
        return Err(Error::Invalid(
            "The retired_reason field can only be set when retired is True".into(),
        ));
    }
    if !new.protected {
        if new.protected_reason.is_some() && old.protected_reason != new.protected_reason {
            return Err(Error::Invalid(format!(
                "Cannot set protected_reason on node {ident}: it is not protected"
            )));
        }
        new.protected_reason = None;
    }

    // Driver and interfaces.
    registry.hardware_type(&new.driver)?;
    if new.driver != old.driver {
        let defaults = registry.hardware_type(&new.driver)?.defaults();
        for kind in Interfaces::KINDS {
            if explicit_interfaces.iter().any(|k| k == kind) {
                continue;
            }
            let current = new.interfaces.get(kind).unwrap_or_default().to_string();
            let keep = reset_interfaces != Some(true)
                && registry
                    .check_interface(&new.driver, kind, &current)
                    .is_ok();
            if !keep {
                if let (Some(slot), Some(d)) = (new.interfaces.get_mut(kind), defaults.get(kind)) {
                    *slot = d.to_string();
                }
            }
        }
    }
    for kind in Interfaces::KINDS {
        let field = format!("{kind}_interface");
        let value = match doc.get(&field) {
            Some(Value::String(s)) if explicit_interfaces.iter().any(|k| k == kind) => s.clone(),
            Some(Value::Null) if explicit_interfaces.iter().any(|k| k == kind) => registry
                .hardware_type(&new.driver)?
                .defaults()
                .get(kind)
                .unwrap_or_default()
                .to_string(),
            Some(v) if explicit_interfaces.iter().any(|k| k == kind) => {
                return Err(invalid(&field, "an interface name", v))
            }
            _ => continue,
        };
        registry.check_interface(&new.driver, kind, &value)?;
        if let Some(slot) = new.interfaces.get_mut(kind) {
            *slot = value;
        }
    }
    if (new.interfaces != old.interfaces || new.driver != old.driver)
        && !old.maintenance
        && !old.provision_state.interface_update_allowed()
    {
        return Err(Error::InvalidState(format!(
            "The driver or interfaces of node {ident} can only be changed in enroll, manageable, available or inspect states, or in maintenance; it is \"{}\"",
            old.provision_state
        )));
    }
    new.updated_at = Some(crate::model::now());
    Ok(new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use uuid::Uuid;

    fn node(state: State) -> Node {
        let r = Registry::standard();
        let mut n = Node::new(
            Uuid::new_v4(),
            "ipmi",
            r.hardware_type("ipmi").unwrap().defaults(),
            state,
            String::new(),
        );
        n.name = Some("n1".into());
        n
    }

    fn ops(v: Value) -> Vec<PatchOp> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn cli_patches_apply() {
        let r = Registry::standard();
        let n = node(State::Enroll);
        let p = ops(json!([
            {"op": "add", "path": "/instance_info/image_source", "value": "http://h/blank"},
            {"op": "add", "path": "/properties/memory_mb", "value": 1024},
            {"op": "add", "path": "/extra/foo", "value": "bar"},
            {"op": "add", "path": "/name", "value": "renamed"}
        ]));
        let new = apply(&n, &p, &r, None).unwrap();
        assert_eq!(new.instance_info["image_source"], "http://h/blank");
        assert_eq!(new.properties["memory_mb"], 1024);
        assert_eq!(new.name.as_deref(), Some("renamed"));
        let unset = apply(
            &new,
            &ops(
                json!([{"op": "remove", "path": "/extra/foo"}, {"op": "remove", "path": "/name"}]),
            ),
            &r,
            None,
        )
        .unwrap();
        assert!(unset.extra.is_empty());
        assert_eq!(unset.name, None);
    }

    #[test]
    fn instance_name_follows_display_name_unless_set() {
        let r = Registry::standard();
        let n = node(State::Enroll);
        let display = |name: &str| {
            ops(json!([{"op": "add", "path": "/instance_info/display_name", "value": name}]))
        };
        let named = apply(&n, &display("web-1"), &r, None).unwrap();
        assert_eq!(named.instance_name.as_deref(), Some("web-1"));
        // Already set: left alone.
        let kept = apply(&named, &display("web-2"), &r, None).unwrap();
        assert_eq!(kept.instance_name.as_deref(), Some("web-1"));
        // Other instance_info changes with no display_name set nothing.
        let other = apply(
            &n,
            &ops(json!([{"op": "add", "path": "/instance_info/image_source", "value": "x"}])),
            &r,
            None,
        )
        .unwrap();
        assert_eq!(other.instance_name, None);
    }

    #[test]
    fn null_values_and_retirement_as_ironic() {
        let r = Registry::standard();
        let mut n = node(State::Active);
        n.instance_uuid = Some(Uuid::new_v4().to_string());
        n.description = Some("x".into());
        // A null value is a value: it detaches the instance, clears a field.
        let detached = apply(
            &n,
            &ops(json!([
                {"op": "replace", "path": "/instance_uuid", "value": null},
                {"op": "add", "path": "/description", "value": null}
            ])),
            &r,
            None,
        )
        .unwrap();
        assert_eq!((detached.instance_uuid, detached.description), (None, None));
        // Retiring outside available, with a reason; un-retiring clears it.
        let retired = apply(
            &node(State::Manageable),
            &ops(json!([
                {"op": "replace", "path": "/retired", "value": true},
                {"op": "add", "path": "/retired_reason", "value": "end of life"}
            ])),
            &r,
            None,
        )
        .unwrap();
        assert!(retired.retired);
        assert_eq!(retired.retired_reason.as_deref(), Some("end of life"));
        let back = apply(
            &retired,
            &ops(json!([{"op": "replace", "path": "/retired", "value": false}])),
            &r,
            None,
        )
        .unwrap();
        assert!(!back.retired);
        assert_eq!(back.retired_reason, None, "un-retiring clears the reason");
    }

    #[test]
    fn refusals() {
        let r = Registry::standard();
        let cases: Vec<(State, Value, &str)> = vec![
            (
                State::Enroll,
                json!([{"op": "add", "path": "/provision_state", "value": "active"}]),
                "Cannot patch /provision_state. Only the following can be updated: automated_clean,",
            ),
            (
                State::Enroll,
                json!([{"op": "add", "path": "/nonsense", "value": 1}]),
                "Cannot patch /nonsense.",
            ),
            (
                State::Enroll,
                json!([{"op": "remove", "path": "/extra/missing"}]),
                "could not be applied",
            ),
            (
                State::Enroll,
                json!([{"op": "move", "path": "/extra/a", "from": "/extra/b"}]),
                "only add, replace and remove",
            ),
            (
                State::Enroll,
                json!([{"op": "add", "path": "/name", "value": "bad name"}]),
                "logical name",
            ),
            (
                State::Enroll,
                json!([{"op": "add", "path": "/instance_uuid", "value": "nope"}]),
                "Expected a UUID",
            ),
            (
                State::Enroll,
                json!([{"op": "add", "path": "/maintenance", "value": "perhaps"}]),
                "boolean",
            ),
            (
                State::Enroll,
                json!([{"op": "add", "path": "/driver", "value": "idrac"}]),
                "No valid host",
            ),
            (
                State::Enroll,
                json!([{"op": "add", "path": "/power_interface", "value": "fake"}]),
                "Valid interfaces",
            ),
            (
                State::Enroll,
                json!([{"op": "add", "path": "/protected", "value": true}]),
                "protected",
            ),
            (
                State::Active,
                json!([{"op": "add", "path": "/power_interface", "value": "ipmitool"}]),
                "can only be changed",
            ),
            (
                State::Adopting,
                json!([{"op": "add", "path": "/extra/a", "value": 1}]),
                "transition is in progress",
            ),
            (State::Enroll, json!([]), "empty"),
            (
                State::Enroll,
                json!([{"op": "replace", "path": "/description"}]),
                "value",
            ),
            (
                State::Available,
                json!([{"op": "replace", "path": "/retired", "value": true}]),
                "can not have 'retired' set in provision state 'available'",
            ),
            (
                State::Manageable,
                json!([{"op": "add", "path": "/retired_reason", "value": "old"}]),
                "only be set when retired is True",
            ),
            (
                State::Enroll,
                json!([{"op": "add", "path": "/name", "value": "detail"}]),
                "logical name",
            ),
        ];
        for (state, p, want) in cases {
            let mut n = node(state);
            n.target_provision_state = state.default_target();
            let err = apply(&n, &ops(p.clone()), &r, None)
                .expect_err(&p.to_string())
                .to_string();
            assert!(err.contains(want), "{p}: {err}");
        }
    }

    #[test]
    fn switching_to_fake_hardware_resets_unsupported_interfaces() {
        let r = Registry::standard();
        let n = node(State::Manageable);
        let new = apply(
            &n,
            &ops(json!([{"op": "replace", "path": "/driver", "value": "fake-hardware"}])),
            &r,
            None,
        )
        .unwrap();
        assert_eq!(new.interfaces.power, "fake");
        assert_eq!(
            new.interfaces.boot, "ipxe",
            "ipxe is valid for fake-hardware, so it is kept"
        );
        let all = apply(
            &n,
            &ops(json!([
                {"op": "replace", "path": "/driver", "value": "fake-hardware"},
                {"op": "replace", "path": "/boot_interface", "value": "fake"},
                {"op": "replace", "path": "/deploy_interface", "value": "fake"}
            ])),
            &r,
            None,
        )
        .unwrap();
        assert_eq!(
            (all.interfaces.boot.as_str(), all.interfaces.deploy.as_str()),
            ("fake", "fake")
        );
        let back = apply(
            &all,
            &ops(json!([{"op": "replace", "path": "/driver", "value": "ipmi"}])),
            &r,
            Some(true),
        )
        .unwrap();
        assert_eq!(back.interfaces, r.hardware_type("ipmi").unwrap().defaults());
    }

    #[test]
    fn leaving_maintenance_clears_reason_and_fault() {
        let r = Registry::standard();
        let mut n = node(State::Active);
        n.maintenance = true;
        n.maintenance_reason = Some("x".into());
        n.fault = Some("power failure".into());
        let new = apply(
            &n,
            &ops(json!([{"op": "replace", "path": "/maintenance", "value": "false"}])),
            &r,
            None,
        )
        .unwrap();
        assert!(!new.maintenance);
        assert_eq!((new.maintenance_reason, new.fault), (None, None));
    }
}
