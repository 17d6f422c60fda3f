//! The workflows a worker runs: verify, adopt, clean, deploy, tear down,
//! power action. Each returns the event that ends it (or an error text).

use super::*;

impl Conductor {
    pub(super) async fn verify(
        &self,
        task: &mut Task,
        b: &Bundle,
    ) -> std::result::Result<Option<Event>, String> {
        let uuid = task.node.uuid;
        b.power.validate(&task.node).map_err(|e| {
            format!("Failed to validate power driver interface for node {uuid}. Error: {e}")
        })?;
        let state = b
            .power
            .get_power_state(task)
            .await
            .map_err(|e| format!("Failed to get power state for node {uuid}. Error: {e}"))?;
        task.node.power_state = Some(state);
        task.node.driver_internal_info.insert(
            internal::FIRST_POWER_STATE.into(),
            Value::String(state.to_string()),
        );
        task.record(
            Severity::Info,
            "power",
            format!("first observed power state: {state} (recorded for enforcement)"),
        );
        Ok(None)
    }

    /// Adoption: validates boot, stages, takes over. Sends nothing to the
    /// machine — no power, boot-device or disk command.
    pub(super) async fn adopt(
        &self,
        task: &mut Task,
        b: &Bundle,
    ) -> std::result::Result<Option<Event>, String> {
        let uuid = task.node.uuid;
        let wrap = |step: &str, e: drivers::Error| {
            format!("Error while attempting to adopt node {uuid}: {step} failed: {e}.")
        };
        b.boot
            .validate(task)
            .await
            .map_err(|e| wrap("boot interface validation", e))?;
        b.deploy
            .prepare(task)
            .await
            .map_err(|e| wrap("deploy preparation", e))?;
        b.boot
            .prepare_instance(task)
            .await
            .map_err(|e| wrap("boot preparation", e))?;
        b.deploy
            .take_over(task)
            .await
            .map_err(|e| wrap("takeover", e))?;
        task.node.set_adopted(Some(now()));
        Ok(None)
    }

    pub(super) async fn clean(
        &self,
        task: &mut Task,
        b: &Bundle,
    ) -> std::result::Result<Option<Event>, String> {
        let manual = task
            .node
            .driver_internal_info
            .contains_key(super::agent_clean::MANUAL_CLEAN_STEPS);
        if manual && !b.deploy.cleaning_touches_disks() {
            return Err(format!(
                "Failed to clean node {}: its deploy interface {} runs no clean steps; manual cleaning runs the agent's (deploy interface direct or ramdisk)",
                task.node.uuid, task.node.interfaces.deploy
            ));
        }
        if manual || (self.automated_clean(&task.node) && b.deploy.cleaning_touches_disks()) {
            // Boot the deploy ramdisk and wait for its call-back (clean wait).
            let uuid = task.node.uuid;
            let fail =
                |e: drivers::Error| format!("Failed to prepare node {uuid} for cleaning: {e}");
            let how = b.boot.prepare_ramdisk(task, b).await.map_err(fail)?;
            // A new boot of the ramdisk gets a new token at its lookup, and
            // a new plan of clean steps from its agent.
            task.node.wipe_agent();
            super::agent_clean::forget_cleaning(&mut task.node);
            let timeout = self.inner.settings.clean_callback_timeout;
            let deadline = self.unix_now() + timeout.as_secs() as i64;
            task.node.set_callback_deadline(Some(deadline));
            task.record(
                Severity::Info,
                "provisioning",
                format!(
                    "cleaning: booting the deploy ramdisk ({how}); waiting up to {} s for its call-back",
                    timeout.as_secs()
                ),
            );
            return Ok(Some(Event::Wait));
        }
        task.record(
            Severity::Info,
            "provisioning",
            "cleaning skipped (automated cleaning off or nothing to clean)",
        );
        Ok(None)
    }

    pub(super) async fn deploy(
        &self,
        task: &mut Task,
        b: &Bundle,
    ) -> std::result::Result<Option<Event>, String> {
        let uuid = task.node.uuid;
        b.deploy
            .validate(&task.node)
            .map_err(|e| format!("Failed to validate deploy interface for node {uuid}: {e}"))?;
        let outcome = b
            .deploy
            .deploy(task, b)
            .await
            .map_err(|e| format!("Deploy of node {uuid} failed: {e}"))?;
        task.node.set_adopted(None);
        Ok(Some(match outcome {
            DeployOutcome::Done => Event::Done,
            DeployOutcome::Wait => {
                // A new boot of the ramdisk: a new token, and a direct
                // deploy's steps start over (a retry after a failure).
                task.node.wipe_agent();
                super::agent_deploy::forget_deploy(&mut task.node);
                let deadline =
                    self.unix_now() + self.inner.settings.deploy_callback_timeout.as_secs() as i64;
                task.node.set_callback_deadline(Some(deadline));
                task.record(
                    Severity::Info,
                    "provisioning",
                    format!(
                        "waiting up to {} s for the ramdisk to call back (heartbeat)",
                        self.inner.settings.deploy_callback_timeout.as_secs()
                    ),
                );
                Event::Wait
            }
        }))
    }

    /// Tear-down then (maybe) cleaning: deleting → cleaning → available.
    pub(super) async fn tear_down(
        &self,
        task: &mut Task,
        b: &Bundle,
    ) -> std::result::Result<Option<Event>, String> {
        let uuid = task.node.uuid;
        b.deploy
            .tear_down(task, b)
            .await
            .map_err(|e| format!("Failed to tear down node {uuid}: {e}"))?;
        task.node.instance_info.clear();
        task.node.instance_uuid = None;
        task.node.wipe_agent();
        // The instance's allocation goes with it (Ironic's tear-down).
        let allocation = task.node.allocation_uuid.take();
        // "adopted" stays: without cleaning, the disks still hold what the
        // machine ran, so provide keeps needing consent.
        // deleting --clean--> cleaning, recorded before cleaning runs.
        let mut node = task.node.clone();
        let from = node.provision_state;
        let Some(cleaning) = states::next(from, Event::Clean) else {
            return Err(format!(
                "internal error: the state table has no cleaning after {from}"
            ));
        };
        node.enter(cleaning);
        let mut records = task.take_records();
        records.push(HistoryEntry::new(
            Severity::Info,
            "provisioning",
            "deleting -> cleaning",
        ));
        let writes: Vec<_> = allocation
            .map(|a| crate::store::RecordWrite::Delete(crate::store::Kind::Allocation, a))
            .into_iter()
            .collect();
        task.node = self
            .save_with(node, records, writes)
            .await
            .map_err(|e| e.to_string())?;
        self.clean(task, b).await
    }

    pub(super) async fn power_action(
        &self,
        task: &mut Task,
        b: &Bundle,
        target: PowerState,
    ) -> std::result::Result<Option<Event>, String> {
        let timeout = task.settings.power_state_change_timeout;
        match tokio::time::timeout(timeout, b.power.set_power_state(task, target)).await {
            Err(_) => Err(format!("no result within {}s", timeout.as_secs())),
            Ok(Err(e)) => Err(e.to_string()),
            Ok(Ok(())) => {
                task.node.power_state = Some(target.settled());
                Ok(None)
            }
        }
    }
}
