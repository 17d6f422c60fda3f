//! The native client: `rackboot node …` and `rackboot port …`, for hosts
//! without Python. Same verbs and flags as `baremetal` where they overlap;
//! tables by default, `--json` for scripts. Credentials come from the
//! environment (`OS_AUTH_TYPE=http_basic`, `OS_USERNAME`, `OS_PASSWORD`),
//! never from the command line.

pub mod bmc;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

use crate::model::states::{expected_end_state, State};

#[derive(Args)]
pub struct Conn {
    /// API endpoint (default http://127.0.0.1:6385).
    #[arg(long = "os-endpoint", env = "OS_ENDPOINT", global = true)]
    endpoint: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Args)]
pub struct NodeArgs {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    cmd: NodeCmd,
}

#[derive(Args)]
pub struct PortArgs {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    cmd: PortCmd,
}

// Parsed once per process; the size difference does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Cmd {
    Node(NodeArgs),
    Port(PortArgs),
}

#[derive(Args, Default)]
struct Fields {
    /// driver_info key=value (repeatable; values parsed as JSON when they are JSON).
    #[arg(long = "driver-info", value_name = "KEY=VALUE")]
    driver_info: Vec<String>,
    /// driver_info KEY=VALUE lines read from FILE ('#' comments allowed): keeps
    /// BMC passwords out of the process arguments.
    #[arg(long = "driver-info-file", value_name = "FILE")]
    driver_info_file: Option<std::path::PathBuf>,
    /// instance_info key=value (repeatable).
    #[arg(long = "instance-info", value_name = "KEY=VALUE")]
    instance_info: Vec<String>,
    /// properties key=value (repeatable).
    #[arg(long = "property", value_name = "KEY=VALUE")]
    property: Vec<String>,
    /// extra key=value (repeatable).
    #[arg(long = "extra", value_name = "KEY=VALUE")]
    extra: Vec<String>,
    #[arg(long = "boot-interface")]
    boot_interface: Option<String>,
    #[arg(long = "deploy-interface")]
    deploy_interface: Option<String>,
    #[arg(long = "power-interface")]
    power_interface: Option<String>,
    #[arg(long = "management-interface")]
    management_interface: Option<String>,
    #[arg(long = "network-interface")]
    network_interface: Option<String>,
    #[arg(long = "resource-class")]
    resource_class: Option<String>,
    #[arg(long)]
    description: Option<String>,
}

#[derive(Subcommand)]
enum NodeCmd {
    /// Enroll a node.
    Create {
        #[arg(long)]
        driver: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        uuid: Option<String>,
        #[command(flatten)]
        fields: Fields,
    },
    /// List nodes.
    List {
        #[arg(long = "provision-state")]
        provision_state: Option<String>,
        #[arg(long)]
        driver: Option<String>,
        /// Show every field.
        #[arg(long)]
        long: bool,
    },
    /// Show one node.
    Show { node: String },
    /// Set node fields.
    Set {
        node: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        driver: Option<String>,
        #[arg(long = "instance-uuid")]
        instance_uuid: Option<String>,
        #[arg(long = "reset-interfaces")]
        reset_interfaces: bool,
        #[command(flatten)]
        fields: Fields,
    },
    /// Remove node fields.
    Unset {
        node: String,
        #[arg(long = "driver-info", value_name = "KEY")]
        driver_info: Vec<String>,
        #[arg(long = "instance-info", value_name = "KEY")]
        instance_info: Vec<String>,
        #[arg(long = "property", value_name = "KEY")]
        property: Vec<String>,
        #[arg(long = "extra", value_name = "KEY")]
        extra: Vec<String>,
        #[arg(long = "instance-uuid")]
        instance_uuid: bool,
        #[arg(long)]
        name: bool,
    },
    /// enroll → manageable (validates power, records the first power state).
    Manage(Verb),
    /// manageable → active without touching the machine.
    Adopt(Verb),
    /// manageable → available.
    Provide(Verb),
    /// available → active.
    Deploy(Verb),
    /// active → available.
    Undeploy(Verb),
    /// Re-deploy an active node.
    Rebuild(Verb),
    /// Abort a waiting operation.
    Abort { node: String },
    /// Delete nodes (no cleaning, no power action).
    Delete { nodes: Vec<String> },
    /// Power control.
    Power {
        #[arg(value_parser = ["on", "off", "reboot"])]
        action: String,
        node: String,
        #[arg(long)]
        soft: bool,
    },
    /// Validate every interface of a node.
    Validate { node: String },
    /// The node's timeline: every state change, BMC call, and DHCP, TFTP
    /// and HTTP boot event, in order ("why didn't it boot?").
    #[command(alias = "timeline")]
    History { node: String },
}

