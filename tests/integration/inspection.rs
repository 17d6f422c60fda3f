//! In-band inspection and discovery with the real ironic-python-agent
//! 13.0.0 ramdisk (images/build-ipa-ramdisk.sh) in QEMU VMs: the VM
//! network-boots the agent through rackboot's DHCP and boot HTTP, the agent
//! posts what it found to `/v1/continue_inspection`, and the node's
//! properties, ports and inventory come from it.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::*;
use crate::netns::*;

/// The agent ramdisk (built by scripts/test.sh).
fn ipa_images() -> (String, String) {
    let out = repo().join("images/out/ipa");
    let (k, r) = (out.join("ipa.kernel"), out.join("ipa.initramfs"));
    assert!(
        k.exists() && r.exists(),
        "the ironic-python-agent ramdisk is missing: run images/build-ipa-ramdisk.sh (scripts/test.sh does)"
    );
    (
        format!("file://{}", k.display()),
        format!("file://{}", r.display()),
    )
}

/// Sizes of the VM's two virtio disks.
const DISK_GIB: [u64; 2] = [5, 9];

/// QEMU for the agent: 2 vCPUs, 2 GiB (the agent's initramfs unpacks to
/// about 570 MB), NIC 1 (e1000 + iPXE ROM) boots, NIC 2 (virtio) does not,
/// two sparse virtio disks of known sizes.
fn agent_vm_cmd(tap1: &str, mac1: &str, tap2: &str, mac2: &str, dir: &std::path::Path) -> String {
    let mut a = qemu_args(tap1, mac1, Firmware::BiosIpxe, dir);
    let m = a.iter().position(|x| x == "-m").expect("qemu_args sets -m");
    a[m + 1] = "2048".into();
    a.extend(["-smp".into(), "2".into()]);
    a.extend([
        "-netdev".into(),
        format!("tap,id=n1,ifname={tap2},script=no,downscript=no"),
        "-device".into(),
        format!("virtio-net-pci,netdev=n1,mac={mac2},romfile="),
    ]);
    for (i, gib) in DISK_GIB.iter().enumerate() {
        let path = dir.join(format!("disk{i}.img"));
        let f = std::fs::File::create(&path).unwrap();
        f.set_len(gib << 30).unwrap();
        a.extend([
            "-drive".into(),
            format!("file={},if=virtio,format=raw", path.display()),
        ]);
    }
    std::iter::once("qemu-system-x86_64".to_string())
        .chain(a)
        .collect::<Vec<_>>()
        .join(" ")
}

fn serial(dir: &std::path::Path) -> String {
    String::from_utf8_lossy(&std::fs::read(dir.join("serial")).unwrap_or_default()).into_owned()
}

/// The lab appliance with the agent ramdisk's directory allowed.
fn agent_lab(seg: &Segment, extra: &str) -> Server {
    let ip = seg.server_ip();
    Server::start_with(&format!(
        "[http]\nlisten = \"{ip}:8080\"\n\
         [tftp]\nlisten = \"{ip}:69\"\nroot = \"{assets}\"\n\
         [dhcp]\nmode = \"authoritative\"\ninterface = \"{br}\"\nrange = [\"{a}\", \"{b}\"]\nrouter = \"{ip}\"\n\
         [conductor]\nfile_url_allowed_paths = [\"{ipa}\"]\nsync_power_state_interval = \"0s\"\n{extra}",
        assets = repo().join("boot-assets").display(),
        br = seg.bridge,
        a = seg.ip(100),
        b = seg.ip(199),
        ipa = repo().join("images/out/ipa").display(),
    ))
}

