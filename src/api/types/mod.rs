//! What the API shows: nodes and ports rendered as Ironic renders them —
//! version-gated fields, masked secrets (see `crate::redact`), links — and
//! the request bodies it accepts. Never the model types themselves.
//!
//! `node` renders nodes, `port` renders ports, `requests` holds the bodies;
//! their items are re-exported here, so callers keep using `types::…`.

mod node;
mod port;
mod requests;

pub use node::{history_json, node_field_known, node_json, states_json, NodeView, Shape};
pub use port::{port_field_known, port_json, port_short_json};
pub use requests::{
    BootDeviceRequest, MaintenanceRequest, NodeCreate, PortCreate, PowerRequest, ProvisionRequest,
};

use serde_json::Value;

use super::version::Version;

/// Context for rendering: where links point and at which version.
#[derive(Debug, Clone)]
pub struct Render<'a> {
    pub base: &'a str,
    pub version: Version,
    pub host: &'a str,
}

pub(super) fn opt(v: &Option<String>) -> Value {
    v.as_ref()
        .map(|s| Value::String(s.clone()))
        .unwrap_or(Value::Null)
}
