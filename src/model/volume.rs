//! Volume connectors and targets (Ironic's `/v1/volume`, 1.32+): how a node
//! reaches remote storage (an initiator's IQN, WWPN, …) and the volumes it
//! boots from or attaches, for its storage interface (`noop` here: kept
//! and shown, never acted on).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

/// A volume connector, with Ironic's field names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VolumeConnector {
    pub uuid: Uuid,
    pub created_at: String,
    pub updated_at: Option<String>,
    pub connector_id: String,
    #[serde(default)]
    pub extra: Map<String, Value>,
    #[serde(rename = "type")]
    pub kind: String,
    pub node_uuid: Uuid,
}

/// A volume target, with Ironic's field names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VolumeTarget {
    pub uuid: Uuid,
    pub created_at: String,
    pub updated_at: Option<String>,
    pub boot_index: i64,
    #[serde(default)]
    pub extra: Map<String, Value>,
    #[serde(default)]
    pub properties: Map<String, Value>,
    pub volume_id: String,
    pub volume_type: String,
    pub node_uuid: Uuid,
}

/// The separator of a connector's unique key (its type, then its ID):
/// a byte neither holds in practice, and splits back unambiguously at the
/// first one.
pub const KEY_SEP: char = '\u{1f}';

impl VolumeConnector {
    /// Unique over all nodes: one initiator is one node's.
    pub fn unique_key(&self) -> String {
        format!("{}{KEY_SEP}{}", self.kind, self.connector_id)
    }
}

impl VolumeTarget {
    /// Unique per node: one volume per boot index.
    pub fn unique_key(&self) -> String {
        format!("{}{KEY_SEP}{}", self.node_uuid, self.boot_index)
    }
}
