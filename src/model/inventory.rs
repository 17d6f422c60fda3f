//! A node's inspection data as the agent last posted it: the `inventory`
//! and the plugin data the hooks left (Ironic's node inventory record,
//! served at `GET /v1/nodes/{node}/inventory`). One per node, replaced by
//! each inspection, deleted with the node.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeInventory {
    pub node_uuid: Uuid,
    pub inventory: Value,
    #[serde(default)]
    pub plugin_data: Map<String, Value>,
    pub created_at: String,
}
