//! Ironic's agent endpoints, served on the boot listener (booting nodes
//! reach the appliance only there, unauthenticated, as in Ironic): the
//! ramdisk's `GET /v1/lookup?addresses=<macs>` and
//! `POST /v1/heartbeat/{node}`. Errors are Ironic's, through `api::error`.

use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use uuid::Uuid;

use super::error::ApiError;
use crate::conductor::Conductor;
use crate::model::Mac;
use crate::net::Peer;
use crate::pxe::BootBackend;

/// `heartbeat_timeout` in the lookup answer, in seconds: Ironic's default
/// `[api]ramdisk_heartbeat_timeout`, kept because ironic-python-agent
/// paces itself by it (a heartbeat every 30-60 % of it, 90-180 s) and
/// ramdisks are built and tested against that pace. Nothing here expires a
/// ramdisk on it: a silent node fails by `[conductor] deploy_callback_timeout`
/// or `clean_callback_timeout` (30 min), which should stay well above it.
const AGENT_HEARTBEAT_TIMEOUT_SECS: u64 = 300;

/// What the agent endpoints need.
#[derive(Clone)]
pub struct Agent {
    pub conductor: Conductor,
    /// MAC → node, as the boot services see it.
    pub backend: Arc<BootBackend>,
}

/// The agent routes, to be merged into the boot listener's router.
pub fn routes(agent: Agent) -> Router {
    Router::new()
        .route("/", get(versions))
        .route("/v1/lookup", get(lookup))
        .route("/v1/heartbeat/{node}", post(heartbeat))
        .with_state(agent)
}

/// `POST /v1/continue_inspection`, kept apart so it can take larger bodies
/// than the other boot routes (`[inspector] max_data_bytes`).
pub fn inspection_routes(agent: Agent) -> Router {
    Router::new()
        .route("/v1/continue_inspection", post(continue_inspection))
        .with_state(agent)
}

/// The API version the agent is told (`GET /` on the boot listener, which
/// ironic-python-agent reads before its lookup). 1.62 and above make it
/// send its token; 1.68 and above would make it serve its command API over
/// TLS with a certificate of its own, which rackboot's agent client does
/// not verify yet, so the agent is told 1.67.
const AGENT_API_VERSION: &str = "1.67";

/// `GET /`: Ironic's version document, as the agent reads it.
async fn versions(headers: axum::http::HeaderMap) -> Json<Value> {
    let base = super::base_url(&headers);
    let v = json!({
        "id": "v1",
        "links": [{"href": format!("{base}/v1/"), "rel": "self"}],
        "status": "CURRENT",
        "min_version": "1.1",
        "version": AGENT_API_VERSION,
    });
    Json(json!({
        "name": "OpenStack Ironic API",
        "description": "rackboot's agent endpoints (lookup, heartbeat)",
        "default_version": v,
        "versions": [v],
    }))
}

#[derive(serde::Deserialize)]
struct LookupQuery {
    addresses: Option<String>,
    node_uuid: Option<Uuid>,
}

async fn lookup(
    State(a): State<Agent>,
    Query(q): Query<LookupQuery>,
) -> Result<Json<Value>, ApiError> {
    let macs: Vec<Mac> = q
        .addresses
        .as_deref()
        .unwrap_or("")
        .split(',')
        .filter_map(|m| m.trim().parse().ok())
        .collect();
    let found = q
        .node_uuid
        .and_then(|u| a.backend.by_node(u))
        .or_else(|| macs.iter().find_map(|m| a.backend.lookup(*m)));
    let Some(n) = found else {
        return Err(ApiError::not_found(format!(
            "Node with addresses {:?} was not found.",
            q.addresses.unwrap_or_default()
        )));
    };
    let node = a
        .conductor
        .store()
        .call(move |st| st.get_node(&n.node.to_string()))
        .await?;
    if !node.provision_state.agent_may_look_up() {
        return Err(ApiError::not_found(format!(
            "Node {} is in state {}; lookup is only allowed while it is being deployed, cleaned, inspected, rescued or serviced.",
            node.uuid, node.provision_state
        )));
    }
    let token = a.conductor.agent_token_for_lookup(node.uuid).await?;
    tracing::info!(node = %node.uuid, "agent lookup");
    Ok(Json(json!({
        "node": {
            "uuid": node.uuid,
            "name": node.name,
            "provision_state": node.provision_state.to_string(),
            "properties": node.properties,
            "instance_info": Value::Object(Default::default()),
            "driver_internal_info": Value::Object(Default::default()),
        },
        "config": {
            "heartbeat_timeout": AGENT_HEARTBEAT_TIMEOUT_SECS,
            "agent_token": token,
            "agent_token_required": true,
            "metrics": {"backend": "noop", "prepend_host": false, "prepend_uuid": false, "prepend_host_reverse": true, "global_prefix": null},
            "metrics_statsd": {"statsd_host": "localhost", "statsd_port": 8125},
            // The rest of what Ironic 39 sends, at its defaults.
            "agent_containers": {"allow_arbitrary_containers": false, "allowed_containers": [],
                                 "container_steps_file": "/etc/ironic-python-agent.d/mysteps.yaml",
                                 "runner": "podman", "pull_options": [], "run_options": ["--rm", "--network=host"]},
            "agent_md5_checksum_enable": true,
            "disable_deep_image_inspection": false,
            "permitted_image_formats": ["raw", "gpt", "qcow2", "iso"],
            "agent_skip_bmc_detect": false,
            "enable_bios_bootloader_install": false,
            "tls_min_version": "1.3",
            "tls_cipher_suites": null,
        }
    })))
}

