//! The adoption flows of reference/adoption.md, driven by the real
//! `baremetal` CLI (python-ironicclient) against a running appliance.

use serde_json::Value;

use crate::common::*;

/// `baremetal node VERB NODE --wait 30`, which must succeed.
fn wait_verb(s: &Server, verb: &str, node: &str) {
    ok(
        baremetal(s, &["node", verb, node, "--wait", "30"]),
        &format!("{verb} {node} --wait"),
    );
}

/// `baremetal node set NODE --instance-info image_source=URL`.
fn set_image(s: &Server, node: &str, url: &str) {
    let arg = format!("image_source={url}");
    ok(
        baremetal(s, &["node", "set", node, "--instance-info", &arg]),
        "node set --instance-info",
    );
}

const MAC: &str = "52:54:00:12:34:56";

/// `baremetal node create` as in adoption.md, with fake power and the real
/// iPXE boot interface so boot validation really runs.
fn create_node(s: &Server, img: &ImageServer, name: &str, mac: &str) -> String {
    let out = ok(
        baremetal(
            s,
            &[
                "node",
                "create",
                "--name",
                name,
                "--driver",
                "fake-hardware",
                "--boot-interface",
                "ipxe",
                "--driver-info",
                "ipmi_address=192.0.2.10",
                "--driver-info",
                "ipmi_username=admin",
                "--driver-info",
                "ipmi_password=s3cr3t-pw",
                "--driver-info",
                &format!("deploy_kernel={}", img.url("deploy.kernel")),
                "--driver-info",
                &format!("deploy_ramdisk={}", img.url("deploy.initramfs")),
                "-f",
                "value",
                "-c",
                "uuid",
            ],
        ),
        "node create",
    );
    let uuid = out.trim().to_string();
    ok(
        baremetal(s, &["port", "create", mac, "--node", &uuid]),
        "port create",
    );
    uuid
}

#[test]
fn adoption_example_ends_active_without_touching_the_machine() {
    let s = Server::start();
    let img = ImageServer::start();
    let uuid = create_node(&s, &img, "testnode", MAC);
    let n = s.node("testnode");
    assert_eq!(
        n["provision_state"], "enroll",
        "API >= 1.11 creates in enroll"
    );
    set_image(&s, "testnode", &img.url("blankimage"));
    wait_verb(&s, "manage", "testnode");
    let n = s.node("testnode");
    assert_eq!(n["provision_state"], "manageable");
    assert_eq!(
        n["power_state"], "power on",
        "first observed power state recorded"
    );
    assert_eq!(n["driver_internal_info"]["first_power_state"], "power on");

    wait_verb(&s, "adopt", "testnode");
    let show = ok(
        baremetal(&s, &["node", "show", "testnode", "-f", "json"]),
        "node show",
    );
    let shown: Value = serde_json::from_str(&show).unwrap();
    assert_eq!(shown["provision_state"], "active");
    assert_eq!(shown["target_provision_state"], Value::Null);
    assert_eq!(shown["last_error"], Value::Null);
    assert_eq!(shown["driver_info"]["ipmi_password"], "******");
    assert!(!show.contains("s3cr3t-pw"), "password shown by the API");
    assert!(
        !s.log().contains("s3cr3t-pw"),
        "password in the appliance log"
    );

    // No power (or boot device) call from the moment adoption began.
    let history = s.history(&uuid);
    let since_adopt = after(&history, "adopt: manageable -> adopting");
    assert!(
        power_calls(since_adopt).is_empty(),
        "power calls during adoption: {:?}",
        power_calls(since_adopt)
    );
    assert!(
        !since_adopt.iter().any(|h| h["event_type"] == "management"),
        "boot-device calls during adoption: {since_adopt:?}"
    );
    assert_eq!(
        power_calls(&history),
        ["fake power call: get_power_state -> power on"],
        "only manage read the power state"
    );
    assert!(
        since_adopt
            .iter()
            .any(|h| h["event"] == "adopting -> active"),
        "{since_adopt:?}"
    );

    // instance-uuid, list, show, delete (maintenance, as the node is active).
    let instance = "0f6c1c1e-8a0b-4f0e-9d52-3c7b7f6c2a10";
    ok(
        baremetal(
            &s,
            &["node", "set", "testnode", "--instance-uuid", instance],
        ),
        "set --instance-uuid",
    );
    assert_eq!(s.node("testnode")["instance_uuid"], instance);
    let list = ok(baremetal(&s, &["node", "list", "-f", "json"]), "node list");
    let list: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["provision_state"], "active");
    assert_eq!(list[0]["instance_uuid"], instance);
    let ports = ok(
        baremetal(
            &s,
            &[
                "port", "list", "--node", "testnode", "-f", "value", "-c", "Address",
            ],
        ),
        "port list",
    );
    assert_eq!(ports.trim(), MAC);
    ok(
        baremetal(
            &s,
            &[
                "node",
                "maintenance",
                "set",
                "testnode",
                "--reason",
                "decommission",
            ],
        ),
        "maintenance set",
    );
    ok(
        baremetal(&s, &["node", "delete", "testnode"]),
        "node delete",
    );
    let (status, _) = s.json("GET", "/v1/nodes/testnode", None);
    assert_eq!(status, 404);
    let (_, ports) = s.json("GET", "/v1/ports", None);
    assert_eq!(
        ports["ports"],
        Value::Array(vec![]),
        "ports deleted with the node"
    );
}

