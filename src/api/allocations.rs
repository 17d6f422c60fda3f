//! `/v1/allocations` (1.52+) and `/v1/nodes/{ident}/allocation`.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::{Extension, Json};
use serde_json::Value;

use super::error::ApiError;
use super::records::{self, Listing, Served, Spec};
use super::schema::{self, Items, Prop, ARR, OBJ, STR};
use super::version::Version;
use super::{AppState, JsonBody, Params};
use crate::conductor::{AllocationRequest, PatchOp};
use crate::model::Allocation;

const TOO_OLD: &str = "The API version does not allow allocations";

pub static SPEC: Spec = Spec {
    path: "allocations",
    collection: "allocations",
    min_version: 52,
    too_old: TOO_OLD,
    detail_from: 43,
    fields: &[
        ("uuid", 52),
        ("created_at", 52),
        ("updated_at", 52),
        ("candidate_nodes", 52),
        ("extra", 52),
        ("last_error", 52),
        ("name", 52),
        ("owner", 60),
        ("resource_class", 52),
        ("state", 52),
        ("traits", 52),
        ("links", 52),
        ("node_uuid", 52),
    ],
    short: None,
    filters: &["node", "resource_class", "state", "owner"],
    sortable: &[
        "uuid",
        "name",
        "created_at",
        "updated_at",
        "last_error",
        "owner",
        "resource_class",
        "state",
        "node_uuid",
    ],
    no_sort: &["extra", "candidate_nodes", "traits"],
    sublinks: &[],
    key: "uuid",
};

impl Served for Allocation {
    const SPEC: &'static Spec = &SPEC;
    const NODE_FILTER_MISSING: StatusCode = StatusCode::BAD_REQUEST;

    fn filter(q: &HashMap<String, String>, version: Version) -> Result<Listing, ApiError> {
        if q.contains_key("owner") && !version.at_least(60) {
            return Err(ApiError::not_acceptable("Request not acceptable."));
        }
        let mut l = Listing {
            node: q.get("node").cloned(),
            ..Default::default()
        };
        if let Some(s) = q.get("state") {
            if !matches!(s.as_str(), "allocating" | "active" | "error") {
                return Err(schema::error(
                    None,
                    format!("'{s}' is not one of ['allocating', 'active', 'error']"),
                ));
            }
        }
        for key in ["resource_class", "state", "owner"] {
            if let Some(v) = q.get(key) {
                l.filter.fields.push((key, Value::String(v.clone())));
            }
        }
        Ok(l)
    }
}

/// Whether a name is one of Ironic's logical names (1.10+).
pub fn is_logical_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 255
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

const CREATE: &[Prop] = &[
    Prop::new("candidate_nodes", ARR).items(Items::Str),
    Prop::new("extra", OBJ),
    Prop::new("name", STR),
    Prop::new("owner", STR),
    Prop::new("resource_class", STR).max(80),
    Prop::new("traits", ARR).items(Items::Trait),
    Prop::new("uuid", STR),
    Prop::new("node", STR),
];

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn string(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str).map(str::to_string)
}

pub async fn create(
    State(state): State<AppState>,
    caller: super::auth::Caller,
    Extension(version): Extension<Version>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    SPEC.writable(version)?;
    let props = if version.at_least(58) {
        CREATE
    } else {
        &CREATE[..CREATE.len() - 1]
    };
    schema::check(None, &body, props, &[])?;
    if body.get("owner").is_some() && !version.at_least(60) {
        return Err(ApiError::not_acceptable("Request not acceptable."));
    }
    let name = string(body.get("name"));
    if let Some(n) = &name {
        if !is_logical_name(n) {
            return Err(ApiError::bad_request(format!(
                "Cannot create allocation with invalid name '{n}'"
            )));
        }
    }
    let uuid = match string(body.get("uuid")) {
        None => None,
        Some(u) => Some(
            u.parse()
                .map_err(|_| ApiError::bad_request(format!("Expected UUID for uuid: {u}")))?,
        ),
    };
    let req = AllocationRequest {
        uuid,
        name,
        resource_class: string(body.get("resource_class")),
        traits: strings(body.get("traits")),
        candidate_nodes: strings(body.get("candidate_nodes")),
        extra: body
            .get("extra")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
        owner: string(body.get("owner")),
        node: string(body.get("node")),
    };
    let a = state
        .conductor
        .create_allocation(req, caller.user.clone())
        .await?;
    tracing::info!(allocation = %a.uuid, state = a.state.as_str(), "allocation created");
    Ok(records::created(&a, version, &headers, &state))
}

pub async fn patch(
    State(state): State<AppState>,
    _c: super::auth::Caller,
    Extension(version): Extension<Version>,
    headers: HeaderMap,
    Path(ident): Path<String>,
    JsonBody(ops): JsonBody<Vec<PatchOp>>,
) -> Result<Json<Value>, ApiError> {
    if !version.at_least(57) {
        return Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "The API version does not allow updating allocations",
        ));
    }
    let old = records::fetch::<Allocation>(&state, ident).await?;
    let (mut new, _) = records::apply_patch(&old, &ops, &["name", "extra"])?;
    if let Some(n) = &new.name {
        if !is_logical_name(n) {
            return Err(ApiError::bad_request(format!(
                "Cannot update allocation with invalid name '{n}'"
            )));
        }
    }
    new.updated_at = Some(crate::model::now());
    records::save_and_show(&state, new, version, &headers).await
}

pub async fn delete(
    State(state): State<AppState>,
    caller: super::auth::Caller,
    Extension(version): Extension<Version>,
    Path(ident): Path<String>,
) -> Result<StatusCode, ApiError> {
    SPEC.writable(version)?;
    state
        .conductor
        .delete_allocation(&ident, caller.user.clone())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn of_node(state: &AppState, ident: &str) -> Result<Allocation, ApiError> {
    super::nodes::check_ident(ident)?;
    match state.conductor.node_allocation(ident).await {
        Ok(Some(a)) => Ok(a),
        Ok(None) => Err(ApiError::not_found(format!(
            "Allocation for node {ident} was not found"
        ))),
        Err(crate::conductor::Error::Store(e @ crate::store::Error::NodeNotFound(_))) => {
            Err(ApiError::bad_request(e.to_string()))
        }
        Err(e) => Err(e.into()),
    }
}

/// `GET /v1/nodes/{ident}/allocation`.
pub async fn node_show(
    State(state): State<AppState>,
    _c: super::auth::Caller,
    Extension(version): Extension<Version>,
    headers: HeaderMap,
    Path(ident): Path<String>,
    axum::extract::Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    SPEC.check_version(version)?;
    super::check_args(&q, &[super::args::SHOW])?;
    let fields = SPEC.parse_fields(&q, version)?;
    let a = of_node(&state, &ident).await?;
    let base = super::base_url(&headers);
    Ok(Json(records::to_json(
        &a,
        fields.as_deref(),
        &super::render(&base, version, &state),
    )))
}

/// `DELETE /v1/nodes/{ident}/allocation`.
pub async fn node_delete(
    State(state): State<AppState>,
    caller: super::auth::Caller,
    Extension(version): Extension<Version>,
    Path(ident): Path<String>,
) -> Result<StatusCode, ApiError> {
    SPEC.check_version(version)?;
    let a = of_node(&state, &ident).await?;
    state
        .conductor
        .delete_allocation(&a.uuid.to_string(), caller.user.clone())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
