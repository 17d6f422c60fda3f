//! What the resources beside nodes and ports share: each is described by
//! a [`Spec`] (its path, microversions, fields, listing form, filters and
//! sort keys), rendered from its serde form in Ironic's field order, and
//! listed, shown and paged by the generic handlers here. Creation, patches
//! and deletion are each resource's own (their rules differ).

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{Map, Value};

use super::error::ApiError;
use super::types::Render;
use super::version::Version;
use super::{base_url, next_link, render, AppState, Params};
use crate::conductor::PatchOp;
use crate::store::{Record, RecordFilter};

/// How the API serves one kind of record.
pub struct Spec {
    /// The path under `/v1/` (`allocations`, `volume/connectors`).
    pub path: &'static str,
    /// The key of a listing's array (`allocations`, `connectors`).
    pub collection: &'static str,
    /// Below this microversion the resource does not exist (404).
    pub min_version: u32,
    /// The 404 message below `min_version`.
    pub too_old: &'static str,
    /// The microversion a listing's `detail` parameter is allowed from.
    pub detail_from: u32,
    /// Every field of the full object in Ironic's order, with the
    /// microversion it appears at. `links` and [`Spec::sublinks`] are made
    /// here; every other field is read from the record's serde form.
    pub fields: &'static [(&'static str, u32)],
    /// The fields of the short listing form; `None`: listings show full
    /// objects and there is no `detail`.
    pub short: Option<&'static [&'static str]>,
    /// Query parameters a listing filters by.
    pub filters: &'static [&'static str],
    /// Fields a listing sorts by (besides `id`).
    pub sortable: &'static [&'static str],
    /// Fields Ironic refuses to sort by, with its own message.
    pub no_sort: &'static [&'static str],
    /// Link fields to `{path}/{uuid}/{name}`; `true`: wrapped in one more
    /// list (Ironic's chassis `nodes` quirk).
    pub sublinks: &'static [(&'static str, bool)],
    /// The field a link and a marker name a record by (`uuid`; a
    /// conductor's `hostname`).
    pub key: &'static str,
}

impl Spec {
    pub fn check_version(&self, version: Version) -> Result<(), ApiError> {
        if version.at_least(self.min_version) {
            Ok(())
        } else {
            Err(ApiError::not_found(self.too_old))
        }
    }

    /// Refuses a write below `min_version` as Ironic does: 405 with the
    /// message reads get with their 404.
    pub fn writable(&self, version: Version) -> Result<(), ApiError> {
        if version.at_least(self.min_version) {
            Ok(())
        } else {
            Err(ApiError::new(StatusCode::METHOD_NOT_ALLOWED, self.too_old))
        }
    }

    fn field_version(&self, field: &str) -> Option<u32> {
        self.fields
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, v)| *v)
    }

    /// Parses `fields=` against the fields this version shows.
    pub fn parse_fields(
        &self,
        q: &HashMap<String, String>,
        version: Version,
    ) -> Result<Option<Vec<String>>, ApiError> {
        super::parse_fields(q, version, |f, v| {
            self.field_version(f).is_some_and(|m| v.at_least(m))
        })
    }

    /// Renders a record's serde form (`doc`) with `fields` (all when `None`).
    pub fn render(&self, doc: &Map<String, Value>, fields: Option<&[String]>, r: &Render) -> Value {
        let key = doc
            .get(self.key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let link = |sub: &str| {
            let tail = if sub.is_empty() {
                String::new()
            } else {
                format!("/{sub}")
            };
            serde_json::json!([
                {"href": format!("{}/v1/{}/{key}{tail}", r.base, self.path), "rel": "self"},
                {"href": format!("{}/{}/{key}{tail}", r.base, self.path), "rel": "bookmark"}
            ])
        };
        let mut out = Map::new();
        for (name, min) in self.fields {
            if let Some(list) = fields {
                // Ironic adds the links to any field selection.
                if *name != "links" && !list.iter().any(|f| f == name) {
                    continue;
                }
            } else if !r.version.at_least(*min) {
                continue;
            }
            let v = if *name == "links" {
                link("")
            } else if let Some((_, wrapped)) = self.sublinks.iter().find(|(s, _)| s == name) {
                let l = link(name);
                if *wrapped {
                    Value::Array(vec![l])
                } else {
                    l
                }
            } else {
                doc.get(*name).cloned().unwrap_or(Value::Null)
            };
            out.insert(name.to_string(), v);
        }
        Value::Object(out)
    }

    /// Checks the query of a listing (`detail`: the `/detail` path).
    pub fn check_list_args(
        &self,
        q: &HashMap<String, String>,
        detail: bool,
    ) -> Result<(), ApiError> {
        const PAGING: &[&str] = &["marker", "limit", "sort_key", "sort_dir"];
        let extra: &[&str] = match (detail, self.short.is_some()) {
            (true, _) => &[],
            (false, true) => super::args::LIST_ONLY,
            (false, false) => super::args::SHOW,
        };
        super::check_args(q, &[PAGING, self.filters, extra])?;
        if let Some(key) = q.get("sort_key") {
            if self.no_sort.contains(&key.as_str()) {
                return Err(ApiError::bad_request(format!(
                    "The sort_key value {key} is an invalid field for sorting"
                )));
            }
        }
        Ok(())
    }
}

