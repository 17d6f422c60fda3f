//! Power actions, boot devices and interface validation.

use super::*;

impl Conductor {
    /// Starts a power action; returns once `target_power_state` is recorded.
    pub async fn set_power(
        &self,
        ident: &str,
        target: PowerState,
        user: Option<String>,
    ) -> Result<()> {
        let node = self.load(ident).await?;
        if matches!(node.provision_state, State::Cleaning | State::CleanWait) {
            return Err(Error::InvalidStateRequested {
                action: target.to_string(),
                node: ident.to_string(),
                state: node.provision_state.to_string(),
            });
        }
        let (lock, mut node) = self.lock(node.uuid, ident).await?;
        if matches!(target, PowerState::Off | PowerState::SoftOff) && node.disable_power_off {
            return Err(Error::InvalidState(format!(
                "Node {ident} cannot be powered off: disable_power_off is set"
            )));
        }
        let bundle = self.bundle(&node)?;
        bundle.power.validate(&node).map_err(|e| {
            Error::Invalid(format!(
                "Failed to validate power driver interface for node {}: {e}",
                node.uuid
            ))
        })?;
        let ticket = self.worker_ticket()?;
        node.target_power_state = Some(target.settled());
        node.last_error = None;
        node.updated_at = Some(now());
        let h = history(
            Severity::Info,
            "power",
            format!("power action requested: {target}"),
            &user,
        );
        self.launch(ticket, lock, node, h, Job::Power(target)).await
    }

    /// Sets the boot device through the management interface.
    pub async fn set_boot_device(&self, ident: &str, device: &str, persistent: bool) -> Result<()> {
        let (lock, node) = self.lock_ident(ident).await?;
        let bundle = self.bundle(&node)?;
        if !bundle.management.supported_boot_devices().contains(&device) {
            return Err(Error::Invalid(format!(
                "Invalid boot device {device} specified; supported: {}",
                bundle.management.supported_boot_devices().join(", ")
            )));
        }
        bundle
            .management
            .validate(&node)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        let mut task = self.task(node).await?;
        let res = bundle
            .management
            .set_boot_device(&mut task, device, persistent)
            .await;
        let mut records = task.take_records();
        if let Err(e) = &res {
            records.push(HistoryEntry::new(
                Severity::Error,
                "management",
                format!("set boot device {device} failed: {e}"),
            ));
        }
        self.save_locked(task.node, records, lock).await?;
        res.map_err(|e| Error::Invalid(e.to_string()))
    }

    /// Sends an NMI through the management interface (Ironic's inject_nmi).
    pub async fn inject_nmi(&self, ident: &str, user: Option<String>) -> Result<()> {
        let (lock, node) = self.lock_ident(ident).await?;
        let bundle = self.bundle(&node)?;
        bundle
            .management
            .validate(&node)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        let mut task = self.task(node).await?;
        let res = bundle.management.inject_nmi(&mut task).await;
        let mut records = task.take_records();
        records.push(match &res {
            Ok(done) => history(Severity::Info, "management", done.clone(), &user),
            Err(e) => history(
                Severity::Error,
                "management",
                format!("inject NMI failed: {e}"),
                &user,
            ),
        });
        self.save_locked(task.node, records, lock).await?;
        res.map(drop).map_err(|e| Error::Invalid(e.to_string()))
    }

    /// Reads the boot device through the management interface.
    pub async fn get_boot_device(&self, ident: &str) -> Result<(Option<String>, Option<bool>)> {
        let node = self.load(ident).await?;
        let bundle = self.bundle(&node)?;
        let task = self.task(node).await?;
        bundle
            .management
            .get_boot_device(&task)
            .await
            .map_err(|e| Error::Invalid(e.to_string()))
    }

    /// The boot devices a node's management interface supports.
    pub async fn supported_boot_devices(&self, ident: &str) -> Result<Vec<String>> {
        let node = self.load(ident).await?;
        let bundle = self.bundle(&node)?;
        Ok(bundle
            .management
            .supported_boot_devices()
            .iter()
            .map(|s| s.to_string())
            .collect())
    }

    /// Validates every interface of a node, as `GET …/validate` reports it.
    pub async fn validate(
        &self,
        ident: &str,
    ) -> Result<Vec<(&'static str, Option<bool>, Option<String>)>> {
        let node = self.load(ident).await?;
        let bundle = self.bundle(&node)?;
        let task = self.task(node.clone()).await?;
        let verdict = |r: drivers::Result<()>| match r {
            Ok(()) => (Some(true), None),
            Err(e) => (Some(false), Some(e.to_string())),
        };
        let mut out = Vec::new();
        // Every kind Ironic reports, i.e. all but vendor.
        for kind in Interfaces::KINDS.into_iter().filter(|k| *k != "vendor") {
            let (result, reason) = match kind {
                "power" => verdict(bundle.power.validate(&node)),
                "management" => verdict(bundle.management.validate(&node)),
                "boot" => verdict(bundle.boot.validate(&task).await),
                "deploy" => verdict(bundle.deploy.validate(&node)),
                "network" => (Some(true), None),
                other => match node.interfaces.get(other) {
                    Some("fake") => (Some(true), None),
                    _ => (None, Some("not supported".to_string())),
                },
            };
            out.push((kind, result, reason));
        }
        Ok(out)
    }
}
