//! The native `rackboot node …` client runs the adoption flow too.

use std::process::Command;

use serde_json::Value;

use crate::common::*;

fn rb(s: &Server, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rackboot"))
        .args(args)
        .env("OS_ENDPOINT", s.endpoint())
        .env_remove("OS_AUTH_TYPE")
        .output()
        .expect("run rackboot client")
}

#[test]
fn native_cli_adoption_flow() {
    let s = Server::start();
    let img = ImageServer::start();
    let out = ok(
        rb(
            &s,
            &[
                "node",
                "create",
                "--json",
                "--name",
                "nat1",
                "--driver",
                "fake-hardware",
                "--boot-interface",
                "ipxe",
                "--driver-info",
                "ipmi_address=192.0.2.30",
                "--driver-info",
                "ipmi_password=native-pw",
                "--driver-info",
                &format!("deploy_kernel={}", img.url("deploy.kernel")),
                "--driver-info",
                &format!("deploy_ramdisk={}", img.url("deploy.initramfs")),
            ],
        ),
        "rackboot node create",
    );
    let created: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(created["provision_state"], "enroll");
    assert_eq!(created["driver_info"]["ipmi_password"], "******");
    let uuid = created["uuid"].as_str().unwrap();
    ok(
        rb(
            &s,
            &["port", "create", "52:54:00:00:02:01", "--node", "nat1"],
        ),
        "port create by name",
    );
    ok(
        rb(
            &s,
            &[
                "node",
                "set",
                "nat1",
                "--instance-info",
                &format!("image_source={}", img.url("blankimage")),
            ],
        ),
        "set",
    );
    ok(
        rb(&s, &["node", "manage", "nat1", "--wait", "30"]),
        "manage --wait",
    );
    ok(rb(&s, &["node", "adopt", "nat1", "--wait"]), "adopt --wait");
    let shown: Value =
        serde_json::from_str(&ok(rb(&s, &["node", "show", "nat1", "--json"]), "show")).unwrap();
    assert_eq!(shown["provision_state"], "active");
    let history = s.history(uuid);
    assert!(power_calls(after(&history, "adopt: manageable -> adopting")).is_empty());

    let table = ok(rb(&s, &["node", "list"]), "list");
    assert!(
        table.contains("| nat1 ") && table.contains("active"),
        "{table}"
    );
    let ports = ok(
        rb(&s, &["port", "list", "--node", "nat1", "--json"]),
        "port list",
    );
    let ports: Value = serde_json::from_str(&ports).unwrap();
    assert_eq!(ports[0]["address"], "52:54:00:00:02:01");
    let hist = ok(rb(&s, &["node", "history", "nat1"]), "history");
    assert!(hist.contains("adopting -> active"), "{hist}");

    // Failure path and wrong-state errors say why.
    let bad = rb(&s, &["node", "adopt", "nat1"]);
    let text = fails(bad, "adopt from active");
    assert!(
        text.contains("can not be performed") && text.contains("(HTTP 400)"),
        "{text}"
    );
    let text = fails(
        rb(&s, &["node", "undeploy", "nat1", "--wait"]),
        "guarded undeploy",
    );
    assert!(text.contains("--confirm-destructive"), "{text}");
    ok(
        rb(
            &s,
            &[
                "node",
                "undeploy",
                "nat1",
                "--wait",
                "--confirm-destructive",
            ],
        ),
        "undeploy with consent",
    );
    ok(rb(&s, &["node", "delete", "nat1"]), "delete available node");
    // --driver-info-file keeps the BMC password out of the process arguments.
    let secrets = s.dir.path().join("bmc.info");
    std::fs::write(
        &secrets,
        "# BMC\nipmi_address=192.0.2.31\nipmi_password=file-pw-9\n",
    )
    .unwrap();
    let out = ok(
        rb(
            &s,
            &[
                "node",
                "create",
                "--json",
                "--name",
                "nat2",
                "--driver",
                "ipmi",
                "--driver-info-file",
                secrets.to_str().unwrap(),
            ],
        ),
        "create with --driver-info-file",
    );
    let created: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(created["driver_info"]["ipmi_address"], "192.0.2.31");
    assert_eq!(created["driver_info"]["ipmi_password"], "******");
    assert!(!s.log().contains("file-pw-9"));
    let text = fails(
        rb(
            &s,
            &[
                "node",
                "create",
                "--name",
                "x",
                "--driver",
                "ipmi",
                "--driver-info",
                "ipmi_passwordoops",
            ],
        ),
        "bad item",
    );
    assert!(
        !text.contains("oops") && text.contains("KEY=VALUE"),
        "{text}"
    );

    let text = fails(rb(&s, &["node", "show", "nat1"]), "show deleted");
    assert!(
        text.contains("could not be found") && text.contains("404"),
        "{text}"
    );
}

fn json_out(s: &Server, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = ok(rb(s, &all), &args.join(" "));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{}: {e}: {out}", args.join(" ")))
}

