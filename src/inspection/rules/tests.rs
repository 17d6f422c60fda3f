use super::*;
use crate::inspection::tests::{data, node};
use serde_json::json;

/// A stored rule from its API body (conditions, actions, priority, sensitive).
fn rule(body: Value) -> InspectionRule {
    InspectionRule {
        uuid: Uuid::new_v4(),
        created_at: crate::model::now(),
        updated_at: None,
        description: body["description"].as_str().map(str::to_string),
        priority: body["priority"].as_u64().unwrap_or(0),
        sensitive: body["sensitive"].as_bool().unwrap_or(false),
        phase: Some("main".into()),
        conditions: body["conditions"].as_array().cloned().unwrap_or_default(),
        actions: body["actions"].as_array().cloned().unwrap_or_default(),
    }
}

/// The inspection data of the hook tests, plus a BMC and a secret.
fn inspection_data() -> Data {
    let mut d = data();
    d.inventory["bmc_address"] = json!("192.0.2.10");
    d.inventory["bmc"] = json!({"user": "admin", "password": "hunter2"});
    d
}

struct Run {
    node: Node,
    ports: Vec<Port>,
    data: Data,
    result: Result<Outcome, String>,
}

fn run_with(rules: Vec<Value>, prepare: impl FnOnce(&mut Node, &mut Data)) -> Run {
    let registry = Registry::standard();
    let mut n = node();
    n.interfaces = registry.hardware_type("fake-hardware").unwrap().defaults();
    let mut d = inspection_data();
    prepare(&mut n, &mut d);
    let mut port = Port::new("52:54:00:12:34:56".parse().unwrap(), n.uuid);
    port.uuid = Uuid::parse_str("11111111-2222-3333-4444-555555555555").unwrap();
    let mut ports = vec![port];
    let rules: Vec<InspectionRule> = rules.into_iter().map(rule).collect();
    let result = apply(
        &rules,
        &mut n,
        &mut ports,
        &mut d,
        &registry,
        MaskSecrets::Always,
    );
    Run {
        node: n,
        ports,
        data: d,
        result,
    }
}

fn run(rules: Vec<Value>) -> Run {
    run_with(rules, |_, _| {})
}

/// A rule setting `extra/hit` to true when `condition` holds.
fn when(condition: Value) -> Value {
    json!({"conditions": [condition],
           "actions": [{"op": "set-attribute", "args": {"path": "extra/hit", "value": true}}]})
}

#[test]
fn discovery_copies_the_bmc_address_into_driver_info() {
    let bmc_rule = json!({
        "description": "BMC address of discovered nodes",
        "conditions": [{"op": "is-true", "args": {"value": "{plugin_data[auto_discovered]}"}}],
        "actions": [{"op": "set-attribute",
                     "args": {"path": "driver_info/ipmi_address", "value": "{inventory[bmc_address]}"}}]
    });
    let r = run_with(vec![bmc_rule.clone()], |_, d| {
        d.plugin_data.insert("auto_discovered".into(), json!(true));
    });
    let out = r.result.unwrap();
    assert_eq!(r.node.driver_info["ipmi_address"], "192.0.2.10");
    let [note] = &out.notes[..] else {
        panic!("{:?}", out.notes)
    };
    assert!(note.text.contains("BMC address of discovered nodes"));
    assert!(note.text.contains("set-attribute driver_info/ipmi_address"));
    // Not discovered: the field is missing, the format fails, the text
    // "{plugin_data[auto_discovered]}" is not true.
    let r = run(vec![bmc_rule]);
    assert!(r.result.unwrap().notes.is_empty());
    assert!(!r.node.driver_info.contains_key("ipmi_address"));
}

