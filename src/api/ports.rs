//! `/v1/ports` and `/v1/nodes/{ident}/ports`.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};
use uuid::Uuid;

use super::error::ApiError;
use super::types::{self, PortCreate};
use super::version::Version;
use super::{base_url, next_link, parse_fields, parse_page, render, AppState, JsonBody, Params};
use crate::conductor::PatchOp;
use crate::model::input::parse_bool;
use crate::model::{Mac, Port};
use crate::store::PortFilter;

fn bad_mac(m: &str) -> ApiError {
    crate::conductor::bad_mac(m).into()
}

pub async fn create(
    State(state): State<AppState>,
    caller: super::auth::Caller,
    Extension(version): Extension<Version>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<PortCreate>,
) -> Result<Response, ApiError> {
    let address = body
        .address
        .as_deref()
        .ok_or_else(|| ApiError::bad_request("'address' is a required property"))?;
    let mac: Mac = address.parse().map_err(|_| bad_mac(address))?;
    let node = match (&body.node_uuid, &body.node_ident) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "Specify only one of node_uuid and node_ident",
            ))
        }
        (None, None) => return Err(ApiError::bad_request("'node_uuid' is a required property")),
        (Some(u), None) => {
            u.parse::<Uuid>()
                .map_err(|_| ApiError::bad_request(format!("Expected UUID for node_uuid: {u}")))?;
            u.clone()
        }
        (None, Some(i)) => {
            if !version.at_least(94) {
                return Err(ApiError::not_acceptable(
                    "node_ident needs API version 1.94 or later",
                ));
            }
            i.clone()
        }
    };
    let portgroup_uuid = match &body.portgroup_uuid {
        None => None,
        Some(_) if !version.at_least(24) => {
            return Err(ApiError::not_acceptable("Request not acceptable."))
        }
        Some(u) => Some(u.parse::<Uuid>().map_err(|_| {
            ApiError::bad_request(format!("Expected UUID for portgroup_uuid: {u}"))
        })?),
    };
    let uuid = match &body.uuid {
        None => Uuid::new_v4(),
        Some(u) => u
            .parse()
            .map_err(|_| ApiError::bad_request(format!("Expected a UUID but received {u}.")))?,
    };
    let flag = |field: &str, v: &Option<Value>, default: bool| -> Result<bool, ApiError> {
        match v {
            None | Some(Value::Null) => Ok(default),
            Some(v) => parse_bool(field, v).map_err(|e| ApiError::bad_request(e.to_string())),
        }
    };
    let pxe_enabled = flag("pxe_enabled", &body.pxe_enabled, true)?;
    let is_smartnic = flag("is_smartnic", &body.is_smartnic, false)?;
    let node = state
        .conductor
        .store()
        .call(move |s| s.get_node(&node))
        .await
        .map_err(|e| match e {
            crate::store::Error::NodeNotFound(_) => ApiError::bad_request(e.to_string()),
            e => e.into(),
        })?;
    let port = Port {
        uuid,
        portgroup_uuid,
        pxe_enabled,
        local_link_connection: body.local_link_connection.unwrap_or_default(),
        physical_network: body.physical_network,
        extra: body.extra.unwrap_or_default(),
        is_smartnic,
        name: body.name,
        description: body.description,
        vendor: body.vendor,
        category: body.category,
        available_for_dynamic_portgroup: flag(
            "available_for_dynamic_portgroup",
            &body.available_for_dynamic_portgroup,
            false,
        )?,
        ..Port::new(mac, node.uuid)
    };
    let port = state
        .conductor
        .create_port(port, caller.user.clone())
        .await?;
    tracing::info!(port = %port.uuid, node = %port.node_uuid, mac = %port.address, "port created");
    let base = base_url(&headers);
    let mut resp = (
        StatusCode::CREATED,
        Json(types::port_json(
            &port,
            None,
            &render(&base, version, &state),
        )),
    )
        .into_response();
    if let Ok(v) = format!("{base}/v1/ports/{}", port.uuid).parse() {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

/// What a port listing is scoped to by its path.
#[derive(Debug, Default)]
pub struct Scope {
    /// `/v1/nodes/{ident}/ports`.
    pub node: Option<String>,
    /// `/v1/portgroups/{ident}/ports`.
    pub portgroup: Option<String>,
}

pub async fn list_inner(
    state: AppState,
    version: Version,
    headers: HeaderMap,
    q: HashMap<String, String>,
    scope: Scope,
    detail: bool,
    path: String,
) -> Result<Json<Value>, ApiError> {
    let Scope { node, portgroup } = scope;
    use super::args::{LIST_ONLY, PORT_FILTERS};
    let allowed: &[&[&str]] = if detail {
        &[PORT_FILTERS]
    } else {
        &[PORT_FILTERS, LIST_ONLY]
    };
    super::check_args(&q, allowed)?;
    let detail = detail || super::query_bool(&q, "detail")?.unwrap_or(false);
    let fields = parse_fields(&q, version, types::port_field_known)?;
    if let Some(key) = q
        .get("sort_key")
        .filter(|k| ["extra", "internal_info", "local_link_connection"].contains(&k.as_str()))
    {
        return Err(ApiError::bad_request(format!(
            "The sort_key value {key} is an invalid field for sorting"
        )));
    }
    let page = parse_page(&q, &state, super::args::PORT_SORT)?;
    let node = node
        .or_else(|| q.get("node").cloned())
        .or_else(|| q.get("node_uuid").cloned());
    let address = match q.get("address") {
        None => None,
        Some(a) => Some(a.parse::<Mac>().map_err(|_| bad_mac(a))?),
    };
    let portgroup = portgroup.or_else(|| q.get("portgroup").cloned());
    let shards = super::string_list(q.get("shard"));
    let conductor_groups = super::string_list(q.get("conductor_groups"));
    if q.contains_key("shard") && !version.at_least(82) {
        return Err(ApiError::not_acceptable(
            "Request not acceptable. The minimal required API version should be 1.82 for this operation.",
        ));
    }
    let exclusive = [node.is_some(), portgroup.is_some(), !shards.is_empty()];
    if exclusive.iter().filter(|b| **b).count() > 1 {
        return Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "Operation not permitted.",
        ));
    }
    if !conductor_groups.is_empty() && (node.is_some() || portgroup.is_some() || address.is_some())
    {
        return Err(ApiError::bad_request(
            "Filtering by conductor_groups cannot be combined with node_ident, portgroup_ident, or node address filters.",
        ));
    }
    let description_contains = q.get("description_contains").cloned();
    let ports = state
        .conductor
        .store()
        .call(move |s| -> crate::store::Result<Vec<Port>> {
            let node_uuid = match node {
                None => None,
                Some(n) => Some(s.get_node(&n)?.uuid),
            };
            let portgroup_uuid = match portgroup {
                None => None,
                Some(g) => Some(s.get_record::<crate::model::Portgroup>(&g)?.uuid),
            };
            s.list_ports(
                &PortFilter {
                    node_uuid,
                    address,
                    portgroup_uuid,
                    shards,
                    conductor_groups,
                    description_contains,
                },
                page,
            )
        })
        .await?;
    let base = base_url(&headers);
    let r = render(&base, version, &state);
    let list: Vec<Value> = ports
        .iter()
        .map(|p| match (&fields, detail) {
            (Some(f), _) => types::port_json(p, Some(f), &r),
            (None, true) => types::port_json(p, None, &r),
            (None, false) => types::port_short_json(p, &r),
        })
        .collect();
    let mut body = json!({ "ports": list });
    if ports.len() == page.limit {
        if let Some(last) = ports.last() {
            body["next"] = Value::String(next_link(
                &base,
                &path,
                &q,
                page.limit,
                &last.uuid.to_string(),
            ));
        }
    }
    Ok(Json(body))
}

