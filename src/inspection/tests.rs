use super::*;
use crate::model::{Interfaces, State};
use serde_json::json;
use uuid::Uuid;

pub(super) fn node() -> Node {
    Node::new(
        Uuid::new_v4(),
        "fake-hardware",
        Interfaces::default(),
        State::Inspecting,
        crate::model::now(),
    )
}

/// The data ironic-python-agent 13.0.0 posts (the default collectors),
/// trimmed to what the hooks read: two NICs (the first PXE-booted, with
/// LLDP), two disks, 2 vCPUs.
pub(super) fn data() -> Data {
    let body = json!({
        "inventory": {
            "interfaces": [
                {"name": "enp0s3", "mac_address": "52:54:00:12:34:56", "ipv4_address": "10.0.2.15",
                 "ipv6_address": "fe80::5054:ff:fe12:3456%enp0s3", "has_carrier": true,
                 "lldp": [[1, "04885a92ec5459"], [2, "0545746865726e6574312f3138"], [5, "737769746368302e6c6162"]],
                 "client_id": null},
                {"name": "enp0s4", "mac_address": "52:54:00:12:34:57", "ipv4_address": null,
                 "ipv6_address": null, "has_carrier": true, "lldp": null, "client_id": null},
                {"name": "bad", "mac_address": "not-a-mac"}
            ],
            "cpu": {"model_name": "QEMU Virtual CPU version 2.5+", "frequency": "", "count": 2,
                    "architecture": "x86_64", "flags": ["fpu", "pse", "aes"], "socket_count": 2},
            "disks": [
                {"name": "/dev/vda", "size": 4294967296u64, "rotational": true},
                {"name": "/dev/vdb", "size": 6442450944u64, "rotational": true}
            ],
            "memory": {"total": 2079223808u64, "physical_mb": 2048},
            "bmc_address": "0.0.0.0", "bmc_v6address": "::/0",
            "system_vendor": {"product_name": "Standard PC (i440FX + PIIX, 1996)", "serial_number": "", "manufacturer": "QEMU"},
            "boot": {"current_boot_mode": "bios", "pxe_interface": "01-52-54-00-12-34-56"},
            "hostname": "debian"
        },
        "root_disk": {"name": "/dev/vda", "size": 4294967296u64},
        "boot_interface": "01-52-54-00-12-34-56",
        "configuration": {"collectors": ["default", "logs"], "managers": [{"name": "generic_hardware_manager", "version": "1.2"}]},
        "error": null
    });
    let Value::Object(mut m) = body else {
        unreachable!()
    };
    let inventory = m.remove("inventory").unwrap();
    Data {
        inventory,
        plugin_data: m,
    }
}

#[test]
fn the_default_hooks_fill_the_scheduling_properties_and_the_pxe_port() {
    let mut n = node();
    n.properties
        .insert("capabilities".into(), json!("profile:compute"));
    let mut d = data();
    let out = run_hooks(&mut n, &[], &mut d, &Settings::default()).unwrap();
    assert_eq!(n.properties["cpus"], 2);
    assert_eq!(n.properties["memory_mb"], 2048);
    // 4 GiB root disk, less 1 for partitioning.
    assert_eq!(n.properties["local_gb"], 3);
    assert_eq!(n.properties["cpu_arch"], "x86_64");
    assert_eq!(
        n.properties["capabilities"],
        "profile:compute,boot_mode:bios,cpu_aes:true,cpu_hugepages:true"
    );
    let [PortChange::Create(p)] = &out.ports[..] else {
        panic!("{:?}", out.ports)
    };
    assert_eq!(p.address.to_string(), "52:54:00:12:34:56");
    assert!(p.pxe_enabled);
    assert_eq!(p.node_uuid, n.uuid);
    assert_eq!(p.local_link_connection["switch_id"], "88:5a:92:ec:54:59");
    assert_eq!(p.local_link_connection["port_id"], "Ethernet1/18");
    assert_eq!(p.local_link_connection["switch_info"], "switch0.lab");
    assert_eq!(d.plugin_data["macs"], json!(["52:54:00:12:34:56"]));
    assert_eq!(
        d.plugin_data["all_interfaces"]["enp0s3"]["ipv6_address"],
        "fe80::5054:ff:fe12:3456"
    );
    assert_eq!(d.plugin_data["local_gb"], 3);
}

