//! The `rackboot node …` verbs: each turns its arguments into API calls
//! (create, list, show, set/unset as JSON patches, provision and power
//! targets, validate, history) and prints the answer.

use serde_json::{json, Map, Value};

use super::args::{AddCmd, Fields, NodeCmd, RemoveCmd, TraitCmd, Verb, VifCmd};
use super::client::{Client, Failure, Res};

pub(super) fn kv(items: &[String], parse_json: bool) -> Res<Map<String, Value>> {
    let mut m = Map::new();
    for item in items {
        // The item may hold a password: never echo it.
        let (k, v) = item.split_once('=').ok_or_else(|| {
            Failure("a KEY=VALUE item has no '='; write each as KEY=VALUE".into())
        })?;
        let value = if parse_json {
            serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()))
        } else {
            Value::String(v.to_string())
        };
        m.insert(k.to_string(), value);
    }
    Ok(m)
}

/// `--driver-info` items plus the lines of `--driver-info-file`.
fn driver_info_items(f: &Fields) -> Res<Vec<String>> {
    let mut items = f.driver_info.clone();
    if let Some(path) = &f.driver_info_file {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Failure(format!(
                "cannot read --driver-info-file {}: {e}",
                path.display()
            ))
        })?;
        items.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string),
        );
    }
    Ok(items)
}

fn interface_ops(f: &Fields, ops: &mut Vec<Value>) {
    for (field, v) in [
        ("boot_interface", &f.boot_interface),
        ("deploy_interface", &f.deploy_interface),
        ("power_interface", &f.power_interface),
        ("management_interface", &f.management_interface),
        ("network_interface", &f.network_interface),
        ("resource_class", &f.resource_class),
        ("description", &f.description),
    ] {
        if let Some(v) = v {
            ops.push(json!({"op": "add", "path": format!("/{field}"), "value": v}));
        }
    }
}

