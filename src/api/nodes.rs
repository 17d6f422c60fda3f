//! `/v1/nodes`: create, list, show, update, delete, history.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};
use uuid::Uuid;

use super::error::ApiError;
use super::types::{self, NodeCreate, NodeView, Shape};
use super::version::Version;
use super::{
    base_url, next_link, parse_fields, parse_page, query_bool, render, AppState, JsonBody, Params,
};
use crate::conductor::PatchOp;
use crate::model::input::{check_name, parse_bool};
use crate::model::{now, Node, State as PState};
use crate::store::NodeFilter;

/// Checks that a path ident is a UUID or a valid name (Ironic's 400
/// InvalidUuidOrName otherwise).
pub fn check_ident(ident: &str) -> Result<(), ApiError> {
    if ident.parse::<Uuid>().is_ok() || check_name(ident).is_ok() {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "Expected a logical name or UUID but received {ident}."
        )))
    }
}

pub async fn create(
    State(state): State<AppState>,
    caller: super::auth::Caller,
    Extension(version): Extension<Version>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<NodeCreate>,
) -> Result<Response, ApiError> {
    let registry = state.conductor.registry();
    let driver = body
        .driver
        .clone()
        .ok_or_else(|| ApiError::bad_request("'driver' is a required property"))?;
    let hw = registry.hardware_type(&driver)?;
    let uuid = match &body.uuid {
        None => Uuid::new_v4(),
        Some(u) => u
            .parse()
            .map_err(|_| ApiError::bad_request(format!("Expected a UUID but received {u}.")))?,
    };
    let chassis_uuid = match body.chassis_uuid.clone() {
        None => None,
        Some(c) => {
            let u: Uuid = c.parse().map_err(|_| {
                ApiError::bad_request(format!("Expected UUID for chassis_uuid: {c}"))
            })?;
            // An unknown chassis is a bad request here (Ironic: 400).
            state
                .conductor
                .store()
                .call(move |s| s.get_record::<crate::model::Chassis>(&c))
                .await
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
            Some(u)
        }
    };
    let initial = if version.at_least(11) {
        PState::Enroll
    } else {
        PState::Available
    };
    let mut node = Node::new(uuid, &driver, hw.defaults(), initial, now());
    for (kind, name) in body.interfaces() {
        registry.check_interface(&driver, kind, name)?;
        if let Some(slot) = node.interfaces.get_mut(kind) {
            *slot = name.to_string();
        }
    }
    if let Some(name) = &body.name {
        check_name(name).map_err(|e| ApiError::bad_request(e.to_string()))?;
    }
    if let Some(i) = &body.instance_uuid {
        i.parse::<Uuid>().map_err(|_| {
            ApiError::bad_request(format!("Expected a UUID for instance_uuid: {i}"))
        })?;
    }
    let b = |field: &str, v: &Option<Value>| -> Result<Option<bool>, ApiError> {
        v.as_ref()
            .map(|v| parse_bool(field, v).map_err(|e| ApiError::bad_request(e.to_string())))
            .transpose()
    };
    node.name = body.name;
    node.chassis_uuid = chassis_uuid;
    node.driver_info = body.driver_info.unwrap_or_default();
    node.instance_info = body.instance_info.unwrap_or_default();
    node.properties = body.properties.unwrap_or_default();
    node.extra = body.extra.unwrap_or_default();
    node.instance_uuid = body.instance_uuid;
    node.resource_class = body.resource_class;
    node.conductor_group = body.conductor_group.unwrap_or_default();
    node.description = body.description;
    node.owner = body.owner;
    node.lessee = body.lessee;
    node.network_data = body.network_data.unwrap_or_default();
    node.automated_clean = b("automated_clean", &body.automated_clean)?;
    node.retired = b("retired", &body.retired)?.unwrap_or(false);
    node.retired_reason = body.retired_reason;
    node.shard = body.shard;
    node.parent_node = body.parent_node;
    node.disable_power_off = b("disable_power_off", &body.disable_power_off)?.unwrap_or(false);
    let node = state
        .conductor
        .create_node(node, caller.user.clone())
        .await?;
    let base = base_url(&headers);
    let r = render(&base, version, &state);
    let location = format!("{base}/v1/nodes/{}", node.uuid);
    let mut resp = (StatusCode::CREATED, Json(types::node_json(&node, None, &r))).into_response();
    if let Ok(v) = location.parse() {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

fn filter(q: &HashMap<String, String>, version: Version) -> Result<NodeFilter, ApiError> {
    let provision_state = match q.get("provision_state") {
        None => None,
        Some(s) => Some(s.parse::<PState>().map_err(|_| {
            ApiError::bad_request(format!(
                "The provision state {s} is not valid. Valid states are: {}",
                PState::ALL
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?),
    };
    if provision_state.is_some() && !version.at_least(9) {
        return Err(ApiError::not_acceptable(
            "Filtering by provision_state needs API version 1.9 or later",
        ));
    }
    if q.contains_key("driver") && !version.at_least(16) {
        return Err(ApiError::not_acceptable(
            "Filtering by driver needs API version 1.16 or later",
        ));
    }
    // Ironic's version gates for these filters (NotAcceptable, 406).
    for (key, minor) in [
        ("lessee", 65),
        ("shard", 82),
        ("sharded", 82),
        ("parent_node", 83),
        ("include_children", 83),
        ("conductor", 49),
        ("instance_name", 104),
    ] {
        if q.contains_key(key) && !version.at_least(minor) {
            return Err(ApiError::not_acceptable(format!(
                "Request not acceptable. The minimal required API version should be 1.{minor}"
            )));
        }
    }
    let chassis_uuid =
        match q.get("chassis_uuid") {
            None => None,
            Some(c) => Some(c.parse::<uuid::Uuid>().map_err(|_| {
                ApiError::bad_request(format!("Expected UUID for chassis_uuid: {c}"))
            })?),
        };
    let include_children = query_bool(q, "include_children")?.unwrap_or(false);
    Ok(NodeFilter {
        chassis_uuid,
        exclude_children: !include_children && !q.contains_key("parent_node"),
        retired: query_bool(q, "retired")?,
        lessee: q.get("lessee").cloned(),
        project: q.get("project").cloned(),
        description_contains: q.get("description_contains").cloned(),
        instance_name: q.get("instance_name").cloned(),
        shard: q.get("shard").cloned(),
        sharded: query_bool(q, "sharded")?,
        parent_node: q.get("parent_node").cloned(),
        provision_state,
        driver: q.get("driver").cloned(),
        maintenance: query_bool(q, "maintenance")?,
        associated: query_bool(q, "associated")?,
        instance_uuid: q.get("instance_uuid").cloned(),
        resource_class: q.get("resource_class").cloned(),
        conductor_group: q.get("conductor_group").map(|g| g.to_lowercase()),
        fault: q.get("fault").cloned(),
        owner: q.get("owner").cloned(),
    })
}

pub async fn list_inner(
    state: AppState,
    version: Version,
    headers: HeaderMap,
    q: HashMap<String, String>,
    detail: bool,
    path: &str,
) -> Result<Response, ApiError> {
    let detail = detail || query_bool(&q, "detail")?.unwrap_or(false);
    let fields = parse_fields(&q, version, types::node_field_known)?;
    if detail && fields.is_some() {
        return Err(ApiError::bad_request(
            "Can not specify ?detail=True and fields in the same request.",
        ));
    }
    let f = filter(&q, version)?;
    if let Some(key) = q
        .get("sort_key")
        .filter(|k| super::args::NODE_NO_SORT.contains(&k.as_str()))
    {
        return Err(ApiError::bad_request(format!(
            "The sort_key value {key} is an invalid field for sorting"
        )));
    }
    let page = parse_page(&q, &state, super::args::NODE_SORT)?;
    // One appliance is the conductor of every node it serves.
    let other_conductor = q
        .get("conductor")
        .is_some_and(|c| c != state.conductor.host());
    let nodes = if other_conductor {
        Vec::new()
    } else {
        state
            .conductor
            .store()
            .call(move |s| s.list_nodes(&f, page))
            .await?
    };
    let base = base_url(&headers);
    let r = render(&base, version, &state);
    let shape = match (&fields, detail) {
        (Some(f), _) => Shape::Only(f),
        (None, true) => Shape::Full,
        (None, false) => Shape::Short,
    };
    let next = (nodes.len() == page.limit)
        .then(|| nodes.last())
        .flatten()
        .map(|last| next_link(&base, path, &q, page.limit, &last.uuid.to_string()));
    #[derive(serde::Serialize)]
    struct Body<'a> {
        nodes: Vec<NodeView<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        next: Option<String>,
    }
    let body = Body {
        nodes: nodes
            .iter()
            .map(|node| NodeView {
                node,
                shape,
                render: &r,
            })
            .collect(),
        next,
    };
    let bytes = serde_json::to_vec(&body).map_err(ApiError::internal)?;
    Ok(([(header::CONTENT_TYPE, "application/json")], bytes).into_response())
}

pub async fn list(
    State(state): State<AppState>,
    _c: super::auth::Caller,
    Extension(version): Extension<Version>,
    headers: HeaderMap,
    axum::extract::Query(q): Params,
) -> Result<Response, ApiError> {
    super::check_args(&q, &[super::args::NODE_FILTERS, super::args::LIST_ONLY])?;
    list_inner(state, version, headers, q, false, "/v1/nodes").await
}

pub async fn list_detail(
    State(state): State<AppState>,
    _c: super::auth::Caller,
    Extension(version): Extension<Version>,
    headers: HeaderMap,
    axum::extract::Query(q): Params,
) -> Result<Response, ApiError> {
    super::check_args(&q, &[super::args::NODE_FILTERS])?;
    list_inner(state, version, headers, q, true, "/v1/nodes/detail").await
}

pub async fn show(
    State(state): State<AppState>,
    _c: super::auth::Caller,
    Extension(version): Extension<Version>,
    headers: HeaderMap,
    Path(ident): Path<String>,
    axum::extract::Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    check_ident(&ident)?;
    super::check_args(&q, &[super::args::SHOW])?;
    let fields = parse_fields(&q, version, types::node_field_known)?;
    let node = state
        .conductor
        .store()
        .call(move |s| s.get_node(&ident))
        .await?;
    let base = base_url(&headers);
    Ok(Json(types::node_json(
        &node,
        fields.as_deref(),
        &render(&base, version, &state),
    )))
}

pub async fn patch(
    State(state): State<AppState>,
    _c: super::auth::Caller,
    Extension(version): Extension<Version>,
    headers: HeaderMap,
    Path(ident): Path<String>,
    axum::extract::Query(q): Params,
    JsonBody(ops): JsonBody<Vec<PatchOp>>,
) -> Result<Json<Value>, ApiError> {
    check_ident(&ident)?;
    super::check_args(&q, &[super::args::NODE_PATCH])?;
    let reset = query_bool(&q, "reset_interfaces")?;
    let node = state.conductor.update_node(&ident, ops, reset).await?;
    let base = base_url(&headers);
    Ok(Json(types::node_json(
        &node,
        None,
        &render(&base, version, &state),
    )))
}

pub async fn delete(
    State(state): State<AppState>,
    _c: super::auth::Caller,
    Path(ident): Path<String>,
) -> Result<StatusCode, ApiError> {
    check_ident(&ident)?;
    state.conductor.delete_node(&ident).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One history entry as Ironic shows it: the short form (its event cut
/// at 255 characters) or, with `detail`, every field of the version; a
/// self link either way.
fn history_entry(
    h: &crate::model::HistoryEntry,
    node: Uuid,
    detail: bool,
    version: Version,
    base: &str,
) -> Value {
    let mut m = match types::history_json(h) {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    if detail {
        if version.at_least(113) {
            m.insert("project".into(), Value::Null);
        }
        if version.at_least(115) {
            for k in ["state", "target_provision_state", "duration_seconds"] {
                m.insert(k.into(), Value::Null);
            }
        }
    } else {
        m.retain(|k, _| ["uuid", "created_at", "severity", "event"].contains(&k.as_str()));
        if h.event.chars().count() > 255 {
            let cut: String = h.event.chars().take(251).collect();
            m.insert("event".into(), Value::String(format!("{cut}...")));
        }
    }
    let href = format!("{base}/v1/nodes/{node}/history/{}", h.uuid);
    m.insert("links".into(), json!([{"href": href, "rel": "self"}]));
    Value::Object(m)
}

/// A node's UUID and history.
async fn uuid_and_history(
    state: &AppState,
    ident: String,
) -> Result<(Uuid, Vec<crate::model::HistoryEntry>), ApiError> {
    Ok(state
        .conductor
        .store()
        .call(move |s| -> crate::store::Result<_> {
            let node = s.get_node(&ident)?;
            Ok((node.uuid, s.node_history(node.uuid)?))
        })
        .await?)
}

/// `GET /v1/nodes/{ident}/history` (`detail`, `limit`, `marker`,
/// `sort_dir`; oldest first).
pub async fn history(
    State(state): State<AppState>,
    _c: super::auth::Caller,
    Extension(version): Extension<Version>,
    headers: HeaderMap,
    Path(ident): Path<String>,
    axum::extract::Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    super::check_args(
        &q,
        &[&["detail", "limit", "marker", "sort_key", "sort_dir"]],
    )?;
    check_ident(&ident)?;
    let detail = super::query_bool(&q, "detail")?.unwrap_or(false);
    let page = super::parse_page(&q, &state, &["created_at"])?;
    let (node, mut entries) = uuid_and_history(&state, ident.clone()).await?;
    if page.descending {
        entries.reverse();
    }
    if let Some(m) = page.marker {
        match entries.iter().position(|h| h.uuid == m) {
            Some(i) => {
                entries.drain(..=i);
            }
            None => {
                return Err(ApiError::not_found(format!(
                    "Node history record {m} could not be found."
                )))
            }
        }
    }
    entries.truncate(page.limit);
    let base = base_url(&headers);
    let list: Vec<Value> = entries
        .iter()
        .map(|h| history_entry(h, node, detail, version, &base))
        .collect();
    let mut body = json!({ "history": list });
    if entries.len() == page.limit {
        if let Some(last) = entries.last() {
            body["next"] = Value::String(super::next_link(
                &base,
                &format!("/v1/nodes/{ident}/history"),
                &q,
                page.limit,
                &last.uuid.to_string(),
            ));
        }
    }
    Ok(Json(body))
}

/// `GET /v1/nodes/{ident}/history/{event}` (1.78+): one entry, with the
/// fields of the version and its self link.
pub async fn history_event(
    State(state): State<AppState>,
    _c: super::auth::Caller,
    Extension(version): Extension<Version>,
    headers: HeaderMap,
    Path((ident, event)): Path<(String, String)>,
    axum::extract::Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    if !version.at_least(78) {
        return Err(ApiError::not_found("The resource could not be found."));
    }
    super::check_args(&q, &[])?;
    if event.parse::<Uuid>().is_err() && check_name(&event).is_err() {
        return Err(ApiError::bad_request(format!(
            "Expected UUID or name for event: {event}"
        )));
    }
    check_ident(&ident)?;
    let (node, entries) = uuid_and_history(&state, ident).await?;
    let missing =
        || ApiError::not_found(format!("Node history record {event} could not be found."));
    let wanted: Uuid = event.parse().map_err(|_| missing())?;
    let entry = entries
        .iter()
        .find(|h| h.uuid == wanted)
        .ok_or_else(missing)?;
    Ok(Json(history_entry(
        entry,
        node,
        true,
        version,
        &base_url(&headers),
    )))
}
