//! Request-body checks in the words of Ironic's JSON-schema validation
//! (`Schema error: 1 is not of type 'string', 'null'`), with values shown as
//! Python shows them, so scripts matching Ironic's messages keep working. A
//! type error also names the field, which Ironic's message does not.

use serde_json::{Map, Value};

use super::error::ApiError;

/// A JSON type a property may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    Str,
    Null,
    Obj,
    Arr,
    Bool,
    Int,
}

impl Ty {
    fn name(self) -> &'static str {
        match self {
            Ty::Str => "string",
            Ty::Null => "null",
            Ty::Obj => "object",
            Ty::Arr => "array",
            Ty::Bool => "boolean",
            Ty::Int => "integer",
        }
    }

    fn matches(self, v: &Value) -> bool {
        match self {
            Ty::Str => v.is_string(),
            Ty::Null => v.is_null(),
            Ty::Obj => v.is_object(),
            Ty::Arr => v.is_array(),
            Ty::Bool => v.is_boolean(),
            // As Draft 4's checker: 1.0 is an integer, true is not.
            Ty::Int => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        }
    }
}

/// What the items of an array property must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Items {
    Any,
    Str,
    /// A trait name: `CUSTOM_…` or a standard os-traits name.
    Trait,
}

/// One property of an object schema.
#[derive(Debug, Clone, Copy)]
pub struct Prop {
    pub name: &'static str,
    pub types: &'static [Ty],
    pub max_len: Option<usize>,
    pub items: Items,
}

impl Prop {
    pub const fn new(name: &'static str, types: &'static [Ty]) -> Prop {
        Prop {
            name,
            types,
            max_len: None,
            items: Items::Any,
        }
    }
    pub const fn max(self, n: usize) -> Prop {
        Prop {
            max_len: Some(n),
            ..self
        }
    }
    pub const fn items(self, items: Items) -> Prop {
        Prop { items, ..self }
    }
}

/// The common shapes.
pub const STR: &[Ty] = &[Ty::Str, Ty::Null];
pub const OBJ: &[Ty] = &[Ty::Obj, Ty::Null];
pub const ARR: &[Ty] = &[Ty::Arr, Ty::Null];

/// A value as Python's `repr` shows the decoded JSON.
pub fn py_repr(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => py_str(s),
        Value::Array(a) => format!("[{}]", a.iter().map(py_repr).collect::<Vec<_>>().join(", ")),
        Value::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{}: {}", py_str(k), py_repr(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn py_str(s: &str) -> String {
    crate::inspection::rules::pyfmt::quote(s)
}

/// Whether Python finds the decoded JSON value true (`bool(value)`).
pub fn py_truthy(v: &Value) -> bool {
    crate::inspection::rules::pyfmt::truthy(v)
}

/// A schema error in Ironic's form; `of` names the checked value
/// (`Schema error for chassis: …`) as Ironic's older validators do.
pub fn error(of: Option<&str>, msg: impl std::fmt::Display) -> ApiError {
    match of {
        Some(of) => ApiError::bad_request(format!("Schema error for {of}: {msg}")),
        None => ApiError::bad_request(format!("Schema error: {msg}")),
    }
}

fn type_error(v: &Value, types: &[Ty]) -> String {
    let names: Vec<String> = types.iter().map(|t| format!("'{}'", t.name())).collect();
    format!("{} is not of type {}", py_repr(v), names.join(", "))
}

/// Why `name` is not a trait name, if it is not one.
pub fn trait_error(name: &Value) -> Option<String> {
    let Some(s) = name.as_str() else {
        return Some(type_error(name, &[Ty::Str]));
    };
    if s.is_empty() {
        return Some(format!("{} should be non-empty", py_repr(name)));
    }
    if s.len() > 255 {
        return Some(format!("{} is too long", py_repr(name)));
    }
    if crate::model::traits::is_valid(s) {
        return None;
    }
    Some(format!(
        "{0} is not valid under any of the given schemas. Possible root cause: {0} does not match '^CUSTOM_[A-Z0-9_]+$'",
        py_repr(name)
    ))
}

