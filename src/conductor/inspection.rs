//! In-band inspection (Ironic's `agent` inspect interface) and discovery:
//! the node boots the agent ramdisk (inspecting -> inspect wait), the agent
//! posts what it found (`/v1/continue_inspection`), the hooks and the
//! inspection rules turn that into properties and ports, the node is
//! powered off and returned to manageable. Unknown machines that post data
//! while discovery is on are enrolled from it.

use serde_json::{json, Map};

use super::*;
use crate::inspection::{self, Data, PortChange};
use crate::model::NodeInventory;

/// `driver_internal_info` key: the BMC addresses of a node being inspected,
/// so its data can be matched by the BMC address the agent reports.
pub const LOOKUP_BMC_ADDRESSES: &str = "lookup_bmc_addresses";

/// Ironic's `last_error` for an inspection that timed out.
pub const INSPECT_TIMEOUT: &str = "Timeout reached while inspecting the node. Please check if the ramdisk responsible for the inspection is running on the node.";

/// Ironic's `last_error` for an aborted inspection.
pub const INSPECT_ABORTED: &str = "Inspection was aborted by request.";

/// Which node inspection data is about.
#[derive(Debug, Clone, PartialEq)]
pub enum InspectionTarget {
    /// A node waiting for it (in `inspect wait`).
    Node(Uuid),
    /// Nobody: discovery may enroll it.
    Unknown,
    /// Ambiguous, or a node that is not waiting: refused (Ironic answers
    /// 404 to all of these alike). The reason is for the log.
    Refused(String),
}

/// The BMC addresses in a node's driver_info: every `*_address` value (the
/// host of a URL), as Ironic caches them for the lookup by BMC.
pub fn bmc_addresses_of(node: &Node) -> Vec<String> {
    let mut out: Vec<String> = node
        .driver_info
        .iter()
        .filter(|(k, _)| k.ends_with("_address"))
        .filter_map(|(_, v)| v.as_str())
        .map(|v| {
            reqwest::Url::parse(v)
                .ok()
                .and_then(|u| u.host_str().map(str::to_string))
                .unwrap_or_else(|| v.to_string())
        })
        .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_string())
        .filter(|h| !h.is_empty())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Decides which node posted data is about, from the nodes owning its MACs
/// and the nodes in `inspect wait` with one of its BMC addresses.
pub fn decide_target(
    mac_owners: &[(Uuid, State)],
    bmc_matches: &[Uuid],
    has_bmc: bool,
) -> InspectionTarget {
    let mut owners: Vec<(Uuid, State)> = mac_owners.to_vec();
    owners.sort_by_key(|(u, _)| *u);
    owners.dedup();
    match owners.as_slice() {
        [] => {}
        [(u, State::InspectWait)] => {
            if has_bmc && !bmc_matches.is_empty() && !bmc_matches.contains(u) {
                return InspectionTarget::Refused(format!(
                    "its MACs belong to node {u} but its BMC address to another node"
                ));
            }
            return InspectionTarget::Node(*u);
        }
        [(u, s)] => {
            return InspectionTarget::Refused(format!(
                "its MACs belong to node {u}, which is {s}, not inspect wait"
            ))
        }
        many => {
            return InspectionTarget::Refused(format!("its MACs belong to {} nodes", many.len()))
        }
    }
    match bmc_matches {
        [] => InspectionTarget::Unknown,
        [u] => InspectionTarget::Node(*u),
        many => InspectionTarget::Refused(format!(
            "its BMC address matches {} nodes in inspect wait",
            many.len()
        )),
    }
}

/// One line about posted data, for the node's history.
pub fn summary(inv: &Value) -> String {
    let nics = inv
        .get("interfaces")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let disks = inv
        .get("disks")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let cpus = inv
        .pointer("/cpu/count")
        .map(|v| v.to_string())
        .unwrap_or_else(|| "?".into());
    let mem = inv
        .pointer("/memory/physical_mb")
        .map(|v| v.to_string())
        .unwrap_or_else(|| "?".into());
    format!("{cpus} CPUs, {mem} MiB, {disks} disks, {nics} NICs")
}

/// Forgets what only an inspection in progress needs: the BMC addresses it
/// is matched by, the agent of its boot, its deadline.
fn forget_inspection(node: &mut Node) {
    node.driver_internal_info.remove(LOOKUP_BMC_ADDRESSES);
    node.wipe_agent();
    node.set_callback_deadline(None);
}