#[test]
fn add_ports_table() {
    let cases = [
        (AddPorts::Pxe, vec!["52:54:00:12:34:56"]),
        (AddPorts::Active, vec!["52:54:00:12:34:56"]),
        (
            AddPorts::All,
            vec!["52:54:00:12:34:56", "52:54:00:12:34:57"],
        ),
        (AddPorts::Disabled, vec![]),
    ];
    for (add, want) in cases {
        let s = Settings {
            add_ports: add,
            ..Settings::default()
        };
        let mut n = node();
        let out = run_hooks(&mut n, &[], &mut data(), &s).unwrap();
        let got: Vec<String> = out
            .ports
            .iter()
            .filter_map(|c| match c {
                PortChange::Create(p) => Some(p.address.to_string()),
                _ => None,
            })
            .collect();
        assert_eq!(got, want, "{add:?}");
    }
    // Without a PXE MAC, "pxe" keeps every NIC (Ironic warns and adds all).
    let mut d = data();
    d.inventory["boot"]["pxe_interface"] = Value::Null;
    let out = run_hooks(&mut node(), &[], &mut d, &Settings::default()).unwrap();
    assert_eq!(out.ports.len(), 2);
}

#[test]
fn existing_ports_are_kept_updated_or_deleted_as_configured() {
    let mut n = node();
    let mut pxe = Port::new("52:54:00:12:34:56".parse().unwrap(), n.uuid);
    pxe.pxe_enabled = false;
    pxe.local_link_connection
        .insert("port_id".into(), json!("set-by-hand"));
    let gone = Port::new("52:54:00:99:99:99".parse().unwrap(), n.uuid);
    let s = Settings {
        keep_ports: KeepPorts::Present,
        ..Settings::default()
    };
    let out = run_hooks(&mut n, &[pxe.clone(), gone.clone()], &mut data(), &s).unwrap();
    let mut updated = None;
    let mut deleted = None;
    for c in &out.ports {
        match c {
            PortChange::Update(p) => updated = Some(p.clone()),
            PortChange::Delete(p) => deleted = Some(p.clone()),
            PortChange::Create(p) => panic!("{p:?} exists already"),
        }
    }
    let updated = updated.unwrap();
    assert!(
        updated.pxe_enabled,
        "the PXE NIC's port is pxe_enabled again"
    );
    assert_eq!(
        updated.local_link_connection["port_id"], "set-by-hand",
        "LLDP never overwrites what is there"
    );
    assert_eq!(updated.local_link_connection["switch_info"], "switch0.lab");
    assert_eq!(deleted.unwrap().uuid, gone.uuid);
    // keep_ports = all (the default) deletes nothing.
    let out = run_hooks(&mut n, &[pxe, gone], &mut data(), &Settings::default()).unwrap();
    assert!(!out.ports.iter().any(|c| matches!(c, PortChange::Delete(_))));
}

#[test]
fn failures_name_what_is_wrong() {
    type Spoil = Box<dyn Fn(&mut Data)>;
    let cases: Vec<(&str, Spoil)> = vec![
        (
            "Ramdisk reported error: The following errors were encountered:\n* disk",
            Box::new(|d| {
                d.plugin_data.insert(
                    "error".into(),
                    json!("The following errors were encountered:\n* disk"),
                );
            }),
        ),
        (
            "is invalid: no valid network interfaces",
            Box::new(|d| d.inventory["interfaces"] = json!([{"name": "x", "mac_address": "zz"}])),
        ),
        (
            "Inventory has malformed or missing CPU architecture information",
            Box::new(|d| d.inventory["cpu"] = json!({"count": 2})),
        ),
        (
            "Inventory has missing memory information",
            Box::new(|d| {
                d.inventory.as_object_mut().unwrap().remove("memory");
            }),
        ),
    ];
    for (want, spoil) in cases {
        let mut d = data();
        spoil(&mut d);
        let err = run_hooks(&mut node(), &[], &mut d, &Settings::default()).unwrap_err();
        assert!(err.contains(want), "{want}: {err}");
    }
    let mut n = node();
    n.properties
        .insert("capabilities".into(), json!("nonsense"));
    let err = run_hooks(&mut n, &[], &mut data(), &Settings::default()).unwrap_err();
    assert_eq!(err, "Invalid capabilities string 'nonsense'.");
}