#[derive(Args)]
struct Verb {
    node: String,
    /// Wait for the end state (optionally at most SECONDS).
    #[arg(long, num_args = 0..=1, default_missing_value = "0", value_name = "SECONDS")]
    wait: Option<u64>,
    /// Consent to a destructive action on an adopted node.
    #[arg(long = "confirm-destructive")]
    confirm_destructive: bool,
}

#[derive(Subcommand)]
enum PortCmd {
    /// Create a port.
    Create {
        address: String,
        #[arg(long)]
        node: String,
        #[arg(long = "pxe-enabled")]
        pxe_enabled: Option<bool>,
    },
    /// List ports.
    List {
        #[arg(long)]
        node: Option<String>,
        #[arg(long)]
        address: Option<String>,
        #[arg(long)]
        long: bool,
    },
    /// Show a port (by UUID or MAC).
    Show { port: String },
    /// Delete ports.
    Delete { ports: Vec<String> },
}

/// A client error: what went wrong, for the operator.
struct Failure(String);

type Res<T> = Result<T, Failure>;

struct Client {
    http: reqwest::Client,
    base: String,
    auth: Option<(String, String)>,
    json: bool,
}

fn ironic_message(body: &str) -> Option<String> {
    let outer: Value = serde_json::from_str(body).ok()?;
    let inner: Value = serde_json::from_str(outer["error_message"].as_str()?).ok()?;
    inner["faultstring"].as_str().map(str::to_string)
}

impl Client {
    fn new(conn: &Conn) -> Res<Client> {
        let base = conn
            .endpoint
            .clone()
            .unwrap_or_else(|| "http://127.0.0.1:6385".into());
        let base = base
            .trim_end_matches('/')
            .trim_end_matches("/v1")
            .to_string();
        let auth = match std::env::var("OS_AUTH_TYPE").ok().as_deref() {
            None | Some("none") | Some("noauth") => None,
            Some("http_basic") => {
                let user = std::env::var("OS_USERNAME")
                    .map_err(|_| Failure("OS_AUTH_TYPE=http_basic needs OS_USERNAME".into()))?;
                let pass = std::env::var("OS_PASSWORD")
                    .map_err(|_| Failure("OS_AUTH_TYPE=http_basic needs OS_PASSWORD".into()))?;
                Some((user, pass))
            }
            Some(other) => {
                return Err(Failure(format!(
                    "OS_AUTH_TYPE={other} is not supported; use none or http_basic"
                )))
            }
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| Failure(format!("cannot build HTTP client: {e}")))?;
        Ok(Client {
            http,
            base,
            auth,
            json: conn.json,
        })
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Res<Value> {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .header("X-OpenStack-Ironic-API-Version", "1.115")
            .header("Accept", "application/json");
        if let Some((u, p)) = &self.auth {
            req = req.basic_auth(u, Some(p));
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| Failure(format!("cannot reach {}: {e}", self.base)))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            let msg = ironic_message(&text).unwrap_or(text);
            return Err(Failure(format!("{msg} (HTTP {})", status.as_u16())));
        }
        if text.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text)
            .map_err(|e| Failure(format!("unreadable answer from {method} {path}: {e}")))
    }

    async fn get(&self, path: &str) -> Res<Value> {
        self.call(reqwest::Method::GET, path, None).await
    }
}

