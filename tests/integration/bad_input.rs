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
        ("POST", "/v1/nodes".into(), br#"{"driver": "fake-hardware", "colour": "red"}"#.to_vec(), 400, "Schema error for node: Additional properties are not allowed ('colour' was unexpected)"),
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
        ("PATCH", "/v1/nodes/keep".into(), br#"[{"op": "add", "path": "/bogus", "value": 1}]"#.to_vec(), 400, "Cannot patch /bogus. Only the following can be updated:"),
        ("PATCH", "/v1/nodes/keep".into(), br#"[{"op": "add", "path": "/provision_state", "value": "active"}]"#.to_vec(), 400, "Cannot patch /provision_state."),
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
        // Unknown query parameters are refused as Ironic 39 refuses them.
        ("GET", "/v1/nodes?foo=bar&baz=1".into(), Vec::new(), 400, "Unexpected arguments: baz, foo"),
        ("GET", "/v1/nodes/detail?fields=uuid".into(), Vec::new(), 400, "Unexpected arguments: fields"),
        ("GET", "/v1/nodes/keep?colour=red".into(), Vec::new(), 400, "Unexpected arguments: colour"),
        ("GET", "/v1/ports?foo=bar".into(), Vec::new(), 400, "Unexpected arguments: foo"),
        ("GET", "/v1/nodes/keep/ports?foo=bar".into(), Vec::new(), 400, "Unexpected arguments: foo"),
        // Ironic's filters rackboot does not apply yet are refused, not ignored.
        ("GET", "/v1/nodes?chassis_uuid=not-a-uuid".into(), Vec::new(), 400, "Expected UUID for chassis_uuid: not-a-uuid"),
        ("GET", "/v1/nodes?sort_key=properties".into(), Vec::new(), 400, "The sort_key value properties is an invalid field for sorting"),
        ("GET", "/v1/nodes?sort_key=bogus".into(), Vec::new(), 400, "The sort_key value \"bogus\" is an invalid field for sorting"),
        ("POST", "/v1/allocations".into(), br#"{"resource_class": "x", "foo": 1}"#.to_vec(), 400, "Additional properties are not allowed ('foo' was unexpected)"),
        ("POST", "/v1/allocations".into(), br#"{"resource_class": 5}"#.to_vec(), 400, "5 is not of type 'string', 'null' (the value of 'resource_class')"),
        ("POST", "/v1/allocations".into(), br#"{}"#.to_vec(), 400, "The resource_class field is mandatory when not backfilling"),
        ("POST", "/v1/chassis".into(), br#"{"description": ["x"]}"#.to_vec(), 400, "Schema error for chassis:"),
        ("PUT", "/v1/nodes/nope/traits/foo".into(), Vec::new(), 400, "Schema error for trait: 'foo' is not valid under any of the given schemas"),
        ("GET", "/v1/allocations/7c1b2d0e-8f35-4a4e-9b0c-0b6a4b3f9a11".into(), Vec::new(), 404, "Allocation 7c1b2d0e-8f35-4a4e-9b0c-0b6a4b3f9a11 could not be found."),
        ("GET", "/v1/chassis/7c1b2d0e-8f35-4a4e-9b0c-0b6a4b3f9a11".into(), Vec::new(), 404, "Chassis 7c1b2d0e-8f35-4a4e-9b0c-0b6a4b3f9a11 could not be found."),
        ("GET", "/v1/chassis/bad".into(), Vec::new(), 400, "Expected UUID for chassis_uuid: bad"),
        ("GET", "/v1/portgroups/pg9".into(), Vec::new(), 404, "Portgroup pg9 could not be found."),
        ("GET", "/v1/conductors/elsewhere".into(), Vec::new(), 404, "Conductor elsewhere could not be found."),
        ("PATCH", "/v1/allocations/7c1b2d0e-8f35-4a4e-9b0c-0b6a4b3f9a11".into(), br#"[{"op": "replace", "path": "/name", "value": "x"}]"#.to_vec(), 404, "could not be found"),
        ("GET", "/v1/ports?shard=east&node=n1".into(), Vec::new(), 403, "Operation not permitted."),
        ("GET", "/v1/ports?conductor_groups=a&address=52:54:00:00:00:01".into(), Vec::new(), 400, "Filtering by conductor_groups cannot be combined"),
        ("GET", "/v1/portgroups?shard=a&node=n1".into(), Vec::new(), 400, "Filtering by node, address, or shard simultaneously is not supported."),
        ("POST", "/v1/deploy_templates".into(), br#"{"name": "CUSTOM_X"}"#.to_vec(), 400, "Schema error for template: 'steps' is a required property"),
        ("POST", "/v1/deploy_templates".into(), br#"{"name": "CUSTOM_X", "steps": [{"interface": "deploy", "step": "s", "args": {}, "priority": -1}]}"#.to_vec(), 400, "-1 is not valid under any of the given schemas (the value of 'priority')"),
        ("GET", "/v1/deploy_templates/CUSTOM_NONE".into(), Vec::new(), 404, "Deploy template CUSTOM_NONE could not be found."),
        ("POST", "/v1/runbooks".into(), br#"{"name": "rb", "steps": [{"interface": "deploy", "step": "s"}]}"#.to_vec(), 400, "'order' is a required property"),
        ("GET", "/v1/runbooks/rb-none".into(), Vec::new(), 404, "Runbook rb-none could not be found."),
        ("POST", "/v1/inspection_rules".into(), br#"{"actions": [{"op": "fail", "args": {}}]}"#.to_vec(), 400, "missing required argument(s): msg"),
        ("POST", "/v1/inspection_rules".into(), br#"{"actions": [{"op": "log", "args": {"msg": "m"}}], "priority": 10000}"#.to_vec(), 400, "Priority must be between 0 and 9999 for user-defined rules."),
        ("GET", "/v1/inspection_rules/nope".into(), Vec::new(), 400, "Schema error: 'nope' is not a 'uuid'"),
        ("POST", "/v1/volume/connectors".into(), br#"{"type": "iqn", "connector_id": "x"}"#.to_vec(), 400, "Schema error for connector: 'node_uuid' is a required property"),
        ("POST", "/v1/volume/targets".into(), br#"{"node_uuid": "7c1b2d0e-8f35-4a4e-9b0c-0b6a4b3f9a11", "volume_type": "iscsi", "volume_id": "v", "boot_index": 0}"#.to_vec(), 400, "Invalid input for field/attribute node_uuid."),
        ("GET", "/v1/volume/targets/bad".into(), Vec::new(), 400, "Expected UUID for target_uuid: bad"),
        ("POST", "/v1/nodes/nope/vifs".into(), br#"{"id": 5}"#.to_vec(), 400, "Schema error for vif: 5 is not of type 'string'"),
        ("POST", "/v1/nodes/nope/vmedia".into(), br#"{"device_type": "cdrom", "image_url": "tftp://x/y"}"#.to_vec(), 400, "Unsupported or missing URL scheme: tftp"),
        ("GET", "/v1/nodes/nope/firmware?detail=True".into(), Vec::new(), 400, "'True' is not of type 'boolean'"),
        ("GET", "/v1/nodes/nope/vifs?fields=id".into(), Vec::new(), 400, "Unexpected arguments: fields"),
        ("GET", "/v1/volume?detail=True".into(), Vec::new(), 400, "Unexpected arguments: detail"),
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

fn provision(s: &Server, ident: &str, target: &str) -> (u16, Value) {
    s.json(
        "PUT",
        &format!("/v1/nodes/{ident}/states/provision"),
        Some(json!({"target": target})),
    )
}

#[test]
fn protected_nodes_pagination_and_port_conflicts() {
    let s = Server::start();
    for i in 0..5 {
        let (st, _) = s.json(
            "POST",
            "/v1/nodes",
            Some(json!({"driver": "fake-hardware", "name": format!("p{i}")})),
        );
        assert_eq!(st, 201);
    }
    // Pages follow `next` links to the end, in creation order.
    let mut names = Vec::new();
    let mut path = "/v1/nodes?limit=2".to_string();
    loop {
        let (st, page) = s.json("GET", &path, None);
        assert_eq!(st, 200, "{path}: {page}");
        names.extend(
            page["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["name"].as_str().unwrap().to_string()),
        );
        let Some(next) = page["next"].as_str() else {
            break;
        };
        assert!(next.starts_with(&s.endpoint()), "next is absolute: {next}");
        path = next[s.endpoint().len()..].to_string();
    }
    assert_eq!(names, ["p0", "p1", "p2", "p3", "p4"]);
    let (st, page) = s.json("GET", "/v1/nodes?limit=2&sort_dir=desc", None);
    assert_eq!(st, 200);
    assert_eq!(page["nodes"][0]["name"], "p4");
    let (st, _) = s.json(
        "GET",
        "/v1/nodes?marker=7c1b2d0e-8f35-4a4e-9b0c-0b6a4b3f9a11",
        None,
    );
    assert_eq!(st, 404);

    // protected: only in active; then undeploy, rebuild and delete are 403.
    let (st, v) = s.json(
        "PATCH",
        "/v1/nodes/p0",
        Some(json!([{"op": "add", "path": "/protected", "value": true}])),
    );
    assert_eq!(st, 409, "protected outside active: {v}");
    for target in ["manage", "provide", "active"] {
        assert_eq!(provision(&s, "p0", target).0, 202, "{target}");
        s.wait_state(
            "p0",
            ["manageable", "available", "active"][["manage", "provide", "active"]
                .iter()
                .position(|t| *t == target)
                .unwrap()],
        );
    }
    let (st, _) = s.json("PATCH", "/v1/nodes/p0", Some(json!([{"op": "add", "path": "/protected", "value": true}, {"op": "add", "path": "/protected_reason", "value": "prod db"}])));
    assert_eq!(st, 200);
    for target in ["deleted", "rebuild"] {
        let (st, v) = provision(&s, "p0", target);
        assert_eq!(st, 403, "{target}: {v}");
    }
    let (st, _, body) = s.request("DELETE", "/v1/nodes/p0", None, &[]);
    assert_eq!(st, 403, "{}", String::from_utf8_lossy(&body));
    let (st, n) = s.json(
        "PATCH",
        "/v1/nodes/p0",
        Some(json!([{"op": "replace", "path": "/protected", "value": false}])),
    );
    assert_eq!(
        (st, &n["protected_reason"]),
        (200, &Value::Null),
        "unprotecting clears the reason"
    );

    // A port cannot take another port's MAC by PATCH either.
    let p1 = s.node("p1")["uuid"].as_str().unwrap().to_string();
    let (_, a) = s.json(
        "POST",
        "/v1/ports",
        Some(json!({"address": "52:54:00:00:03:01", "node_uuid": p1})),
    );
    let (_, b) = s.json(
        "POST",
        "/v1/ports",
        Some(json!({"address": "52:54:00:00:03:02", "node_uuid": p1})),
    );
    let (st, v) = s.json(
        "PATCH",
        &format!("/v1/ports/{}", b["uuid"].as_str().unwrap()),
        Some(json!([{"op": "replace", "path": "/address", "value": "52:54:00:00:03:01"}])),
    );
    assert_eq!(st, 409, "{v}");
    assert_eq!(
        s.json(
            "GET",
            &format!("/v1/ports/{}", a["uuid"].as_str().unwrap()),
            None
        )
        .1["address"],
        "52:54:00:00:03:01"
    );
}

#[test]
fn secrets_stay_out_of_errors_and_logs_on_failure_paths() {
    let s = Server::start();
    let dead = free_port();
    let (st, v) = s.json(
        "POST",
        "/v1/nodes",
        Some(json!({
            "driver": "fake-hardware", "name": "sec", "boot_interface": "ipxe",
            "driver_info": {"ipmi_password": "bmc-Secret-1", "deploy_kernel": "http://127.0.0.1:1/k", "deploy_ramdisk": "http://127.0.0.1:1/r"},
            "instance_info": {"image_source": format!("http://admin:url-Secret-2@127.0.0.1:{dead}/img?token=tok-Secret-3")}
        })),
    );
    assert_eq!(st, 201, "{v}");
    let uuid = v["uuid"].as_str().unwrap().to_string();
    let (st, _) = s.json(
        "POST",
        "/v1/ports",
        Some(json!({"address": "52:54:00:00:04:01", "node_uuid": uuid})),
    );
    assert_eq!(st, 201);
    assert_eq!(provision(&s, "sec", "manage").0, 202);
    s.wait_state("sec", "manageable");
    assert_eq!(provision(&s, "sec", "adopt").0, 202);
    let n = s.wait_state("sec", "adopt failed");
    let err = n["last_error"].as_str().unwrap();
    assert!(err.contains("not reachable"), "{err}");
    // An ipmi node with a bad port and a password: validation names the key, not the password.
    let (st, v) = s.json(
        "POST",
        "/v1/nodes",
        Some(json!({"driver": "ipmi", "name": "sec2", "driver_info": {"ipmi_address": "192.0.2.9", "ipmi_port": "x", "ipmi_password": "bmc-Secret-4"}})),
    );
    assert_eq!(st, 201, "{v}");
    let (_, validate) = s.json("GET", "/v1/nodes/sec2/validate", None);
    assert!(
        validate["power"]["reason"]
            .as_str()
            .unwrap()
            .contains("ipmi_port"),
        "{validate}"
    );
    // A PATCH that puts a secret where an object belongs is refused without echoing it.
    let (st, v) = s.json(
        "PATCH",
        "/v1/nodes/sec2",
        Some(json!([{"op": "replace", "path": "/driver_info", "value": "bmc-Secret-5"}])),
    );
    assert_eq!(st, 400);
    let everything = format!(
        "{}{}{}{}{}",
        s.json("GET", "/v1/nodes/detail", None).1,
        s.json(
            "GET",
            &format!("/v1/nodes/{uuid}/history?detail=True"),
            None
        )
        .1,
        validate,
        v,
        s.log()
    );
    for secret in [
        "bmc-Secret-1",
        "url-Secret-2",
        "tok-Secret-3",
        "bmc-Secret-4",
        "bmc-Secret-5",
    ] {
        assert!(!everything.contains(secret), "{secret} leaked");
    }
}
