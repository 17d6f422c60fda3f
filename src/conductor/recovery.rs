//! Start-up recovery (nodes this appliance held when it stopped) and the
//! shutdown drain of running workflows.

use super::*;

impl Conductor {
    /// What Ironic does when a conductor starts, scoped to this appliance:
    /// the reservations this host held are released (no task survives a
    /// restart), and those of its nodes left in transient states are failed
    /// with a `last_error` saying so. A transient node nobody holds (no
    /// worker anywhere can be running it) is failed too; nodes another
    /// appliance holds are left to it. Returns how many nodes moved.
    pub async fn recover(&self) -> Result<usize> {
        let host = self.host().to_string();
        self.store()
            .call(move |s| -> Result<usize> {
                let stuck: Vec<State> = State::ALL
                    .iter()
                    .copied()
                    .filter(|s| s.is_stuck_after_restart())
                    .collect();
                let orphans = s
                    .nodes_in_states(&stuck)?
                    .into_iter()
                    .filter(|n| n.reservation.is_none());
                let mut moved = 0;
                for mut node in s.nodes_reserved_by(&host)?.into_iter().chain(orphans) {
                    let from = node.provision_state;
                    node.target_power_state = None;
                    let mut history = Vec::new();
                    if let Some(to) = states::next(from, Event::Fail).filter(|_| from.is_stuck_after_restart()) {
                        let msg = format!(
                            "The {from} state can't be resumed by conductor {host}: the appliance restarted while the node was {from}. Moving to fail state."
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
                    s.save_node(&node, &history, Some(&host))?;
                }
                Ok(moved)
            })
            .await
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
