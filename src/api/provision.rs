//! `/v1/nodes/{ident}/states…`, maintenance, validate and boot device.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Map, Value};

use super::auth::Caller;
use super::error::ApiError;
use super::nodes::check_ident;
use super::types::{self, BootDeviceRequest, MaintenanceRequest, PowerRequest, ProvisionRequest};
use super::version::Version;
use super::{base_url, render, AppState, JsonBody};
use crate::conductor::ProvisionOptions;
use crate::model::input::parse_bool;
use crate::model::states;
use crate::model::PowerState;

/// Verbs the appliance runs today; the others are refused with a clear 400.
const SUPPORTED_TARGETS: &[&str] = &[
    "manage", "provide", "adopt", "active", "deploy", "deleted", "undeploy", "rebuild", "abort",
    "inspect", "clean",
];

/// The steps of a manual cleaning (`clean`): `clean_steps` checked as
/// Ironic's schema does, or a runbook's steps (in their order) when the
/// node may use it. Refusals in Ironic's words.
async fn manual_clean_steps(
    state: &AppState,
    ident: &str,
    target: &str,
    version: Version,
    body: &ProvisionRequest,
) -> Result<Option<Vec<Value>>, ApiError> {
    use crate::conductor::agent_clean::check_user_steps;
    if body.clean_steps.is_some() && target != "clean" {
        return Err(ApiError::bad_request(
            "\"clean_steps\" is only valid when setting target provision state to clean",
        ));
    }
    if target != "clean" {
        return Ok(None);
    }
    let mut steps = match &body.clean_steps {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            check_user_steps(v)
                .map_err(|e| ApiError::bad_request(format!("Invalid clean_steps: {e}")))?,
        ),
    };
    if let Some(rb_ident) = &body.runbook {
        let rb: crate::model::template::Runbook =
            super::records::fetch(state, rb_ident.clone()).await?;
        let node_ident = ident.to_string();
        let node = state
            .conductor
            .store()
            .call(move |s| s.get_node(&node_ident))
            .await?;
        if version.at_least(112) {
            if rb.traits.is_empty() {
                return Err(ApiError::bad_request(format!(
                    "Runbook {} has no traits configured. Please ask an administrator to add traits to the runbook.",
                    rb.uuid
                )));
            }
            if !rb.traits.iter().any(|t| node.traits.contains(t)) {
                let mut wanted = rb.traits.clone();
                wanted.sort();
                return Err(ApiError::bad_request(format!(
                    "This runbook has not been approved for use on this node {}. The node does not have any of the runbook's traits {wanted:?}. Please ask an administrator to add a matching trait to your node.",
                    node.uuid
                )));
            }
        } else if !node.traits.contains(&rb.name) {
            return Err(ApiError::bad_request(format!(
                "This runbook has not been approved for use on this node {}. Please ask an administrator to add it to your node traits.",
                node.uuid
            )));
        }
        if steps.as_ref().is_some_and(|s| !s.is_empty()) {
            return Err(ApiError::bad_request(
                "Please provide either \"clean_steps\" or a runbook, but not both.",
            ));
        }
        let mut ordered = rb.steps.clone();
        ordered.sort_by_key(|s| s.order.unwrap_or(0));
        steps = Some(
            ordered
                .into_iter()
                .map(|s| json!({"interface": s.interface, "step": s.step, "args": s.args}))
                .collect(),
        );
    }
    match steps {
        Some(s) if !s.is_empty() => Ok(Some(s)),
        _ => Err(ApiError::bad_request(
            "\"clean_steps\" is required when setting target provision state to clean",
        )),
    }
}

pub async fn states(
    State(state): State<AppState>,
    _c: Caller,
    Extension(version): Extension<Version>,
    headers: HeaderMap,
    Path(ident): Path<String>,
) -> Result<Json<Value>, ApiError> {
    check_ident(&ident)?;
    let node = state
        .conductor
        .store()
        .call(move |s| s.get_node(&ident))
        .await?;
    let base = base_url(&headers);
    Ok(Json(types::states_json(
        &node,
        &render(&base, version, &state),
    )))
}