/// A request body that must be a JSON object, as its map.
pub fn object_body(of: Option<&str>, body: Value) -> Result<Map<String, Value>, ApiError> {
    match body {
        Value::Object(m) => Ok(m),
        other => Err(error(of, type_error(&other, &[Ty::Obj]))),
    }
}

/// Checks a request body against an object schema with no additional
/// properties allowed.
pub fn check(
    of: Option<&str>,
    body: &Value,
    props: &[Prop],
    required: &[&str],
) -> Result<(), ApiError> {
    let Value::Object(m) = body else {
        return Err(error(of, type_error(body, &[Ty::Obj])));
    };
    check_map(of, m, props, required)
}

/// [`check`] on a map.
pub fn check_map(
    of: Option<&str>,
    m: &Map<String, Value>,
    props: &[Prop],
    required: &[&str],
) -> Result<(), ApiError> {
    let mut extra: Vec<&str> = m
        .keys()
        .map(String::as_str)
        .filter(|k| !props.iter().any(|p| p.name == *k))
        .collect();
    if !extra.is_empty() {
        extra.sort_unstable();
        let verb = if extra.len() == 1 { "was" } else { "were" };
        let list: Vec<String> = extra.iter().map(|k| py_str(k)).collect();
        return Err(error(
            of,
            format!(
                "Additional properties are not allowed ({} {verb} unexpected)",
                list.join(", ")
            ),
        ));
    }
    if let Some(r) = required.iter().find(|r| !m.contains_key(**r)) {
        return Err(error(of, format!("'{r}' is a required property")));
    }
    for p in props {
        let Some(v) = m.get(p.name) else { continue };
        if !p.types.iter().any(|t| t.matches(v)) {
            return Err(error(
                of,
                format!("{} (the value of '{}')", type_error(v, p.types), p.name),
            ));
        }
        if let (Some(max), Some(s)) = (p.max_len, v.as_str()) {
            if s.chars().count() > max {
                return Err(error(
                    of,
                    format!("{} is too long (the value of '{}')", py_repr(v), p.name),
                ));
            }
        }
        if let Some(items) = v.as_array() {
            for item in items {
                let bad = match p.items {
                    Items::Any => None,
                    Items::Str => (!item.is_string()).then(|| type_error(item, &[Ty::Str])),
                    Items::Trait => trait_error(item),
                };
                if let Some(bad) = bad {
                    return Err(error(of, format!("{bad} (in '{}')", p.name)));
                }
            }
        }
    }
    Ok(())
}

