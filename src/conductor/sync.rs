//! The power-state sync loop: every interval, read each node's power state
//! with bounded concurrency and store it; where enforcement is on, push the
//! recorded state back to a machine that drifted (this is how the state first
//! seen at `manage` is enforced on adopted nodes); after repeated BMC failures
//! put the node in maintenance with fault "power failure", and take it out
//! again by itself once the BMC answers. Every enforcement, failure and
//! recovery lands in the node history; routine reads do not.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use super::Conductor;
use crate::model::{now, HistoryEntry, Node, Severity};

/// Sync loop settings (`[conductor]` keys).
#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// Period; zero turns the loop off.
    pub interval: Duration,
    /// Push the recorded state back to a machine that drifted.
    pub force_power_state: bool,
    /// Consecutive failures tolerated before maintenance.
    pub max_retries: u32,
    /// Nodes read at once.
    pub workers: usize,
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            interval: Duration::from_secs(60),
            force_power_state: true,
            max_retries: 3,
            workers: 8,
        }
    }
}

/// The fault Ironic records for a node whose BMC stopped answering.
pub const POWER_FAILURE: &str = "power failure";
const FAILURES_KEY: &str = crate::model::internal::POWER_SYNC_FAILURES;

/// What one pass did (for logs and tests).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub checked: usize,
    pub enforced: usize,
    pub failed: usize,
    pub recovered: usize,
}

/// What happened to one node.
enum Outcome {
    Skipped,
    Checked,
    Enforced,
    Failed,
    Recovered,
}

impl Outcome {
    /// The `/metrics` outcome of a read (none for a skipped node).
    fn metric(&self) -> Option<&'static str> {
        Some(match self {
            Outcome::Skipped => return None,
            Outcome::Checked => "checked",
            Outcome::Enforced => "enforced",
            Outcome::Failed => "failed",
            Outcome::Recovered => "recovered",
        })
    }
}