#[test]
fn root_disk_and_lookup_keys() {
    let mut d = data();
    d.plugin_data.remove("root_disk");
    let mut n = node();
    run_hooks(&mut n, &[], &mut d, &Settings::default()).unwrap();
    assert_eq!(n.properties["local_gb"], 0, "diskless");
    let inv = data().inventory;
    assert_eq!(pxe_mac(&inv).unwrap().to_string(), "52:54:00:12:34:56");
    assert_eq!(inventory_macs(&inv).len(), 2);
    assert!(bmc_addresses(&inv).is_empty(), "0.0.0.0 is no BMC");
}

#[test]
fn hook_lists_are_checked() {
    assert!(check_hooks(&default_hooks()).is_ok());
    assert!(check_hooks(&["ports".into()])
        .unwrap_err()
        .contains("needs \"validate-interfaces\" earlier"));
    assert!(check_hooks(&["extra-hardware".into()])
        .unwrap_err()
        .contains("unknown inspection hook"));
}

#[test]
fn local_gb_table() {
    const GIB: u64 = 1 << 30;
    // (root disk size, disk_partitioning_spacing, local_gb)
    let cases = [
        (Some(4 * GIB), true, 3),
        (Some(4 * GIB + GIB / 2), true, 3),
        (Some(4 * GIB), false, 4),
        (Some(GIB), true, 0),
        (Some(GIB / 2), true, 0),
        (Some(0), true, 0),
        (None, true, 0),
    ];
    for (size, spacing, want) in cases {
        let mut d = data();
        match size {
            Some(s) => d.plugin_data["root_disk"]["size"] = json!(s),
            None => {
                d.plugin_data.remove("root_disk");
            }
        }
        let s = Settings {
            disk_partitioning_spacing: spacing,
            ..Settings::default()
        };
        let mut n = node();
        run_hooks(&mut n, &[], &mut d, &s).unwrap();
        assert_eq!(n.properties["local_gb"], want, "{size:?} {spacing}");
        assert_eq!(d.plugin_data["local_gb"], want);
    }
}

#[test]
fn keep_ports_table() {
    let n = node();
    let pxe = Port::new("52:54:00:12:34:56".parse().unwrap(), n.uuid);
    let other_nic = Port::new("52:54:00:12:34:57".parse().unwrap(), n.uuid);
    let gone = Port::new("52:54:00:99:99:99".parse().unwrap(), n.uuid);
    // (keep_ports, deleted)
    let cases = [
        (KeepPorts::All, vec![]),
        (KeepPorts::Present, vec![gone.address]),
        // "added": only the NICs add_ports (pxe) chose are kept.
        (KeepPorts::Added, vec![other_nic.address, gone.address]),
    ];
    for (keep, want) in cases {
        let s = Settings {
            keep_ports: keep,
            ..Settings::default()
        };
        let ports = [pxe.clone(), other_nic.clone(), gone.clone()];
        let out = run_hooks(&mut node(), &ports, &mut data(), &s).unwrap();
        let deleted: Vec<Mac> = out
            .ports
            .iter()
            .filter_map(|c| match c {
                PortChange::Delete(p) => Some(p.address),
                _ => None,
            })
            .collect();
        assert_eq!(deleted, want, "{keep:?}");
        assert!(
            !out.ports.iter().any(|c| matches!(c, PortChange::Create(_))),
            "{keep:?}: the PXE NIC has a port already"
        );
    }
}

