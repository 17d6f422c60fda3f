//! Virtual media: the ISO the `redfish-virtual-media` boot interface builds
//! boots under both firmware QEMU has — SeaBIOS (El Torito BIOS entry,
//! ISOLINUX) and OVMF (El Torito UEFI entry, Debian's GRUB for CDs) — with
//! no network at all, and the kernel gets the command line it was given.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn boot_iso(iso: &Path, uefi: bool, dir: &Path) -> String {
    let serial = dir.join(if uefi { "uefi.serial" } else { "bios.serial" });
    let mut args: Vec<String> = [
        "-accel",
        "tcg",
        "-m",
        "512",
        "-nographic",
        "-nodefaults",
        "-nic",
        "none",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(["-serial".into(), format!("file:{}", serial.display())]);
    args.extend(["-cdrom".into(), iso.display().to_string()]);
    if uefi {
        let vars = dir.join("vars.fd");
        std::fs::copy("/usr/share/OVMF/OVMF_VARS_4M.fd", &vars)
            .expect("OVMF is needed (scripts/install-deps.sh installs ovmf)");
        args.extend([
            "-drive".into(),
            "if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd".into(),
            "-drive".into(),
            format!("if=pflash,format=raw,file={}", vars.display()),
        ]);
    } else {
        args.extend(["-boot".into(), "d".into()]);
    }
    let mut vm = Command::new("qemu-system-x86_64")
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("qemu-system-x86_64 (scripts/install-deps.sh installs qemu-system-x86)");
    let deadline = Instant::now() + Duration::from_secs(180);
    let out = loop {
        let text =
            String::from_utf8_lossy(&std::fs::read(&serial).unwrap_or_default()).into_owned();
        if text.contains("RACKBOOT-RAMDISK-UP") {
            break text;
        }
        if Instant::now() > deadline {
            let _ = vm.kill();
            let _ = vm.wait();
            panic!(
                "the ISO did not boot under {} within 180 s; console:\n{text}",
                if uefi { "OVMF" } else { "SeaBIOS" }
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let _ = vm.kill();
    let _ = vm.wait();
    out
}

#[test]
fn the_deploy_iso_boots_under_bios_and_uefi() {
    let images = repo().join("images/out");
    let dir = tempfile::tempdir().unwrap();
    let iso = dir.path().join("deploy.iso");
    let out = Command::new(env!("CARGO_BIN_EXE_rackboot"))
        .args(["iso", "--kernel"])
        .arg(images.join("vmlinuz"))
        .arg("--initrd")
        .arg(images.join("initrd.cpio.gz"))
        .args([
            "--append",
            "console=ttyS0 rackboot.marker=vmedia-iso",
            "--out",
        ])
        .arg(&iso)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "rackboot iso: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for uefi in [false, true] {
        let console = boot_iso(&iso, uefi, dir.path());
        let line = console
            .lines()
            .find(|l| l.contains("Command line:"))
            .unwrap_or_else(|| panic!("no kernel command line on the console:\n{console}"));
        assert!(
            line.contains("console=ttyS0 rackboot.marker=vmedia-iso"),
            "uefi={uefi}: {line}"
        );
    }
}

/// The libvirt "BMC" of tests/libvirt-lab.sh: libvirtd, virtlogd and
/// sushy-tools' libvirt driver in front of one TCG domain on `tap`. Torn
/// down (domain, pool, daemons) on drop.
struct LibvirtLab {
    dir: tempfile::TempDir,
    child: std::process::Child,
    port: u16,
    system: String,
}

impl LibvirtLab {
    fn start(tap: &str, mac: &str) -> LibvirtLab {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("lab.log")).unwrap();
        let mut child = Command::new("bash")
            .arg(repo().join("tests/libvirt-lab.sh"))
            .arg(dir.path())
            .args([tap, mac, &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("bash");
        let ready = dir.path().join("ready");
        let deadline = Instant::now() + Duration::from_secs(120);
        while !ready.exists() {
            if let Ok(Some(st)) = child.try_wait() {
                panic!(
                    "tests/libvirt-lab.sh exited ({st}) before it was ready:\n{}",
                    std::fs::read_to_string(dir.path().join("lab.log")).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "tests/libvirt-lab.sh was not ready within 120 s"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let system = std::fs::read_to_string(&ready).unwrap().trim().to_string();
        LibvirtLab {
            dir,
            child,
            port,
            system,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn console(&self) -> String {
        String::from_utf8_lossy(
            &std::fs::read(self.dir.path().join("console.log")).unwrap_or_default(),
        )
        .into_owned()
    }

    fn get(&self, path: &str) -> serde_json::Value {
        let out = Command::new("curl")
            .args(["-sf", "--max-time", "20"])
            .arg(format!("{}{path}", self.url()))
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
    }

    /// The domain as libvirt has it now.
    fn domain_xml(&self) -> String {
        let uri = format!(
            "qemu:///system?socket={}",
            self.dir.path().join("sock/libvirt-sock").display()
        );
        let out = Command::new("virsh")
            .args(["-c", &uri, "dumpxml", "rbvm"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        out
    }

    fn emulator_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("emulator.log")).unwrap_or_default()
    }
}

impl Drop for LibvirtLab {
    fn drop(&mut self) {
        crate::netns::signal(&self.child, "TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// End to end, as the issue asks: a `redfish` node with
/// `redfish-virtual-media` and the `ramdisk` deploy, its BMC sushy-tools'
/// libvirt driver in front of a QEMU VM (TCG) under libvirtd. The BMC
/// inserts the ISO the appliance built; the VM boots it with no DHCP server
/// anywhere (the address comes from the node's network_data on the kernel
/// line) and calls back; the node is active. Undeploy ejects the media and
/// powers the VM off. Then the same VM is inspected through virtual media
/// by the real ironic-python-agent (its ramdisk takes the same static
/// address), deployed with the `direct` interface (the agent writes the
/// test disk image; the VM boots its disk) and cleaned on undeploy; the
/// media is ejected after each.
#[test]
fn virtual_media_deploys_a_libvirt_vm_with_no_dhcp() {
    use serde_json::json;
    crate::netns::require_root();
    let _turn = crate::netns::agent_vm_turn();
    let mut seg = crate::netns::Segment::new();
    let tap = seg.tap();
    let mac = seg.mac(1);
    let lab = LibvirtLab::start(&tap, &mac);
    let images = repo().join("images/out");
    let ip = seg.server_ip();
    // No [dhcp]: no DHCP server runs at all.
    let s = Server::start_with(&format!(
        "[http]\nlisten = \"{ip}:8080\"\n[conductor]\nfile_url_allowed_paths = [\"{}\"]\n",
        images.display()
    ));
    let file = |name: &str| format!("file://{}", images.join(name).display());
    let vm_ip = seg.ip(50);
    let (st, v) = s.json(
        "POST",
        "/v1/nodes",
        Some(json!({
            "driver": "redfish", "name": "lv1", "boot_interface": "redfish-virtual-media",
            "deploy_interface": "ramdisk",
            "driver_info": {"redfish_address": lab.url(), "redfish_system_id": lab.system,
                            "deploy_kernel": file("vmlinuz"), "deploy_ramdisk": file("initrd.cpio.gz")},
            "instance_info": {"kernel": file("vmlinuz"), "ramdisk": file("initrd.cpio.gz"),
                              "kernel_append_params": "console=ttyS0"},
            "network_data": {
                "links": [{"id": "port0", "type": "phy", "ethernet_mac_address": mac}],
                "networks": [{"id": "n0", "type": "ipv4", "link": "port0", "ip_address": vm_ip,
                              "netmask": "255.255.255.0",
                              "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": ip}]}],
                "services": []
            }
        })),
    );
    assert_eq!(st, 201, "{v}");
    let uuid = v["uuid"].as_str().unwrap().to_string();
    let (st, _) = s.json(
        "POST",
        "/v1/ports",
        Some(json!({"address": mac, "node_uuid": uuid})),
    );
    assert_eq!(st, 201);
    s.provision("lv1", "manage", "manageable");
    assert_eq!(s.node("lv1")["power_state"], "power off");
    s.provision("lv1", "provide", "available");
    s.provision("lv1", "active", "wait call-back");
    let deadline = Instant::now() + Duration::from_secs(240);
    while s.node("lv1")["provision_state"] != "active" {
        assert!(
            Instant::now() < deadline,
            "the VM did not call back within 240 s: {}\nconsole:\n{}\nemulator:\n{}",
            s.node("lv1"),
            lab.console(),
            lab.emulator_log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let console = lab.console();
    assert!(
        console.contains(&format!("RACKBOOT-STATIC ip={vm_ip}/24 gw={ip}")),
        "{console}"
    );
    assert!(console.contains("RACKBOOT-HEARTBEAT-SENT"), "{console}");
    let line = console
        .lines()
        .find(|l| l.contains("Command line:"))
        .unwrap_or_default();
    assert!(line.contains("boot_method=vmedia"), "{line}");
    // The BMC fetched the ISO from the boot HTTP server; the heartbeat came
    // from the VM's static address.
    let events = s.events("lv1");
    assert!(
        events
            .iter()
            .any(|e| e.contains(&format!("/vmedia/{uuid}-instance.iso requested"))),
        "{events:#?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e.contains(&format!("heartbeat from {vm_ip}"))),
        "{events:#?}"
    );
    // Undeploy: ejected, off.
    s.provision("lv1", "deleted", "available");
    let sys = lab.get(&lab.system);
    assert_eq!(sys["PowerState"], "Off", "{sys}");
    let cd = lab.get(&format!("{}/VirtualMedia/Cd", lab.system));
    assert_eq!(cd["Inserted"], false, "{cd}");

    // Inspection of the same VM through virtual media, by the real agent.
    let ipa = images.join("ipa");
    assert!(
        ipa.join("ipa.initramfs").exists(),
        "the agent ramdisk is missing: images/build-ipa-ramdisk.sh builds it (scripts/test.sh runs it)"
    );
    s.provision("lv1", "manage", "manageable");
    let (st, v) = s.json(
        "PATCH",
        "/v1/nodes/lv1",
        Some(json!([
            {"op": "replace", "path": "/driver_info/deploy_kernel", "value": format!("file://{}", ipa.join("ipa.kernel").display())},
            {"op": "replace", "path": "/driver_info/deploy_ramdisk", "value": format!("file://{}", ipa.join("ipa.initramfs").display())},
            {"op": "add", "path": "/driver_info/kernel_append_params", "value": "console=ttyS0"},
        ])),
    );
    assert_eq!(st, 200, "{v}");
    let (st, v) = s.json(
        "PATCH",
        "/v1/nodes/lv1",
        Some(json!([{"op": "replace", "path": "/instance_info", "value": {}}])),
    );
    assert_eq!(st, 200, "{v}");
    let before = lab.console().len();
    s.provision("lv1", "inspect", "inspect wait");
    let deadline = Instant::now() + Duration::from_secs(480);
    while s.node("lv1")["provision_state"] != "manageable" {
        let n = s.node("lv1");
        assert!(
            n["provision_state"] != "inspect failed",
            "inspection failed: {}",
            n["last_error"]
        );
        assert!(
            Instant::now() < deadline,
            "the agent did not post its inspection data within 480 s: {n}\nconsole:\n{}",
            &lab.console()[before..]
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    let console = lab.console()[before..].to_string();
    assert!(
        console.contains(&format!("RACKBOOT-STATIC ip={vm_ip}/24 gw={ip}")),
        "{console}"
    );
    let (st, inv) = s.json("GET", "/v1/nodes/lv1/inventory", None);
    assert_eq!(st, 200, "{inv}");
    let macs: Vec<&str> = inv["inventory"]["interfaces"]
        .as_array()
        .map(|a| a.iter().filter_map(|i| i["mac_address"].as_str()).collect())
        .unwrap_or_default();
    assert!(macs.contains(&mac.as_str()), "{macs:?}");
    let events = s.events("lv1");
    assert!(
        events
            .iter()
            .any(|e| e.contains(&format!("/vmedia/{uuid}-deploy.iso requested"))),
        "{events:#?}"
    );
    let cd = lab.get(&format!("{}/VirtualMedia/Cd", lab.system));
    assert_eq!(cd["Inserted"], false, "ejected after inspection: {cd}");
    assert_eq!(lab.get(&lab.system)["PowerState"], "Off");

    // The direct deploy through virtual media: the agent, booted from the
    // ISO with its static address, writes the test disk image; the deploy
    // ISO is ejected and the VM boots its disk.
    let image = images.join("disk/test-disk.raw");
    let sha = std::fs::read_to_string(images.join("disk/test-disk.raw.sha256"))
        .expect("images/build-test-disk.sh builds the test disk (scripts/test.sh runs it)");
    let (st, v) = s.json(
        "PATCH",
        "/v1/nodes/lv1",
        Some(json!([
            {"op": "replace", "path": "/deploy_interface", "value": "direct"},
            {"op": "replace", "path": "/instance_info", "value": {
                "image_source": format!("file://{}", image.display()),
                "image_checksum": sha.split_whitespace().next().unwrap_or(""),
                "image_disk_format": "raw"}},
        ])),
    );
    assert_eq!(st, 200, "{v}");
    s.provision("lv1", "provide", "available");
    let before = lab.console().len();
    let (st, v) = s.json(
        "PUT",
        "/v1/nodes/lv1/states/provision",
        Some(json!({"target": "active"})),
    );
    assert_eq!(st, 202, "{v}");
    let deadline = Instant::now() + Duration::from_secs(600);
    while s.node("lv1")["provision_state"] != "active" {
        let n = s.node("lv1");
        assert!(
            n["provision_state"] != "deploy failed",
            "the direct deploy failed: {}\nconsole:\n{}",
            n["last_error"],
            &lab.console()[before..]
        );
        assert!(
            Instant::now() < deadline,
            "the direct deploy did not end within 600 s: {n}"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    let deadline = Instant::now() + Duration::from_secs(180);
    while !lab.console()[before..].contains("RACKBOOT-DISK-BOOTED") {
        assert!(
            Instant::now() < deadline,
            "the VM did not boot its disk within 180 s; domain:\n{}\nconsole tail:\n{}\nevents:\n{:#?}",
            lab.domain_xml(),
            tail(&lab.console(), 40),
            s.events("lv1")
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let console = lab.console()[before..].to_string();
    assert!(
        console.contains(&format!("RACKBOOT-STATIC ip={vm_ip}/24 gw={ip}")),
        "{console}"
    );
    let events = s.events("lv1");
    let pos = |needle: &str| {
        events
            .iter()
            .rposition(|e| e.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in {events:#?}"))
    };
    assert!(
        pos("deploy step deploy.write_image done")
            < pos("deploy step deploy.prepare_instance_boot:")
    );
    let cd = lab.get(&format!("{}/VirtualMedia/Cd", lab.system));
    assert_eq!(cd["Inserted"], false, "ejected after the deploy: {cd}");
    let disk = lab.dir.path().join("disk0.img");
    let head = |p: &std::path::Path| {
        let mut b = vec![0u8; 512];
        std::io::Read::read_exact(&mut std::fs::File::open(p).unwrap(), &mut b).unwrap();
        b
    };
    assert_eq!(
        &head(&disk)[510..],
        &[0x55, 0xAA],
        "the image's MBR is on the disk"
    );

    // Undeploy with automated cleaning through virtual media: the agent
    // boots from the deploy ISO again and wipes the disk's metadata; the
    // node is powered off and the media ejected.
    let (st, v) = s.json(
        "PATCH",
        "/v1/nodes/lv1",
        Some(json!([{"op": "replace", "path": "/automated_clean", "value": true}])),
    );
    assert_eq!(st, 200, "{v}");
    let (st, v) = s.json(
        "PUT",
        "/v1/nodes/lv1/states/provision",
        Some(json!({"target": "deleted"})),
    );
    assert_eq!(st, 202, "{v}");
    let deadline = Instant::now() + Duration::from_secs(600);
    while s.node("lv1")["provision_state"] != "available" {
        let n = s.node("lv1");
        assert!(
            n["provision_state"] != "clean failed",
            "cleaning failed: {}\nconsole tail:\n{}",
            n["last_error"],
            tail(&lab.console(), 40)
        );
        assert!(
            Instant::now() < deadline,
            "cleaning did not end within 600 s: {n}"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    let events = s.events("lv1");
    assert!(
        events
            .iter()
            .any(|e| e.contains("erase_devices_metadata") && e.ends_with(": done")),
        "{events:#?}"
    );
    assert_ne!(
        &head(&disk)[510..],
        &[0x55, 0xAA],
        "cleaning wiped the partition table"
    );
    let cd = lab.get(&format!("{}/VirtualMedia/Cd", lab.system));
    assert_eq!(cd["Inserted"], false, "ejected after cleaning: {cd}");
    assert_eq!(lab.get(&lab.system)["PowerState"], "Off");
}
