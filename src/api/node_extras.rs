//! A node's VIFs (`/v1/nodes/{ident}/vifs`, 1.28+), virtual media
//! (`/v1/nodes/{ident}/vmedia`, 1.89+), BIOS settings (`…/bios`, 1.40+) and
//! firmware components (`…/firmware`, 1.86+).

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde_json::{json, Value};
use uuid::Uuid;

use super::error::ApiError;
use super::schema::{self, py_repr, Prop, Ty, STR};
use super::version::Version;
use super::{AppState, JsonBody, Params};
use crate::conductor::VifTarget;

fn since(version: Version, min: u32) -> Result<(), ApiError> {
    if version.at_least(min) {
        Ok(())
    } else {
        Err(ApiError::not_found("The resource could not be found."))
    }
}

fn uuid_or_name(what: &str, v: &str) -> Result<(), ApiError> {
    if v.parse::<Uuid>().is_ok() || super::allocations::is_logical_name(v) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "Expected UUID or name for {what}: {v}"
        )))
    }
}

// -------------------------------------------------------------------- VIFs

/// `GET /v1/nodes/{ident}/vifs`.
pub async fn vif_list(
    State(state): State<AppState>,
    _c: super::auth::Caller,
    Extension(version): Extension<Version>,
    Path(ident): Path<String>,
    axum::extract::Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    since(version, 28)?;
    super::check_args(&q, &[])?;
    super::nodes::check_ident(&ident)?;
    let vifs = state.conductor.vif_list(&ident).await?;
    let list: Vec<Value> = vifs.into_iter().map(|id| json!({ "id": id })).collect();
    Ok(Json(json!({ "vifs": list })))
}

fn optional_uuid(body: &Value, key: &str) -> Result<Option<Uuid>, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            let s = v.as_str().map_or_else(|| v.to_string(), str::to_string);
            s.parse()
                .map(Some)
                .map_err(|_| ApiError::bad_request(format!("Expected UUID for {key}: {s}")))
        }
    }
}

