//! Issue 11's resources through real clients: openstacksdk (the script
//! `sdk_resources.py`) and the scheduler under 200 concurrent allocations.

use std::process::Command;

use serde_json::{json, Value};

use crate::common::*;

/// Runs one of the client scripts against a fresh server; fails with its
/// output when a check failed.
fn run_client_script(script: &str, what: &str) {
    let s = Server::start();
    let python = repo().join(".venv/bin/python");
    assert!(
        python.exists(),
        "the test venv is missing {}; run scripts/test.sh (scripts/install-deps.sh installs it)",
        python.display()
    );
    let out = Command::new(python)
        .arg(repo().join("tests/integration").join(script))
        .arg(s.endpoint())
        .output()
        .unwrap_or_else(|e| panic!("run {script}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{what} checks failed:\n{text}");
    assert!(!text.contains("FAIL"), "{text}");
}

/// Chassis, conductors, port groups, traits, allocations, deploy templates
/// and node behaviours, driven only through openstacksdk 4.22 (in the test
/// venv).
#[test]
fn openstacksdk_drives_every_new_resource() {
    run_client_script("sdk_resources.py", "openstacksdk");
}

/// The same resources through the `baremetal` CLI (python-ironicclient
/// 6.3.0, in the test venv), as operators' scripts call it.
#[test]
fn baremetal_cli_drives_every_new_resource() {
    run_client_script("cli_resources.py", "baremetal CLI");
}

/// 200 allocations at once over 100 available nodes of one resource class:
/// exactly 100 active, each on its own node, 100 in error for lack of
/// nodes; no node left locked or half-written.
#[test]
fn two_hundred_allocations_over_one_hundred_nodes() {
    let s = Server::start();
    let mut nodes = Vec::new();
    for i in 0..100 {
        let (st, v) = s.json(
            "POST",
            "/v1/nodes",
            Some(json!({"driver": "fake-hardware", "name": format!("c{i}"), "resource_class": "burst"})),
        );
        assert_eq!(st, 201, "{v}");
        nodes.push(v["uuid"].as_str().unwrap().to_string());
    }
    for n in &nodes {
        s.provision(n, "manage", "manageable");
        s.provision(n, "provide", "available");
    }
    let port = s.port;
    let threads: Vec<_> = (0..200)
        .map(|_| {
            std::thread::spawn(move || {
                let body = json!({"resource_class": "burst"}).to_string();
                let (st, _, resp) = http(
                    port,
                    "POST",
                    "/v1/allocations",
                    Some(body.as_bytes()),
                    &[
                        ("X-OpenStack-Ironic-API-Version", "1.115"),
                        ("Content-Type", "application/json"),
                    ],
                );
                (st, String::from_utf8_lossy(&resp).to_string())
            })
        })
        .collect();
    for t in threads {
        let (st, body) = t.join().unwrap();
        assert_eq!(st, 201, "{body}");
    }
    let mut list = Vec::new();
    wait_until("every allocation to leave allocating", 120, || {
        let (st, v) = s.json("GET", "/v1/allocations?limit=1000", None);
        assert_eq!(st, 200, "{v}");
        list = v["allocations"].as_array().unwrap().clone();
        list.len() == 200 && list.iter().all(|a| a["state"] != "allocating")
    });
    let active: Vec<&Value> = list.iter().filter(|a| a["state"] == "active").collect();
    let error: Vec<&Value> = list.iter().filter(|a| a["state"] == "error").collect();
    assert_eq!((active.len(), error.len()), (100, 100));
    let mut picked: Vec<&str> = active
        .iter()
        .map(|a| a["node_uuid"].as_str().unwrap())
        .collect();
    picked.sort();
    picked.dedup();
    assert_eq!(picked.len(), 100, "a node was picked twice");
    for a in &error {
        let e = a["last_error"].as_str().unwrap();
        assert!(
            e.contains("no available nodes match the resource class burst"),
            "{e}"
        );
        assert!(a["node_uuid"].is_null());
    }
    for a in &active {
        let n = s.node(a["node_uuid"].as_str().unwrap());
        assert_eq!(n["instance_uuid"], a["uuid"], "{n}");
        assert_eq!(n["allocation_uuid"], a["uuid"], "{n}");
        assert!(n["reservation"].is_null(), "left locked: {n}");
    }
}
