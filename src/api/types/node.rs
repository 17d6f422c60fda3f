//! Node rendering as Ironic does it: the field list and each field's
//! minimum microversion, `NodeView` (serialized straight from the model,
//! secrets masked), `node_json`, `states_json` and the history entries.

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use super::{opt, Render};
use crate::api::version::Version;
use crate::model::{HistoryEntry, Node};
use crate::redact::Masked;

/// Fields hidden below a microversion (Ironic's VERSIONED_FIELDS).
fn min_version(field: &str) -> u32 {
    match field {
        "name" => 5,
        "inspection_finished_at" | "inspection_started_at" => 6,
        "clean_step" => 7,
        "raid_config" | "target_raid_config" => 12,
        "states" => 14,
        "network_interface" => 20,
        "resource_class" => 21,
        "storage_interface" => 33,
        "traits" => 37,
        "rescue_interface" => 38,
        "bios_interface" => 40,
        "fault" => 42,
        "deploy_step" => 44,
        "conductor_group" => 46,
        "automated_clean" => 47,
        "protected" | "protected_reason" => 48,
        "conductor" => 49,
        "owner" => 50,
        "description" => 51,
        "allocation_uuid" => 52,
        "retired" | "retired_reason" => 61,
        "network_data" => 66,
        "lessee" => 65,
        "boot_mode" | "secure_boot" => 75,
        "shard" => 82,
        "parent_node" => 83,
        "firmware_interface" => 86,
        "service_step" => 87,
        "disable_power_off" => 95,
        "instance_name" => 104,
        "health" => 109,
        "boot_interface"
        | "console_interface"
        | "deploy_interface"
        | "inspect_interface"
        | "management_interface"
        | "power_interface"
        | "raid_interface"
        | "vendor_interface" => 31,
        _ => 1,
    }
}

/// Every field of the full node object, in Ironic's order.
pub const NODE_FIELDS: &[&str] = &[
    "allocation_uuid",
    "automated_clean",
    "bios_interface",
    "boot_interface",
    "boot_mode",
    "chassis_uuid",
    "clean_step",
    "conductor",
    "conductor_group",
    "console_enabled",
    "console_interface",
    "created_at",
    "deploy_interface",
    "deploy_step",
    "description",
    "disable_power_off",
    "driver",
    "driver_info",
    "driver_internal_info",
    "extra",
    "fault",
    "firmware_interface",
    "health",
    "inspect_interface",
    "inspection_finished_at",
    "inspection_started_at",
    "instance_info",
    "instance_name",
    "instance_uuid",
    "last_error",
    "lessee",
    "links",
    "maintenance",
    "maintenance_reason",
    "management_interface",
    "name",
    "network_data",
    "network_interface",
    "owner",
    "parent_node",
    "portgroups",
    "ports",
    "power_interface",
    "power_state",
    "properties",
    "protected",
    "protected_reason",
    "provision_state",
    "provision_updated_at",
    "raid_config",
    "raid_interface",
    "rescue_interface",
    "reservation",
    "resource_class",
    "retired",
    "retired_reason",
    "secure_boot",
    "service_step",
    "shard",
    "states",
    "storage_interface",
    "target_power_state",
    "target_provision_state",
    "target_raid_config",
    "traits",
    "updated_at",
    "uuid",
    "vendor_interface",
    "volume",
];

/// Fields of the short node listing.
pub const NODE_LIST_FIELDS: &[&str] = &[
    "instance_uuid",
    "maintenance",
    "name",
    "power_state",
    "provision_state",
    "uuid",
    "links",
];

/// Ironic's `[self, bookmark]` link pair.
struct Links<'a> {
    base: &'a str,
    kind: &'a str,
    id: &'a str,
    sub: &'a str,
}

impl Serialize for Links<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Link<'b> {
            href: &'b str,
            rel: &'b str,
        }
        let own = format!("{}/v1/{}/{}{}", self.base, self.kind, self.id, self.sub);
        let bookmark = format!("{}/{}/{}{}", self.base, self.kind, self.id, self.sub);
        let mut seq = s.serialize_seq(Some(2))?;
        seq.serialize_element(&Link {
            href: &own,
            rel: "self",
        })?;
        seq.serialize_element(&Link {
            href: &bookmark,
            rel: "bookmark",
        })?;
        seq.end()
    }
}