#[test]
fn condition_table() {
    // (condition, holds)
    let cases = vec![
        // A formatted value is text: "2" is not 2, unless compared as text.
        (
            json!({"op": "eq", "args": {"values": ["{inventory[cpu][count]}", 2]}}),
            false,
        ),
        (
            json!({"op": "eq", "args": {"values": ["{inventory[cpu][count]}", 2], "force_strings": true}}),
            true,
        ),
        (
            json!({"op": "eq", "args": {"values": ["{inventory[cpu][architecture]}", "x86_64"]}}),
            true,
        ),
        (
            json!({"op": "!eq", "args": {"values": ["{inventory[cpu][architecture]}", "x86_64"]}}),
            false,
        ),
        (
            json!({"op": "eq", "args": {"values": [1, 1.0, true]}}),
            true,
        ),
        (json!({"op": "eq", "args": {"values": [7]}}), true),
        (
            json!({"op": "gt", "args": {"values": [4096, 2048, 1024]}}),
            true,
        ),
        (json!({"op": "gt", "args": {"values": [4096, 4096]}}), false),
        (json!({"op": "lt", "args": {"values": [1, 2.5]}}), true),
        // Text compares as text: "10" < "9".
        (json!({"op": "lt", "args": {"values": ["10", "9"]}}), true),
        (
            json!({"op": "is-empty", "args": {"value": "{inventory[nothing]}"}}),
            true,
        ),
        (
            json!({"op": "is-empty", "args": {"value": "{inventory[hostname]}"}}),
            false,
        ),
        (
            json!({"op": "!is-empty", "args": {"value": "{inventory[hostname]}"}}),
            true,
        ),
        (json!({"op": "is-empty", "args": {"value": []}}), true),
        (
            json!({"op": "in-net", "args": {"address": "{inventory[interfaces][0][ipv4_address]}", "subnet": "10.0.2.0/24"}}),
            true,
        ),
        (
            json!({"op": "in-net", "args": {"address": "10.0.3.1", "subnet": "10.0.2.0/255.255.255.0"}}),
            false,
        ),
        (
            json!({"op": "in-net", "args": {"address": "10.0.2.15", "subnet": "fe80::/10"}}),
            false,
        ),
        (
            json!({"op": "in-net", "args": {"address": "fe80::1", "subnet": "fe80::/10"}}),
            true,
        ),
        (
            json!({"op": "matches", "args": {"value": "{inventory[system_vendor][manufacturer]}", "regex": "QEM"}}),
            false,
        ),
        (
            json!({"op": "matches", "args": {"value": "{inventory[system_vendor][manufacturer]}", "regex": "QEM."}}),
            true,
        ),
        // Only the first branch is anchored at the end, as in Python.
        (
            json!({"op": "matches", "args": {"value": "QEMU", "regex": "Q|x"}}),
            true,
        ),
        (
            json!({"op": "contains", "args": {"value": "{inventory[system_vendor][product_name]}", "regex": "i440FX"}}),
            true,
        ),
        (
            json!({"op": "contains", "args": {"value": "{inventory[cpu][flags]}", "regex": "'aes'"}}),
            true,
        ),
        (
            json!({"op": "one-of", "args": {"value": "{inventory[cpu][architecture]}", "values": ["aarch64", "x86_64"]}}),
            true,
        ),
        (json!({"op": "one-of", "args": {"value": "ppc64le"}}), false),
        (json!({"op": "is-none", "args": {"value": null}}), true),
        // A formatted None is the text "None", not None.
        (
            json!({"op": "is-none", "args": {"value": "{node.name}"}}),
            false,
        ),
        (json!({"op": "is-true", "args": {"value": "Yes"}}), true),
        (json!({"op": "is-true", "args": {"value": 1}}), true),
        (json!({"op": "is-true", "args": {"value": [1]}}), false),
        (
            json!({"op": "is-false", "args": {"value": "{node.maintenance}"}}),
            true,
        ),
        (json!({"op": "is-false", "args": {"value": null}}), true),
        (json!({"op": "is-false", "args": {"value": "0"}}), false),
        // Masked secrets: the rule sees "***".
        (
            json!({"op": "eq", "args": {"values": ["{inventory[bmc][password]}", "***"]}}),
            true,
        ),
        // Loops: `item` is each element; text is compared as text.
        (
            json!({"op": "eq", "args": {"values": ["{item}", "{inventory[cpu][count]}"]},
                   "loop": [1, 2, 3]}),
            true,
        ),
        (
            json!({"op": "eq", "args": {"values": ["{item}", "{inventory[cpu][count]}"]},
                   "loop": [1, 2, 3], "multiple": "all"}),
            false,
        ),
        (
            json!({"op": "eq", "args": {"values": ["{item}", "2"]}, "loop": [2, 3], "multiple": "first"}),
            true,
        ),
        (
            json!({"op": "eq", "args": {"values": ["{item}", "2"]}, "loop": [2, 3], "multiple": "last"}),
            false,
        ),
        (
            json!({"op": "eq", "args": {"values": ["{item[name]}", "{inventory[interfaces][1][name]}"]},
                   "loop": {"name": "enp0s4"}}),
            true,
        ),
    ];
    for (condition, holds) in cases {
        let r = run(vec![when(condition.clone())]);
        assert!(r.result.is_ok(), "{condition}: {:?}", r.result);
        assert_eq!(
            r.node.extra.get("hit") == Some(&json!(true)),
            holds,
            "{condition}"
        );
    }
}

