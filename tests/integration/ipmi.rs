//! The native IPMI client and the `ipmi` hardware type against OpenIPMI's
//! `ipmi_sim` (Debian `openipmi`), several simulated BMCs at once, with
//! `ipmitool` as the reference client.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::bmc::*;
use crate::common::*;

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn native_client_controls_several_simulated_bmcs() {
    let bmcs: Vec<Bmc> = (0..3).map(|_| Bmc::start(false)).collect();
    // Power on only the second one; the others stay off.
    let on = bmcs[1].rackboot(&[], &["on"]);
    assert!(on.status.success(), "{}", text(&on));
    for (i, b) in bmcs.iter().enumerate() {
        let want = if i == 1 { "on" } else { "off" };
        let ours = b.rackboot(&[], &["status"]);
        assert_eq!(
            String::from_utf8_lossy(&ours.stdout).trim(),
            format!("Chassis Power is {want}"),
            "{}",
            text(&ours)
        );
        let theirs = b.ipmitool(&["power", "status"]);
        assert_eq!(
            String::from_utf8_lossy(&theirs.stdout).trim(),
            format!("Chassis Power is {want}")
        );
        assert_eq!(b.state("power"), if i == 1 { "1" } else { "0" });
    }
    let b = &bmcs[1];
    // Reboot of a powered chassis: off, then on — never a cycle.
    assert!(b.rackboot(&[], &["reboot"]).status.success());
    assert_eq!(b.events(), ["set power 1", "set power 0", "set power 1"]);
    // Reboot of a chassis that is off just powers it on.
    let off = &bmcs[0];
    assert!(off.rackboot(&[], &["reboot"]).status.success());
    assert_eq!(off.events(), ["set power 1"]);
    // Soft off (ACPI): the simulated guest honours it and powers off.
    let soft = b.rackboot(&[], &["soft-off"]);
    assert!(soft.status.success(), "{}", text(&soft));
    assert_eq!(b.state("power"), "0");
    assert_eq!(
        b.events()[3..],
        ["set shutdown 1", "guest powered off"],
        "soft off is a request to the OS, not a hard off"
    );
    // Off when off sends nothing.
    assert!(b.rackboot(&[], &["off"]).status.success());
    assert_eq!(b.events().len(), 5, "{:?}", b.events());
    // A guest that ignores the ACPI request: soft off gives up at its
    // timeout with an error, and a hard off then works.
    assert!(b.rackboot(&[], &["on"]).status.success());
    std::fs::write(b.dir.path().join("chassis/ignore-acpi"), "").unwrap();
    let soft = b.rackboot(&["--timeout", "2"], &["soft-off"]);
    assert!(!soft.status.success());
    assert!(
        text(&soft).contains("power did not reach off within 2 s"),
        "{}",
        text(&soft)
    );
    assert_eq!(b.state("power"), "1");
    assert!(b.rackboot(&[], &["off"]).status.success());
    assert_eq!(b.state("power"), "0");
    assert!(off.rackboot(&[], &["off"]).status.success());
    assert_eq!(off.state("power"), "0");
    // Boot device.
    let pxe = b.rackboot(&[], &["bootdev", "pxe", "--persistent"]);
    assert!(pxe.status.success(), "{}", text(&pxe));
    assert_eq!(b.state("boot"), "pxe");
    let theirs = text(&b.ipmitool(&["chassis", "bootparam", "get", "5"]));
    assert!(theirs.contains("Force PXE"), "{theirs}");
    assert!(b.rackboot(&[], &["bootdev", "disk"]).status.success());
    assert_eq!(b.state("boot"), "default");
}

