//! Worker tasks: the worker slot and lock a workflow carries, the launch
//! that commits its begin state, and the commit of its outcome.

use super::*;

/// The workflow a worker runs after the transition was committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Job {
    Verify,
    Adopt,
    Clean,
    Deploy,
    TearDown,
    /// Boot the agent ramdisk for inspection.
    Inspect,
    /// Apply the inspection data the agent posted.
    ProcessInspection,
    /// Move automated cleaning on through the agent (after a heartbeat).
    AgentClean,
    /// Move a direct deploy on through the agent (after a heartbeat).
    AgentDeploy,
    Power(PowerState),
}

/// Counts a running workflow for the shutdown drain, however it ends.
struct RunningGuard {
    inner: Arc<Inner>,
}

impl RunningGuard {
    fn new(inner: Arc<Inner>) -> RunningGuard {
        inner.running.fetch_add(1, Ordering::SeqCst);
        RunningGuard { inner }
    }
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        if self.inner.running.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.inner.idle.notify_waiters();
        }
    }
}

/// A worker slot, carried by a spawned workflow beside the node's lock.
pub(super) struct WorkerTicket {
    _permit: tokio::sync::OwnedSemaphorePermit,
    /// Counted from the moment the ticket exists, so a drain that starts
    /// between the ticket and the task still waits for it.
    _running: RunningGuard,
}

impl Conductor {
    pub(super) fn worker_ticket(&self) -> Result<WorkerTicket> {
        // Count first, then look at `stopping`: a drain that set it after
        // this point sees the count and waits.
        let running = RunningGuard::new(self.inner.clone());
        if self.inner.stopping.load(Ordering::SeqCst) {
            return Err(Error::ShuttingDown);
        }
        let permit = self
            .inner
            .workers
            .clone()
            .try_acquire_owned()
            .map_err(|_| Error::NoFreeWorker)?;
        Ok(WorkerTicket {
            _permit: permit,
            _running: running,
        })
    }

    /// Commits the node's begin state and runs its workflow in a task of its
    /// own, so a cancelled request (client gone, request timeout) can neither
    /// lose the workflow nor leave a reserved node without one. Returns once
    /// the begin state is committed, after waiting up to `answer_wait` for a
    /// quick workflow to finish.
    pub(super) async fn launch(
        &self,
        ticket: WorkerTicket,
        lock: LockGuard,
        node: Node,
        begin: HistoryEntry,
        job: Job,
    ) -> Result<()> {
        self.launch_noting(ticket, lock, node, vec![begin], job)
            .await
    }

    /// [`Conductor::launch`] with several history entries for the begin
    /// state (committed with it in one write).
    pub(super) async fn launch_noting(
        &self,
        ticket: WorkerTicket,
        lock: LockGuard,
        node: Node,
        begin: Vec<HistoryEntry>,
        job: Job,
    ) -> Result<()> {
        let (begun_tx, begun_rx) = tokio::sync::oneshot::channel::<Result<()>>();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let this = self.clone();
        tokio::spawn(async move {
            let _ticket = ticket;
            let uuid = node.uuid;
            let node = match this.save(node, begin).await {
                Ok(node) => node,
                Err(e) => {
                    let _ = begun_tx.send(Err(e));
                    return;
                }
            };
            let _ = begun_tx.send(Ok(()));
            // The workflow runs in a nested task so that a panic in a driver
            // is caught here and the node is failed instead of left reserved.
            let worker = this.clone();
            let problem = match tokio::spawn(async move { worker.run(node, job, lock).await }).await
            {
                Ok(Ok(())) => None,
                Ok(Err(e)) => {
                    // The full error (a database message) stays in the log.
                    tracing::error!(node = %uuid, ?job, error = %e, "the workflow could not record its outcome");
                    Some(
                        "the workflow could not record its outcome; see the appliance log"
                            .to_string(),
                    )
                }
                Err(e) if e.is_panic() => Some(
                    "the workflow failed unexpectedly (internal error); see the appliance log"
                        .to_string(),
                ),
                Err(_) => Some("the workflow was cancelled".to_string()),
            };
            if let Some(msg) = problem {
                tracing::error!(node = %uuid, ?job, "{msg}");
                if let Err(e) = this.fail_node(uuid, job, &msg).await {
                    tracing::error!(node = %uuid, error = %e, "cannot record the failed workflow");
                }
            }
            let _ = done_tx.send(());
        });
        match begun_rx.await {
            Ok(r) => r?,
            Err(_) => {
                return Err(Error::Store(store::Error::Database(
                    "the workflow task ended before it started".into(),
                )))
            }
        }
        let _ = tokio::time::timeout(self.inner.settings.answer_wait, done_rx).await;
        Ok(())
    }

