//! Inspection rules (`/v1/inspection_rules`) run on a node's inspection
//! data, after the hooks, as Ironic 39's rules engine runs the `main` phase:
//! rules by priority, highest first; a rule whose conditions all hold runs
//! its actions in order; the first failure fails the inspection.
//!
//! Arguments are Python format strings over `inventory`, `plugin_data`,
//! `node` (and `item` inside a `loop`), with Python's meaning of `str()`,
//! `==` and `<` ([`pyfmt`]), so rules written for Ironic behave the same.
//! Node attributes are written through the node PATCH path
//! ([`crate::conductor::update::apply`]), ports through the port PATCH path,
//! so a rule can set no more than the API can.
//!
//! Differences from Ironic, on purpose:
//! * `api-call` is skipped with a warning note: the appliance makes no
//!   outbound calls on a rule's say-so.
//! * A rule cannot set fields the API cannot patch (`driver_internal_info`,
//!   `provision_state`, …), and `add-trait` takes only valid trait names.
//! * Removing the only key of `plugin_data` removes it (Ironic keeps it).
//! * Regular expressions are Rust's (no look-around or back-references).
//! * Built-in rules from a file are not supported yet.

pub(crate) mod pyfmt;
#[cfg(test)]
mod tests;

use serde_json::{Map, Value};
use uuid::Uuid;

use super::Data;
use crate::conductor::{update, PatchOp};
use crate::drivers::Registry;
use crate::model::inspection_rule::{check_args, signature, Signature};
use crate::model::{traits, InspectionRule, Node, Port, Severity};

/// The phase inspection runs rules in.
pub const PHASE: &str = "main";

/// Whether rules see secrets in the inventory and plugin data (Ironic's
/// `[inspection_rules] mask_secrets`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MaskSecrets {
    /// Every rule sees `***` (the default).
    #[default]
    Always,
    /// No rule does.
    Never,
    /// Only rules marked sensitive see the secrets.
    Sensitive,
}

/// One line for the node's history.
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    pub severity: Severity,
    pub text: String,
}

/// What the rules did besides changing the node and plugin data in place.
#[derive(Debug, Default)]
pub struct Outcome {
    pub notes: Vec<Note>,
    /// Ports the rules changed (in `ports`), each once, in order.
    pub ports: Vec<Uuid>,
}

/// Runs the `main`-phase `rules` on the node (changed in place), its
/// `ports` (as the hooks left them) and the inspection data (its plugin
/// data may change). Err is the reason the inspection fails: a `fail`
/// action, or an operator that could not run.
pub fn apply(
    rules: &[InspectionRule],
    node: &mut Node,
    ports: &mut [Port],
    data: &mut Data,
    registry: &Registry,
    mask: MaskSecrets,
) -> Result<Outcome, String> {
    let mut order: Vec<&InspectionRule> = rules
        .iter()
        .filter(|r| r.phase.as_deref().unwrap_or(PHASE) == PHASE)
        .collect();
    // Stable: equal priorities keep the order given (the store's).
    order.sort_by_key(|r| std::cmp::Reverse(r.priority));
    let mut engine = Engine {
        node,
        ports,
        registry,
        inventory: &data.inventory,
        plugin_data: Value::Object(std::mem::take(&mut data.plugin_data)),
        out: Outcome::default(),
    };
    let mut result = Ok(());
    for rule in order {
        let masked = match mask {
            MaskSecrets::Always => true,
            MaskSecrets::Never => false,
            MaskSecrets::Sensitive => !rule.sensitive,
        };
        if let Err(f) = engine.rule(rule, masked) {
            result = Err(f.message(rule.uuid, engine.node.uuid));
            break;
        }
    }
    let Engine {
        plugin_data, out, ..
    } = engine;
    if let Value::Object(m) = plugin_data {
        data.plugin_data = m;
    }
    result.map(|()| out)
}

/// How an operator failed, which decides the inspection's error text.
#[derive(Debug)]
enum Failure {
    /// A `fail` action or a rule failure Ironic reports as is.
    Reported(String),
    /// Anything else, which Ironic wraps with the rule and node.
    Unexpected(String),
}

impl Failure {
    fn execution(reason: impl std::fmt::Display) -> Failure {
        Failure::Reported(format!(
            "Inspection rule execution failed. Reason: {reason}"
        ))
    }

    fn action(reason: impl std::fmt::Display) -> Failure {
        Failure::Reported(format!(
            "Inspection rule action execution failed. Reason: {reason}"
        ))
    }

