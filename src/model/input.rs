//! Checks of values clients send, shared by the API (request bodies, query
//! parameters) and the conductor (JSON patches). Pure.

use serde_json::Value;

/// A value a client sent that cannot be used, and why (Ironic's
/// InvalidParameterValue, 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidInput(pub String);

impl InvalidInput {
    /// "Invalid value for field F: expected W, got K".
    pub fn wrong_type(field: &str, want: &str, got: &Value) -> InvalidInput {
        let kind = match got {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "a list",
            Value::Object(_) => "an object",
        };
        InvalidInput(format!(
            "Invalid value for field {field}: expected {want}, got {kind}"
        ))
    }
}

/// Parses Ironic's lenient booleans: JSON booleans or "true"/"false" strings.
pub fn parse_bool(field: &str, v: &Value) -> Result<bool, InvalidInput> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "t" | "yes" | "y" | "on" | "1" => Ok(true),
            "false" | "f" | "no" | "n" | "off" | "0" => Ok(false),
            _ => Err(InvalidInput::wrong_type(field, "a boolean", v)),
        },
        _ => Err(InvalidInput::wrong_type(field, "a boolean", v)),
    }
}

/// Checks a node name as Ironic does: URL-safe characters, not a UUID.
pub fn check_name(name: &str) -> Result<(), InvalidInput> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~'))
        && name.parse::<uuid::Uuid>().is_err()
        // `/v1/nodes/detail` is the listing, so a node by that name could
        // never be reached by name.
        && name != "detail";
    if ok {
        Ok(())
    } else {
        Err(InvalidInput(format!(
            "Expected a logical name but received {name}. Names may contain letters, digits, '-', '.', '_' and '~', and may not be a UUID."
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lenient_booleans_and_names() {
        for (v, want) in [
            (json!(true), Some(true)),
            (json!("Yes"), Some(true)),
            (json!("off"), Some(false)),
            (json!("maybe"), None),
            (json!(1), None),
        ] {
            assert_eq!(parse_bool("f", &v).ok(), want, "{v}");
        }
        assert!(check_name("rack-1.node_2~a").is_ok());
        for bad in ["", "detail", "a b", "9b1c3b8e-4c0e-4d5a-8f00-3d3c1f1e2a10"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
