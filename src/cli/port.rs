//! The `rackboot port …` verbs: create (resolving a node name to its UUID),
//! list, show and delete ports through the API.

use serde_json::json;

use super::args::PortCmd;
use super::client::{Client, Res};

pub(super) async fn port(c: &Client, cmd: PortCmd) -> Res<()> {
    use reqwest::Method as M;
    match cmd {
        PortCmd::Create {
            address,
            node,
            pxe_enabled,
        } => {
            let node_uuid = if node.parse::<uuid::Uuid>().is_ok() {
                node
            } else {
                c.get(&format!("/v1/nodes/{node}")).await?["uuid"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            };
            let mut body = json!({"address": address, "node_uuid": node_uuid});
            if let Some(p) = pxe_enabled {
                body["pxe_enabled"] = json!(p);
            }
            let p = c.call(M::POST, "/v1/ports", Some(body)).await?;
            c.print_object(&p);
        }
        PortCmd::List {
            node,
            address,
            long,
        } => {
            let mut q = Vec::new();
            if let Some(n) = node {
                q.push(format!("node={n}"));
            }
            if let Some(a) = address {
                q.push(format!("address={a}"));
            }
            let path = format!(
                "/v1/ports{}?{}",
                if long { "/detail" } else { "" },
                q.join("&")
            );
            let ports = c.list_all(&path, "ports").await?;
            let mut cols = vec![("UUID", "uuid"), ("Address", "address")];
            if long {
                cols.extend([
                    ("Node UUID", "node_uuid"),
                    ("PXE boot enabled", "pxe_enabled"),
                ]);
            }
            c.print_list(&ports, &cols);
        }
        PortCmd::Show { port } => {
            let p = c.get(&format!("/v1/ports/{port}")).await?;
            c.print_object(&p);
        }
        PortCmd::Delete { ports } => {
            for p in ports {
                let uuid = c.get(&format!("/v1/ports/{p}")).await?["uuid"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                c.call(M::DELETE, &format!("/v1/ports/{uuid}"), None)
                    .await?;
                eprintln!("Deleted port {p}");
            }
        }
    }
    Ok(())
}
