//! `/v1/deploy_templates` (1.55+): named lists of deploy steps, whose names
//! are traits (`CUSTOM_RAID1`); a node deployed with that trait in its
//! `instance_info.traits` runs the template's steps.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::{Extension, Json};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::error::ApiError;
use super::records::{self, Served, Spec};
use super::schema::{self, Prop, Ty, OBJ, STR};
use super::version::Version;
use super::{AppState, JsonBody};
use crate::conductor::PatchOp;
use crate::model::template::{duplicate_steps, DeployTemplate, Step};

const TOO_OLD: &str = "The API version does not allow deploy templates";

pub static SPEC: Spec = Spec {
    path: "deploy_templates",
    collection: "deploy_templates",
    min_version: 55,
    too_old: TOO_OLD,
    detail_from: 43,
    fields: &[
        ("uuid", 55),
        ("created_at", 55),
        ("updated_at", 55),
        ("name", 55),
        ("extra", 55),
        ("links", 55),
        ("steps", 55),
    ],
    short: Some(&["uuid", "name", "links"]),
    filters: &[],
    sortable: &["uuid", "name", "created_at", "updated_at"],
    no_sort: &["extra", "steps"],
    sublinks: &[],
    key: "uuid",
};

impl Served for DeployTemplate {
    const SPEC: &'static Spec = &SPEC;

    fn api_doc(&self) -> Map<String, Value> {
        masked_steps(records::doc(self))
    }
}

/// A record's serde form with the secrets in its steps' `args` masked
/// (Ironic's `mask_dict_password`).
pub fn masked_steps(mut doc: Map<String, Value>) -> Map<String, Value> {
    if let Some(Value::Array(steps)) = doc.get_mut("steps") {
        for step in steps {
            if let Some(Value::Object(args)) = step.get_mut("args") {
                let masked = crate::redact::Masked {
                    map: args,
                    extra: &[],
                };
                if let Ok(Value::Object(m)) = serde_json::to_value(&masked) {
                    *args = m;
                }
            }
        }
    }
    doc
}

const PROPS: &[Prop] = &[
    Prop::new("description", STR).max(255),
    Prop::new("extra", OBJ),
    Prop::new("name", &[Ty::Str]),
    Prop::new("steps", &[Ty::Arr]),
    Prop::new("uuid", STR),
];

/// Refuses steps naming one interface and step twice, in Ironic's words
/// (runbooks get the deploy-template message too, as there).
pub fn refuse_duplicate_steps(steps: &[Step]) -> Result<(), ApiError> {
    let dups = duplicate_steps(steps);
    if dups.is_empty() {
        return Ok(());
    }
    Err(ApiError::bad_request(format!(
        "Deploy template invalid: Duplicate deploy steps. A template cannot have \
         multiple deploy steps with the same interface and step. Duplicates: {}.",
        dups.join("; ")
    )))
}

/// What a checked template body or patched template sets.
struct Checked {
    name: String,
    steps: Vec<Step>,
    extra: Map<String, Value>,
}

/// Checks a template body or patched template (`of`: how Ironic's message
/// names it, `template` or `patch`).
fn check_template(of: &str, body: &Map<String, Value>) -> Result<Checked, ApiError> {
    schema::check_map(Some(of), body, PROPS, &["steps", "name"])?;
    let name = &body["name"];
    if let Some(bad) = schema::trait_error(name) {
        return Err(schema::error(
            Some(of),
            format!("{bad} (the value of 'name')"),
        ));
    }
    let steps = schema::check_steps(Some(of), &body["steps"], "priority")?;
    refuse_duplicate_steps(&steps)?;
    let extra = body
        .get("extra")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    Ok(Checked {
        name: name.as_str().unwrap_or_default().to_string(),
        steps,
        extra,
    })
}

pub async fn create(
    State(state): State<AppState>,
    _c: super::auth::Caller,
    Extension(version): Extension<Version>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    SPEC.writable(version)?;
    let body = schema::object_body(Some("template"), body)?;
    let Checked { name, steps, extra } = check_template("template", &body)?;
    let template = DeployTemplate {
        uuid: records::body_uuid(&body)?.unwrap_or_else(Uuid::new_v4),
        created_at: crate::model::now(),
        updated_at: None,
        name,
        extra,
        steps,
    };
    records::insert(&state, template, version, &headers).await
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
    let old = records::fetch::<DeployTemplate>(&state, ident).await?;
    let mut doc = records::patched_doc(&old, &ops, &["extra", "name", "steps", "description"])?;
    // Ironic checks the patched template without the fields it keeps itself.
    for f in ["created_at", "updated_at"] {
        doc.remove(f);
    }
    let Checked { name, steps, extra } = check_template("patch", &doc)?;
    let new = DeployTemplate {
        name,
        steps,
        extra,
        updated_at: Some(crate::model::now()),
        ..old
    };
    records::save_and_show(&state, new, version, &headers).await
}

pub async fn delete(
    State(state): State<AppState>,
    _c: super::auth::Caller,
    Extension(version): Extension<Version>,
    Path(ident): Path<String>,
) -> Result<StatusCode, ApiError> {
    SPEC.writable(version)?;
    records::remove::<DeployTemplate>(&state, ident).await
}
