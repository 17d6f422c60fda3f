//! `rackboot enroll FILE` on Bifrost inventories: 100 nodes from JSON and
//! from YAML, run again and again without change; entries with a bad MAC or
//! a MAC of another node refused alone.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::{json, Value};

use crate::common::*;

fn enroll(s: &Server, file: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rackboot"))
        .arg("enroll")
        .arg(file)
        .env("OS_ENDPOINT", s.endpoint())
        .env_remove("OS_AUTH_TYPE")
        .output()
        .expect("run rackboot enroll")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// One Bifrost entry of the generated inventory.
struct Host {
    name: String,
    uuid: Option<String>,
    macs: Vec<String>,
    /// Older files nest the BMC fields under driver_info.power.
    nested: bool,
    ram: String,
}

fn hosts(prefix: &str, n: usize) -> Vec<Host> {
    (0..n)
        .map(|i| Host {
            name: format!("{prefix}-{i:03}"),
            uuid: (i % 2 == 0).then(|| format!("7e11a000-0000-4000-8000-{i:012}")),
            macs: (0..1 + usize::from(i % 3 == 0))
                .map(|j| format!("52:54:00:{:02x}:{:02x}:{j:02x}", i / 256, i % 256))
                .collect(),
            nested: i % 4 == 1,
            ram: "4096".into(),
        })
        .collect()
}

fn to_json(hosts: &[Host]) -> String {
    let mut m = serde_json::Map::new();
    for (i, h) in hosts.iter().enumerate() {
        let bmc = json!({"ipmi_address": format!("192.0.2.{}", i % 250 + 1), "ipmi_password": format!("enroll-pw-{i}")});
        let mut driver_info = json!({"ipmi_username": "admin"});
        if h.nested {
            driver_info["power"] = bmc;
        } else {
            for (k, v) in bmc.as_object().unwrap() {
                driver_info[k] = v.clone();
            }
        }
        let mut e = json!({
            "name": h.name,
            "driver": "fake-hardware",
            "driver_info": driver_info,
            "nics": h.macs.iter().map(|m| json!({"mac": m})).collect::<Vec<_>>(),
            "properties": {"cpu_arch": "x86_64", "ram": h.ram, "cpus": 4},
            "instance_info": {"image_source": "http://192.0.2.254/img.qcow2"},
            "ipv4_address": format!("198.51.100.{}", i % 250 + 1),
            "host_groups": ["baremetal", "rack1"],
        });
        if let Some(u) = &h.uuid {
            e["uuid"] = json!(u);
        }
        m.insert(h.name.clone(), e);
    }
    serde_json::to_string_pretty(&Value::Object(m)).unwrap()
}

/// The same inventory written as Bifrost's YAML example is.
fn to_yaml(hosts: &[Host]) -> String {
    let mut y = String::from("---\n");
    for (i, h) in hosts.iter().enumerate() {
        let _ = writeln!(y, "  {}:", h.name);
        let _ = writeln!(y, "    name: {}", h.name);
        if let Some(u) = &h.uuid {
            let _ = writeln!(y, "    uuid: \"{u}\"");
        }
        let _ = writeln!(y, "    driver: fake-hardware");
        let _ = writeln!(y, "    driver_info:");
        let _ = writeln!(y, "      ipmi_username: admin");
        let pad = if h.nested {
            let _ = writeln!(y, "      power:");
            "        "
        } else {
            "      "
        };
        let _ = writeln!(y, "{pad}ipmi_address: \"192.0.2.{}\"", i % 250 + 1);
        let _ = writeln!(y, "{pad}ipmi_password: enroll-pw-{i}");
        let _ = writeln!(y, "    nics:");
        for m in &h.macs {
            let _ = writeln!(y, "      -\n        mac: \"{m}\"");
        }
        let _ = writeln!(
            y,
            "    properties:\n      cpu_arch: x86_64\n      ram: \"{}\"\n      cpus: 4",
            h.ram
        );
        let _ = writeln!(
            y,
            "    instance_info:\n      image_source: http://192.0.2.254/img.qcow2"
        );
        let _ = writeln!(y, "    ipv4_address: 198.51.100.{}", i % 250 + 1);
        let _ = writeln!(y, "    host_groups: [baremetal, rack1]");
    }
    y
}

/// Node name → (uuid, its port MACs), as the API has them.
fn enrolled(s: &Server) -> BTreeMap<String, (String, Vec<String>)> {
    let (st, nodes) = s.json("GET", "/v1/nodes?limit=1000", None);
    assert_eq!(st, 200, "{nodes}");
    let (st, ports) = s.json("GET", "/v1/ports/detail?limit=1000", None);
    assert_eq!(st, 200, "{ports}");
    let mut out = BTreeMap::new();
    for n in nodes["nodes"].as_array().unwrap() {
        let uuid = n["uuid"].as_str().unwrap().to_string();
        let mut macs: Vec<String> = ports["ports"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["node_uuid"] == uuid.as_str())
            .map(|p| p["address"].as_str().unwrap().to_string())
            .collect();
        macs.sort();
        out.insert(n["name"].as_str().unwrap().to_string(), (uuid, macs));
    }
    out
}

fn check_matches(s: &Server, hosts: &[Host], extra: usize) {
    let have = enrolled(s);
    assert_eq!(have.len(), hosts.len() + extra, "node count");
    for h in hosts {
        let (uuid, macs) = have
            .get(&h.name)
            .unwrap_or_else(|| panic!("{} not enrolled", h.name));
        if let Some(u) = &h.uuid {
            assert_eq!(uuid, u, "{}", h.name);
        }
        let mut want = h.macs.clone();
        want.sort();
        assert_eq!(*macs, want, "{}", h.name);
    }
}

#[test]
fn enroll_bifrost_inventory_json_and_yaml_idempotently() {
    let s = Server::start();
    let dir = s.dir.path();
    let mut hosts = hosts("enroll", 100);
    let json_file = dir.join("baremetal.json");
    let yaml_file = dir.join("baremetal.yml");
    std::fs::write(&json_file, to_json(&hosts)).unwrap();
    std::fs::write(&yaml_file, to_yaml(&hosts)).unwrap();

    let first = ok(enroll(&s, &json_file), "first enroll (JSON)");
    assert_eq!(
        first.matches("created node enroll-").count(),
        100,
        "{first}"
    );
    assert!(
        first.contains("created 100, updated 0, unchanged 0, failed 0"),
        "{first}"
    );
    assert!(
        first.contains(
            "created node enroll-000 (7e11a000-0000-4000-8000-000000000000) with 2 ports"
        ),
        "{first}"
    );
    check_matches(&s, &hosts, 0);
    // driver_info.power was flattened; the password went in and is not shown.
    let n = s.node("enroll-001");
    assert_eq!(n["driver_info"]["ipmi_address"], "192.0.2.2");
    assert_eq!(n["driver_info"]["ipmi_password"], "******");
    assert!(n["driver_info"].get("power").is_none(), "{n}");
    assert_eq!(n["properties"]["cpus"], 4);
    assert!(n.get("ipv4_address").is_none());

    for (file, what) in [
        (&json_file, "second enroll (JSON)"),
        (&yaml_file, "enroll (YAML)"),
    ] {
        let out = enroll(&s, file);
        let all = text(&out);
        assert!(out.status.success(), "{what}: {all}");
        assert_eq!(
            all.matches("unchanged node enroll-").count(),
            100,
            "{what}: {all}"
        );
        assert!(
            all.contains("created 0, updated 0, unchanged 100, failed 0"),
            "{what}: {all}"
        );
        // Bifrost's own keys are named once, as ignored.
        assert_eq!(all.matches("ignoring keys").count(), 1, "{all}");
        assert!(all.contains("host_groups, ipv4_address"), "{all}");
        assert!(!all.contains("enroll-pw-"), "a password was printed: {all}");
        check_matches(&s, &hosts, 0);
    }

    // A changed field and a new nic are patched and added, nothing else.
    hosts[5].ram = "8192".into();
    hosts[5].macs.push("52:54:00:00:05:09".into());
    std::fs::write(&yaml_file, to_yaml(&hosts)).unwrap();
    let out = ok(enroll(&s, &yaml_file), "enroll a changed YAML");
    assert!(
        out.contains("updated node enroll-005 (") && out.contains("): properties, ports"),
        "{out}"
    );
    assert!(
        out.contains("created 0, updated 1, unchanged 99, failed 0"),
        "{out}"
    );
    assert_eq!(s.node("enroll-005")["properties"]["ram"], "8192");
    check_matches(&s, &hosts, 0);

    // A bad MAC, and a MAC that is another node's port: those two entries are
    // refused and write nothing; the rest are enrolled.
    let mut late = hosts_named("late", 5);
    late[2].macs = vec!["52:54:00:zz:00:02".into()];
    late[3].macs = vec!["52:54:00:0a:0b:0c".into(), hosts[7].macs[0].clone()];
    let late_file = dir.join("late.yaml");
    std::fs::write(&late_file, to_yaml(&late)).unwrap();
    let out = enroll(&s, &late_file);
    let all = text(&out);
    assert!(
        !out.status.success(),
        "bad entries must fail the run: {all}"
    );
    assert!(
        all.contains("failed node late-002 (line ")
            && all.contains("\"52:54:00:zz:00:02\" is not a MAC address"),
        "{all}"
    );
    assert!(
        all.contains("failed node late-003")
            && all.contains(&format!(
                "MAC {} is already a port of node",
                hosts[7].macs[0]
            )),
        "{all}"
    );
    assert!(
        all.contains("created 3, updated 0, unchanged 0, failed 2"),
        "{all}"
    );
    assert!(!all.contains("enroll-pw-"), "{all}");
    let have = enrolled(&s);
    assert_eq!(have.len(), 103);
    assert!(!have.contains_key("late-002") && !have.contains_key("late-003"));
    // The refused entry's good MAC was not created either.
    let (_, ports) = s.json("GET", "/v1/ports?address=52:54:00:0a:0b:0c", None);
    assert_eq!(ports["ports"], json!([]), "{ports}");
    for name in ["late-000", "late-001", "late-004"] {
        assert!(have.contains_key(name), "{name} not enrolled");
    }

    // A file that does not parse names its line and enrolls nothing.
    let broken = dir.join("broken.json");
    std::fs::write(
        &broken,
        "{\n  \"x-1\": {\"driver\": \"fake-hardware\"},\n  \"x-2\": {\n}",
    )
    .unwrap();
    let all = fails(enroll(&s, &broken), "unparseable inventory");
    assert!(all.contains("not valid JSON at line 4"), "{all}");
    assert!(all.contains("nothing was enrolled"), "{all}");
    assert_eq!(enrolled(&s).len(), 103);
}

fn hosts_named(prefix: &str, n: usize) -> Vec<Host> {
    let mut hs = hosts(prefix, n);
    for (i, h) in hs.iter_mut().enumerate() {
        // Clear of the first inventory's MACs and UUIDs.
        h.uuid = None;
        h.macs = vec![format!("52:54:01:00:00:{i:02x}")];
    }
    hs
}
