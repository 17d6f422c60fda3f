//! `/v1/inspection_rules` (1.96+): stored, checked, patched; inspection
//! runs them (issue 12).

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::{Extension, Json};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::error::ApiError;
use super::records::{self, Listing, Served, Spec};
use super::schema::{self, py_repr, Prop, Ty, STR};
use super::version::Version;
use super::{AppState, JsonBody};
use crate::conductor::PatchOp;
use crate::model::inspection_rule::{self as rule, InspectionRule};

const TOO_OLD: &str = "The API version does not allow inspection rules";

pub static SPEC: Spec = Spec {
    path: "inspection_rules",
    collection: "inspection_rules",
    min_version: 96,
    too_old: TOO_OLD,
    detail_from: 96,
    fields: &[
        ("uuid", 96),
        ("created_at", 96),
        ("updated_at", 96),
        ("description", 96),
        ("priority", 96),
        ("sensitive", 96),
        ("phase", 96),
        ("conditions", 96),
        ("actions", 96),
        ("links", 96),
    ],
    short: Some(&["uuid", "description", "priority", "phase", "links"]),
    filters: &["phase"],
    sortable: &[
        "uuid",
        "priority",
        "description",
        "sensitive",
        "phase",
        "created_at",
        "updated_at",
    ],
    no_sort: &["actions", "conditions"],
    sublinks: &[],
    key: "uuid",
};

impl Served for InspectionRule {
    const SPEC: &'static Spec = &SPEC;

    fn filter(q: &HashMap<String, String>, _v: Version) -> Result<Listing, ApiError> {
        let mut l = Listing::default();
        if let Some(p) = q.get("phase") {
            l.filter.fields.push(("phase", Value::String(p.clone())));
        }
        Ok(l)
    }

    fn check_ident(ident: &str) -> Result<(), ApiError> {
        check_uuid(ident)
    }

    /// A sensitive rule's conditions and actions are never shown.
    fn api_doc(&self) -> Map<String, Value> {
        let mut doc = records::doc(self);
        if self.sensitive {
            doc.insert("conditions".into(), Value::Null);
            doc.insert("actions".into(), Value::Null);
        }
        doc
    }
}

fn check_uuid(ident: &str) -> Result<(), ApiError> {
    if ident.parse::<Uuid>().is_ok() {
        Ok(())
    } else {
        Err(schema::error(
            None,
            format!("{} is not a 'uuid'", py_repr(&Value::String(ident.into()))),
        ))
    }
}

const PROPS: &[Prop] = &[
    Prop::new("actions", &[Ty::Arr]),
    Prop::new("conditions", &[Ty::Arr]),
    Prop::new("description", STR).max(255),
    Prop::new("phase", STR).max(16),
    Prop::new("priority", &[Ty::Int]),
    Prop::new("sensitive", &[Ty::Bool, Ty::Null]),
    Prop::new("uuid", STR),
];

/// Checks a list of conditions or actions (`field`) and returns them with
/// their arguments read by their operators.
fn check_ops(of: Option<&str>, field: &str, list: &[Value]) -> Result<Vec<Value>, ApiError> {
    let condition = field == "conditions";
    let fail = |msg: String| Err(schema::error(of, format!("{msg} (in '{field}')")));
    let names = if condition {
        rule::condition_ops()
    } else {
        rule::action_ops()
    };
    let mut out = Vec::with_capacity(list.len());
    for item in list {
        let Some(m) = item.as_object() else {
            return fail(format!("{} is not of type 'object'", py_repr(item)));
        };
        for r in ["op", "args"] {
            if !m.contains_key(r) {
                return fail(format!("'{r}' is a required property"));
            }
        }
        let op = &m["op"];
        let Some(sig) = op.as_str().and_then(|o| rule::signature(o, condition)) else {
            let all: Vec<String> = names
                .iter()
                .map(|n| py_repr(&Value::String(n.clone())))
                .collect();
            return fail(format!(
                "{} is not one of [{}]",
                py_repr(op),
                all.join(", ")
            ));
        };
        for key in ["args", "loop"] {
            if let Some(v) = m.get(key) {
                if !v.is_array() && !v.is_object() {
                    return fail(format!("{} is not of type 'array', 'object'", py_repr(v)));
                }
            }
        }
        if let Some(v) = m.get("multiple") {
            if !condition {
                // Actions take no `multiple`; Ironic keeps unknown keys.
            } else if !v
                .as_str()
                .is_some_and(|s| ["any", "all", "first", "last"].contains(&s))
            {
                return fail(format!(
                    "{} is not one of ['any', 'all', 'first', 'last']",
                    py_repr(v)
                ));
            }
        }
        let args = rule::check_args(sig, &m["args"]).map_err(|e| {
            ApiError::bad_request(format!(
                "Inspection rule validation failed. Reason: {e} (operator {})",
                sig.op
            ))
        })?;
        let mut kept = m.clone();
        kept.insert("args".into(), Value::Object(args));
        out.push(Value::Object(kept));
    }
    Ok(out)
}

