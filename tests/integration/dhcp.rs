//! The DHCP server against real clients (busybox udhcpc, ISC dhclient) on a
//! bridge inside network namespaces the tests create.

use serde_json::{json, Value};

use crate::common::*;
use crate::netns::*;

/// An appliance serving DHCP (authoritative) on the segment's bridge.
fn dhcp_server(seg: &Segment, extra: &str) -> Server {
    Server::start_with(&format!(
        "[http]\nlisten = \"127.0.0.1:0\"\npublic_url = \"http://{ip}:8080\"\n\
         [dhcp]\nmode = \"authoritative\"\ninterface = \"{br}\"\nrange = [\"{first}\", \"{last}\"]\n\
         router = \"{ip}\"\ndns = [\"{ip}\"]\nlease_time = \"1h\"\nlease_flush_interval = \"100ms\"\n{extra}",
        ip = seg.server_ip(),
        br = seg.bridge,
        first = seg.ip(100),
        last = seg.ip(199),
    ))
}

/// Enrolls a node with one port; returns its UUID.
fn enroll(s: &Server, name: &str, mac: &str) -> String {
    s.node_with_port(json!({"name": name, "driver": "fake-hardware"}), mac)
}

fn dhcp_events(s: &Server, node: &str) -> Vec<String> {
    s.history(node)
        .iter()
        .filter(|h| h["event_type"] == "dhcp")
        .filter_map(|h| h["event"].as_str().map(str::to_string))
        .collect()
}

fn in_range(seg: &Segment, ip: &str) -> bool {
    let prefix = format!("10.88.{}.", seg.n);
    ip.strip_prefix(&prefix)
        .and_then(|l| l.parse::<u8>().ok())
        .is_some_and(|l| (100..=199).contains(&l))
}

