//! The pieces of Python that Ironic's rules are written against, over JSON
//! values: `str.format` with named fields (`{inventory[cpu][count]}`,
//! `{node.driver_info[ipmi_address]}`), `str()` and `repr()` of a value,
//! `==`, `<` and `in`, and truthiness. Rules written for Ironic behave the
//! same here because these behave the same.
//!
//! Not covered: format specs (`{x:>8}`) and nested fields in them, which
//! leave the text unformatted, as a failed format does in Ironic. A map's
//! `str()` lists its keys sorted, not in the order the agent posted them.

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::{Map, Value};

/// Keys whose values the rules see as `***` in the inventory and plugin
/// data when secrets are masked (Ironic's list).
pub const MASKED_KEYS: &[&str] = &["password", "auth_token", "bmc_password"];

const STARS: &str = "***";

/// What a format field can name.
pub struct Scope<'a> {
    pub inventory: &'a Value,
    /// The plugin data (an object).
    pub plugin_data: &'a Value,
    /// The node as Ironic's node object shows it (field → value).
    pub node: &'a Map<String, Value>,
    /// The loop item, inside a loop.
    pub item: Option<&'a Value>,
    /// Whether `MASKED_KEYS` read as `***` in the inventory and plugin data.
    pub mask: bool,
}

/// Why a format failed. Only a missing key is told apart: Ironic's
/// `is-empty` reads it as "no value".
#[derive(Debug, PartialEq)]
pub enum FormatError {
    MissingKey,
    Other(String),
}

/// A value reached by a field name.
enum Reached<'a> {
    Node(&'a Map<String, Value>),
    Json { v: Cow<'a, Value>, masked: bool },
}

/// `text.format(**scope)`.
pub fn format(text: &str, scope: &Scope) -> Result<String, FormatError> {
    let other = |m: &str| Err(FormatError::Other(m.to_string()));
    let mut out = String::new();
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '}' => {
                if chars.peek().map(|x| x.1) == Some('}') {
                    chars.next();
                    out.push('}');
                } else {
                    return other("Single '}' encountered in format string");
                }
            }
            '{' => {
                if chars.peek().map(|x| x.1) == Some('{') {
                    chars.next();
                    out.push('{');
                    continue;
                }
                // The field runs to the matching '}' (nested braces count).
                let start = i + 1;
                let mut depth = 1;
                let mut end = None;
                for (j, c) in chars.by_ref() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = Some(j);
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                let Some(end) = end else {
                    return other("expected '}' before end of string");
                };
                out.push_str(&field(&text[start..end], scope)?);
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

/// One replacement field (between the braces): name, conversion, spec.
fn field(f: &str, scope: &Scope) -> Result<String, FormatError> {
    let other = |m: String| Err(FormatError::Other(m));
    // The name ends at the first ':' or '!' outside brackets.
    let mut name_end = f.len();
    let mut in_bracket = false;
    for (i, c) in f.char_indices() {
        match c {
            '[' => in_bracket = true,
            ']' => in_bracket = false,
            '{' if !in_bracket => return other("unexpected '{' in field name".into()),
            ':' | '!' if !in_bracket => {
                name_end = i;
                break;
            }
            _ => {}
        }
    }
    let (name, rest) = f.split_at(name_end);
    let (conversion, spec) = match rest.strip_prefix('!') {
        Some(r) => {
            let mut it = r.chars();
            let conv = it.next();
            let after = it.as_str();
            if !(after.is_empty() || after.starts_with(':')) {
                return other("expected ':' after conversion specifier".into());
            }
            match conv {
                Some(c @ ('r' | 's' | 'a')) => (Some(c), after.strip_prefix(':').unwrap_or("")),
                Some(c) => return other(format!("Unknown conversion specifier {c}")),
                None => {
                    return other("end of string while looking for conversion specifier".into())
                }
            }
        }
        None => (None, rest.strip_prefix(':').unwrap_or("")),
    };
    let reached = resolve(name, scope)?;
    let text = match (&reached, conversion) {
        (Reached::Node(m), _) => repr_map(m, false),
        (Reached::Json { v, masked }, Some('r' | 'a')) => repr(v, *masked),
        (Reached::Json { v, masked }, _) => to_str(v, *masked),
    };
    if !spec.is_empty() {
        return other(format!("format spec {spec:?} is not supported"));
    }
    Ok(text)
}

/// Follows a field name: `arg`, then `.attr` and `[key]` parts.
fn resolve<'a>(name: &str, scope: &'a Scope) -> Result<Reached<'a>, FormatError> {
    let other = |m: String| Err(FormatError::Other(m));
    let first_end = name.find(['.', '[']).unwrap_or(name.len());
    let (arg, mut rest) = name.split_at(first_end);
    if arg.is_empty() || arg.bytes().all(|b| b.is_ascii_digit()) {
        return other("positional fields are not available".into());
    }
    let mut cur = match arg {
        "inventory" => Reached::Json {
            v: Cow::Borrowed(scope.inventory),
            masked: scope.mask,
        },
        "plugin_data" => Reached::Json {
            v: Cow::Borrowed(scope.plugin_data),
            masked: scope.mask,
        },
        "node" => Reached::Node(scope.node),
        "item" => match scope.item {
            Some(v) => Reached::Json {
                v: Cow::Borrowed(v),
                masked: false,
            },
            None => return Err(FormatError::MissingKey),
        },
        _ => return Err(FormatError::MissingKey),
    };
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let attr = &r[..end];
            if attr.is_empty() {
                return other("Empty attribute in format string".into());
            }
            cur = match cur {
                Reached::Node(m) => match m.get(attr) {
                    Some(v) => Reached::Json {
                        v: Cow::Borrowed(v),
                        masked: false,
                    },
                    None => return other(format!("the node has no attribute '{attr}'")),
                },
                Reached::Json { v, .. } => {
                    return other(format!(
                        "'{}' object has no attribute '{attr}'",
                        type_name(&v)
                    ))
                }
            };
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let Some(end) = r.find(']') else {
                return other("Missing ']' in format string".into());
            };
            let key = &r[..end];
            if key.is_empty() {
                return other("Empty attribute in format string".into());
            }
            cur = match cur {
                Reached::Node(_) => return other("the node is not subscriptable".into()),
                Reached::Json { v, masked } => Reached::Json {
                    v: index(v, key, masked)?,
                    masked,
                },
            };
            rest = &r[end + 1..];
            if !(rest.is_empty() || rest.starts_with(['.', '['])) {
                return other("Only '.' or '[' may follow ']' in format field specifier".into());
            }
        } else {
            return other(format!("bad field name {name:?}"));
        }
    }
    Ok(cur)
}

