//! `rackboot enroll FILE`: bulk enrollment from a Bifrost inventory through
//! the API. Each entry is matched to a node (by uuid, else by name) and its
//! ports (by MAC); what is missing is created, what differs is patched, and
//! one line per entry says which. An entry is idempotent: running the same
//! file again changes nothing. A refused entry writes nothing; the others go
//! ahead, a few API calls at a time.

use futures_util::stream::{self, StreamExt};
use serde_json::{json, Map, Value};

use super::args::EnrollArgs;
use super::client::{Client, Failure, Res};
use super::inventory::{self, Entry, Nic, Planned, NODE_MASKED};

/// What was done for one entry.
#[derive(Debug, PartialEq)]
enum Outcome {
    Created { ports: usize },
    Updated { fields: Vec<String> },
    Unchanged,
}

/// One entry's result, for the report.
struct Done {
    key: String,
    line: Option<usize>,
    uuid: Option<String>,
    result: Result<Outcome, String>,
}

/// A path segment made safe for a URL (node names are usually plain already).
fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A port found for a MAC: its UUID, node and shown fields.
struct FoundPort {
    uuid: String,
    node_uuid: String,
    shown: Value,
}

async fn find_port(c: &Client, nic: &Nic) -> Res<Option<FoundPort>> {
    let list = c
        .get(&format!("/v1/ports/detail?address={}", nic.mac))
        .await?;
    Ok(list["ports"].as_array().and_then(|ports| {
        ports.first().map(|p| FoundPort {
            uuid: p["uuid"].as_str().unwrap_or_default().to_string(),
            node_uuid: p["node_uuid"].as_str().unwrap_or_default().to_string(),
            shown: p.clone(),
        })
    }))
}

/// Brings one node and its ports to what the entry asks. Reads come first:
/// an entry that cannot be applied (a MAC on another node) writes nothing.
async fn apply(
    c: &Client,
    plan: &Planned,
    update_secrets: bool,
) -> (Option<String>, Result<Outcome, String>) {
    use reqwest::Method as M;
    let ident = plan.uuid.as_deref().unwrap_or(&plan.name);
    let existing = match c.find(&format!("/v1/nodes/{}", segment(ident))).await {
        Ok(n) => n,
        Err(Failure(e)) => return (plan.uuid.clone(), Err(e)),
    };
    let mut uuid = existing
        .as_ref()
        .and_then(|n| n["uuid"].as_str().map(str::to_string))
        .or_else(|| plan.uuid.clone());
    let mut ports = Vec::with_capacity(plan.nics.len());
    for nic in &plan.nics {
        match find_port(c, nic).await {
            Ok(Some(p)) if uuid.as_deref() != Some(p.node_uuid.as_str()) || existing.is_none() => {
                return (
                    uuid,
                    Err(format!(
                        "MAC {} is already a port of node {}",
                        nic.mac, p.node_uuid
                    )),
                );
            }
            Ok(found) => ports.push(found),
            Err(Failure(e)) => return (uuid, Err(e)),
        }
    }

    let mut fields = Vec::new();
    let created = match &existing {
        None => match c
            .call(
                M::POST,
                "/v1/nodes",
                Some(Value::Object(plan.fields.clone())),
            )
            .await
        {
            Ok(n) => {
                uuid = n["uuid"].as_str().map(str::to_string);
                true
            }
            Err(Failure(e)) => return (uuid, Err(e)),
        },
        Some(shown) => {
            let d = inventory::diff(shown, &plan.fields, NODE_MASKED, update_secrets);
            if !d.ops.is_empty() {
                let path = format!("/v1/nodes/{}", uuid.as_deref().unwrap_or_default());
                if let Err(Failure(e)) = c.call(M::PATCH, &path, Some(Value::Array(d.ops))).await {
                    return (uuid, Err(e));
                }
                fields = d.fields;
            }
            false
        }
    };
    let Some(node_uuid) = uuid.clone() else {
        return (None, Err("the API answered without a node UUID".into()));
    };

    let (mut made, mut patched) = (0, 0);
    for (nic, found) in plan.nics.iter().zip(ports) {
        let step = match found {
            None => {
                let mut body = nic.fields.clone();
                body.insert("address".into(), json!(nic.mac.to_string()));
                body.insert("node_uuid".into(), json!(node_uuid));
                made += 1;
                c.call(M::POST, "/v1/ports", Some(Value::Object(body)))
                    .await
            }
            Some(p) => {
                let d = inventory::diff(&p.shown, &nic.fields, &[], update_secrets);
                if d.ops.is_empty() {
                    continue;
                }
                patched += 1;
                c.call(
                    M::PATCH,
                    &format!("/v1/ports/{}", p.uuid),
                    Some(Value::Array(d.ops)),
                )
                .await
            }
        };
        if let Err(Failure(e)) = step {
            let done = if created {
                "created the node, but "
            } else {
                ""
            };
            return (uuid, Err(format!("{done}port {}: {e}", nic.mac)));
        }
    }
    let outcome = if created {
        Outcome::Created { ports: made }
    } else {
        if made + patched > 0 {
            fields.push("ports".into());
        }
        if fields.is_empty() {
            Outcome::Unchanged
        } else {
            Outcome::Updated { fields }
        }
    };
    (uuid, Ok(outcome))
}

