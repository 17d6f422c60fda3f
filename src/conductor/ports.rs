//! Port create, update (JSON patch) and delete. A port decides what a MAC
//! boots, so only the conductor writes ports: each change holds its node's
//! lock (both nodes' for a move) and writes a history entry on the node in
//! the same transaction as the change.

use serde_json::{json, Value};

use super::*;
use crate::model::input::parse_bool;
use crate::model::{Mac, Port};

/// The port fields a JSON patch may change.
const PATCHABLE: &[&str] = &[
    "address",
    "node_uuid",
    "portgroup_uuid",
    "pxe_enabled",
    "extra",
    "local_link_connection",
    "physical_network",
    "is_smartnic",
    "name",
    "description",
    "vendor",
    "category",
    "available_for_dynamic_portgroup",
];

/// Ironic's refusal of something that is not a MAC address.
pub fn bad_mac(m: &str) -> Error {
    Error::Invalid(format!("Expected a MAC address but received {m}."))
}

/// Applies a JSON patch to a port (the fields in `PATCHABLE`).
pub fn patch_port(old: &Port, ops: &[PatchOp]) -> Result<Port> {
    if ops.is_empty() {
        return Err(Error::Invalid(
            "The patch is empty: send a JSON list of operations".into(),
        ));
    }
    for op in ops {
        let top = op.top();
        if !PATCHABLE.contains(&top) {
            return Err(Error::Invalid(format!(
                "'/{top}' can not be updated on a port"
            )));
        }
        if !matches!(op.op.as_str(), "add" | "replace" | "remove") {
            return Err(Error::Invalid(format!(
                "Invalid patch operation {:?}",
                op.op
            )));
        }
    }
    let mut doc = serde_json::to_value(old)
        .map_err(|e| Error::Invalid(format!("the port cannot be patched: {e}")))?;
    let patch: json_patch::Patch = serde_json::from_value(Value::Array(
        ops.iter()
            .map(|o| json!({"op": o.op, "path": o.path, "value": o.value.clone().unwrap_or(Value::Null)}))
            .collect(),
    ))
    .map_err(|e| Error::Invalid(format!("Invalid patch: {e}")))?;
    json_patch::patch(&mut doc, &patch)
        .map_err(|e| Error::Invalid(format!("Patch could not be applied: {e}")))?;
    if let Some(Value::String(a)) = doc.get("address") {
        let mac: Mac = a.parse().map_err(|_| bad_mac(a))?;
        doc["address"] = Value::String(mac.to_string());
    }
    for key in [
        "pxe_enabled",
        "is_smartnic",
        "available_for_dynamic_portgroup",
    ] {
        if let Some(v) = doc.get(key).cloned() {
            doc[key] = Value::Bool(match v {
                Value::Null => key == "pxe_enabled",
                v => parse_bool(key, &v)?,
            });
        }
    }
    for key in ["extra", "local_link_connection", "internal_info"] {
        if doc.get(key).is_none_or(Value::is_null) {
            doc[key] = json!({});
        }
    }
    let mut port: Port = serde_json::from_value(doc).map_err(|e| {
        Error::Invalid(format!(
            "Invalid port after patch: {}",
            e.to_string().split(" at line ").next().unwrap_or_default()
        ))
    })?;
    port.updated_at = Some(now());
    Ok(port)
}

/// Checks that a port's group exists and is on the port's node.
pub fn check_portgroup(s: &crate::store::Store, port: &Port) -> Result<()> {
    let Some(pg) = port.portgroup_uuid else {
        return Ok(());
    };
    let group: crate::model::Portgroup = s.get_record(&pg.to_string()).map_err(|e| match e {
        store::Error::RecordNotFound { .. } => {
            Error::Invalid(format!("Portgroup {pg} could not be found."))
        }
        e => e.into(),
    })?;
    if group.node_uuid != port.node_uuid {
        return Err(Error::Invalid(
            "Port can not be added to a portgroup belonging to a different node.".into(),
        ));
    }
    if port.pxe_enabled && !group.standalone_ports_supported {
        return Err(Error::InvalidState(format!(
            "Port group {pg} doesn't support standalone ports. This port cannot be created as a member of that portgroup as the port's 'pxe_enabled' field was set to True."
        )));
    }
    Ok(())
}