#[test]
fn udhcpc_gets_a_stable_lease_renews_and_releases() {
    let mut seg = Segment::new();
    let s = dhcp_server(&seg, "");
    enroll(&s, "n1", &seg.mac(1));
    let a = seg.host(&seg.mac(1));
    // First lease (exit after it).
    let out = a
        .udhcpc(&["-q", "-n", "-t", "5", "-T", "1"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "udhcpc got no lease; log:\n{}",
        s.log()
    );
    let bound = a.wait_event("bound", 0, 1);
    let ip = ip_of(&bound);
    assert!(in_range(&seg, &ip), "{bound}");
    assert!(
        bound.contains(&format!("serverid={}", seg.server_ip())),
        "{bound}"
    );
    assert!(
        bound.contains(&format!("router={}", seg.server_ip())),
        "{bound}"
    );
    // udhcpc is not a network-boot client and the node boots nothing: no boot file.
    assert!(bound.contains("boot_file= "), "{bound}");
    // Stay running: renew (SIGUSR1, unicast REQUEST with ciaddr), then release (SIGUSR2).
    let mut c = Guard(a.udhcpc(&["-t", "5", "-T", "1"]).spawn().unwrap());
    let n = a.events().len();
    let bound = a.wait_event("bound", n, 15);
    assert_eq!(
        ip_of(&bound),
        ip,
        "a restarted client gets the same address"
    );
    let n = a.events().len();
    signal(&c.0, "USR1");
    let renew = a.wait_event("renew", n, 15);
    assert_eq!(ip_of(&renew), ip);
    signal(&c.0, "USR2");
    wait_until("the release in the node's timeline", 60, || {
        dhcp_events(&s, "n1")
            .iter()
            .any(|e| e.contains(&format!("released {ip}")))
    });
    stop(&mut c.0);
    // The timeline says what happened, in order.
    let events = dhcp_events(&s, "n1");
    let first = |needle: &str| {
        events
            .iter()
            .position(|e| e.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in {events:#?}"))
    };
    assert!(first("DHCP DISCOVER") < first("acked"), "{events:#?}");
    assert!(events[first("DHCP DISCOVER")].contains(&format!("offered {ip}")));
    assert!(events
        .iter()
        .any(|e| e.contains("DHCP REQUEST") && e.contains(&format!("acked {ip}"))));
}

#[test]
fn dhclient_gets_a_lease_keeps_it_across_restart_and_releases() {
    let mut seg = Segment::new();
    let s = dhcp_server(&seg, "");
    enroll(&s, "n2", &seg.mac(2));
    let b = seg.host(&seg.mac(2));
    let mut c = Guard(b.dhclient(&["-d"]).spawn().unwrap());
    let bound = b.wait_event("BOUND", 0, 20);
    stop(&mut c.0);
    let ip = ip_of(&bound);
    assert!(in_range(&seg, &ip), "{bound}");
    // Restarted with its lease file: the same address again.
    let n = b.events().len();
    let mut c = Guard(b.dhclient(&["-d"]).spawn().unwrap());
    let again = b.wait_events(&["REBOOT", "BOUND"], n, 20);
    stop(&mut c.0);
    assert_eq!(ip_of(&again), ip);
    let out = b.dhclient(&["-r"]).output().unwrap();
    assert!(out.status.success());
    wait_until("the release in the node's timeline", 15, || {
        dhcp_events(&s, "n2")
            .iter()
            .any(|e| e.contains(&format!("released {ip}")))
    });
}

#[test]
fn unknown_macs_get_nothing_and_clients_together_get_different_addresses() {
    let mut seg = Segment::new();
    let s = dhcp_server(&seg, "");
    let stranger = seg.host(&seg.mac(9));
    let out = stranger
        .udhcpc(&["-q", "-n", "-t", "2", "-T", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "an unknown MAC must get no lease");
    assert!(stranger.events().iter().all(|e| !e.starts_with("bound")));
    let log = s.log();
    assert!(
        log.contains(&format!("MAC {} is not enrolled", seg.mac(9))),
        "the ignored packet is logged with its reason"
    );
    // Four enrolled clients start at once: four different addresses.
    let hosts: Vec<Host> = (1..=4)
        .map(|i| {
            enroll(&s, &format!("t{i}"), &seg.mac(i));
            seg.host(&seg.mac(i))
        })
        .collect();
    let mut children: Vec<_> = hosts
        .iter()
        .map(|h| {
            Guard(
                h.udhcpc(&["-q", "-n", "-t", "5", "-T", "1"])
                    .spawn()
                    .unwrap(),
            )
        })
        .collect();
    for c in &mut children {
        assert!(c.0.wait().unwrap().success(), "log:\n{}", s.log());
    }
    let mut ips: Vec<String> = hosts
        .iter()
        .map(|h| ip_of(&h.wait_event("bound", 0, 1)))
        .collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 4, "{ips:?}");
}

#[test]
fn a_declined_address_is_not_offered_again_and_leases_survive_a_restart() {
    let mut seg = Segment::new();
    let mut s = dhcp_server(&seg, "");
    enroll(&s, "n3", &seg.mac(3));
    let a = seg.host(&seg.mac(3));
    assert!(a
        .udhcpc(&["-q", "-n", "-t", "5", "-T", "1"])
        .status()
        .unwrap()
        .success());
    let first = ip_of(&a.wait_event("bound", 0, 1));
    assert!(a
        .run("ip", &["addr", "flush", "dev", "eth0"])
        .status
        .success());
    // Someone else now uses that address: udhcpc's ARP check finds it and declines.
    let squatter = seg.host(&seg.mac(200));
    assert!(squatter
        .run(
            "ip",
            &["addr", "add", &format!("{first}/24"), "dev", "eth0"]
        )
        .status
        .success());
    let n = a.events().len();
    let out = a
        .udhcpc(&["-q", "-n", "-t", "6", "-T", "1", "-a"])
        .output()
        .unwrap();
    assert!(out.status.success(), "log:\n{}", s.log());
    let second = ip_of(&a.wait_event("bound", n, 1));
    assert_ne!(second, first, "the declined address was offered again");
    wait_until("the decline in the timeline", 10, || {
        dhcp_events(&s, "n3")
            .iter()
            .any(|e| e.contains(&format!("declined {first}")))
    });
    // Restart the appliance: the client keeps its new address (the leases
    // were written), and the declined one stays quarantined.
    let status = s.terminate();
    assert!(status.success(), "{status}");
    s.spawn();
    assert!(a
        .run("ip", &["addr", "flush", "dev", "eth0"])
        .status
        .success());
    let n = a.events().len();
    assert!(
        a.udhcpc(&["-q", "-n", "-t", "5", "-T", "1"])
            .status()
            .unwrap()
            .success(),
        "log:\n{}",
        s.log()
    );
    assert_eq!(ip_of(&a.wait_event("bound", n, 1)), second);
    let v: Value = s.node("n3");
    assert_eq!(v["name"], "n3");
}

/// A node adopted with the ramdisk deploy interface: active, booting its
/// instance from the network, so DHCP gives it a boot file.
fn network_boot_node(s: &Server, name: &str, mac: &str) {
    let blank = s.dir.path().join("data").join("blank.img");
    std::fs::write(&blank, b"").unwrap();
    let f = format!("file://{}", blank.display());
    s.node_with_port(
        json!({
            "name": name, "driver": "fake-hardware",
            "boot_interface": "ipxe", "deploy_interface": "ramdisk",
            "driver_info": {"deploy_kernel": f, "deploy_ramdisk": f},
            "instance_info": {"image_source": f}
        }),
        mac,
    );
    s.provision(name, "manage", "manageable");
    s.provision(name, "adopt", "active");
    assert_eq!(
        s.node(name)["driver_internal_info"]["boot_decision"],
        "network"
    );
}

/// Proxy mode beside dnsmasq on the same segment: QEMU's firmware gets its
/// address from dnsmasq and its boot file from rackboot — iPXE (SeaBIOS)
/// straight from the proxy offer on 67, OVMF's own PXE client from the PXE
/// boot server on 4011.
#[test]
fn proxy_mode_beside_dnsmasq_with_qemu_firmware() {
    let mut seg = Segment::new();
    // A small HTTP server standing in for the boot script, to see iPXE fetch it.
    let www = tempfile::tempdir().unwrap();
    std::fs::write(www.path().join("boot.ipxe"), "#!ipxe\necho proxy test\n").unwrap();
    let http_port = free_port();
    let http_log = www.path().join("http.log");
    let _http = Guard(
        std::process::Command::new("python3")
            .args([
                "-m",
                "http.server",
                &http_port.to_string(),
                "--bind",
                &seg.server_ip(),
                "--directory",
            ])
            .arg(www.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&http_log).unwrap())
            .spawn()
            .unwrap(),
    );
    let s = Server::start_with(&format!(
        "[http]\nlisten = \"127.0.0.1:0\"\npublic_url = \"http://{}:{http_port}\"\n\
         [dhcp]\nmode = \"proxy\"\ninterface = \"{}\"\n",
        seg.server_ip(),
        seg.bridge
    ));
    // dnsmasq hands out addresses from another host on the segment.
    let dhcpd = seg.host(&seg.mac(250));
    assert!(dhcpd
        .run(
            "ip",
            &["addr", "add", &format!("{}/24", seg.ip(2)), "dev", "eth0"]
        )
        .status
        .success());
    let leases = dhcpd.path("dnsmasq.leases");
    let _dnsmasq = Guard(
        dhcpd
            .cmd("dnsmasq")
            .args([
                "-k",
                "--port=0",
                "--interface=eth0",
                "--bind-interfaces",
                "--user=root",
                "--no-ping",
                "--log-dhcp",
            ])
            .arg(format!(
                "--dhcp-range={},{},255.255.255.0,1h",
                seg.ip(50),
                seg.ip(60)
            ))
            .arg(format!("--dhcp-leasefile={}", leases.display()))
            .arg(format!(
                "--pid-file={}",
                dhcpd.path("dnsmasq.pid").display()
            ))
            .arg(format!(
                "--log-facility={}",
                dhcpd.path("dnsmasq.log").display()
            ))
            .spawn()
            .expect("dnsmasq (scripts/install-deps.sh installs dnsmasq-base)"),
    );
    let bios_mac = seg.mac(1);
    let uefi_mac = seg.mac(2);
    network_boot_node(&s, "bios", &bios_mac);
    network_boot_node(&s, "uefi", &uefi_mac);
    let (t1, t2) = (seg.tap(), seg.tap());
    let _bios = Vm::start(&t1, &bios_mac, Firmware::BiosIpxe);
    let _uefi = Vm::start(&t2, &uefi_mac, Firmware::UefiPxe);
    wait_until(
        "iPXE to fetch the boot script named by the proxy",
        300,
        || {
            std::fs::read_to_string(&http_log)
                .unwrap_or_default()
                .contains("GET /boot.ipxe")
        },
    );
    wait_until("OVMF to ask the PXE boot server on port 4011", 300, || {
        dhcp_events(&s, "uefi")
            .iter()
            .any(|e| e.contains("PXE boot server (4011)"))
    });
    // Boot events reach the history in batches: wait for the proxy offer.
    let offer = format!(
        "proxy offer: boot http://{}:{http_port}/boot.ipxe",
        seg.server_ip()
    );
    wait_until("the BIOS proxy offer in the history", 30, || {
        dhcp_events(&s, "bios")
            .iter()
            .any(|e| e.contains("DHCP DISCOVER") && e.contains(&offer))
    });
    let uefi = dhcp_events(&s, "uefi");
    assert!(
        uefi.iter().any(|e| e.contains("DHCP DISCOVER")
            && e.contains("boot server on port 4011 (no option 43)")),
        "{uefi:#?}"
    );
    assert!(
        uefi.iter().any(|e| e.contains("on port 4011")
            && e.contains("PXE boot server (4011): boot snponly.efi")),
        "{uefi:#?}"
    );
    // iPXE's IPv6 router solicitation was answered (so it did not wait ~15 s).
    wait_until("the router solicitation answered", 30, || {
        s.log().contains("router solicitation answered")
    });
    // The addresses came from dnsmasq.
    let lease_text = std::fs::read_to_string(&leases).unwrap_or_default();
    for mac in [&bios_mac, &uefi_mac] {
        let line = lease_text
            .lines()
            .find(|l| l.contains(mac.as_str()))
            .unwrap_or_else(|| panic!("dnsmasq leased nothing to {mac}: {lease_text}"));
        assert!(line.contains(&format!("10.88.{}.", seg.n)), "{line}");
    }
}