fn kv(items: &[String], parse_json: bool) -> Res<Map<String, Value>> {
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

fn show_value(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Prints rows as an aligned table.
fn table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = || {
        let parts: Vec<String> = widths.iter().map(|w| "-".repeat(w + 2)).collect();
        println!("+{}+", parts.join("+"));
    };
    let row = |cells: Vec<String>| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!(" {c:<w$} "))
            .collect();
        println!("|{}|", parts.join("|"));
    };
    line();
    row(headers.iter().map(|h| h.to_string()).collect());
    line();
    for r in rows {
        row(r.clone());
    }
    line();
}

impl Client {
    fn print_object(&self, v: &Value) {
        if self.json {
            println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
            return;
        }
        let rows: Vec<Vec<String>> = v
            .as_object()
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| {
                        !matches!(
                            k.as_str(),
                            "links" | "ports" | "states" | "portgroups" | "volume"
                        )
                    })
                    .map(|(k, v)| vec![k.clone(), show_value(v)])
                    .collect()
            })
            .unwrap_or_default();
        table(&["Field", "Value"], &rows);
    }

    fn print_list(&self, items: &[Value], columns: &[(&str, &str)]) {
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&Value::Array(items.to_vec())).unwrap_or_default()
            );
            return;
        }
        let headers: Vec<&str> = columns.iter().map(|(h, _)| *h).collect();
        let rows: Vec<Vec<String>> = items
            .iter()
            .map(|i| columns.iter().map(|(_, k)| show_value(&i[*k])).collect())
            .collect();
        table(&headers, &rows);
    }

    /// Follows `next` links to collect a whole listing.
    async fn list_all(&self, path: &str, key: &str) -> Res<Vec<Value>> {
        let mut out = Vec::new();
        let mut next = Some(path.to_string());
        while let Some(p) = next.take() {
            let page = self.get(&p).await?;
            out.extend(page[key].as_array().cloned().unwrap_or_default());
            if let Some(n) = page["next"].as_str() {
                next = n.find("/v1/").map(|i| n[i..].to_string());
            }
        }
        Ok(out)
    }

    async fn wait(&self, node: &str, target: &str, limit: Option<u64>) -> Res<()> {
        let Some(expected) = expected_end_state(target) else {
            return Ok(());
        };
        let deadline = limit
            .filter(|s| *s > 0)
            .map(|s| Instant::now() + Duration::from_secs(s));
        eprintln!("Waiting for provision state {expected} on node(s) {node}");
        loop {
            let n = self.get(&format!("/v1/nodes/{node}")).await?;
            let state = n["provision_state"].as_str().unwrap_or("");
            if state == expected.as_str() {
                return Ok(());
            }
            if state == "error" || state.ends_with(" failed") {
                return Err(Failure(format!(
                    "Node {node} failed to reach state {expected}. It's in state {state}. Error: {}",
                    show_value(&n["last_error"])
                )));
            }
            if n["target_provision_state"].is_null()
                && state.parse::<State>().is_ok_and(|s| s.is_stable())
            {
                return Err(Failure(format!(
                    "Node {node} reached unexpected stable state {state} while waiting for {expected}. Error: {}",
                    show_value(&n["last_error"])
                )));
            }
            if deadline.is_some_and(|d| Instant::now() > d) {
                return Err(Failure(format!(
                    "Node {node} did not reach {expected} within {}s",
                    limit.unwrap_or(0)
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
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

async fn node(c: &Client, cmd: NodeCmd) -> Res<()> {
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
            let h = c.get(&format!("/v1/nodes/{node}/history")).await?;
            let items = h["history"].as_array().cloned().unwrap_or_default();
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

async fn port(c: &Client, cmd: PortCmd) -> Res<()> {
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

/// Runs a client command; errors go to stderr with exit code 1.
pub fn run(cmd: Cmd) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rackboot: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let res = rt.block_on(async {
        match cmd {
            Cmd::Node(a) => {
                let c = Client::new(&a.conn)?;
                node(&c, a.cmd).await
            }
            Cmd::Port(a) => {
                let c = Client::new(&a.conn)?;
                port(&c, a.cmd).await
            }
        }
    });
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(msg)) => {
            eprintln!("{msg}");
            ExitCode::FAILURE
        }
    }
}