    fn condition(reason: impl std::fmt::Display) -> Failure {
        Failure::Reported(format!(
            "Inspection rule condition check failed. Reason: {reason}"
        ))
    }

    fn message(self, rule: Uuid, node: Uuid) -> String {
        match self {
            Failure::Reported(m) => m,
            Failure::Unexpected(e) => format!("Failed to apply rule {rule} to node {node}: {e}"),
        }
    }
}

/// Arguments Python-formatted outside loops (inside one, all are).
fn formatted_args(op: &str) -> &'static [&'static str] {
    match op {
        "eq" | "lt" | "gt" => &["values"],
        "is-empty" | "is-true" | "is-false" | "is-none" | "one-of" | "matches" | "contains" => {
            &["value"]
        }
        "in-net" => &["address", "subnet"],
        "log" => &["msg"],
        "set-attribute"
        | "extend-attribute"
        | "set-capability"
        | "set-plugin-data"
        | "extend-plugin-data"
        | "set-port-attribute"
        | "extend-port-attribute" => &["value"],
        "api-call" => &["url"],
        _ => &[],
    }
}

/// Splits an operator into its name and whether it is negated (`!eq`).
fn parse_op(op: &str) -> Result<(&str, bool), Failure> {
    let op = op.trim();
    if op.matches('!').count() > 1 {
        return Err(Failure::Unexpected(format!(
            "operator {op:?} has more than one '!': one negates it"
        )));
    }
    Ok(match op.strip_prefix('!') {
        Some(rest) => (rest.trim(), true),
        None => (op, false),
    })
}

/// The node as Ironic's node object shows its fields to a format string.
fn node_view(node: &Node, masked: bool) -> Map<String, Value> {
    let mut m = match serde_json::to_value(node) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    m.remove("interfaces");
    for kind in crate::model::Interfaces::KINDS {
        let v = node.interfaces.get(kind).unwrap_or_default();
        m.insert(format!("{kind}_interface"), Value::from(v));
    }
    if masked {
        let shown = crate::redact::Masked {
            map: &m,
            extra: &[],
        };
        if let Ok(Value::Object(safe)) = serde_json::to_value(&shown) {
            return safe;
        }
    }
    m
}

/// A path of node or port attributes: `a/b/c` or `a.b.c`.
fn attribute_path(path: &Value) -> Result<Vec<String>, String> {
    let Value::String(p) = path else {
        return Err(format!(
            "the path must be a string, not {}",
            pyfmt::type_name(path)
        ));
    };
    Ok(if p.contains('/') {
        p.trim_matches('/').split('/').map(str::to_string).collect()
    } else {
        p.split('.').map(str::to_string).collect()
    })
}

/// A plugin-data path: `a.b.c`, or a list of keys.
fn plugin_data_path(path: &Value) -> Result<Vec<String>, String> {
    match path {
        Value::String(p) => Ok(p.split('.').map(str::to_string).collect()),
        Value::Array(a) => a
            .iter()
            .map(|k| {
                k.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("plugin data key {k} is not a string"))
            })
            .collect(),
        other => Err(format!(
            "the path must be a string or a list of keys, not {}",
            pyfmt::type_name(other)
        )),
    }
}

/// What an attribute or plugin-data action does at the end of its path.
enum Edit {
    Set(Value),
    Extend { value: Value, unique: bool },
    Delete,
}

/// The map at `keys` under `v`, created (as empty maps) where missing.
fn descend<'v>(mut v: &'v mut Value, keys: &[String]) -> Result<&'v mut Value, String> {
    for k in keys {
        let Value::Object(m) = v else {
            return Err(format!(
                "cannot go into {k:?}: its parent is a {}, not a dict",
                pyfmt::type_name(v)
            ));
        };
        v = m
            .entry(k.clone())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    Ok(v)
}

