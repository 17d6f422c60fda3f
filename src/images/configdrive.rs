//! OpenStack config drives, as Ironic makes them from the JSON given with
//! `deploy --config-drive` (API 1.56+): `openstack/{2012-08-10,latest}/`
//! with `meta_data.json` (its `uuid` and `name` defaulted to the node's),
//! `network_data.json`, `vendor_data2.json` and `user_data`, on an ISO 9660
//! volume labelled `config-2`, gzipped and base64-encoded for the agent.

use std::io::Write;

use base64::Engine;
use serde_json::{Map, Value};

/// A value's JSON type, for messages (a config drive's values may be
/// secret: they are never echoed).
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The metadata versions written, as openstacksdk's `configdrive.build`.
const VERSIONS: &[&str] = &["2012-08-10", "latest"];

/// The files of the drive built from `spec` (Ironic's `build_configdrive`).
pub fn files(
    node_uuid: &str,
    node_name: Option<&str>,
    spec: &Map<String, Value>,
) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut meta = match spec.get("meta_data") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(other) => {
            return Err(format!(
                "configdrive meta_data must be an object, not {}",
                kind(other)
            ))
        }
    };
    meta.entry("uuid").or_insert_with(|| Value::from(node_uuid));
    if let Some(name) = node_name.filter(|n| !n.is_empty()) {
        meta.entry("name").or_insert_with(|| Value::from(name));
    }
    let json = |v: &Value| serde_json::to_vec(v).expect("JSON values serialize");
    let user_data = match spec.get("user_data") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s.as_bytes().to_vec()),
        Some(v @ (Value::Object(_) | Value::Array(_))) => Some(json(v)),
        Some(other) => {
            return Err(format!(
                "configdrive user_data must be a string, an object or an array, not {}",
                kind(other)
            ))
        }
    };
    // Empty objects are left out, as openstacksdk does.
    let object = |key: &str| -> Result<Option<Vec<u8>>, String> {
        match spec.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(m)) if m.is_empty() => Ok(None),
            Some(v @ Value::Object(_)) => Ok(Some(json(v))),
            Some(other) => Err(format!(
                "configdrive {key} must be an object, not {}",
                kind(other)
            )),
        }
    };
    let network = object("network_data")?;
    let vendor = object("vendor_data")?;
    let meta = json(&Value::Object(meta));
    let mut out = Vec::new();
    for v in VERSIONS {
        out.push((format!("openstack/{v}/meta_data.json"), meta.clone()));
        if let Some(n) = &network {
            out.push((format!("openstack/{v}/network_data.json"), n.clone()));
        }
        if let Some(n) = &vendor {
            out.push((format!("openstack/{v}/vendor_data2.json"), n.clone()));
        }
        if let Some(u) = &user_data {
            out.push((format!("openstack/{v}/user_data"), u.clone()));
        }
    }
    Ok(out)
}

/// The drive for `spec`: an ISO 9660 `config-2` volume, gzipped, base64.
pub fn build(
    node_uuid: &str,
    node_name: Option<&str>,
    spec: &Map<String, Value>,
) -> Result<String, String> {
    let files = files(node_uuid, node_name, spec)?;
    let iso = super::iso9660::build("config-2", &files, jiff::Timestamp::now())?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&iso)
        .and_then(|_| gz.finish())
        .map(|z| base64::engine::general_purpose::STANDARD.encode(z))
        .map_err(|e| format!("could not compress the config drive: {e}"))
}

/// What the agent is given for a node's `instance_info/configdrive`: a
/// JSON document is built into a drive; a URL or an encoded drive is passed
/// on as it is (Ironic's `get_configdrive_image`).
pub fn for_agent(
    node_uuid: &str,
    node_name: Option<&str>,
    configdrive: Option<&Value>,
) -> Result<Option<String>, String> {
    match configdrive {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(spec)) => build(node_uuid, node_name, spec).map(Some),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!(
            "instance_info/configdrive must be an object, a URL or a gzipped base64 ISO, not {}",
            kind(other)
        )),
    }
}

