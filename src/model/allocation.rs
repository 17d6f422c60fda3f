//! Allocations (Ironic's `/v1/allocations`): a request for one node of a
//! resource class with some traits, which the conductor's scheduler fills.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

/// Where an allocation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AllocationState {
    /// Waiting for the scheduler.
    Allocating,
    /// A node was picked (`node_uuid`).
    Active,
    /// No node could be picked (`last_error` says why).
    Error,
}

impl AllocationState {
    pub fn as_str(self) -> &'static str {
        match self {
            AllocationState::Allocating => "allocating",
            AllocationState::Active => "active",
            AllocationState::Error => "error",
        }
    }
}

/// An allocation, with Ironic's field names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Allocation {
    pub uuid: Uuid,
    pub created_at: String,
    pub updated_at: Option<String>,
    /// Node UUIDs the allocation may pick from (empty: any).
    #[serde(default)]
    pub candidate_nodes: Vec<String>,
    #[serde(default)]
    pub extra: Map<String, Value>,
    pub last_error: Option<String>,
    pub name: Option<String>,
    pub owner: Option<String>,
    pub resource_class: Option<String>,
    pub state: AllocationState,
    /// Traits the node must have.
    #[serde(default)]
    pub traits: Vec<String>,
    pub node_uuid: Option<Uuid>,
}