/// Applies `edit` at `keys` (at least one) under `v`, Ironic's way:
/// missing maps on the way are created (not for a delete); an extended
/// value must be a list (created empty when missing).
fn edit_tree(v: &mut Value, keys: &[String], edit: Edit) -> Result<(), String> {
    let (last, parents) = keys.split_last().ok_or("an empty path")?;
    if let Edit::Delete = edit {
        let mut cur = v;
        for k in parents {
            cur = match cur {
                Value::Object(m) => m.get_mut(k).ok_or_else(|| format!("no key {k:?}"))?,
                other => {
                    return Err(format!(
                        "cannot go into {k:?}: its parent is a {}",
                        pyfmt::type_name(other)
                    ))
                }
            };
        }
        return match cur {
            Value::Object(m) => m
                .remove(last)
                .map(|_| ())
                .ok_or_else(|| format!("no key {last:?}")),
            other => Err(format!(
                "cannot delete {last:?}: its parent is a {}",
                pyfmt::type_name(other)
            )),
        };
    }
    let parent = descend(v, parents)?;
    let Value::Object(m) = parent else {
        return Err(format!(
            "cannot set {last:?}: its parent is a {}, not a dict",
            pyfmt::type_name(parent)
        ));
    };
    match edit {
        Edit::Set(value) => {
            m.insert(last.clone(), value);
        }
        Edit::Extend { value, unique } => {
            let list = m
                .entry(last.clone())
                .or_insert_with(|| Value::Array(Vec::new()));
            extend(list, value, unique)?;
        }
        Edit::Delete => {}
    }
    Ok(())
}

fn extend(list: &mut Value, value: Value, unique: bool) -> Result<(), String> {
    let Value::Array(items) = list else {
        return Err(format!("it is a {}, not a list", pyfmt::type_name(list)));
    };
    if !unique || !items.iter().any(|x| pyfmt::eq(x, &value)) {
        items.push(value);
    }
    Ok(())
}

/// The JSON-patch path of a top-level field.
fn top_path(top: &str) -> String {
    format!("/{}", top.replace('~', "~0"))
}

/// Turns an edit of `parts` (a top-level field, then keys inside it) of a
/// document into the one patch operation that makes it.
fn patch_op(doc: &Map<String, Value>, parts: &[String], edit: Edit) -> Result<PatchOp, String> {
    let (top, inner) = parts.split_first().ok_or("an empty path")?;
    let op = |op: &str, value: Option<Value>| PatchOp {
        op: op.to_string(),
        path: top_path(top),
        value,
        from: None,
    };
    // A field the document lacks: the patch path refuses it in its words.
    let Some(current) = doc.get(top) else {
        return Ok(op("add", Some(Value::Null)));
    };
    if inner.is_empty() {
        return Ok(match edit {
            Edit::Set(v) => op("add", Some(v)),
            Edit::Delete => op("remove", None),
            Edit::Extend { value, unique } => {
                let mut list = current.clone();
                extend(&mut list, value, unique)?;
                op("add", Some(list))
            }
        });
    }
    let mut value = current.clone();
    edit_tree(&mut value, inner, edit)?;
    Ok(op("add", Some(value)))
}

/// What a value looks like in a message: hidden for sensitive rules and
/// secret-looking paths, credentials masked otherwise.
fn shown(value: &Value, sensitive: bool, path: &str) -> String {
    let secret = ["password", "secret", "token", "key"]
        .iter()
        .any(|w| path.to_ascii_lowercase().contains(w));
    if sensitive || secret {
        "******".into()
    } else {
        crate::redact::mask_text(&pyfmt::to_str(value, false)).into_owned()
    }
}

fn as_text(v: Option<&Value>) -> String {
    v.map(|v| pyfmt::to_str(v, false)).unwrap_or_default()
}

struct Engine<'a> {
    node: &'a mut Node,
    ports: &'a mut [Port],
    registry: &'a Registry,
    inventory: &'a Value,
    plugin_data: Value,
    out: Outcome,
}