    /// Fails a node whose workflow ended abnormally: the failure transition
    /// (where the table has one), `last_error`, and the reservation released.
    pub(super) async fn fail_node(&self, uuid: Uuid, job: Job, msg: &str) -> Result<()> {
        let (lock, mut node) = self.lock(uuid, &uuid.to_string()).await?;
        node.updated_at = Some(now());
        node.last_error = Some(msg.to_string());
        if matches!(job, Job::Power(_)) {
            node.target_power_state = None;
        } else if let Some(to) = states::next(node.provision_state, Event::Fail) {
            node.enter(to);
        }
        let h = HistoryEntry::new(
            Severity::Error,
            "provisioning",
            format!("workflow ended abnormally: {msg}"),
        );
        self.save_locked(node, vec![h], lock).await.map(drop)
    }

    pub(super) async fn run(&self, node: Node, job: Job, lock: LockGuard) -> Result<()> {
        let bundle = match self.bundle(&node) {
            Ok(b) => b,
            Err(e) => {
                return self
                    .finish(node, Err(e.to_string()), Vec::new(), job, lock)
                    .await
            }
        };
        let mut task = self.task(node).await?;
        let started = std::time::Instant::now();
        let outcome = match job {
            Job::Verify => self.verify(&mut task, &bundle).await,
            Job::Adopt => self.adopt(&mut task, &bundle).await,
            Job::Clean => self.clean(&mut task, &bundle).await,
            Job::Deploy => self.deploy(&mut task, &bundle).await,
            Job::TearDown => self.tear_down(&mut task, &bundle).await,
            Job::Inspect => self.inspect(&mut task, &bundle).await,
            Job::ProcessInspection => self.process_inspection(&mut task, &bundle).await,
            Job::AgentClean => self.agent_clean(&mut task, &bundle).await,
            Job::AgentDeploy => self.agent_deploy(&mut task, &bundle).await,
            Job::Power(target) => self.power_action(&mut task, &bundle, target).await,
        };
        let name = match job {
            Job::Verify => "manage",
            Job::Adopt => "adopt",
            Job::Clean => "clean",
            Job::Deploy => "deploy",
            Job::TearDown => "undeploy",
            Job::Inspect => "inspect",
            Job::ProcessInspection => "inspection data",
            Job::AgentClean => "clean step",
            Job::AgentDeploy => "deploy step",
            Job::Power(_) => "power",
        };
        let result = match &outcome {
            Ok(Some(Event::Wait)) => "wait",
            Ok(_) => "done",
            Err(_) => "failed",
        };
        crate::metrics::workflow(name, result, started.elapsed().as_secs_f64());
        let records = task.take_records();
        self.finish(task.node, outcome, records, job, lock).await
    }

    /// Commits a workflow's outcome, its records and the release of the
    /// reservation in one transaction.
    pub(super) async fn finish(
        &self,
        mut node: Node,
        outcome: std::result::Result<Option<Event>, String>,
        mut records: Vec<HistoryEntry>,
        job: Job,
        lock: LockGuard,
    ) -> Result<()> {
        node.updated_at = Some(now());
        if let Job::Power(target) = job {
            node.target_power_state = None;
            match outcome {
                Ok(_) => records.push(HistoryEntry::new(
                    Severity::Info,
                    "power",
                    format!(
                        "power action {target} done; power state {}",
                        node.power_state
                            .map(|p| p.to_string())
                            .unwrap_or_else(|| "unknown".into())
                    ),
                )),
                Err(e) => {
                    let msg = format!(
                        "Failed to change power state to '{}' for node {}: {e}",
                        target.settled(),
                        node.uuid
                    );
                    records.push(HistoryEntry::new(Severity::Error, "power", msg.clone()));
                    node.last_error = Some(msg);
                }
            }
            return self.save_locked(node, records, lock).await.map(drop);
        }
        let from = node.provision_state;
        let (event, error) = match outcome {
            Ok(Some(ev)) => (ev, None),
            Ok(None) => (Event::Done, None),
            Err(e) => (Event::Fail, Some(e)),
        };
        let (to, error) = match states::next(from, event) {
            Some(to) => (to, error),
            None => {
                let msg = format!(
                    "internal error: the workflow ended with event \"{event}\", which state \"{from}\" does not accept"
                );
                tracing::error!(node = %node.uuid, "{msg}");
                let to = states::next(from, Event::Fail).unwrap_or(from);
                (
                    to,
                    Some(error.map(|e| format!("{e}; {msg}")).unwrap_or(msg)),
                )
            }
        };
        node.enter(to);
        match &error {
            Some(e) => {
                node.last_error = Some(e.clone());
                records.push(HistoryEntry::new(
                    Severity::Error,
                    "provisioning",
                    format!("{from} -> {to}: {e}"),
                ));
                tracing::warn!(node = %node.uuid, %from, %to, error = %e, "workflow failed");
            }
            None => {
                records.push(HistoryEntry::new(
                    Severity::Info,
                    "provisioning",
                    format!("{from} -> {to}"),
                ));
                tracing::info!(node = %node.uuid, %from, %to, "workflow done");
            }
        }
        self.save_locked(node, records, lock).await.map(drop)
    }
}
