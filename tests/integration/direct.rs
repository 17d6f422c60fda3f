//! The `direct` deploy with the real ironic-python-agent: a QEMU VM behind
//! its ipmi_sim BMC boots the agent ramdisk, the agent writes the test's
//! whole-disk image (images/build-test-disk.sh) to the VM's empty virtio
//! disk, the VM is powered off and on, and it boots from that disk.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::*;
use crate::netns::*;

/// The test disk image (raw or qcow2) and its sha256 (built by scripts/test.sh).
fn disk_image(format: &str) -> (std::path::PathBuf, String) {
    let path = repo().join(format!("images/out/disk/test-disk.{format}"));
    let sum = std::fs::read_to_string(path.with_extension(format!("{format}.sha256")))
        .unwrap_or_else(|_| {
            panic!("the test disk image is missing: run images/build-test-disk.sh (scripts/test.sh does)")
        });
    (path, sum.trim().to_string())
}

fn serial(dir: &std::path::Path) -> String {
    String::from_utf8_lossy(&std::fs::read(dir.join("serial")).unwrap_or_default()).into_owned()
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A QEMU VM for the agent (2 vCPUs on one TCG thread, 2 GiB, one NIC that network-boots,
/// an empty 5 GiB virtio disk, a QMP socket), as a shell command for its BMC.
fn vm_cmd(tap: &str, mac: &str, dir: &std::path::Path) -> String {
    let mut a = agent_qemu_args(tap, mac, dir);
    let disk = dir.join("disk0.img");
    std::fs::File::create(&disk)
        .unwrap()
        .set_len(5 << 30)
        .unwrap();
    a.extend([
        "-drive".into(),
        format!("file={},if=virtio,format=raw", disk.display()),
        "-qmp".into(),
        format!("unix:{},server=on,wait=off", dir.join("qmp").display()),
    ]);
    qemu_cmd(a)
}

fn pos(events: &[String], needle: &str) -> usize {
    events
        .iter()
        .position(|e| e.contains(needle))
        .unwrap_or_else(|| panic!("no {needle:?} in {events:#?}"))
}

/// A lab: the appliance on its segment, one VM behind ipmi_sim, and node
/// `d1` (ipmi, ipxe, direct) that deploys the test disk image in `format`.
struct Lab {
    s: Server,
    bmc: crate::bmc::Bmc,
    vmdir: tempfile::TempDir,
    _seg: Segment,
    _turn: std::sync::MutexGuard<'static, ()>,
}

impl Lab {
    fn start(format: &str, extra: &str) -> Lab {
        let turn = agent_vm_turn();
        let out = repo().join("images/out/ipa");
        let (kernel, ramdisk) = (out.join("ipa.kernel"), out.join("ipa.initramfs"));
        assert!(
            kernel.exists() && ramdisk.exists(),
            "the ironic-python-agent ramdisk is missing: run images/build-ipa-ramdisk.sh (scripts/test.sh does)"
        );
        let (image, sha256) = disk_image(format);
        let mut seg = Segment::new();
        let s = lab_appliance(
            &seg,
            &repo().join("images/out"),
            &format!("sync_power_state_interval = \"0s\"\n{extra}"),
        );
        let mac = seg.mac(1);
        let tap = seg.tap();
        let vmdir = tempfile::tempdir().unwrap();
        let bmc = crate::bmc::Bmc::start_vm(&vm_cmd(&tap, &mac, vmdir.path()));
        s.node_with_port(
            json!({"name": "d1", "driver": "ipmi", "boot_interface": "ipxe", "deploy_interface": "direct",
                   "driver_info": {"ipmi_address": "127.0.0.1", "ipmi_port": bmc.port,
                                   "ipmi_username": "admin", "ipmi_password": "password",
                                   "deploy_kernel": format!("file://{}", kernel.display()),
                                   "deploy_ramdisk": format!("file://{}", ramdisk.display()),
                                   "kernel_append_params": "console=ttyS0"},
                   "instance_info": {"image_source": format!("file://{}", image.display()),
                                     "image_checksum": sha256, "image_disk_format": format}}),
            &mac,
        );
        s.provision("d1", "manage", "manageable");
        s.provision("d1", "provide", "available");
        Lab {
            s,
            bmc,
            vmdir,
            _seg: seg,
            _turn: turn,
        }
    }

    fn serial(&self) -> String {
        serial(self.vmdir.path())
    }

    /// Waits for `want`, failing at once on a `… failed` state.
    fn wait(&self, want: &str, secs: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let n = self.s.node("d1");
            if n["provision_state"] == want {
                return n;
            }
            let failed = n["provision_state"]
                .as_str()
                .is_some_and(|s| s.ends_with("failed"));
            assert!(
                !failed && Instant::now() < deadline,
                "d1 is {} (last_error {}), not {want}; serial tail:\n{}\nlog tail:\n{}",
                n["provision_state"],
                n["last_error"],
                tail(&self.serial(), 40),
                tail(&self.s.log(), 40)
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Waits for `deploy failed` (bounded), failing if it goes `active`.
    fn wait_failed(&self, secs: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let n = self.s.node("d1");
            if n["provision_state"] == "deploy failed" {
                return n;
            }
            assert!(
                n["provision_state"] != "active" && Instant::now() < deadline,
                "d1 is {}, not deploy failed; log tail:\n{}",
                n["provision_state"],
                tail(&self.s.log(), 40)
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn disk(&self) -> Vec<u8> {
        let mut f = std::fs::File::open(self.vmdir.path().join("disk0.img")).unwrap();
        let mut head = vec![0u8; 1 << 20];
        std::io::Read::read_exact(&mut f, &mut head).unwrap();
        head
    }

    /// Freezes the VM (QMP `stop`): its agent answers nothing from now on.
    fn freeze(&self) {
        use std::io::{BufRead, BufReader, Write};
        let sock = std::os::unix::net::UnixStream::connect(self.vmdir.path().join("qmp"))
            .expect("the VM's QMP socket");
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut r = BufReader::new(sock.try_clone().unwrap());
        let mut line = String::new();
        r.read_line(&mut line).unwrap(); // the greeting
        for cmd in ["qmp_capabilities", "stop"] {
            writeln!(&sock, "{{\"execute\": \"{cmd}\"}}").unwrap();
            loop {
                line.clear();
                r.read_line(&mut line).unwrap();
                assert!(!line.is_empty(), "QMP closed during {cmd}");
                if line.contains("\"return\"") || line.contains("\"error\"") {
                    assert!(line.contains("\"return\""), "QMP {cmd}: {line}");
                    break;
                }
            }
        }
    }
}

fn b64(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// The MBR's partition entries that are in use: (type, first LBA, sectors).
fn partitions(sector0: &[u8]) -> Vec<(u8, u32, u32)> {
    if sector0[510..512] != [0x55, 0xAA] {
        return Vec::new();
    }
    (0..4)
        .map(|i| &sector0[446 + 16 * i..462 + 16 * i])
        .filter(|e| e[4] != 0)
        .map(|e| {
            let le = |b: &[u8]| u32::from_le_bytes(b.try_into().unwrap());
            (e[4], le(&e[8..12]), le(&e[12..16]))
        })
        .collect()
}

/// The whole road of a direct deployment: deploy with a config drive built
/// from JSON, the VM boots its disk and reads the drive; undeploy with
/// automated cleaning wipes the disk's metadata.
#[test]
fn direct_deploy_of_a_raw_image_with_a_config_drive_then_undeploy_cleans_it() {
    let lab = Lab::start("raw", "");
    let s = &lab.s;
    let uuid = s.node("d1")["uuid"].as_str().unwrap().to_string();
    ok(
        baremetal(
            s,
            &[
                "node",
                "deploy",
                "d1",
                "--config-drive",
                r##"{"meta_data": {"hostname": "d1.rack"}, "user_data": "#!/bin/sh\necho hello\n"}"##,
            ],
        ),
        "baremetal node deploy --config-drive",
    );
    let started = Instant::now();
    let n = lab.wait("active", 480);
    eprintln!(
        "direct deploy (raw, config drive) wall time: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(n["last_error"], Value::Null, "{n}");
    // Kept for the deploy, never shown (Ironic masks it).
    assert_eq!(n["instance_info"]["configdrive"], "******", "{n}");
    wait_until(
        "the VM to boot from its disk and read its config drive",
        120,
        || lab.serial().contains("RACKBOOT-CONFIGDRIVE-"),
    );
    wait_until("the VM to look for injected files", 60, || {
        lab.serial().contains("RACKBOOT-INJECTED")
    });
    let console = lab.serial();
    assert!(
        console.contains("RACKBOOT-DISK-BOOTED"),
        "{}",
        tail(&console, 30)
    );
    assert!(
        console.contains("RACKBOOT-INJECTED-NONE"),
        "{}",
        tail(&console, 30)
    );
    assert!(
        console.contains(&format!("RACKBOOT-CONFIGDRIVE-UUID={uuid}")),
        "the VM did not read the node's uuid from its config drive:\n{}",
        tail(&console, 30)
    );
    // The disk holds the image (its boot code, its partition, its data) and
    // the agent's config-drive partition after it.
    let (raw, _) = disk_image("raw");
    let want = std::fs::read(&raw).unwrap();
    let got = lab.disk();
    assert!(
        got[..446] == want[..446],
        "the boot code differs from the image's"
    );
    assert!(
        got[512..1 << 20] == want[512..1 << 20],
        "the disk's first MiB differs from the image's"
    );
    let parts = partitions(&got[..512]);
    assert_eq!(
        parts.len(),
        2,
        "the image's partition and the config drive's: {parts:?}"
    );
    assert_eq!(parts[0], partitions(&want[..512])[0]);
    let e = s.events("d1");
    eprintln!("timeline:\n{}", e.join("\n"));
    assert!(pos(&e, "instance_info/image_source") < pos(&e, "the agent ramdisk boots"));
    assert!(pos(&e, "the agent ramdisk boots") < pos(&e, "agent token issued"));
    assert!(pos(&e, "agent token issued") < pos(&e, "deploy step deploy.write_image started"));
    assert!(e[pos(&e, "write_image started")].ends_with("and a config drive"));
    assert!(pos(&e, "write_image started") < pos(&e, "HTTP image requested"));
    assert!(pos(&e, "HTTP image requested") < pos(&e, "deploy step deploy.write_image done"));
    assert!(
        pos(&e, "deploy steps: deploy.write_image (80), deploy.prepare_instance_boot (60), deploy.tear_down_agent (40), deploy.boot_instance (20)")
            < pos(&e, "write_image started")
    );
    assert!(pos(&e, "write_image done") < pos(&e, "deploy step deploy.prepare_instance_boot:"));
    assert!(
        pos(&e, "deploy step deploy.prepare_instance_boot:")
            < pos(&e, "deploy step deploy.tear_down_agent:")
    );
    assert!(
        pos(&e, "deploy step deploy.tear_down_agent:")
            < pos(&e, "deploy step deploy.boot_instance:")
    );
    // IPMI's "force boot from default hard-drive", as ipmi_sim names it.
    assert_eq!(
        lab.bmc.events(),
        [
            "set boot pxe",
            "set power 1",
            "set boot default",
            "set power 1"
        ],
        "PXE and on for the agent; disk and on for the instance (the agent powered off)"
    );

    // Rebuild with a new config drive and a deploy step of the agent's: it
    // writes the image again, injects a file, and the VM reads both.
    let steps = format!(
        r#"[{{"interface": "deploy", "step": "inject_files", "priority": 70, "args": {{"files": [{{"path": "/etc/rackboot-injected", "content": "{}"}}]}}}}]"#,
        b64("from-deploy-steps\n")
    );
    ok(
        baremetal(
            s,
            &[
                "node",
                "rebuild",
                "d1",
                "--config-drive",
                r#"{"meta_data": {"uuid": "rebuilt-d1"}}"#,
                "--deploy-steps",
                &steps,
            ],
        ),
        "baremetal node rebuild --config-drive --deploy-steps",
    );
    let started = Instant::now();
    let n = lab.wait("active", 480);
    eprintln!(
        "rebuild wall time: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(n["last_error"], Value::Null, "{n}");
    wait_until("the rebuilt VM to read its config drive", 120, || {
        lab.serial().contains("RACKBOOT-INJECTED")
    });
    let console = lab.serial();
    assert!(
        console.contains("RACKBOOT-CONFIGDRIVE-UUID=rebuilt-d1")
            && console.contains("RACKBOOT-INJECTED=from-deploy-steps"),
        "{}",
        tail(&console, 20)
    );
    let e = s.events("d1");
    assert!(pos(&e, "rebuild: active -> deploying") < e.len());
    let parts = partitions(&lab.disk()[..512]);
    assert_eq!(
        parts.len(),
        2,
        "one config drive partition after the rebuild: {parts:?}"
    );

    // Undeploy: tear-down, then automated cleaning through the agent.
    ok(
        baremetal(s, &["node", "set", "d1", "--automated-clean"]),
        "baremetal node set --automated-clean",
    );
    ok(
        baremetal(s, &["node", "undeploy", "d1"]),
        "baremetal node undeploy",
    );
    let started = Instant::now();
    let n = lab.wait("available", 420);
    eprintln!(
        "undeploy with cleaning wall time: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(n["instance_info"], json!({}), "{n}");
    let e = s.events("d1");
    let undeploy = pos(&e, "deleted: active -> deleting");
    assert!(undeploy < pos(&e, "erase_devices_metadata (priority 99) started"));
    assert!(
        pos(&e, "erase_devices_metadata (priority 99) started")
            < pos(
                &e,
                "clean.execute_clean_step deploy.erase_devices_metadata: done"
            )
    );
    let got = lab.disk();
    assert_eq!(
        partitions(&got[..512]),
        [],
        "the partition table is still on the disk after cleaning"
    );
}

/// Two failures, then success, with qcow2 images: an image larger than
/// the VM's disk is refused before anything is written; an agent that stops
/// answering mid-write (its VM frozen once it has asked for the image) fails
/// the deploy at the call-back timeout; a new deploy boots the agent afresh
/// and succeeds.
#[test]
fn direct_deploy_of_qcow2_images_fails_clearly_then_succeeds() {
    let lab = Lab::start("qcow2", "deploy_callback_timeout = \"120s\"\n");
    let s = &lab.s;
    let (good, good_sum) = disk_image("qcow2");
    let big = good.with_file_name("oversized.qcow2");
    let big_sum = std::fs::read_to_string(big.with_extension("qcow2.sha256")).unwrap();
    let set_image = |path: &std::path::Path, sum: &str| {
        ok(
            baremetal(
                s,
                &[
                    "node",
                    "set",
                    "d1",
                    "--instance-info",
                    &format!("image_source=file://{}", path.display()),
                    "--instance-info",
                    &format!("image_checksum={}", sum.trim()),
                ],
            ),
            "baremetal node set --instance-info",
        );
    };

    // 1. 8 GiB (virtual) for a 5 GiB disk: refused before the write.
    set_image(&big, &big_sum);
    ok(
        baremetal(s, &["node", "deploy", "d1"]),
        "baremetal node deploy (oversized)",
    );
    let n = lab.wait_failed(480);
    let err = n["last_error"].as_str().unwrap_or_default();
    assert!(
        err.contains("the image needs 8589934592 bytes on disk, more than the target disk /dev/vda has (5368709120 bytes); nothing was written"),
        "{err}"
    );
    assert!(lab.disk().iter().all(|b| *b == 0), "something was written");
    let e = s.events("d1");
    assert!(
        !e.iter().any(|x| x.contains("write_image started")),
        "{e:#?}"
    );

    // 2. The right image; the agent is lost mid-write.
    set_image(&good, &good_sum);
    ok(
        baremetal(s, &["node", "deploy", "d1"]),
        "baremetal node deploy",
    );
    let asked_before = s
        .events("d1")
        .iter()
        .filter(|e| e.contains("HTTP image requested"))
        .count();
    wait_until("the agent to ask for the image", 300, || {
        s.events("d1")
            .iter()
            .filter(|e| e.contains("HTTP image requested"))
            .count()
            > asked_before
    });
    lab.freeze();
    let frozen = Instant::now();
    let n = lab.wait_failed(300);
    eprintln!(
        "deploy failed {:.1} s after the agent froze",
        frozen.elapsed().as_secs_f64()
    );
    let err = n["last_error"].as_str().unwrap_or_default();
    assert!(
        err.contains("Timeout reached while waiting for callback")
            && err.contains("deploy_callback_timeout"),
        "{err}"
    );

    // 3. The retry, with a deploy template the node's instance traits
    //    name: the agent boots again, writes the image, runs the template's
    //    inject_files step (priority 55, after prepare_instance_boot at
    //    60), and the VM boots the image and prints the injected file.
    let files = format!(
        r#"[{{"interface": "deploy", "step": "inject_files", "priority": 55, "args": {{"files": [{{"path": "/etc/rackboot-injected", "content": "{}"}}]}}}}]"#,
        b64("from-template\n")
    );
    ok(
        baremetal(
            s,
            &[
                "deploy",
                "template",
                "create",
                "CUSTOM_MARK",
                "--steps",
                &files,
            ],
        ),
        "baremetal deploy template create",
    );
    ok(
        baremetal(s, &["node", "add", "trait", "d1", "CUSTOM_MARK"]),
        "baremetal node add trait",
    );
    ok(
        baremetal(
            s,
            &[
                "node",
                "set",
                "d1",
                "--instance-info",
                r#"traits=["CUSTOM_MARK"]"#,
            ],
        ),
        "baremetal node set --instance-info traits",
    );
    ok(
        baremetal(s, &["node", "deploy", "d1"]),
        "baremetal node deploy (retry)",
    );
    let started = Instant::now();
    let n = lab.wait("active", 480);
    eprintln!(
        "direct deploy (qcow2, retry) wall time: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(n["last_error"], Value::Null, "{n}");
    wait_until("the VM to boot from its disk", 120, || {
        lab.serial().contains("RACKBOOT-CONFIGDRIVE-")
    });
    assert!(lab.serial().contains("RACKBOOT-CONFIGDRIVE-NONE"));
    wait_until("the VM to print the injected file", 60, || {
        lab.serial().contains("RACKBOOT-INJECTED")
    });
    assert!(
        lab.serial().contains("RACKBOOT-INJECTED=from-template"),
        "{}",
        tail(&lab.serial(), 20)
    );
    let e = s.events("d1");
    let plan = e
        .iter()
        .rposition(|x| x.starts_with("deploy steps:"))
        .unwrap();
    assert!(
        e[plan].contains("deploy.write_image (80), deploy.prepare_instance_boot (60), deploy.inject_files (55), deploy.tear_down_agent (40), deploy.boot_instance (20)"),
        "{}",
        e[plan]
    );
    // The qcow2 image's contents are the raw image's.
    let (raw, _) = disk_image("raw");
    let want = std::fs::read(&raw).unwrap();
    assert!(
        lab.disk()[..] == want[..1 << 20],
        "the disk's first MiB differs from the image's"
    );
}

/// A wrong checksum stops the deploy before the machine is touched: the
/// image is checked while it is staged, and `deploy failed` names it.
#[test]
fn a_wrong_image_checksum_fails_before_anything_is_written() {
    let (image, _) = disk_image("raw");
    let s = Server::start_with(&format!(
        "[conductor]\nfile_url_allowed_paths = [\"{}\"]\n",
        repo().join("images/out").display()
    ));
    let source = format!("file://{}", image.display());
    s.node_with_port(
        json!({"name": "bad", "driver": "fake-hardware", "deploy_interface": "direct", "boot_interface": "ipxe",
               "driver_info": {"deploy_kernel": "http://127.0.0.1:9/k", "deploy_ramdisk": "http://127.0.0.1:9/r"},
               "instance_info": {"image_source": source, "image_checksum": "0".repeat(64)}}),
        "52:54:00:d1:00:01",
    );
    s.provision("bad", "manage", "manageable");
    s.provision("bad", "provide", "available");
    let (st, v) = s.json(
        "PUT",
        "/v1/nodes/bad/states/provision",
        Some(json!({"target": "active"})),
    );
    assert_eq!(st, 202, "{v}");
    let n = s.wait_state("bad", "deploy failed");
    let e = n["last_error"].as_str().unwrap_or_default().to_string();
    assert!(e.contains("test-disk.raw") && e.contains("checksum"), "{e}");
    // With the ipxe boot interface, booting the agent would set the boot
    // device and power the (fake) machine: none of that happened.
    let history = s.history("bad");
    let touched: Vec<&str> = after(&history, "active: available -> deploying")
        .iter()
        .filter_map(|h| h["event"].as_str())
        .filter(|e| e.starts_with("fake power call") || e.starts_with("fake management call"))
        .collect();
    assert!(touched.is_empty(), "the machine was touched: {touched:?}");
}