/// The fields a patch names, for the history.
fn changed_fields(ops: &[PatchOp]) -> String {
    let mut fields: Vec<&str> = ops.iter().map(|o| o.top()).collect();
    fields.dedup();
    fields.join(", ")
}

impl Conductor {
    /// Creates a port on its node (which must exist).
    pub async fn create_port(&self, port: Port, user: Option<String>) -> Result<Port> {
        let (lock, node) = self
            .lock(port.node_uuid, &port.node_uuid.to_string())
            .await?;
        let note = history(
            Severity::Info,
            "port",
            format!(
                "port {} created (pxe_enabled {})",
                port.address, port.pxe_enabled
            ),
            &user,
        );
        let saved = port.clone();
        self.store()
            .call(move |s| {
                let r = check_portgroup(s, &saved)
                    .and_then(|()| Ok(s.create_port(&saved, &[(node.uuid, note.clone())])?));
                lock.release_in(s);
                if r.is_ok() {
                    log_history(&node, &[note]);
                }
                r
            })
            .await?;
        Ok(port)
    }

    /// Applies a JSON patch to a port, holding its node's lock and, for a
    /// move, the destination's too (in UUID order, so two opposite moves
    /// cannot wait on each other).
    pub async fn update_port(
        &self,
        ident: &str,
        ops: Vec<PatchOp>,
        user: Option<String>,
    ) -> Result<Port> {
        let lookup = ident.to_string();
        let old = self.store().call(move |s| s.get_port(&lookup)).await?;
        let planned = patch_port(&old, &ops)?;
        let mut nodes = vec![old.node_uuid, planned.node_uuid];
        nodes.sort();
        nodes.dedup();
        let mut locks = Vec::new();
        for n in &nodes {
            let node = self.store().call({
                let n = *n;
                move |s| s.get_node(&n.to_string())
            });
            let (lock, _) = match node.await {
                Ok(node) => self.lock(node.uuid, &node.uuid.to_string()).await?,
                Err(store::Error::NodeNotFound(n)) => {
                    return Err(Error::Invalid(format!("Node {n} could not be found.")))
                }
                Err(e) => return Err(e.into()),
            };
            locks.push(lock);
        }
        let ident = ident.to_string();
        let port = self
            .store()
            .call(move |s| -> Result<Port> {
                let result = (|| {
                    let old = s.get_port(&ident)?;
                    let new = patch_port(&old, &ops)?;
                    check_portgroup(s, &new)?;
                    if !nodes.contains(&old.node_uuid) || !nodes.contains(&new.node_uuid) {
                        return Err(Error::InvalidState(format!(
                            "Port {ident} changed while this request waited for its node; retry"
                        )));
                    }
                    let fields = changed_fields(&ops);
                    let mut notes = vec![(
                        new.node_uuid,
                        history(
                            Severity::Info,
                            "port",
                            format!("port {} updated: {fields}", new.address),
                            &user,
                        ),
                    )];
                    if old.node_uuid != new.node_uuid {
                        notes[0].1.event = format!(
                            "port {} moved here from node {} ({fields})",
                            new.address, old.node_uuid
                        );
                        notes.push((
                            old.node_uuid,
                            history(
                                Severity::Info,
                                "port",
                                format!("port {} moved to node {}", old.address, new.node_uuid),
                                &user,
                            ),
                        ));
                    }
                    s.save_port(&new, &notes)?;
                    for (node, h) in &notes {
                        tracing::info!(%node, event_type = %h.event_type, "{}", h.event);
                    }
                    Ok(new)
                })();
                for lock in locks {
                    lock.release_in(s);
                }
                result
            })
            .await?;
        Ok(port)
    }

