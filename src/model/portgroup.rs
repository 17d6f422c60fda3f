//! Port groups (Ironic's `/v1/portgroups`): bonded ports of one node.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

/// Ironic's `[DEFAULT] default_portgroup_mode`.
pub const DEFAULT_MODE: &str = "active-backup";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Portgroup {
    pub uuid: Uuid,
    pub created_at: String,
    pub updated_at: Option<String>,
    /// A MAC address, lower-case with colons.
    pub address: Option<String>,
    #[serde(default)]
    pub extra: Map<String, Value>,
    #[serde(default)]
    pub internal_info: Map<String, Value>,
    pub mode: String,
    pub name: Option<String>,
    #[serde(default)]
    pub properties: Map<String, Value>,
    pub standalone_ports_supported: bool,
    pub node_uuid: Uuid,
    pub physical_network: Option<String>,
    pub category: Option<String>,
    #[serde(default)]
    pub dynamic_portgroup: bool,
}
