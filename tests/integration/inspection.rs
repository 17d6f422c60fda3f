//! In-band inspection, discovery and automated cleaning with the real
//! ironic-python-agent 13.0.0 ramdisk (images/build-ipa-ramdisk.sh) in QEMU
//! VMs: the VM network-boots the agent through rackboot's DHCP and boot
//! HTTP; the agent posts what it found to `/v1/continue_inspection` (the
//! node's properties, ports and inventory come from it), or heartbeats and
//! runs the clean steps the conductor sends to its command API.

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

/// QEMU for the agent: 2 vCPUs on one TCG thread, 2 GiB (the agent's initramfs unpacks to
/// about 570 MB), NIC 1 (e1000 + iPXE ROM) boots, NIC 2 (virtio) does not,
/// two sparse virtio disks of known sizes.
fn agent_vm_cmd(tap1: &str, mac1: &str, tap2: &str, mac2: &str, dir: &std::path::Path) -> String {
    let mut a = agent_qemu_args(tap1, mac1, dir);
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
    qemu_cmd(a)
}

fn serial(dir: &std::path::Path) -> String {
    String::from_utf8_lossy(&std::fs::read(dir.join("serial")).unwrap_or_default()).into_owned()
}

/// The lab appliance with the agent ramdisk's directory allowed and the
/// power sync off (`extra` goes on in its `[conductor]` section).
fn agent_lab(seg: &Segment, extra: &str) -> Server {
    lab_appliance(
        seg,
        &repo().join("images/out/ipa"),
        &format!("sync_power_state_interval = \"0s\"\n{extra}"),
    )
}

