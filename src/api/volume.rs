//! `/v1/volume` (1.32+): volume connectors and targets, with the `noop`
//! storage interface (kept and shown, never acted on), and their listings
//! under `/v1/nodes/{uuid}/volume/`.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::{Extension, Json};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::error::ApiError;
use super::records::{self, Listing, Served, Spec};
use super::schema::{self, Prop, Ty, OBJ, STR};
use super::version::Version;
use super::{base_url, AppState, JsonBody, Params};
use crate::conductor::{PatchOp, VolumeChange};
use crate::model::{VolumeConnector, VolumeTarget};
use crate::store::RecordFilter;

const TOO_OLD: &str = "The API is not supported for this version";
/// Below 1.32 the connectors and targets are not routed at all.
const NOT_ROUTED: &str = "The resource could not be found.";

pub static CONNECTORS: Spec = Spec {
    path: "volume/connectors",
    collection: "connectors",
    min_version: 32,
    too_old: NOT_ROUTED,
    detail_from: 32,
    fields: &[
        ("uuid", 32),
        ("created_at", 32),
        ("updated_at", 32),
        ("connector_id", 32),
        ("extra", 32),
        ("type", 32),
        ("links", 32),
        ("node_uuid", 32),
    ],
    short: Some(&["uuid", "connector_id", "type", "links", "node_uuid"]),
    filters: &["node"],
    sortable: &["uuid", "type", "connector_id", "created_at", "updated_at"],
    no_sort: &["extra"],
    sublinks: &[],
    key: "uuid",
};

pub static TARGETS: Spec = Spec {
    path: "volume/targets",
    collection: "targets",
    min_version: 32,
    too_old: NOT_ROUTED,
    detail_from: 32,
    fields: &[
        ("uuid", 32),
        ("created_at", 32),
        ("updated_at", 32),
        ("boot_index", 32),
        ("extra", 32),
        ("properties", 32),
        ("volume_id", 32),
        ("volume_type", 32),
        ("links", 32),
        ("node_uuid", 32),
    ],
    short: Some(&[
        "uuid",
        "boot_index",
        "volume_id",
        "volume_type",
        "links",
        "node_uuid",
    ]),
    filters: &["node"],
    sortable: &[
        "uuid",
        "volume_type",
        "boot_index",
        "volume_id",
        "created_at",
        "updated_at",
    ],
    no_sort: &["extra", "properties"],
    sublinks: &[],
    key: "uuid",
};

fn node_filter(q: &HashMap<String, String>) -> Result<Listing, ApiError> {
    let node = q.get("node").cloned();
    if let Some(n) = &node {
        if n.parse::<Uuid>().is_err() && !super::allocations::is_logical_name(n) {
            return Err(ApiError::bad_request(format!(
                "Expected UUID or name for node: {n}"
            )));
        }
    }
    Ok(Listing {
        node,
        ..Default::default()
    })
}

/// What connectors and targets share: the API's rules for one kind.
pub trait VolumeRecord: Served {
    /// How Ironic's messages name the kind (`volume connector`).
    const WHAT: &'static str;
    /// How its schema errors name a body (`connector`).
    const ARG: &'static str;
    /// How its "Expected UUID" errors name the path value.
    const IDENT_ARG: &'static str;
    /// The body schema, with its required properties.
    const PROPS: &'static [Prop];
    const REQUIRED: &'static [&'static str];
    /// The fields a patch may change.
    const PATCHABLE: &'static [&'static str];
    /// Builds the record from a checked body.
    fn build(body: &Map<String, Value>, uuid: Uuid, node: Uuid, created_at: String) -> Self;
    fn node_uuid(&self) -> Uuid;
}

fn text(body: &Map<String, Value>, key: &str) -> String {
    body.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn object(body: &Map<String, Value>, key: &str) -> Map<String, Value> {
    body.get(key)
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

impl Served for VolumeConnector {
    const SPEC: &'static Spec = &CONNECTORS;

    fn filter(q: &HashMap<String, String>, _v: Version) -> Result<Listing, ApiError> {
        node_filter(q)
    }

    fn check_ident(ident: &str) -> Result<(), ApiError> {
        check_uuid::<Self>(ident)
    }
}

impl VolumeRecord for VolumeConnector {
    const WHAT: &'static str = "volume connector";
    const ARG: &'static str = "connector";
    const IDENT_ARG: &'static str = "connector_uuid";
    const PROPS: &'static [Prop] = &[
        Prop::new("connector_id", &[Ty::Str]),
        Prop::new("extra", OBJ),
        Prop::new("node_uuid", &[Ty::Str]),
        Prop::new("type", &[Ty::Str]),
        Prop::new("uuid", STR),
    ];
    const REQUIRED: &'static [&'static str] = &["connector_id", "node_uuid", "type"];
    const PATCHABLE: &'static [&'static str] = &["connector_id", "extra", "node_uuid", "type"];

    fn build(body: &Map<String, Value>, uuid: Uuid, node: Uuid, created_at: String) -> Self {
        VolumeConnector {
            uuid,
            created_at,
            updated_at: None,
            connector_id: text(body, "connector_id"),
            extra: object(body, "extra"),
            kind: text(body, "type"),
            node_uuid: node,
        }
    }

    fn node_uuid(&self) -> Uuid {
        self.node_uuid
    }
}