/// The driver_info key a hardware type keeps its BMC address in.
fn bmc_key(driver: &str) -> Option<&'static str> {
    match driver {
        "ipmi" | "ipmitool" => Some("ipmi_address"),
        "redfish" | "idrac" | "idrac-redfish" => Some("redfish_address"),
        _ => None,
    }
}

impl Conductor {
    /// The inspect workflow: boots the agent ramdisk for inspection;
    /// inspecting -> inspect wait.
    pub(super) async fn inspect(
        &self,
        task: &mut Task,
        b: &Bundle,
    ) -> std::result::Result<Option<Event>, String> {
        let uuid = task.node.uuid;
        b.power.validate(&task.node).map_err(|e| {
            format!("Failed to validate power driver interface for node {uuid}: {e}")
        })?;
        if task.node.interfaces.inspect == "no-inspect" {
            // Ironic accepts the request and fails it in the worker.
            return Err(format!(
                "Driver {} does not support inspect (disabled or not implemented).",
                task.node.driver
            ));
        }
        if task.node.interfaces.inspect == "fake" {
            // Ironic's fake inspect interface: done at once, nothing learnt.
            task.node.inspection_started_at = Some(now());
            task.node.inspection_finished_at = Some(now());
            task.record(
                Severity::Info,
                "inspection",
                "fake inspection: nothing to learn",
            );
            return Ok(None);
        }
        // A new boot of the ramdisk gets a new token.
        task.node.wipe_agent();
        let bmcs = bmc_addresses_of(&task.node);
        task.node
            .driver_internal_info
            .insert(LOOKUP_BMC_ADDRESSES.into(), json!(bmcs));
        task.node.inspection_started_at = Some(now());
        task.node.inspection_finished_at = None;
        let how = b
            .boot
            .prepare_ramdisk(task, b)
            .await
            .map_err(|e| format!("Failed to prepare node {uuid} for inspection: {e}"))?;
        let timeout = self.inner.settings.inspect_wait_timeout;
        let wait = if timeout.is_zero() {
            task.node.set_callback_deadline(None);
            "no time limit".to_string()
        } else {
            let deadline = self.unix_now() + timeout.as_secs() as i64;
            task.node.set_callback_deadline(Some(deadline));
            format!("up to {} s", timeout.as_secs())
        };
        task.record(
            Severity::Info,
            "inspection",
            format!("inspection: booting the agent ramdisk ({how}); waiting {wait} for its data"),
        );
        Ok(Some(Event::Wait))
    }

    /// Which node posted inspection data is about.
    async fn inspection_target(&self, inv: &Value) -> Result<InspectionTarget> {
        let macs = inspection::inventory_macs(inv);
        let bmcs = inspection::bmc_addresses(inv);
        Ok(self
            .store()
            .call(move |s| {
                let mut owners = Vec::new();
                for m in &macs {
                    match s.get_port(&m.to_string()) {
                        Ok(p) => {
                            let n = s.get_node(&p.node_uuid.to_string())?;
                            owners.push((n.uuid, n.provision_state));
                        }
                        Err(store::Error::PortNotFound(_)) => {}
                        Err(e) => return Err(e),
                    }
                }
                let mut by_bmc = Vec::new();
                if !bmcs.is_empty() {
                    for n in s.nodes_in_states(&[State::InspectWait])? {
                        let known = n
                            .driver_internal_info
                            .get(LOOKUP_BMC_ADDRESSES)
                            .and_then(Value::as_array)
                            .cloned()
                            .unwrap_or_default();
                        if known
                            .iter()
                            .filter_map(Value::as_str)
                            .any(|a| bmcs.iter().any(|b| b == a))
                        {
                            by_bmc.push(n.uuid);
                        }
                    }
                }
                Ok::<_, store::Error>(decide_target(&owners, &by_bmc, !bmcs.is_empty()))
            })
            .await?)
    }

    /// Inspection data posted by the agent (`/v1/continue_inspection`).
    /// Ok(node) once the data is taken (its processing goes on in a worker);
    /// Ok(None) when no node takes it (Ironic's generic 404).
    pub async fn continue_inspection(&self, data: Data, from: &str) -> Result<Option<Uuid>> {
        match self.inspection_target(&data.inventory).await? {
            InspectionTarget::Node(uuid) => self.resume_inspection(uuid, data, from).await,
            InspectionTarget::Unknown if self.inner.settings.discovery.is_some() => {
                self.discover(data, from).await
            }
            InspectionTarget::Unknown => {
                tracing::info!(%from, macs = ?inspection::inventory_macs(&data.inventory), "inspection data from an unknown machine ignored (discovery is off)");
                Ok(None)
            }
            InspectionTarget::Refused(why) => {
                tracing::warn!(%from, "inspection data refused: {why}");
                Ok(None)
            }
        }
    }