#[test]
fn adoption_failure_retry_manage_and_delete() {
    let s = Server::start();
    let img = ImageServer::start();
    let dead = format!("http://127.0.0.1:{}/blankimage", free_port());

    // 1: unreachable image → adopt failed with last_error; fix; adopt again → active.
    create_node(&s, &img, "n1", "52:54:00:00:00:01");
    ok(
        baremetal(
            &s,
            &[
                "node",
                "set",
                "n1",
                "--instance-info",
                &format!("image_source={dead}"),
            ],
        ),
        "set bad image",
    );
    wait_verb(&s, "manage", "n1");
    let text = fails(
        baremetal(&s, &["node", "adopt", "n1", "--wait", "30"]),
        "adopt with unreachable image",
    );
    assert!(text.contains("adopt failed"), "{text}");
    let n = s.node("n1");
    assert_eq!(n["provision_state"], "adopt failed");
    assert_eq!(
        n["target_provision_state"], "active",
        "Ironic keeps the target while failed"
    );
    let err = n["last_error"].as_str().unwrap();
    assert!(
        err.contains("instance_info/image_source") && err.contains("not reachable"),
        "{err}"
    );
    assert!(
        err.contains("boot interface validation"),
        "names the failed check: {err}"
    );
    assert_eq!(
        n["power_state"], "power on",
        "adopt failure does not lose the observed power state"
    );
    set_image(&s, "n1", &img.url("blankimage"));
    wait_verb(&s, "adopt", "n1");
    let n = s.node("n1");
    assert_eq!(
        (n["provision_state"].as_str(), &n["last_error"]),
        (Some("active"), &Value::Null)
    );

    // 2: adopt failed → manage → manageable.
    create_node(&s, &img, "n2", "52:54:00:00:00:02");
    wait_verb(&s, "manage", "n2");
    let text = fails(
        baremetal(&s, &["node", "adopt", "n2", "--wait", "30"]),
        "adopt without image_source",
    );
    assert!(
        text.contains("image_source"),
        "CLI shows last_error: {text}"
    );
    wait_verb(&s, "manage", "n2");
    assert_eq!(s.node("n2")["provision_state"], "manageable");

    // 3: delete in adopt failed, no cleaning, no power action.
    let uuid3 = create_node(&s, &img, "n3", "52:54:00:00:00:03");
    ok(
        baremetal(
            &s,
            &[
                "node",
                "set",
                "n3",
                "--instance-info",
                "image_source=file:///nonexistent/rackboot.img",
            ],
        ),
        "set",
    );
    wait_verb(&s, "manage", "n3");
    fails(
        baremetal(&s, &["node", "adopt", "n3", "--wait", "30"]),
        "adopt missing file",
    );
    let err = s.node("n3")["last_error"].as_str().unwrap().to_string();
    assert!(err.contains("/nonexistent/rackboot.img"), "{err}");
    let before = power_calls(&s.history(&uuid3));
    ok(
        baremetal(&s, &["node", "delete", "n3"]),
        "delete in adopt failed",
    );
    assert_eq!(s.json("GET", "/v1/nodes/n3", None).0, 404);
    assert_eq!(before, ["fake power call: get_power_state -> power on"]);
    let (_, ports) = s.json("GET", "/v1/ports?address=52:54:00:00:00:03", None);
    assert_eq!(ports["ports"], Value::Array(vec![]));
}

