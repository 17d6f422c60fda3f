//! `/v1/nodes/{ident}/traits` (1.37+): list, replace, add one, remove.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};

use super::error::ApiError;
use super::schema::{self, Items, Prop, Ty};
use super::version::Version;
use super::{base_url, AppState, Params};

fn check_version(version: Version, status: StatusCode) -> Result<(), ApiError> {
    if version.at_least(37) {
        Ok(())
    } else if status == StatusCode::NOT_ACCEPTABLE {
        Err(ApiError::not_acceptable("Request not acceptable."))
    } else {
        Err(ApiError::not_found("The resource could not be found."))
    }
}

/// A request body that may be empty (or `null`/`{}`): `None` then.
pub fn optional_body(bytes: &[u8]) -> Result<Option<Value>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let v: Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::bad_request(format!(
            "Invalid JSON request body: {}",
            super::body_error(&e)
        ))
    })?;
    Ok(match &v {
        Value::Null => None,
        Value::Object(m) if m.is_empty() => None,
        _ => Some(v),
    })
}

/// The trait list of a `PUT …/traits` body (`{"traits": [...]}`);
/// `one_or_all` is the refusal of a body without one.
pub fn traits_body(bytes: &[u8], one_or_all: &str) -> Result<Vec<String>, ApiError> {
    let Some(body) = optional_body(bytes)? else {
        return Err(ApiError::bad_request(one_or_all));
    };
    schema::check(
        Some("body"),
        &body,
        &[Prop::new("traits", &[Ty::Arr]).items(Items::Trait)],
        &[],
    )?;
    let Some(list) = body.get("traits").and_then(Value::as_array) else {
        return Err(ApiError::bad_request(one_or_all));
    };
    Ok(list
        .iter()
        .filter_map(|t| t.as_str().map(str::to_string))
        .collect())
}

const ONE_OR_ALL: &str = "A single node trait may be added via PUT /v1/nodes/<node identifier>/traits/<trait> with no body, or all node traits may be replaced via PUT /v1/nodes/<node identifier>/traits with the list of traits specified in the request body.";

pub async fn list(
    State(state): State<AppState>,
    _c: super::auth::Caller,
    Extension(version): Extension<Version>,
    Path(ident): Path<String>,
    axum::extract::Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    check_version(version, StatusCode::NOT_ACCEPTABLE)?;
    super::nodes::check_ident(&ident)?;
    super::check_args(&q, &[])?;
    let node = state
        .conductor
        .store()
        .call(move |s| s.get_node(&ident))
        .await?;
    Ok(Json(json!({ "traits": node.traits })))
}

/// `PUT /v1/nodes/{ident}/traits`: replaces them all.
pub async fn set_all(
    State(state): State<AppState>,
    caller: super::auth::Caller,
    Extension(version): Extension<Version>,
    Path(ident): Path<String>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    check_version(version, StatusCode::NOT_FOUND)?;
    super::nodes::check_ident(&ident)?;
    let list = traits_body(&body, ONE_OR_ALL)?;
    state
        .conductor
        .update_traits(&ident, caller.user.clone(), move |_, traits| {
            *traits = list;
            Ok(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /v1/nodes/{ident}/traits/{trait}`: adds one.
pub async fn add(
    State(state): State<AppState>,
    caller: super::auth::Caller,
    Extension(version): Extension<Version>,
    headers: HeaderMap,
    Path((ident, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    check_version(version, StatusCode::NOT_FOUND)?;
    super::nodes::check_ident(&ident)?;
    if let Some(why) = schema::trait_error(&Value::String(name.clone())) {
        return Err(schema::error(Some("trait"), why));
    }
    if let Some(body) = optional_body(&body)? {
        if body.get("traits").is_some() {
            return Err(ApiError::bad_request(ONE_OR_ALL));
        }
        return Err(ApiError::bad_request(
            "No body should be provided when adding a trait",
        ));
    }
    let t = name.clone();
    state
        .conductor
        .update_traits(&ident, caller.user.clone(), move |_, traits| {
            traits.push(t);
            Ok(())
        })
        .await?;
    Ok(added(&headers, &format!("nodes/{ident}/traits/{name}")))
}

/// A 204 for an added trait, with its `Location` (`path` under `/v1/`).
pub fn added(headers: &HeaderMap, path: &str) -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    if let Ok(v) = format!("{}/v1/{path}", base_url(headers)).parse() {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// `DELETE /v1/nodes/{ident}/traits`: removes them all.
pub async fn remove_all(
    State(state): State<AppState>,
    caller: super::auth::Caller,
    Extension(version): Extension<Version>,
    Path(ident): Path<String>,
) -> Result<StatusCode, ApiError> {
    check_version(version, StatusCode::NOT_FOUND)?;
    super::nodes::check_ident(&ident)?;
    state
        .conductor
        .update_traits(&ident, caller.user.clone(), |_, traits| {
            traits.clear();
            Ok(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /v1/nodes/{ident}/traits/{trait}`.
pub async fn remove(
    State(state): State<AppState>,
    caller: super::auth::Caller,
    Extension(version): Extension<Version>,
    Path((ident, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    check_version(version, StatusCode::NOT_FOUND)?;
    super::nodes::check_ident(&ident)?;
    state
        .conductor
        .update_traits(&ident, caller.user.clone(), move |node, traits| {
            let before = traits.len();
            traits.retain(|t| *t != name);
            if traits.len() == before {
                return Err(crate::conductor::Error::TraitNotFound {
                    node: node.uuid.to_string(),
                    name,
                });
            }
            Ok(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