fn accepted(headers: &HeaderMap, ident: &str) -> Response {
    let mut resp = StatusCode::ACCEPTED.into_response();
    if let Ok(v) = format!("{}/v1/nodes/{ident}/states", base_url(headers)).parse() {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

pub async fn provision(
    State(state): State<AppState>,
    caller: Caller,
    Extension(version): Extension<Version>,
    headers: HeaderMap,
    Path(ident): Path<String>,
    JsonBody(body): JsonBody<ProvisionRequest>,
) -> Result<Response, ApiError> {
    check_ident(&ident)?;
    let target = body.target.as_str();
    let Some(api) = states::api_target(target) else {
        return Err(ApiError::bad_request(format!(
            "The requested action \"{target}\" could not be understood."
        )));
    };
    if let Some(min) = api.min_version {
        // Ironic gates "undeploy" by the raw target, which is never in its
        // version table; the alias is accepted at any version, as there.
        if target != "undeploy" && !version.at_least(min) {
            return Err(ApiError::not_acceptable(format!(
                "The \"{target}\" action needs API version 1.{min} or later; the request was made at 1.{}",
                version.0
            )));
        }
    }
    if target == "abort" {
        // aborting a deploy wait needs 1.110, as in Ironic
        let node_ident = ident.clone();
        let node = state
            .conductor
            .store()
            .call(move |s| s.get_node(&node_ident))
            .await?;
        if node.provision_state == states::State::WaitCallBack && !version.at_least(110) {
            return Err(ApiError::not_acceptable(
                "Aborting a node in wait call-back needs API version 1.110 or later",
            ));
        }
    }
    if body.runbook.is_some() {
        // Ironic runs runbooks by manual cleaning and servicing (which
        // rackboot does not have yet): every other target is refused in
        // Ironic's words.
        if !version.at_least(92) {
            return Err(ApiError::not_acceptable("Request not acceptable."));
        }
        if !matches!(target, "clean" | "service") {
            return Err(ApiError::bad_request(
                "\"runbook\" is only valid when setting target provision state to any of ['clean', 'service']",
            ));
        }
    }
    if !SUPPORTED_TARGETS.contains(&target) {
        return Err(ApiError::bad_request(format!(
            "The requested action \"{target}\" is not supported by rackboot yet; supported actions: {}",
            SUPPORTED_TARGETS.join(", ")
        )));
    }
    let deploy_steps = match &body.deploy_steps {
        None | Some(Value::Null) => None,
        Some(v) => {
            if !version.at_least(69) {
                return Err(ApiError::not_acceptable(
                    "deploy_steps need API version 1.69 or later",
                ));
            }
            if !matches!(target, "active" | "deploy" | "rebuild") {
                return Err(ApiError::bad_request(
                    "\"deploy_steps\" is only valid when setting target provision state to active or rebuild",
                ));
            }
            Some(
                crate::conductor::agent_deploy::check_deploy_steps(v)
                    .map_err(|e| ApiError::bad_request(format!("Invalid deploy_steps: {e}")))?,
            )
        }
    };
    for (field, given) in [
        ("service_steps", body.service_steps.is_some()),
        ("rescue_password", body.rescue_password.is_some()),
        ("disable_ramdisk", body.disable_ramdisk.is_some()),
    ] {
        if given {
            return Err(ApiError::bad_request(format!(
                "{field} is not supported by rackboot yet; leave it out"
            )));
        }
    }
    let clean_steps = manual_clean_steps(&state, &ident, target, version, &body).await?;
    // Ironic's check_allow_configdrive: an empty one is no config drive.
    let configdrive = body.configdrive.filter(|c| match c {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Object(m) => !m.is_empty(),
        _ => true,
    });
    if let Some(cd) = &configdrive {
        if !matches!(target, "active" | "deploy" | "rebuild") {
            return Err(ApiError::bad_request("Adding a config drive is only supported when setting provision state to active, rebuild"));
        }
        crate::images::configdrive::check_request(cd, version.0).map_err(ApiError::bad_request)?;
    }
    let confirm = match &body.confirm_destructive {
        None => false,
        Some(v) => parse_bool("confirm_destructive", v)
            .map_err(|e| ApiError::bad_request(e.to_string()))?,
    };
    let opts = ProvisionOptions {
        confirm_destructive: confirm,
        user: caller.user.clone(),
        configdrive,
        clean_steps,
        deploy_steps,
    };
    state.conductor.provision(&ident, target, opts).await?;
    Ok(accepted(&headers, &ident))
}

pub async fn power(
    State(state): State<AppState>,
    caller: Caller,
    Extension(version): Extension<Version>,
    headers: HeaderMap,
    Path(ident): Path<String>,
    JsonBody(body): JsonBody<PowerRequest>,
) -> Result<Response, ApiError> {
    check_ident(&ident)?;
    let target: PowerState = body.target.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "The requested action \"{}\" can not be performed on node \"{ident}\": valid power targets are power on, power off, rebooting, soft rebooting, soft power off",
            body.target
        ))
    })?;
    if target == PowerState::Error {
        return Err(ApiError::bad_request("\"error\" is not a power target"));
    }
    if matches!(target, PowerState::SoftOff | PowerState::SoftRebooting) && !version.at_least(27) {
        return Err(ApiError::not_acceptable(
            "Soft power actions need API version 1.27 or later",
        ));
    }
    if let Some(t) = &body.timeout {
        if !version.at_least(27) {
            return Err(ApiError::not_acceptable(
                "The power timeout needs API version 1.27 or later",
            ));
        }
        if t.as_i64().is_none_or(|n| n < 1) {
            return Err(ApiError::bad_request(format!(
                "Invalid timeout value {t}: it must be a positive integer"
            )));
        }
    }
    state
        .conductor
        .set_power(&ident, target, caller.user.clone())
        .await?;
    Ok(accepted(&headers, &ident))
}

