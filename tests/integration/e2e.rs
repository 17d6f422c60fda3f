//! The whole chain with firmware nobody here wrote: a ramdisk deploy of a
//! QEMU VM (SeaBIOS + QEMU's iPXE ROM) through rackboot's DHCP, HTTP and
//! image cache, ending with the booted ramdisk's lookup and heartbeat.
//! Power is fake here (the test starts the VM); IPMI-driven power is the
//! lab's job.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::*;
use crate::netns::*;

fn test_images() -> std::path::PathBuf {
    let out = repo().join("images/out");
    assert!(
        out.join("vmlinuz").exists() && out.join("initrd.cpio.gz").exists(),
        "the test kernel and ramdisk are missing: run images/build-test-ramdisk.sh (scripts/test.sh does)"
    );
    out
}

#[test]
fn ramdisk_deploy_through_dhcp_http_and_the_agent_call_back() {
    let images = test_images();
    let mut seg = Segment::new();
    let ip = seg.server_ip();
    let s = Server::start_with(&format!(
        "[http]\nlisten = \"{ip}:8080\"\n\
         [tftp]\nlisten = \"{ip}:69\"\nroot = \"{assets}\"\n\
         [dhcp]\nmode = \"authoritative\"\ninterface = \"{br}\"\nrange = [\"{a}\", \"{b}\"]\nrouter = \"{ip}\"\n\
         [conductor]\nfile_url_allowed_paths = [\"{images}\"]\ndeploy_callback_timeout = \"5m\"\n",
        assets = repo().join("boot-assets").display(),
        br = seg.bridge,
        a = seg.ip(100),
        b = seg.ip(199),
        images = images.display(),
    ));
    let mac = seg.mac(1);
    let file = |n: &str| format!("file://{}", images.join(n).display());
    let (st, v) = s.json(
        "POST",
        "/v1/nodes",
        Some(json!({"name": "vm1", "driver": "fake-hardware", "boot_interface": "ipxe", "deploy_interface": "ramdisk",
                    "instance_info": {"kernel": file("vmlinuz"), "ramdisk": file("initrd.cpio.gz"),
                                      "ramdisk_kernel_arguments": "console=ttyS0"}})),
    );
    assert_eq!(st, 201, "{v}");
    let uuid = v["uuid"].as_str().unwrap().to_string();
    let (st, v) = s.json(
        "POST",
        "/v1/ports",
        Some(json!({"address": mac, "node_uuid": uuid})),
    );
    assert_eq!(st, 201, "{v}");
    for (target, end) in [
        ("manage", "manageable"),
        ("provide", "available"),
        ("active", "wait call-back"),
    ] {
        let (st, v) = s.json(
            "PUT",
            "/v1/nodes/vm1/states/provision",
            Some(json!({"target": target})),
        );
        assert_eq!(st, 202, "{v}");
        s.wait_state("vm1", end);
    }
    // The fake power interface "powered it on": start the VM.
    let tap = seg.tap();
    let vm = Vm::start(&tap, &mac, Firmware::BiosIpxe);
    let deadline = Instant::now() + Duration::from_secs(240);
    while s.node("vm1")["provision_state"] != "active" {
        assert!(
            Instant::now() < deadline,
            "the node never became active; serial console:\n{}\nlog:\n{}",
            vm.serial(),
            s.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let serial = vm.serial();
    assert!(serial.contains("RACKBOOT-RAMDISK-UP"), "{serial}");
    assert!(
        serial.contains(&format!("RACKBOOT-LOOKUP uuid={uuid}")),
        "{serial}"
    );
    let events: Vec<String> = s
        .history("vm1")
        .iter()
        .filter_map(|h| h["event"].as_str().map(str::to_string))
        .collect();
    let pos = |needle: &str| {
        events
            .iter()
            .position(|e| e.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in {events:#?}"))
    };
    // In order: staged, waiting, DHCP (iPXE gets the script URL), heartbeat, active.
    assert!(pos("instance_info/kernel") < pos("waiting up to"));
    assert!(pos("waiting up to") < pos("boot http://"));
    assert!(pos("boot http://") < pos("the ramdisk is up"));
    assert!(pos("the ramdisk is up") < pos("wait call-back -> deploying -> active"));
    assert!(
        events[pos("DHCP DISCOVER")].contains("(iPXE, x86 BIOS)"),
        "{events:#?}"
    );
}