impl Conductor {
    /// Runs the loop until `stop` turns true.
    pub async fn run_power_sync(&self, mut stop: watch::Receiver<bool>) {
        let interval = self.inner.settings.sync.interval;
        if interval.is_zero() {
            tracing::info!("power-state sync disabled (sync_power_state_interval = 0)");
            return;
        }
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
            let started = tokio::time::Instant::now();
            let report = self.sync_power_once().await;
            if report != Report::default() {
                tracing::info!(
                    checked = report.checked,
                    enforced = report.enforced,
                    failed = report.failed,
                    recovered = report.recovered,
                    elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
                    "power-state sync pass"
                );
            }
        }
    }

    /// One pass over every node.
    pub async fn sync_power_once(&self) -> Report {
        let nodes = match self
            .store()
            .call(|s| s.list_nodes(&Default::default(), crate::store::Page::ALL))
            .await
        {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "power-state sync cannot list nodes");
                return Report::default();
            }
        };
        let slots = Arc::new(Semaphore::new(self.inner.settings.sync.workers.max(1)));
        let mut set = JoinSet::new();
        for node in nodes {
            let this = self.clone();
            let slots = slots.clone();
            set.spawn(async move {
                let Ok(_slot) = slots.acquire_owned().await else {
                    return Outcome::Skipped;
                };
                this.sync_node(node).await
            });
        }
        let mut report = Report::default();
        while let Some(r) = set.join_next().await {
            if let Ok(o) = &r {
                if let Some(name) = o.metric() {
                    crate::metrics::power_sync(name);
                }
            }
            match r {
                Ok(Outcome::Skipped) | Err(_) => {}
                Ok(Outcome::Checked) => report.checked += 1,
                Ok(Outcome::Enforced) => {
                    report.checked += 1;
                    report.enforced += 1
                }
                Ok(Outcome::Failed) => report.failed += 1,
                Ok(Outcome::Recovered) => {
                    report.checked += 1;
                    report.recovered += 1
                }
            }
        }
        report
    }

    async fn sync_node(&self, node: Node) -> Outcome {
        let in_power_failure = node.maintenance && node.fault.as_deref() == Some(POWER_FAILURE);
        if node.provision_state.sync_excluded()
            || node.target_power_state.is_some()
            || node.reservation.is_some()
            || (node.maintenance && !in_power_failure)
        {
            return Outcome::Skipped;
        }
        let Ok(bundle) = self.bundle(&node) else {
            return Outcome::Skipped;
        };
        if bundle.power.validate(&node).is_err() {
            return Outcome::Skipped;
        }
        let had_failures = node.driver_internal_info.contains_key(FAILURES_KEY);
        let read_version = node.version;
        let Ok(mut task) = self.task(node).await else {
            return Outcome::Skipped;
        };
        // The read takes no lock (Ironic's shared lock): a routine match
        // writes nothing, so it need not hold the node.
        let read = bundle.power.get_power_state(&task).await;
        let _ = task.take_records(); // routine reads stay out of the history
        let routine = match &read {
            Ok(actual) => {
                !in_power_failure
                    && !had_failures
                    && task.node.power_state.is_none_or(|p| p == *actual)
            }
            Err(_) => false,
        };
        if routine {
            return Outcome::Checked;
        }
        // Anything else writes or enforces: take the node's lock (Ironic's
        // upgrade_lock), on the copy that was read. A node that changed or
        // got busy meanwhile is left to the next pass.
        let Some((lock, node)) = self.try_lock(task.node.uuid).await else {
            return Outcome::Skipped;
        };
        if node.version != read_version {
            return Outcome::Skipped;
        }
        task.node = node;
        let max = self.inner.settings.sync.max_retries;
        let mut history = Vec::new();
        let outcome = match read {
            Err(e) => {
                let failures = task
                    .node
                    .driver_internal_info
                    .get(FAILURES_KEY)
                    .and_then(Value::as_u64)
                    .unwrap_or(0)
                    + 1;
                task.node
                    .driver_internal_info
                    .insert(FAILURES_KEY.into(), Value::from(failures));
                if failures > u64::from(max) && !task.node.maintenance {
                    let msg = format!(
                        "During sync_power_state, max retries exceeded for node {}: {e}. Switching node to maintenance mode.",
                        task.node.uuid
                    );
                    task.node.maintenance = true;
                    task.node.fault = Some(POWER_FAILURE.into());
                    task.node.maintenance_reason = Some(msg.clone());
                    task.node.last_error = Some(msg.clone());
                    history.push(HistoryEntry::new(Severity::Error, "power", msg));
                } else {
                    history.push(HistoryEntry::new(
                        Severity::Warning,
                        "power",
                        format!("power-state sync failed ({failures} in a row): {e}"),
                    ));
                }
                Outcome::Failed
            }
            Ok(actual) => {
                task.node.driver_internal_info.remove(FAILURES_KEY);
                let mut outcome = Outcome::Checked;
                if in_power_failure {
                    task.node.maintenance = false;
                    task.node.fault = None;
                    task.node.maintenance_reason = None;
                    history.push(HistoryEntry::new(
                        Severity::Info,
                        "power",
                        format!("BMC answers again (power state {actual}); maintenance for power failure cleared"),
                    ));
                    outcome = Outcome::Recovered;
                }
                match task.node.power_state {
                    None => task.node.power_state = Some(actual),
                    Some(recorded) if recorded == actual => {}
                    Some(recorded)
                        if self.inner.settings.sync.force_power_state
                            && !task.node.maintenance
                            && !task.node.disable_power_off =>
                    {
                        match bundle.power.set_power_state(&task, recorded).await {
                            Ok(()) => history.push(HistoryEntry::new(
                                Severity::Warning,
                                "power",
                                format!("power state enforced: the machine was {actual}, the recorded state is {recorded}; set it back to {recorded}"),
                            )),
                            Err(e) => history.push(HistoryEntry::new(
                                Severity::Error,
                                "power",
                                format!("could not enforce the recorded power state {recorded} (machine is {actual}): {e}"),
                            )),
                        }
                        outcome = Outcome::Enforced;
                    }
                    Some(recorded) => {
                        history.push(HistoryEntry::new(
                            Severity::Info,
                            "power",
                            format!("power state changed outside the appliance: {recorded} -> {actual} (recorded)"),
                        ));
                        task.node.power_state = Some(actual);
                    }
                }
                outcome
            }
        };
        history.extend(task.take_records());
        // A routine match writes nothing; anything else is saved with its history.
        if !history.is_empty() || had_failures || matches!(outcome, Outcome::Failed) {
            task.node.updated_at = Some(now());
            if let Err(e) = self.save_locked(task.node, history, lock).await {
                tracing::error!(error = %e, "power-state sync cannot save a node");
            }
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conductor::tests::{conductor, fake_node};
    use crate::conductor::Settings;
    use crate::model::{PowerState, State};

    #[tokio::test]
    async fn fake_nodes_sync_quietly_and_excluded_states_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let c = conductor(&dir, Settings::default());
        for (name, state) in [
            ("a", State::Active),
            ("e", State::Enroll),
            ("f", State::AdoptFailed),
        ] {
            let mut n = fake_node(name, state);
            n.power_state = Some(PowerState::On);
            c.store()
                .create_node(&n, &HistoryEntry::new(Severity::Info, "test", "seeded"))
                .unwrap();
        }
        let report = c.sync_power_once().await;
        assert_eq!(
            report,
            Report {
                checked: 1,
                ..Default::default()
            },
            "enroll and adopt failed are excluded"
        );
        let a = c.load("a").await.unwrap();
        assert_eq!(
            c.store().node_history(a.uuid).unwrap().len(),
            1,
            "a routine read writes no history"
        );
    }
}
