//! `/v1/portgroups` (1.23+), `/v1/nodes/{ident}/portgroups` and
//! `/v1/portgroups/{ident}/ports` (1.24+).

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::{Extension, Json};
use serde_json::Value;
use uuid::Uuid;

use super::error::ApiError;
use super::records::{self, Listing, Served, Spec};
use super::schema::{self, Prop, Ty, OBJ, STR};
use super::version::Version;
use super::{AppState, JsonBody, Params};
use crate::conductor::PatchOp;
use crate::model::input::parse_bool;
use crate::model::{portgroup, Mac, Portgroup};
use crate::store::{PortFilter, RecordFilter};

pub static SPEC: Spec = Spec {
    path: "portgroups",
    collection: "portgroups",
    min_version: 23,
    too_old: "The API is not supported for this version",
    detail_from: 43,
    fields: &[
        ("uuid", 23),
        ("created_at", 23),
        ("updated_at", 23),
        ("address", 23),
        ("extra", 23),
        ("internal_info", 23),
        ("mode", 26),
        ("name", 23),
        ("properties", 26),
        ("standalone_ports_supported", 23),
        ("node_uuid", 23),
        ("physical_network", 102),
        ("category", 103),
        ("dynamic_portgroup", 111),
        ("links", 23),
        ("ports", 23),
    ],
    short: Some(&["uuid", "address", "name", "links"]),
    filters: &["node", "address", "shard", "conductor_groups"],
    sortable: &[
        "uuid",
        "address",
        "name",
        "mode",
        "standalone_ports_supported",
        "node_uuid",
        "physical_network",
        "category",
        "created_at",
        "updated_at",
    ],
    no_sort: &["extra", "internal_info", "properties"],
    sublinks: &[("ports", false)],
    key: "uuid",
};

impl Served for Portgroup {
    const SPEC: &'static Spec = &SPEC;

    fn filter(q: &HashMap<String, String>, version: Version) -> Result<Listing, ApiError> {
        if q.contains_key("shard") && !version.at_least(82) {
            return Err(ApiError::not_acceptable(
                "Request not acceptable. The minimal required API version should be 1.82 for this operation.",
            ));
        }
        let given = ["node", "address", "shard", "conductor_groups"]
            .iter()
            .filter(|k| q.contains_key(**k))
            .count();
        if given > 1 {
            return Err(ApiError::bad_request(
                "Filtering by node, address, or shard simultaneously is not supported.",
            ));
        }
        let mut l = Listing {
            node: q.get("node").cloned(),
            ..Default::default()
        };
        if let Some(a) = q.get("address") {
            l.filter.fields.push(("address", Value::String(a.clone())));
        }
        l.filter.node_shards = super::string_list(q.get("shard"));
        l.filter.node_conductor_groups = super::string_list(q.get("conductor_groups"));
        Ok(l)
    }
}

fn bool_field(name: &str, v: &Value) -> Result<bool, ApiError> {
    parse_bool(name, v).map_err(|_| {
        ApiError::bad_request(format!(
            "Invalid {name}: Unrecognized value {}, acceptable values are: '0', '1', 'f', 'false', 'n', 'no', 'off', 'on', 't', 'true', 'y', 'yes'",
            schema::py_repr(v)
        ))
    })
}

const BOOL_OR_STR: &[Ty] = &[Ty::Str, Ty::Bool, Ty::Null];

fn props() -> [Prop; 10] {
    [
        Prop::new("node_uuid", &[Ty::Str]),
        Prop::new("address", STR),
        Prop::new("category", STR).max(80),
        Prop::new("extra", OBJ),
        Prop::new("mode", STR),
        Prop::new("name", STR),
        Prop::new("physical_network", STR).max(64),
        Prop::new("properties", OBJ),
        Prop::new("standalone_ports_supported", BOOL_OR_STR),
        Prop::new("uuid", STR),
    ]
}

fn normal_mac(a: &str) -> Result<String, ApiError> {
    a.parse::<Mac>()
        .map(|m| m.to_string())
        .map_err(|_| ApiError::bad_request(format!("Expected valid MAC address for address: {a}")))
}

fn needs_26(version: Version, body: &serde_json::Map<String, Value>) -> Result<(), ApiError> {
    if !version.at_least(26) && (body.contains_key("mode") || body.contains_key("properties")) {
        return Err(ApiError::not_acceptable("Request not acceptable."));
    }
    Ok(())
}

