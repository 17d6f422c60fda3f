//! A node's network port: the MAC address a node boots from.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::Mac;

/// Ironic's port, less port groups.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Port {
    pub uuid: Uuid,
    #[serde(with = "mac_string")]
    pub address: Mac,
    pub node_uuid: Uuid,
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
    pub created_at: String,
    pub updated_at: Option<String>,
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
