//! VIFs (Ironic's `/v1/nodes/{ident}/vifs`): a tenant network port bound
//! to one of the node's ports or port groups, recorded as Ironic's
//! Neutron-backed interfaces record it (`internal_info.tenant_vif_port_id`)
//! so it can be listed and detached. With no network service behind it,
//! nothing else happens on attach or detach.

use super::*;
use crate::model::{Port, Portgroup};

/// Where Ironic keeps a VIF.
pub const VIF_KEY: &str = "tenant_vif_port_id";
/// Where older Ironic releases kept it (removed on detach too).
const OLD_VIF_KEY: &str = "vif_port_id";

/// Which of the node's ports or port groups an attach may use.
#[derive(Debug, Clone, Default)]
pub struct VifTarget {
    pub port: Option<Uuid>,
    pub portgroup: Option<Uuid>,
}

fn vif_of(internal: &serde_json::Map<String, Value>) -> Option<&str> {
    internal.get(VIF_KEY).and_then(Value::as_str)
}

/// A port or port group a VIF can go on.
#[derive(Debug, Clone)]
enum Slot {
    Port(Port),
    Group(Portgroup),
}

/// Picks where a VIF goes, as Ironic's `get_free_port_like_object`: a free
/// standalone port or a free, non-empty port group (none of whose members
/// holds a VIF), port groups first, then PXE-enabled ports, else in
/// creation order.
fn pick(ports: &[Port], groups: &[Portgroup], vif: &str, want: &VifTarget) -> Result<Slot> {
    for p in ports {
        if vif_of(&p.internal_info) == Some(vif) {
            return Err(Error::InvalidState(format!(
                "Unable to attach VIF {vif} because VIF {vif} is already attached to Ironic Port {}",
                p.uuid
            )));
        }
    }
    for g in groups {
        if vif_of(&g.internal_info) == Some(vif) {
            return Err(Error::InvalidState(format!(
                "Unable to attach VIF {vif} because VIF {vif} is already attached to Ironic Portgroup {}",
                g.uuid
            )));
        }
    }
    let mut free: Vec<(bool, bool, Slot)> = Vec::new();
    if want.portgroup.is_none() {
        for p in ports {
            let wanted = want.port.is_none_or(|u| u == p.uuid);
            if wanted && p.portgroup_uuid.is_none() && vif_of(&p.internal_info).is_none() {
                free.push((false, p.pxe_enabled, Slot::Port(p.clone())));
            }
        }
    }
    if want.port.is_none() {
        for g in groups {
            let members: Vec<&Port> = ports
                .iter()
                .filter(|p| p.portgroup_uuid == Some(g.uuid))
                .collect();
            let usable = !members.is_empty()
                && members.iter().all(|p| vif_of(&p.internal_info).is_none())
                && vif_of(&g.internal_info).is_none();
            if usable && want.portgroup.is_none_or(|u| u == g.uuid) {
                free.push((true, true, Slot::Group(g.clone())));
            }
        }
    }
    // Stable: among equals the first created wins.
    free.sort_by_key(|s| std::cmp::Reverse((s.0, s.1)));
    free.into_iter().next().map(|(_, _, s)| s).ok_or_else(|| {
        Error::Invalid(format!(
            "Unable to attach VIF {vif}, not enough free physical ports."
        ))
    })
}

impl Conductor {
    async fn ports_and_groups(&self, node: Uuid) -> Result<(Vec<Port>, Vec<Portgroup>)> {
        Ok(self
            .store()
            .call(move |s| -> store::Result<(Vec<Port>, Vec<Portgroup>)> {
                let ports = s.list_ports(
                    &store::PortFilter {
                        node_uuid: Some(node),
                        ..Default::default()
                    },
                    store::Page::ALL,
                )?;
                let groups = s.list_records::<Portgroup>(
                    &store::RecordFilter {
                        node: Some(node),
                        ..Default::default()
                    },
                    store::Page::ALL,
                )?;
                Ok((ports, groups))
            })
            .await?)
    }

    /// Writes a changed port or port group with the node's history entry
    /// in one transaction, releasing the node's lock.
    async fn write_slot(
        &self,
        node: Node,
        lock: locking::LockGuard,
        slot: Slot,
        note: (Uuid, HistoryEntry),
    ) -> Result<()> {
        match slot {
            Slot::Port(p) => {
                self.store()
                    .call(move |s| -> Result<()> {
                        let r = s.save_port(&p, &[note]).map_err(Error::from);
                        lock.release_in(s);
                        r
                    })
                    .await
            }
            Slot::Group(g) => {
                let write = store::RecordWrite::put(&g)?;
                self.save_locked_writes(node, vec![note.1], lock, vec![write])
                    .await
                    .map(drop)
            }
        }
    }

    /// The node's VIFs: its ports' first, then its port groups'.
    pub async fn vif_list(&self, ident: &str) -> Result<Vec<String>> {
        let node = self.load(ident).await?;
        let (ports, groups) = self.ports_and_groups(node.uuid).await?;
        let on_ports = ports.iter().filter_map(|p| vif_of(&p.internal_info));
        let on_groups = groups.iter().filter_map(|g| vif_of(&g.internal_info));
        Ok(on_ports.chain(on_groups).map(str::to_string).collect())
    }