/// An `ipmi` node for a VM behind `bmc`, booting the agent ramdisk.
fn agent_node(s: &Server, name: &str, mac: &str, bmc: &crate::bmc::Bmc) {
    let (kernel, ramdisk) = ipa_images();
    s.node_with_port(
        json!({"name": name, "driver": "ipmi", "boot_interface": "ipxe",
               "driver_info": {"ipmi_address": "127.0.0.1", "ipmi_port": bmc.port,
                               "ipmi_username": "admin", "ipmi_password": "password",
                               "deploy_kernel": kernel, "deploy_ramdisk": ramdisk,
                               "kernel_append_params": "console=ttyS0"}}),
        mac,
    );
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
        let failed = n["provision_state"]
            .as_str()
            .is_some_and(|s| s.ends_with("failed"));
        assert!(
            !failed,
            "{name} is {} (last_error {}); serial tail:\n{}\nlog tail:\n{}",
            n["provision_state"],
            n["last_error"],
            tail(&serial(dir), 40),
            tail(&s.log(), 40),
        );
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

/// The issue's end-to-end: a VM behind its ipmi_sim BMC is inspected by
/// the real agent; its properties, ports, inventory and timeline follow.
#[test]
fn ipmi_vm_is_inspected_by_the_real_agent() {
    let _turn = agent_vm_turn();
    let mut seg = Segment::new();
    let s = agent_lab(&seg, "[inspector]\nadd_ports = \"all\"\n");
    let (mac1, mac2) = (seg.mac(1), seg.mac(2));
    let (tap1, tap2) = (seg.tap(), seg.tap());
    let vmdir = tempfile::tempdir().unwrap();
    let bmc = crate::bmc::Bmc::start_vm(&agent_vm_cmd(&tap1, &mac1, &tap2, &mac2, vmdir.path()));
    agent_node(&s, "insp1", &mac1, &bmc);
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

/// A VM started by the test (no BMC: discovery knows nothing of it),
/// killed on drop.
struct BareVm {
    child: std::process::Child,
    dir: tempfile::TempDir,
}

impl BareVm {
    fn start(tap1: &str, mac1: &str, tap2: &str, mac2: &str) -> BareVm {
        let dir = tempfile::tempdir().unwrap();
        let cmd = agent_vm_cmd(tap1, mac1, tap2, mac2, dir.path());
        let child = std::process::Command::new("sh")
            .args(["-c", &format!("exec {cmd}")])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start qemu-system-x86_64");
        BareVm { child, dir }
    }
}

impl Drop for BareVm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The nodes the appliance has, with their ports' MACs.
fn nodes_and_macs(s: &Server) -> Vec<(String, Vec<String>)> {
    let (st, nodes) = s.json("GET", "/v1/nodes", None);
    assert_eq!(st, 200, "{nodes}");
    nodes["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let uuid = n["uuid"].as_str().unwrap().to_string();
            let (_, ports) = s.json("GET", &format!("/v1/ports?node={uuid}"), None);
            let mut macs: Vec<String> = ports["ports"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["address"].as_str().unwrap().to_string())
                .collect();
            macs.sort();
            (uuid, macs)
        })
        .collect()
}

/// Posts inspection data to the boot listener as the agent does (no
/// version header); (status, body).
fn post_data(ip: &str, body: &Value) -> (u16, Value) {
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "30",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            "@-",
            &format!("http://{ip}:8080/v1/continue_inspection"),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .unwrap()
                .write_all(body.to_string().as_bytes())?;
            c.wait_with_output()
        })
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (
        code.trim().parse().unwrap_or(0),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

/// Discovery: a VM nobody enrolled network-boots, the agent reports it,
/// and it ends up a node in enroll with its MACs and inventory; a second
/// boot makes no second node, nor do two posts of one machine racing.
#[test]
fn an_unknown_vm_is_discovered_once() {
    let _turn = agent_vm_turn();
    let (kernel, ramdisk) = ipa_images();
    let mut seg = Segment::new();
    let ip = seg.server_ip();
    let s = agent_lab(
        &seg,
        &format!(
            "[inspector]\nadd_ports = \"all\"\n\
             [discovery]\nenabled = true\ndriver = \"ipmi\"\ndeploy_kernel = \"{kernel}\"\ndeploy_ramdisk = \"{ramdisk}\"\nkernel_append_params = \"console=ttyS0\"\n"
        ),
    );
    let (mac1, mac2) = (seg.mac(1), seg.mac(2));
    let (tap1, tap2) = (seg.tap(), seg.tap());
    let started = Instant::now();
    let vm = BareVm::start(&tap1, &mac1, &tap2, &mac2);
    let deadline = Instant::now() + Duration::from_secs(420);
    let uuid = loop {
        let (_, p) = s.json("GET", &format!("/v1/ports/detail?address={mac1}"), None);
        if let Some(u) = p["ports"][0]["node_uuid"].as_str() {
            break u.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "the VM was never enrolled; serial tail:\n{}\nlog tail:\n{}",
            tail(&serial(vm.dir.path()), 40),
            tail(&s.log(), 40)
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    eprintln!(
        "discovery wall time: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let n = s.node(&uuid);
    assert_eq!(n["provision_state"], "enroll", "{n}");
    assert_eq!(n["driver"], "ipmi", "{n}");
    assert_eq!(n["properties"]["cpus"], 2, "{n}");
    assert_eq!(n["properties"]["memory_mb"], 2048, "{n}");
    assert_eq!(n["properties"]["local_gb"], DISK_GIB[0] - 1, "{n}");
    let mut want = vec![mac1.clone(), mac2.clone()];
    want.sort();
    assert_eq!(nodes_and_macs(&s), vec![(uuid.clone(), want.clone())]);
    let (st, inv) = s.json("GET", &format!("/v1/nodes/{uuid}/inventory"), None);
    assert_eq!(st, 200, "{inv}");
    assert_eq!(inv["plugin_data"]["auto_discovered"], true, "{inv}");
    assert_eq!(
        inv["inventory"]["interfaces"].as_array().map(Vec::len),
        Some(2)
    );
    let e = s.events(&uuid);
    assert!(
        pos(&e, "discovered: inspection data from") < pos(&e, "local_gb"),
        "{e:#?}"
    );

    // The same machine boots again: its MACs are known now (a node in
    // enroll boots nothing), so nothing new is made.
    drop(vm);
    let vm = BareVm::start(&tap1, &mac1, &tap2, &mac2);
    wait_until(
        "the second boot's DHCP on the discovered node's timeline",
        120,
        || {
            s.events(&uuid).iter().any(|e| {
                e.starts_with(&format!("DHCP DISCOVER from {mac1}")) && e.contains("no boot file")
            })
        },
    );
    drop(vm);
    assert_eq!(nodes_and_macs(&s), vec![(uuid.clone(), want.clone())]);

    // Two boots of one new machine racing: one node. Its data is the VM's,
    // with other MACs and a BMC address.
    let mut data = inv.clone();
    let inventory = data["inventory"].as_object_mut().unwrap();
    inventory["bmc_address"] = json!("192.0.2.77");
    for (i, nic) in inventory["interfaces"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .enumerate()
    {
        nic["mac_address"] = json!(format!("52:54:00:99:00:0{i}"));
    }
    let body =
        json!({"inventory": data["inventory"], "root_disk": data["plugin_data"]["root_disk"]});
    let posts: Vec<_> = (0..2)
        .map(|_| {
            let (ip, body) = (ip.clone(), body.clone());
            std::thread::spawn(move || post_data(&ip, &body))
        })
        .collect();
    let answers: Vec<(u16, Value)> = posts.into_iter().map(|t| t.join().unwrap()).collect();
    // One enrolls the machine. The other either ran into it inside the
    // discovery turn (202 with the same node) or came after it was done and
    // found its MACs enrolled (Ironic's 404 for data nobody waits for).
    let taken: Vec<&Value> = answers
        .iter()
        .filter(|(st, _)| *st == 202)
        .map(|(_, v)| &v["uuid"])
        .collect();
    assert!(!taken.is_empty(), "{answers:?}");
    assert!(taken.iter().all(|u| *u == taken[0]), "{answers:?}");
    assert!(
        answers.iter().all(|(st, _)| *st == 202 || *st == 404),
        "{answers:?}"
    );
    let all = nodes_and_macs(&s);
    assert_eq!(all.len(), 2, "{all:?}");
    let new = taken[0].as_str().unwrap();
    let n = s.node(new);
    assert_eq!(n["driver_info"]["ipmi_address"], "192.0.2.77", "{n}");
    assert_eq!(n["provision_state"], "enroll");
    // Posting the same machine again now finds it enrolled: refused, as
    // Ironic refuses data for a node that is not waiting for it.
    assert_eq!(post_data(&ip, &body).0, 404);
    assert_eq!(nodes_and_macs(&s).len(), 2);
}

/// Discovery is off by default: an unknown machine's data is refused with
/// Ironic's generic 404 and nothing is enrolled; bad data gets Ironic's
/// schema errors.
#[test]
fn inspection_data_without_discovery_and_bad_data() {
    let mut seg = Segment::new();
    let ip = seg.server_ip();
    let _ = seg.tap();
    let s = agent_lab(&seg, "");
    let inv = json!({"inventory": {"interfaces": [{"name": "eth0", "mac_address": "52:54:00:aa:bb:cc"}],
                                   "cpu": {"count": 1, "architecture": "x86_64"}}});
    let (st, v) = post_data(&ip, &inv);
    assert_eq!(
        (
            st,
            v["error_message"].is_string() || v["faultstring"].is_string()
        ),
        (404, true),
        "{v}"
    );
    assert!(
        v.to_string().contains("Resource could not be found."),
        "{v}"
    );
    assert!(nodes_and_macs(&s).is_empty());
    for (body, want) in [
        (json!({}), "'inventory' is a required property"),
        (
            json!({"inventory": {}}),
            "'interfaces' is a required property",
        ),
        (
            json!({"inventory": {"interfaces": []}}),
            "should be non-empty",
        ),
        (
            json!({"inventory": {"interfaces": [{"name": "eth0"}]}}),
            "mac_address",
        ),
        (
            json!({"inventory": {"interfaces": [{"mac_address": "nope"}]}}),
            "No lookup information provided",
        ),
        (json!([1]), "Schema error for data"),
    ] {
        let (st, v) = post_data(&ip, &body);
        assert_eq!(st, 400, "{body}: {v}");
        assert!(v.to_string().contains(want), "{body}: {v}");
    }
}

/// Automated cleaning through the real agent: the conductor asks it for
/// its clean steps, runs the automated ones (by default the metadata wipe
/// alone: the full erase is off), and the disk's file system signature is
/// gone afterwards.
#[test]
fn ipmi_vm_is_cleaned_by_the_real_agent() {
    let _turn = agent_vm_turn();
    let mut seg = Segment::new();
    let s = agent_lab(&seg, "automated_clean = true\n");
    let (mac1, mac2) = (seg.mac(1), seg.mac(2));
    let (tap1, tap2) = (seg.tap(), seg.tap());
    let vmdir = tempfile::tempdir().unwrap();
    let bmc = crate::bmc::Bmc::start_vm(&agent_vm_cmd(&tap1, &mac1, &tap2, &mac2, vmdir.path()));
    // A file system on the first disk, for the agent to wipe.
    let disk = vmdir.path().join("disk0.img");
    let mkfs = std::process::Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", "rackboot-old"])
        .arg(&disk)
        .status()
        .expect("mkfs.ext4 (e2fsprogs)");
    assert!(mkfs.success());
    let blkid = |p: &std::path::Path| {
        let out = std::process::Command::new("blkid")
            .arg(p)
            .output()
            .expect("blkid");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(blkid(&disk).contains("ext4"), "{}", blkid(&disk));
    agent_node(&s, "clean1", &mac1, &bmc);
    s.provision("clean1", "manage", "manageable");
    let started = Instant::now();
    let (st, v) = s.json(
        "PUT",
        "/v1/nodes/clean1/states/provision",
        Some(json!({"target": "provide"})),
    );
    assert_eq!(st, 202, "{v}");
    let n = wait_for(&s, "clean1", "available", 420, vmdir.path());
    eprintln!(
        "cleaning wall time: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(n["last_error"], Value::Null, "{n}");
    assert_eq!(n["power_state"], "power off", "{n}");
    assert_eq!(bmc.state("vm.pid"), "", "the VM was stopped");
    assert!(
        !blkid(&disk).contains("ext4"),
        "the agent wiped the disk's metadata: {}",
        blkid(&disk)
    );
    let e = s.events("clean1");
    eprintln!("timeline:\n{}", e.join("\n"));
    let hb = pos(&e, "heartbeat from");
    assert!(e[hb].contains("(agent 13.0.0)"), "{}", e[hb]);
    assert!(pos(&e, "agent token issued") < hb);
    let steps = pos(&e, "agent command clean.get_clean_steps: 1 automated step(s): deploy.erase_devices_metadata (99)");
    assert!(hb < steps);
    assert!(steps < pos(&e, "agent command clean.execute_clean_step deploy.erase_devices_metadata (priority 99) started"));
    assert!(
        pos(&e, "started")
            < pos(
                &e,
                "agent command clean.execute_clean_step deploy.erase_devices_metadata: done"
            )
    );
    assert!(pos(&e, ": done") < pos(&e, "cleaning done: 1 step(s) ran on the agent; powered off"));
}

/// Manual cleaning through the real agent: `baremetal node clean` with
/// `--clean-steps`, then with a runbook the node's traits allow; each goes
/// manageable → cleaning → clean wait → manageable and wipes the disk's
/// metadata.
#[test]
fn manual_cleaning_and_a_runbook_run_the_agents_steps() {
    let _turn = agent_vm_turn();
    let mut seg = Segment::new();
    let s = agent_lab(&seg, "");
    let (mac1, mac2) = (seg.mac(1), seg.mac(2));
    let (tap1, tap2) = (seg.tap(), seg.tap());
    let vmdir = tempfile::tempdir().unwrap();
    let bmc = crate::bmc::Bmc::start_vm(&agent_vm_cmd(&tap1, &mac1, &tap2, &mac2, vmdir.path()));
    let disk = vmdir.path().join("disk0.img");
    let mkfs = || {
        let st = std::process::Command::new("mkfs.ext4")
            .args(["-q", "-F", "-L", "rackboot-old"])
            .arg(&disk)
            .status()
            .expect("mkfs.ext4 (e2fsprogs)");
        assert!(st.success());
    };
    let blkid = || {
        let out = std::process::Command::new("blkid")
            .arg(&disk)
            .output()
            .expect("blkid");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    agent_node(&s, "m1", &mac1, &bmc);
    s.provision("m1", "manage", "manageable");

    // 1. The steps given on the command line.
    mkfs();
    assert!(blkid().contains("ext4"));
    ok(
        baremetal(
            &s,
            &[
                "node",
                "clean",
                "m1",
                "--clean-steps",
                r#"[{"interface": "deploy", "step": "erase_devices_metadata"}]"#,
            ],
        ),
        "baremetal node clean --clean-steps",
    );
    let n = s.node("m1");
    assert_eq!(n["target_provision_state"], "manageable", "{n}");
    wait_until("m1 to wait for its agent", 60, || {
        s.node("m1")["provision_state"] == "clean wait"
    });
    assert_eq!(s.node("m1")["target_provision_state"], "manageable");
    let n = wait_for(&s, "m1", "manageable", 420, vmdir.path());
    assert_eq!(n["last_error"], Value::Null, "{n}");
    assert_eq!(n["power_state"], "power off", "{n}");
    assert!(!blkid().contains("ext4"), "not wiped: {}", blkid());
    let e = s.events("m1");
    let steps = pos(
        &e,
        "agent command clean.get_clean_steps: 1 manual step(s): deploy.erase_devices_metadata (99)",
    );
    assert!(
        steps
            < pos(
                &e,
                "clean.execute_clean_step deploy.erase_devices_metadata: done"
            )
    );
    assert!(pos(&e, ": done") < pos(&e, "manual cleaning done: 1 step(s) ran on the agent"));

    // 2. A runbook: refused until the node has one of its traits.
    mkfs();
    ok(
        baremetal(
            &s,
            &[
                "runbook",
                "create",
                "--name",
                "CUSTOM_WIPE",
                "--steps",
                r#"[{"interface": "deploy", "step": "erase_devices_metadata", "args": {}, "order": 1}]"#,
            ],
        ),
        "baremetal runbook create",
    );
    ok(
        baremetal(
            &s,
            &["runbook", "trait", "add", "CUSTOM_WIPE", "CUSTOM_WIPE"],
        ),
        "baremetal runbook trait add",
    );
    let out = baremetal(&s, &["node", "clean", "m1", "--runbook", "CUSTOM_WIPE"]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("has not been approved for use on this node"),
        "{text}"
    );
    ok(
        baremetal(&s, &["node", "add", "trait", "m1", "CUSTOM_WIPE"]),
        "baremetal node add trait",
    );
    ok(
        baremetal(&s, &["node", "clean", "m1", "--runbook", "CUSTOM_WIPE"]),
        "baremetal node clean --runbook",
    );
    let n = wait_for(&s, "m1", "manageable", 420, vmdir.path());
    assert_eq!(n["last_error"], Value::Null, "{n}");
    assert!(
        !blkid().contains("ext4"),
        "not wiped by the runbook: {}",
        blkid()
    );
    let e = s.events("m1");
    let second = e
        .iter()
        .rposition(|x| x.contains("1 manual step(s): deploy.erase_devices_metadata"))
        .unwrap();
    assert!(second > steps, "{e:#?}");
}