    /// inspect wait -> inspecting, the data kept, the processing launched.
    async fn resume_inspection(&self, uuid: Uuid, data: Data, from: &str) -> Result<Option<Uuid>> {
        let (lock, mut node) = self.lock(uuid, &uuid.to_string()).await?;
        let from_state = node.provision_state;
        let Some(to) =
            states::next(from_state, Event::Resume).filter(|_| from_state == State::InspectWait)
        else {
            tracing::warn!(node = %uuid, state = %from_state, "inspection data for a node no longer waiting for it");
            return Ok(None);
        };
        let ticket = self.worker_ticket()?;
        let record = NodeInventory {
            node_uuid: uuid,
            inventory: data.inventory,
            plugin_data: data.plugin_data,
            created_at: now(),
        };
        let text = format!(
            "inspection data received from {from}: {}",
            summary(&record.inventory)
        );
        self.store().call(move |s| s.put_record(&record)).await?;
        node.enter(to);
        node.updated_at = Some(now());
        node.driver_internal_info.insert(
            internal::AGENT_LAST_HEARTBEAT.into(),
            Value::from(self.unix_now()),
        );
        let lookup = HistoryEntry::new(
            Severity::Info,
            "agent",
            format!("lookup: inspection data from {from} matched this node"),
        );
        let h = HistoryEntry::new(Severity::Info, "inspection", text);
        self.launch_noting(ticket, lock, node, vec![lookup, h], Job::ProcessInspection)
            .await?;
        Ok(Some(uuid))
    }

    /// The processing workflow: inspecting -> manageable (or inspect failed).
    pub(super) async fn process_inspection(
        &self,
        task: &mut Task,
        b: &Bundle,
    ) -> std::result::Result<Option<Event>, String> {
        let uuid = task.node.uuid;
        let record = self
            .store()
            .call(move |s| s.get_record::<NodeInventory>(&uuid.to_string()))
            .await
            .map_err(|e| format!("Failed to inspect hardware. Reason: the data is gone: {e}"))?;
        let power_off = self.inner.settings.inspection_power_off && !task.node.disable_power_off;
        let done = self
            .apply_inspection(task, record, power_off.then_some(b))
            .await;
        forget_inspection(&mut task.node);
        // The ramdisk's boot is over (virtual media is ejected; PXE has
        // nothing to forget), as Ironic's inspection ends with
        // clean_up_ramdisk.
        if let Err(e) = b.boot.clean_up_ramdisk(task).await {
            task.record(
                Severity::Warning,
                "inspection",
                format!("inspection done, but the ramdisk's boot could not be cleaned up: {e}"),
            );
        }
        if let Err(e) = done {
            // As Ironic's inspection error handler: the boot is torn down
            // and the machine powered off (best effort), then the failure.
            if !task.node.disable_power_off && task.node.power_state != Some(PowerState::Off) {
                match self.power_action(task, b, PowerState::Off).await {
                    Ok(_) => task.record(Severity::Info, "power", "inspection failed: powered off"),
                    Err(p) => task.record(
                        Severity::Warning,
                        "power",
                        format!("inspection failed, and the power-off failed too: {p}"),
                    ),
                }
            }
            return Err(e);
        }
        Ok(None)
    }

    /// Runs the hooks and rules on the data, writes the ports they chose,
    /// powers the node off (`power`), and keeps the processed data.
    async fn apply_inspection(
        &self,
        task: &mut Task,
        record: NodeInventory,
        power: Option<&Bundle>,
    ) -> std::result::Result<(), String> {
        let uuid = task.node.uuid;
        let mut data = Data {
            inventory: record.inventory,
            plugin_data: record.plugin_data,
        };
        let settings = &self.inner.settings.inspection;
        let outcome = inspection::run_hooks(&mut task.node, &task.ports, &mut data, settings)
            .map_err(|e| {
                format!("Failed to inspect hardware. Reason: failed to run inspection hooks: {e}")
            })?;
        for w in &outcome.warnings {
            task.record(Severity::Warning, "inspection", w.clone());
        }
        for n in &outcome.notes {
            task.record(Severity::Info, "inspection", n.clone());
        }
        self.write_port_changes(task, outcome.ports).await;
        if let Some(b) = power {
            self.power_action(task, b, PowerState::Off)
                .await
                .map_err(|e| format!("Inspection clean up failed: {e}"))?;
            task.record(Severity::Info, "power", "inspection done: powered off");
        }
        // Ironic runs the rules once the machine is torn down.
        self.run_rules(task, &mut data).await?;
        data.plugin_data.remove("logs");
        let kept = NodeInventory {
            node_uuid: uuid,
            inventory: data.inventory,
            plugin_data: data.plugin_data,
            created_at: record.created_at,
        };
        self.store()
            .call(move |s| s.put_record(&kept))
            .await
            .map_err(|e| format!("Failed to store the inspection data: {e}"))?;
        task.node.inspection_finished_at = Some(now());
        Ok(())
    }