impl Served for VolumeTarget {
    const SPEC: &'static Spec = &TARGETS;

    fn filter(q: &HashMap<String, String>, _v: Version) -> Result<Listing, ApiError> {
        node_filter(q)
    }

    fn check_ident(ident: &str) -> Result<(), ApiError> {
        check_uuid::<Self>(ident)
    }

    fn api_doc(&self) -> Map<String, Value> {
        let mut doc = records::doc(self);
        if let Some(Value::Object(props)) = doc.get_mut("properties") {
            let masked = crate::redact::Masked {
                map: props,
                extra: &[],
            };
            if let Ok(Value::Object(m)) = serde_json::to_value(&masked) {
                *props = m;
            }
        }
        doc
    }
}

impl VolumeRecord for VolumeTarget {
    const WHAT: &'static str = "volume target";
    const ARG: &'static str = "target";
    const IDENT_ARG: &'static str = "target_uuid";
    const PROPS: &'static [Prop] = &[
        Prop::new("boot_index", &[Ty::Int]),
        Prop::new("extra", OBJ),
        Prop::new("node_uuid", &[Ty::Str]),
        Prop::new("properties", OBJ),
        Prop::new("uuid", STR),
        Prop::new("volume_id", &[Ty::Str]),
        Prop::new("volume_type", &[Ty::Str]),
    ];
    const REQUIRED: &'static [&'static str] =
        &["boot_index", "node_uuid", "volume_id", "volume_type"];
    const PATCHABLE: &'static [&'static str] = &[
        "boot_index",
        "extra",
        "node_uuid",
        "properties",
        "volume_id",
        "volume_type",
    ];

    fn build(body: &Map<String, Value>, uuid: Uuid, node: Uuid, created_at: String) -> Self {
        let boot_index = match body.get("boot_index") {
            Some(Value::Number(n)) => n
                .as_i64()
                .unwrap_or_else(|| n.as_f64().unwrap_or_default() as i64),
            _ => 0,
        };
        VolumeTarget {
            uuid,
            created_at,
            updated_at: None,
            boot_index,
            extra: object(body, "extra"),
            properties: object(body, "properties"),
            volume_id: text(body, "volume_id"),
            volume_type: text(body, "volume_type"),
            node_uuid: node,
        }
    }

    fn node_uuid(&self) -> Uuid {
        self.node_uuid
    }
}

fn check_uuid<T: VolumeRecord>(ident: &str) -> Result<(), ApiError> {
    ident
        .parse::<Uuid>()
        .map(drop)
        .map_err(|_| ApiError::bad_request(format!("Expected UUID for {}: {ident}", T::IDENT_ARG)))
}

/// The links of `/v1/volume` (or a node's `/v1/nodes/{ident}/volume`).
fn root_body(base: &str, prefix: &str) -> Value {
    let link = |tail: &str| {
        json!([
            {"href": format!("{base}/v1/{prefix}volume{tail}"), "rel": "self"},
            {"href": format!("{base}/{prefix}volume{tail}"), "rel": "bookmark"}
        ])
    };
    json!({
        "links": link("/"),
        "connectors": link("/connectors"),
        "targets": link("/targets"),
    })
}

/// `GET /v1/volume`.
pub async fn root(
    _c: super::auth::Caller,
    Extension(version): Extension<Version>,
    headers: HeaderMap,
    axum::extract::Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    if !version.at_least(32) {
        return Err(ApiError::not_found(TOO_OLD));
    }
    super::check_args(&q, &[])?;
    Ok(Json(root_body(&base_url(&headers), "")))
}

/// `GET /v1/nodes/{ident}/volume` (Ironic does not look the node up).
pub async fn node_root(
    _c: super::auth::Caller,
    Extension(version): Extension<Version>,
    headers: HeaderMap,
    Path(ident): Path<String>,
    axum::extract::Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    if !version.at_least(32) {
        return Err(ApiError::not_found(TOO_OLD));
    }
    super::check_args(&q, &[])?;
    super::nodes::check_ident(&ident)?;
    Ok(Json(root_body(
        &base_url(&headers),
        &format!("nodes/{ident}/"),
    )))
}

/// `GET /v1/nodes/{uuid}/volume/{connectors,targets}`: Ironic finds the
/// node by UUID only.
pub async fn node_list<T: VolumeRecord>(
    State(state): State<AppState>,
    _c: super::auth::Caller,
    Extension(version): Extension<Version>,
    headers: HeaderMap,
    Path(ident): Path<String>,
    axum::extract::Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    T::SPEC.check_version(version)?;
    let missing = || ApiError::not_found(format!("Node {ident} could not be found."));
    let uuid: Uuid = ident.parse().map_err(|_| missing())?;
    state
        .conductor
        .store()
        .call(move |s| s.get_node(&uuid.to_string()))
        .await
        .map_err(|_| missing())?;
    let scope = RecordFilter {
        node: Some(uuid),
        ..Default::default()
    };
    let path = format!("/v1/{}", T::SPEC.path);
    records::list_records::<T>(&state, version, &headers, &q, false, Some(scope), &path).await
}