/// The `baremetal` CLI (6.3.0) sends `conditions: null` when none are
/// given, the priority as a string and `sensitive` as its text; Ironic 39
/// refuses all three, so its own CLI cannot create most rules. They are
/// read here as what they mean: no conditions, the number, the boolean.
fn cli_forms(body: &Map<String, Value>) -> Map<String, Value> {
    let mut b = body.clone();
    if b.get("conditions").is_some_and(Value::is_null) {
        b.remove("conditions");
    }
    if let Some(Value::String(p)) = b.get("priority") {
        if let Ok(n) = p.trim().parse::<u64>() {
            b.insert("priority".into(), Value::from(n));
        }
    }
    if let Some(v @ Value::String(_)) = b.get("sensitive") {
        if let Ok(flag) = crate::model::input::parse_bool("sensitive", v) {
            b.insert("sensitive".into(), Value::Bool(flag));
        }
    }
    b
}

/// Checks a body or patched rule (`of`: `None` for a body, as Ironic's
/// newer validator words it; `patch` for a patched rule) and writes what
/// it sets into `r`.
fn apply_checked(
    of: Option<&str>,
    body: &Map<String, Value>,
    r: &mut InspectionRule,
) -> Result<(), ApiError> {
    let body = &cli_forms(body);
    schema::check_map(of, body, PROPS, &["actions"])?;
    let actions = body["actions"].as_array().cloned().unwrap_or_default();
    if actions.is_empty() {
        return Err(schema::error(
            of,
            "[] should be non-empty (the value of 'actions')",
        ));
    }
    let priority = match body.get("priority") {
        None | Some(Value::Null) => 0,
        Some(v) => match v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)) {
            Some(p) if p >= 0 => p as u64,
            _ => {
                return Err(schema::error(
                    of,
                    format!("{} is less than the minimum of 0", py_repr(v)),
                ))
            }
        },
    };
    let phase = match body.get("phase") {
        None => Some("main".to_string()),
        Some(v) => v.as_str().map(str::to_string),
    };
    let conditions = body
        .get("conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    r.conditions = check_ops(of, "conditions", &conditions)?;
    r.actions = check_ops(of, "actions", &actions)?;
    rule::check_phase_priority(phase.as_deref(), priority).map_err(ApiError::bad_request)?;
    r.phase = phase;
    r.priority = priority;
    r.description = body
        .get("description")
        .and_then(Value::as_str)
        .map(str::to_string);
    r.sensitive = body
        .get("sensitive")
        .and_then(Value::as_bool)
        .unwrap_or(false);
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
    let body = schema::object_body(None, body)?;
    let mut r = InspectionRule {
        uuid: Uuid::nil(),
        created_at: crate::model::now(),
        updated_at: None,
        description: None,
        priority: 0,
        sensitive: false,
        phase: None,
        conditions: Vec::new(),
        actions: Vec::new(),
    };
    apply_checked(None, &body, &mut r)?;
    r.uuid = records::body_uuid(&body)?.unwrap_or_else(Uuid::new_v4);
    records::insert(&state, r, version, &headers).await
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
    if ident.parse::<Uuid>().is_err() {
        return Err(ApiError::bad_request(format!(
            "Expected UUID for inspection_rule_uuid: {ident}"
        )));
    }
    let old = records::fetch::<InspectionRule>(&state, ident).await?;
    let mut doc = records::patched_doc(
        &old,
        &ops,
        &[
            "actions",
            "conditions",
            "description",
            "phase",
            "priority",
            "sensitive",
        ],
    )?;
    for f in ["created_at", "updated_at"] {
        doc.remove(f);
    }
    let mut new = old.clone();
    apply_checked(Some("patch"), &doc, &mut new)?;
    if old.sensitive && !new.sensitive {
        // Only the operations on the flag are shown: the others may carry
        // the very conditions and actions the flag hides.
        let on_flag: Vec<&PatchOp> = ops.iter().filter(|o| o.path == "/sensitive").collect();
        return Err(ApiError::bad_request(format!(
            "Couldn't apply patch '{}'. Reason: Inspection rules cannot have the sensitive flag unset.",
            py_repr(&serde_json::to_value(&on_flag).unwrap_or_default())
        )));
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
    check_uuid(&ident)?;
    records::remove::<InspectionRule>(&state, ident).await
}
