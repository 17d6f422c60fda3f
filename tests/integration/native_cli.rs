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
