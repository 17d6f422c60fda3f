//! Chassis (Ironic's `/v1/chassis`): a named group of nodes.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chassis {
    pub uuid: Uuid,
    pub created_at: String,
    pub updated_at: Option<String>,
    pub description: Option<String>,
    #[serde(default)]
    pub extra: Map<String, Value>,
}