/// A heartbeat's body, as ironic-python-agent sends it.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct HeartbeatBody {
    callback_url: Option<String>,
    agent_version: Option<String>,
    agent_token: Option<String>,
    agent_verify_ca: Option<String>,
    agent_status: Option<String>,
    agent_status_message: Option<String>,
}

/// The agent states a heartbeat may report (Ironic's).
const AGENT_STATES: &[&str] = &["start", "end", "error"];

async fn heartbeat(
    State(a): State<Agent>,
    Path(node): Path<String>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<StatusCode, ApiError> {
    let b: HeartbeatBody = if body.iter().all(u8::is_ascii_whitespace) {
        HeartbeatBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(format!("Invalid heartbeat body: {}", super::body_error(&e)))
        })?
    };
    if let Some(s) = &b.agent_status {
        if !AGENT_STATES.contains(&s.as_str()) {
            return Err(ApiError::bad_request(format!(
                "Agent status is invalid. Valid states are {}.",
                AGENT_STATES.join(",")
            )));
        }
    }
    if let Some(url) = b.callback_url.as_deref().filter(|u| !u.is_empty()) {
        if let Err(why) = crate::conductor::agent_client::check_agent_url(url) {
            tracing::warn!(%node, "heartbeat refused: its callback_url is no agent URL: {why}");
            return Err(ApiError::bad_request(
                "An issue with the supplied \"callback_url\" has been detected.",
            ));
        }
    }
    if let (Some(status), Some(msg)) = (&b.agent_status, &b.agent_status_message) {
        tracing::info!(%node, %status, "agent status: {}", crate::redact::mask_text(msg));
    }
    let beat = crate::conductor::Heartbeat {
        agent_token: b.agent_token,
        agent_url: b.callback_url,
        agent_version: b.agent_version,
        agent_verify_ca: b.agent_verify_ca,
        // The address the ramdisk reaches the appliance at (its
        // ipa-api-url): images it downloads are served there.
        appliance_url: Some(super::base_url(&headers)),
    };
    let state = a
        .conductor
        .heartbeat(&node, &peer.ip().to_string(), beat)
        .await?;
    tracing::info!(%node, from = %peer.ip(), %state, "agent heartbeat");
    Ok(StatusCode::ACCEPTED)
}

/// Checks posted inspection data as Ironic's schema does (an object with
/// an `inventory` object whose `interfaces` is a non-empty list of objects
/// with a string `mac_address`; BMC addresses strings or null) and splits
/// it into the inventory and the plugin data (the rest of the body).
pub fn inspection_data(body: &[u8]) -> Result<crate::inspection::Data, String> {
    let schema = |m: String| format!("Schema error for data: {m}");
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| format!("Invalid inspection data: {}", super::body_error(&e)))?;
    let Value::Object(mut body) = v else {
        return Err(schema("the data is not an object".into()));
    };
    let inventory = body
        .remove("inventory")
        .ok_or_else(|| schema("'inventory' is a required property".into()))?;
    let Value::Object(inv) = &inventory else {
        return Err(schema("'inventory' is not of type 'object'".into()));
    };
    match inv.get("interfaces") {
        None => return Err(schema("'interfaces' is a required property".into())),
        Some(Value::Array(a)) if a.is_empty() => {
            return Err(schema(
                "[] should be non-empty (in 'inventory.interfaces')".into(),
            ))
        }
        Some(Value::Array(a)) => {
            for (i, nic) in a.iter().enumerate() {
                if !nic.get("mac_address").is_some_and(Value::is_string) {
                    return Err(schema(format!(
                        "interface {i} has no string 'mac_address' (in 'inventory.interfaces')"
                    )));
                }
            }
        }
        Some(_) => return Err(schema("'interfaces' is not of type 'array'".into())),
    }
    for k in ["bmc_address", "bmc_v6address"] {
        if inv.get(k).is_some_and(|v| !v.is_string() && !v.is_null()) {
            return Err(schema(format!("'{k}' is not of type 'string', 'null'")));
        }
    }
    Ok(crate::inspection::Data {
        inventory,
        plugin_data: body,
    })
}

/// `POST /v1/continue_inspection`: the agent's inspection data. The agent
/// sends no version header (API 1.1); 1.84 and above are taken too.
async fn continue_inspection(
    State(a): State<Agent>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if let Some(v) = headers
        .get("x-openstack-ironic-api-version")
        .and_then(|v| v.to_str().ok())
    {
        let minor = v
            .trim()
            .strip_prefix("1.")
            .and_then(|m| m.parse::<u32>().ok());
        if v.trim() != "latest" && !matches!(minor, Some(1) | Some(84..)) {
            return Err(ApiError::not_found("API version 1.84 or newer is required"));
        }
    }
    let data = inspection_data(&body).map_err(ApiError::bad_request)?;
    if crate::inspection::inventory_macs(&data.inventory).is_empty()
        && crate::inspection::bmc_addresses(&data.inventory).is_empty()
    {
        return Err(ApiError::bad_request("No lookup information provided"));
    }
    let from = peer.ip().to_string();
    match a.conductor.continue_inspection(data, &from).await? {
        Some(uuid) => {
            tracing::info!(node = %uuid, %from, "inspection data taken");
            Ok((StatusCode::ACCEPTED, Json(json!({"uuid": uuid}))))
        }
        None => Err(ApiError::not_found("Resource could not be found.")),
    }
}