#[test]
fn bmc_errors_say_what_to_fix() {
    let b = Bmc::start(true);
    let wrong = b.dir.path().join("wrong");
    std::fs::write(&wrong, "not-the-password\n").unwrap();
    let out = rackboot_bmc(b.port, &wrong, &["status"]);
    let t = text(&out);
    assert!(!out.status.success());
    assert!(
        t.contains(&format!(
            "authentication failed for BMC 127.0.0.1:{} — check ipmi_username/ipmi_password",
            b.port
        )),
        "{t}"
    );
    assert!(!t.contains("not-the-password"));
    // ipmi_sim has no suite 17: pinned, it is refused; by default we fall back to 3.
    let t = text(&b.rackboot(&["--cipher-suite", "17"], &["status"]));
    assert!(t.contains("does not support cipher suite 17"), "{t}");
    let t = text(&b.rackboot(&[], &["status"]));
    assert_eq!(t.trim(), "Chassis Power is on");
    // A session at USER level may read but not control the chassis: the BMC
    // refuses with 0xd4 and the error says which setting to change.
    let user_pw = b.dir.path().join("operator-pw");
    std::fs::write(&user_pw, "operator\n").unwrap();
    let as_user = |cmd: &[&str]| {
        let mut args = vec!["--priv-level", "USER"];
        args.extend_from_slice(cmd);
        let mut c = Command::new(env!("CARGO_BIN_EXE_rackboot"));
        c.args([
            "bmc",
            "--address",
            "127.0.0.1",
            "--port",
            &b.port.to_string(),
        ])
        .args(["--username", "operator", "--password-file"])
        .arg(&user_pw)
        .args(&args);
        c.output().unwrap()
    };
    let read = as_user(&["status"]);
    assert_eq!(text(&read).trim(), "Chassis Power is on");
    let t = text(&as_user(&["off"]));
    assert!(
        t.contains("answered Chassis Control with completion code 0xd4 (insufficient privilege level) — the session's privilege level is too low for this command: set ipmi_priv_level to OPERATOR or ADMINISTRATOR"),
        "{t}"
    );
    assert_eq!(b.state("power"), "1");
    // Nothing listens on this port: unreachable after the retries.
    let dead = free_udp_port();
    let out = rackboot_bmc(dead, &b.password_file(), &["status"]);
    let t = text(&out);
    assert!(
        t.contains(&format!(
            "BMC 127.0.0.1:{dead} is unreachable: no answer after 4 tries"
        )),
        "{t}"
    );
    assert_eq!(
        b.events(),
        Vec::<String>::new(),
        "no error path sent a chassis command"
    );
}

