//! Inspection rules (Ironic's `/v1/inspection_rules`, 1.96+): conditions on
//! a node's inspection data and the actions taken when they all hold. Here
//! they are kept and checked; inspection runs them (issue 12).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

/// An inspection rule, with Ironic's field names. Conditions and actions
/// are kept as given (after their arguments are checked), since the
/// operators read their own arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InspectionRule {
    pub uuid: Uuid,
    pub created_at: String,
    pub updated_at: Option<String>,
    pub description: Option<String>,
    #[serde(default)]
    pub priority: u64,
    #[serde(default)]
    pub sensitive: bool,
    pub phase: Option<String>,
    #[serde(default)]
    pub conditions: Vec<Value>,
    #[serde(default)]
    pub actions: Vec<Value>,
}

/// The phases a rule may run in.
pub const PHASES: &[&str] = &["main"];

/// The highest priority a user's rule may have (built-in rules go above).
pub const MAX_PRIORITY: u64 = 9999;

/// An operator's arguments: required, then optional (a list of arguments
/// is read positionally in this order).
pub struct Signature {
    pub op: &'static str,
    pub required: &'static [&'static str],
    pub optional: &'static [&'static str],
}

const fn sig(
    op: &'static str,
    required: &'static [&'static str],
    optional: &'static [&'static str],
) -> Signature {
    Signature {
        op,
        required,
        optional,
    }
}

/// Condition operators (each may be negated with a leading `!`).
pub const CONDITIONS: &[Signature] = &[
    sig("eq", &["values"], &["force_strings"]),
    sig("lt", &["values"], &["force_strings"]),
    sig("gt", &["values"], &["force_strings"]),
    sig("is-empty", &["value"], &[]),
    sig("in-net", &["address", "subnet"], &[]),
    sig("matches", &["value", "regex"], &[]),
    sig("contains", &["value", "regex"], &[]),
    sig("one-of", &["value"], &["values"]),
    sig("is-none", &["value"], &[]),
    sig("is-true", &["value"], &[]),
    sig("is-false", &["value"], &[]),
];

/// Action operators.
pub const ACTIONS: &[Signature] = &[
    sig("fail", &["msg"], &[]),
    sig("log", &["msg"], &["level"]),
    sig("set-attribute", &["path", "value"], &[]),
    sig("extend-attribute", &["path", "value"], &["unique"]),
    sig("del-attribute", &["path"], &[]),
    sig("set-capability", &["name", "value"], &[]),
    sig("unset-capability", &["name"], &[]),
    sig("add-trait", &["name"], &[]),
    sig("remove-trait", &["name"], &[]),
    sig("set-plugin-data", &["path", "value", "plugin_data"], &[]),
    sig(
        "extend-plugin-data",
        &["path", "value", "plugin_data"],
        &["unique"],
    ),
    sig("unset-plugin-data", &["path", "plugin_data"], &[]),
    sig("set-port-attribute", &["port_id", "path", "value"], &[]),
    sig(
        "extend-port-attribute",
        &["port_id", "path", "value"],
        &["unique"],
    ),
    sig("del-port-attribute", &["port_id", "path"], &[]),
    sig(
        "api-call",
        &["url"],
        &["headers", "proxies", "timeout", "retries", "backoff_factor"],
    ),
];

/// The condition operator names in Ironic's order: the plain ones, then
/// the negated ones.
pub fn condition_ops() -> Vec<String> {
    let plain = CONDITIONS.iter().map(|s| s.op.to_string());
    let negated = CONDITIONS.iter().map(|s| format!("!{}", s.op));
    plain.chain(negated).collect()
}

pub fn action_ops() -> Vec<String> {
    ACTIONS.iter().map(|s| s.op.to_string()).collect()
}

/// The signature of a condition (`!` stripped) or action operator.
pub fn signature(op: &str, condition: bool) -> Option<&'static Signature> {
    let (table, name) = if condition {
        (CONDITIONS, op.strip_prefix('!').unwrap_or(op))
    } else {
        (ACTIONS, op)
    };
    table.iter().find(|s| s.op == name)
}