#[test]
fn rules_run_by_priority_and_all_conditions_must_hold() {
    let set = |v: &str| json!({"op": "set-attribute", "args": {"path": "extra/last", "value": v}});
    let r = run(vec![
        json!({"priority": 10, "actions": [set("ten")]}),
        json!({"priority": 90, "actions": [set("ninety")]}),
        json!({"priority": 0, "actions": [set("zero")]}),
        json!({"priority": 5, "actions": [set("never")], "conditions": [
            {"op": "eq", "args": {"values": ["{inventory[cpu][architecture]}", "x86_64"]}},
            {"op": "is-true", "args": {"value": false}}
        ]}),
    ]);
    assert_eq!(r.result.unwrap().notes.len(), 3);
    assert_eq!(
        r.node.extra["last"], "zero",
        "the lowest priority runs last"
    );
}

/// What an action table case expects.
enum Want {
    Node(fn(&Node)),
    Data(fn(&Data)),
    Port(fn(&Port)),
    Fails(&'static str),
}

#[test]
fn action_table() {
    let cases: Vec<(Value, Want)> = vec![
        (
            json!({"op": "set-attribute", "args": {"path": "properties/cpus", "value": 8}}),
            Want::Node(|n| assert_eq!(n.properties["cpus"], 8)),
        ),
        (
            json!({"op": "set-attribute", "args": {"path": "extra.a.b", "value": "{inventory[hostname]}"}}),
            Want::Node(|n| assert_eq!(n.extra["a"], json!({"b": "debian"}))),
        ),
        (
            json!({"op": "set-attribute", "args": {"path": "name", "value": "node-{inventory[cpu][count]}"}}),
            Want::Node(|n| assert_eq!(n.name.as_deref(), Some("node-2"))),
        ),
        (
            json!({"op": "set-attribute", "args": {"path": "provision_state", "value": "active"}}),
            Want::Fails("Cannot patch /provision_state"),
        ),
        (
            json!({"op": "set-attribute", "args": {"path": "name/x", "value": 1}}),
            Want::Fails("Failed to set attribute name/x with value 1"),
        ),
        (
            json!({"op": "extend-attribute", "args": {"path": "extra/tags", "value": "rack-1"}}),
            Want::Node(|n| assert_eq!(n.extra["tags"], json!(["rack-1"]))),
        ),
        (
            json!({"op": "extend-attribute", "args": {"path": "extra/list", "value": 1, "unique": true}}),
            Want::Node(|n| assert_eq!(n.extra["list"], json!([1]))),
        ),
        (
            json!({"op": "extend-attribute", "args": {"path": "extra/text", "value": 1}}),
            Want::Fails("Failed to extend attribute extra/text"),
        ),
        (
            json!({"op": "del-attribute", "args": {"path": "extra/text"}}),
            Want::Node(|n| assert!(!n.extra.contains_key("text"))),
        ),
        (
            json!({"op": "del-attribute", "args": {"path": "extra/missing"}}),
            Want::Fails("Failed to delete attribute at extra/missing"),
        ),
        (
            json!({"op": "set-capability", "args": {"name": "boot_mode", "value": "{inventory[boot][current_boot_mode]}"}}),
            Want::Node(|n| {
                assert_eq!(
                    n.properties["capabilities"],
                    "profile:compute,boot_mode:bios"
                )
            }),
        ),
        (
            json!({"op": "unset-capability", "args": {"name": "profile"}}),
            Want::Node(|n| assert_eq!(n.properties["capabilities"], "")),
        ),
        (
            json!({"op": "add-trait", "args": {"name": "CUSTOM_DISCOVERED"}}),
            Want::Node(|n| assert_eq!(n.traits, ["CUSTOM_DISCOVERED", "CUSTOM_OLD"])),
        ),
        (
            json!({"op": "add-trait", "args": {"name": "custom-bad"}}),
            Want::Fails("Failed to add new trait custom-bad"),
        ),
        (
            json!({"op": "remove-trait", "args": {"name": "CUSTOM_OLD"}}),
            Want::Node(|n| assert!(n.traits.is_empty())),
        ),
        (
            json!({"op": "remove-trait", "args": {"name": "CUSTOM_NONE"}}),
            Want::Node(|n| assert_eq!(n.traits, ["CUSTOM_OLD"])),
        ),
        (
            json!({"op": "set-plugin-data", "args": {"path": "rack.slot", "value": "{inventory[cpu][count]}"}}),
            Want::Data(|d| assert_eq!(d.plugin_data["rack"], json!({"slot": "2"}))),
        ),
        (
            json!({"op": "extend-plugin-data", "args": {"path": "seen", "value": "a"}}),
            Want::Data(|d| assert_eq!(d.plugin_data["seen"], json!(["a"]))),
        ),
        (
            json!({"op": "extend-plugin-data", "args": {"path": "boot_interface", "value": "a"}}),
            Want::Fails("Failed to extend plugin data at boot_interface"),
        ),
        (
            json!({"op": "unset-plugin-data", "args": {"path": "configuration.collectors"}}),
            Want::Data(|d| {
                assert_eq!(d.plugin_data["configuration"].as_object().unwrap().len(), 1)
            }),
        ),
        (
            json!({"op": "unset-plugin-data", "args": {"path": "nest.only"}}),
            Want::Data(|d| assert!(!d.plugin_data.contains_key("nest"), "an emptied map goes")),
        ),
        (
            json!({"op": "set-port-attribute", "args": {"port_id": "11111111-2222-3333-4444-555555555555",
                   "path": "physical_network", "value": "physnet1"}}),
            Want::Port(|p| assert_eq!(p.physical_network.as_deref(), Some("physnet1"))),
        ),
        (
            json!({"op": "extend-port-attribute", "args": {"port_id": "11111111-2222-3333-4444-555555555555",
                   "path": "extra/vlans", "value": 42}}),
            Want::Port(|p| assert_eq!(p.extra["vlans"], json!([42]))),
        ),
        (
            json!({"op": "set-port-attribute", "args": {"port_id": "nope", "path": "extra/a", "value": 1}}),
            Want::Fails("Port nope could not be found."),
        ),
        (
            json!({"op": "log", "args": {"msg": "{inventory[cpu][count]} CPUs", "level": "WARNING"}}),
            Want::Node(|_| {}),
        ),
        (
            json!({"op": "log", "args": {"msg": "x", "level": "loud"}}),
            Want::Fails("Invalid log level: loud"),
        ),
        (
            // Not formatted: a fail message is taken as written.
            json!({"op": "fail", "args": {"msg": "no BMC on {inventory[hostname]}"}}),
            Want::Fails("Failed to inspect hardware. Reason: no BMC on {inventory[hostname]}"),
        ),
        (
            json!({"op": "api-call", "args": {"url": "http://hook.example/{node.uuid}"}}),
            Want::Node(|n| assert!(n.extra.contains_key("text"))),
        ),
    ];
    for (action, want) in cases {
        let r = run_with(vec![json!({"actions": [action.clone()]})], |n, d| {
            n.properties
                .insert("capabilities".into(), json!("profile:compute"));
            n.extra.insert("text".into(), json!("abc"));
            n.traits = vec!["CUSTOM_OLD".into()];
            d.plugin_data.insert("nest".into(), json!({"only": 1}));
        });
        match want {
            Want::Fails(part) => {
                let err = r.result.expect_err(&action.to_string());
                assert!(err.contains(part), "{action}: {err}");
            }
            want => {
                let out = r.result.unwrap_or_else(|e| panic!("{action}: {e}"));
                match want {
                    Want::Node(check) => check(&r.node),
                    Want::Data(check) => check(&r.data),
                    Want::Port(check) => {
                        check(&r.ports[0]);
                        assert_eq!(out.ports, [r.ports[0].uuid]);
                    }
                    Want::Fails(_) => unreachable!(),
                }
            }
        }
    }
}

#[test]
fn loops_format_their_items_twice_so_items_may_name_inventory_fields() {
    let r = run(vec![json!({"actions": [{
        "op": "set-attribute",
        "args": {"path": "{item[path]}", "value": "{item[value]}"},
        "loop": [
            {"path": "driver_info/ipmi_address", "value": "{inventory[bmc_address]}"},
            {"path": "extra/host", "value": "{inventory[hostname]}"}
        ]
    }]})]);
    r.result.unwrap();
    assert_eq!(r.node.driver_info["ipmi_address"], "192.0.2.10");
    assert_eq!(r.node.extra["host"], "debian");
}

#[test]
fn failures_stop_the_rules_and_name_the_rule() {
    let r = run(vec![
        json!({"priority": 2, "actions": [{"op": "set-attribute", "args": {"path": "extra/a", "value": 1}}]}),
        when(json!({"op": "lt", "args": {"values": ["a", 1]}})),
        json!({"priority": 0, "actions": [{"op": "set-attribute", "args": {"path": "extra/b", "value": 1}}]}),
    ]);
    let err = r.result.unwrap_err();
    assert!(err.starts_with("Failed to apply rule "), "{err}");
    assert!(
        err.ends_with("'<' not supported between instances of 'str' and 'int'"),
        "{err}"
    );
    assert_eq!(r.node.extra["a"], 1, "earlier rules keep their changes");
    assert!(!r.node.extra.contains_key("b"));
    // Plugin data changed so far is kept on failure too.
    let r = run(vec![json!({"actions": [
        {"op": "set-plugin-data", "args": {"path": "x", "value": 1}},
        {"op": "fail", "args": {"msg": "stop"}}
    ]})]);
    assert_eq!(
        r.result.unwrap_err(),
        "Failed to inspect hardware. Reason: stop"
    );
    assert_eq!(r.data.plugin_data["x"], 1);
    for (condition, part) in [
        (
            json!({"op": "eq", "args": {"values": "x"}}),
            "Expected list for 'values', got: str",
        ),
        (
            json!({"op": "matches", "args": {"value": "x", "regex": "("}}),
            "invalid regular expression",
        ),
        (
            json!({"op": "in-net", "args": {"address": "10.0.0.1", "subnet": "10.0.0.0/33"}}),
            "invalid value",
        ),
        (
            json!({"op": "in-net", "args": {"address": "nope", "subnet": "10.0.0.0/8"}}),
            "valid IP address",
        ),
        (
            json!({"op": "!!eq", "args": {"values": []}}),
            "more than one '!'",
        ),
    ] {
        let err = run(vec![when(condition.clone())]).result.unwrap_err();
        assert!(err.contains(part), "{condition}: {err}");
    }
}

#[test]
fn sensitive_rules_show_nothing_of_their_actions() {
    let actions = json!([
        {"op": "set-attribute", "args": {"path": "driver_info/ipmi_password", "value": "s3cret"}},
        {"op": "log", "args": {"msg": "password is s3cret"}},
        {"op": "api-call", "args": {"url": "http://s3cret.example/"}},
        {"op": "unset-plugin-data", "args": {"path": "s3cret"}}
    ]);
    let r = run(vec![
        json!({"sensitive": true, "actions": actions}),
        json!({"actions": [
            {"op": "set-attribute", "args": {"path": "extra/pw", "value": "{node.driver_info[ipmi_password]}"}},
            {"op": "log", "args": {"msg": "the password is {node.driver_info[ipmi_password]}"}}
        ]}),
    ]);
    let out = r.result.unwrap();
    assert_eq!(r.node.driver_info["ipmi_password"], "s3cret");
    assert_eq!(r.node.extra["pw"], "s3cret", "a rule may copy a secret");
    for note in &out.notes {
        assert!(!note.text.contains("s3cret"), "{note:?}");
    }
    assert!(out
        .notes
        .iter()
        .any(|n| n.text.contains("(sensitive: its actions are not shown)")));
    assert!(out.notes.iter().any(|n| n.severity == Severity::Warning
        && n.text
            .contains("api-call to (hidden: the rule is sensitive) skipped")));
    // A failing action of a sensitive rule hides its value too.
    let err = run(vec![json!({"sensitive": true, "actions": [
        {"op": "set-attribute", "args": {"path": "name/x", "value": "s3cret"}}
    ]})])
    .result
    .unwrap_err();
    assert!(!err.contains("s3cret"), "{err}");
}

#[test]
fn masking_follows_the_setting() {
    let registry = Registry::standard();
    let copy = rule(json!({"actions": [{"op": "set-attribute",
        "args": {"path": "extra/pw", "value": "{inventory[bmc][password]}"}}]}));
    let mut sensitive = copy.clone();
    sensitive.sensitive = true;
    for (mask, r, want) in [
        (MaskSecrets::Always, &sensitive, "***"),
        (MaskSecrets::Never, &copy, "hunter2"),
        (MaskSecrets::Sensitive, &copy, "***"),
        (MaskSecrets::Sensitive, &sensitive, "hunter2"),
    ] {
        let mut n = node();
        n.interfaces = registry.hardware_type("fake-hardware").unwrap().defaults();
        let mut d = inspection_data();
        apply(
            std::slice::from_ref(r),
            &mut n,
            &mut [],
            &mut d,
            &registry,
            mask,
        )
        .unwrap();
        assert_eq!(n.extra["pw"], want, "{mask:?} sensitive={}", r.sensitive);
    }
}