/// One field's value, borrowed from the node where possible.
enum Field<'a> {
    Str(&'a str),
    OptStr(Option<&'a str>),
    Bool(bool),
    OptBool(Option<bool>),
    Map(&'a Map<String, Value>),
    Masked(Masked<'a>),
    EmptyMap,
    List(&'a [String]),
    OptUuid(Option<uuid::Uuid>),
    Links(Links<'a>),
}

impl Serialize for Field<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Field::Str(v) => s.serialize_str(v),
            Field::OptStr(v) => v.serialize(s),
            Field::Bool(v) => s.serialize_bool(*v),
            Field::OptBool(v) => v.serialize(s),
            Field::Map(m) => m.serialize(s),
            Field::Masked(m) => m.serialize(s),
            Field::EmptyMap => s.serialize_map(Some(0))?.end(),
            Field::List(l) => l.serialize(s),
            Field::OptUuid(u) => u.serialize(s),
            Field::Links(l) => l.serialize(s),
        }
    }
}

/// One field of a node as the API shows it (`None`: no such field).
fn node_field<'a>(node: &'a Node, field: &str, r: &'a Render, id: &'a str) -> Option<Field<'a>> {
    use crate::model::State as S;
    let o = |v: &'a Option<String>| Field::OptStr(v.as_deref());
    let link = |sub: &'a str| {
        Field::Links(Links {
            base: r.base,
            kind: "nodes",
            id,
            sub,
        })
    };
    Some(match field {
        "uuid" => Field::Str(id),
        "name" => o(&node.name),
        "driver" => Field::Str(&node.driver),
        "driver_info" => Field::Masked(Masked {
            map: &node.driver_info,
            extra: &[],
        }),
        "driver_internal_info" => Field::Masked(Masked {
            map: &node.driver_internal_info,
            extra: &[],
        }),
        "instance_info" => Field::Masked(Masked {
            map: &node.instance_info,
            extra: &["image_url"],
        }),
        "instance_uuid" => o(&node.instance_uuid),
        "instance_name" => o(&node.instance_name),
        "properties" => Field::Map(&node.properties),
        "extra" => Field::Map(&node.extra),
        "provision_state" => match node.provision_state {
            S::Available if !r.version.at_least(2) => Field::OptStr(None),
            S::InspectWait if !r.version.at_least(39) => Field::Str("inspecting"),
            s => Field::Str(s.as_str()),
        },
        "target_provision_state" => Field::OptStr(node.target_provision_state.map(|s| s.as_str())),
        "provision_updated_at" => o(&node.provision_updated_at),
        "power_state" => Field::OptStr(node.power_state.map(|s| s.as_str())),
        "target_power_state" => Field::OptStr(node.target_power_state.map(|s| s.as_str())),
        "last_error" => o(&node.last_error),
        "maintenance" => Field::Bool(node.maintenance),
        "maintenance_reason" => o(&node.maintenance_reason),
        "fault" => o(&node.fault),
        "reservation" => o(&node.reservation),
        "console_enabled" => Field::Bool(false),
        "protected" => Field::Bool(node.protected),
        "protected_reason" => o(&node.protected_reason),
        "retired" => Field::Bool(node.retired),
        "retired_reason" => o(&node.retired_reason),
        "owner" => o(&node.owner),
        "lessee" => o(&node.lessee),
        "description" => o(&node.description),
        "conductor" => Field::Str(r.host),
        "conductor_group" => Field::Str(&node.conductor_group),
        "resource_class" => o(&node.resource_class),
        "chassis_uuid" => Field::OptUuid(node.chassis_uuid),
        "allocation_uuid" => Field::OptUuid(node.allocation_uuid),
        "health" => Field::OptStr(None),
        "inspection_started_at" => o(&node.inspection_started_at),
        "inspection_finished_at" => o(&node.inspection_finished_at),
        "automated_clean" => Field::OptBool(node.automated_clean),
        "clean_step" | "deploy_step" | "service_step" | "raid_config" | "target_raid_config" => {
            Field::EmptyMap
        }
        "traits" => Field::List(&node.traits),
        "network_data" => Field::Map(&node.network_data),
        "boot_mode" => o(&node.boot_mode),
        "secure_boot" => Field::OptBool(node.secure_boot),
        "shard" => o(&node.shard),
        "parent_node" => o(&node.parent_node),
        "disable_power_off" => Field::Bool(node.disable_power_off),
        "created_at" => Field::Str(&node.created_at),
        "updated_at" => o(&node.updated_at),
        "links" => link(""),
        "ports" => link("/ports"),
        "portgroups" => link("/portgroups"),
        "states" => link("/states"),
        "volume" => link("/volume"),
        f => Field::Str(node.interfaces.get(f.strip_suffix("_interface")?)?),
    })
}

