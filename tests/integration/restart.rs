//! Crash and shutdown: kill -9 mid-adoption, SIGTERM drain.

use serde_json::json;

use crate::common::*;

fn slow_node(s: &Server, name: &str, image: &str, delay: f64) -> String {
    let (st, n) = s.json(
        "POST",
        "/v1/nodes",
        Some(json!({
            "driver": "fake-hardware", "name": name,
            "driver_info": {"fake_deploy_delay": delay},
            "instance_info": {"image_source": image}
        })),
    );
    assert_eq!(st, 201, "{n}");
    n["uuid"].as_str().unwrap().to_string()
}

fn provision(s: &Server, ident: &str, target: &str) {
    let (st, v) = s.json(
        "PUT",
        &format!("/v1/nodes/{ident}/states/provision"),
        Some(json!({"target": target})),
    );
    assert_eq!(st, 202, "{target} {ident}: {v}");
}

#[test]
fn kill_9_while_adopting_fails_only_that_node() {
    let mut s = Server::start();
    let blank = s.dir.path().join("blank.img");
    std::fs::write(&blank, b"").unwrap();
    let image = format!("file://{}", blank.display());
    let slow = slow_node(&s, "slow", &image, 600.0);
    let fast = slow_node(&s, "fast", &image, 0.0);
    let other = slow_node(&s, "other", &image, 0.0);
    for (i, n) in [&slow, &fast, &other].iter().enumerate() {
        let (st, _) = s.json(
            "POST",
            "/v1/ports",
            Some(json!({"address": format!("52:54:00:00:01:0{i}"), "node_uuid": n})),
        );
        assert_eq!(st, 201);
    }
    for n in [&slow, &fast] {
        provision(&s, n, "manage");
        s.wait_state(n, "manageable");
    }
    provision(&s, &fast, "adopt");
    s.wait_state(&fast, "active");
    provision(&s, &slow, "adopt");
    let n = s.node(&slow);
    assert_eq!(n["provision_state"], "adopting");
    assert!(n["reservation"].is_string(), "busy node is reserved: {n}");
    let (st, locked) = s.json(
        "PATCH",
        "/v1/nodes/slow",
        Some(json!([{"op": "add", "path": "/extra/a", "value": 1}])),
    );
    assert_eq!(st, 409, "{locked}");
    let (st, locked) = s.json("DELETE", "/v1/ports/52:54:00:00:01:00", None);
    assert_eq!(st, 409, "ports of a busy node are locked with it: {locked}");
    let (before_nodes, before_ports) = (
        s.json("GET", "/v1/nodes/detail", None).1,
        s.json("GET", "/v1/ports/detail", None).1,
    );

    s.kill9();
    s.spawn();

    let n = s.node(&slow);
    assert_eq!(n["provision_state"], "adopt failed");
    assert_eq!(n["reservation"], serde_json::Value::Null);
    let err = n["last_error"].as_str().unwrap();
    assert!(
        err.contains("restarted") && err.contains("adopting"),
        "{err}"
    );
    let after_nodes = s.json("GET", "/v1/nodes/detail", None).1;
    // Links name the API's port, which is new after the restart.
    let unlinked = |v: &serde_json::Value| {
        let mut v = v.clone();
        for k in ["links", "ports", "states", "portgroups", "volume"] {
            v.as_object_mut().unwrap().remove(k);
        }
        v
    };
    for (b, a) in before_nodes["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .zip(after_nodes["nodes"].as_array().unwrap())
    {
        let (a, b) = (unlinked(a), unlinked(b));
        if b["uuid"] != slow.as_str() {
            assert_eq!(a, b, "a node not in flight changed across the crash");
        }
    }
    let ports = |v: &serde_json::Value| {
        v["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(unlinked)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ports(&s.json("GET", "/v1/ports/detail", None).1),
        ports(&before_ports),
        "ports changed across the crash"
    );
    // The failed node recovers by a plain retry.
    s.json(
        "PATCH",
        "/v1/nodes/slow",
        Some(json!([{"op": "replace", "path": "/driver_info/fake_deploy_delay", "value": 0}])),
    );
    provision(&s, &slow, "adopt");
    s.wait_state(&slow, "active");
}

#[test]
fn sigterm_drains_running_work() {
    let mut s = Server::start();
    let blank = s.dir.path().join("blank.img");
    std::fs::write(&blank, b"").unwrap();
    // Two 4 s steps: still adopting when the GET below lands, even on a slow machine.
    let uuid = slow_node(&s, "drain", &format!("file://{}", blank.display()), 4.0);
    provision(&s, &uuid, "manage");
    s.wait_state(&uuid, "manageable");
    provision(&s, &uuid, "adopt");
    assert_eq!(s.node(&uuid)["provision_state"], "adopting");
    let status = s.terminate();
    assert!(
        status.success(),
        "rackboot exit status after SIGTERM: {status}"
    );
    assert!(s.log().contains("all workflows finished"), "{}", s.log());
    s.spawn();
    let n = s.node(&uuid);
    assert_eq!(
        n["provision_state"], "active",
        "the adoption finished during the drain: {n}"
    );
}
