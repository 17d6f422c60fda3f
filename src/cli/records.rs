//! The `rackboot allocation …` and `rackboot chassis …` verbs, with the
//! flags of `baremetal allocation …` and `baremetal chassis …`.

use std::time::{Duration, Instant};

use reqwest::Method as M;
use serde_json::{json, Value};

use super::args::{AllocationCmd, ChassisCmd};
use super::client::{Client, Failure, Res};
use super::node::kv;

/// JSON-patch operations setting `fields` and `extra/KEY` items.
fn set_ops(fields: &[(&str, &Option<String>)], extra: &[String]) -> Res<Vec<Value>> {
    let mut ops = Vec::new();
    for (field, v) in fields {
        if let Some(v) = v {
            ops.push(json!({"op": "add", "path": format!("/{field}"), "value": v}));
        }
    }
    for (k, v) in kv(extra, true)? {
        ops.push(json!({"op": "add", "path": format!("/extra/{k}"), "value": v}));
    }
    Ok(ops)
}

/// JSON-patch operations removing `fields` and `extra/KEY` items.
fn unset_ops(fields: &[(&str, bool)], extra: &[String]) -> Vec<Value> {
    let mut ops: Vec<Value> = fields
        .iter()
        .filter(|(_, on)| *on)
        .map(|(f, _)| json!({"op": "remove", "path": format!("/{f}")}))
        .collect();
    ops.extend(
        extra
            .iter()
            .map(|k| json!({"op": "remove", "path": format!("/extra/{k}")})),
    );
    ops
}

async fn patch(c: &Client, path: &str, ops: Vec<Value>) -> Res<()> {
    if ops.is_empty() {
        return Err(Failure("nothing to change: give at least one flag".into()));
    }
    c.call(M::PATCH, path, Some(Value::Array(ops))).await?;
    Ok(())
}

/// Waits until an allocation leaves `allocating` (polling, as `baremetal
/// allocation create --wait`).
async fn wait_allocation(c: &Client, uuid: &str, limit: u64) -> Res<Value> {
    let deadline = (limit > 0).then(|| Instant::now() + Duration::from_secs(limit));
    loop {
        let a = c.get(&format!("/v1/allocations/{uuid}")).await?;
        match a["state"].as_str() {
            Some("active") => return Ok(a),
            Some("error") => {
                return Err(Failure(format!(
                    "Allocation {uuid} failed: {}",
                    a["last_error"].as_str().unwrap_or("unknown error")
                )))
            }
            _ => {}
        }
        if deadline.is_some_and(|d| Instant::now() > d) {
            return Err(Failure(format!(
                "Allocation {uuid} is still allocating after {limit}s"
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub(super) async fn allocation(c: &Client, cmd: AllocationCmd) -> Res<()> {
    match cmd {
        AllocationCmd::Create {
            resource_class,
            traits,
            candidate_nodes,
            name,
            uuid,
            owner,
            extra,
            wait,
            node,
        } => {
            let mut body = json!({});
            for (k, v) in [
                ("resource_class", resource_class),
                ("name", name),
                ("uuid", uuid),
                ("owner", owner),
                ("node", node),
            ] {
                if let Some(v) = v {
                    body[k] = json!(v);
                }
            }
            if !traits.is_empty() {
                body["traits"] = json!(traits);
            }
            if !candidate_nodes.is_empty() {
                body["candidate_nodes"] = json!(candidate_nodes);
            }
            if !extra.is_empty() {
                body["extra"] = Value::Object(kv(&extra, true)?);
            }
            let mut a = c.call(M::POST, "/v1/allocations", Some(body)).await?;
            if let Some(limit) = wait {
                let uuid = a["uuid"].as_str().unwrap_or_default().to_string();
                a = wait_allocation(c, &uuid, limit).await?;
            }
            c.print_object(&a);
        }
        AllocationCmd::List {
            node,
            resource_class,
            state,
            owner,
            long,
        } => {
            let q: Vec<String> = [
                ("node", node),
                ("resource_class", resource_class),
                ("state", state),
                ("owner", owner),
            ]
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| format!("{k}={v}")))
            .collect();
            let list = c
                .list_all(&format!("/v1/allocations?{}", q.join("&")), "allocations")
                .await?;
            let mut cols = vec![
                ("UUID", "uuid"),
                ("Name", "name"),
                ("Resource Class", "resource_class"),
                ("State", "state"),
                ("Node UUID", "node_uuid"),
            ];
            if long {
                cols.extend([
                    ("Traits", "traits"),
                    ("Candidate Nodes", "candidate_nodes"),
                    ("Owner", "owner"),
                    ("Last Error", "last_error"),
                    ("Extra", "extra"),
                ]);
            }
            c.print_list(&list, &cols);
        }
        AllocationCmd::Show { allocation } => {
            let a = c.get(&format!("/v1/allocations/{allocation}")).await?;
            c.print_object(&a);
        }
        AllocationCmd::Set {
            allocation,
            name,
            extra,
        } => {
            let ops = set_ops(&[("name", &name)], &extra)?;
            patch(c, &format!("/v1/allocations/{allocation}"), ops).await?;
        }
        AllocationCmd::Unset {
            allocation,
            name,
            extra,
        } => {
            let ops = unset_ops(&[("name", name)], &extra);
            patch(c, &format!("/v1/allocations/{allocation}"), ops).await?;
        }
        AllocationCmd::Delete { allocations } => {
            for a in allocations {
                c.call(M::DELETE, &format!("/v1/allocations/{a}"), None)
                    .await?;
                eprintln!("Deleted allocation {a}");
            }
        }
    }
    Ok(())
}

pub(super) async fn chassis(c: &Client, cmd: ChassisCmd) -> Res<()> {
    match cmd {
        ChassisCmd::Create {
            description,
            extra,
            uuid,
        } => {
            let mut body = json!({});
            if let Some(d) = description {
                body["description"] = json!(d);
            }
            if let Some(u) = uuid {
                body["uuid"] = json!(u);
            }
            if !extra.is_empty() {
                body["extra"] = Value::Object(kv(&extra, true)?);
            }
            let ch = c.call(M::POST, "/v1/chassis", Some(body)).await?;
            c.print_object(&ch);
        }
        ChassisCmd::List { long } => {
            let path = if long {
                "/v1/chassis/detail"
            } else {
                "/v1/chassis"
            };
            let list = c.list_all(path, "chassis").await?;
            let mut cols = vec![("UUID", "uuid"), ("Description", "description")];
            if long {
                cols.extend([
                    ("Extra", "extra"),
                    ("Created At", "created_at"),
                    ("Updated At", "updated_at"),
                ]);
            }
            c.print_list(&list, &cols);
        }
        ChassisCmd::Show { chassis } => {
            let ch = c.get(&format!("/v1/chassis/{chassis}")).await?;
            c.print_object(&ch);
        }
        ChassisCmd::Set {
            chassis,
            description,
            extra,
        } => {
            let ops = set_ops(&[("description", &description)], &extra)?;
            patch(c, &format!("/v1/chassis/{chassis}"), ops).await?;
        }
        ChassisCmd::Unset {
            chassis,
            description,
            extra,
        } => {
            let ops = unset_ops(&[("description", description)], &extra);
            patch(c, &format!("/v1/chassis/{chassis}"), ops).await?;
        }
        ChassisCmd::Delete { chassis } => {
            for ch in chassis {
                c.call(M::DELETE, &format!("/v1/chassis/{ch}"), None)
                    .await?;
                eprintln!("Deleted chassis {ch}");
            }
        }
    }
    Ok(())
}