#[test]
fn wrong_state_verb_gets_ironics_400_at_once() {
    let s = Server::start();
    ok(
        baremetal(
            &s,
            &["node", "create", "--name", "n", "--driver", "fake-hardware"],
        ),
        "create",
    );
    let out = baremetal(&s, &["--debug", "node", "adopt", "n"]);
    let text = fails(out, "adopt from enroll");
    assert!(
        text.contains("The requested action \"adopt\" can not be performed on node \"n\" while it is in state \"enroll\". (HTTP 400)"),
        "{text}"
    );
    let puts = text.matches("-X PUT").count();
    assert_eq!(
        puts, 1,
        "the CLI must not retry (it retries 409s): {puts} PUTs sent"
    );
    let out = baremetal(&s, &["node", "provide", "n"]);
    assert!(fails(out, "provide from enroll").contains("(HTTP 400)"));
}

#[test]
fn http_basic_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let htpasswd = dir.path().join("htpasswd");
    let status = std::process::Command::new("htpasswd")
        .args(["-B", "-b", "-c"])
        .arg(&htpasswd)
        .args(["admin", "op-pass-1"])
        .status()
        .expect("htpasswd (Debian apache2-utils) is needed; scripts/test.sh installs it");
    assert!(status.success());
    let s = Server::start_with(&format!(
        "auth = \"http_basic\"\nhtpasswd = \"{}\"\n",
        htpasswd.display()
    ));
    let good = [
        ("OS_AUTH_TYPE", "http_basic"),
        ("OS_USERNAME", "admin"),
        ("OS_PASSWORD", "op-pass-1"),
    ];
    ok(
        baremetal_env(
            &s,
            &["node", "create", "--name", "a", "--driver", "fake-hardware"],
            &good,
        ),
        "create with basic auth",
    );
    let list = ok(
        baremetal_env(&s, &["node", "list", "-f", "value", "-c", "Name"], &good),
        "list",
    );
    assert_eq!(list.trim(), "a");
    let bad = [
        ("OS_AUTH_TYPE", "http_basic"),
        ("OS_USERNAME", "admin"),
        ("OS_PASSWORD", "wrong"),
    ];
    let text = fails(baremetal_env(&s, &["node", "list"], &bad), "wrong password");
    assert!(text.contains("401"), "{text}");
    let text = fails(baremetal(&s, &["node", "list"]), "no credentials");
    assert!(text.contains("401"), "{text}");
    let (status, head, _) = s.request("GET", "/v1/nodes", None, &[]);
    assert_eq!(status, 401);
    assert!(head.contains("Basic realm=\"Baremetal API\""), "{head}");
    assert!(!s.log().contains("op-pass-1"));
}