/// A record type the API serves.
pub trait Served: Record + Clone {
    const SPEC: &'static Spec;

    /// The listing filter from the query; a `node` to resolve goes in
    /// [`Listing::node`].
    fn filter(q: &HashMap<String, String>, version: Version) -> Result<Listing, ApiError> {
        let _ = (q, version);
        Ok(Listing::default())
    }

    /// How a missing node named by a listing's filter is answered (Ironic
    /// answers 400 for some resources, 404 for others).
    const NODE_FILTER_MISSING: StatusCode = StatusCode::NOT_FOUND;

    /// The record's fields as the API shows them (its serde form, by
    /// default; a resource with secrets masks them here).
    fn api_doc(&self) -> Map<String, Value> {
        doc(self)
    }

    /// Refuses an ident the resource can never have (before any lookup).
    fn check_ident(ident: &str) -> Result<(), ApiError> {
        let _ = ident;
        Ok(())
    }
}

/// A listing's filter before the node ident is resolved.
#[derive(Debug, Default)]
pub struct Listing {
    pub filter: RecordFilter,
    pub node: Option<String>,
}

/// A record's serde form as a map.
pub fn doc<T: Record>(rec: &T) -> Map<String, Value> {
    match serde_json::to_value(rec) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

/// Renders one record for the API.
pub fn to_json<T: Served>(rec: &T, fields: Option<&[String]>, r: &Render) -> Value {
    T::SPEC.render(&rec.api_doc(), fields, r)
}

/// Lists records of `T`, scoped to `node` when given (`/v1/nodes/{id}/…`).
pub async fn list_records<T: Served>(
    state: &AppState,
    version: Version,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
    detail_path: bool,
    scope: Option<crate::store::RecordFilter>,
    path: &str,
) -> Result<Json<Value>, ApiError> {
    let spec = T::SPEC;
    spec.check_version(version)?;
    spec.check_list_args(q, detail_path)?;
    let detail = detail_path || super::query_bool(q, "detail")?.unwrap_or(false);
    if q.contains_key("detail") && !version.at_least(spec.detail_from) {
        return Err(ApiError::bad_request(format!(
            "Invalid query parameter ?detail={} received.",
            if detail { "True" } else { "False" }
        )));
    }
    let fields = spec.parse_fields(q, version)?;
    if detail && fields.is_some() {
        return Err(ApiError::bad_request(
            "Can not specify ?detail=True and fields in the same request.",
        ));
    }
    let page = super::parse_page(q, state, spec.sortable)?;
    let mut listing = T::filter(q, version)?;
    if let Some(scope) = scope {
        listing.filter.node = scope.node;
        listing.node = None;
    }
    let node = listing.node.take();
    let mut filter = listing.filter;
    let records = state
        .conductor
        .store()
        .call(move |s| -> Result<Vec<T>, ApiError> {
            if let Some(ident) = node {
                let n = s.get_node(&ident).map_err(|e| match e {
                    crate::store::Error::NodeNotFound(_) => {
                        ApiError::new(T::NODE_FILTER_MISSING, e.to_string())
                    }
                    e => e.into(),
                })?;
                filter.node = Some(n.uuid);
            }
            Ok(s.list_records::<T>(&filter, page)?)
        })
        .await?;
    let base = base_url(headers);
    let r = render(&base, version, state);
    let short: Option<Vec<String>> = match (spec.short, detail) {
        (Some(s), false) => Some(s.iter().map(|f| f.to_string()).collect()),
        _ => None,
    };
    let shown = fields.as_deref().or(short.as_deref());
    let list: Vec<Value> = records.iter().map(|rec| to_json(rec, shown, &r)).collect();
    let mut body = Map::new();
    body.insert(spec.collection.into(), Value::Array(list));
    if records.len() == page.limit {
        if let Some(last) = records.last() {
            body.insert(
                "next".into(),
                Value::String(next_link(
                    &base,
                    path,
                    q,
                    page.limit,
                    &last.uuid().to_string(),
                )),
            );
        }
    }
    Ok(Json(Value::Object(body)))
}

pub async fn list<T: Served>(
    State(state): State<AppState>,
    _c: super::auth::Caller,
    Extension(version): Extension<Version>,
    headers: HeaderMap,
    axum::extract::Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    let path = format!("/v1/{}", T::SPEC.path);
    list_records::<T>(&state, version, &headers, &q, false, None, &path).await
}

pub async fn list_detail<T: Served>(
    State(state): State<AppState>,
    _c: super::auth::Caller,
    Extension(version): Extension<Version>,
    headers: HeaderMap,
    axum::extract::Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    if T::SPEC.short.is_none() {
        T::SPEC.check_version(version)?;
        return Err(ApiError::not_found(format!(
            "{} detail could not be found.",
            T::KIND.label()
        )));
    }
    let path = format!("/v1/{}/detail", T::SPEC.path);
    list_records::<T>(&state, version, &headers, &q, true, None, &path).await
}

/// Finds a record by UUID (or name, for kinds that have names).
pub async fn fetch<T: Served>(state: &AppState, ident: String) -> Result<T, ApiError> {
    Ok(state
        .conductor
        .store()
        .call(move |s| s.get_record::<T>(&ident))
        .await?)
}

pub async fn show<T: Served>(
    State(state): State<AppState>,
    _c: super::auth::Caller,
    Extension(version): Extension<Version>,
    headers: HeaderMap,
    Path(ident): Path<String>,
    axum::extract::Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    T::SPEC.check_version(version)?;
    T::check_ident(&ident)?;
    super::check_args(&q, &[super::args::SHOW])?;
    let fields = T::SPEC.parse_fields(&q, version)?;
    let rec = fetch::<T>(&state, ident).await?;
    let base = base_url(&headers);
    Ok(Json(to_json(
        &rec,
        fields.as_deref(),
        &render(&base, version, &state),
    )))
}

/// A 201 with the record and its `Location`.
pub fn created<T: Served>(
    rec: &T,
    version: Version,
    headers: &HeaderMap,
    state: &AppState,
) -> Response {
    let base = base_url(headers);
    let body = to_json(rec, None, &render(&base, version, state));
    let mut resp = (StatusCode::CREATED, Json(body)).into_response();
    if let Ok(v) = format!("{base}/v1/{}/{}", T::SPEC.path, rec.uuid()).parse() {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// The `uuid` a create body asks for, if it gives one (an empty string
/// counts as none).
pub fn body_uuid(body: &Map<String, Value>) -> Result<Option<uuid::Uuid>, ApiError> {
    match body.get("uuid").and_then(Value::as_str) {
        None | Some("") => Ok(None),
        Some(u) => u
            .parse()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("Expected UUID for uuid: {u}"))),
    }
}

/// Stores a new record and answers 201 with it.
pub async fn insert<T: Served>(
    state: &AppState,
    rec: T,
    version: Version,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let resp = created(&rec, version, headers, state);
    let uuid = rec.uuid();
    state
        .conductor
        .store()
        .call(move |s| s.create_record(&rec))
        .await?;
    tracing::info!(%uuid, "{} created", T::KIND.label().to_lowercase());
    Ok(resp)
}

/// Deletes the record `ident` names; 204.
pub async fn remove<T: Served>(state: &AppState, ident: String) -> Result<StatusCode, ApiError> {
    let rec = fetch::<T>(state, ident).await?;
    let uuid = rec.uuid();
    state
        .conductor
        .store()
        .call(move |s| s.delete_record::<T>(uuid))
        .await?;
    tracing::info!(%uuid, "{} deleted", T::KIND.label().to_lowercase());
    Ok(StatusCode::NO_CONTENT)
}

/// A 200 with the record.
pub fn shown<T: Served>(
    rec: &T,
    version: Version,
    headers: &HeaderMap,
    state: &AppState,
) -> Json<Value> {
    let base = base_url(headers);
    Json(to_json(rec, None, &render(&base, version, state)))
}

/// Writes a changed record and answers 200 with it.
pub async fn save_and_show<T: Served>(
    state: &AppState,
    rec: T,
    version: Version,
    headers: &HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let body = shown(&rec, version, headers, state);
    state
        .conductor
        .store()
        .call(move |s| s.save_record(&rec))
        .await?;
    Ok(body)
}

/// Applies a JSON patch to a record's serde form, allowing only the
/// top-level fields in `allowed` (Ironic's `patch_validate_allowed_fields`
/// and `apply_jsonpatch`), and reads the record back.
pub fn apply_patch<T: Served>(
    old: &T,
    ops: &[PatchOp],
    allowed: &[&str],
) -> Result<(T, Map<String, Value>), ApiError> {
    let map = patched_doc(old, ops, allowed)?;
    let rec: T = serde_json::from_value(Value::Object(map.clone())).map_err(|e| {
        ApiError::bad_request(format!(
            "Schema error for patch: {}",
            e.to_string().split(" at line ").next().unwrap_or_default()
        ))
    })?;
    Ok((rec, map))
}

/// [`apply_patch`] without reading the record back: the patched serde
/// form, for resources that check it before reading it.
pub fn patched_doc<T: Served>(
    old: &T,
    ops: &[PatchOp],
    allowed: &[&str],
) -> Result<Map<String, Value>, ApiError> {
    if ops.is_empty() {
        return Err(ApiError::bad_request(
            "The patch is empty: send a JSON list of operations",
        ));
    }
    let mut doc = Value::Object(doc(old));
    for op in ops {
        if !matches!(op.op.as_str(), "add" | "replace" | "remove") {
            return Err(super::schema::error(
                None,
                format!("'{}' is not one of ['add', 'replace', 'remove']", op.op),
            ));
        }
        let top = op.top().replace("~1", "/").replace("~0", "~");
        if !allowed.contains(&top.as_str()) {
            return Err(ApiError::bad_request(format!(
                "Cannot patch {}. Only the following can be updated: {}",
                op.path,
                allowed.join(", ")
            )));
        }
        if op.op != "remove" && op.value.is_none() {
            return Err(ApiError::bad_request(format!(
                "Patch operation {} on {} needs a value",
                op.op, op.path
            )));
        }
        let is_root = op.path.matches('/').count() == 1;
        if op.op == "remove" && is_root {
            // Removing a root field resets it: null, or {} for objects.
            let reset = match doc.get(&top) {
                Some(Value::Object(_)) => Value::Object(Map::new()),
                Some(Value::Array(_)) => Value::Array(Vec::new()),
                _ => Value::Null,
            };
            doc[top.as_str()] = reset;
            continue;
        }
        let one = serde_json::json!([{
            "op": op.op,
            "path": op.path,
            "value": op.value.clone().unwrap_or(Value::Null),
        }]);
        let patch: json_patch::Patch = serde_json::from_value(one)
            .map_err(|e| ApiError::bad_request(format!("Invalid patch: {e}")))?;
        json_patch::patch(&mut doc, &patch).map_err(|e| {
            ApiError::bad_request(format!(
                "Couldn't apply patch '{}'. Reason: {e}",
                super::schema::py_repr(&serde_json::json!({"op": op.op, "path": op.path}))
            ))
        })?;
    }
    let Value::Object(map) = doc else {
        return Err(ApiError::bad_request("The patch replaced the whole object"));
    };
    Ok(map)
}