async fn run_entry(c: &Client, e: Entry, update_secrets: bool) -> Done {
    let (uuid, result) = match &e.checked {
        Err(refusal) => (None, Err(refusal.to_string())),
        Ok(plan) => apply(c, plan, update_secrets).await,
    };
    Done {
        key: e.key,
        line: e.line,
        uuid,
        result,
    }
}

fn where_(d: &Done) -> String {
    match d.line {
        Some(l) => format!("{} (line {l})", d.key),
        None => d.key.clone(),
    }
}

fn print_line(d: &Done) {
    let id = d.uuid.as_deref().unwrap_or("-");
    match &d.result {
        Ok(Outcome::Created { ports }) => {
            let s = if *ports == 1 { "" } else { "s" };
            println!("created node {} ({id}) with {ports} port{s}", d.key);
        }
        Ok(Outcome::Updated { fields }) => {
            println!("updated node {} ({id}): {}", d.key, fields.join(", "))
        }
        Ok(Outcome::Unchanged) => println!("unchanged node {} ({id})", d.key),
        Err(e) => eprintln!("failed node {}: {e}", where_(d)),
    }
}

fn json_line(d: &Done) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(d.key));
    m.insert("line".into(), json!(d.line));
    m.insert("uuid".into(), json!(d.uuid));
    let (action, extra) = match &d.result {
        Ok(Outcome::Created { ports }) => ("created", json!({"ports_created": ports})),
        Ok(Outcome::Updated { fields }) => ("updated", json!({"fields": fields})),
        Ok(Outcome::Unchanged) => ("unchanged", json!({})),
        Err(e) => ("failed", json!({"error": e})),
    };
    m.insert("action".into(), json!(action));
    if let Value::Object(x) = extra {
        m.extend(x);
    }
    Value::Object(m)
}

pub(super) async fn enroll(c: &Client, a: EnrollArgs) -> Res<()> {
    let path = &a.file;
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| Failure(format!("cannot read {shown}: {e}")))?;
    if meta.len() > inventory::MAX_FILE_BYTES {
        return Err(Failure(format!(
            "{shown} is {} bytes; inventories of at most {} bytes are read",
            meta.len(),
            inventory::MAX_FILE_BYTES
        )));
    }
    let text =
        std::fs::read_to_string(path).map_err(|e| Failure(format!("cannot read {shown}: {e}")))?;
    let format = inventory::Format::detect(path, &text);
    let inv = inventory::parse(&text, format)
        .map_err(|e| Failure(format!("{shown}: {e}; nothing was enrolled")))?;
    if !inv.ignored.is_empty() && !c.json {
        let keys: Vec<&str> = inv.ignored.iter().map(String::as_str).collect();
        eprintln!(
            "{shown}: ignoring keys that are not node or port fields (Bifrost and Ansible settings): {}",
            keys.join(", ")
        );
    }

    let update_secrets = a.update_secrets;
    let mut results = stream::iter(inv.entries)
        .map(|e| run_entry(c, e, update_secrets))
        .buffered(usize::from(a.parallel));
    let (mut created, mut updated, mut unchanged, mut failed) = (0, 0, 0, 0);
    let mut report = Vec::new();
    while let Some(d) = results.next().await {
        match &d.result {
            Ok(Outcome::Created { .. }) => created += 1,
            Ok(Outcome::Updated { .. }) => updated += 1,
            Ok(Outcome::Unchanged) => unchanged += 1,
            Err(_) => failed += 1,
        }
        if c.json {
            report.push(json_line(&d));
        } else {
            print_line(&d);
        }
    }
    if c.json {
        let doc = json!({
            "nodes": report,
            "ignored_keys": inv.ignored,
            "created": created,
            "updated": updated,
            "unchanged": unchanged,
            "failed": failed,
        });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    } else {
        println!("created {created}, updated {updated}, unchanged {unchanged}, failed {failed}");
    }
    if failed > 0 {
        return Err(Failure(format!(
            "{failed} of {} entries of {shown} failed",
            created + updated + unchanged + failed
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_escaped() {
        assert_eq!(segment("node-1.rack_a~"), "node-1.rack_a~");
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
    }
}
