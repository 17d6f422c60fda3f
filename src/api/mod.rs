//! The Ironic-compatible v1 API: the subset the `baremetal` CLI needs to
//! enroll, manage, adopt, deploy and delete nodes, served with Ironic's
//! paths, bodies, status codes and error format.

pub mod agent;
pub mod allocations;
pub mod auth;
pub mod chassis;
pub mod conductors;
pub mod error;
pub mod inspection_rules;
pub mod node_extras;
pub mod nodes;
pub mod portgroups;
pub mod ports;
pub mod provision;
pub mod records;
pub mod runbooks;
pub mod schema;
pub mod templates;
pub mod traits;
pub mod types;
pub mod version;
pub mod volume;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequest, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::Extension;

use crate::model::{
    Allocation, Chassis, DeployTemplate, InspectionRule, Portgroup, Runbook, VolumeConnector,
    VolumeTarget,
};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::conductor::Conductor;
use auth::{Caller, Htpasswd};
use error::ApiError;
use types::Render;
use version::Version;

/// Limits of the API listener.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_limit: usize,
    pub request_timeout: Duration,
    pub max_concurrent_requests: usize,
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub conductor: Conductor,
    pub htpasswd: Option<Arc<Htpasswd>>,
    pub limits: Limits,
}

/// A JSON body read within the size limit; errors in Ironic's format.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let limit = state.limits.max_body_bytes;
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > limit) {
            return Err(ApiError::too_large(limit));
        }
        // How Ironic's schema errors name the body of a node or port create.
        let arg = match req.uri().path().trim_end_matches('/') {
            "/v1/nodes" => Some("node"),
            "/v1/ports" => Some("port"),
            _ => None,
        };
        let bytes = axum::body::to_bytes(req.into_body(), limit)
            .await
            .map_err(|_| ApiError::too_large(limit))?;
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
            if let (Some(arg), Some(field)) = (arg, unknown_field(&e)) {
                return schema::error(
                    Some(arg),
                    format!("Additional properties are not allowed ('{field}' was unexpected)"),
                );
            }
            ApiError::bad_request(format!("Invalid JSON request body: {}", body_error(&e)))
        })
    }
}

/// The field serde refused as unknown (`deny_unknown_fields`), if that is
/// the error.
fn unknown_field(e: &serde_json::Error) -> Option<String> {
    let msg = e.to_string();
    let rest = msg.strip_prefix("unknown field `")?;
    Some(rest.split('`').next()?.to_string())
}

/// A JSON error for the client without the offending value, which may be a
/// secret (`invalid type: string "hunter2"` becomes `invalid type: string`).
pub fn body_error(e: &serde_json::Error) -> String {
    let at = format!("at line {} column {}", e.line(), e.column());
    match e.classify() {
        serde_json::error::Category::Syntax => format!("malformed JSON {at}"),
        serde_json::error::Category::Eof => format!("the JSON ends too early {at}"),
        serde_json::error::Category::Io => "the body could not be read".to_string(),
        serde_json::error::Category::Data => {
            let msg = e.to_string();
            // serde quotes a rejected string value ("invalid type: string
            // \"...\", expected ..."); keep what was expected, drop the value.
            match (msg.find("string \""), msg.rfind("\", expected")) {
                (Some(start), Some(end)) if end >= start => {
                    format!("{}string{}", &msg[..start], &msg[end + 1..])
                }
                (Some(start), _) => format!("{}a string value {at}", &msg[..start]),
                _ => msg,
            }
        }
    }
}

/// The scheme and host links should point at.
pub fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".:-[]".contains(c))
        })
        .unwrap_or("localhost:6385");
    format!("http://{host}")
}

/// Builds the rendering context for a request.
pub fn render<'a>(base: &'a str, version: Version, state: &'a AppState) -> Render<'a> {
    Render {
        base,
        version,
        host: state.conductor.host(),
    }
}