/// adoption.md's example with `--driver ipmi` against a simulated BMC: manage
/// reads the power state over IPMI, adopt sends nothing to the BMC at all.
#[test]
fn ipmi_node_is_managed_and_adopted_without_chassis_commands() {
    let b = Bmc::start(true);
    let s = Server::start();
    let img = ImageServer::start();
    let port = b.port.to_string();
    let out = ok(
        baremetal(
            &s,
            &[
                "node",
                "create",
                "--name",
                "rack1-n01",
                "--driver",
                "ipmi",
                "--driver-info",
                "ipmi_address=127.0.0.1",
                "--driver-info",
                &format!("ipmi_port={port}"),
                "--driver-info",
                "ipmi_username=admin",
                "--driver-info",
                "ipmi_password=password",
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
        "create ipmi node",
    );
    let uuid = out.trim().to_string();
    ok(
        baremetal(
            &s,
            &["port", "create", "52:54:00:aa:bb:01", "--node", &uuid],
        ),
        "port",
    );
    let image = format!("image_source={}", img.url("blankimage"));
    ok(
        baremetal(&s, &["node", "set", "rack1-n01", "--instance-info", &image]),
        "set image",
    );
    ok(
        baremetal(&s, &["node", "manage", "rack1-n01", "--wait", "60"]),
        "manage over IPMI",
    );
    let n = s.node("rack1-n01");
    assert_eq!(
        (n["provision_state"].as_str(), n["power_state"].as_str()),
        (Some("manageable"), Some("power on"))
    );
    ok(
        baremetal(&s, &["node", "adopt", "rack1-n01", "--wait", "60"]),
        "adopt",
    );
    let n = s.node("rack1-n01");
    assert_eq!(n["provision_state"], "active");
    assert_eq!(n["driver_info"]["ipmi_password"], "******");
    assert_eq!(
        b.events(),
        Vec::<String>::new(),
        "the BMC saw no power or boot-device change"
    );
    assert_eq!(b.state("power"), "1");
    assert!(!s.log().contains("password\"") && !s.log().contains("ipmi_password=password"));
    // Power through the API reaches the simulated chassis.
    ok(
        baremetal(&s, &["node", "power", "off", "rack1-n01"]),
        "power off",
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.node("rack1-n01")["power_state"] != "power off" {
        assert!(
            Instant::now() < deadline,
            "power off never recorded: {}",
            s.node("rack1-n01")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(b.state("power"), "0");
    assert_eq!(b.events(), ["set power 0"]);
    // A wrong password fails manage with a clear last_error, back in enroll.
    let (st, v) = s.json(
        "POST",
        "/v1/nodes",
        Some(json!({"driver": "ipmi", "name": "badpw", "driver_info": {"ipmi_address": "127.0.0.1", "ipmi_port": b.port, "ipmi_username": "admin", "ipmi_password": "nope-nope"}})),
    );
    assert_eq!(st, 201, "{v}");
    let text = fails(
        baremetal(&s, &["node", "manage", "badpw", "--wait", "60"]),
        "manage with a wrong password",
    );
    assert!(text.contains("enroll"), "{text}");
    let n: Value = s.node("badpw");
    let err = n["last_error"].as_str().unwrap();
    assert!(
        err.contains("authentication failed for BMC")
            && err.contains("check ipmi_username/ipmi_password"),
        "{err}"
    );
    assert!(!err.contains("nope-nope"));
}

/// The first power state seen at manage is enforced on an adopted node: one
/// adopted while off and powered on behind the appliance's back is powered
/// off again. A silent BMC puts the node in maintenance ("power failure") and
/// it leaves maintenance by itself when the BMC answers again.
#[test]
fn sync_loop_enforces_power_and_handles_bmc_failure() {
    let mut b = Bmc::start(false);
    let s = Server::start_with(
        "[conductor]\nsync_power_state_interval = \"1s\"\npower_state_sync_max_retries = 1\n",
    );
    let blank = s.dir.path().join("blank.img");
    std::fs::write(&blank, b"").unwrap();
    let file = format!("file://{}", blank.display());
    let (st, v) = s.json(
        "POST",
        "/v1/nodes",
        Some(json!({
            "driver": "ipmi", "name": "prod", "deploy_interface": "ramdisk",
            "driver_info": {"ipmi_address": "127.0.0.1", "ipmi_port": b.port, "ipmi_username": "admin", "ipmi_password": "password",
                            "deploy_kernel": file, "deploy_ramdisk": file},
            "instance_info": {"image_source": file}
        })),
    );
    assert_eq!(st, 201, "{v}");
    let uuid = v["uuid"].as_str().unwrap().to_string();
    let (st, _) = s.json(
        "POST",
        "/v1/ports",
        Some(json!({"address": "52:54:00:aa:bb:77", "node_uuid": uuid})),
    );
    assert_eq!(st, 201);
    for (target, end) in [("manage", "manageable"), ("adopt", "active")] {
        s.provision("prod", target, end);
    }
    assert_eq!(
        b.events(),
        Vec::<String>::new(),
        "manage and adopt touched nothing"
    );
    assert_eq!(
        s.node("prod")["power_state"],
        "power off",
        "manage recorded the simulator's state"
    );
    // Someone powers the machine on behind the appliance's back.
    assert!(b.ipmitool(&["power", "on"]).status.success());
    wait_until("the sync loop to power it off again", 20, || {
        b.state("power") == "0"
    });
    assert_eq!(b.events(), ["set power 1", "set power 0"]);
    wait_until("the enforcement in the history", 30, || {
        s.history(&uuid).iter().any(|h| {
            h["event"]
                .as_str()
                .unwrap_or("")
                .contains("power state enforced")
        })
    });
    // The BMC goes silent: maintenance with fault "power failure".
    b.silence();
    wait_until("maintenance for power failure", 60, || {
        let n = s.node("prod");
        n["maintenance"] == true && n["fault"] == "power failure"
    });
    let n = s.node("prod");
    assert!(
        n["maintenance_reason"]
            .as_str()
            .unwrap()
            .contains("max retries exceeded"),
        "{n}"
    );
    // It answers again: maintenance is cleared by itself.
    b.resume();
    wait_until("recovery from power failure", 30, || {
        let n = s.node("prod");
        n["maintenance"] == false && n["fault"].is_null()
    });
    assert_eq!(s.node("prod")["power_state"], "power off");
}

/// `power_interface=ipmitool` forks ipmitool per call (password through the
/// environment) and gives the same results as the native client.
#[test]
fn ipmitool_interfaces_as_a_fallback() {
    let b = Bmc::start(true);
    let s = Server::start();
    let (st, v) = s.json(
        "POST",
        "/v1/nodes",
        Some(json!({
            "driver": "ipmi", "name": "odd", "power_interface": "ipmitool", "management_interface": "ipmitool",
            "driver_info": {"ipmi_address": "127.0.0.1", "ipmi_port": b.port, "ipmi_username": "admin", "ipmi_password": "password"}
        })),
    );
    assert_eq!(st, 201, "{v}");
    let (st, _) = s.json(
        "PUT",
        "/v1/nodes/odd/states/provision",
        Some(json!({"target": "manage"})),
    );
    assert_eq!(st, 202);
    let n = s.wait_state("odd", "manageable");
    assert_eq!(n["power_state"], "power on");
    let (st, v) = s.json(
        "PUT",
        "/v1/nodes/odd/management/boot_device",
        Some(json!({"boot_device": "pxe", "persistent": true})),
    );
    assert_eq!(st, 204, "{v}");
    assert_eq!(b.state("boot"), "pxe");
    let (_, dev) = s.json("GET", "/v1/nodes/odd/management/boot_device", None);
    assert_eq!(dev["boot_device"], "pxe", "{dev}");
    let (st, _) = s.json(
        "PUT",
        "/v1/nodes/odd/states/power",
        Some(json!({"target": "power off"})),
    );
    assert_eq!(st, 202);
    wait_until("power off through ipmitool", 30, || {
        s.node("odd")["power_state"] == "power off"
    });
    assert_eq!(b.state("power"), "0");
    assert_eq!(b.events(), ["set boot pxe", "set power 0"]);
    assert!(!s.log().contains("password\n") && !s.log().contains("-P password"));
}

/// tests/ipmi-lab/lossy-relay.py: a UDP relay that drops every
/// `drop_every`-th packet in each direction (5: 20 % loss; `tc netem` is not
/// available in this kernel) and counts the client's packets and Open
/// Session Requests into `counts`.
struct LossyRelay {
    port: u16,
    child: Child,
    counts: PathBuf,
    _dir: tempfile::TempDir,
}

impl LossyRelay {
    fn start(target: u16, drop_every: u32) -> LossyRelay {
        use std::io::BufRead;
        let port = free_udp_port();
        let dir = tempfile::tempdir().unwrap();
        let counts = dir.path().join("counts");
        let mut child = Command::new("python3")
            .arg(repo().join("tests/ipmi-lab/lossy-relay.py"))
            .args([port.to_string(), target.to_string(), drop_every.to_string()])
            .arg(&counts)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the lossy relay");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready");
        LossyRelay {
            port,
            child,
            counts,
            _dir: dir,
        }
    }

    /// (packets the client sent, Open Session Requests among them).
    fn counts(&self) -> (u64, u64) {
        let t = std::fs::read_to_string(&self.counts).unwrap_or_default();
        let mut it = t.split_whitespace().map(|n| n.parse().unwrap_or(0));
        (it.next().unwrap_or(0), it.next().unwrap_or(0))
    }

    /// Stops the relay; returns how many packets it dropped.
    fn finish(mut self) -> u32 {
        use std::io::Read;
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let mut out = String::new();
        let _ = self.child.stdout.take().unwrap().read_to_string(&mut out);
        let _ = self.child.wait();
        out.trim()
            .strip_prefix("dropped ")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for LossyRelay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn commands_survive_20_percent_packet_loss() {
    let b = Bmc::start(false);
    let relay = LossyRelay::start(b.port, 5);
    let via = |cmd: &[&str]| rackboot_bmc(relay.port, &b.password_file(), cmd);
    let status = via(&["--repeat", "5", "status"]);
    assert!(status.status.success(), "{}", text(&status));
    assert_eq!(
        String::from_utf8_lossy(&status.stdout)
            .lines()
            .collect::<Vec<_>>(),
        ["Chassis Power is off"; 5]
    );
    let on = via(&["on"]);
    assert!(on.status.success(), "{}", text(&on));
    assert_eq!(b.state("power"), "1");
    let off = via(&["off"]);
    assert!(off.status.success(), "{}", text(&off));
    assert_eq!(b.state("power"), "0");
    let dropped = relay.finish();
    assert!(dropped >= 5, "the relay really dropped packets ({dropped})");
}

/// The appliance keeps one session per BMC: manage logs in once (suite 17 is
/// refused by ipmi_sim, 3 is taken), and the sync passes that follow reuse
/// that session without opening another. With an idle timeout shorter than
/// the sync interval the session is kept open by keepalives (Get Device ID)
/// while it is in use; with `ipmi_session_keep = "0s"` every pass logs in
/// again, straight with suite 3, which the pool learned.
#[test]
fn sync_passes_reuse_one_session_per_bmc() {
    for (idle, keep, new_session_per_pass) in [
        ("20s", "180s", false),
        ("300ms", "180s", false),
        ("300ms", "0s", true),
    ] {
        let b = Bmc::start(true);
        let relay = LossyRelay::start(b.port, 0);
        let s = Server::start_with(&format!(
            "[conductor]\nsync_power_state_interval = \"1s\"\nipmi_session_idle_timeout = \"{idle}\"\nipmi_session_keep = \"{keep}\"\n"
        ));
        let case = format!("idle {idle}, keep {keep}");
        let (st, v) = s.json(
            "POST",
            "/v1/nodes",
            Some(json!({
                "driver": "ipmi", "name": "kept",
                "driver_info": {"ipmi_address": "127.0.0.1", "ipmi_port": relay.port,
                                "ipmi_username": "admin", "ipmi_password": "password"}
            })),
        );
        assert_eq!(st, 201, "{v}");
        let (st, v) = s.json(
            "PUT",
            "/v1/nodes/kept/states/provision",
            Some(json!({"target": "manage"})),
        );
        assert_eq!(st, 202, "{v}");
        s.wait_state("kept", "manageable");
        let (sent, opens) = relay.counts();
        assert_eq!(opens, 2, "suite 17 refused, then suite 3 ({sent} packets)");
        // Three more sync passes, as the appliance logs them.
        let passes = |s: &Server| s.log().matches("power-state sync pass").count();
        let before = passes(&s);
        wait_until("three sync passes", 30, || passes(&s) >= before + 3);
        let (later, opens_later) = relay.counts();
        let extra = opens_later - opens;
        if new_session_per_pass {
            // About 7 packets per pass with one Open Session (caps, open,
            // RAKP 1 and 3, privilege, status, close); trying 17 first again
            // would make it 2 opens in 8.
            assert!(
                extra >= 3 && (later - sent) as f64 / extra as f64 > 5.0,
                "{case}: one login with suite 3 only per pass, {extra} opens in {} packets",
                later - sent
            );
        } else {
            assert_eq!(extra, 0, "{case}: {} packets in the passes", later - sent);
        }
        assert_eq!(b.events(), Vec::<String>::new());
    }
}