    /// Runs the stored inspection rules (phase main) on the node, its ports
    /// and the data; writes the ports they changed.
    async fn run_rules(&self, task: &mut Task, data: &mut Data) -> std::result::Result<(), String> {
        let rules = self
            .store()
            .call(|s| {
                s.list_records::<crate::model::InspectionRule>(
                    &store::RecordFilter::default(),
                    store::Page::ALL,
                )
            })
            .await
            .map_err(|e| {
                format!("Failed to finish inspection: cannot read the inspection rules: {e}")
            })?;
        if rules.is_empty() {
            return Ok(());
        }
        let outcome = inspection::rules::apply(
            &rules,
            &mut task.node,
            &mut task.ports,
            data,
            &self.inner.registry,
            inspection::rules::MaskSecrets::default(),
        )
        .map_err(|e| format!("Failed to finish inspection: {e}"))?;
        for n in outcome.notes {
            task.record(n.severity, "inspection", n.text);
        }
        let uuid = task.node.uuid;
        for port in task
            .ports
            .iter()
            .filter(|p| outcome.ports.contains(&p.uuid))
        {
            let p = port.clone();
            let note = HistoryEntry::new(
                Severity::Info,
                "port",
                format!("inspection rules: port {} updated", p.address),
            );
            self.store()
                .call(move |s| s.save_port(&p, &[(uuid, note)]))
                .await
                .map_err(|e| {
                    format!(
                        "Failed to finish inspection: cannot save port {}: {e}",
                        port.address
                    )
                })?;
        }
        Ok(())
    }

    /// Writes the hooks' port changes (each with a history note); a MAC
    /// another node has is skipped with a warning, as Ironic does.
    async fn write_port_changes(&self, task: &mut Task, changes: Vec<PortChange>) {
        let uuid = task.node.uuid;
        for change in changes {
            let (what, port) = match &change {
                PortChange::Create(p) => ("created", p.clone()),
                PortChange::Update(p) => ("updated", p.clone()),
                PortChange::Delete(p) => ("deleted", p.clone()),
            };
            let note = HistoryEntry::new(
                Severity::Info,
                "port",
                format!("inspection: port {} {what}", port.address),
            );
            let p = port.clone();
            let r = self
                .store()
                .call(move |s| match change {
                    PortChange::Create(p) => s.create_port(&p, &[(uuid, note)]),
                    PortChange::Update(p) => s.save_port(&p, &[(uuid, note)]),
                    PortChange::Delete(p) => s.delete_port(p.uuid, &[(uuid, note)]),
                })
                .await;
            match r {
                Ok(()) => match what {
                    "created" => task.ports.push(p),
                    "deleted" => task.ports.retain(|x| x.uuid != p.uuid),
                    _ => {
                        if let Some(x) = task.ports.iter_mut().find(|x| x.uuid == p.uuid) {
                            *x = p;
                        }
                    }
                },
                Err(e) => task.record(
                    Severity::Warning,
                    "inspection",
                    format!("port {} not {what}: {e}", port.address),
                ),
            }
        }
    }