pub async fn list(
    State(state): State<AppState>,
    _c: super::auth::Caller,
    Extension(version): Extension<Version>,
    headers: HeaderMap,
    axum::extract::Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    list_inner(
        state,
        version,
        headers,
        q,
        Scope::default(),
        false,
        "/v1/ports".into(),
    )
    .await
}

pub async fn list_detail(
    State(state): State<AppState>,
    _c: super::auth::Caller,
    Extension(version): Extension<Version>,
    headers: HeaderMap,
    axum::extract::Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    list_inner(
        state,
        version,
        headers,
        q,
        Scope::default(),
        true,
        "/v1/ports/detail".into(),
    )
    .await
}

pub async fn list_for_node(
    State(state): State<AppState>,
    _c: super::auth::Caller,
    Extension(version): Extension<Version>,
    headers: HeaderMap,
    Path(ident): Path<String>,
    axum::extract::Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    super::nodes::check_ident(&ident)?;
    let path = format!("/v1/nodes/{ident}/ports");
    list_inner(
        state,
        version,
        headers,
        q,
        Scope {
            node: Some(ident),
            portgroup: None,
        },
        false,
        path,
    )
    .await
}

pub async fn list_for_node_detail(
    State(state): State<AppState>,
    _c: super::auth::Caller,
    Extension(version): Extension<Version>,
    headers: HeaderMap,
    Path(ident): Path<String>,
    axum::extract::Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    super::nodes::check_ident(&ident)?;
    let path = format!("/v1/nodes/{ident}/ports/detail");
    list_inner(
        state,
        version,
        headers,
        q,
        Scope {
            node: Some(ident),
            portgroup: None,
        },
        true,
        path,
    )
    .await
}

fn check_port_ident(ident: &str) -> Result<(), ApiError> {
    if ident.parse::<Uuid>().is_ok() || ident.parse::<Mac>().is_ok() {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "Expected a UUID but received {ident}."
        )))
    }
}

pub async fn show(
    State(state): State<AppState>,
    _c: super::auth::Caller,
    Extension(version): Extension<Version>,
    headers: HeaderMap,
    Path(ident): Path<String>,
    axum::extract::Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    check_port_ident(&ident)?;
    super::check_args(&q, &[super::args::SHOW])?;
    let fields = parse_fields(&q, version, types::port_field_known)?;
    let port = state
        .conductor
        .store()
        .call(move |s| s.get_port(&ident))
        .await?;
    let base = base_url(&headers);
    Ok(Json(types::port_json(
        &port,
        fields.as_deref(),
        &render(&base, version, &state),
    )))
}

pub async fn patch(
    State(state): State<AppState>,
    caller: super::auth::Caller,
    Extension(version): Extension<Version>,
    headers: HeaderMap,
    Path(ident): Path<String>,
    JsonBody(ops): JsonBody<Vec<PatchOp>>,
) -> Result<Json<Value>, ApiError> {
    check_port_ident(&ident)?;
    let port = state
        .conductor
        .update_port(&ident, ops, caller.user.clone())
        .await?;
    let base = base_url(&headers);
    Ok(Json(types::port_json(
        &port,
        None,
        &render(&base, version, &state),
    )))
}

pub async fn delete(
    State(state): State<AppState>,
    caller: super::auth::Caller,
    Path(ident): Path<String>,
) -> Result<StatusCode, ApiError> {
    check_port_ident(&ident)?;
    state
        .conductor
        .delete_port(&ident, caller.user.clone())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