/// Ironic's check of `configdrive` in a provision request (API side):
/// the object's keys, the version that allows an object (1.56) and
/// `vendor_data` (1.59), and that a string is a URL or base64.
pub fn check_request(configdrive: &Value, version_minor: u32) -> Result<(), String> {
    match configdrive {
        Value::Null => Ok(()),
        Value::Object(m) => {
            for (k, v) in m {
                let ok = match k.as_str() {
                    "meta_data" | "network_data" | "vendor_data" => v.is_object(),
                    "user_data" => {
                        matches!(v, Value::Object(_) | Value::Array(_) | Value::String(_) | Value::Null)
                    }
                    _ => {
                        return Err(format!(
                            "Invalid configdrive format: additional property {k:?} is not allowed (meta_data, network_data, user_data, vendor_data are)"
                        ))
                    }
                };
                if !ok {
                    return Err(format!(
                        "Invalid configdrive format: {v} is not valid for {k}"
                    ));
                }
            }
            if version_minor < 56 {
                return Err("Providing a JSON object for configdrive is only supported starting with API version 1.56".into());
            }
            if m.contains_key("vendor_data") && version_minor < 59 {
                return Err("Providing vendor_data in configdrive is only supported starting with API version 1.59".into());
            }
            Ok(())
        }
        Value::String(s) => {
            if s.contains("://")
                || s.chars().all(|c| {
                    c.is_ascii_alphanumeric()
                        || matches!(c, '+' | '/' | '=' | '\n' | '\r' | '\t' | ' ')
                })
            {
                Ok(())
            } else {
                Err("Invalid configdrive format: it is neither a JSON, nor a URL, nor a base64 string".into())
            }
        }
        other => Err(format!(
            "Invalid configdrive format: {} is not an object or a string",
            kind(other)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::io::Read;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn the_files_follow_openstacksdk() {
        let f = files(
            "u-1",
            Some("n1"),
            &obj(
                json!({"meta_data": {"hostname": "h"}, "user_data": {"a": 1},
                        "network_data": {}, "vendor_data": {"v": 2}}),
            ),
        )
        .unwrap();
        let names: Vec<&str> = f.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "openstack/2012-08-10/meta_data.json",
                "openstack/2012-08-10/vendor_data2.json",
                "openstack/2012-08-10/user_data",
                "openstack/latest/meta_data.json",
                "openstack/latest/vendor_data2.json",
                "openstack/latest/user_data",
            ]
        );
        let meta: Value = serde_json::from_slice(&f[0].1).unwrap();
        assert_eq!(meta, json!({"hostname": "h", "uuid": "u-1", "name": "n1"}));
        // Given values win over the node's.
        let f = files("u-1", Some("n1"), &obj(json!({"meta_data": {"uuid": "x"}}))).unwrap();
        let meta: Value = serde_json::from_slice(&f[0].1).unwrap();
        assert_eq!(meta, json!({"uuid": "x", "name": "n1"}));
        let f = files("u", None, &obj(json!({"user_data": "#cloud-config\n"}))).unwrap();
        assert_eq!(f[1].1, b"#cloud-config\n");
        assert!(files("u", None, &obj(json!({"meta_data": 3}))).is_err());
    }

    #[test]
    fn the_built_drive_is_a_gzipped_base64_config_2_iso() {
        let b64 = build("u-1", Some("n1"), &Map::new()).unwrap();
        let gz = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        let mut iso = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut iso)
            .unwrap();
        assert_eq!(&iso[16 * 2048 + 40..16 * 2048 + 48], b"config-2");
        let needle = br#""uuid":"u-1""#;
        assert!(iso.windows(needle.len()).any(|w| w == needle));
    }

    #[test]
    fn what_the_agent_gets() {
        assert_eq!(for_agent("u", None, None), Ok(None));
        assert_eq!(for_agent("u", None, Some(&json!(""))), Ok(None));
        assert_eq!(
            for_agent("u", None, Some(&json!("http://x/cd"))),
            Ok(Some("http://x/cd".into()))
        );
        assert!(for_agent("u", None, Some(&json!({})))
            .unwrap()
            .is_some_and(|s| s.starts_with("H4sI")));
        assert!(for_agent("u", None, Some(&json!(7))).is_err());
    }

    #[test]
    fn requests_are_checked_as_ironic_does() {
        let cases: &[(Value, u32, bool)] = &[
            (json!({"meta_data": {}}), 56, true),
            (json!({"meta_data": {}}), 55, false),
            (json!({"vendor_data": {}}), 58, false),
            (json!({"vendor_data": {}}), 59, true),
            (json!({"user_data": [1]}), 56, true),
            (json!({"user_data": 1}), 56, false),
            (json!({"meta_data": "x"}), 56, false),
            (json!({"other": {}}), 90, false),
            (json!("H4sIAAAA+/=\n"), 1, true),
            (json!("https://example.com/cd.iso"), 1, true),
            (json!("{not json"), 1, false),
            (json!(5), 90, false),
            (Value::Null, 1, true),
        ];
        for (v, minor, ok) in cases {
            assert_eq!(check_request(v, *minor).is_ok(), *ok, "{v} at 1.{minor}");
        }
    }
}