/// Waits (bounded) for a node to reach `state`, showing the VM's console
/// and the appliance's log if it does not.
fn wait_for(s: &Server, name: &str, state: &str, secs: u64, dir: &std::path::Path) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let n = s.node(name);
        if n["provision_state"] == state {
            return n;
        }
        assert!(
            Instant::now() < deadline,
            "{name} never reached {state} (it is {}, last_error {}); serial tail:\n{}\nlog tail:\n{}",
            n["provision_state"],
            n["last_error"],
            tail(&serial(dir), 40),
            tail(&s.log(), 40),
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn pos(events: &[String], needle: &str) -> usize {
    events
        .iter()
        .position(|e| e.contains(needle))
        .unwrap_or_else(|| panic!("no {needle:?} in {events:#?}"))
}

/// The end-to-end: a VM behind its ipmi_sim BMC is inspected by
/// the real agent; its properties, ports, inventory and timeline follow.
#[test]
fn ipmi_vm_is_inspected_by_the_real_agent() {
    let (kernel, ramdisk) = ipa_images();
    let mut seg = Segment::new();
    let s = agent_lab(&seg, "[inspector]\nadd_ports = \"all\"\n");
    let (mac1, mac2) = (seg.mac(1), seg.mac(2));
    let (tap1, tap2) = (seg.tap(), seg.tap());
    let vmdir = tempfile::tempdir().unwrap();
    let bmc = crate::bmc::Bmc::start_vm(&agent_vm_cmd(&tap1, &mac1, &tap2, &mac2, vmdir.path()));
    s.node_with_port(
        json!({"name": "insp1", "driver": "ipmi", "boot_interface": "ipxe",
               "driver_info": {"ipmi_address": "127.0.0.1", "ipmi_port": bmc.port,
                               "ipmi_username": "admin", "ipmi_password": "password",
                               "deploy_kernel": kernel, "deploy_ramdisk": ramdisk,
                               "kernel_append_params": "console=ttyS0"}}),
        &mac1,
    );
    s.provision("insp1", "manage", "manageable");
    // The real CLI starts it, as an operator would.
    ok(
        baremetal(&s, &["node", "inspect", "insp1"]),
        "baremetal node inspect",
    );
    let started = Instant::now();
    let n = wait_for(&s, "insp1", "manageable", 420, vmdir.path());
    let wall = started.elapsed();
    eprintln!("inspection wall time: {:.1} s", wall.as_secs_f64());
    assert_eq!(n["last_error"], Value::Null, "{n}");
    let p = &n["properties"];
    assert_eq!(p["cpus"], 2, "{p}");
    assert_eq!(p["memory_mb"], 2048, "{p}");
    assert_eq!(p["cpu_arch"], "x86_64", "{p}");
    // The smallest disk of 4 GiB or more is the root disk; Ironic keeps
    // 1 GiB of it for partitioning.
    assert_eq!(p["local_gb"], DISK_GIB[0] - 1, "{p}");
    assert!(
        p["capabilities"]
            .as_str()
            .unwrap_or("")
            .contains("boot_mode:bios"),
        "{p}"
    );
    assert!(
        n["inspection_started_at"].is_string() && n["inspection_finished_at"].is_string(),
        "{n}"
    );
    // Powered off over IPMI: the VM is gone.
    assert_eq!(n["power_state"], "power off", "{n}");
    assert_eq!(bmc.state("vm.pid"), "", "the VM was stopped");
    // Both NICs are ports (add_ports = all); the PXE NIC stays the boot one.
    let (st, ports) = s.json("GET", "/v1/ports/detail?node=insp1", None);
    assert_eq!(st, 200);
    let ports = ports["ports"].as_array().unwrap().clone();
    let pxe = |mac: &str| {
        ports
            .iter()
            .find(|p| p["address"] == mac)
            .unwrap_or_else(|| panic!("no port {mac} in {ports:#?}"))["pxe_enabled"]
            .clone()
    };
    assert_eq!(ports.len(), 2, "{ports:#?}");
    assert_eq!(pxe(&mac1), true);
    assert_eq!(pxe(&mac2), false);
    // The inventory is served, as the agent posted it (below 1.81: 404).
    let (st, inv) = s.json("GET", "/v1/nodes/insp1/inventory", None);
    assert_eq!(st, 200, "{inv}");
    let macs: Vec<&str> = inv["inventory"]["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["mac_address"].as_str())
        .collect();
    assert!(
        macs.contains(&mac1.as_str()) && macs.contains(&mac2.as_str()),
        "{macs:?}"
    );
    assert_eq!(
        inv["inventory"]["disks"].as_array().map(Vec::len),
        Some(2),
        "{inv}"
    );
    assert!(
        inv["plugin_data"]["root_disk"]["size"] == (DISK_GIB[0] << 30),
        "{inv}"
    );
    assert!(
        inv["plugin_data"].get("logs").is_none(),
        "the agent's logs are dropped"
    );
    let saved = ok(
        baremetal(&s, &["node", "inventory", "save", "insp1"]),
        "baremetal node inventory save",
    );
    assert!(saved.contains(&mac2), "{saved}");
    // The timeline tells the story in order.
    let e = s.events("insp1");
    eprintln!("timeline:\n{}", e.join("\n"));
    assert!(pos(&e, "inspection: booting the agent ramdisk") < pos(&e, "DHCP DISCOVER"));
    assert!(pos(&e, "DHCP DISCOVER") < pos(&e, "HTTP boot script for"));
    assert!(pos(&e, "HTTP boot script for") < pos(&e, "HTTP deploy_kernel requested"));
    assert!(pos(&e, "HTTP deploy_ramdisk requested") < pos(&e, "lookup: inspection data"));
    assert!(pos(&e, "lookup: inspection data") < pos(&e, "inspection data received"));
    assert!(pos(&e, "inspection data received") < pos(&e, "inspection done: powered off"));
    assert!(pos(&e, "inspection done: powered off") < pos(&e, "inspecting -> manageable"));
    assert!(serial(vmdir.path()).contains("RACKBOOT-IPA-STARTING"));
}
