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
    let uuid = s.node_with_port(json!({"name": "vm1", "driver": "fake-hardware", "boot_interface": "ipxe", "deploy_interface": "ramdisk",
                    "instance_info": {"kernel": file("vmlinuz"), "ramdisk": file("initrd.cpio.gz"),
                                      "ramdisk_kernel_arguments": "console=ttyS0"}}), &mac);
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
    // The guest's console lines drain on their own time, not the network's.
    let lookup = format!("RACKBOOT-LOOKUP uuid={uuid}");
    wait_until("the ramdisk's lines on the serial console", 30, || {
        let serial = vm.serial();
        serial.contains("RACKBOOT-RAMDISK-UP") && serial.contains(&lookup)
    });
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
    assert!(pos("boot http://") < pos("HTTP boot script for"));
    assert!(pos("HTTP boot script for") < pos("HTTP kernel requested"));
    assert!(pos("HTTP kernel requested") < pos("HTTP ramdisk requested"));
    assert!(pos("HTTP ramdisk requested") < pos("the ramdisk is up"));
    assert!(pos("the ramdisk is up") < pos("wait call-back -> deploying -> active"));
    assert!(
        events[pos("DHCP DISCOVER")].contains("(iPXE, x86 BIOS)"),
        "{events:#?}"
    );
    assert!(
        events[pos("HTTP boot script for")].contains("served: kernel "),
        "{events:#?}"
    );
    // The same story in the metrics. The node gauge is the boot backend's
    // snapshot, refreshed just after each change: wait for it (bounded).
    let scrape = || metrics(&ip);
    let active = "rackboot_nodes{provision_state=\"active\"} 1";
    wait_until("the node gauge to show the active node", 10, || {
        scrape().contains(active)
    });
    let metrics = scrape();
    for needle in [
        "rackboot_dhcp_packets_total{type=\"DISCOVER\",verdict=\"offer\"}",
        "rackboot_dhcp_packets_total{type=\"REQUEST\",verdict=\"ack\"}",
        "rackboot_http_requests_total{route=\"images\",status=\"2xx\"}",
        "rackboot_http_requests_total{route=\"heartbeat\",status=\"2xx\"}",
        active,
        "rackboot_workflow_seconds_count{job=\"deploy\",outcome=\"wait\"} 1",
    ] {
        assert!(metrics.contains(needle), "no {needle} in:\n{metrics}");
    }
}