    /// Deletes a port.
    pub async fn delete_port(&self, ident: &str, user: Option<String>) -> Result<()> {
        let lookup = ident.to_string();
        let port = self.store().call(move |s| s.get_port(&lookup)).await?;
        let (lock, node) = self
            .lock(port.node_uuid, &port.node_uuid.to_string())
            .await?;
        let note = history(
            Severity::Info,
            "port",
            format!("port {} deleted", port.address),
            &user,
        );
        self.store()
            .call(move |s| -> Result<()> {
                let result = (|| {
                    let now = s.get_port(&port.uuid.to_string())?;
                    if now.node_uuid != port.node_uuid {
                        return Err(Error::InvalidState(format!(
                            "Port {} moved to another node while this request waited; retry",
                            port.uuid
                        )));
                    }
                    s.delete_port(port.uuid, &[(node.uuid, note.clone())])?;
                    log_history(&node, &[note]);
                    Ok(())
                })();
                lock.release_in(s);
                result
            })
            .await
    }
}

impl Conductor {
    /// Writes a patched port group under its node's lock (both nodes' for
    /// a move), with Ironic's rules for moves and standalone ports.
    pub async fn update_portgroup(
        &self,
        old: crate::model::Portgroup,
        new: crate::model::Portgroup,
    ) -> Result<()> {
        let (lock, node) = self.lock(old.node_uuid, &old.node_uuid.to_string()).await?;
        let members = {
            let pg = old.uuid;
            self.store()
                .call(move |s| {
                    s.list_ports(
                        &store::PortFilter {
                            portgroup_uuid: Some(pg),
                            ..Default::default()
                        },
                        store::Page::ALL,
                    )
                })
                .await?
        };
        let mut other = None;
        if new.node_uuid != old.node_uuid {
            let (l, target) = self
                .lock(new.node_uuid, &new.node_uuid.to_string())
                .await
                .map_err(|e| match e {
                    Error::Store(store::Error::NodeNotFound(_)) => Error::Invalid(format!(
                        "Unable to apply the requested node_uuid '{}'. Requested value was invalid.",
                        new.node_uuid
                    )),
                    e => e,
                })?;
            let movable = |n: &Node| {
                n.maintenance
                    || matches!(
                        n.provision_state,
                        State::Enroll | State::Inspecting | State::InspectWait | State::Manageable
                    )
            };
            for n in [&node, &target] {
                if !movable(n) {
                    return Err(Error::InvalidState(format!(
                        "Portgroup {} can not be associated to node {} unless the node is in a enroll, inspecting, inspect wait, manageable state or in maintenance mode. Current state is '{}'.",
                        old.uuid, n.uuid, n.provision_state
                    )));
                }
            }
            if !members.is_empty() {
                return Err(Error::Invalid(format!(
                    "Portgroup {} can not be associated with node {} because there are ports associated with this portgroup.",
                    old.uuid, target.uuid
                )));
            }
            other = Some(l);
        }
        if !new.standalone_ports_supported && old.standalone_ports_supported {
            let reasons: Vec<String> = members
                .iter()
                .filter(|p| p.pxe_enabled)
                .map(|_| "'pxe_enabled' is set to True".to_string())
                .collect();
            if let Some(r) = reasons.first() {
                return Err(Error::InvalidState(format!(
                    "standalone_ports_supported can not be set to False, because the port group {} contains port with {r}",
                    old.uuid
                )));
            }
        }
        self.store()
            .call(move |s| {
                let r = s.save_record(&new);
                lock.release_in(s);
                if let Some(l) = other {
                    l.release_in(s);
                }
                r
            })
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::conductor::tests::{conductor, fake_node};

    async fn node(c: &Conductor, name: &str) -> Node {
        c.create_node(fake_node(name, State::Manageable), None)
            .await
            .unwrap()
    }

    fn events(c: &Conductor, n: &Node) -> Vec<String> {
        c.store()
            .node_history(n.uuid)
            .unwrap()
            .into_iter()
            .filter(|h| h.event_type == "port")
            .map(|h| h.event)
            .collect()
    }

    fn op(path: &str, value: Value) -> PatchOp {
        serde_json::from_value(json!({"op": "replace", "path": path, "value": value})).unwrap()
    }

    #[tokio::test]
    async fn port_changes_go_through_the_conductor_with_history() {
        let dir = tempfile::tempdir().unwrap();
        let c = conductor(&dir, Settings::default());
        let a = node(&c, "a").await;
        let b = node(&c, "b").await;
        let mac: Mac = "52:54:00:12:34:56".parse().unwrap();
        let port = c
            .create_port(Port::new(mac, a.uuid), Some("admin".into()))
            .await
            .unwrap();
        let p = port.uuid.to_string();
        c.update_port(&p, vec![op("/pxe_enabled", json!(false))], None)
            .await
            .unwrap();
        let moved = c
            .update_port(&p, vec![op("/node_uuid", json!(b.uuid.to_string()))], None)
            .await
            .unwrap();
        assert_eq!(moved.node_uuid, b.uuid);
        c.delete_port(&p, None).await.unwrap();
        assert_eq!(
            events(&c, &a),
            [
                "port 52:54:00:12:34:56 created (pxe_enabled true)".to_string(),
                "port 52:54:00:12:34:56 updated: pxe_enabled".into(),
                format!("port 52:54:00:12:34:56 moved to node {}", b.uuid),
            ]
        );
        assert_eq!(
            events(&c, &b),
            [
                format!(
                    "port 52:54:00:12:34:56 moved here from node {} (node_uuid)",
                    a.uuid
                ),
                "port 52:54:00:12:34:56 deleted".to_string(),
            ]
        );
        let created = c.store().node_history(a.uuid).unwrap();
        assert_eq!(
            created
                .iter()
                .find(|h| h.event_type == "port")
                .unwrap()
                .user
                .as_deref(),
            Some("admin")
        );
        // Every lock was released.
        for n in [&a, &b] {
            assert_eq!(c.load(&n.uuid.to_string()).await.unwrap().reservation, None);
        }
    }

    #[tokio::test]
    async fn port_changes_wait_for_a_busy_node_and_refuse_bad_patches() {
        let dir = tempfile::tempdir().unwrap();
        let c = conductor(
            &dir,
            Settings {
                node_locked_wait: Duration::from_millis(20),
                ..Settings::default()
            },
        );
        let a = node(&c, "a").await;
        let mac: Mac = "52:54:00:12:34:57".parse().unwrap();
        let (held, _) = c.lock(a.uuid, "a").await.unwrap();
        let err = c
            .create_port(Port::new(mac, a.uuid), None)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NodeLocked { .. }), "{err}");
        drop(held);
        let port = c.create_port(Port::new(mac, a.uuid), None).await.unwrap();
        for (ops, want) in [
            (vec![], "The patch is empty"),
            (vec![op("/uuid", json!("x"))], "'/uuid' can not be updated"),
            (
                vec![op("/address", json!("nope"))],
                "Expected a MAC address",
            ),
            (
                vec![op("/pxe_enabled", json!("maybe"))],
                "expected a boolean",
            ),
            (
                vec![op("/node_uuid", json!(Uuid::new_v4().to_string()))],
                "could not be found",
            ),
        ] {
            let err = c
                .update_port(&port.uuid.to_string(), ops, None)
                .await
                .unwrap_err();
            assert!(
                matches!(err, Error::Invalid(_)) && err.to_string().contains(want),
                "{err}"
            );
        }
        assert_eq!(events(&c, &a).len(), 1, "refused changes write no history");
    }
}