#[test]
fn pxe_enabled_follows_the_boot_nic_unless_told_not_to() {
    let n = node();
    let mut not_pxe = Port::new("52:54:00:12:34:56".parse().unwrap(), n.uuid);
    not_pxe.pxe_enabled = false;
    let was_pxe = Port::new("52:54:00:12:34:57".parse().unwrap(), n.uuid);
    let ports = [not_pxe, was_pxe];
    let changed = |s: &Settings| -> Vec<(String, bool)> {
        let mut d = data();
        // No LLDP, so only pxe_enabled can change.
        d.inventory["interfaces"][0]["lldp"] = Value::Null;
        run_hooks(&mut node(), &ports, &mut d, s)
            .unwrap()
            .ports
            .iter()
            .filter_map(|c| match c {
                PortChange::Update(p) => Some((p.address.to_string(), p.pxe_enabled)),
                _ => None,
            })
            .collect()
    };
    assert_eq!(
        changed(&Settings::default()),
        [
            ("52:54:00:12:34:56".to_string(), true),
            ("52:54:00:12:34:57".to_string(), false)
        ]
    );
    let off = Settings {
        update_pxe_enabled: false,
        ..Settings::default()
    };
    assert!(changed(&off).is_empty());
}

#[test]
fn capabilities_merge_table() {
    // (existing capabilities, boot mode, flags, result)
    let cases = [
        (
            json!(null),
            "uefi",
            json!(["vmx"]),
            "boot_mode:uefi,cpu_vt:true",
        ),
        (json!(""), "bios", json!([]), "boot_mode:bios"),
        // An existing key is replaced in place, the others kept in order.
        (
            json!("boot_mode:uefi,profile:gpu"),
            "bios",
            json!(["svm", "vmx", "pdpe1gb", "smx"]),
            "boot_mode:bios,profile:gpu,cpu_hugepages_1g:true,cpu_txt:true,cpu_vt:true",
        ),
        (
            json!({"profile": "gpu"}),
            "uefi",
            json!(["aes"]),
            "profile:gpu,boot_mode:uefi,cpu_aes:true",
        ),
    ];
    for (existing, mode, flags, want) in cases {
        let mut n = node();
        n.properties.insert("capabilities".into(), existing.clone());
        let mut d = data();
        d.inventory["boot"]["current_boot_mode"] = json!(mode);
        d.inventory["cpu"]["flags"] = flags;
        run_hooks(&mut n, &[], &mut d, &Settings::default()).unwrap();
        assert_eq!(n.properties["capabilities"], want, "{existing}");
    }
}

#[test]
fn lldp_fills_only_missing_keys_and_prefers_lldp_raw() {
    let n = node();
    let mut port = Port::new("52:54:00:12:34:56".parse().unwrap(), n.uuid);
    port.local_link_connection
        .insert("switch_id".into(), json!("00:00:00:00:00:01"));
    let mut d = data();
    // lldp_raw (as the lldp collector posts it) wins over the inventory:
    // chassis MAC (subtype 4), port ifName (subtype 5), system name.
    d.plugin_data.insert(
        "lldp_raw".into(),
        json!({"enp0s3": [[1, "04aabbccddeeff"], [2, "0565746831"], [5, "746f722d31"]]}),
    );
    let out = run_hooks(&mut n.clone(), &[port], &mut d, &Settings::default()).unwrap();
    let [PortChange::Update(p)] = &out.ports[..] else {
        panic!("{:?}", out.ports)
    };
    assert_eq!(
        p.local_link_connection["switch_id"], "00:00:00:00:00:01",
        "never overwritten"
    );
    assert_eq!(p.local_link_connection["port_id"], "eth1");
    assert_eq!(p.local_link_connection["switch_info"], "tor-1");
    // Bad TLVs: the interface is skipped with a warning, nothing fails.
    let mut d = data();
    d.inventory["interfaces"][0]["lldp"] = json!([[2, "0g"]]);
    let out = run_hooks(&mut node(), &[], &mut d, &Settings::default()).unwrap();
    let [PortChange::Create(p)] = &out.ports[..] else {
        panic!("{:?}", out.ports)
    };
    assert!(p.local_link_connection.is_empty());
    assert!(out.warnings.iter().any(|w| w.starts_with("LLDP of enp0s3")));
}