impl Engine<'_> {
    fn note(&mut self, severity: Severity, text: String) {
        self.out.notes.push(Note { severity, text });
    }

    fn rule(&mut self, rule: &InspectionRule, masked: bool) -> Result<(), Failure> {
        for c in &rule.conditions {
            if !self.condition(c, masked)? {
                return Ok(());
            }
        }
        let mut done = Vec::new();
        for a in &rule.actions {
            self.action(rule, a, masked, &mut done)?;
        }
        let name = match &rule.description {
            Some(d) if !d.is_empty() => format!("inspection rule {} ({d})", rule.uuid),
            _ => format!("inspection rule {}", rule.uuid),
        };
        let text = if rule.sensitive {
            format!("{name} applied (sensitive: its actions are not shown)")
        } else {
            format!("{name} applied: {}", done.join("; "))
        };
        self.note(Severity::Info, text);
        Ok(())
    }

    /// Normalized arguments of an operation, formatted as Ironic formats
    /// them (`item` set inside a loop).
    fn args(
        &self,
        sig: &Signature,
        op: &str,
        operation: &Value,
        item: Option<&Value>,
        masked: bool,
    ) -> Result<Map<String, Value>, Failure> {
        let empty = Value::Object(Map::new());
        let raw = operation.get("args").unwrap_or(&empty);
        let mut args = check_args(sig, raw).map_err(Failure::Unexpected)?;
        args.remove("plugin_data");
        // Log and fail messages reach the history and last_error: their
        // node shows no secrets.
        let node = node_view(&*self.node, matches!(op, "log" | "fail"));
        let scope = pyfmt::Scope {
            inventory: self.inventory,
            plugin_data: &self.plugin_data,
            node: &node,
            item,
            mask: masked,
        };
        let formatted = formatted_args(op);
        Ok(args
            .into_iter()
            .map(|(k, v)| {
                let v = if item.is_some() || formatted.contains(&k.as_str()) {
                    interpolate(&v, &scope, op, item.is_some())
                } else {
                    v
                };
                (k, v)
            })
            .collect())
    }

    fn condition(&self, c: &Value, masked: bool) -> Result<bool, Failure> {
        let raw = c.get("op").and_then(Value::as_str).unwrap_or_default();
        let (op, negated) = parse_op(raw)?;
        let sig = signature(op, true)
            .ok_or_else(|| Failure::Unexpected(format!("Unsupported operator: '{op}'")))?;
        let eval = |item: Option<&Value>| -> Result<bool, Failure> {
            let mut args = self.args(sig, op, c, item, masked)?;
            if item.is_some() && sig.optional.contains(&"force_strings") {
                args.insert("force_strings".into(), Value::Bool(true));
            }
            Ok(check(op, &args)? != negated)
        };
        let multiple = c.get("multiple").and_then(Value::as_str).unwrap_or("any");
        match c.get("loop").filter(|l| pyfmt::truthy(l)) {
            Some(item @ Value::Object(_)) => eval(Some(item)),
            Some(Value::Array(items)) => {
                let mut results = Vec::new();
                for item in items {
                    let r = eval(Some(item))?;
                    match multiple {
                        "first" if r => return Ok(true),
                        "last" => results = vec![r],
                        _ => results.push(r),
                    }
                }
                Ok(match multiple {
                    "any" => results.iter().any(|r| *r),
                    "all" => results.iter().all(|r| *r),
                    _ => results.first().copied().unwrap_or(false),
                })
            }
            _ => eval(None),
        }
    }

    fn action(
        &mut self,
        rule: &InspectionRule,
        a: &Value,
        masked: bool,
        done: &mut Vec<String>,
    ) -> Result<(), Failure> {
        let op = a.get("op").and_then(Value::as_str).unwrap_or_default();
        let sig = signature(op, false)
            .ok_or_else(|| Failure::Unexpected(format!("Unsupported action: '{op}'")))?;
        match a.get("loop").filter(|l| pyfmt::truthy(l)) {
            Some(item @ Value::Object(_)) => {
                let args = self.args(sig, op, a, Some(item), masked)?;
                self.act(rule, op, args, done)
            }
            Some(Value::Array(items)) => {
                for item in items {
                    let args = self.args(sig, op, a, Some(item), masked)?;
                    self.act(rule, op, args, done)?;
                }
                Ok(())
            }
            _ => {
                let args = self.args(sig, op, a, None, masked)?;
                self.act(rule, op, args, done)
            }
        }
    }

    fn act(
        &mut self,
        rule: &InspectionRule,
        op: &str,
        args: Map<String, Value>,
        done: &mut Vec<String>,
    ) -> Result<(), Failure> {
        let arg = |k: &str| args.get(k).cloned().unwrap_or(Value::Null);
        let truthy = |k: &str| args.get(k).is_some_and(pyfmt::truthy);
        let sensitive = rule.sensitive;
        match op {
            "fail" => Err(Failure::Reported(format!(
                "Failed to inspect hardware. Reason: {}",
                crate::redact::mask_text(&as_text(args.get("msg")))
            ))),
            "log" => {
                let level = match args.get("level") {
                    None => "info".to_string(),
                    Some(Value::String(l)) => l.to_lowercase(),
                    Some(other) => {
                        return Err(Failure::Unexpected(format!(
                            "the log level must be a string, not {}",
                            pyfmt::type_name(other)
                        )))
                    }
                };
                let severity = match level.as_str() {
                    "debug" | "info" => Severity::Info,
                    "warning" => Severity::Warning,
                    "error" | "critical" => Severity::Error,
                    _ => {
                        return Err(Failure::execution(format!(
                            "Invalid log level: {level}. Choose from debug, info, warning, error, critical"
                        )))
                    }
                };
                let msg = if sensitive {
                    "(message hidden: the rule is sensitive)".to_string()
                } else {
                    crate::redact::mask_text(&as_text(args.get("msg"))).into_owned()
                };
                self.note(
                    severity,
                    format!("inspection rule {} ({level}): {msg}", rule.uuid),
                );
                done.push("log".into());
                Ok(())
            }
            "set-attribute" | "extend-attribute" | "del-attribute" => {
                let path = arg("path");
                let text = pyfmt::to_str(&path, false);
                let edit = match op {
                    "set-attribute" => Edit::Set(arg("value")),
                    "extend-attribute" => Edit::Extend {
                        value: arg("value"),
                        unique: truthy("unique"),
                    },
                    _ => Edit::Delete,
                };
                let value = arg("value");
                self.edit_node(&path, edit).map_err(|e| {
                    Failure::action(match op {
                        "set-attribute" => format!(
                            "Failed to set attribute {text} with value {}: {e}",
                            shown(&value, sensitive, &text)
                        ),
                        "extend-attribute" => format!("Failed to extend attribute {text}: {e}"),
                        _ => format!("Failed to delete attribute at {text}: {e}"),
                    })
                })?;
                done.push(format!("{op} {text}"));
                Ok(())
            }
            "set-capability" => {
                let name = arg("name");
                let (Value::String(n), Value::String(v)) = (&name, &arg("value")) else {
                    return Err(Failure::action(format!(
                        "Failed to set capability {}: the name and value must be strings",
                        pyfmt::to_str(&name, false)
                    )));
                };
                let new = format!("{n}:{v}");
                // Appended as Ironic does, even when the name is there.
                let caps = match self.node.properties.get("capabilities") {
                    Some(Value::String(c)) if !c.is_empty() => format!("{c},{new}"),
                    None | Some(Value::Null) => new,
                    Some(Value::String(_)) => new,
                    Some(other) => {
                        return Err(Failure::action(format!(
                            "Failed to set capability {n}: capabilities are a {}, not a string",
                            pyfmt::type_name(other)
                        )))
                    }
                };
                self.node
                    .properties
                    .insert("capabilities".into(), Value::String(caps));
                done.push(format!("set-capability {n}"));
                Ok(())
            }
            "unset-capability" => {
                let name = pyfmt::to_str(&arg("name"), false);
                let caps = match self.node.properties.get("capabilities") {
                    None => String::new(),
                    Some(Value::String(c)) => c.clone(),
                    Some(other) => {
                        return Err(Failure::action(format!(
                        "Failed to unset capability {name}: capabilities are a {}, not a string",
                        pyfmt::type_name(other)
                    )))
                    }
                };
                let prefix = format!("{name}:");
                let kept: Vec<&str> = caps
                    .split(',')
                    .filter(|c| !c.starts_with(&prefix))
                    .collect();
                self.node
                    .properties
                    .insert("capabilities".into(), Value::String(kept.join(",")));
                done.push(format!("unset-capability {name}"));
                Ok(())
            }
            "add-trait" => {
                let name = arg("name");
                let n = match &name {
                    Value::String(n) if traits::is_valid(n) => n.clone(),
                    _ => {
                        return Err(Failure::action(format!(
                            "Failed to add new trait {}: not a standard trait nor CUSTOM_ followed by upper-case letters, digits and underscores",
                            pyfmt::to_str(&name, false)
                        )))
                    }
                };
                if !self.node.traits.contains(&n) {
                    if self.node.traits.len() >= traits::MAX_PER_NODE {
                        return Err(Failure::action(format!(
                            "Failed to add new trait {n}: the node would have more than {} traits",
                            traits::MAX_PER_NODE
                        )));
                    }
                    let mut all = std::mem::take(&mut self.node.traits);
                    all.push(n.clone());
                    self.node.traits = traits::normalize(all);
                }
                done.push(format!("add-trait {n}"));
                Ok(())
            }
            "remove-trait" => {
                let name = pyfmt::to_str(&arg("name"), false);
                match self.node.traits.iter().position(|t| *t == name) {
                    Some(i) => {
                        self.node.traits.remove(i);
                        done.push(format!("remove-trait {name}"));
                    }
                    None => self.note(
                        Severity::Warning,
                        format!(
                            "inspection rule {}: the node has no trait {name} to remove",
                            rule.uuid
                        ),
                    ),
                }
                Ok(())
            }
            "set-plugin-data" | "extend-plugin-data" => {
                let path = arg("path");
                let text = pyfmt::to_str(&path, false);
                let value = arg("value");
                let r = plugin_data_path(&path).and_then(|keys| {
                    if op == "set-plugin-data" {
                        return edit_tree(&mut self.plugin_data, &keys, Edit::Set(value));
                    }
                    // A missing or empty value starts a new list.
                    let existing = lookup(&self.plugin_data, &keys).filter(|v| pyfmt::truthy(v));
                    match existing {
                        Some(_) => {
                            let list = descend(&mut self.plugin_data, &keys)?;
                            extend(list, value, truthy("unique"))
                        }
                        None => edit_tree(
                            &mut self.plugin_data,
                            &keys,
                            Edit::Set(Value::Array(vec![value])),
                        ),
                    }
                });
                r.map_err(|e| {
                    let verb = if op == "set-plugin-data" {
                        "set"
                    } else {
                        "extend"
                    };
                    Failure::action(format!("Failed to {verb} plugin data at {text}: {e}"))
                })?;
                done.push(format!("{op} {text}"));
                Ok(())
            }
            "unset-plugin-data" => {
                let path = arg("path");
                let text = pyfmt::to_str(&path, false);
                let keys = plugin_data_path(&path).map_err(|e| {
                    Failure::action(format!("Failed to unset plugin data at {text}: {e}"))
                })?;
                if unset(&mut self.plugin_data, &keys) {
                    done.push(format!("unset-plugin-data {text}"));
                } else {
                    let what = if sensitive { "a path" } else { text.as_str() };
                    self.note(
                        Severity::Warning,
                        format!(
                            "inspection rule {}: unset-plugin-data found no {what} in the plugin data",
                            rule.uuid
                        ),
                    );
                }
                Ok(())
            }
            "set-port-attribute" | "extend-port-attribute" | "del-port-attribute" => {
                let port_id = pyfmt::to_str(&arg("port_id"), false);
                let path = arg("path");
                let text = pyfmt::to_str(&path, false);
                let Some(i) = self
                    .ports
                    .iter()
                    .position(|p| p.uuid.to_string() == port_id)
                else {
                    return Err(Failure::Reported(format!(
                        "Port {port_id} could not be found."
                    )));
                };
                let edit = match op {
                    "set-port-attribute" => Edit::Set(arg("value")),
                    "extend-port-attribute" => Edit::Extend {
                        value: arg("value"),
                        unique: truthy("unique"),
                    },
                    _ => Edit::Delete,
                };
                let value = arg("value");
                let r = attribute_path(&path).and_then(|parts| {
                    let doc = match serde_json::to_value(&self.ports[i]) {
                        Ok(Value::Object(m)) => m,
                        _ => Map::new(),
                    };
                    let op = patch_op(&doc, &parts, edit)?;
                    crate::conductor::patch_port(&self.ports[i], &[op]).map_err(|e| e.to_string())
                });
                let new = r.map_err(|e| {
                    Failure::action(match op {
                        "set-port-attribute" => format!(
                            "Failed to set attribute {text} with value {} for port {port_id}: {e}",
                            shown(&value, sensitive, &text)
                        ),
                        "extend-port-attribute" => {
                            format!("Failed to extend attribute {text} for port {port_id}: {e}")
                        }
                        _ => format!("Failed to delete attribute {text} for port {port_id}: {e}"),
                    })
                })?;
                let uuid = new.uuid;
                self.ports[i] = new;
                if !self.out.ports.contains(&uuid) {
                    self.out.ports.push(uuid);
                }
                done.push(format!("{op} {port_id} {text}"));
                Ok(())
            }
            "api-call" => {
                let url = if sensitive {
                    "(hidden: the rule is sensitive)".to_string()
                } else {
                    crate::redact::redact(&as_text(args.get("url")))
                };
                self.note(
                    Severity::Warning,
                    format!(
                        "inspection rule {}: api-call to {url} skipped: rackboot makes no outbound calls for rules",
                        rule.uuid
                    ),
                );
                Ok(())
            }
            other => Err(Failure::Unexpected(format!(
                "Unsupported action: '{other}'"
            ))),
        }
    }

    /// Edits the node's attribute at `path` through the node PATCH path.
    fn edit_node(&mut self, path: &Value, edit: Edit) -> Result<(), String> {
        let parts = attribute_path(path)?;
        let Value::Object(doc) = update::patchable_doc(&*self.node) else {
            return Err("the node cannot be read".into());
        };
        let op = patch_op(&doc, &parts, edit)?;
        *self.node =
            update::apply(&*self.node, &[op], self.registry, None).map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// The value at `keys`, if every step is a map holding the key.
fn lookup<'v>(mut v: &'v Value, keys: &[String]) -> Option<&'v Value> {
    for k in keys {
        v = v.as_object()?.get(k)?;
    }
    Some(v)
}