pub(super) async fn node(c: &Client, cmd: NodeCmd) -> Res<()> {
    use reqwest::Method as M;
    match cmd {
        NodeCmd::Create {
            driver,
            name,
            uuid,
            fields,
        } => {
            let mut body = json!({"driver": driver});
            if let Some(n) = name {
                body["name"] = json!(n);
            }
            if let Some(u) = uuid {
                body["uuid"] = json!(u);
            }
            for (key, items, parse) in [
                ("driver_info", &driver_info_items(&fields)?, true),
                ("instance_info", &fields.instance_info, false),
                ("properties", &fields.property, true),
                ("extra", &fields.extra, false),
            ] {
                if !items.is_empty() {
                    body[key] = Value::Object(kv(items, parse)?);
                }
            }
            let mut ops = Vec::new();
            interface_ops(&fields, &mut ops);
            for op in ops {
                let field = op["path"]
                    .as_str()
                    .unwrap_or("/")
                    .trim_start_matches('/')
                    .to_string();
                body[field] = op["value"].clone();
            }
            let n = c.call(M::POST, "/v1/nodes", Some(body)).await?;
            c.print_object(&n);
        }
        NodeCmd::List {
            provision_state,
            driver,
            long,
        } => {
            let mut q = Vec::new();
            if let Some(s) = provision_state {
                q.push(format!("provision_state={}", s.replace(' ', "%20")));
            }
            if let Some(d) = driver {
                q.push(format!("driver={d}"));
            }
            let path = format!(
                "/v1/nodes{}?{}",
                if long { "/detail" } else { "" },
                q.join("&")
            );
            let nodes = c.list_all(&path, "nodes").await?;
            let mut cols = vec![
                ("UUID", "uuid"),
                ("Name", "name"),
                ("Instance UUID", "instance_uuid"),
                ("Power State", "power_state"),
                ("Provisioning State", "provision_state"),
                ("Maintenance", "maintenance"),
            ];
            if long {
                cols.extend([("Driver", "driver"), ("Last Error", "last_error")]);
            }
            c.print_list(&nodes, &cols);
        }
        NodeCmd::Show { node } => {
            let n = c.get(&format!("/v1/nodes/{node}")).await?;
            c.print_object(&n);
        }
        NodeCmd::Set {
            node,
            name,
            driver,
            instance_uuid,
            reset_interfaces,
            fields,
        } => {
            let mut ops = Vec::new();
            for (field, v) in [
                ("name", &name),
                ("driver", &driver),
                ("instance_uuid", &instance_uuid),
            ] {
                if let Some(v) = v {
                    ops.push(json!({"op": "add", "path": format!("/{field}"), "value": v}));
                }
            }
            for (key, items, parse) in [
                ("driver_info", &driver_info_items(&fields)?, true),
                ("instance_info", &fields.instance_info, false),
                ("properties", &fields.property, true),
                ("extra", &fields.extra, false),
            ] {
                for (k, v) in kv(items, parse)? {
                    ops.push(json!({"op": "add", "path": format!("/{key}/{k}"), "value": v}));
                }
            }
            interface_ops(&fields, &mut ops);
            if ops.is_empty() {
                return Err(Failure("nothing to set; give at least one field".into()));
            }
            let q = if reset_interfaces {
                "?reset_interfaces=true"
            } else {
                ""
            };
            c.call(
                M::PATCH,
                &format!("/v1/nodes/{node}{q}"),
                Some(Value::Array(ops)),
            )
            .await?;
        }
        NodeCmd::Unset {
            node,
            driver_info,
            instance_info,
            property,
            extra,
            instance_uuid,
            name,
        } => {
            let mut ops = Vec::new();
            for (key, keys) in [
                ("driver_info", &driver_info),
                ("instance_info", &instance_info),
                ("properties", &property),
                ("extra", &extra),
            ] {
                for k in keys {
                    ops.push(json!({"op": "remove", "path": format!("/{key}/{k}")}));
                }
            }
            if instance_uuid {
                ops.push(json!({"op": "remove", "path": "/instance_uuid"}));
            }
            if name {
                ops.push(json!({"op": "remove", "path": "/name"}));
            }
            if ops.is_empty() {
                return Err(Failure("nothing to unset; give at least one field".into()));
            }
            c.call(
                M::PATCH,
                &format!("/v1/nodes/{node}"),
                Some(Value::Array(ops)),
            )
            .await?;
        }
        NodeCmd::Manage(v) => verb(c, v, "manage").await?,
        NodeCmd::Adopt(v) => verb(c, v, "adopt").await?,
        NodeCmd::Provide(v) => verb(c, v, "provide").await?,
        NodeCmd::Deploy(v) => verb(c, v, "active").await?,
        NodeCmd::Undeploy(v) => verb(c, v, "deleted").await?,
        NodeCmd::Rebuild(v) => verb(c, v, "rebuild").await?,
        NodeCmd::Abort { node } => {
            c.call(
                M::PUT,
                &format!("/v1/nodes/{node}/states/provision"),
                Some(json!({"target": "abort"})),
            )
            .await?;
        }
        NodeCmd::Delete { nodes } => {
            for n in nodes {
                c.call(M::DELETE, &format!("/v1/nodes/{n}"), None).await?;
                eprintln!("Deleted node {n}");
            }
        }
        NodeCmd::Power { action, node, soft } => {
            let target = match (action.as_str(), soft) {
                ("on", _) => "power on",
                ("off", false) => "power off",
                ("off", true) => "soft power off",
                ("reboot", false) => "rebooting",
                _ => "soft rebooting",
            };
            c.call(
                M::PUT,
                &format!("/v1/nodes/{node}/states/power"),
                Some(json!({"target": target})),
            )
            .await?;
        }
        NodeCmd::Validate { node } => {
            let v = c.get(&format!("/v1/nodes/{node}/validate")).await?;
            let rows: Vec<Value> = v
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, r)| json!({"interface": k, "result": r["result"], "reason": r.get("reason").cloned().unwrap_or(Value::Null)}))
                        .collect()
                })
                .unwrap_or_default();
            c.print_list(
                &rows,
                &[
                    ("Interface", "interface"),
                    ("Result", "result"),
                    ("Reason", "reason"),
                ],
            );
        }
        NodeCmd::History { node } => {
            let items = c
                .list_all(&format!("/v1/nodes/{node}/history?detail=True"), "history")
                .await?;
            c.print_list(
                &items,
                &[
                    ("Created At", "created_at"),
                    ("Severity", "severity"),
                    ("Type", "event_type"),
                    ("Event", "event"),
                ],
            );
        }
        NodeCmd::Add(AddCmd::Trait { node, traits }) => {
            for t in traits {
                c.call(M::PUT, &format!("/v1/nodes/{node}/traits/{t}"), None)
                    .await?;
                eprintln!("Added trait {t}");
            }
        }
        NodeCmd::Remove(RemoveCmd::Trait { node, traits, all }) => {
            if all {
                c.call(M::DELETE, &format!("/v1/nodes/{node}/traits"), None)
                    .await?;
                eprintln!("Removed all traits");
            } else if traits.is_empty() {
                return Err(Failure("name the traits to remove, or give --all".into()));
            }
            for t in traits {
                c.call(M::DELETE, &format!("/v1/nodes/{node}/traits/{t}"), None)
                    .await?;
                eprintln!("Removed trait {t}");
            }
        }
        NodeCmd::Trait(TraitCmd::List { node }) => {
            let t = c.get(&format!("/v1/nodes/{node}/traits")).await?;
            let items: Vec<Value> = t["traits"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|name| json!({ "traits": name }))
                .collect();
            c.print_list(&items, &[("Traits", "traits")]);
        }
        NodeCmd::Vif(VifCmd::List { node }) => {
            let v = c.get(&format!("/v1/nodes/{node}/vifs")).await?;
            let items = v["vifs"].as_array().cloned().unwrap_or_default();
            c.print_list(&items, &[("ID", "id")]);
        }
        NodeCmd::Vif(VifCmd::Attach {
            node,
            vif_id,
            port_uuid,
            vif_info,
        }) => {
            let mut body = Value::Object(kv(&vif_info, false)?);
            body["id"] = json!(vif_id);
            if let Some(p) = port_uuid {
                body["port_uuid"] = json!(p);
            }
            c.call(M::POST, &format!("/v1/nodes/{node}/vifs"), Some(body))
                .await?;
        }
        NodeCmd::Vif(VifCmd::Detach { node, vif_id }) => {
            c.call(M::DELETE, &format!("/v1/nodes/{node}/vifs/{vif_id}"), None)
                .await?;
        }
    }
    Ok(())
}

async fn verb(c: &Client, v: Verb, target: &str) -> Res<()> {
    let mut body = json!({"target": target});
    if v.confirm_destructive {
        body["confirm_destructive"] = json!(true);
    }
    c.call(
        reqwest::Method::PUT,
        &format!("/v1/nodes/{}/states/provision", v.node),
        Some(body),
    )
    .await?;
    if let Some(limit) = v.wait {
        c.wait(&v.node, target, Some(limit)).await?;
    }
    Ok(())
}