pub async fn create(
    State(state): State<AppState>,
    _c: super::auth::Caller,
    Extension(version): Extension<Version>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    SPEC.check_version(version)?;
    schema::check(Some("portgroup"), &body, &props(), &["node_uuid"])?;
    let Value::Object(body) = body else {
        return Err(ApiError::bad_request("Expected a JSON object"));
    };
    needs_26(version, &body)?;
    let s = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
    let obj = |k: &str| {
        body.get(k)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let node = s("node_uuid").unwrap_or_default();
    let node_uuid: Uuid = node
        .parse()
        .map_err(|_| ApiError::bad_request(format!("Expected UUID for node_uuid: {node}")))?;
    let uuid = match s("uuid") {
        None => Uuid::new_v4(),
        Some(u) => u
            .parse()
            .map_err(|_| ApiError::bad_request(format!("Expected UUID for uuid: {u}")))?,
    };
    let name = s("name");
    if let Some(n) = &name {
        if !super::allocations::is_logical_name(n) {
            return Err(ApiError::bad_request(format!(
                "Cannot create portgroup with invalid name '{n}'"
            )));
        }
    }
    let standalone = match body.get("standalone_ports_supported") {
        None | Some(Value::Null) => true,
        Some(v) => bool_field("standalone_ports_supported", v)?,
    };
    let pg = Portgroup {
        uuid,
        created_at: crate::model::now(),
        updated_at: None,
        address: s("address").map(|a| normal_mac(&a)).transpose()?,
        extra: obj("extra"),
        internal_info: Default::default(),
        mode: s("mode")
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| portgroup::DEFAULT_MODE.into()),
        name,
        properties: obj("properties"),
        standalone_ports_supported: standalone,
        node_uuid,
        physical_network: s("physical_network"),
        category: s("category"),
        dynamic_portgroup: false,
    };
    let saved = pg.clone();
    state
        .conductor
        .store()
        .call(move |s| -> Result<(), ApiError> {
            s.get_node(&node_uuid.to_string())
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
            Ok(s.create_record(&saved)?)
        })
        .await?;
    tracing::info!(portgroup = %pg.uuid, node = %pg.node_uuid, "port group created");
    Ok(records::created(&pg, version, &headers, &state))
}

const PATCHABLE: &[&str] = &[
    "address",
    "extra",
    "mode",
    "name",
    "node_uuid",
    "properties",
    "standalone_ports_supported",
    "physical_network",
    "category",
];

pub async fn patch(
    State(state): State<AppState>,
    _c: super::auth::Caller,
    Extension(version): Extension<Version>,
    headers: HeaderMap,
    Path(ident): Path<String>,
    JsonBody(ops): JsonBody<Vec<PatchOp>>,
) -> Result<Json<Value>, ApiError> {
    SPEC.check_version(version)?;
    let old = records::fetch::<Portgroup>(&state, ident.clone()).await?;
    if !version.at_least(26) && ops.iter().any(|o| matches!(o.top(), "mode" | "properties")) {
        return Err(ApiError::not_acceptable("Request not acceptable."));
    }
    if ops.iter().any(|o| o.op == "remove" && o.path == "/mode") {
        return Err(ApiError::bad_request(
            "'mode' is a mandatory attribute and can not be removed",
        ));
    }
    // Normalise before reading back: the MAC as stored, the flag as a bool.
    let mut ops = ops;
    for o in ops.iter_mut() {
        match (o.top(), &o.value) {
            ("address", Some(Value::String(a))) => o.value = Some(Value::String(normal_mac(a)?)),
            ("standalone_ports_supported", Some(v)) if !v.is_null() => {
                o.value = Some(Value::Bool(bool_field("standalone_ports_supported", v)?))
            }
            ("standalone_ports_supported", Some(Value::Null)) => o.value = Some(Value::Bool(true)),
            _ => {}
        }
        if o.op == "remove" && o.path == "/standalone_ports_supported" {
            o.op = "replace".into();
            o.value = Some(Value::Bool(true));
        }
    }
    let (mut new, _) = records::apply_patch(&old, &ops, PATCHABLE)?;
    if let Some(n) = &new.name {
        if !super::allocations::is_logical_name(n) {
            return Err(ApiError::bad_request(format!(
                "Portgroup {ident}: Cannot change name to invalid name '{n}'"
            )));
        }
    }
    new.updated_at = Some(crate::model::now());
    let saved = new.clone();
    state.conductor.update_portgroup(old, saved).await?;
    Ok(records::shown(&new, version, &headers, &state))
}