#[test]
fn interfaces_and_ramdisk_errors_table() {
    let cases: Vec<(Value, Value, Option<&str>)> = vec![
        // (plugin_data.error, inventory.interfaces, failure)
        (
            json!(false),
            json!(null),
            Some("no interfaces present in inventory"),
        ),
        (
            json!(""),
            json!([{"name": "lo", "mac_address": "00:00:00:00:00:00"}]),
            Some("add_ports set to \"pxe\""),
        ),
        (
            json!("disk gone"),
            json!([]),
            Some("Ramdisk reported error: disk gone\nInventory for node"),
        ),
        (
            json!(null),
            json!([{"name": "eth9", "mac_address": "52:54:00:12:34:56", "ipv4_address": "127.0.0.1"}]),
            Some("no network interfaces match"),
        ),
        (
            json!(null),
            json!([{"name": "eth0", "mac_address": "52:54:00:12:34:56"}]),
            None,
        ),
    ];
    for (error, interfaces, want) in cases {
        let mut d = data();
        d.plugin_data.insert("error".into(), error.clone());
        d.inventory["interfaces"] = interfaces.clone();
        let got = run_hooks(&mut node(), &[], &mut d, &Settings::default());
        match want {
            None => assert!(got.is_ok(), "{interfaces}: {:?}", got.err()),
            Some(part) => {
                let err = got.err().unwrap_or_default();
                assert!(
                    err.starts_with(
                        "The following failures happened while running preprocess hooks for node "
                    ),
                    "{err}"
                );
                assert!(err.contains(part), "{interfaces}: {err}");
            }
        }
    }
}

#[test]
fn only_the_configured_hooks_run() {
    let s = Settings {
        hooks: ["ramdisk-error", "architecture", "cpus"]
            .map(String::from)
            .to_vec(),
        ..Settings::default()
    };
    let mut n = node();
    let mut d = data();
    d.inventory["cpu"]["count"] = json!(0);
    d.inventory.as_object_mut().unwrap().remove("memory");
    let out = run_hooks(&mut n, &[], &mut d, &s).unwrap();
    assert_eq!(n.properties["cpu_arch"], "x86_64");
    assert!(
        !n.properties.contains_key("cpus"),
        "a zero count is no count"
    );
    assert!(out.warnings.iter().any(|w| w.contains("no CPU count")));
    assert!(out.ports.is_empty(), "no ports hook");
    assert!(
        !d.plugin_data.contains_key("macs"),
        "no validate-interfaces"
    );
}

#[test]
fn hook_order_table() {
    let list = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let cases: Vec<(Vec<String>, Result<(), &str>)> = vec![
        (default_hooks(), Ok(())),
        (list(&[]), Ok(())),
        (
            list(&["validate-interfaces", "ports", "local-link-connection"]),
            Ok(()),
        ),
        (
            list(&["ports", "validate-interfaces"]),
            Err("inspection hook \"ports\" needs \"validate-interfaces\" earlier in the list"),
        ),
        (
            list(&["validate-interfaces", "local-link-connection"][1..]),
            Err("\"local-link-connection\" needs \"validate-interfaces\""),
        ),
        (
            list(&["pci-devices"]),
            Err("unknown inspection hook \"pci-devices\""),
        ),
    ];
    for (hooks, want) in cases {
        let got = check_hooks(&hooks);
        match want {
            Ok(()) => assert_eq!(got, Ok(()), "{hooks:?}"),
            Err(part) => assert!(
                got.as_ref().is_err_and(|e| e.contains(part)),
                "{hooks:?}: {got:?}"
            ),
        }
    }
}