/// Parses `fields=a,b` against what exists at this version.
pub fn parse_fields(
    q: &HashMap<String, String>,
    version: Version,
    known: impl Fn(&str, Version) -> bool,
) -> Result<Option<Vec<String>>, ApiError> {
    let Some(raw) = q.get("fields") else {
        return Ok(None);
    };
    if !version.at_least(8) {
        return Err(ApiError::not_acceptable(
            "The fields parameter needs API version 1.8 or later",
        ));
    }
    let fields: Vec<String> = raw
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let unknown: Vec<&str> = fields
        .iter()
        .filter(|f| !known(f, version))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Err(ApiError::bad_request(format!(
            "Field(s) \"{}\" are not valid",
            unknown.join(", ")
        )));
    }
    Ok(Some(fields))
}

/// The query parameters of each listing and show, as Ironic 39's handlers
/// take them (`ironic/api/controllers/v1/node.py`, `port.py`).
pub mod args {
    /// What `/v1/nodes/detail` takes; `/v1/nodes` also takes [`LIST_ONLY`].
    pub const NODE_FILTERS: &[&str] = &[
        "chassis_uuid",
        "instance_uuid",
        "associated",
        "maintenance",
        "retired",
        "provision_state",
        "marker",
        "limit",
        "sort_key",
        "sort_dir",
        "driver",
        "resource_class",
        "fault",
        "conductor_group",
        "conductor",
        "owner",
        "description_contains",
        "lessee",
        "project",
        "shard",
        "sharded",
        "include_children",
        "parent_node",
        "instance_name",
    ];
    /// What `/v1/ports/detail` takes; `/v1/ports` also takes [`LIST_ONLY`].
    pub const PORT_FILTERS: &[&str] = &[
        "node",
        "node_uuid",
        "address",
        "marker",
        "limit",
        "sort_key",
        "sort_dir",
        "portgroup",
        "shard",
        "description_contains",
        "conductor_groups",
    ];
    /// The non-detail lists also take these (the detail lists do not).
    pub const LIST_ONLY: &[&str] = &["fields", "detail"];
    /// A show takes only `fields`.
    pub const SHOW: &[&str] = &["fields"];
    pub const NODE_PATCH: &[&str] = &["reset_interfaces"];
    /// The node fields a list sorts by (Ironic's node columns rackboot
    /// keeps, less `invalid_sort_key_list`).
    pub const NODE_SORT: &[&str] = &[
        "uuid",
        "name",
        "instance_uuid",
        "instance_name",
        "driver",
        "provision_state",
        "target_provision_state",
        "provision_updated_at",
        "power_state",
        "target_power_state",
        "last_error",
        "maintenance",
        "maintenance_reason",
        "fault",
        "reservation",
        "protected",
        "protected_reason",
        "retired",
        "retired_reason",
        "owner",
        "lessee",
        "description",
        "conductor_group",
        "resource_class",
        "automated_clean",
        "boot_mode",
        "secure_boot",
        "shard",
        "parent_node",
        "disable_power_off",
        "created_at",
        "updated_at",
        "bios_interface",
        "boot_interface",
        "console_interface",
        "deploy_interface",
        "firmware_interface",
        "inspect_interface",
        "management_interface",
        "network_interface",
        "power_interface",
        "raid_interface",
        "rescue_interface",
        "storage_interface",
        "vendor_interface",
    ];
    /// Node fields Ironic refuses to sort by, with its own message.
    pub const NODE_NO_SORT: &[&str] = &[
        "properties",
        "driver_info",
        "extra",
        "instance_info",
        "driver_internal_info",
        "clean_step",
        "deploy_step",
        "raid_config",
        "target_raid_config",
        "traits",
        "network_data",
        "service_step",
    ];
    /// The port fields a list sorts by.
    pub const PORT_SORT: &[&str] = &[
        "uuid",
        "address",
        "pxe_enabled",
        "physical_network",
        "is_smartnic",
        "name",
        "description",
        "vendor",
        "category",
        "created_at",
        "updated_at",
    ];
}