/// reference/adoption.md's fake-drivers recipe: switch to fake interfaces,
/// provide, deploy (as a compute service would), switch back — and no power
/// or disk action reaches the machine.
#[test]
fn fake_drivers_recipe() {
    let s = Server::start();
    let uuid = ok(
        baremetal(
            &s,
            &[
                "node",
                "create",
                "--name",
                "prod1",
                "--driver",
                "ipmi",
                "--driver-info",
                "ipmi_address=192.0.2.20",
                "--driver-info",
                "ipmi_password=pw-xyz",
                "-f",
                "value",
                "-c",
                "uuid",
            ],
        ),
        "create ipmi node",
    )
    .trim()
    .to_string();
    ok(
        baremetal(
            &s,
            &["port", "create", "52:54:00:aa:bb:01", "--node", &uuid],
        ),
        "port",
    );
    let v = ok(
        baremetal(&s, &["node", "validate", "prod1", "-f", "json"]),
        "validate",
    );
    let v: Value = serde_json::from_str(&v).unwrap();
    let power = v
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["Interface"] == "power")
        .unwrap();
    assert_eq!(power["Result"], true, "ipmi driver_info validates: {v}");

    // Switch to fake hardware: unsupported interfaces reset to fake-hardware's defaults.
    ok(
        baremetal(
            &s,
            &[
                "node",
                "set",
                "prod1",
                "--driver",
                "fake-hardware",
                "--boot-interface",
                "fake",
                "--deploy-interface",
                "fake",
            ],
        ),
        "switch to fake",
    );
    let n = s.node("prod1");
    assert_eq!(
        (
            n["power_interface"].as_str(),
            n["management_interface"].as_str()
        ),
        (Some("fake"), Some("fake"))
    );
    wait_verb(&s, "manage", "prod1");
    wait_verb(&s, "provide", "prod1");
    wait_verb(&s, "deploy", "prod1");
    assert_eq!(s.node("prod1")["provision_state"], "active");
    wait_verb(&s, "rebuild", "prod1");
    assert_eq!(s.node("prod1")["provision_state"], "active");
    let listed = ok(
        baremetal(
            &s,
            &[
                "node",
                "list",
                "--provision-state",
                "active",
                "--fields",
                "uuid",
                "name",
                "-f",
                "json",
            ],
        ),
        "list with filter and fields",
    );
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed, serde_json::json!([{"uuid": uuid, "name": "prod1"}]));
    let none = ok(
        baremetal(
            &s,
            &["node", "list", "--provision-state", "enroll", "-f", "json"],
        ),
        "list enroll",
    );
    assert_eq!(none.trim(), "[]");
    let long = ok(
        baremetal(
            &s,
            &[
                "node",
                "list",
                "--long",
                "--driver",
                "fake-hardware",
                "-f",
                "json",
            ],
        ),
        "list --long",
    );
    assert!(long.contains("\"ipmi_password\": \"******\""), "{long}");
    assert!(!long.contains("pw-xyz"), "{long}");

    // Switch back (interfaces of an active node change only in maintenance).
    let text = fails(
        baremetal(
            &s,
            &[
                "node",
                "set",
                "prod1",
                "--driver",
                "ipmi",
                "--reset-interfaces",
            ],
        ),
        "switch in active",
    );
    assert!(
        text.contains("409") || text.contains("can only be changed"),
        "{text}"
    );
    ok(
        baremetal(&s, &["node", "maintenance", "set", "prod1"]),
        "maintenance on",
    );
    ok(
        baremetal(
            &s,
            &[
                "node",
                "set",
                "prod1",
                "--driver",
                "ipmi",
                "--reset-interfaces",
            ],
        ),
        "switch back",
    );
    ok(
        baremetal(&s, &["node", "maintenance", "unset", "prod1"]),
        "maintenance off",
    );
    let n = s.node("prod1");
    assert_eq!(
        (
            n["driver"].as_str(),
            n["power_interface"].as_str(),
            n["provision_state"].as_str()
        ),
        (Some("ipmi"), Some("ipmi"), Some("active"))
    );
    let calls = power_calls(&s.history(&uuid));
    assert!(
        calls.iter().all(|c| c.contains("get_power_state")),
        "only reads reached fake power: {calls:?}"
    );
}