fn fails_with(s: &Server, args: &[&str], text: &str) {
    let out = rb(s, args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains(text),
        "rackboot {}: expected a failure saying {text:?}, got {:?} {err}",
        args.join(" "),
        out.status
    );
}

/// The native client's allocation, chassis, node trait and node VIF verbs,
/// with `baremetal`'s flags.
#[test]
fn native_cli_allocation_chassis_trait_and_vif_verbs() {
    let s = Server::start();
    let ch = json_out(
        &s,
        &[
            "chassis",
            "create",
            "--description",
            "rack 9",
            "--extra",
            "row=3",
        ],
    );
    let ch_uuid = ch["uuid"].as_str().unwrap();
    assert_eq!(ch["extra"]["row"], 3);
    ok(
        rb(
            &s,
            &[
                "chassis",
                "set",
                ch_uuid,
                "--description",
                "rack 10",
                "--extra",
                "pdu=a",
            ],
        ),
        "chassis set",
    );
    ok(
        rb(&s, &["chassis", "unset", ch_uuid, "--extra", "row"]),
        "chassis unset",
    );
    let shown = json_out(&s, &["chassis", "show", ch_uuid]);
    assert_eq!(shown["description"], "rack 10");
    assert_eq!(shown["extra"], serde_json::json!({"pdu": "a"}));
    let listed = json_out(&s, &["chassis", "list", "--long"]);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");

    json_out(
        &s,
        &[
            "node",
            "create",
            "--driver",
            "fake-hardware",
            "--name",
            "nt1",
            "--resource-class",
            "nat",
        ],
    );
    ok(
        rb(
            &s,
            &[
                "node",
                "add",
                "trait",
                "nt1",
                "CUSTOM_FAST",
                "HW_CPU_X86_AVX2",
            ],
        ),
        "add trait",
    );
    let traits = json_out(&s, &["node", "trait", "list", "nt1"]);
    assert_eq!(
        traits,
        serde_json::json!([{"traits": "CUSTOM_FAST"}, {"traits": "HW_CPU_X86_AVX2"}])
    );
    ok(
        rb(&s, &["node", "remove", "trait", "nt1", "HW_CPU_X86_AVX2"]),
        "remove trait",
    );
    fails_with(&s, &["node", "add", "trait", "nt1", "fast"], "CUSTOM_");

    ok(rb(&s, &["node", "manage", "nt1", "--wait", "30"]), "manage");
    ok(
        rb(&s, &["node", "provide", "nt1", "--wait", "30"]),
        "provide",
    );
    let a = json_out(
        &s,
        &[
            "allocation",
            "create",
            "--resource-class",
            "nat",
            "--trait",
            "CUSTOM_FAST",
            "--name",
            "na1",
            "--extra",
            "ticket=7",
            "--wait",
            "30",
        ],
    );
    assert_eq!(a["state"], "active", "{a}");
    let node = json_out(&s, &["node", "show", "nt1"]);
    assert_eq!(a["node_uuid"], node["uuid"]);
    ok(
        rb(&s, &["allocation", "set", "na1", "--extra", "ticket=8"]),
        "allocation set",
    );
    ok(
        rb(&s, &["allocation", "unset", "na1", "--extra", "ticket"]),
        "allocation unset",
    );
    assert_eq!(
        json_out(&s, &["allocation", "show", "na1"])["extra"],
        serde_json::json!({})
    );
    let listed = json_out(&s, &["allocation", "list", "--state", "active", "--long"]);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    fails_with(
        &s,
        &[
            "allocation",
            "create",
            "--resource-class",
            "nat",
            "--wait",
            "30",
        ],
        "no available nodes",
    );
    ok(
        rb(&s, &["allocation", "delete", "na1"]),
        "allocation delete",
    );
    assert_eq!(
        json_out(&s, &["node", "show", "nt1"])["instance_uuid"],
        Value::Null
    );

    fails_with(
        &s,
        &["node", "vif", "attach", "nt1", "vif-1"],
        "not enough free physical ports",
    );
    ok(
        rb(
            &s,
            &["port", "create", "52:54:00:00:09:01", "--node", "nt1"],
        ),
        "port create",
    );
    ok(
        rb(&s, &["node", "vif", "attach", "nt1", "vif-1"]),
        "vif attach",
    );
    let vifs = json_out(&s, &["node", "vif", "list", "nt1"]);
    assert_eq!(vifs, serde_json::json!([{"id": "vif-1"}]));
    ok(
        rb(&s, &["node", "vif", "detach", "nt1", "vif-1"]),
        "vif detach",
    );
    fails_with(
        &s,
        &["node", "vif", "detach", "nt1", "vif-1"],
        "not attached to it",
    );
    fails_with(
        &s,
        &["chassis", "delete", "00000000-1111-2222-3333-444444444444"],
        "could not be found",
    );
    ok(rb(&s, &["chassis", "delete", ch_uuid]), "chassis delete");
}
