//! `/v1/runbooks` (1.92+) and `/v1/runbooks/{ident}/traits` (1.112+):
//! named lists of clean or service steps, and the node traits that approve
//! a runbook for a node.

use std::collections::HashMap;

use axum::body::Bytes;
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
use super::{AppState, JsonBody, Params};
use crate::conductor::PatchOp;
use crate::model::template::Runbook;

const TOO_OLD: &str = "The API version does not allow runbooks";

pub static SPEC: Spec = Spec {
    path: "runbooks",
    collection: "runbooks",
    min_version: 92,
    too_old: TOO_OLD,
    detail_from: 92,
    fields: &[
        ("uuid", 92),
        ("created_at", 92),
        ("updated_at", 92),
        ("name", 92),
        ("extra", 92),
        ("public", 92),
        ("owner", 92),
        ("disable_ramdisk", 92),
        ("description", 112),
        ("links", 92),
        ("steps", 92),
        ("traits", 112),
    ],
    short: Some(&["uuid", "name", "links"]),
    filters: &["project"],
    sortable: &[
        "uuid",
        "name",
        "description",
        "public",
        "owner",
        "disable_ramdisk",
        "created_at",
        "updated_at",
    ],
    no_sort: &["extra", "steps", "traits"],
    sublinks: &[],
    key: "uuid",
};

impl Served for Runbook {
    const SPEC: &'static Spec = &SPEC;

    /// `project`: the runbooks that project may use (its own and the
    /// public ones).
    fn filter(q: &HashMap<String, String>, _v: Version) -> Result<Listing, ApiError> {
        let mut l = Listing::default();
        if let Some(p) = q.get("project") {
            l.filter.any_of = vec![
                ("owner", Value::String(p.clone())),
                ("public", Value::Bool(true)),
            ];
        }
        Ok(l)
    }

    fn api_doc(&self) -> Map<String, Value> {
        super::templates::masked_steps(records::doc(self))
    }
}

/// The body schema at `version` (names are traits before 1.112, any
/// logical name from it; `description` from 1.112).
fn props(version: Version) -> &'static [Prop] {
    const P: &[Prop] = &[
        Prop::new("uuid", STR),
        Prop::new("name", &[Ty::Str]),
        Prop::new("steps", &[Ty::Arr]),
        Prop::new("disable_ramdisk", &[Ty::Bool, Ty::Null]),
        Prop::new("extra", OBJ),
        Prop::new("public", &[Ty::Bool, Ty::Null]),
        Prop::new("owner", STR).max(255),
        Prop::new("description", STR).max(255),
    ];
    if version.at_least(112) {
        P
    } else {
        &P[..P.len() - 1]
    }
}

fn check_name(of: &str, name: &Value, traits_only: bool) -> Result<(), ApiError> {
    let bad = if traits_only {
        schema::trait_error(name)
    } else {
        let s = name.as_str().unwrap_or_default();
        if s.is_empty() {
            Some("'' should be non-empty".to_string())
        } else if s.chars().count() > 255 {
            Some(format!("{} is too long", schema::py_repr(name)))
        } else if !super::allocations::is_logical_name(s) {
            Some(format!(
                "{} does not match '^[A-Za-z0-9\\\\-._~]+$'",
                schema::py_repr(name)
            ))
        } else {
            None
        }
    };
    match bad {
        Some(b) => Err(schema::error(
            Some(of),
            format!("{b} (the value of 'name')"),
        )),
        None => Ok(()),
    }
}

/// Checks a body or patched runbook and writes what it sets into `rb`.
fn apply_checked(
    of: &str,
    body: &Map<String, Value>,
    version: Version,
    traits_only: bool,
    rb: &mut Runbook,
) -> Result<(), ApiError> {
    schema::check_map(Some(of), body, props(version), &["steps", "name"])?;
    check_name(of, &body["name"], traits_only)?;
    let steps = schema::check_steps(Some(of), &body["steps"], "order")?;
    super::templates::refuse_duplicate_steps(&steps)?;
    let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
    let flag = |k: &str| body.get(k).and_then(Value::as_bool).unwrap_or(false);
    rb.name = text("name").unwrap_or_default();
    rb.steps = steps;
    rb.extra = body
        .get("extra")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    rb.public = flag("public");
    rb.disable_ramdisk = flag("disable_ramdisk");
    rb.owner = text("owner");
    rb.description = text("description");
    Ok(())
}