/// `POST /v1/nodes/{ident}/vifs` with `{"id": …}` (and optionally the
/// `port_uuid` or, from 1.67 alone, `portgroup_uuid` to put it on).
pub async fn vif_attach(
    State(state): State<AppState>,
    caller: super::auth::Caller,
    Extension(version): Extension<Version>,
    Path(ident): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<StatusCode, ApiError> {
    since(version, 28)?;
    let m = &schema::object_body(Some("vif"), body.clone())?;
    let Some(id) = m.get("id") else {
        return Err(schema::error(Some("vif"), "'id' is a required property"));
    };
    let Some(id) = id.as_str() else {
        return Err(schema::error(
            Some("vif"),
            format!("{} is not of type 'string'", py_repr(id)),
        ));
    };
    uuid_or_name("id", id)?;
    super::nodes::check_ident(&ident)?;
    if version.at_least(67) && m.contains_key("port_uuid") && m.contains_key("portgroup_uuid") {
        return Err(ApiError::bad_request(
            "Cannot specify both port_uuid and portgroup_uuid",
        ));
    }
    let want = VifTarget {
        port: optional_uuid(&body, "port_uuid")?,
        portgroup: optional_uuid(&body, "portgroup_uuid")?,
    };
    state
        .conductor
        .vif_attach(&ident, id.to_string(), want, caller.user.clone())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /v1/nodes/{ident}/vifs/{vif}`.
pub async fn vif_detach(
    State(state): State<AppState>,
    caller: super::auth::Caller,
    Extension(version): Extension<Version>,
    Path((ident, vif)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    since(version, 28)?;
    uuid_or_name("vif_id", &vif)?;
    super::nodes::check_ident(&ident)?;
    state
        .conductor
        .vif_detach(&ident, vif, caller.user.clone())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ----------------------------------------------------------- virtual media

const VMEDIA_DEVICES: &[&str] = &["disk", "cdrom", "floppy"];
const VMEDIA_SCHEMES: &[&str] = &["http", "https", "nfs", "cifs", "smb"];

fn enum_error(v: &Value, allowed: &[&str]) -> String {
    let all: Vec<String> = allowed
        .iter()
        .map(|a| py_repr(&Value::String(a.to_string())))
        .collect();
    format!("{} is not one of [{}]", py_repr(v), all.join(", "))
}

/// `PUT /v1/nodes/{ident}/management/inject_nmi` (1.29+): a diagnostic
/// interrupt through the management interface.
pub async fn inject_nmi(
    State(state): State<AppState>,
    caller: super::auth::Caller,
    Extension(version): Extension<Version>,
    Path(ident): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<StatusCode, ApiError> {
    since(version, 29)?;
    schema::check(Some("inject_nmi"), &body, &[], &[])?;
    state
        .conductor
        .inject_nmi(&ident, caller.user.clone())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/nodes/{ident}/vmedia`: attaches an image as a virtual device.
pub async fn vmedia_attach(
    State(state): State<AppState>,
    caller: super::auth::Caller,
    Extension(version): Extension<Version>,
    Path(ident): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<StatusCode, ApiError> {
    since(version, 89)?;
    schema::check(
        Some("vmedia"),
        &body,
        &[
            Prop::new("device_type", &[Ty::Str]),
            Prop::new("image_url", &[Ty::Str]),
            Prop::new("image_download_source", STR),
        ],
        &["device_type", "image_url"],
    )?;
    let device = &body["device_type"];
    if !device.as_str().is_some_and(|d| VMEDIA_DEVICES.contains(&d)) {
        return Err(schema::error(
            Some("vmedia"),
            enum_error(device, VMEDIA_DEVICES),
        ));
    }
    if let Some(src) = body.get("image_download_source") {
        let allowed = ["http", "local", "swift"];
        if !src.as_str().is_some_and(|s| allowed.contains(&s)) {
            return Err(schema::error(Some("vmedia"), enum_error(src, &allowed)));
        }
    }
    let url = body["image_url"].as_str().unwrap_or_default();
    let scheme = url
        .split_once("://")
        .map(|(s, _)| s.to_ascii_lowercase())
        .unwrap_or_default();
    if !VMEDIA_SCHEMES.contains(&scheme.as_str()) {
        return Err(ApiError::bad_request(format!(
            "Unsupported or missing URL scheme: {scheme}"
        )));
    }
    super::nodes::check_ident(&ident)?;
    state
        .conductor
        .vmedia_attach(
            &ident,
            device.as_str().unwrap_or_default(),
            url,
            caller.user.clone(),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /v1/nodes/{ident}/vmedia[?device_types=cdrom,disk]`.
pub async fn vmedia_detach(
    State(state): State<AppState>,
    caller: super::auth::Caller,
    Extension(version): Extension<Version>,
    Path(ident): Path<String>,
    axum::extract::Query(q): Params,
) -> Result<StatusCode, ApiError> {
    since(version, 89)?;
    super::check_args(&q, &[&["device_types"]])?;
    let mut devices: Vec<String> = Vec::new();
    for d in q
        .get("device_types")
        .map(String::as_str)
        .unwrap_or_default()
        .split(',')
    {
        let d = d.trim().to_ascii_lowercase();
        if !d.is_empty() && !devices.contains(&d) {
            devices.push(d);
        }
    }
    let invalid: Vec<&str> = devices
        .iter()
        .map(String::as_str)
        .filter(|d| !VMEDIA_DEVICES.contains(d))
        .collect();
    if !invalid.is_empty() {
        return Err(ApiError::bad_request(format!(
            "Invalid device type(s) {} (valid are {})",
            invalid.join(", "),
            VMEDIA_DEVICES.join(", ")
        )));
    }
    super::nodes::check_ident(&ident)?;
    state
        .conductor
        .vmedia_detach(&ident, devices, caller.user.clone())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ------------------------------------------------------- BIOS and firmware

async fn node_uuid(state: &AppState, ident: String) -> Result<Uuid, ApiError> {
    super::nodes::check_ident(&ident)?;
    Ok(state
        .conductor
        .store()
        .call(move |s| s.get_node(&ident))
        .await?
        .uuid)
}

const BIOS_FIELDS: &[&str] = &[
    "allowable_values",
    "attribute_type",
    "created_at",
    "lower_bound",
    "links",
    "max_length",
    "min_length",
    "name",
    "node_uuid",
    "read_only",
    "reset_required",
    "unique",
    "updated_at",
    "value",
];

/// Checks a `fields` query against the fields a listing has.
fn check_fields(q: &HashMap<String, String>, allowed: &[&str]) -> Result<(), ApiError> {
    if let Some(f) = q.get("fields") {
        for field in f.split(',').map(|x| x.trim().to_ascii_lowercase()) {
            if !field.is_empty() && !allowed.contains(&field.as_str()) {
                return Err(schema::error(
                    None,
                    enum_error(&Value::String(field.clone()), allowed),
                ));
            }
        }
    }
    Ok(())
}

/// `GET /v1/nodes/{ident}/inventory` (1.81+): the inspection data the
/// agent last posted, and the plugin data the hooks left.
pub async fn inventory(
    State(state): State<AppState>,
    _c: super::auth::Caller,
    Extension(version): Extension<Version>,
    Path(ident): Path<String>,
    axum::extract::Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    since(version, 81)?;
    super::check_args(&q, &[])?;
    match state.conductor.inventory(&ident).await? {
        Some(r) => Ok(Json(json!({
            "inventory": r.inventory,
            "plugin_data": r.plugin_data,
        }))),
        None => Err(ApiError::not_found(format!(
            "Node inventory record for node {ident} could not be found."
        ))),
    }
}

/// `GET /v1/nodes/{ident}/bios`: the `no-bios` interface has no settings.
pub async fn bios_list(
    State(state): State<AppState>,
    _c: super::auth::Caller,
    Extension(version): Extension<Version>,
    Path(ident): Path<String>,
    axum::extract::Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    since(version, 40)?;
    if version.at_least(74) {
        super::check_args(&q, &[&["fields", "detail"]])?;
        if q.contains_key("fields") && super::query_bool(&q, "detail")? == Some(true) {
            return Err(ApiError::bad_request(
                "Can not specify ?detail=True and fields in the same request.",
            ));
        }
        check_fields(&q, BIOS_FIELDS)?;
    } else {
        let mut extra: Vec<&str> = q.keys().map(String::as_str).collect();
        extra.sort_unstable();
        if !extra.is_empty() {
            let verb = if extra.len() == 1 { "was" } else { "were" };
            let names: Vec<String> = extra.iter().map(|e| format!("'{e}'")).collect();
            return Err(schema::error(
                None,
                format!(
                    "Additional properties are not allowed ({} {verb} unexpected)",
                    names.join(", ")
                ),
            ));
        }
    }
    node_uuid(&state, ident).await?;
    Ok(Json(json!({ "bios": [] })))
}

/// `GET /v1/nodes/{ident}/bios/{name}`.
pub async fn bios_show(
    State(state): State<AppState>,
    _c: super::auth::Caller,
    Extension(version): Extension<Version>,
    Path((ident, name)): Path<(String, String)>,
    axum::extract::Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    since(version, 40)?;
    super::check_args(&q, &[])?;
    let uuid = node_uuid(&state, ident).await?;
    Err(ApiError::not_found(format!(
        "Node {uuid} doesn't have a BIOS setting '{name}'"
    )))
}

const FIRMWARE_FIELDS: &[&str] = &[
    "created_at",
    "updated_at",
    "component",
    "initial_version",
    "current_version",
    "last_version_flashed",
    "vendor",
    "model",
    "serial_number",
];

/// `GET /v1/nodes/{ident}/firmware`: the `no-firmware` interface has no
/// components.
pub async fn firmware_list(
    State(state): State<AppState>,
    _c: super::auth::Caller,
    Extension(version): Extension<Version>,
    Path(ident): Path<String>,
    axum::extract::Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    since(version, 86)?;
    super::check_args(&q, &[&["fields", "detail"]])?;
    if let Some(d) = q.get("detail") {
        return Err(schema::error(
            None,
            format!(
                "{} is not of type 'boolean'",
                py_repr(&Value::String(d.clone()))
            ),
        ));
    }
    check_fields(&q, FIRMWARE_FIELDS)?;
    if !version.at_least(114) {
        let mut late: Vec<String> = q
            .get("fields")
            .map(String::as_str)
            .unwrap_or_default()
            .split(',')
            .map(|f| f.trim().to_ascii_lowercase())
            .filter(|f| ["vendor", "model", "serial_number"].contains(&f.as_str()))
            .collect();
        if !late.is_empty() {
            late.sort();
            late.dedup();
            return Err(ApiError::bad_request(format!(
                "Fields {} are not allowed in this API version. They require at least API version 1.114.",
                late.join(", ")
            )));
        }
    }
    node_uuid(&state, ident).await?;
    Ok(Json(json!({ "firmware": [] })))
}