/// Removes the value at `keys`; a map left empty by it goes too (one
/// level, as Ironic). False when there was nothing to remove.
fn unset(root: &mut Value, keys: &[String]) -> bool {
    let Some((last, parents)) = keys.split_last() else {
        return false;
    };
    let holds = lookup(root, parents)
        .and_then(Value::as_object)
        .is_some_and(|m| m.contains_key(last));
    if !holds {
        return false;
    }
    let mut cur = root;
    if let Some((parent_key, grand)) = parents.split_last() {
        for k in grand {
            cur = &mut cur[k.as_str()];
        }
        let Value::Object(gm) = cur else { return false };
        let only = gm
            .get(parent_key)
            .and_then(Value::as_object)
            .is_some_and(|m| m.len() == 1);
        if only {
            gm.remove(parent_key);
            return true;
        }
        cur = &mut gm[parent_key.as_str()];
    }
    if let Value::Object(m) = cur {
        m.remove(last);
    }
    true
}

/// Ironic's interpolation of an argument: strings formatted (twice inside
/// a loop, so a loop item may itself name inventory fields), maps and lists
/// formatted through.
fn interpolate(v: &Value, scope: &pyfmt::Scope, op: &str, in_loop: bool) -> Value {
    let first;
    let v = match v {
        Value::String(s) if in_loop => {
            first = safe_format(s, scope, op);
            &first
        }
        other => other,
    };
    match v {
        Value::String(s) => safe_format(s, scope, op),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| {
                    let key = pyfmt::to_str(&safe_format(k, scope, op), false);
                    (key, interpolate(x, scope, op, in_loop))
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| match x {
                    Value::String(s) => safe_format(s, scope, op),
                    other => interpolate(other, scope, op, in_loop),
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Formats `s`; a failed format leaves it as it is, except that a missing
/// field is "no value" (`None`) for `is-empty`.
fn safe_format(s: &str, scope: &pyfmt::Scope, op: &str) -> Value {
    match pyfmt::format(s, scope) {
        Ok(t) => Value::String(t),
        Err(pyfmt::FormatError::MissingKey) if op == "is-empty" => Value::Null,
        Err(_) => Value::String(s.to_string()),
    }
}

/// Evaluates condition `op` (not negated) on its arguments.
fn check(op: &str, args: &Map<String, Value>) -> Result<bool, Failure> {
    let null = Value::Null;
    let arg = |k: &str| args.get(k).unwrap_or(&null);
    let value = arg("value");
    match op {
        "eq" | "lt" | "gt" => {
            let Value::Array(values) = arg("values") else {
                return Err(Failure::condition(format!(
                    "Failed to check condition: '{op}' on values: {}: Expected list for 'values', got: {}",
                    pyfmt::to_str(arg("values"), false),
                    pyfmt::type_name(arg("values"))
                )));
            };
            let values: Vec<Value> = if pyfmt::truthy(arg("force_strings")) {
                values
                    .iter()
                    .map(|v| Value::String(pyfmt::to_str(v, false)))
                    .collect()
            } else {
                values.clone()
            };
            for pair in values.windows(2) {
                let holds = match op {
                    "eq" => pyfmt::eq(&pair[0], &pair[1]),
                    "lt" => {
                        pyfmt::cmp(&pair[0], &pair[1], "<").map_err(Failure::Unexpected)?
                            == std::cmp::Ordering::Less
                    }
                    _ => {
                        pyfmt::cmp(&pair[0], &pair[1], ">").map_err(Failure::Unexpected)?
                            == std::cmp::Ordering::Greater
                    }
                };
                if !holds {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        "is-empty" => Ok(["", "None", "[]", "{}"].contains(&pyfmt::to_str(value, false).as_str())),
        "is-none" => Ok(value.is_null()),
        "is-true" => Ok(match value {
            Value::Bool(b) => *b,
            Value::Number(_) => pyfmt::truthy(value),
            Value::String(s) => matches!(s.to_lowercase().as_str(), "yes" | "true"),
            _ => false,
        }),
        "is-false" => Ok(match value {
            Value::Bool(b) => !*b,
            Value::Number(_) => !pyfmt::truthy(value),
            Value::String(s) => matches!(s.to_lowercase().as_str(), "no" | "false"),
            other => other.is_null(),
        }),
        "one-of" => {
            let empty = Value::Array(Vec::new());
            let values = args.get("values").unwrap_or(&empty);
            pyfmt::contains(values, value).map_err(Failure::Unexpected)
        }
        "in-net" => in_net(arg("address"), arg("subnet")),
        "matches" | "contains" => {
            let Value::String(re) = arg("regex") else {
                return Err(Failure::Unexpected(format!(
                    "the regex must be a string, not {}",
                    pyfmt::type_name(arg("regex"))
                )));
            };
            regex::Regex::new(re)
                .map_err(|e| Failure::execution(format!("invalid regular expression: {e}")))?;
            let text = pyfmt::to_str(value, false);
            if op == "contains" {
                return Ok(regex::Regex::new(re).is_ok_and(|r| r.is_match(&text)));
            }
            if re.is_empty() {
                return Err(Failure::Unexpected(
                    "an empty regex cannot be anchored".into(),
                ));
            }
            // Anchored at the start and, unless it says so itself, the end.
            let anchored = if re.ends_with('$') {
                format!(r"\A(?:{re})")
            } else {
                format!(r"\A(?:{re}$)")
            };
            regex::Regex::new(&anchored)
                .map(|r| r.is_match(&text))
                .map_err(|e| Failure::execution(format!("invalid regular expression: {e}")))
        }
        other => Err(Failure::Unexpected(format!(
            "Unsupported operator: '{other}'"
        ))),
    }
}

/// Whether `address` is in `subnet` (`10.0.0.0/8`, `10.0.0.0/255.0.0.0`, a
/// bare address, or IPv6); an address of the other family is not.
fn in_net(address: &Value, subnet: &Value) -> Result<bool, Failure> {
    use std::net::IpAddr;
    let invalid = |why: String| Failure::execution(format!("invalid value: {why}"));
    let Value::String(net) = subnet else {
        return Err(invalid(format!(
            "the subnet must be a string, not {}",
            pyfmt::type_name(subnet)
        )));
    };
    let (base, prefix) = net.trim().split_once('/').unwrap_or((net.trim(), ""));
    let base: IpAddr = base
        .parse()
        .map_err(|_| invalid(format!("invalid IPNetwork {net}")))?;
    let width: u32 = if base.is_ipv4() { 32 } else { 128 };
    let prefix: u32 = if prefix.is_empty() {
        width
    } else if let Ok(p) = prefix.parse::<u32>() {
        if p > width {
            return Err(invalid(format!("invalid IPNetwork {net}")));
        }
        p
    } else {
        // A dotted netmask (IPv4 only), contiguous.
        match prefix.parse::<std::net::Ipv4Addr>() {
            Ok(m)
                if base.is_ipv4() && {
                    let host = !u32::from(m);
                    host & host.wrapping_add(1) == 0
                } =>
            {
                u32::from(m).count_ones()
            }
            _ => return Err(invalid(format!("invalid IPNetwork {net}"))),
        }
    };
    let text = pyfmt::to_str(address, false);
    let addr: IpAddr = text.trim().parse().map_err(|_| {
        Failure::Unexpected(format!("failed to detect a valid IP address from {text:?}"))
    })?;
    let bits = |a: IpAddr| -> u128 {
        match a {
            IpAddr::V4(v) => u128::from(u32::from(v)),
            IpAddr::V6(v) => u128::from(v),
        }
    };
    if addr.is_ipv4() != base.is_ipv4() {
        return Ok(false);
    }
    let shift = width - prefix;
    let mask = if shift >= 128 { 0 } else { u128::MAX << shift };
    let mask = if width == 32 {
        mask & 0xffff_ffff
    } else {
        mask
    };
    Ok(bits(addr) & mask == bits(base) & mask)
}