    /// Attaches a VIF to a free port or port group of the node, under its
    /// lock.
    pub async fn vif_attach(
        &self,
        ident: &str,
        vif: String,
        want: VifTarget,
        user: Option<String>,
    ) -> Result<()> {
        let (lock, node) = self.lock_ident(ident).await?;
        let (ports, groups) = self.ports_and_groups(node.uuid).await?;
        let slot = pick(&ports, &groups, &vif, &want)?;
        let note = |what: String| {
            (
                node.uuid,
                history(
                    Severity::Info,
                    "network",
                    format!("VIF {vif} attached to {what}"),
                    &user,
                ),
            )
        };
        let note = match &slot {
            Slot::Port(p) => note(format!("port {}", p.address)),
            Slot::Group(g) => note(format!("port group {}", g.uuid)),
        };
        let vif_value = Value::String(vif.clone());
        let slot = match slot {
            Slot::Port(mut p) => {
                p.internal_info.insert(VIF_KEY.into(), vif_value);
                Slot::Port(p)
            }
            Slot::Group(mut g) => {
                g.internal_info.insert(VIF_KEY.into(), vif_value);
                Slot::Group(g)
            }
        };
        let uuid = node.uuid;
        self.write_slot(node, lock, slot, note).await?;
        tracing::info!(node = %uuid, %vif, "VIF attached");
        Ok(())
    }

    /// Detaches a VIF from the node (its port groups are looked at first,
    /// as Ironic does), under its lock.
    pub async fn vif_detach(&self, ident: &str, vif: String, user: Option<String>) -> Result<()> {
        let (lock, node) = self.lock_ident(ident).await?;
        let (ports, groups) = self.ports_and_groups(node.uuid).await?;
        let clear = |internal: &mut serde_json::Map<String, Value>,
                     extra: &mut serde_json::Map<String, Value>| {
            internal.remove(VIF_KEY);
            extra.remove(OLD_VIF_KEY);
        };
        let note = (
            node.uuid,
            history(
                Severity::Info,
                "network",
                format!("VIF {vif} detached"),
                &user,
            ),
        );
        let slot = if let Some(mut g) = groups
            .into_iter()
            .find(|g| vif_of(&g.internal_info) == Some(vif.as_str()))
        {
            clear(&mut g.internal_info, &mut g.extra);
            Slot::Group(g)
        } else if let Some(mut p) = ports
            .into_iter()
            .find(|p| vif_of(&p.internal_info) == Some(vif.as_str()))
        {
            clear(&mut p.internal_info, &mut p.extra);
            Slot::Port(p)
        } else {
            return Err(Error::Invalid(format!(
                "Unable to detach VIF {vif} from node {} because it is not attached to it.",
                node.uuid
            )));
        };
        let uuid = node.uuid;
        self.write_slot(node, lock, slot, note).await?;
        tracing::info!(node = %uuid, %vif, "VIF detached");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Mac;

    fn port(n: u8, pxe: bool, group: Option<Uuid>) -> Port {
        let mac: Mac = format!("52:54:00:00:00:{n:02x}").parse().unwrap();
        let mut p = Port::new(mac, Uuid::nil());
        p.pxe_enabled = pxe;
        p.portgroup_uuid = group;
        p
    }

    fn group() -> Portgroup {
        serde_json::from_value(serde_json::json!({
            "uuid": Uuid::new_v4(), "created_at": "t", "updated_at": null, "address": null,
            "mode": "active-backup", "name": null, "standalone_ports_supported": true,
            "node_uuid": Uuid::nil(), "physical_network": null, "category": null,
        }))
        .unwrap()
    }

    fn slot_uuid(s: &Slot) -> Uuid {
        match s {
            Slot::Port(p) => p.uuid,
            Slot::Group(g) => g.uuid,
        }
    }

    #[test]
    fn picks_groups_then_pxe_ports_then_the_first() {
        let g = group();
        let plain = port(1, false, None);
        let pxe = port(2, true, None);
        let member = port(3, true, Some(g.uuid));
        let any = VifTarget::default();
        let ports = vec![plain.clone(), pxe.clone(), member.clone()];
        type Case = (Vec<Port>, Vec<Portgroup>, VifTarget, Result<Uuid>);
        let cases: Vec<Case> = vec![
            (ports.clone(), vec![g.clone()], any.clone(), Ok(g.uuid)),
            (
                ports[..2].to_vec(),
                vec![g.clone()],
                any.clone(),
                Ok(pxe.uuid),
            ),
            (vec![plain.clone()], vec![], any.clone(), Ok(plain.uuid)),
            (
                ports.clone(),
                vec![g.clone()],
                VifTarget {
                    port: Some(plain.uuid),
                    portgroup: None,
                },
                Ok(plain.uuid),
            ),
            (
                vec![member.clone()],
                vec![],
                any.clone(),
                Err(Error::Invalid(String::new())),
            ),
            (
                vec![],
                vec![],
                any.clone(),
                Err(Error::Invalid(String::new())),
            ),
        ];
        for (ports, groups, want, expected) in cases {
            let got = pick(&ports, &groups, "vif-1", &want);
            match (got, expected) {
                (Ok(s), Ok(u)) => assert_eq!(slot_uuid(&s), u),
                (Err(Error::Invalid(m)), Err(_)) => {
                    assert_eq!(
                        m,
                        "Unable to attach VIF vif-1, not enough free physical ports."
                    )
                }
                (got, want) => panic!("got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn taken_ports_are_skipped_and_a_repeat_is_refused() {
        let mut taken = port(1, true, None);
        taken.internal_info.insert(VIF_KEY.into(), "other".into());
        let free = port(2, false, None);
        let s = pick(
            &[taken.clone(), free.clone()],
            &[],
            "vif-1",
            &VifTarget::default(),
        )
        .unwrap();
        assert_eq!(slot_uuid(&s), free.uuid);
        match pick(&[taken.clone()], &[], "other", &VifTarget::default()) {
            Err(Error::InvalidState(m)) => {
                assert!(m.contains("already attached to Ironic Port"), "{m}")
            }
            other => panic!("{other:?}"),
        }
    }
}