/// Checks a list of steps against Ironic's step schema (its
/// `DEPLOY_STEP_SCHEMA` when `order_key` is `priority`, all four fields
/// required; its `RUNBOOK_STEP_SCHEMA` when it is `order`, `args` optional)
/// and reads them, a numeric string priority or order as its number.
pub fn check_steps(
    of: Option<&str>,
    v: &Value,
    order_key: &'static str,
) -> Result<Vec<crate::model::template::Step>, ApiError> {
    use crate::model::template::{Step, STEP_INTERFACES};
    let fail = |msg: String| Err(error(of, format!("{msg} (in 'steps')")));
    let Some(items) = v.as_array() else {
        return Err(error(
            of,
            format!("{} (the value of 'steps')", type_error(v, &[Ty::Arr])),
        ));
    };
    if items.is_empty() {
        return Err(error(of, "[] should be non-empty (the value of 'steps')"));
    }
    let required: &[&str] = if order_key == "priority" {
        &["interface", "step", "args", "priority"]
    } else {
        &["interface", "step", "order"]
    };
    let mut steps = Vec::with_capacity(items.len());
    for item in items {
        let Some(m) = item.as_object() else {
            return fail(type_error(item, &[Ty::Obj]));
        };
        if let Some(r) = required.iter().find(|r| !m.contains_key(**r)) {
            return fail(format!("'{r}' is a required property"));
        }
        let mut extra: Vec<&str> = m
            .keys()
            .map(String::as_str)
            .filter(|k| !["interface", "step", "args", order_key].contains(k))
            .collect();
        if !extra.is_empty() {
            extra.sort_unstable();
            let verb = if extra.len() == 1 { "was" } else { "were" };
            let list: Vec<String> = extra.iter().map(|k| py_str(k)).collect();
            return fail(format!(
                "Additional properties are not allowed ({} {verb} unexpected)",
                list.join(", ")
            ));
        }
        let interface = &m["interface"];
        let Some(iface) = interface.as_str() else {
            return fail(type_error(interface, &[Ty::Str]));
        };
        if !STEP_INTERFACES.contains(&iface) {
            let all: Vec<String> = STEP_INTERFACES.iter().map(|i| py_str(i)).collect();
            return fail(format!(
                "{} is not one of [{}]",
                py_repr(interface),
                all.join(", ")
            ));
        }
        let name = &m["step"];
        let Some(step) = name.as_str() else {
            return fail(type_error(name, &[Ty::Str]));
        };
        if step.is_empty() {
            return fail("'' should be non-empty".into());
        }
        let args = match m.get("args") {
            None => Map::new(),
            Some(Value::Object(a)) => a.clone(),
            Some(other) => return fail(type_error(other, &[Ty::Obj])),
        };
        let rank = &m[order_key];
        let number = match rank {
            Value::Number(n) => n.as_u64(),
            Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                s.parse().ok()
            }
            _ => None,
        };
        let Some(number) = number else {
            return fail(format!(
                "{} is not valid under any of the given schemas (the value of '{order_key}')",
                py_repr(rank)
            ));
        };
        let (priority, order) = if order_key == "priority" {
            (Some(number), None)
        } else {
            (None, Some(number))
        };
        steps.push(Step {
            interface: iface.to_string(),
            step: step.to_string(),
            args,
            priority,
            order,
        });
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_read_as_python_shows_them() {
        for (v, want) in [
            (json!(null), "None"),
            (json!(true), "True"),
            (json!(1), "1"),
            (json!("x"), "'x'"),
            (json!("it's"), "\"it's\""),
            (json!([1, "a"]), "[1, 'a']"),
            (json!({"a": null}), "{'a': None}"),
        ] {
            assert_eq!(py_repr(&v), want, "{v}");
        }
    }

    const PROPS: &[Prop] = &[
        Prop::new("name", STR),
        Prop::new("resource_class", STR).max(5),
        Prop::new("traits", ARR).items(Items::Trait),
        Prop::new("extra", OBJ),
    ];

    #[test]
    fn errors_are_ironics() {
        let cases = [
            (
                json!({"foo": 1}),
                "Schema error: Additional properties are not allowed ('foo' was unexpected)",
            ),
            (
                json!({"b": 1, "a": 2}),
                "Schema error: Additional properties are not allowed ('a', 'b' were unexpected)",
            ),
            (
                json!({"name": 1}),
                "Schema error: 1 is not of type 'string', 'null' (the value of 'name')",
            ),
            (
                json!({"resource_class": "toolong"}),
                "Schema error: 'toolong' is too long (the value of 'resource_class')",
            ),
            (
                json!({"traits": ["foo"]}),
                "Schema error: 'foo' is not valid under any of the given schemas. Possible root cause: 'foo' does not match '^CUSTOM_[A-Z0-9_]+$' (in 'traits')",
            ),
            (
                json!([]),
                "Schema error: [] is not of type 'object'",
            ),
        ];
        for (body, want) in cases {
            let e = check(None, &body, PROPS, &[]).unwrap_err();
            assert_eq!(e.message, want, "{body}");
        }
        let e = check(Some("portgroup"), &json!({}), PROPS, &["name"]).unwrap_err();
        assert_eq!(
            e.message,
            "Schema error for portgroup: 'name' is a required property"
        );
        check(
            None,
            &json!({"name": null, "traits": ["CUSTOM_GPU", "HW_CPU_X86_AVX2"], "extra": {}}),
            PROPS,
            &[],
        )
        .unwrap();
    }
}
