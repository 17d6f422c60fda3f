//! Ironic's allocation scheduler: an allocation asks for one `available`
//! node of a resource class, with some traits, maybe among candidates; the
//! conductor picks one in a task of its own, locks it, and writes the
//! allocation and the node (instance_uuid, allocation_uuid,
//! instance_info.traits) in one transaction. Picks on this appliance take
//! turns; the node lock keeps other appliances and workflows out, so no
//! node is ever picked twice.

use serde_json::{Map, Value};

use super::*;
use crate::model::{traits, Allocation, AllocationState};
use crate::store::{Kind, RecordFilter, RecordWrite};

/// How many passes a pick makes over candidates that were all locked, and
/// the wait between passes (Ironic's `node_locked_retry_attempts` and
/// `node_locked_retry_interval`).
const PICK_ATTEMPTS: u32 = 3;
const PICK_RETRY_WAIT: Duration = Duration::from_secs(1);

/// What a client asks for (POST /v1/allocations, already schema-checked).
#[derive(Debug, Clone, Default)]
pub struct AllocationRequest {
    pub uuid: Option<Uuid>,
    pub name: Option<String>,
    pub resource_class: Option<String>,
    pub traits: Vec<String>,
    /// Node UUIDs or names.
    pub candidate_nodes: Vec<String>,
    pub extra: Map<String, Value>,
    pub owner: Option<String>,
    /// Backfill: the deployed node this allocation records (1.58).
    pub node: Option<String>,
}

/// Provision states in which an allocated node's allocation may go while
/// the node is busy (Ironic's UPDATE_ALLOWED_STATES).
fn may_deallocate(node: &Node) -> std::result::Result<(), String> {
    if node.maintenance {
        return Ok(());
    }
    if node.target_provision_state.is_some() && !node.provision_state.update_allowed() {
        return Err(format!(
            "because the node is in state {} where updates are not allowed (and maintenance mode is off)",
            node.provision_state
        ));
    }
    if node.provision_state == State::Active {
        return Err("because the node is active (and maintenance mode is off)".into());
    }
    Ok(())
}

/// Whether a node can take the allocation now (re-checked under its lock).
fn suits(node: &Node, a: &Allocation) -> bool {
    node.provision_state == State::Available
        && !node.maintenance
        && node.instance_uuid.is_none()
        && node.allocation_uuid.is_none()
        && node.power_state.is_some()
        && node.resource_class == a.resource_class
        && a.traits.iter().all(|t| node.traits.contains(t))
        && (a.candidate_nodes.is_empty() || a.candidate_nodes.contains(&node.uuid.to_string()))
        && a.owner
            .as_ref()
            .is_none_or(|o| node.owner.as_ref() == Some(o) || node.lessee.as_ref() == Some(o))
}

