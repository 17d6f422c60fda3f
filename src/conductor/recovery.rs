//! Start-up recovery (nodes this appliance held when it stopped) and the
//! shutdown drain of running workflows.

use super::*;
use crate::store::Reservation;

impl Conductor {
    /// What Ironic does when a conductor starts, scoped to this appliance:
    /// the reservations this host held (and those of `take_over_hosts`) are
    /// released, since no task survives a restart, and those of its nodes
    /// left in transient states are failed with a `last_error` saying so. A
    /// transient node nobody holds (no worker anywhere can be running it) is
    /// taken and failed too. Nodes another appliance holds are left to it,
    /// and named in the log. Returns how many nodes moved.
    pub async fn recover(&self) -> Result<usize> {
        let host = self.host().to_string();
        let take_over = self.inner.settings.take_over_hosts.clone();
        let moved = self
            .store()
            .call(move |s| -> Result<usize> {
                let stuck: Vec<State> = State::ALL
                    .iter()
                    .copied()
                    .filter(|s| s.is_stuck_after_restart())
                    .collect();
                // (node, the host whose reservation it is under)
                let mut held: Vec<(Node, String)> = Vec::new();
                for h in std::iter::once(&host).chain(&take_over) {
                    held.extend(s.nodes_reserved_by(h)?.into_iter().map(|n| (n, h.clone())));
                }
                for n in s.nodes_in_states(&stuck)? {
                    match &n.reservation {
                        None => {
                            // Taken first, so nobody else takes it meanwhile.
                            if let Reservation::Taken(n) = s.reserve(n.uuid, &host)? {
                                held.push((*n, host.clone()));
                            }
                        }
                        Some(other) if *other != host && !take_over.contains(other) => {
                            tracing::warn!(
                                node = %n.uuid,
                                holder = %other,
                                state = %n.provision_state,
                                "node left to the appliance that holds it; if {other} is gone for good, add it to [conductor] take_over_hosts"
                            );
                        }
                        Some(_) => {}
                    }
                }
                let mut moved = 0;
                for (mut node, holder) in held {
                    let from = node.provision_state;
                    node.target_power_state = None;
                    let mut history = Vec::new();
                    if let Some(to) = states::next(from, Event::Fail).filter(|_| from.is_stuck_after_restart()) {
                        let msg = format!(
                            "The {from} state can't be resumed by conductor {holder}: the appliance restarted while the node was {from}. Moving to fail state."
                        );
                        node.enter(to);
                        node.last_error = Some(msg.clone());
                        node.updated_at = Some(now());
                        tracing::warn!(node = %node.uuid, %from, %to, "failing node left in a transient state at start-up");
                        history.push(HistoryEntry::new(
                            Severity::Error,
                            "startup",
                            format!("{from} -> {to}: {msg}"),
                        ));
                        moved += 1;
                    }
                    s.save_node(&node, &history, Some(&holder))?;
                }
                Ok(moved)
            })
            .await?;
        let resumed = self.resume_allocations().await?;
        if resumed > 0 {
            tracing::info!(resumed, "allocations left allocating are picked again");
        }
        Ok(moved)
    }

    /// Stops accepting work and waits up to `timeout` for running workflows.
    /// Returns how many were still running when the wait ended.
    pub async fn drain(&self, timeout: Duration) -> usize {
        self.inner.stopping.store(true, Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let idle = self.inner.idle.notified();
            let running = self.inner.running.load(Ordering::SeqCst);
            if running == 0 {
                return 0;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return self.inner.running.load(Ordering::SeqCst);
            }
        }
    }
}
