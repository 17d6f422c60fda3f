//! A node's network port: the MAC address a node boots from.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::Mac;

/// Ironic's port.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Port {
    pub uuid: Uuid,
    #[serde(with = "mac_string")]
    pub address: Mac,
    pub node_uuid: Uuid,
    /// The port group the port is a member of (on the same node).
    #[serde(default)]
    pub portgroup_uuid: Option<Uuid>,
    pub pxe_enabled: bool,
    #[serde(default)]
    pub local_link_connection: Map<String, Value>,
    pub physical_network: Option<String>,
    #[serde(default)]
    pub internal_info: Map<String, Value>,
    #[serde(default)]
    pub extra: Map<String, Value>,
    pub is_smartnic: bool,
    pub name: Option<String>,
    pub description: Option<String>,
    pub vendor: Option<String>,
    pub category: Option<String>,
    /// May join a dynamic port group (1.111).
    #[serde(default)]
    pub available_for_dynamic_portgroup: bool,
    pub created_at: String,
    pub updated_at: Option<String>,
}

impl Port {
    /// A new PXE-enabled port of a node, with a fresh UUID and nothing else
    /// set: the API fills in what the request gives.
    pub fn new(address: Mac, node_uuid: Uuid) -> Port {
        Port {
            uuid: Uuid::new_v4(),
            address,
            node_uuid,
            portgroup_uuid: None,
            pxe_enabled: true,
            local_link_connection: Map::new(),
            physical_network: None,
            internal_info: Map::new(),
            extra: Map::new(),
            is_smartnic: false,
            name: None,
            description: None,
            vendor: None,
            category: None,
            available_for_dynamic_portgroup: false,
            created_at: super::now(),
            updated_at: None,
        }
    }
}

mod mac_string {
    use super::Mac;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(m: &Mac, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(m)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Mac, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}
