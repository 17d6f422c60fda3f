//! `/v1/conductors` (1.49+): this appliance is the one conductor, alive
//! while it answers, with every hardware type it has.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::{Extension, Json};
use serde_json::{json, Map, Value};

use super::error::ApiError;
use super::records::Spec;
use super::version::Version;
use super::{base_url, render, AppState, Params};

pub static SPEC: Spec = Spec {
    path: "conductors",
    collection: "conductors",
    min_version: 49,
    too_old: "The API is not supported for this version",
    detail_from: 43,
    fields: &[
        ("created_at", 49),
        ("updated_at", 49),
        ("hostname", 49),
        ("conductor_group", 49),
        ("drivers", 49),
        ("links", 49),
        ("alive", 49),
    ],
    short: Some(&["hostname", "conductor_group", "links", "alive"]),
    filters: &[],
    sortable: &["hostname", "conductor_group", "created_at", "updated_at"],
    no_sort: &["alive", "drivers"],
    sublinks: &[],
    key: "hostname",
};

/// This appliance as a conductor row.
fn me(state: &AppState) -> Map<String, Value> {
    let c = &state.conductor;
    let drivers: Vec<&str> = c
        .registry()
        .hardware_types()
        .iter()
        .map(|t| t.name)
        .collect();
    match json!({
        "created_at": c.started_at(),
        "updated_at": crate::model::now(),
        "hostname": c.host(),
        "conductor_group": "",
        "drivers": drivers,
        "alive": true,
    }) {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

pub async fn list(
    State(state): State<AppState>,
    _c: super::auth::Caller,
    Extension(version): Extension<Version>,
    headers: HeaderMap,
    axum::extract::Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    SPEC.check_version(version)?;
    SPEC.check_list_args(&q, false)?;
    let detail = super::query_bool(&q, "detail")?.unwrap_or(false);
    let fields = SPEC.parse_fields(&q, version)?;
    if detail && fields.is_some() {
        return Err(ApiError::bad_request(
            "Can not specify ?detail=True and fields in the same request.",
        ));
    }
    // Validated like any listing's paging; the one row is after no marker
    // but its own.
    let _ = super::parse_page_with(&q, &state, SPEC.sortable, false)?;
    let host = state.conductor.host().to_string();
    let rows = match q.get("marker") {
        None => vec![me(&state)],
        Some(m) if *m == host => Vec::new(),
        Some(m) => {
            return Err(ApiError::not_found(format!(
                "Conductor {m} could not be found."
            )))
        }
    };
    let base = base_url(&headers);
    let r = render(&base, version, &state);
    let short: Vec<String> = SPEC
        .short
        .unwrap_or_default()
        .iter()
        .map(|f| f.to_string())
        .collect();
    let shown = match (&fields, detail) {
        (Some(f), _) => Some(f.as_slice()),
        (None, true) => None,
        (None, false) => Some(short.as_slice()),
    };
    let list: Vec<Value> = rows.iter().map(|m| SPEC.render(m, shown, &r)).collect();
    Ok(Json(json!({ "conductors": list })))
}

pub async fn show(
    State(state): State<AppState>,
    _c: super::auth::Caller,
    Extension(version): Extension<Version>,
    headers: HeaderMap,
    Path(hostname): Path<String>,
    axum::extract::Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    SPEC.check_version(version)?;
    super::check_args(&q, &[super::args::SHOW])?;
    let fields = SPEC.parse_fields(&q, version)?;
    if hostname != state.conductor.host() {
        return Err(ApiError::not_found(format!(
            "Conductor {hostname} could not be found."
        )));
    }
    let base = base_url(&headers);
    Ok(Json(SPEC.render(
        &me(&state),
        fields.as_deref(),
        &render(&base, version, &state),
    )))
}

/// `GET /v1/shards` (1.82+): the shards nodes are in, with their counts.
pub async fn shards(
    State(state): State<AppState>,
    _c: super::auth::Caller,
    Extension(version): Extension<Version>,
    axum::extract::Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    if !version.at_least(82) {
        return Err(ApiError::not_found("The API version does not allow shards"));
    }
    super::check_args(&q, &[])?;
    let counts = state.conductor.store().call(|s| s.shard_counts()).await?;
    let list: Vec<Value> = counts
        .into_iter()
        .map(|(name, count)| {
            serde_json::json!({"name": name.unwrap_or_else(|| "None".into()), "count": count})
        })
        .collect();
    Ok(Json(serde_json::json!({ "shards": list })))
}
