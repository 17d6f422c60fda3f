//! Node create, update (JSON patch), delete and maintenance.

use super::*;

impl Conductor {
    /// Creates a node (in `enroll`, or `available` for API < 1.11).
    pub async fn create_node(&self, node: Node, user: Option<String>) -> Result<Node> {
        self.inner.registry.hardware_type(&node.driver)?;
        for kind in ["power", "management", "boot", "deploy", "network"] {
            let name = node.interfaces.get(kind).unwrap_or_default();
            self.inner
                .registry
                .check_interface(&node.driver, kind, name)?;
        }
        let h = history(
            Severity::Info,
            "provisioning",
            format!(
                "node created in {} with driver {}",
                node.provision_state, node.driver
            ),
            &user,
        );
        let n = node.clone();
        self.store().call(move |s| s.create_node(&n, &h)).await?;
        tracing::info!(node = %node.uuid, driver = %node.driver, "node created");
        Ok(node)
    }

    /// Applies a JSON patch to a node under its lock.
    pub async fn update_node(
        &self,
        ident: &str,
        ops: Vec<PatchOp>,
        reset_interfaces: Option<bool>,
    ) -> Result<Node> {
        let (lock, old) = self.lock_ident(ident).await?;
        let mut new = update::apply(&old, &ops, &self.inner.registry, reset_interfaces)?;
        let mut writes = Vec::new();
        if let Some(chassis) = new.chassis_uuid.filter(|c| old.chassis_uuid != Some(*c)) {
            self.store()
                .call(move |s| s.get_record::<crate::model::Chassis>(&chassis.to_string()))
                .await
                .map_err(|e| Error::Invalid(e.to_string()))?;
        }
        // Removing the instance of an allocated node removes its allocation
        // (Ironic's rule, in the states it allows).
        if let (Some(a), None) = (old.allocation_uuid, &new.instance_uuid) {
            const ALLOWED: &[State] = &[
                State::Enroll,
                State::Inspecting,
                State::InspectWait,
                State::Manageable,
                State::Available,
            ];
            if !old.maintenance && !ALLOWED.contains(&old.provision_state) {
                return Err(Error::InvalidState(format!(
                    "Node {} with an allocation can not have instance_uuid removed unless it is in one of allowed (enroll, inspecting, inspect wait, manageable, available) states or in maintenance mode. Current state is '{}'.",
                    old.uuid, old.provision_state
                )));
            }
            new.allocation_uuid = None;
            writes.push(crate::store::RecordWrite::Delete(
                crate::store::Kind::Allocation,
                a,
            ));
        }
        let changed: Vec<&str> = ops.iter().map(|o| o.path.as_str()).collect();
        let h = HistoryEntry::new(
            Severity::Info,
            "api",
            format!("node updated: {}", changed.join(", ")),
        );
        self.save_locked_writes(new, vec![h], lock, writes).await
    }

    /// Deletes a node and its ports, without cleaning or touching the machine.
    pub async fn delete_node(&self, ident: &str) -> Result<()> {
        let (lock, node) = self.lock_ident(ident).await?;
        if node.protected {
            return Err(Error::NodeProtected {
                node: ident.to_string(),
            });
        }
        if !node.maintenance {
            if let Some(instance) = &node.instance_uuid {
                return Err(Error::NodeAssociated {
                    node: ident.to_string(),
                    instance: instance.clone(),
                });
            }
            if !node.provision_state.delete_allowed() {
                return Err(Error::InvalidState(format!(
                    "Can not delete node \"{ident}\" while it is in provision state \"{}\". Valid provision states to perform deletion are: \"manageable, enroll, adopt failed, available\", or set the node into maintenance mode",
                    node.provision_state
                )));
            }
        }
        let uuid = node.uuid;
        self.store()
            .call(move |s| {
                let _lock = lock;
                s.delete_node(uuid)
            })
            .await?;
        tracing::info!(node = %uuid, state = %node.provision_state, "node deleted (no cleaning, no power action)");
        Ok(())
    }

    /// Sets or clears maintenance.
    pub async fn set_maintenance(
        &self,
        ident: &str,
        on: bool,
        reason: Option<String>,
    ) -> Result<()> {
        let (lock, mut node) = self.lock_ident(ident).await?;
        node.maintenance = on;
        if on {
            node.maintenance_reason = reason;
        } else {
            node.maintenance_reason = None;
            node.fault = None;
        }
        node.updated_at = Some(now());
        let h = HistoryEntry::new(
            Severity::Info,
            "maintenance",
            if on {
                "maintenance set"
            } else {
                "maintenance cleared"
            },
        );
        self.save_locked(node, vec![h], lock).await.map(drop)
    }
}

impl Conductor {
    /// Changes a node's traits under its lock: `change` gets the sorted
    /// list and may refuse; at most [`traits::MAX_PER_NODE`] are kept.
    pub async fn update_traits(
        &self,
        ident: &str,
        user: Option<String>,
        change: impl FnOnce(&Node, &mut Vec<String>) -> Result<()>,
    ) -> Result<Node> {
        use crate::model::traits;
        let (lock, mut node) = self.lock_ident(ident).await?;
        let mut list = node.traits.clone();
        change(&node, &mut list)?;
        let list = traits::normalize(list);
        if list.len() > traits::MAX_PER_NODE {
            return Err(Error::Invalid(format!(
                "Could not modify traits for node {} as it would exceed the maximum number of traits per node ({} vs. {})",
                node.uuid,
                list.len(),
                traits::MAX_PER_NODE
            )));
        }
        if list == node.traits {
            return Ok(node);
        }
        node.traits = list;
        node.updated_at = Some(now());
        let h = history(
            Severity::Info,
            "api",
            format!("traits set: {}", node.traits.join(", ")),
            &user,
        );
        self.save_locked(node, vec![h], lock).await
    }
}