/// `value[key]`: digits index a list or string, other text keys a map
/// (as Python reads the key inside brackets).
fn index<'a>(v: Cow<'a, Value>, key: &str, masked: bool) -> Result<Cow<'a, Value>, FormatError> {
    let digits = key.bytes().all(|b| b.is_ascii_digit());
    let number = if digits {
        key.parse::<usize>().ok()
    } else {
        None
    };
    let out_of_range = || FormatError::Other("index out of range".into());
    let pick = |v: &Value| -> Result<Value, FormatError> {
        match v {
            Value::Object(m) if !digits => match m.get(key) {
                Some(_) if masked && MASKED_KEYS.contains(&key) => Ok(Value::from(STARS)),
                Some(x) => Ok(x.clone()),
                None => Err(FormatError::MissingKey),
            },
            // An integer key in a map of text keys is never there.
            Value::Object(_) => Err(FormatError::MissingKey),
            Value::Array(a) if digits => number
                .and_then(|n| a.get(n))
                .cloned()
                .ok_or_else(out_of_range),
            Value::String(s) if digits => number
                .and_then(|n| s.chars().nth(n))
                .map(|c| Value::String(c.to_string()))
                .ok_or_else(out_of_range),
            other => Err(FormatError::Other(format!(
                "'{}' object is not subscriptable by {key:?}",
                type_name(other)
            ))),
        }
    };
    match v {
        // Borrowed values stay borrowed where no masking applies.
        Cow::Borrowed(b) => match b {
            Value::Object(m) if !digits && (!masked || !MASKED_KEYS.contains(&key)) => {
                m.get(key).map(Cow::Borrowed).ok_or(FormatError::MissingKey)
            }
            Value::Array(a) if digits => number
                .and_then(|n| a.get(n))
                .map(Cow::Borrowed)
                .ok_or_else(out_of_range),
            other => pick(other).map(Cow::Owned),
        },
        Cow::Owned(o) => pick(&o).map(Cow::Owned),
    }
}

/// Python's type name of a JSON value.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// `str(value)`.
pub fn to_str(v: &Value, masked: bool) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => repr(other, masked),
    }
}

/// `repr(value)` (masked: `MASKED_KEYS` at any depth show as `'***'`).
pub fn repr(v: &Value, masked: bool) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(f)) => float(f),
            _ => n.to_string(),
        },
        Value::String(s) => quote(s),
        Value::Array(a) => format!(
            "[{}]",
            a.iter()
                .map(|x| repr(x, masked))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Object(m) => repr_map(m, masked),
    }
}