/// The lab appliance's `/metrics` text, served at `ip`.
fn metrics(ip: &str) -> String {
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            &format!("http://{ip}:8080/metrics"),
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One sample of the lab appliance's `/metrics` (0 while absent).
fn metric(ip: &str, sample: &str) -> u64 {
    metrics(ip)
        .lines()
        .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
        .unwrap_or(0)
}

/// An appliance serving DHCP (authoritative), TFTP and boot HTTP on a test
/// segment, with the test images allowed.
fn lab_server(seg: &Segment, extra: &str) -> Server {
    lab_appliance(seg, &test_images(), extra)
}

/// A QEMU VM behind a simulated BMC: IPMI power on starts it.
fn vm_bmc(seg: &mut Segment, mac: &str, fw: Firmware) -> (crate::bmc::Bmc, tempfile::TempDir) {
    let tap = seg.tap();
    let dir = tempfile::tempdir().unwrap();
    let cmd = qemu_cmd(qemu_args(&tap, mac, fw, dir.path()));
    (crate::bmc::Bmc::start_vm(&cmd), dir)
}

/// Waits (bounded) until the VM's console shows `needle`: the appliance may
/// see a heartbeat before the ramdisk has printed that it sent it.
fn wait_serial(dir: &tempfile::TempDir, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !serial(dir).contains(needle) {
        assert!(
            Instant::now() < deadline,
            "no {needle} on the console:\n{}",
            serial(dir)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn serial(dir: &tempfile::TempDir) -> String {
    String::from_utf8_lossy(&std::fs::read(dir.path().join("serial")).unwrap_or_default())
        .into_owned()
}

fn ipmi_node(
    s: &Server,
    name: &str,
    mac: &str,
    bmc: &crate::bmc::Bmc,
    extra: serde_json::Value,
) -> String {
    let mut body = json!({
        "name": name, "driver": "ipmi", "boot_interface": "ipxe", "deploy_interface": "ramdisk",
        "driver_info": {"ipmi_address": "127.0.0.1", "ipmi_port": bmc.port,
                        "ipmi_username": "admin", "ipmi_password": "password"},
    });
    for (k, v) in extra.as_object().unwrap() {
        match (body.get_mut(k), v) {
            (Some(serde_json::Value::Object(a)), serde_json::Value::Object(b)) => {
                a.extend(b.clone());
            }
            _ => {
                body[k] = v.clone();
            }
        }
    }
    s.node_with_port(body, mac)
}

fn wait_active(s: &Server, name: &str, secs: u64, dir: &tempfile::TempDir) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while s.node(name)["provision_state"] != "active" {
        assert!(
            Instant::now() < deadline,
            "{name} never became active ({}); serial:\n{}\nlog tail:\n{}",
            s.node(name)["provision_state"],
            serial(dir),
            s.log()
                .lines()
                .rev()
                .take(30)
                .collect::<Vec<_>>()
                .join("\n")
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Deploy, BIOS, with IPMI really powering the VM: the appliance sets PXE
/// and powers the VM on over IPMI; SeaBIOS iPXE does DHCP, fetches the
/// script, kernel and ramdisk; the ramdisk looks itself up and heartbeats.
/// A lab appliance, one VM behind its simulated BMC, and an `ipmi` node
/// for it with a ramdisk deploy of the test image, deployed as far as
/// `wait call-back` (IPMI has powered the VM on). Manage read the BMC.
/// (Bind every field when destructuring: a field left to `..` is dropped at
/// once, and dropping the segment takes the VM's network away.)
struct IpmiDeploy {
    s: Server,
    bmc: crate::bmc::Bmc,
    dir: tempfile::TempDir,
    _seg: Segment,
}

fn ipmi_deploy(name: &str, mac_index: u8, fw: Firmware, append: &str, extra: &str) -> IpmiDeploy {
    let images = test_images();
    let mut seg = Segment::new();
    let s = lab_server(
        &seg,
        &format!("sync_power_state_interval = \"0s\"\n{extra}"),
    );
    let mac = seg.mac(mac_index);
    let (bmc, dir) = vm_bmc(&mut seg, &mac, fw);
    let file = |n: &str| format!("file://{}", images.join(n).display());
    ipmi_node(
        &s,
        name,
        &mac,
        &bmc,
        json!({"deploy_interface": "ramdisk",
               "instance_info": {"kernel": file("vmlinuz"), "ramdisk": file("initrd.cpio.gz"),
                                 "ramdisk_kernel_arguments": format!("console=ttyS0{append}")}}),
    );
    s.provision(name, "manage", "manageable");
    assert_eq!(
        s.node(name)["power_state"],
        "power off",
        "manage read the BMC"
    );
    s.provision(name, "provide", "available");
    s.provision(name, "active", "wait call-back");
    IpmiDeploy {
        s,
        bmc,
        dir,
        _seg: seg,
    }
}

/// Where the first event containing `needle` is.
fn pos(events: &[String], needle: &str) -> usize {
    events
        .iter()
        .position(|e| e.contains(needle))
        .unwrap_or_else(|| panic!("no {needle:?} in {events:#?}"))
}

#[test]
fn ipmi_deploy_bios_powers_the_vm_on_and_it_network_boots() {
    let IpmiDeploy { s, bmc, dir, _seg } = ipmi_deploy("bios1", 1, Firmware::BiosIpxe, "", "");
    assert_eq!(
        bmc.events(),
        ["set boot pxe", "set power 1"],
        "PXE first, then power on"
    );
    wait_active(&s, "bios1", 240, &dir);
    wait_serial(&dir, "RACKBOOT-RAMDISK-UP");
    wait_serial(&dir, "RACKBOOT-HEARTBEAT-SENT");
    let e = s.events("bios1");
    assert!(pos(&e, "boot device pxe (persistent), powered on") < pos(&e, "DHCP DISCOVER"));
    assert!(pos(&e, "DHCP DISCOVER") < pos(&e, "acked"));
    assert!(pos(&e, "acked") < pos(&e, "the ramdisk is up"));
    // Undeploy powers it off over IPMI: the VM stops.
    s.provision("bios1", "deleted", "available");
    assert_eq!(bmc.state("vm.pid"), "", "the VM was stopped");
}

/// Adoption of a machine that is already running (started by the lab, not
/// the appliance): it is never restarted and its BMC sees no chassis
/// control; powered off behind the appliance's back, the sync loop powers
/// it on again.
#[test]
fn ipmi_adoption_of_a_running_vm_then_enforcement() {
    let images = test_images();
    let mut seg = Segment::new();
    let s = lab_server(&seg, "sync_power_state_interval = \"1s\"\n");
    let mac = seg.mac(2);
    let (bmc, _dir) = vm_bmc(&mut seg, &mac, Firmware::BiosIpxe);
    // The lab starts the machine.
    assert!(bmc.ipmitool(&["power", "on"]).status.success());
    let pid = bmc.state("vm.pid");
    assert!(!pid.is_empty());
    let starts = bmc.state("starts.log").lines().count();
    let file = format!("file://{}", images.join("vmlinuz").display());
    ipmi_node(
        &s,
        "prod",
        &mac,
        &bmc,
        json!({"driver_info": {"deploy_kernel": file, "deploy_ramdisk": file},
               "instance_info": {"image_source": file}}),
    );
    s.provision("prod", "manage", "manageable");
    assert_eq!(s.node("prod")["power_state"], "power on");
    s.provision("prod", "adopt", "active");
    // Three sync reads of the (only) node after adoption, counted by the
    // appliance itself, before looking at what the BMC saw.
    let reads = || {
        metric(
            &seg.server_ip(),
            "rackboot_power_sync_reads_total{outcome=\"checked\"}",
        )
    };
    let after_adopt = reads();
    wait_until("three sync reads of the adopted node", 30, || {
        reads() >= after_adopt + 3
    });
    assert_eq!(
        bmc.events(),
        ["set power 1"],
        "only the lab's power on: no chassis control by the appliance"
    );
    assert_eq!(bmc.state("vm.pid"), pid, "the VM was never restarted");
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the VM still runs"
    );
    assert_eq!(bmc.state("starts.log").lines().count(), starts);
    // Powered off behind the appliance's back: the sync loop powers it on again.
    assert!(bmc.ipmitool(&["power", "off"]).status.success());
    wait_until("the sync loop to power the VM on again", 30, || {
        !bmc.state("vm.pid").is_empty()
    });
    // (ipmitool may retransmit its power off while the hook stops QEMU.)
    let ev = bmc.events();
    assert!(
        ev.first().map(String::as_str) == Some("set power 1")
            && ev.contains(&"set power 0".to_string())
            && ev.last().map(String::as_str) == Some("set power 1"),
        "{ev:?}"
    );
    // The history entry is saved once the BMC reports the machine on again,
    // which is after the chassis hook has started QEMU: wait for it (bounded).
    wait_until("the enforcement in the history", 30, || {
        s.history("prod").iter().any(|h| {
            h["event"]
                .as_str()
                .unwrap_or("")
                .contains("power state enforced")
        })
    });
}

/// Deploy, UEFI, through OVMF's own PXE client: DHCP names snponly.efi,
/// TFTP serves it (OVMF asks for windowsize), iPXE then takes the HTTP
/// script, kernel and ramdisk; power is IPMI.
#[test]
fn ipmi_deploy_uefi_through_ovmf_pxe_and_tftp() {
    let IpmiDeploy {
        s,
        bmc: _bmc,
        dir,
        _seg,
    } = ipmi_deploy("uefi1", 3, Firmware::UefiPxe, "", "");
    wait_active(&s, "uefi1", 300, &dir);
    let e = s.events("uefi1");
    // PXE ROM gets the loader; the loader comes over TFTP; iPXE gets the script.
    // (OVMF first probes the size and aborts with ERROR 8; then it downloads.)
    assert!(pos(&e, "(PXE ROM, x64 UEFI): offered") < pos(&e, "TFTP snponly.efi"));
    let sent = e
        .iter()
        .position(|x| x.contains("TFTP snponly.efi") && x.contains(": sent "))
        .unwrap_or_else(|| panic!("no TFTP download in {e:#?}"));
    assert!(sent < pos(&e, "(iPXE, x64 UEFI): offered"));
    assert!(pos(&e, "(iPXE, x64 UEFI): offered") < pos(&e, "HTTP boot script for"));
    assert!(pos(&e, "HTTP boot script for") < pos(&e, "the ramdisk is up"));
    wait_serial(&dir, "RACKBOOT-HEARTBEAT-SENT");
}

/// Deploy, UEFI, with QEMU's iPXE EFI ROM on an e1000 (OVMF +
/// efi-e1000.rom): OVMF's PXE runs over the ROM's network driver, loads
/// snponly.efi over TFTP, and that iPXE takes the HTTP script.
#[test]
fn ipmi_deploy_uefi_with_the_ipxe_efi_rom() {
    let IpmiDeploy {
        s,
        bmc: _bmc,
        dir,
        _seg,
    } = ipmi_deploy("uefi2", 4, Firmware::UefiIpxe, "", "");
    wait_active(&s, "uefi2", 300, &dir);
    let e = s.events("uefi2");
    assert!(pos(&e, "(iPXE, x64 UEFI): offered") < pos(&e, "HTTP boot script for"));
    assert!(pos(&e, "HTTP boot script for") < pos(&e, "HTTP kernel requested"));
    assert!(pos(&e, "HTTP kernel requested") < pos(&e, "the ramdisk is up"));
    wait_serial(&dir, "RACKBOOT-HEARTBEAT-SENT");
}

/// Builds a BIOS-bootable ISO (isolinux) of the test kernel and ramdisk,
/// whose kernel line points the ramdisk at `api`.
fn test_iso(dest: &std::path::Path, api: &str) {
    let images = test_images();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("iso");
    std::fs::create_dir_all(root.join("isolinux")).unwrap();
    for (from, to) in [
        ("/usr/lib/ISOLINUX/isolinux.bin", "isolinux/isolinux.bin"),
        (
            "/usr/lib/syslinux/modules/bios/ldlinux.c32",
            "isolinux/ldlinux.c32",
        ),
    ] {
        std::fs::copy(from, root.join(to)).unwrap_or_else(|e| {
            panic!("{from}: {e} (scripts/install-deps.sh installs isolinux and syslinux-common)")
        });
    }
    std::fs::copy(images.join("vmlinuz"), root.join("vmlinuz")).unwrap();
    std::fs::copy(images.join("initrd.cpio.gz"), root.join("initrd.gz")).unwrap();
    std::fs::write(
        root.join("isolinux/isolinux.cfg"),
        format!("default rb\nprompt 0\nlabel rb\n  kernel /vmlinuz\n  append initrd=/initrd.gz console=ttyS0 ipa-api-url={api}\n"),
    )
    .unwrap();
    let out = std::process::Command::new("xorriso")
        .args(["-as", "mkisofs", "-quiet", "-o"])
        .arg(dest)
        .args([
            "-b",
            "isolinux/isolinux.bin",
            "-c",
            "isolinux/boot.cat",
            "-no-emul-boot",
            "-boot-load-size",
            "4",
            "-boot-info-table",
        ])
        .arg(&root)
        .output()
        .expect("xorriso (scripts/install-deps.sh installs it)");
    assert!(
        out.status.success(),
        "xorriso: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// ISO: a node whose instance is `boot_iso` boots it through iPXE's
/// `sanboot`, which reads the ISO with HTTP range requests.
#[test]
fn iso_instance_boots_through_sanboot_over_http_ranges() {
    let mut seg = Segment::new();
    let ip = seg.server_ip();
    let s = lab_server(&seg, "sync_power_state_interval = \"0s\"\n");
    let data = s.dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let iso = data.join("test.iso");
    test_iso(&iso, &format!("http://{ip}:8080"));
    let mac = seg.mac(5);
    s.node_with_port(
        json!({"name": "iso1", "driver": "fake-hardware", "boot_interface": "ipxe", "deploy_interface": "ramdisk",
               "instance_info": {"boot_iso": format!("file://{}", iso.display())}}),
        &mac,
    );
    s.provision("iso1", "manage", "manageable");
    s.provision("iso1", "provide", "available");
    s.provision("iso1", "active", "wait call-back");
    let tap = seg.tap();
    let vm = Vm::start(&tap, &mac, Firmware::BiosIpxe);
    let deadline = Instant::now() + Duration::from_secs(240);
    while s.node("iso1")["provision_state"] != "active" {
        assert!(
            Instant::now() < deadline,
            "the ISO never booted; serial:\n{}",
            vm.serial()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let events = s.events("iso1");
    let pos = |needle: &str| {
        events
            .iter()
            .position(|e| e.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in {events:#?}"))
    };
    assert!(
        events[pos("HTTP boot script for")].contains("served: sanboot --no-describe "),
        "{events:#?}"
    );
    assert!(pos("HTTP boot script for") < pos("HTTP boot_iso requested"));
    assert!(pos("HTTP boot_iso requested") < pos("the ramdisk is up"));
    // sanboot read it in ranges.
    let images_2xx = metric(
        &ip,
        "rackboot_http_requests_total{route=\"images\",status=\"2xx\"}",
    );
    assert!(
        images_2xx > 10,
        "sanboot should read the ISO in many ranges: {images_2xx} requests"
    );
}

/// Failure paths with real machines: a BMC with a wrong password fails
/// manage with a clear last_error; a VM whose ramdisk never calls back
/// (its agent URL leads nowhere) ends in deploy failed after the timeout.
#[test]
fn failure_paths_wrong_bmc_password_and_no_call_back() {
    let images = test_images();
    let mut seg = Segment::new();
    let ip = seg.server_ip();
    let s = lab_server(
        &seg,
        // Long enough for a TCG boot on a loaded machine to reach the ramdisk.
        "sync_power_state_interval = \"0s\"\ndeploy_callback_timeout = \"60s\"\n",
    );
    let mac = seg.mac(6);
    let (bmc, dir) = vm_bmc(&mut seg, &mac, Firmware::BiosIpxe);
    s.node_with_port(
        json!({"name": "badpw", "driver": "ipmi",
               "driver_info": {"ipmi_address": "127.0.0.1", "ipmi_port": bmc.port,
                               "ipmi_username": "admin", "ipmi_password": "wrong-password"}}),
        &seg.mac(7),
    );
    let (st, _) = s.json(
        "PUT",
        "/v1/nodes/badpw/states/provision",
        Some(json!({"target": "manage"})),
    );
    assert_eq!(st, 202);
    s.wait_state("badpw", "enroll");
    let err = s.node("badpw")["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        err.contains("authentication failed for BMC")
            && err.contains("check ipmi_username/ipmi_password"),
        "{err}"
    );
    assert!(!err.contains("wrong-password"));
    // The ramdisk boots but its agent URL points at a closed port: no call-back.
    let file = |n: &str| format!("file://{}", images.join(n).display());
    ipmi_node(
        &s,
        "silent",
        &mac,
        &bmc,
        json!({"deploy_interface": "ramdisk",
               "instance_info": {"kernel": file("vmlinuz"), "ramdisk": file("initrd.cpio.gz"),
                                 "ramdisk_kernel_arguments": format!("console=ttyS0 ipa-api-url=http://{ip}:9")}}),
    );
    s.provision("silent", "manage", "manageable");
    s.provision("silent", "provide", "available");
    s.provision("silent", "active", "wait call-back");
    // The machine boots the ramdisk, which cannot call back ...
    wait_until("the ramdisk up on the serial console", 240, || {
        serial(&dir).contains("RACKBOOT-RAMDISK-UP")
    });
    // ... so the deploy fails once the call-back timeout has passed.
    let deadline = Instant::now() + Duration::from_secs(200);
    while s.node("silent")["provision_state"] != "deploy failed" {
        assert!(
            Instant::now() < deadline,
            "never failed; serial:\n{}",
            serial(&dir)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let err = s.node("silent")["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        err.contains("Timeout reached while waiting for callback"),
        "{err}"
    );
}