/// A comma-separated query list as Ironic reads one (`args.string_list`):
/// split, trimmed, lower-cased, empties and repeats dropped.
pub fn string_list(v: Option<&String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in v.map(String::as_str).unwrap_or_default().split(',') {
        let item = item.trim().to_ascii_lowercase();
        if !item.is_empty() && !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

/// Refuses query parameters the handler does not take, as Ironic does
/// ("Unexpected arguments: a, b", sorted), and those rackboot does not
/// filter by yet, so a typo or an unsupported filter is never ignored.
pub fn check_args(q: &HashMap<String, String>, allowed: &[&[&str]]) -> Result<(), ApiError> {
    let mut unknown: Vec<&str> = q
        .keys()
        .map(String::as_str)
        .filter(|k| !allowed.iter().any(|a| a.contains(k)))
        .collect();
    if !unknown.is_empty() {
        unknown.sort_unstable();
        return Err(ApiError::bad_request(format!(
            "Unexpected arguments: {}",
            unknown.join(", ")
        )));
    }
    Ok(())
}

/// Parses a boolean query parameter.
pub fn query_bool(q: &HashMap<String, String>, key: &str) -> Result<Option<bool>, ApiError> {
    match q.get(key) {
        None => Ok(None),
        Some(v) => crate::model::input::parse_bool(key, &Value::String(v.clone()))
            .map(Some)
            .map_err(|_| {
                ApiError::bad_request(format!("Invalid value for {key}: {v:?} is not a boolean"))
            }),
    }
}

/// Parses `limit`, `marker`, `sort_key` (one of `sortable`, or `id`) and
/// `sort_dir` into a page request.
pub fn parse_page(
    q: &HashMap<String, String>,
    state: &AppState,
    sortable: &[&'static str],
) -> Result<crate::store::Page, ApiError> {
    parse_page_with(q, state, sortable, true)
}

/// [`parse_page`]; with `uuid_marker` false the marker is not a UUID (a
/// conductor's host name) and is left to the caller.
pub fn parse_page_with(
    q: &HashMap<String, String>,
    state: &AppState,
    sortable: &[&'static str],
    uuid_marker: bool,
) -> Result<crate::store::Page, ApiError> {
    let limit = match q.get("limit") {
        None => state.limits.max_limit,
        Some(l) => match l.parse::<i64>() {
            Ok(0) => state.limits.max_limit,
            Ok(n) if n > 0 => (n as usize).min(state.limits.max_limit),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "Limit must be positive: {l}"
                )))
            }
        },
    };
    let marker = match q.get("marker").filter(|_| uuid_marker) {
        None => None,
        Some(m) => Some(
            m.parse::<uuid::Uuid>()
                .map_err(|_| ApiError::bad_request(format!("Expected a UUID for marker: {m}")))?,
        ),
    };
    let sort = match q.get("sort_key").map(String::as_str) {
        None | Some("id") => None,
        Some(key) => match sortable.iter().find(|k| **k == key) {
            Some(k) => Some(*k),
            None => {
                return Err(ApiError::bad_request(format!(
                    "The sort_key value \"{key}\" is an invalid field for sorting"
                )))
            }
        },
    };
    let descending = match q.get("sort_dir").map(String::as_str) {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Invalid sort direction: {other}. Acceptable values are 'asc' or 'desc'"
            )))
        }
    };
    Ok(crate::store::Page {
        marker,
        limit,
        descending,
        sort,
    })
}