pub async fn create(
    State(state): State<AppState>,
    _c: super::auth::Caller,
    Extension(version): Extension<Version>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    SPEC.writable(version)?;
    let body = schema::object_body(Some("runbook"), body)?;
    let mut rb = Runbook {
        uuid: Uuid::nil(),
        created_at: crate::model::now(),
        updated_at: None,
        name: String::new(),
        extra: Map::new(),
        public: false,
        owner: None,
        disable_ramdisk: false,
        description: None,
        steps: Vec::new(),
        traits: Vec::new(),
    };
    apply_checked("runbook", &body, version, !version.at_least(112), &mut rb)?;
    rb.uuid = records::body_uuid(&body)?.unwrap_or_else(Uuid::new_v4);
    records::insert(&state, rb, version, &headers).await
}

pub async fn patch(
    State(state): State<AppState>,
    _c: super::auth::Caller,
    Extension(version): Extension<Version>,
    headers: HeaderMap,
    Path(ident): Path<String>,
    JsonBody(ops): JsonBody<Vec<PatchOp>>,
) -> Result<Json<Value>, ApiError> {
    SPEC.writable(version)?;
    let mut old = records::fetch::<Runbook>(&state, ident).await?;
    let values = |path: &str| -> Vec<Value> {
        ops.iter()
            .filter(|o| o.path == path && o.op != "remove")
            .map(|o| o.value.clone().unwrap_or(Value::Null))
            .collect()
    };
    let (owners, publics) = (values("/owner"), values("/public"));
    let made_public = match publics.first() {
        Some(v) => schema::py_truthy(v),
        None => old.public,
    };
    if !owners.is_empty() && made_public {
        // Only the owner and public operations are shown (a steps value
        // may hold secrets).
        let shown: Vec<&PatchOp> = ops
            .iter()
            .filter(|o| o.path == "/owner" || o.path == "/public")
            .collect();
        return Err(ApiError::bad_request(format!(
            "Couldn't apply patch '{}'. Reason: There cannot be an owner for a public runbook",
            schema::py_repr(&serde_json::to_value(&shown).unwrap_or_default())
        )));
    }
    if !publics.is_empty() {
        // Any write of `public` clears the owner (unless the patch sets it).
        old.owner = None;
    }
    let mut allowed = vec![
        "disable_ramdisk",
        "extra",
        "name",
        "owner",
        "public",
        "steps",
    ];
    if version.at_least(112) {
        allowed.push("description");
    }
    let mut doc = records::patched_doc(&old, &ops, &allowed)?;
    for f in ["created_at", "updated_at", "traits"] {
        doc.remove(f);
    }
    if !version.at_least(112) {
        doc.remove("description");
    }
    // Ironic drops the keys a step does not have before checking it.
    if let Some(Value::Array(steps)) = doc.get_mut("steps") {
        for step in steps.iter_mut().filter_map(Value::as_object_mut) {
            step.retain(|k, _| ["interface", "step", "args", "order"].contains(&k.as_str()));
        }
    }
    let mut new = old.clone();
    // Patched runbooks are checked against the 1.112 schema at every version.
    apply_checked("patch", &doc, Version(112), false, &mut new)?;
    if !version.at_least(112) {
        new.description = old.description.clone();
    }
    new.updated_at = Some(crate::model::now());
    records::save_and_show(&state, new, version, &headers).await
}

pub async fn delete(
    State(state): State<AppState>,
    _c: super::auth::Caller,
    Extension(version): Extension<Version>,
    Path(ident): Path<String>,
) -> Result<StatusCode, ApiError> {
    SPEC.writable(version)?;
    records::remove::<Runbook>(&state, ident).await
}

