//! Port rendering as Ironic does it: the field list and each field's
//! minimum microversion, `port_json` and the short listing form.

use serde_json::{Map, Value};

use super::{opt, Render};
use crate::api::version::Version;
use crate::model::Port;

fn links(base: &str, kind: &str, id: &str, sub: &str) -> Value {
    serde_json::json!([
        {"href": format!("{base}/v1/{kind}/{id}{sub}"), "rel": "self"},
        {"href": format!("{base}/{kind}/{id}{sub}"), "rel": "bookmark"}
    ])
}

/// Every field of the full port object.
pub const PORT_FIELDS: &[&str] = &[
    "uuid",
    "address",
    "node_uuid",
    "portgroup_uuid",
    "pxe_enabled",
    "local_link_connection",
    "physical_network",
    "internal_info",
    "extra",
    "is_smartnic",
    "name",
    "description",
    "vendor",
    "category",
    "available_for_dynamic_portgroup",
    "created_at",
    "updated_at",
    "links",
];

fn port_min_version(field: &str) -> u32 {
    match field {
        "pxe_enabled" | "local_link_connection" => 19,
        "portgroup_uuid" => 24,
        "physical_network" => 34,
        "is_smartnic" => 53,
        "name" => 88,
        "description" => 97,
        "vendor" => 100,
        "category" => 101,
        "available_for_dynamic_portgroup" => 111,
        _ => 1,
    }
}

fn port_field(p: &Port, field: &str, r: &Render) -> Option<Value> {
    Some(match field {
        "uuid" => Value::String(p.uuid.to_string()),
        "address" => Value::String(p.address.to_string()),
        "node_uuid" => Value::String(p.node_uuid.to_string()),
        "portgroup_uuid" => p
            .portgroup_uuid
            .map(|u| Value::String(u.to_string()))
            .unwrap_or(Value::Null),
        "pxe_enabled" => Value::Bool(p.pxe_enabled),
        "local_link_connection" => Value::Object(p.local_link_connection.clone()),
        "physical_network" => opt(&p.physical_network),
        "internal_info" => Value::Object(p.internal_info.clone()),
        "extra" => Value::Object(p.extra.clone()),
        "is_smartnic" => Value::Bool(p.is_smartnic),
        "name" => opt(&p.name),
        "description" => opt(&p.description),
        "vendor" => opt(&p.vendor),
        "category" => opt(&p.category),
        "available_for_dynamic_portgroup" => Value::Bool(p.available_for_dynamic_portgroup),
        "created_at" => Value::String(p.created_at.clone()),
        "updated_at" => opt(&p.updated_at),
        "links" => links(r.base, "ports", &p.uuid.to_string(), ""),
        _ => return None,
    })
}

pub fn port_field_known(field: &str, version: Version) -> bool {
    PORT_FIELDS.contains(&field) && version.at_least(port_min_version(field))
}

/// Renders a port with `fields` (all when `None`).
pub fn port_json(p: &Port, fields: Option<&[String]>, r: &Render) -> Value {
    let mut m = Map::new();
    let all: Vec<String>;
    let list: &[String] = match fields {
        Some(l) => l,
        None => {
            all = PORT_FIELDS
                .iter()
                .filter(|f| r.version.at_least(port_min_version(f)))
                .map(|f| f.to_string())
                .collect();
            &all
        }
    };
    for f in list {
        if let Some(v) = port_field(p, f, r) {
            m.insert(f.clone(), v);
        }
    }
    // Ironic adds the links to any field selection.
    if let Some(v) = port_field(p, "links", r) {
        m.entry("links").or_insert(v);
    }
    Value::Object(m)
}

/// The short listing form of a port.
pub fn port_short_json(p: &Port, r: &Render) -> Value {
    port_json(
        p,
        Some(&["uuid".into(), "address".into(), "links".into()]),
        r,
    )
}