/// The `next` link of a full page.
pub fn next_link(
    base: &str,
    path: &str,
    q: &HashMap<String, String>,
    limit: usize,
    last: &str,
) -> String {
    let mut parts: Vec<String> = q
        .iter()
        .filter(|(k, _)| k.as_str() != "limit" && k.as_str() != "marker")
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    parts.sort();
    parts.push(format!("limit={limit}"));
    parts.push(format!("marker={last}"));
    format!("{base}{path}?{}", parts.join("&"))
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b',' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn version_object(base: &str) -> Value {
    json!({
        "id": "v1",
        "links": [{"href": format!("{base}/v1/"), "rel": "self"}],
        "status": "CURRENT",
        "min_version": format!("1.{}", version::MIN_MINOR),
        "version": format!("1.{}", version::MAX_MINOR),
    })
}

async fn root(headers: HeaderMap) -> Json<Value> {
    let base = base_url(&headers);
    let v = version_object(&base);
    Json(json!({
        "name": "OpenStack Ironic API",
        "description": "Ironic is an OpenStack project which enables the provision and management of baremetal machines. (served by rackboot)",
        "default_version": v,
        "versions": [v],
    }))
}

/// The resources `/v1/` links to beside nodes, ports, drivers and chassis,
/// in Ironic's order, with the microversion each appears at.
const V1_LINKS: &[(&str, u32)] = &[
    ("portgroups", 23),
    ("volume", 32),
    ("conductors", 49),
    ("allocations", 52),
    ("deploy_templates", 55),
    ("shards", 82),
    ("runbooks", 92),
    ("inspection_rules", 96),
];

async fn v1(headers: HeaderMap, version: Option<Extension<Version>>) -> Json<Value> {
    let base = base_url(&headers);
    let version = version
        .map(|Extension(v)| v)
        .unwrap_or(Version(MIN_MINOR_VERSION));
    let link = |kind: &str| {
        json!([
            {"href": format!("{base}/v1/{kind}/"), "rel": "self"},
            {"href": format!("{base}/{kind}/"), "rel": "bookmark"}
        ])
    };
    let mut body = serde_json::Map::new();
    body.insert("id".into(), json!("v1"));
    body.insert(
        "links".into(),
        json!([
            {"href": format!("{base}/v1/"), "rel": "self"},
            {"href": "https://docs.openstack.org/ironic/latest/contributor/webapi.html", "rel": "describedby", "type": "text/html"}
        ]),
    );
    body.insert(
        "media_types".into(),
        json!({"base": "application/json", "type": "application/vnd.openstack.ironic.v1+json"}),
    );
    for kind in ["chassis", "nodes", "ports", "drivers"] {
        body.insert(kind.into(), link(kind));
    }
    body.insert("version".into(), version_object(&base));
    for (kind, min) in V1_LINKS {
        if version.at_least(*min) {
            body.insert(kind.to_string(), link(kind));
        }
    }
    Json(Value::Object(body))
}

const MIN_MINOR_VERSION: u32 = version::MIN_MINOR;

async fn drivers_list(
    State(state): State<AppState>,
    _c: Caller,
    headers: HeaderMap,
) -> Json<Value> {
    let base = base_url(&headers);
    let host = state.conductor.host().to_string();
    let list: Vec<Value> = state
        .conductor
        .registry()
        .hardware_types()
        .iter()
        .map(|t| driver_json(t, &base, &host))
        .collect();
    Json(json!({ "drivers": list }))
}

fn driver_json(t: &crate::drivers::HardwareType, base: &str, host: &str) -> Value {
    let mut v = json!({
        "name": t.name,
        "hosts": [host],
        "type": "dynamic",
        "links": [
            {"href": format!("{base}/v1/drivers/{}", t.name), "rel": "self"},
            {"href": format!("{base}/drivers/{}", t.name), "rel": "bookmark"}
        ],
        "properties": [
            {"href": format!("{base}/v1/drivers/{}/properties", t.name), "rel": "self"},
            {"href": format!("{base}/drivers/{}/properties", t.name), "rel": "bookmark"}
        ],
    });
    for (kind, list) in &t.supported {
        v[format!("default_{kind}_interface")] = json!(list[0]);
        v[format!("enabled_{kind}_interfaces")] = json!(list);
    }
    v
}

async fn driver_show(
    State(state): State<AppState>,
    _c: Caller,
    headers: HeaderMap,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Result<Json<Value>, ApiError> {
    let base = base_url(&headers);
    let t = state
        .conductor
        .registry()
        .hardware_type(&name)
        .map_err(|_| {
            ApiError::not_found(format!(
                "Could not find the following driver(s) or hardware type(s): {name}."
            ))
        })?;
    Ok(Json(driver_json(t, &base, state.conductor.host())))
}

async fn driver_properties(
    State(state): State<AppState>,
    _c: Caller,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Result<Json<Value>, ApiError> {
    state
        .conductor
        .registry()
        .hardware_type(&name)
        .map_err(|_| {
            ApiError::not_found(format!(
                "Could not find the following driver(s) or hardware type(s): {name}."
            ))
        })?;
    Ok(Json(json!(state
        .conductor
        .registry()
        .driver_properties(&name))))
}

async fn not_found() -> ApiError {
    ApiError::not_found("The resource could not be found.")
}

/// Turns axum's own rejections (bad path, wrong method) into Ironic's body.
async fn ironic_errors(req: Request, next: axum::middleware::Next) -> Response {
    let resp = next.run(req).await;
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if (resp.status().is_client_error() || resp.status().is_server_error()) && !is_json {
        let status = resp.status();
        let msg = match status {
            StatusCode::METHOD_NOT_ALLOWED => {
                "The method is not allowed for the requested URL.".to_string()
            }
            StatusCode::NOT_FOUND => "The resource could not be found.".to_string(),
            StatusCode::PAYLOAD_TOO_LARGE => "The request body is too large.".to_string(),
            StatusCode::SERVICE_UNAVAILABLE => {
                "The request took longer than [api] request_timeout; it may still complete, check the node's state before retrying.".to_string()
            }
            s => format!("The request could not be processed ({s})."),
        };
        return ApiError::new(status, msg).into_response();
    }
    resp
}

/// Routing a collection at its path with and without the trailing slash,
/// as pecan serves them (the `baremetal` CLI asks for some with it).
trait RouteBoth {
    fn route_both(self, path: &str, m: axum::routing::MethodRouter<AppState>) -> Self;
}

impl RouteBoth for Router<AppState> {
    fn route_both(self, path: &str, m: axum::routing::MethodRouter<AppState>) -> Self {
        self.route(path, m.clone()).route(&format!("{path}/"), m)
    }
}

/// The API router with every route, limit and layer.
pub fn router(state: AppState) -> Router {
    let timeout = state.limits.request_timeout;
    let concurrency = state.limits.max_concurrent_requests;
    Router::new()
        .route("/", get(root))
        .route("/v1", get(v1))
        .route("/v1/", get(v1))
        .route_both("/v1/nodes", get(nodes::list).post(nodes::create))
        .route("/v1/nodes/detail", get(nodes::list_detail))
        .route(
            "/v1/nodes/{ident}",
            get(nodes::show).patch(nodes::patch).delete(nodes::delete),
        )
        .route("/v1/nodes/{ident}/ports", get(ports::list_for_node))
        .route(
            "/v1/nodes/{ident}/ports/detail",
            get(ports::list_for_node_detail),
        )
        .route("/v1/nodes/{ident}/history", get(nodes::history))
        .route(
            "/v1/nodes/{ident}/history/{event}",
            get(nodes::history_event),
        )
        .route("/v1/nodes/{ident}/states", get(provision::states))
        .route(
            "/v1/nodes/{ident}/states/provision",
            put(provision::provision),
        )
        .route("/v1/nodes/{ident}/states/power", put(provision::power))
        .route(
            "/v1/nodes/{ident}/maintenance",
            put(provision::maintenance_on).delete(provision::maintenance_off),
        )
        .route("/v1/nodes/{ident}/validate", get(provision::validate))
        .route(
            "/v1/nodes/{ident}/management/boot_device",
            get(provision::boot_device_get).put(provision::boot_device_set),
        )
        .route(
            "/v1/nodes/{ident}/management/inject_nmi",
            put(node_extras::inject_nmi),
        )
        .route(
            "/v1/nodes/{ident}/management/boot_device/supported",
            get(provision::boot_device_supported),
        )
        .route_both("/v1/ports", get(ports::list).post(ports::create))
        .route("/v1/ports/detail", get(ports::list_detail))
        .route(
            "/v1/ports/{ident}",
            get(ports::show).patch(ports::patch).delete(ports::delete),
        )
        .route(
            "/v1/nodes/{ident}/allocation",
            get(allocations::node_show).delete(allocations::node_delete),
        )
        .route(
            "/v1/nodes/{ident}/vifs",
            get(node_extras::vif_list).post(node_extras::vif_attach),
        )
        .route(
            "/v1/nodes/{ident}/vifs/{vif}",
            axum::routing::delete(node_extras::vif_detach),
        )
        .route(
            "/v1/nodes/{ident}/vmedia",
            axum::routing::post(node_extras::vmedia_attach).delete(node_extras::vmedia_detach),
        )
        .route("/v1/nodes/{ident}/inventory", get(node_extras::inventory))
        .route("/v1/nodes/{ident}/bios", get(node_extras::bios_list))
        .route("/v1/nodes/{ident}/bios/{name}", get(node_extras::bios_show))
        .route(
            "/v1/nodes/{ident}/firmware",
            get(node_extras::firmware_list),
        )
        .route("/v1/nodes/{ident}/portgroups", get(portgroups::node_list))
        .route(
            "/v1/nodes/{ident}/portgroups/detail",
            get(portgroups::node_list_detail),
        )
        .route(
            "/v1/nodes/{ident}/traits",
            get(traits::list)
                .put(traits::set_all)
                .delete(traits::remove_all),
        )
        .route(
            "/v1/nodes/{ident}/traits/{name}",
            put(traits::add).delete(traits::remove),
        )
        .route_both(
            "/v1/allocations",
            get(records::list::<Allocation>).post(allocations::create),
        )
        .route(
            "/v1/allocations/detail",
            get(records::list_detail::<Allocation>),
        )
        .route(
            "/v1/allocations/{ident}",
            get(records::show::<Allocation>)
                .patch(allocations::patch)
                .delete(allocations::delete),
        )
        .route_both(
            "/v1/chassis",
            get(records::list::<Chassis>).post(chassis::create),
        )
        .route("/v1/chassis/detail", get(records::list_detail::<Chassis>))
        .route(
            "/v1/chassis/{ident}",
            get(records::show::<Chassis>)
                .patch(chassis::patch)
                .delete(chassis::delete),
        )
        .route("/v1/chassis/{ident}/nodes", get(chassis::nodes))
        .route(
            "/v1/chassis/{ident}/nodes/detail",
            get(chassis::nodes_detail),
        )
        .route_both(
            "/v1/deploy_templates",
            get(records::list::<DeployTemplate>).post(templates::create),
        )
        .route(
            "/v1/deploy_templates/{ident}",
            get(records::show::<DeployTemplate>)
                .patch(templates::patch)
                .delete(templates::delete),
        )
        .route_both(
            "/v1/runbooks",
            get(records::list::<Runbook>).post(runbooks::create),
        )
        .route(
            "/v1/runbooks/{ident}",
            get(records::show::<Runbook>)
                .patch(runbooks::patch)
                .delete(runbooks::delete),
        )
        .route(
            "/v1/runbooks/{ident}/traits",
            get(runbooks::traits_list)
                .put(runbooks::traits_set)
                .delete(runbooks::traits_clear),
        )
        .route(
            "/v1/runbooks/{ident}/traits/{name}",
            put(runbooks::traits_add).delete(runbooks::traits_remove),
        )
        .route_both(
            "/v1/inspection_rules",
            get(records::list::<InspectionRule>).post(inspection_rules::create),
        )
        .route(
            "/v1/inspection_rules/{ident}",
            get(records::show::<InspectionRule>)
                .patch(inspection_rules::patch)
                .delete(inspection_rules::delete),
        )
        .route_both("/v1/volume", get(volume::root))
        .route_both(
            "/v1/volume/connectors",
            get(records::list::<VolumeConnector>).post(volume::create::<VolumeConnector>),
        )
        .route(
            "/v1/volume/connectors/{ident}",
            get(records::show::<VolumeConnector>)
                .patch(volume::patch::<VolumeConnector>)
                .delete(volume::delete::<VolumeConnector>),
        )
        .route_both(
            "/v1/volume/targets",
            get(records::list::<VolumeTarget>).post(volume::create::<VolumeTarget>),
        )
        .route(
            "/v1/volume/targets/{ident}",
            get(records::show::<VolumeTarget>)
                .patch(volume::patch::<VolumeTarget>)
                .delete(volume::delete::<VolumeTarget>),
        )
        .route("/v1/nodes/{ident}/volume", get(volume::node_root))
        .route("/v1/nodes/{ident}/volume/", get(volume::node_root))
        .route(
            "/v1/nodes/{ident}/volume/connectors",
            get(volume::node_list::<VolumeConnector>).post(volume::malformed),
        )
        .route(
            "/v1/nodes/{ident}/volume/targets",
            get(volume::node_list::<VolumeTarget>).post(volume::malformed),
        )
        .route(
            "/v1/nodes/{ident}/volume/{kind}/{uuid}",
            get(volume::malformed)
                .patch(volume::malformed)
                .delete(volume::malformed),
        )
        .route_both("/v1/shards", get(conductors::shards))
        .route_both("/v1/conductors", get(conductors::list))
        .route("/v1/conductors/{hostname}", get(conductors::show))
        .route_both(
            "/v1/portgroups",
            get(records::list::<Portgroup>).post(portgroups::create),
        )
        .route(
            "/v1/portgroups/detail",
            get(records::list_detail::<Portgroup>),
        )
        .route(
            "/v1/portgroups/{ident}",
            get(records::show::<Portgroup>)
                .patch(portgroups::patch)
                .delete(portgroups::delete),
        )
        .route("/v1/portgroups/{ident}/ports", get(portgroups::ports))
        .route(
            "/v1/portgroups/{ident}/ports/detail",
            get(portgroups::ports_detail),
        )
        .route_both("/v1/drivers", get(drivers_list))
        .route("/v1/drivers/{name}", get(driver_show))
        .route("/v1/drivers/{name}/properties", get(driver_properties))
        .fallback(not_found)
        // Innermost first: a request queued for a slot counts against
        // request_timeout too, so nothing waits past it.
        .layer(tower::limit::ConcurrencyLimitLayer::new(concurrency))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            timeout,
        ))
        .layer(axum::middleware::from_fn(ironic_errors))
        .layer(axum::middleware::from_fn(version::negotiate))
        .with_state(state)
}

/// Query parameters as a map (repeated keys: the last wins).
pub type Params = Query<HashMap<String, String>>;

#[cfg(test)]
mod tests {
    #[test]
    fn body_errors_drop_values() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct B {
            flag: bool,
        }
        let e = serde_json::from_str::<B>(r#"{"flag": "hunter2"}"#).unwrap_err();
        let msg = super::body_error(&e);
        assert!(!msg.contains("hunter2"), "{msg}");
        assert!(
            msg.contains("invalid type: string, expected a boolean"),
            "{msg}"
        );
        let e = serde_json::from_str::<B>(r#"{"flag": "pw\", x, \", expected y"}"#).unwrap_err();
        let msg = super::body_error(&e);
        assert!(!msg.contains("pw") && !msg.contains(", x"), "{msg}");
        let e = serde_json::from_str::<B>(r#"{"flag": "#).unwrap_err();
        assert!(super::body_error(&e).starts_with("the JSON ends too early"));
    }
}
