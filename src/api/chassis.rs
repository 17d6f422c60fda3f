//! `/v1/chassis` and `/v1/chassis/{uuid}/nodes`.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::{Extension, Json};
use serde_json::Value;
use uuid::Uuid;

use super::error::ApiError;
use super::records::{self, Served, Spec};
use super::schema::{self, Prop, OBJ, STR};
use super::version::Version;
use super::{AppState, JsonBody, Params};
use crate::conductor::PatchOp;
use crate::model::Chassis;
use crate::store::NodeFilter;

pub static SPEC: Spec = Spec {
    path: "chassis",
    collection: "chassis",
    min_version: 1,
    too_old: "The API is not supported for this version",
    detail_from: 43,
    fields: &[
        ("uuid", 1),
        ("created_at", 1),
        ("updated_at", 1),
        ("description", 1),
        ("extra", 1),
        ("links", 1),
        ("nodes", 1),
    ],
    short: Some(&["uuid", "description", "links"]),
    filters: &[],
    sortable: &["uuid", "description", "created_at", "updated_at"],
    no_sort: &["extra"],
    sublinks: &[("nodes", true)],
    key: "uuid",
};

fn parse_uuid(ident: &str) -> Result<Uuid, ApiError> {
    ident
        .parse()
        .map_err(|_| ApiError::bad_request(format!("Expected UUID for chassis_uuid: {ident}")))
}

impl Served for Chassis {
    const SPEC: &'static Spec = &SPEC;

    fn check_ident(ident: &str) -> Result<(), ApiError> {
        parse_uuid(ident).map(drop)
    }
}

const CREATE: &[Prop] = &[
    Prop::new("uuid", STR),
    Prop::new("extra", OBJ),
    Prop::new("description", STR).max(255),
];

pub async fn create(
    State(state): State<AppState>,
    _c: super::auth::Caller,
    Extension(version): Extension<Version>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    schema::check(Some("chassis"), &body, CREATE, &[])?;
    let body = body.as_object().cloned().unwrap_or_default();
    let chassis = Chassis {
        uuid: records::body_uuid(&body)?.unwrap_or_else(Uuid::new_v4),
        created_at: crate::model::now(),
        updated_at: None,
        description: body
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_string),
        extra: body
            .get("extra")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
    };
    records::insert(&state, chassis, version, &headers).await
}

pub async fn patch(
    State(state): State<AppState>,
    _c: super::auth::Caller,
    Extension(version): Extension<Version>,
    headers: HeaderMap,
    Path(ident): Path<String>,
    JsonBody(ops): JsonBody<Vec<PatchOp>>,
) -> Result<Json<Value>, ApiError> {
    parse_uuid(&ident)?;
    let old = records::fetch::<Chassis>(&state, ident).await?;
    let (mut new, doc) = records::apply_patch(&old, &ops, &["uuid", "extra", "description"])?;
    schema::check_map(
        Some("patch"),
        &doc,
        &[
            Prop::new("uuid", &[schema::Ty::Str]),
            Prop::new("created_at", &[schema::Ty::Str]),
            Prop::new("updated_at", STR),
            Prop::new("extra", OBJ),
            Prop::new("description", STR).max(255),
        ],
        &[],
    )?;
    if new.uuid != old.uuid {
        return Err(ApiError::bad_request(
            "Cannot overwrite UUID for an existing Chassis.",
        ));
    }
    new.updated_at = Some(crate::model::now());
    records::save_and_show(&state, new, version, &headers).await
}

pub async fn delete(
    State(state): State<AppState>,
    _c: super::auth::Caller,
    Path(ident): Path<String>,
) -> Result<StatusCode, ApiError> {
    let uuid = parse_uuid(&ident)?;
    state
        .conductor
        .store()
        .call(move |s| -> Result<(), ApiError> {
            s.get_record::<Chassis>(&uuid.to_string())?;
            let filter = NodeFilter {
                chassis_uuid: Some(uuid),
                ..Default::default()
            };
            let page = crate::store::Page {
                limit: 1,
                ..crate::store::Page::ALL
            };
            if !s.list_nodes(&filter, page)?.is_empty() {
                return Err(ApiError::bad_request(format!(
                    "Cannot complete the requested action because chassis {uuid} contains nodes."
                )));
            }
            Ok(s.delete_record::<Chassis>(uuid)?)
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn nodes_of(
    state: AppState,
    version: Version,
    headers: HeaderMap,
    ident: String,
    mut q: std::collections::HashMap<String, String>,
    detail: bool,
) -> Result<Response, ApiError> {
    let allowed: &[&[&str]] = if detail {
        &[super::args::NODE_FILTERS]
    } else {
        &[super::args::NODE_FILTERS, super::args::LIST_ONLY]
    };
    super::check_args(&q, allowed)?;
    let uuid = parse_uuid(&ident)?;
    records::fetch::<Chassis>(&state, uuid.to_string()).await?;
    q.insert("chassis_uuid".into(), uuid.to_string());
    let path = if detail {
        "/v1/nodes/detail"
    } else {
        "/v1/nodes"
    };
    super::nodes::list_inner(state, version, headers, q, detail, path).await
}

/// `GET /v1/chassis/{uuid}/nodes`.
pub async fn nodes(
    State(state): State<AppState>,
    _c: super::auth::Caller,
    Extension(version): Extension<Version>,
    headers: HeaderMap,
    Path(ident): Path<String>,
    axum::extract::Query(q): Params,
) -> Result<Response, ApiError> {
    nodes_of(state, version, headers, ident, q, false).await
}

/// `GET /v1/chassis/{uuid}/nodes/detail`.
pub async fn nodes_detail(
    State(state): State<AppState>,
    _c: super::auth::Caller,
    Extension(version): Extension<Version>,
    headers: HeaderMap,
    Path(ident): Path<String>,
    axum::extract::Query(q): Params,
) -> Result<Response, ApiError> {
    nodes_of(state, version, headers, ident, q, true).await
}