    /// Enrolls an unknown machine from its inspection data: a node in
    /// `enroll` with the discovery driver, its BMC address, its ports and
    /// the data. Discoveries here take turns, and the MACs are looked at
    /// again inside the turn, so two boots of one machine racing make one
    /// node.
    async fn discover(&self, data: Data, from: &str) -> Result<Option<Uuid>> {
        let Some(d) = self.inner.settings.discovery.clone() else {
            return Err(Error::Invalid("discovery is off".into()));
        };
        let _turn = self.inner.discovering.lock().await;
        match self.inspection_target(&data.inventory).await? {
            InspectionTarget::Unknown => {}
            // Meanwhile a node began to wait for this machine's data.
            InspectionTarget::Node(u) => return self.resume_inspection(u, data, from).await,
            InspectionTarget::Refused(why) => {
                // Another boot of this machine won the turn: its node stands.
                let macs = inspection::inventory_macs(&data.inventory);
                let owner = self
                    .store()
                    .call(move |s| {
                        macs.iter()
                            .find_map(|m| s.get_port(&m.to_string()).ok())
                            .map(|p| p.node_uuid)
                    })
                    .await;
                if owner.is_none() {
                    tracing::warn!(%from, "discovery refused: {why}");
                }
                return Ok(owner);
            }
        }
        let interfaces = self.inner.registry.hardware_type(&d.driver)?.defaults();
        let mut node = Node::new(Uuid::new_v4(), &d.driver, interfaces, State::Enroll, now());
        node.resource_class = d.resource_class.clone();
        if let (Some(key), Some(addr)) = (
            bmc_key(&d.driver),
            inspection::bmc_addresses(&data.inventory).first(),
        ) {
            node.driver_info
                .insert(key.into(), Value::String(addr.clone()));
        }
        let node = self.create_node(node, Some("discovery".into())).await?;
        let uuid = node.uuid;
        let (lock, node) = self.lock(uuid, &uuid.to_string()).await?;
        let mut plugin_data: Map<String, Value> = data.plugin_data;
        plugin_data.insert("auto_discovered".into(), Value::Bool(true));
        let record = NodeInventory {
            node_uuid: uuid,
            inventory: data.inventory,
            plugin_data,
            created_at: now(),
        };
        let text = format!(
            "discovered: inspection data from {from} ({}) enrolled this node",
            summary(&record.inventory)
        );
        let mut task = self.task(node).await?;
        task.record(Severity::Info, "inspection", text);
        // A discovered node's BMC credentials are not known yet: no power-off.
        let macs = inspection::inventory_macs(&record.inventory);
        let pxe = inspection::pxe_mac(&record.inventory);
        let outcome = self.apply_inspection(&mut task, record, None).await;
        forget_inspection(&mut task.node);
        if let Err(e) = &outcome {
            task.node.last_error = Some(e.clone());
            task.record(Severity::Error, "inspection", e.clone());
            // The machine is known now, failed data or not: its MACs become
            // ports, so its next boot does not make another node.
            let new: Vec<PortChange> = macs
                .iter()
                .filter(|m| !task.ports.iter().any(|p| p.address == **m))
                .map(|m| {
                    let mut p = crate::model::Port::new(*m, uuid);
                    p.pxe_enabled = pxe.is_none_or(|x| x == *m);
                    PortChange::Create(p)
                })
                .collect();
            self.write_port_changes(&mut task, new).await;
        }
        let records = task.take_records();
        self.save_locked(task.node, records, lock).await?;
        Ok(Some(uuid))
    }

    /// Ends a wait for the ramdisk (inspect wait, clean wait) by abort or
    /// timeout: the failed state, `msg` as last_error, what the ramdisk's
    /// boot needed forgotten, and the node powered off (as Ironic does).
    pub(super) async fn abort_wait(
        &self,
        lock: locking::LockGuard,
        mut node: Node,
        msg: &str,
        user: &Option<String>,
    ) -> Result<()> {
        let from = node.provision_state;
        let Some(to) = states::next(from, Event::Abort).or_else(|| states::next(from, Event::Fail))
        else {
            return Err(Error::InvalidState(format!(
                "internal error: the state table has no way out of {from}"
            )));
        };
        node.enter(to);
        node.last_error = Some(msg.to_string());
        forget_inspection(&mut node);
        super::agent_clean::forget_cleaning(&mut node);
        node.updated_at = Some(now());
        let h = history(
            Severity::Error,
            "provisioning",
            format!("{from} -> {to}: {msg}"),
            user,
        );
        match self.worker_ticket() {
            Ok(ticket) => {
                node.target_power_state = Some(PowerState::Off);
                self.launch(ticket, lock, node, h, Job::Power(PowerState::Off))
                    .await
            }
            Err(e) => {
                tracing::warn!(node = %node.uuid, error = %e, "no worker to power the node off after {from}");
                self.save_locked(node, vec![h], lock).await.map(drop)
            }
        }
    }