/// Whether a field name exists on a node at this version.
pub fn node_field_known(field: &str, version: Version) -> bool {
    NODE_FIELDS.contains(&field) && version.at_least(min_version(field))
}

/// Which fields a node view shows.
#[derive(Debug, Clone, Copy)]
pub enum Shape<'a> {
    /// Every field the version knows.
    Full,
    /// The short listing form.
    Short,
    /// Exactly these (`?fields=`).
    Only(&'a [String]),
}

/// A node rendered for the API, serialized straight from the model.
pub struct NodeView<'a> {
    pub node: &'a Node,
    pub shape: Shape<'a>,
    pub render: &'a Render<'a>,
}

impl Serialize for NodeView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = uuid::Uuid::encode_buffer();
        let id: &str = self.node.uuid.hyphenated().encode_lower(&mut buf);
        let mut m = s.serialize_map(None)?;
        let mut put = |name: &str| -> Result<(), S::Error> {
            if let Some(v) = node_field(self.node, name, self.render, id) {
                m.serialize_entry(name, &v)?;
            }
            Ok(())
        };
        match self.shape {
            Shape::Only(list) => {
                list.iter().try_for_each(|f| put(f))?;
                // Ironic adds the links to any field selection.
                if !list.iter().any(|f| f == "links") {
                    put("links")?;
                }
            }
            Shape::Full | Shape::Short => {
                let names = if matches!(self.shape, Shape::Full) {
                    NODE_FIELDS
                } else {
                    NODE_LIST_FIELDS
                };
                for f in names {
                    if self.render.version.at_least(min_version(f)) {
                        put(f)?;
                    }
                }
            }
        }
        m.end()
    }
}

/// Renders a node with `fields` (all when `None`).
pub fn node_json(node: &Node, fields: Option<&[String]>, r: &Render) -> Value {
    let shape = fields.map(Shape::Only).unwrap_or(Shape::Full);
    serde_json::to_value(NodeView {
        node,
        shape,
        render: r,
    })
    .unwrap_or(Value::Null)
}

/// `GET …/states`.
pub fn states_json(node: &Node, r: &Render) -> Value {
    let id = node.uuid.to_string();
    let mut m = Map::new();
    for f in [
        "console_enabled",
        "last_error",
        "power_state",
        "provision_state",
        "provision_updated_at",
        "target_power_state",
        "target_provision_state",
    ] {
        let v = node_field(node, f, r, &id).map(|v| serde_json::to_value(v).unwrap_or(Value::Null));
        m.insert(f.into(), v.unwrap_or(Value::Null));
    }
    if r.version.at_least(12) {
        m.insert("raid_config".into(), Value::Object(Map::new()));
        m.insert("target_raid_config".into(), Value::Object(Map::new()));
    }
    if r.version.at_least(75) {
        m.insert("boot_mode".into(), opt(&node.boot_mode));
        m.insert(
            "secure_boot".into(),
            node.secure_boot.map(Value::Bool).unwrap_or(Value::Null),
        );
    }
    Value::Object(m)
}

/// A history entry as `GET …/history` shows it.
pub fn history_json(h: &HistoryEntry) -> Value {
    serde_json::json!({
        "uuid": h.uuid,
        "created_at": h.created_at,
        "severity": h.severity.as_str(),
        "event_type": h.event_type,
        "event": h.event,
        "conductor": h.conductor,
        "user": h.user,
    })
}