pub async fn maintenance_on(
    State(state): State<AppState>,
    _c: Caller,
    Path(ident): Path<String>,
    body: axum::body::Bytes,
) -> Result<StatusCode, ApiError> {
    check_ident(&ident)?;
    let reason = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        serde_json::from_slice::<MaintenanceRequest>(&body)
            .map_err(|e| ApiError::bad_request(format!("Invalid JSON request body: {e}")))?
            .reason
    };
    state
        .conductor
        .set_maintenance(&ident, true, reason)
        .await?;
    Ok(StatusCode::ACCEPTED)
}

pub async fn maintenance_off(
    State(state): State<AppState>,
    _c: Caller,
    Path(ident): Path<String>,
) -> Result<StatusCode, ApiError> {
    check_ident(&ident)?;
    state.conductor.set_maintenance(&ident, false, None).await?;
    Ok(StatusCode::ACCEPTED)
}

pub async fn validate(
    State(state): State<AppState>,
    _c: Caller,
    Path(ident): Path<String>,
) -> Result<Json<Value>, ApiError> {
    check_ident(&ident)?;
    let results = state.conductor.validate(&ident).await?;
    let mut m = Map::new();
    for (kind, result, reason) in results {
        let mut entry = json!({ "result": result });
        if let Some(r) = reason {
            entry["reason"] = Value::String(r);
        }
        m.insert(kind.to_string(), entry);
    }
    Ok(Json(Value::Object(m)))
}

pub async fn boot_device_get(
    State(state): State<AppState>,
    _c: Caller,
    Path(ident): Path<String>,
) -> Result<Json<Value>, ApiError> {
    check_ident(&ident)?;
    let (device, persistent) = state.conductor.get_boot_device(&ident).await?;
    Ok(Json(
        json!({ "boot_device": device, "persistent": persistent }),
    ))
}

pub async fn boot_device_set(
    State(state): State<AppState>,
    _c: Caller,
    Path(ident): Path<String>,
    JsonBody(body): JsonBody<BootDeviceRequest>,
) -> Result<StatusCode, ApiError> {
    check_ident(&ident)?;
    let persistent = match &body.persistent {
        None => false,
        Some(v) => parse_bool("persistent", v).map_err(|e| ApiError::bad_request(e.to_string()))?,
    };
    state
        .conductor
        .set_boot_device(&ident, &body.boot_device, persistent)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn boot_device_supported(
    State(state): State<AppState>,
    _c: Caller,
    Path(ident): Path<String>,
) -> Result<Json<Value>, ApiError> {
    check_ident(&ident)?;
    let list = state.conductor.supported_boot_devices(&ident).await?;
    Ok(Json(json!({ "supported_boot_devices": list })))
}
