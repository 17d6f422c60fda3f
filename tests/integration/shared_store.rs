//! Two appliances on one database file, as two processes: a node one of them
//! holds cannot be taken by the other (the reservation is a compare-and-set
//! in the database), through the real `baremetal` CLI; and each appliance's
//! restart recovers only the nodes it held.

use serde_json::json;

use crate::common::*;

#[test]
fn two_appliances_on_one_database_cannot_hold_one_node() {
    let mut a =
        Server::start_with("[conductor]\nhost = \"rack-a\"\nnode_locked_wait = \"200ms\"\n");
    let mut b = Server::sharing(
        &a,
        "[conductor]\nhost = \"rack-b\"\nnode_locked_wait = \"200ms\"\n",
    );
    let (st, v) = a.json(
        "POST",
        "/v1/nodes",
        Some(json!({"name": "shared", "driver": "fake-hardware",
                    "driver_info": {"fake_deploy_delay": 3600}})),
    );
    assert_eq!(st, 201, "{v}");
    a.provision("shared", "manage", "manageable");
    // A's adoption holds the node for an hour.
    let (st, v) = a.json(
        "PUT",
        "/v1/nodes/shared/states/provision",
        Some(json!({"target": "adopt"})),
    );
    assert_eq!(st, 202, "{v}");
    // B sees A's reservation through the database ...
    let n = b.wait_state("shared", "adopting");
    assert_eq!(n["reservation"], "rack-a", "{n}");
    // ... and cannot take the node: Ironic's NodeLocked, naming A.
    let out = baremetal(&b, &["node", "set", "shared", "--description", "from b"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "b changed a node a holds");
    assert!(err.contains("locked by host rack-a"), "{err}");
    let (st, v) = b.json(
        "PATCH",
        "/v1/nodes/shared",
        Some(json!([{"op": "add", "path": "/extra/x", "value": 1}])),
    );
    assert_eq!(st, 409, "{v}");
    assert!(b.node("shared")["description"].is_null());
    // B restarting leaves the node A holds alone.
    b.kill9();
    b.spawn();
    let n = b.node("shared");
    assert_eq!(
        (n["provision_state"].as_str(), n["reservation"].as_str()),
        (Some("adopting"), Some("rack-a")),
        "{n}"
    );
    // A crashes; its restart fails the adoption it held, as Ironic does.
    a.kill9();
    a.spawn();
    let n = b.node("shared");
    assert_eq!(n["provision_state"], "adopt failed", "{n}");
    assert!(n["reservation"].is_null(), "{n}");
    let last_error = n["last_error"].as_str().unwrap_or_default();
    assert!(
        last_error.contains("rack-a") && last_error.contains("restarted"),
        "{last_error}"
    );
    // Released, the node is B's to change, and A sees the change.
    let out = baremetal(&b, &["node", "set", "shared", "--description", "from b"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(a.node("shared")["description"], "from b");
    let events = a.events("shared");
    assert!(
        events
            .iter()
            .any(|e| e.contains("node updated: /description")),
        "{events:#?}"
    );
}