/// Shuffles in place (Fisher–Yates on the OS's random numbers).
fn shuffle<T>(v: &mut [T]) {
    for i in (1..v.len()).rev() {
        let mut b = [0u8; 8];
        if getrandom::fill(&mut b).is_err() {
            return;
        }
        let j = (u64::from_le_bytes(b) % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}

/// The node writes an allocation makes.
fn take_node(node: &mut Node, a: &Allocation) {
    node.instance_uuid = Some(a.uuid.to_string());
    node.allocation_uuid = Some(a.uuid);
    node.instance_info.insert(
        "traits".into(),
        Value::Array(a.traits.iter().cloned().map(Value::String).collect()),
    );
    node.updated_at = Some(now());
}

impl Conductor {
    /// Creates an allocation. Without a node it is `allocating` and the
    /// pick runs in a task of its own; a backfill (`node`) is done here.
    pub async fn create_allocation(
        &self,
        req: AllocationRequest,
        user: Option<String>,
    ) -> Result<Allocation> {
        let ticket = self.worker_ticket()?;
        let idents = req.candidate_nodes.clone();
        let node_ident = req.node.clone();
        let (candidates, node) = self
            .store()
            .call(move |s| -> Result<(Vec<String>, Option<Node>)> {
                let mut found = Vec::new();
                let mut missing = Vec::new();
                for i in &idents {
                    match s.get_node(i) {
                        Ok(n) => found.push(n.uuid.to_string()),
                        Err(store::Error::NodeNotFound(_)) => missing.push(i.clone()),
                        Err(e) => return Err(e.into()),
                    }
                }
                if !missing.is_empty() {
                    return Err(Error::Invalid(format!(
                        "Nodes cannot be found: {}",
                        missing.join(", ")
                    )));
                }
                let node = match node_ident {
                    None => None,
                    Some(n) => Some(s.get_node(&n).map_err(|e| match e {
                        store::Error::NodeNotFound(_) => Error::Invalid(e.to_string()),
                        e => e.into(),
                    })?),
                };
                Ok((found, node))
            })
            .await?;
        let resource_class = match (req.resource_class.filter(|r| !r.is_empty()), &node) {
            (Some(r), _) => Some(r),
            (None, Some(n)) => n.resource_class.clone(),
            (None, None) => {
                return Err(Error::Invalid(
                    "The resource_class field is mandatory when not backfilling".into(),
                ))
            }
        };
        let uuid = req.uuid.unwrap_or_else(|| {
            node.as_ref()
                .and_then(|n| n.instance_uuid.as_deref())
                .and_then(|i| i.parse().ok())
                .unwrap_or_else(Uuid::new_v4)
        });
        let alloc = Allocation {
            uuid,
            created_at: now(),
            updated_at: None,
            candidate_nodes: candidates,
            extra: req.extra,
            last_error: None,
            name: req.name,
            owner: req.owner,
            resource_class,
            state: AllocationState::Allocating,
            traits: traits::normalize(req.traits),
            node_uuid: None,
        };
        let saved = alloc.clone();
        self.store().call(move |s| s.create_record(&saved)).await?;
        if let Some(node) = node {
            drop(ticket);
            return self.backfill(alloc, node, user).await;
        }
        let this = self.clone();
        let a = alloc.clone();
        tokio::spawn(async move {
            let _ticket = ticket;
            this.allocate(a, user).await;
        });
        Ok(alloc)
    }

    /// Picks a node for an `allocating` allocation, or records why not.
    pub(super) async fn allocate(&self, mut a: Allocation, user: Option<String>) {
        let outcome = {
            // One pick at a time on this appliance: picks then never race
            // each other for a node here, only other appliances' picks.
            let _turn = self.inner.allocating.lock().await;
            self.pick(&a, &user).await
        };
        let error = match outcome {
            Ok(()) => return,
            Err(e) => e,
        };
        tracing::info!(allocation = %a.uuid, error = %error, "allocation failed");
        a.state = AllocationState::Error;
        a.node_uuid = None;
        a.last_error = Some(format!("Failed to process allocation {}: {error}.", a.uuid));
        a.updated_at = Some(now());
        let uuid = a.uuid;
        match self.store().call(move |s| s.save_record(&a)).await {
            Ok(()) | Err(store::Error::RecordNotFound { .. }) => {}
            Err(e) => {
                tracing::error!(allocation = %uuid, error = %e, "cannot record the allocation's failure")
            }
        }
    }

    /// Finds, locks and takes a node for `a`; the error is Ironic's reason.
    async fn pick(&self, a: &Allocation, user: &Option<String>) -> std::result::Result<(), String> {
        for attempt in 1..=PICK_ATTEMPTS {
            let filter = store::NodeFilter {
                resource_class: a.resource_class.clone(),
                provision_state: Some(State::Available),
                associated: Some(false),
                maintenance: Some(false),
                ..Default::default()
            };
            let nodes = self
                .store()
                .call(move |s| s.list_nodes(&filter, store::Page::ALL))
                .await
                .map_err(|e| format!("cannot list the nodes: {e}"))?;
            let rc = a.resource_class.clone().unwrap_or_default();
            let mut nodes: Vec<Node> = nodes
                .into_iter()
                .filter(|n| n.power_state.is_some() && n.allocation_uuid.is_none())
                .filter(|n| {
                    a.candidate_nodes.is_empty() || a.candidate_nodes.contains(&n.uuid.to_string())
                })
                .filter(|n| {
                    a.owner
                        .as_ref()
                        .is_none_or(|o| n.owner.as_ref() == Some(o) || n.lessee.as_ref() == Some(o))
                })
                .collect();
            if nodes.is_empty() {
                return Err(if a.candidate_nodes.is_empty() {
                    format!("no available nodes match the resource class {rc}")
                } else {
                    format!(
                        "none of the requested nodes are available and match the resource class {rc}"
                    )
                });
            }
            nodes.retain(|n| a.traits.iter().all(|t| n.traits.contains(t)));
            if nodes.is_empty() {
                return Err(format!(
                    "no suitable nodes have the requested traits {}",
                    a.traits.join(", ")
                ));
            }
            shuffle(&mut nodes);
            if let Some(name) = &a.name {
                if let Some(i) = nodes.iter().position(|n| n.name.as_ref() == Some(name)) {
                    nodes.swap(0, i);
                }
            }
            let mut locked = 0;
            for candidate in &nodes {
                let Some((lock, mut node)) = self.try_lock(candidate.uuid).await else {
                    locked += 1;
                    continue;
                };
                if !suits(&node, a) {
                    continue;
                }
                let mut taken = a.clone();
                taken.state = AllocationState::Active;
                taken.node_uuid = Some(node.uuid);
                taken.last_error = None;
                taken.updated_at = Some(now());
                take_node(&mut node, &taken);
                let note = history(
                    Severity::Info,
                    "allocation",
                    format!("allocated to allocation {}", taken.uuid),
                    user,
                );
                match self.save_locked_with(node, vec![note], lock, &taken).await {
                    Ok(_) => return Ok(()),
                    // The allocation was deleted meanwhile: nothing to do.
                    Err(Error::Store(store::Error::RecordNotFound { .. })) => return Ok(()),
                    Err(e) => return Err(format!("cannot save the allocation: {e}")),
                }
            }
            if locked == 0 {
                return Err("all nodes were filtered out during reservation".into());
            }
            if attempt == PICK_ATTEMPTS {
                return Err(format!("could not reserve any of {locked} suitable nodes"));
            }
            tokio::time::sleep(PICK_RETRY_WAIT).await;
        }
        Err("all nodes were filtered out during reservation".into())
    }

    /// Records an allocation for a node that is already deployed.
    async fn backfill(
        &self,
        mut a: Allocation,
        node: Node,
        user: Option<String>,
    ) -> Result<Allocation> {
        let (lock, mut node) = self.lock(node.uuid, &node.ident()).await?;
        let mut errors = Vec::new();
        if node.provision_state != State::Active {
            errors.push(format!(
                "Node must be in the \"active\" state, but the current state is \"{}\"",
                node.provision_state
            ));
        }
        if a.resource_class.is_some() && a.resource_class != node.resource_class {
            errors.push(format!(
                "Resource class {} does not match the requested resource class {}",
                node.resource_class.as_deref().unwrap_or("None"),
                a.resource_class.as_deref().unwrap_or("None")
            ));
        }
        if !a.traits.iter().all(|t| node.traits.contains(t)) {
            errors.push(format!(
                "List of traits {:?} does not match the requested traits {:?}",
                node.traits, a.traits
            ));
        }
        if !a.candidate_nodes.is_empty() && !a.candidate_nodes.contains(&node.uuid.to_string()) {
            errors.push(format!(
                "Candidate nodes must be empty or contain the target node, but got {:?}",
                a.candidate_nodes
            ));
        }
        if errors.is_empty() {
            if let Some(i) = &node.instance_uuid {
                if *i != a.uuid.to_string() {
                    errors.push(format!(
                        "Node {} is associated with instance {i}.",
                        node.uuid
                    ));
                }
            }
        }
        if !errors.is_empty() {
            drop(lock);
            let msg = format!(
                "Failed to process allocation {}: Cannot backfill an allocation for node {}: {}.",
                a.uuid,
                node.uuid,
                errors.join("; ")
            );
            a.state = AllocationState::Error;
            a.last_error = Some(msg.clone());
            a.updated_at = Some(now());
            self.store().call(move |s| s.save_record(&a)).await?;
            return Err(Error::Invalid(msg));
        }
        a.state = AllocationState::Active;
        a.node_uuid = Some(node.uuid);
        a.updated_at = Some(now());
        take_node(&mut node, &a);
        let note = history(
            Severity::Info,
            "allocation",
            format!("allocation {} backfilled", a.uuid),
            &user,
        );
        self.save_locked_with(node, vec![note], lock, &a).await?;
        Ok(a)
    }

    /// Saves a locked node with its allocation and releases the lock, in
    /// one transaction.
    async fn save_locked_with(
        &self,
        node: Node,
        history: Vec<HistoryEntry>,
        lock: LockGuard,
        a: &Allocation,
    ) -> Result<Node> {
        let write = RecordWrite::put(a)?;
        self.save_locked_writes(node, history, lock, vec![write])
            .await
    }

    /// Deletes an allocation, freeing its node (instance_uuid and
    /// allocation_uuid cleared) in the same transaction.
    pub async fn delete_allocation(&self, ident: &str, user: Option<String>) -> Result<()> {
        let id = ident.to_string();
        let a: Allocation = self.store().call(move |s| s.get_record(&id)).await?;
        let Some(node_uuid) = a.node_uuid else {
            let uuid = a.uuid;
            return Ok(self
                .store()
                .call(move |s| s.delete_record::<Allocation>(uuid))
                .await?);
        };
        let (lock, mut node) = self.lock(node_uuid, &node_uuid.to_string()).await?;
        if let Err(why) = may_deallocate(&node) {
            return Err(Error::InvalidState(format!(
                "Cannot remove allocation {} for node {}, {why}",
                a.uuid, node.uuid
            )));
        }
        release_allocation(&mut node);
        let note = history(
            Severity::Info,
            "allocation",
            format!("allocation {} deleted", a.uuid),
            &user,
        );
        let write = RecordWrite::Delete(Kind::Allocation, a.uuid);
        self.save_locked_writes(node, vec![note], lock, vec![write])
            .await
            .map(drop)
    }

    /// The allocation of a node (`/v1/nodes/{id}/allocation`).
    pub async fn node_allocation(&self, ident: &str) -> Result<Option<Allocation>> {
        let ident = ident.to_string();
        Ok(self
            .store()
            .call(move |s| -> store::Result<Option<Allocation>> {
                let node = s.get_node(&ident)?;
                let list = s.list_records::<Allocation>(
                    &RecordFilter {
                        node: Some(node.uuid),
                        ..Default::default()
                    },
                    store::Page::ALL,
                )?;
                Ok(list.into_iter().next())
            })
            .await?)
    }

    /// Picks again for allocations left `allocating` by a stopped process.
    pub(super) async fn resume_allocations(&self) -> Result<usize> {
        let pending: Vec<Allocation> = self
            .store()
            .call(|s| {
                s.list_records::<Allocation>(
                    &RecordFilter {
                        node: None,
                        fields: vec![("state", Value::from("allocating"))],
                        ..Default::default()
                    },
                    store::Page::ALL,
                )
            })
            .await?;
        let n = pending.len();
        for a in pending {
            let ticket = self.worker_ticket()?;
            let this = self.clone();
            tokio::spawn(async move {
                let _ticket = ticket;
                this.allocate(a, None).await;
            });
        }
        Ok(n)
    }
}

/// Clears what an allocation wrote on its node.
pub(super) fn release_allocation(node: &mut Node) {
    node.allocation_uuid = None;
    node.instance_uuid = None;
    node.updated_at = Some(now());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alloc() -> Allocation {
        Allocation {
            uuid: Uuid::new_v4(),
            created_at: now(),
            updated_at: None,
            candidate_nodes: Vec::new(),
            extra: Map::new(),
            last_error: None,
            name: None,
            owner: None,
            resource_class: Some("gpu".into()),
            state: AllocationState::Allocating,
            traits: vec!["CUSTOM_A".into()],
            node_uuid: None,
        }
    }

    #[test]
    fn which_nodes_suit_an_allocation() {
        let a = alloc();
        let mut base = crate::conductor::tests::fake_node("n1", State::Available);
        base.power_state = Some(PowerState::Off);
        base.resource_class = Some("gpu".into());
        base.traits = vec!["CUSTOM_A".into(), "CUSTOM_B".into()];
        assert!(suits(&base, &a));
        type Case = (&'static str, fn(&mut Node));
        let cases: &[Case] = &[
            ("not available", |n| n.provision_state = State::Manageable),
            ("maintenance", |n| n.maintenance = true),
            ("has an instance", |n| n.instance_uuid = Some("x".into())),
            ("allocated", |n| n.allocation_uuid = Some(Uuid::nil())),
            ("no power state", |n| n.power_state = None),
            ("other class", |n| n.resource_class = Some("cpu".into())),
            ("missing trait", |n| n.traits = vec!["CUSTOM_B".into()]),
        ];
        for (why, change) in cases {
            let mut n = base.clone();
            change(&mut n);
            assert!(!suits(&n, &a), "{why}");
        }
        let mut owned = a.clone();
        owned.owner = Some("p1".into());
        assert!(!suits(&base, &owned));
        let mut n = base.clone();
        n.lessee = Some("p1".into());
        assert!(suits(&n, &owned));
        let mut picky = a.clone();
        picky.candidate_nodes = vec![Uuid::nil().to_string()];
        assert!(!suits(&base, &picky));
    }

    #[test]
    fn deallocation_rules_as_ironic() {
        let mut n = crate::conductor::tests::fake_node("n1", State::Active);
        assert!(may_deallocate(&n).unwrap_err().contains("active"));
        n.maintenance = true;
        assert!(may_deallocate(&n).is_ok());
        n.maintenance = false;
        n.provision_state = State::Available;
        assert!(may_deallocate(&n).is_ok());
        n.provision_state = State::Deploying;
        n.target_provision_state = Some(State::Active);
        assert!(may_deallocate(&n)
            .unwrap_err()
            .contains("updates are not allowed"));
    }

    #[test]
    fn shuffle_keeps_every_element() {
        let mut v: Vec<u32> = (0..50).collect();
        shuffle(&mut v);
        let mut sorted = v.clone();
        sorted.sort();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
    }
}