fn repr_map(m: &Map<String, Value>, masked: bool) -> String {
    let items: Vec<String> = m
        .iter()
        .map(|(k, v)| {
            let v = if masked && MASKED_KEYS.contains(&k.as_str()) {
                quote(STARS)
            } else {
                repr(v, masked)
            };
            format!("{}: {v}", quote(k))
        })
        .collect();
    format!("{{{}}}", items.join(", "))
}

/// A Python string literal as `repr` writes it.
pub(crate) fn quote(s: &str) -> String {
    let q = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(q);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == q => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(q);
    out
}

/// A float as Python's `repr` writes it (`2.0`, `0.1`, `1e-05`, `1e+16`).
fn float(f: f64) -> String {
    if !f.is_finite() {
        return if f.is_nan() {
            "nan".into()
        } else if f > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    let a = f.abs();
    if a != 0.0 && !(1e-4..1e16).contains(&a) {
        // Rust writes "1e-5"; Python "1e-05".
        let s = format!("{f:e}");
        let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let (sign, digits) = match exp.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', exp),
        };
        return format!("{mant}e{sign}{digits:0>2}");
    }
    let s = format!("{f}");
    if s.contains('.') {
        s
    } else {
        format!("{s}.0")
    }
}

/// A number as Python sees it (bools are 0 and 1).
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

fn integer(v: &Value) -> Option<i128> {
    match v {
        Value::Bool(b) => Some(i128::from(*b)),
        Value::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from)),
        _ => None,
    }
}

/// Python's `a == b`.
pub fn eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| eq(v, w)))
        }
        _ => match (integer(a), integer(b)) {
            (Some(x), Some(y)) => x == y,
            _ => matches!((number(a), number(b)), (Some(x), Some(y)) if x == y),
        },
    }
}

/// Python's ordering of `a` and `b`, or the TypeError it raises.
pub fn cmp(a: &Value, b: &Value, op: &str) -> Result<Ordering, String> {
    match (a, b) {
        (Value::String(x), Value::String(y)) => Ok(x.cmp(y)),
        (Value::Array(x), Value::Array(y)) => {
            for (p, q) in x.iter().zip(y) {
                if !eq(p, q) {
                    return cmp(p, q, op);
                }
            }
            Ok(x.len().cmp(&y.len()))
        }
        _ => match (integer(a), integer(b)) {
            (Some(x), Some(y)) => Ok(x.cmp(&y)),
            _ => match (number(a), number(b)) {
                (Some(x), Some(y)) => Ok(x.partial_cmp(&y).unwrap_or(Ordering::Equal)),
                _ => Err(format!(
                    "'{op}' not supported between instances of '{}' and '{}'",
                    type_name(a),
                    type_name(b)
                )),
            },
        },
    }
}

/// Python's `needle in haystack`, or the TypeError it raises.
pub fn contains(haystack: &Value, needle: &Value) -> Result<bool, String> {
    match haystack {
        Value::Array(a) => Ok(a.iter().any(|x| eq(x, needle))),
        Value::Object(m) => match needle {
            Value::String(k) => Ok(m.contains_key(k)),
            Value::Array(_) | Value::Object(_) => {
                Err(format!("unhashable type: '{}'", type_name(needle)))
            }
            _ => Ok(false),
        },
        Value::String(s) => match needle {
            Value::String(n) => Ok(s.contains(n.as_str())),
            other => Err(format!(
                "'in <string>' requires string as left operand, not {}",
                type_name(other)
            )),
        },
        other => Err(format!(
            "argument of type '{}' is not iterable",
            type_name(other)
        )),
    }
}

