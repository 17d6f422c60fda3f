use super::*;
use crate::model::{Interfaces, State};
use serde_json::json;
use uuid::Uuid;

fn node() -> Node {
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
fn data() -> Data {
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
    let Value::Object(mut m) = body else { unreachable!() };
    let inventory = m.remove("inventory").unwrap();
    Data {
        inventory,
        plugin_data: m,
    }
}

#[test]
fn the_default_hooks_fill_the_scheduling_properties_and_the_pxe_port() {
    let mut n = node();
    n.properties.insert("capabilities".into(), json!("profile:compute"));
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
        (AddPorts::All, vec!["52:54:00:12:34:56", "52:54:00:12:34:57"]),
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
    assert!(updated.pxe_enabled, "the PXE NIC's port is pxe_enabled again");
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
    let cases: Vec<(&str, Box<dyn Fn(&mut Data)>)> = vec![
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
    n.properties.insert("capabilities".into(), json!("nonsense"));
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