/// rackboot's guard beyond Ironic: an adopted node with no image checksum is
/// not undeployed/rebuilt without explicit consent.
#[test]
fn adopted_node_guard() {
    let s = Server::start();
    let img = ImageServer::start();
    create_node(&s, &img, "g1", "52:54:00:00:00:21");
    set_image(&s, "g1", &img.url("blankimage"));
    wait_verb(&s, "manage", "g1");
    wait_verb(&s, "adopt", "g1");
    for verb in ["undeploy", "rebuild"] {
        let text = fails(baremetal(&s, &["node", verb, "g1"]), verb);
        assert!(
            text.contains("it was adopted")
                && text.contains("rackboot_allow_destructive=true")
                && text.contains("(HTTP 400)"),
            "{text}"
        );
    }
    assert_eq!(s.node("g1")["provision_state"], "active");
    ok(
        baremetal(
            &s,
            &[
                "node",
                "set",
                "g1",
                "--extra",
                "rackboot_allow_destructive=true",
            ],
        ),
        "consent",
    );
    wait_verb(&s, "undeploy", "g1");
    let n = s.node("g1");
    assert_eq!(n["provision_state"], "available");
    assert_eq!(n["instance_info"], serde_json::json!({}));
    assert_eq!(
        n["driver_internal_info"]["adopted"], true,
        "uncleaned disks still hold the adopted system"
    );
    // Consent through extra is spent by the action it allowed.
    assert_eq!(n["extra"], serde_json::json!({}), "consent spent");
    // With a checksum recorded the adopted node may be provided (no cleaning configured)...
    wait_verb(&s, "manage", "g1");
    let text = fails(
        baremetal(&s, &["node", "provide", "g1"]),
        "provide adopted node",
    );
    assert!(
        text.contains("Refusing \"provide\"") && text.contains("(HTTP 400)"),
        "{text}"
    );
    assert_eq!(s.node("g1")["provision_state"], "manageable");
    ok(
        baremetal(
            &s,
            &[
                "node",
                "set",
                "g1",
                "--instance-info",
                "image_checksum=0123abcd",
            ],
        ),
        "record checksum",
    );
    wait_verb(&s, "provide", "g1");
    // ...but not when cleaning would wipe it (ramdisk deploy cleans with the deploy ramdisk).
    wait_verb(&s, "manage", "g1");
    ok(
        baremetal(
            &s,
            &[
                "node",
                "set",
                "g1",
                "--deploy-interface",
                "ramdisk",
                "--automated-clean",
            ],
        ),
        "enable cleaning",
    );
    let text = fails(
        baremetal(&s, &["node", "provide", "g1"]),
        "provide with cleaning",
    );
    assert!(
        text.contains("automated cleaning would wipe its disks"),
        "{text}"
    );
}

/// Power and boot-device verbs of the CLI reach the fake interfaces, and
/// every call lands in the node history.
#[test]
fn power_and_boot_device_through_the_cli() {
    let s = Server::start();
    let uuid = ok(
        baremetal(
            &s,
            &[
                "node",
                "create",
                "--name",
                "p1",
                "--driver",
                "fake-hardware",
                "-f",
                "value",
                "-c",
                "uuid",
            ],
        ),
        "create",
    )
    .trim()
    .to_string();
    // The CLI does not wait for power actions (no --power-timeout): the
    // state is recorded when the workflow ends.
    ok(baremetal(&s, &["node", "power", "off", "p1"]), "power off");
    wait_until("power off recorded", 30, || {
        let n = s.node("p1");
        n["power_state"] == "power off" && n["target_power_state"].is_null()
    });
    ok(baremetal(&s, &["node", "reboot", "p1"]), "reboot");
    wait_until("the reboot recorded", 30, || {
        let n = s.node("p1");
        n["power_state"] == "power on" && n["target_power_state"].is_null()
    });
    ok(
        baremetal(
            &s,
            &["node", "boot", "device", "set", "p1", "pxe", "--persistent"],
        ),
        "boot device set",
    );
    let shown = ok(
        baremetal(&s, &["node", "boot", "device", "show", "p1", "-f", "json"]),
        "boot device show",
    );
    let shown: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(
        (shown["boot_device"].as_str(), &shown["persistent"]),
        (Some("pxe"), &Value::Bool(true))
    );
    let text = fails(
        baremetal(&s, &["node", "boot", "device", "set", "p1", "floppy"]),
        "bad boot device",
    );
    assert!(text.contains("floppy"), "{text}");
    let calls = power_calls(&s.history(&uuid));
    assert_eq!(
        calls,
        [
            "fake power call: set_power_state power off",
            "fake power call: set_power_state rebooting"
        ]
    );
    assert!(s.history(&uuid).iter().any(|h| h["event"]
        .as_str()
        .unwrap_or("")
        .contains("set_boot_device pxe persistent=true")));
}

