//! Bad input gets a clear 4xx in Ironic's error format, never a panic, and
//! nothing is written.

use serde_json::{json, Value};

use crate::common::*;

fn fault(body: &[u8]) -> String {
    let outer: Value = serde_json::from_slice(body)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(body)));
    let inner: Value =
        serde_json::from_str(outer["error_message"].as_str().expect("error_message")).unwrap();
    assert_eq!(inner["faultcode"], "Client");
    inner["faultstring"].as_str().unwrap().to_string()
}

const V: (&str, &str) = ("X-OpenStack-Ironic-API-Version", "1.115");
const JSON: (&str, &str) = ("Content-Type", "application/json");

#[test]
fn bad_requests_are_refused_in_ironics_format_and_write_nothing() {
    let s = Server::start();
    let (st, node) = s.json(
        "POST",
        "/v1/nodes",
        Some(json!({"driver": "fake-hardware", "name": "keep"})),
    );
    assert_eq!(st, 201, "{node}");
    let uuid = node["uuid"].as_str().unwrap().to_string();
    let (st, _) = s.json(
        "POST",
        "/v1/ports",
        Some(json!({"address": "52:54:00:00:00:aa", "node_uuid": uuid})),
    );
    assert_eq!(st, 201);
    let snapshot = |s: &Server| {
        (
            s.json("GET", "/v1/nodes/detail", None).1,
            s.json("GET", "/v1/ports/detail", None).1,
        )
    };
    let before = snapshot(&s);

    let big = format!(
        "{{\"driver\": \"fake-hardware\", \"extra\": {{\"pad\": \"{}\"}}}}",
        "x".repeat(1_100_000)
    );
    let cases: Vec<(&str, String, Vec<u8>, u16, &str)> = vec![
        ("POST", "/v1/nodes".into(), b"{\"driver\": ".to_vec(), 400, "Invalid JSON"),
        ("POST", "/v1/nodes".into(), b"[1,2".to_vec(), 400, "Invalid JSON"),
        ("POST", "/v1/nodes".into(), br#"{"driver": "fake-hardware", "colour": "red"}"#.to_vec(), 400, "unknown field `colour`"),
        ("POST", "/v1/nodes".into(), br#"{"name": "x"}"#.to_vec(), 400, "'driver' is a required property"),
        ("POST", "/v1/nodes".into(), br#"{"driver": "no-such-driver"}"#.to_vec(), 400, "no-such-driver"),
        ("POST", "/v1/nodes".into(), br#"{"driver": "fake-hardware", "power_interface": "ipmi"}"#.to_vec(), 400, "Valid interfaces"),
        ("POST", "/v1/nodes".into(), br#"{"driver": "fake-hardware", "name": "keep"}"#.to_vec(), 409, "A node with name keep already exists."),
        ("POST", "/v1/nodes".into(), br#"{"driver": "fake-hardware", "name": "bad name!"}"#.to_vec(), 400, "logical name"),
        ("POST", "/v1/nodes".into(), big.into_bytes(), 413, "larger than"),
        ("POST", "/v1/ports".into(), format!(r#"{{"address": "52:54:00:zz:00:01", "node_uuid": "{uuid}"}}"#).into_bytes(), 400, "Expected a MAC address"),
        ("POST", "/v1/ports".into(), format!(r#"{{"address": "52:54:00:00:00:AA", "node_uuid": "{uuid}"}}"#).into_bytes(), 409, "A port with MAC address 52:54:00:00:00:aa already exists."),
        ("POST", "/v1/ports".into(), br#"{"address": "52:54:00:00:00:ab", "node_uuid": "keep"}"#.to_vec(), 400, "Expected UUID for node_uuid: keep"),
        ("POST", "/v1/ports".into(), br#"{"address": "52:54:00:00:00:ab", "node_uuid": "7c1b2d0e-8f35-4a4e-9b0c-0b6a4b3f9a11"}"#.to_vec(), 400, "could not be found"),
        ("PATCH", "/v1/nodes/keep".into(), br#"[{"op": "add", "path": "/bogus", "value": 1}]"#.to_vec(), 400, "Adding a new attribute (/bogus)"),
        ("PATCH", "/v1/nodes/keep".into(), br#"[{"op": "add", "path": "/provision_state", "value": "active"}]"#.to_vec(), 400, "internal attribute"),
        ("PATCH", "/v1/nodes/keep".into(), br#"[{"op": "remove", "path": "/extra/none"}]"#.to_vec(), 400, "could not be applied"),
        ("PATCH", "/v1/nodes/keep".into(), br#"[{"op": "add", "path": "/extra/a"}]"#.to_vec(), 400, "needs a value"),
        ("PATCH", "/v1/nodes/keep".into(), br#"{"op": "add"}"#.to_vec(), 400, "Invalid JSON"),
        ("PUT", "/v1/nodes/keep/states/provision".into(), br#"{"target": "fly"}"#.to_vec(), 400, "could not be understood"),
        ("PUT", "/v1/nodes/keep/states/provision".into(), br#"{"target": "adopt"}"#.to_vec(), 400, "while it is in state \"enroll\""),
        ("PUT", "/v1/nodes/keep/states/power".into(), br#"{"target": "explode"}"#.to_vec(), 400, "valid power targets"),
        ("GET", "/v1/nodes/does-not-exist".into(), Vec::new(), 404, "Node does-not-exist could not be found."),
        ("GET", "/v1/nodes/bad%20ident".into(), Vec::new(), 400, "Expected a logical name or UUID"),
        ("GET", "/v1/nodes?provision_state=flying".into(), Vec::new(), 400, "not valid"),
        ("GET", "/v1/nodes?limit=-3".into(), Vec::new(), 400, "Limit must be positive"),
        ("GET", "/v1/nodes?fields=uuid,colour".into(), Vec::new(), 400, "colour"),
        ("DELETE", "/v1/ports/not-a-port".into(), Vec::new(), 400, "Expected a UUID"),
        ("GET", "/v1/nowhere".into(), Vec::new(), 404, "could not be found"),
        ("DELETE", "/v1/drivers".into(), Vec::new(), 405, "not allowed"),
    ];
    for (method, path, body, want_status, want_text) in cases {
        let (status, head, resp) = s.request(method, &path, Some(&body), &[V, JSON]);
        assert_eq!(
            status,
            want_status,
            "{method} {path}: {}",
            String::from_utf8_lossy(&resp)
        );
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: application/json"),
            "{method} {path}: {head}"
        );
        let msg = fault(&resp);
        assert!(
            msg.contains(want_text),
            "{method} {path}: {msg:?} lacks {want_text:?}"
        );
        assert!(
            head.contains("X-OpenStack-Ironic-API-Maximum-Version")
                || head
                    .to_ascii_lowercase()
                    .contains("x-openstack-ironic-api-maximum-version")
        );
    }
    assert_eq!(
        snapshot(&s),
        before,
        "a refused request changed the inventory"
    );

    // A bad version header is 406 and still carries the range headers.
    let (status, head, _) = s.request(
        "GET",
        "/v1/nodes",
        None,
        &[("X-OpenStack-Ironic-API-Version", "1.999")],
    );
    assert_eq!(status, 406);
    assert!(
        head.to_ascii_lowercase()
            .contains("x-openstack-ironic-api-minimum-version: 1.1"),
        "{head}"
    );
    // Without a version header the minimum (1.1) is served: new nodes are available, names hidden.
    let (status, _, body) = s.request(
        "POST",
        "/v1/nodes",
        Some(br#"{"driver": "fake-hardware"}"#),
        &[JSON],
    );
    assert_eq!(status, 201);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        v["provision_state"],
        Value::Null,
        "1.1 shows available as null"
    );
    assert!(v.get("name").is_none());
    let (_, n) = s.json(
        "GET",
        &format!("/v1/nodes/{}", v["uuid"].as_str().unwrap()),
        None,
    );
    assert_eq!(n["provision_state"], "available");
    assert!(
        !s.log().contains("panicked"),
        "the appliance panicked:\n{}",
        s.log()
    );
}

#[test]
fn version_discovery() {
    let s = Server::start();
    let (status, head, body) = s.request("GET", "/v1", None, &[]);
    assert_eq!(status, 200);
    let h = head.to_ascii_lowercase();
    assert!(h.contains("x-openstack-ironic-api-minimum-version: 1.1"));
    assert!(h.contains("x-openstack-ironic-api-maximum-version: 1.115"));
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["version"]["version"], "1.115");
    let (status, _, body) = s.request("GET", "/", None, &[]);
    assert_eq!(status, 200);
    let root: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(root["default_version"]["min_version"], "1.1");
}

/// The API never serves an open management API off loopback.
#[test]
fn no_auth_off_loopback_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    let text = format!(
        "[data]\ndir = \"{}\"\n[api]\nlisten = \"0.0.0.0:6385\"\n",
        dir.path().display()
    );
    std::fs::write(&config, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rackboot"))
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "config errors exit 2");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("http_basic") && err.contains("0.0.0.0:6385"),
        "{err}"
    );
    assert!(
        !dir.path().join("rackboot.db").exists(),
        "nothing was created"
    );
}