/// Creating, changing or deleting through a node's path: Ironic refuses
/// them so.
pub async fn malformed() -> ApiError {
    ApiError::bad_request("Malformed request URI.")
}

fn parse_node_uuid(body: &Map<String, Value>) -> Result<Uuid, ApiError> {
    let v = text(body, "node_uuid");
    v.parse()
        .map_err(|_| ApiError::bad_request(format!("Expected UUID for node_uuid: {v}")))
}

pub async fn create<T: VolumeRecord>(
    State(state): State<AppState>,
    _c: super::auth::Caller,
    Extension(version): Extension<Version>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    T::SPEC.check_version(version)?;
    schema::check(Some(T::ARG), &body, T::PROPS, T::REQUIRED)?;
    let body = body.as_object().cloned().unwrap_or_default();
    let node = parse_node_uuid(&body)?;
    let uuid = records::body_uuid(&body)?.unwrap_or_else(Uuid::new_v4);
    let rec = T::build(&body, uuid, node, crate::model::now());
    let saved = rec.clone();
    state
        .conductor
        .store()
        .call(move |s| -> Result<(), ApiError> {
            s.get_node(&node.to_string()).map_err(|e| match e {
                crate::store::Error::NodeNotFound(_) => ApiError::bad_request(format!(
                    "Invalid input for field/attribute node_uuid. Value: '{node}'. "
                )),
                e => e.into(),
            })?;
            Ok(s.create_record(&saved)?)
        })
        .await?;
    tracing::info!(node = %node, uuid = %uuid, "{} created", T::WHAT);
    Ok(records::created(&rec, version, &headers, &state))
}

pub async fn patch<T: VolumeRecord>(
    State(state): State<AppState>,
    _c: super::auth::Caller,
    Extension(version): Extension<Version>,
    headers: HeaderMap,
    Path(ident): Path<String>,
    JsonBody(ops): JsonBody<Vec<PatchOp>>,
) -> Result<Json<Value>, ApiError> {
    T::SPEC.check_version(version)?;
    T::check_ident(&ident)?;
    let old = records::fetch::<T>(&state, ident).await?;
    let mut node = old.node_uuid();
    if let Some(op) = ops
        .iter()
        .find(|o| o.top() == "node_uuid" && o.op != "remove")
    {
        let v = op.value.clone().unwrap_or(Value::Null);
        let shown = v.as_str().map_or_else(|| v.to_string(), str::to_string);
        let wanted: Uuid = shown.parse().map_err(|_| {
            ApiError::bad_request(format!(
                "Expected a UUID for node_uuid, but received {shown}."
            ))
        })?;
        let found = state
            .conductor
            .store()
            .call(move |s| s.get_node(&wanted.to_string()))
            .await;
        if found.is_err() {
            return Err(ApiError::bad_request(format!(
                "Unable to apply the requested node_uuid '{shown}'. Requested value was invalid."
            )));
        }
        node = wanted;
    }
    let mut doc = records::patched_doc(&old, &ops, T::PATCHABLE)?;
    // Ironic keeps the node whatever a `remove` said, and checks the
    // patched record without the fields it keeps itself.
    doc.insert("node_uuid".into(), Value::String(node.to_string()));
    for f in ["created_at", "updated_at"] {
        doc.remove(f);
    }
    schema::check_map(Some("patch"), &doc, T::PROPS, T::REQUIRED)?;
    let mut new = T::build(&doc, old.uuid(), node, old_created(&old));
    if new.api_doc() != old.api_doc() || records::doc(&new) != records::doc(&old) {
        set_updated(&mut new)?;
    } else {
        new = old.clone();
    }
    state
        .conductor
        .change_volume_record(
            node,
            T::WHAT,
            VolumeChange::Update {
                old: old.clone(),
                new: new.clone(),
            },
        )
        .await?;
    Ok(records::shown(&new, version, &headers, &state))
}

fn old_created<T: VolumeRecord>(old: &T) -> String {
    records::doc(old)
        .get("created_at")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Stamps `updated_at` through the record's serde form.
fn set_updated<T: VolumeRecord>(rec: &mut T) -> Result<(), ApiError> {
    let mut doc = records::doc(rec);
    doc.insert("updated_at".into(), Value::String(crate::model::now()));
    *rec = serde_json::from_value(Value::Object(doc))
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(())
}

pub async fn delete<T: VolumeRecord>(
    State(state): State<AppState>,
    _c: super::auth::Caller,
    Extension(version): Extension<Version>,
    Path(ident): Path<String>,
) -> Result<StatusCode, ApiError> {
    T::SPEC.check_version(version)?;
    T::check_ident(&ident)?;
    let rec = records::fetch::<T>(&state, ident).await?;
    state
        .conductor
        .change_volume_record::<T>(rec.node_uuid(), T::WHAT, VolumeChange::Delete(rec.clone()))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