    /// The node's stored inspection data (`GET /v1/nodes/{node}/inventory`).
    pub async fn inventory(&self, ident: &str) -> Result<Option<NodeInventory>> {
        let node = self.load(ident).await?;
        let uuid = node.uuid.to_string();
        match self
            .store()
            .call(move |s| s.get_record::<NodeInventory>(&uuid))
            .await
        {
            Ok(r) => Ok(Some(r)),
            Err(store::Error::RecordNotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_node_data_is_about() {
        let a = Uuid::from_u128(1);
        let b = Uuid::from_u128(2);
        use InspectionTarget as T;
        // (MAC owners, BMC matches, BMC reported, want): want is the node,
        // or "unknown" / "refused".
        let w = State::InspectWait;
        type Case = (Vec<(Uuid, State)>, Vec<Uuid>, bool, &'static str);
        let cases: Vec<Case> = vec![
            (vec![], vec![], false, "unknown"),
            (vec![], vec![], true, "unknown"),
            (vec![(a, w)], vec![], false, "a"),
            (vec![(a, w), (a, w)], vec![], false, "a"),
            (vec![(a, State::Manageable)], vec![], false, "refused"),
            (vec![(a, State::Enroll)], vec![], false, "refused"),
            (vec![(a, w), (b, w)], vec![], false, "refused"),
            (vec![], vec![b], true, "b"),
            (vec![], vec![a, b], true, "refused"),
            (vec![(a, w)], vec![b], true, "refused"),
            (vec![(a, w)], vec![a], true, "a"),
        ];
        for (owners, bmc, has_bmc, want) in cases {
            let got = decide_target(&owners, &bmc, has_bmc);
            let name = match &got {
                T::Node(u) if *u == a => "a",
                T::Node(u) if *u == b => "b",
                T::Node(_) => "other",
                T::Unknown => "unknown",
                T::Refused(_) => "refused",
            };
            assert_eq!(name, want, "{owners:?} {bmc:?} -> {got:?}");
        }
    }

    use crate::conductor::tests::{conductor, fake_node, wait_for as wait_state};

    /// An inventory as ironic-python-agent 13 posts it (cut down).
    fn agent_data(pxe: &str, other: &str) -> Data {
        let body = json!({
            "inventory": {
                "interfaces": [
                    {"name": "ens2", "mac_address": pxe, "ipv4_address": "10.0.0.5", "lldp": null},
                    {"name": "ens3", "mac_address": other, "ipv4_address": null, "lldp": null}
                ],
                "cpu": {"count": 2, "architecture": "x86_64", "flags": ["vmx"]},
                "memory": {"total": 2000000000u64, "physical_mb": 2048},
                "disks": [{"name": "/dev/vda", "size": 5368709120u64}],
                "boot": {"current_boot_mode": "bios", "pxe_interface": format!("01-{}", pxe.replace(':', "-"))},
                "bmc_address": null
            },
            "root_disk": {"name": "/dev/vda", "size": 5368709120u64},
            "logs": "H4sIAAAA"
        });
        crate::api::agent::inspection_data(body.to_string().as_bytes()).unwrap()
    }

    /// A fake-hardware node with the agent inspect interface and one port.
    async fn seeded(c: &Conductor, name: &str, mac: &str) -> Node {
        let mut n = fake_node(name, State::Manageable);
        n.interfaces.inspect = "agent".into();
        n.driver_info
            .insert("ipmi_address".into(), json!("192.0.2.9"));
        c.store()
            .create_node(&n, &HistoryEntry::new(Severity::Info, "test", "seeded"))
            .unwrap();
        let port = crate::model::Port::new(mac.parse().unwrap(), n.uuid);
        c.store().create_port(&port, &[]).unwrap();
        n
    }

    #[tokio::test]
    async fn inspection_runs_from_inspect_to_manageable() {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings::default();
        settings.inspection.add_ports = inspection::AddPorts::All;
        let c = conductor(&dir, settings);
        let (pxe, other) = ("52:54:00:00:00:01", "52:54:00:00:00:02");
        let n = seeded(&c, "i1", pxe).await;
        c.provision("i1", "inspect", ProvisionOptions::default())
            .await
            .unwrap();
        let waiting = wait_state(&c, "i1", State::InspectWait).await;
        assert!(waiting.callback_deadline().is_some());
        assert!(waiting.inspection_started_at.is_some());
        assert_eq!(
            waiting.driver_internal_info[LOOKUP_BMC_ADDRESSES],
            json!(["192.0.2.9"])
        );
        let got = c
            .continue_inspection(agent_data(pxe, other), "10.0.0.5")
            .await
            .unwrap();
        assert_eq!(got, Some(n.uuid));
        let done = wait_state(&c, "i1", State::Manageable).await;
        assert_eq!(done.last_error, None);
        assert_eq!(done.properties["cpus"], 2);
        assert_eq!(done.properties["memory_mb"], 2048);
        assert_eq!(done.properties["local_gb"], 4);
        assert_eq!(done.properties["cpu_arch"], "x86_64");
        assert_eq!(
            done.properties["capabilities"],
            "boot_mode:bios,cpu_vt:true"
        );
        assert_eq!(done.power_state, Some(PowerState::Off));
        assert_eq!(done.callback_deadline(), None);
        assert!(done.inspection_finished_at.is_some());
        assert!(!done.driver_internal_info.contains_key(LOOKUP_BMC_ADDRESSES));
        let mut ports: Vec<(String, bool)> = c
            .store()
            .node_ports(n.uuid)
            .unwrap()
            .iter()
            .map(|p| (p.address.to_string(), p.pxe_enabled))
            .collect();
        ports.sort();
        assert_eq!(ports, [(pxe.to_string(), true), (other.to_string(), false)]);
        let inv = c.inventory("i1").await.unwrap().unwrap();
        assert!(!inv.plugin_data.contains_key("logs"), "logs are dropped");
        assert_eq!(inv.plugin_data["local_gb"], 4);
        // Data again, now that nobody waits for it: refused (404).
        assert_eq!(
            c.continue_inspection(agent_data(pxe, other), "10.0.0.5")
                .await
                .unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn inspection_needs_an_inspect_interface_and_fake_learns_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let c = conductor(&dir, Settings::default());
        let mut n = fake_node("none", State::Manageable);
        assert_eq!(
            n.interfaces.inspect, "no-inspect",
            "fake-hardware's default"
        );
        c.store()
            .create_node(&n, &HistoryEntry::new(Severity::Info, "test", "seeded"))
            .unwrap();
        // As Ironic: accepted, then failed by the worker.
        c.provision("none", "inspect", ProvisionOptions::default())
            .await
            .unwrap();
        let failed = wait_state(&c, "none", State::InspectFailed).await;
        assert_eq!(
            failed.last_error.as_deref(),
            Some("Driver fake-hardware does not support inspect (disabled or not implemented).")
        );
        n.uuid = Uuid::new_v4();
        n.name = Some("fake".into());
        n.interfaces.inspect = "fake".into();
        c.store()
            .create_node(&n, &HistoryEntry::new(Severity::Info, "test", "seeded"))
            .unwrap();
        c.provision("fake", "inspect", ProvisionOptions::default())
            .await
            .unwrap();
        let done = wait_state(&c, "fake", State::Manageable).await;
        assert!(done.inspection_finished_at.is_some());
    }

    #[tokio::test]
    async fn a_failing_hook_fails_the_inspection() {
        let dir = tempfile::tempdir().unwrap();
        let c = conductor(&dir, Settings::default());
        let pxe = "52:54:00:00:01:01";
        seeded(&c, "bad", pxe).await;
        c.provision("bad", "inspect", ProvisionOptions::default())
            .await
            .unwrap();
        wait_state(&c, "bad", State::InspectWait).await;
        let mut data = agent_data(pxe, "52:54:00:00:01:02");
        data.inventory["cpu"]["architecture"] = Value::Null;
        c.continue_inspection(data, "10.0.0.6").await.unwrap();
        let failed = wait_state(&c, "bad", State::InspectFailed).await;
        assert_eq!(
            failed.power_state,
            Some(PowerState::Off),
            "powered off after the failure"
        );
        assert_eq!(failed.agent_token(), None);
        assert!(!failed
            .driver_internal_info
            .contains_key(LOOKUP_BMC_ADDRESSES));
        let e = failed.last_error.unwrap();
        assert!(
            e.starts_with("Failed to inspect hardware. Reason: failed to run inspection hooks: Inventory has malformed or missing CPU architecture information"),
            "{e}"
        );
        // Inspect again from inspect failed.
        c.provision("bad", "inspect", ProvisionOptions::default())
            .await
            .unwrap();
        wait_state(&c, "bad", State::InspectWait).await;
    }

    #[tokio::test(start_paused = true)]
    async fn inspect_wait_ends_by_abort_or_timeout_powered_off() {
        let dir = tempfile::tempdir().unwrap();
        let c = conductor(
            &dir,
            Settings {
                inspect_wait_timeout: Duration::from_secs(120),
                clock: Clock::tokio(),
                ..Settings::default()
            },
        );
        seeded(&c, "ab", "52:54:00:00:02:01").await;
        seeded(&c, "to", "52:54:00:00:02:02").await;
        for name in ["ab", "to"] {
            c.provision(name, "inspect", ProvisionOptions::default())
                .await
                .unwrap();
            wait_state(&c, name, State::InspectWait).await;
        }
        c.provision("ab", "abort", ProvisionOptions::default())
            .await
            .unwrap();
        let aborted = wait_state(&c, "ab", State::InspectFailed).await;
        assert_eq!(aborted.last_error.as_deref(), Some(INSPECT_ABORTED));
        assert_eq!(aborted.power_state, Some(PowerState::Off));
        assert_eq!(c.check_callback_timeouts().await, 0, "nothing is due yet");
        tokio::time::advance(Duration::from_secs(121)).await;
        assert_eq!(c.check_callback_timeouts().await, 1);
        let timed_out = wait_state(&c, "to", State::InspectFailed).await;
        assert_eq!(timed_out.last_error.as_deref(), Some(INSPECT_TIMEOUT));
        assert_eq!(timed_out.power_state, Some(PowerState::Off));
        assert_eq!(timed_out.callback_deadline(), None);
    }

    #[tokio::test]
    async fn discovery_enrolls_an_unknown_machine_once() {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings {
            discovery: Some(Discovery {
                driver: "ipmi".into(),
                resource_class: Some("baremetal".into()),
            }),
            ..Settings::default()
        };
        let c = conductor(&dir, settings);
        let mut data = agent_data("52:54:00:00:03:01", "52:54:00:00:03:02");
        data.inventory["bmc_address"] = json!("192.0.2.33");
        let again = agent_data("52:54:00:00:03:01", "52:54:00:00:03:02");
        let (a, b) = tokio::join!(
            c.continue_inspection(data, "10.0.0.7"),
            c.continue_inspection(again, "10.0.0.7")
        );
        let (a, b) = (a.unwrap().unwrap(), b.unwrap().unwrap());
        assert_eq!(a, b, "one node for two racing posts");
        let n = c.load(&a.to_string()).await.unwrap();
        assert_eq!(n.provision_state, State::Enroll);
        assert_eq!(n.driver, "ipmi");
        assert_eq!(n.interfaces.inspect, "agent");
        assert_eq!(n.resource_class.as_deref(), Some("baremetal"));
        assert_eq!(n.properties["cpus"], 2);
        assert_eq!(n.power_state, None, "a discovered node is not powered off");
        let inv = c.inventory(&a.to_string()).await.unwrap().unwrap();
        assert_eq!(inv.plugin_data["auto_discovered"], true);
        let all = c
            .store()
            .list_nodes(&Default::default(), store::Page::ALL)
            .unwrap();
        assert_eq!(all.len(), 1);
        // Whoever won the race set the BMC address (if it was the post with one).
        let bmc = n.driver_info.get("ipmi_address").cloned();
        assert!(bmc.is_none() || bmc == Some(json!("192.0.2.33")), "{bmc:?}");
        // Without discovery, an unknown machine is nobody's.
        let dir2 = tempfile::tempdir().unwrap();
        let c2 = conductor(&dir2, Settings::default());
        assert_eq!(
            c2.continue_inspection(agent_data("52:54:00:00:04:01", "52:54:00:00:04:02"), "x")
                .await
                .unwrap(),
            None
        );
    }

    /// Discovery with `[discovery] driver = "redfish"`: the BMC address the
    /// agent reports becomes `redfish_address`, which the redfish driver
    /// reads as https://<address> (a bare IPv6 address bracketed).
    #[tokio::test]
    async fn discovery_enrolls_redfish_nodes_with_their_bmc_address() {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings {
            discovery: Some(Discovery {
                driver: "redfish".into(),
                resource_class: None,
            }),
            ..Settings::default()
        };
        let c = conductor(&dir, settings);
        let mut data = agent_data("52:54:00:00:05:01", "52:54:00:00:05:02");
        data.inventory["bmc_address"] = json!("0.0.0.0");
        data.inventory["bmc_v6address"] = json!("fd00::21");
        let uuid = c
            .continue_inspection(data, "10.0.0.8")
            .await
            .unwrap()
            .unwrap();
        let n = c.load(&uuid.to_string()).await.unwrap();
        assert_eq!(n.driver, "redfish");
        assert_eq!(n.interfaces.power, "redfish");
        assert_eq!(n.driver_info["redfish_address"], "fd00::21");
        let info = crate::drivers::redfish::parse_driver_info(
            &n,
            crate::drivers::redfish::client::AuthType::Auto,
        )
        .unwrap();
        assert_eq!(info.endpoint.base, "https://[fd00::21]");
    }

    #[test]
    fn bmc_addresses_of_driver_info() {
        let mut n = crate::conductor::tests::fake_node("x", State::Manageable);
        n.driver_info
            .insert("ipmi_address".into(), json!("192.0.2.10"));
        n.driver_info.insert(
            "redfish_address".into(),
            json!("https://[fd00::5]:8000/redfish"),
        );
        n.driver_info.insert("ipmi_username".into(), json!("admin"));
        assert_eq!(bmc_addresses_of(&n), ["192.0.2.10", "fd00::5"]);
    }
}