/// Checks an operator's arguments against its signature and returns them
/// as a map (a list read positionally). The plugin-data actions get their
/// `plugin_data` argument (the data inspection passes in) as Ironic does.
pub fn check_args(sig: &Signature, args: &Value) -> Result<Map<String, Value>, String> {
    let auto = |name: &str| name == "plugin_data";
    let mut map = match args {
        Value::Array(items) => {
            let names = sig.required.iter().chain(sig.optional);
            let given: Vec<&str> = sig.required.iter().copied().filter(|n| !auto(n)).collect();
            if items.len() < given.len() {
                return Err(format!(
                    "Not enough arguments provided. Missing: {}",
                    given[items.len()..].join(", ")
                ));
            }
            let mut m = Map::new();
            for (name, v) in names.filter(|n| !auto(n)).zip(items) {
                m.insert(name.to_string(), v.clone());
            }
            m
        }
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    if sig.required.iter().any(|n| auto(n)) {
        map.insert("plugin_data".into(), Value::Object(Map::new()));
    }
    let missing: Vec<&str> = sig
        .required
        .iter()
        .copied()
        .filter(|n| !map.contains_key(*n))
        .collect();
    let unexpected: Vec<&str> = map
        .keys()
        .map(String::as_str)
        .filter(|k| !sig.required.contains(k) && !sig.optional.contains(k))
        .collect();
    let mut errors = Vec::new();
    if !missing.is_empty() {
        errors.push(format!(
            "missing required argument(s): {}",
            missing.join(", ")
        ));
    }
    if !unexpected.is_empty() {
        errors.push(format!("unexpected argument(s): {}", unexpected.join(", ")));
    }
    if errors.is_empty() {
        Ok(map)
    } else {
        Err(errors.join("; "))
    }
}

/// Ironic's phase and priority checks, all their errors in one message.
pub fn check_phase_priority(phase: Option<&str>, priority: u64) -> Result<(), String> {
    let mut errors = Vec::new();
    if !phase.is_some_and(|p| PHASES.contains(&p)) {
        errors.push(format!(
            "Invalid phase: {}. Valid phases are: {}",
            phase.unwrap_or("None"),
            PHASES.join(", ")
        ));
    }
    if priority > MAX_PRIORITY {
        errors.push(format!(
            "Priority must be between 0 and {MAX_PRIORITY} for user-defined rules."
        ));
    }
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(format!(
            "Multiple validation errors occurred: {}",
            errors.join("; ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn arguments_are_checked_against_the_operator() {
        let eq = signature("!eq", true).unwrap();
        let set = signature("set-plugin-data", false).unwrap();
        let call = signature("api-call", false).unwrap();
        for (sig, args, want) in [
            (eq, json!({"values": [1, 2]}), Ok(json!({"values": [1, 2]}))),
            (
                eq,
                json!([[1, 2], true]),
                Ok(json!({"values": [1, 2], "force_strings": true})),
            ),
            (
                eq,
                json!([]),
                Err("Not enough arguments provided. Missing: values"),
            ),
            (eq, json!({}), Err("missing required argument(s): values")),
            (
                eq,
                json!({"values": [], "x": 1}),
                Err("unexpected argument(s): x"),
            ),
            (
                set,
                json!({"path": "a", "value": 1}),
                Ok(json!({"path": "a", "value": 1, "plugin_data": {}})),
            ),
            (
                set,
                json!(["a", 1]),
                Ok(json!({"path": "a", "value": 1, "plugin_data": {}})),
            ),
            (
                call,
                json!({"timeout": 5}),
                Err("missing required argument(s): url"),
            ),
        ] {
            let got = check_args(sig, &args).map(Value::Object);
            match want {
                Ok(w) => assert_eq!(got, Ok(w), "{args}"),
                Err(w) => assert_eq!(got, Err(w.to_string()), "{args}"),
            }
        }
        assert!(signature("!!eq", true).is_none());
        assert!(signature("eq", false).is_none());
    }

    #[test]
    fn phase_and_priority() {
        assert_eq!(check_phase_priority(Some("main"), 9999), Ok(()));
        assert_eq!(
            check_phase_priority(Some("early"), 0),
            Err("Invalid phase: early. Valid phases are: main".into())
        );
        assert_eq!(
            check_phase_priority(None, 10000),
            Err("Multiple validation errors occurred: Invalid phase: None. Valid phases are: main; Priority must be between 0 and 9999 for user-defined rules.".into())
        );
    }
}