/// Python's truthiness.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn format_table() {
        let inventory = json!({
            "cpu": {"count": 4, "architecture": "x86_64", "flags": ["vmx", "aes"]},
            "interfaces": [{"name": "eth0", "mac_address": "52:54:00:aa:bb:cc"}],
            "bmc_address": "192.0.2.10",
            "memory": {"physical_mb": 2048, "total": 2.5},
            "creds": {"user": "admin", "password": "hunter2"},
            "hostname": "node-7"
        });
        let pd = json!({"auto_discovered": true, "root_disk": {"size": 1}});
        let Value::Object(node) = json!({"uuid": "u-1", "name": null,
            "driver_info": {"ipmi_username": "root"}})
        else {
            unreachable!()
        };
        let item = json!({"path": "extra/a", "value": "{inventory[hostname]}"});
        let scope = Scope {
            inventory: &inventory,
            plugin_data: &pd,
            node: &node,
            item: Some(&item),
            mask: true,
        };
        let other = || Err(FormatError::Other(String::new()));
        let cases: Vec<(&str, Result<&str, FormatError>)> = vec![
            ("{inventory[cpu][count]}", Ok("4")),
            ("cpus={inventory[cpu][count]}!", Ok("cpus=4!")),
            ("{inventory[cpu][flags]}", Ok("['vmx', 'aes']")),
            ("{inventory[cpu][flags][1]}", Ok("aes")),
            (
                "{inventory[interfaces][0][mac_address]}",
                Ok("52:54:00:aa:bb:cc"),
            ),
            ("{inventory[hostname][0]}", Ok("n")),
            ("{inventory[memory][total]}", Ok("2.5")),
            ("{plugin_data[auto_discovered]}", Ok("True")),
            ("{plugin_data[root_disk]}", Ok("{'size': 1}")),
            ("{node.driver_info[ipmi_username]}", Ok("root")),
            ("{node.name}", Ok("None")),
            ("{node.uuid!r}", Ok("'u-1'")),
            ("{item[path]}", Ok("extra/a")),
            (
                "{{literal}} {inventory[bmc_address]}",
                Ok("{literal} 192.0.2.10"),
            ),
            // Masked keys, alone and inside a container.
            ("{inventory[creds][password]}", Ok("***")),
            // (Keys in sorted order: maps here do not keep the posted order.)
            (
                "{inventory[creds]}",
                Ok("{'password': '***', 'user': 'admin'}"),
            ),
            ("{inventory[nope]}", Err(FormatError::MissingKey)),
            ("{inventory[cpu][nope]}", Err(FormatError::MissingKey)),
            ("{unknown}", Err(FormatError::MissingKey)),
            ("{inventory[cpu][flags][9]}", other()),
            ("{inventory.cpu}", other()),
            ("{node.nope}", other()),
            ("{}", other()),
            ("{0}", other()),
            ("{inventory[cpu]", other()),
            ("a } b", other()),
            ("{inventory[cpu][count]:>4}", other()),
            ("{inventory[cpu][count]!x}", other()),
        ];
        for (text, want) in cases {
            let got = format(text, &scope);
            match (&got, &want) {
                (Err(FormatError::Other(_)), Err(FormatError::Other(_))) => {}
                _ => assert_eq!(got, want.map(str::to_string), "{text}"),
            }
        }
        let unmasked = Scope {
            mask: false,
            ..scope
        };
        assert_eq!(
            format("{inventory[creds][password]}", &unmasked).unwrap(),
            "hunter2"
        );
    }

    #[test]
    fn python_values() {
        for (v, s) in [
            (json!(null), "None"),
            (json!(2.0), "2.0"),
            (json!(0.00001), "1e-05"),
            (json!(1e16), "1e+16"),
            (json!(-3), "-3"),
            (json!("it's"), "it's"),
            (json!(["it's", "a\"b", "\n"]), r#"["it's", 'a"b', '\n']"#),
            (json!({"a": [true, false]}), "{'a': [True, False]}"),
        ] {
            assert_eq!(to_str(&v, false), s, "{v}");
        }
        assert!(eq(&json!(1), &json!(1.0)));
        assert!(eq(&json!(true), &json!(1)));
        assert!(!eq(&json!("1"), &json!(1)));
        assert!(eq(&json!({"a": [1]}), &json!({"a": [1.0]})));
        assert_eq!(cmp(&json!("10"), &json!("9"), "<"), Ok(Ordering::Less));
        assert_eq!(cmp(&json!(10), &json!(9.5), "<"), Ok(Ordering::Greater));
        assert_eq!(cmp(&json!([1, 2]), &json!([1, 3]), "<"), Ok(Ordering::Less));
        assert_eq!(
            cmp(&json!("a"), &json!(1), "<"),
            Err("'<' not supported between instances of 'str' and 'int'".into())
        );
        assert_eq!(contains(&json!(["a", 1]), &json!(1.0)), Ok(true));
        assert_eq!(contains(&json!("abc"), &json!("b")), Ok(true));
        assert_eq!(contains(&json!({"k": 1}), &json!("k")), Ok(true));
        assert!(contains(&json!(5), &json!(5)).is_err());
        assert!(!truthy(&json!([])) && truthy(&json!("0")) && !truthy(&json!(0.0)));
    }
}
