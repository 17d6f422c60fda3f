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

/// A QEMU VM for the agent (2 vCPUs, 2 GiB, one NIC that network-boots,
/// an empty 5 GiB virtio disk), as a shell command for its BMC.
fn vm_cmd(tap: &str, mac: &str, dir: &std::path::Path) -> String {
    let mut a = qemu_args(tap, mac, Firmware::BiosIpxe, dir);
    let m = a.iter().position(|x| x == "-m").expect("qemu_args sets -m");
    a[m + 1] = "2048".into();
    a.extend(["-smp".into(), "2".into()]);
    let disk = dir.join("disk0.img");
    std::fs::File::create(&disk)
        .unwrap()
        .set_len(5 << 30)
        .unwrap();
    a.extend([
        "-drive".into(),
        format!("file={},if=virtio,format=raw", disk.display()),
    ]);
    std::iter::once("qemu-system-x86_64".to_string())
        .chain(a)
        .collect::<Vec<_>>()
        .join(" ")
}

fn pos(events: &[String], needle: &str) -> usize {
    events
        .iter()
        .position(|e| e.contains(needle))
        .unwrap_or_else(|| panic!("no {needle:?} in {events:#?}"))
}

/// Deploys the image in `format` to a fresh VM and checks it boots from it.
fn deploy_and_boot(format: &str) {
    let _turn = agent_vm_turn();
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
        "sync_power_state_interval = \"0s\"\n",
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
    ok(
        baremetal(&s, &["node", "deploy", "d1"]),
        "baremetal node deploy",
    );
    let started = Instant::now();
    let deadline = started + Duration::from_secs(480);
    loop {
        let n = s.node("d1");
        if n["provision_state"] == "active" {
            break;
        }
        let failed = n["provision_state"]
            .as_str()
            .is_some_and(|s| s.ends_with("failed"));
        assert!(
            !failed && Instant::now() < deadline,
            "d1 is {} (last_error {}); serial tail:\n{}\nlog tail:\n{}",
            n["provision_state"],
            n["last_error"],
            tail(&serial(vmdir.path()), 40),
            tail(&s.log(), 40)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!(
        "direct deploy ({format}) wall time: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    wait_until("the VM to boot from its disk", 120, || {
        serial(vmdir.path()).contains("RACKBOOT-DISK-BOOTED")
    });
    // The first MiB of the VM's disk is the image's (its partition table
    // and boot loader); for qcow2, the raw image's.
    let (raw, _) = disk_image("raw");
    let want = std::fs::read(&raw).unwrap();
    let got = std::fs::read(vmdir.path().join("disk0.img")).unwrap();
    assert!(
        got[..1 << 20] == want[..1 << 20],
        "the disk's first MiB differs from the image's"
    );
    let n = s.node("d1");
    assert_eq!(n["last_error"], Value::Null, "{n}");
    let e = s.events("d1");
    eprintln!("timeline:\n{}", e.join("\n"));
    assert!(pos(&e, "instance_info/image_source") < pos(&e, "the agent ramdisk boots"));
    assert!(pos(&e, "the agent ramdisk boots") < pos(&e, "agent token issued"));
    assert!(pos(&e, "agent token issued") < pos(&e, "deploy step deploy.write_image started"));
    assert!(pos(&e, "write_image started") < pos(&e, "HTTP image requested"));
    assert!(pos(&e, "HTTP image requested") < pos(&e, "deploy step deploy.write_image done"));
    assert!(pos(&e, "write_image done") < pos(&e, "deploy.prepare_instance_boot"));
    assert!(pos(&e, "deploy.prepare_instance_boot") < pos(&e, "deploy.tear_down_agent"));
    assert!(pos(&e, "deploy.tear_down_agent") < pos(&e, "deploy.boot_instance"));
    // IPMI's "force boot from default hard-drive", as ipmi_sim names it.
    assert_eq!(
        bmc.events(),
        [
            "set boot pxe",
            "set power 1",
            "set boot default",
            "set power 1"
        ],
        "PXE and on for the agent; disk and on for the instance (the agent powered off)"
    );
}

#[test]
fn direct_deploy_of_a_raw_whole_disk_image() {
    deploy_and_boot("raw");
}

#[test]
fn direct_deploy_of_a_qcow2_whole_disk_image() {
    deploy_and_boot("qcow2");
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