// ------------------------------------------------------------------ traits

const TRAITS_TOO_OLD: &str = "The API version does not allow runbook traits";

const ONE_OR_ALL: &str = "A single runbook trait may be added via PUT /v1/runbooks/<runbook identifier>/traits/<trait> with no body, or all runbook traits may be replaced via PUT /v1/runbooks/<runbook identifier>/traits with the list of traits specified in the request body.";

fn traits_version(version: Version) -> Result<(), ApiError> {
    if version.at_least(112) {
        Ok(())
    } else {
        Err(ApiError::not_found(TRAITS_TOO_OLD))
    }
}

/// Changes a runbook's traits (read, change, write: runbooks have no lock,
/// as in Ironic).
async fn change_traits(
    state: &AppState,
    ident: String,
    change: impl FnOnce(&mut Vec<String>) + Send + 'static,
) -> Result<(), ApiError> {
    state
        .conductor
        .store()
        .call(move |s| -> Result<(), ApiError> {
            let mut rb = s.get_record::<Runbook>(&ident)?;
            change(&mut rb.traits);
            rb.traits.sort();
            rb.traits.dedup();
            if rb.traits.len() > crate::model::traits::MAX_PER_NODE {
                return Err(ApiError::bad_request(format!(
                    "Could not modify runbook traits: a runbook may have at most {} traits",
                    crate::model::traits::MAX_PER_NODE
                )));
            }
            Ok(s.save_record(&rb)?)
        })
        .await
}

/// `GET /v1/runbooks/{ident}/traits`.
pub async fn traits_list(
    State(state): State<AppState>,
    _c: super::auth::Caller,
    Extension(version): Extension<Version>,
    Path(ident): Path<String>,
    axum::extract::Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    traits_version(version)?;
    super::check_args(&q, &[])?;
    let rb = records::fetch::<Runbook>(&state, ident).await?;
    Ok(Json(json!({ "traits": rb.traits })))
}

/// `PUT /v1/runbooks/{ident}/traits`: replaces them all.
pub async fn traits_set(
    State(state): State<AppState>,
    _c: super::auth::Caller,
    Extension(version): Extension<Version>,
    Path(ident): Path<String>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    traits_version(version)?;
    let list = super::traits::traits_body(&body, ONE_OR_ALL)?;
    change_traits(&state, ident, move |t| *t = list).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /v1/runbooks/{ident}/traits/{trait}`: adds one.
pub async fn traits_add(
    State(state): State<AppState>,
    _c: super::auth::Caller,
    Extension(version): Extension<Version>,
    headers: HeaderMap,
    Path((ident, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    traits_version(version)?;
    if let Some(why) = schema::trait_error(&Value::String(name.clone())) {
        return Err(schema::error(Some("trait"), why));
    }
    if super::traits::optional_body(&body)?.is_some() {
        return Err(ApiError::bad_request(ONE_OR_ALL));
    }
    let t = name.clone();
    change_traits(&state, ident.clone(), move |traits| traits.push(t)).await?;
    Ok(super::traits::added(
        &headers,
        &format!("runbooks/{ident}/traits/{name}"),
    ))
}

/// `DELETE /v1/runbooks/{ident}/traits`: removes them all.
pub async fn traits_clear(
    State(state): State<AppState>,
    _c: super::auth::Caller,
    Extension(version): Extension<Version>,
    Path(ident): Path<String>,
) -> Result<StatusCode, ApiError> {
    traits_version(version)?;
    change_traits(&state, ident, Vec::clear).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /v1/runbooks/{ident}/traits/{trait}` (a trait it does not have:
/// 204 too, as Ironic).
pub async fn traits_remove(
    State(state): State<AppState>,
    _c: super::auth::Caller,
    Extension(version): Extension<Version>,
    Path((ident, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    traits_version(version)?;
    change_traits(&state, ident, move |t| t.retain(|x| *x != name)).await?;
    Ok(StatusCode::NO_CONTENT)
}