pub async fn delete(
    State(state): State<AppState>,
    _c: super::auth::Caller,
    Extension(version): Extension<Version>,
    Path(ident): Path<String>,
) -> Result<StatusCode, ApiError> {
    SPEC.check_version(version)?;
    state
        .conductor
        .store()
        .call(move |s| -> Result<(), ApiError> {
            let pg: Portgroup = s.get_record(&ident)?;
            let members = s.list_ports(
                &PortFilter {
                    portgroup_uuid: Some(pg.uuid),
                    ..Default::default()
                },
                crate::store::Page {
                    limit: 1,
                    ..crate::store::Page::ALL
                },
            )?;
            if !members.is_empty() {
                return Err(ApiError::bad_request(format!(
                    "Cannot complete the requested action because portgroup {} contains ports.",
                    pg.uuid
                )));
            }
            Ok(s.delete_record::<Portgroup>(pg.uuid)?)
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

fn sub_version(version: Version) -> Result<(), ApiError> {
    if version.at_least(24) {
        Ok(())
    } else {
        Err(ApiError::not_found("The resource could not be found."))
    }
}

async fn of_node(
    state: AppState,
    version: Version,
    headers: HeaderMap,
    ident: String,
    q: HashMap<String, String>,
    detail: bool,
) -> Result<Json<Value>, ApiError> {
    sub_version(version)?;
    super::nodes::check_ident(&ident)?;
    if q.contains_key("node") || q.contains_key("address") {
        return Err(ApiError::bad_request(
            "Filtering by node, address, or shard simultaneously is not supported.",
        ));
    }
    let lookup = ident.clone();
    let node = state
        .conductor
        .store()
        .call(move |s| s.get_node(&lookup))
        .await?;
    let scope = RecordFilter {
        node: Some(node.uuid),
        ..Default::default()
    };
    let path = if detail {
        format!("/v1/nodes/{ident}/portgroups/detail")
    } else {
        format!("/v1/nodes/{ident}/portgroups")
    };
    records::list_records::<Portgroup>(&state, version, &headers, &q, detail, Some(scope), &path)
        .await
}

/// `GET /v1/nodes/{ident}/portgroups`.
pub async fn node_list(
    State(state): State<AppState>,
    _c: super::auth::Caller,
    Extension(version): Extension<Version>,
    headers: HeaderMap,
    Path(ident): Path<String>,
    axum::extract::Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    of_node(state, version, headers, ident, q, false).await
}

/// `GET /v1/nodes/{ident}/portgroups/detail`.
pub async fn node_list_detail(
    State(state): State<AppState>,
    _c: super::auth::Caller,
    Extension(version): Extension<Version>,
    headers: HeaderMap,
    Path(ident): Path<String>,
    axum::extract::Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    of_node(state, version, headers, ident, q, true).await
}

async fn ports_of(
    state: AppState,
    version: Version,
    headers: HeaderMap,
    ident: String,
    q: HashMap<String, String>,
    detail: bool,
) -> Result<Json<Value>, ApiError> {
    sub_version(version)?;
    if q.contains_key("node") || q.contains_key("node_uuid") {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "Operation not permitted.",
        ));
    }
    let pg = records::fetch::<Portgroup>(&state, ident.clone()).await?;
    let path = if detail {
        format!("/v1/portgroups/{ident}/ports/detail")
    } else {
        format!("/v1/portgroups/{ident}/ports")
    };
    super::ports::list_inner(
        state,
        version,
        headers,
        q,
        super::ports::Scope {
            node: None,
            portgroup: Some(pg.uuid.to_string()),
        },
        detail,
        path,
    )
    .await
}

/// `GET /v1/portgroups/{ident}/ports`.
pub async fn ports(
    State(state): State<AppState>,
    _c: super::auth::Caller,
    Extension(version): Extension<Version>,
    headers: HeaderMap,
    Path(ident): Path<String>,
    axum::extract::Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    ports_of(state, version, headers, ident, q, false).await
}

/// `GET /v1/portgroups/{ident}/ports/detail`.
pub async fn ports_detail(
    State(state): State<AppState>,
    _c: super::auth::Caller,
    Extension(version): Extension<Version>,
    headers: HeaderMap,
    Path(ident): Path<String>,
    axum::extract::Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    ports_of(state, version, headers, ident, q, true).await
}