/// Ironic's retirement rules and JSON-patch `null` values, through the CLI.
#[test]
fn retirement_and_null_patch_values_as_ironic() {
    let s = Server::start();
    ok(
        baremetal(
            &s,
            &["node", "create", "--name", "r", "--driver", "fake-hardware"],
        ),
        "create",
    );
    s.provision("r", "manage", "manageable");
    ok(
        baremetal(
            &s,
            &[
                "node",
                "set",
                "r",
                "--retired",
                "--retired-reason",
                "end of life",
            ],
        ),
        "retire",
    );
    let n = s.node("r");
    assert_eq!(
        (n["retired"].as_bool(), n["retired_reason"].as_str()),
        (Some(true), Some("end of life")),
        "{n}"
    );
    ok(
        baremetal(&s, &["node", "unset", "r", "--retired"]),
        "un-retire",
    );
    let n = s.node("r");
    assert_eq!(n["retired"], false, "{n}");
    assert!(
        n["retired_reason"].is_null(),
        "un-retiring clears the reason: {n}"
    );
    s.provision("r", "provide", "available");
    let text = fails(
        baremetal(&s, &["node", "set", "r", "--retired"]),
        "retire an available node",
    );
    assert!(
        text.contains("can not have 'retired' set in provision state 'available'"),
        "{text}"
    );
    // `"value": null` is a value (how clients detach an instance); only a
    // missing value is refused.
    let instance = "8f2b6c4e-1c3d-4a5b-9e7f-0a1b2c3d4e5f";
    let (st, v) = s.json(
        "PATCH",
        "/v1/nodes/r",
        Some(serde_json::json!([{"op": "add", "path": "/instance_uuid", "value": instance}])),
    );
    assert_eq!(
        (st, v["instance_uuid"].as_str()),
        (200, Some(instance)),
        "{v}"
    );
    let (st, v) = s.json(
        "PATCH",
        "/v1/nodes/r",
        Some(serde_json::json!([{"op": "replace", "path": "/instance_uuid", "value": null}])),
    );
    assert_eq!(st, 200, "{v}");
    assert!(v["instance_uuid"].is_null(), "{v}");
    let (st, v) = s.json(
        "PATCH",
        "/v1/nodes/r",
        Some(serde_json::json!([{"op": "replace", "path": "/description"}])),
    );
    assert_eq!(st, 400, "{v}");
    // instance_name follows instance_info's display_name (API 1.104).
    ok(
        baremetal(
            &s,
            &["node", "set", "r", "--instance-info", "display_name=web-1"],
        ),
        "display_name",
    );
    assert_eq!(s.node("r")["instance_name"], "web-1");
}

/// Ironic's node-list filters on fields rackboot keeps in the node
/// document, through the real CLI (and the raw API for the version gates).
#[test]
fn node_list_filters_as_ironic() {
    let s = Server::start();
    for (name, extra) in [
        (
            "a",
            vec!["--lessee", "tenant-1", "--description", "Rack 7 node"],
        ),
        ("b", vec!["--owner", "tenant-1", "--description", "rack 8"]),
        ("c", vec![]),
    ] {
        let mut args = vec![
            "node",
            "create",
            "--name",
            name,
            "--driver",
            "fake-hardware",
        ];
        args.extend(extra);
        ok(baremetal(&s, &args), "create");
    }
    s.provision("a", "manage", "manageable");
    ok(baremetal(&s, &["node", "set", "a", "--retired"]), "retire");
    let list = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["node", "list", "-f", "value", "-c", "Name"];
        all.extend_from_slice(args);
        let out = baremetal(&s, &all);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        names.sort();
        names
    };
    assert_eq!(list(&["--retired"]), ["a"]);
    assert_eq!(list(&["--no-retired"]), ["b", "c"]);
    assert_eq!(list(&["--lessee", "tenant-1"]), ["a"]);
    assert_eq!(list(&["--description-contains", "RACK"]), ["a", "b"]);
    assert_eq!(list(&["--unsharded"]), ["a", "b", "c"]);
    // project: the owner or the lessee.
    let (st, v) = s.json("GET", "/v1/nodes?project=tenant-1", None);
    assert_eq!(st, 200, "{v}");
    let mut names: Vec<&str> = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["name"].as_str())
        .collect();
    names.sort();
    assert_eq!(names, ["a", "b"]);
    // Ironic's version gate: lessee needs 1.65.
    let (st, _, body) = s.request(
        "GET",
        "/v1/nodes?lessee=tenant-1",
        None,
        &[("X-OpenStack-Ironic-API-Version", "1.64")],
    );
    assert_eq!(st, 406, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("should be 1.65"));
}
