//! Provision verbs: the table's checks, the adopted-node guard, and the
//! commit of the begin state before a workflow runs.

use super::*;

impl Conductor {
    /// Runs a provision verb (`manage`, `adopt`, `provide`, `active`, …).
    /// Returns once the node is in its next state (transient or final).
    pub async fn provision(&self, ident: &str, target: &str, opts: ProvisionOptions) -> Result<()> {
        let api = states::api_target(target).ok_or_else(|| Error::InvalidStateRequested {
            action: target.to_string(),
            node: ident.to_string(),
            state: "unknown".into(),
        })?;
        let event = api.event;
        let node = self.load(ident).await?;
        let not_actionable = |node: &Node| Error::InvalidStateRequested {
            action: target.to_string(),
            node: ident.to_string(),
            state: node.provision_state.to_string(),
        };
        if !states::is_actionable(node.provision_state, event) {
            if let Some(holder) = &node.reservation {
                return Err(Error::NodeLocked {
                    node: ident.to_string(),
                    host: holder.clone(),
                });
            }
            return Err(not_actionable(&node));
        }
        if matches!(event, Event::Deploy | Event::Rebuild | Event::Clean) && node.maintenance {
            return Err(Error::NodeInMaintenance {
                action: target.to_string(),
                node: ident.to_string(),
            });
        }
        let (lock, mut node) = self.lock(node.uuid, ident).await?;
        let from = node.provision_state;
        let Some(to) = states::next(from, event) else {
            return Err(not_actionable(&node));
        };
        let used_extra_consent = self.check_provision(&node, event, target, &opts)?;
        if used_extra_consent {
            // Consent through `extra` is for one action, not forever.
            node.extra.remove(CONSENT_KEY);
        }

        let job = match (from, event) {
            (State::Enroll, Event::Manage) => Some(Job::Verify),
            (_, Event::Adopt) => Some(Job::Adopt),
            (State::Manageable, Event::Provide) => Some(Job::Clean),
            (State::Manageable, Event::Clean) => Some(Job::Clean),
            (_, Event::Deploy) | (_, Event::Rebuild) => Some(Job::Deploy),
            (_, Event::Delete) => Some(Job::TearDown),
            (_, Event::Inspect) => Some(Job::Inspect),
            (State::InspectWait, Event::Abort) => {
                return self
                    .abort_wait(lock, node, inspection::INSPECT_ABORTED, &opts.user)
                    .await
            }
            (State::CleanWait, Event::Abort) => {
                return self.abort_cleaning(lock, node, &opts.user).await;
            }
            _ => None,
        };
        let Some(job) = job else {
            // Synchronous transitions: manage back to manageable, abort.
            node.enter(to);
            if event == Event::Abort {
                node.last_error = Some(format!("{from} aborted by request"));
            }
            node.updated_at = Some(now());
            let h = history(
                Severity::Info,
                "provisioning",
                format!("{target}: {from} -> {to}"),
                &opts.user,
            );
            self.save_locked(node, vec![h], lock).await?;
            return Ok(());
        };
        let ticket = self.worker_ticket()?;
        if let (Event::Deploy | Event::Rebuild, Some(cd)) = (event, &opts.configdrive) {
            // As Ironic's do_node_deploy: the agent gets it at write_image.
            node.instance_info.insert("configdrive".into(), cd.clone());
        }
        if matches!(event, Event::Deploy | Event::Rebuild) {
            // Each deploy request brings its own deploy_steps (or none).
            node.driver_internal_info
                .remove(super::agent_deploy::USER_DEPLOY_STEPS);
            if let Some(steps) = opts.deploy_steps.as_ref().filter(|s| !s.is_empty()) {
                node.driver_internal_info.insert(
                    super::agent_deploy::USER_DEPLOY_STEPS.into(),
                    Value::Array(steps.clone()),
                );
            }
        }
        // A manual cleaning carries its steps; any other cleaning has none.
        node.driver_internal_info
            .remove(super::agent_clean::MANUAL_CLEAN_STEPS);
        if let (Event::Clean, Some(steps)) = (event, &opts.clean_steps) {
            node.driver_internal_info.insert(
                super::agent_clean::MANUAL_CLEAN_STEPS.into(),
                Value::Array(steps.clone()),
            );
        }
        node.enter(to);
        if event == Event::Clean {
            node.target_provision_state = Some(State::Manageable);
        }
        node.last_error = None;
        node.updated_at = Some(now());
        let target_text = node
            .target_provision_state
            .map(|t| t.to_string())
            .unwrap_or_else(|| "none".into());
        let h = history(
            Severity::Info,
            "provisioning",
            format!("{target}: {from} -> {to} (target {target_text})"),
            &opts.user,
        );
        self.launch(ticket, lock, node, h, job).await
    }

    /// Refusals that depend on the node, checked under its lock.
    pub(super) fn check_provision(
        &self,
        node: &Node,
        event: Event,
        target: &str,
        opts: &ProvisionOptions,
    ) -> Result<bool> {
        let ident = node.ident();
        if matches!(event, Event::Delete | Event::Rebuild) && node.protected {
            return Err(Error::NodeProtected { node: ident });
        }
        let bundle = self.bundle(node)?;
        match event {
            Event::Manage if node.provision_state == State::Enroll => {}
            Event::Deploy | Event::Rebuild => {
                bundle.power.validate(node).map_err(|e| {
                    Error::Invalid(format!(
                        "Failed to validate power driver interface for node {}: {e}",
                        node.uuid
                    ))
                })?;
                bundle.deploy.validate(node).map_err(|e| {
                    Error::Invalid(format!(
                        "Failed to validate deploy driver interface for node {}: {e}",
                        node.uuid
                    ))
                })?;
                // Ironic's validate_instance_info_traits.
                if let Some(t) = node.instance_info.get("traits") {
                    let list = t.as_array().filter(|a| a.iter().all(Value::is_string)).ok_or_else(|| {
                        Error::Invalid(format!(
                            "Error parsing traits from Node {} instance_info field. A list of strings is expected.",
                            node.uuid
                        ))
                    })?;
                    let extra: Vec<&str> = list
                        .iter()
                        .filter_map(Value::as_str)
                        .filter(|t| !node.traits.iter().any(|n| n == t))
                        .collect();
                    if !extra.is_empty() {
                        return Err(Error::Invalid(format!(
                            "Cannot specify instance traits that are not also node traits. Traits {extra:?} are not node traits."
                        )));
                    }
                }
                if opts.deploy_steps.as_ref().is_some_and(|s| !s.is_empty())
                    && node.interfaces.deploy != "direct"
                {
                    return Err(Error::Invalid(format!(
                        "deploy_steps run on the agent of the direct deploy; node {} has deploy interface {}",
                        node.uuid, node.interfaces.deploy
                    )));
                }
            }
            Event::Inspect | Event::Clean => {
                bundle.power.validate(node).map_err(|e| {
                    Error::Invalid(format!(
                        "Failed to validate power driver interface for node {}: {e}",
                        node.uuid
                    ))
                })?;
            }
            Event::Delete => {
                bundle.power.validate(node).map_err(|e| {
                    Error::Invalid(format!(
                        "Failed to validate power driver interface for node {}: {e}",
                        node.uuid
                    ))
                })?;
            }
            _ => {}
        }
        if event == Event::Clean && opts.clean_steps.as_ref().is_none_or(|s| s.is_empty()) {
            return Err(Error::Invalid(
                "\"clean_steps\" is required when setting target provision state to clean".into(),
            ));
        }
        if node.is_adopted()
            && matches!(
                event,
                Event::Provide | Event::Rebuild | Event::Delete | Event::Clean
            )
        {
            return self.check_adopted_guard(node, target, opts, &bundle);
        }
        Ok(false)
    }

    /// Goes beyond Ironic: an adopted machine may not be what the appliance
    /// thinks it is, so actions that could re-image or clean it need consent.
    /// Returns whether the consent in `extra` was used (and must be spent).
    pub(super) fn check_adopted_guard(
        &self,
        node: &Node,
        target: &str,
        opts: &ProvisionOptions,
        bundle: &Bundle,
    ) -> Result<bool> {
        let has_checksum = ["image_checksum", "image_os_hash_value"].iter().any(|k| {
            node.instance_info
                .get(*k)
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty())
        });
        let cleans = self.automated_clean(node) && bundle.deploy.cleaning_touches_disks();
        let why = match (has_checksum, cleans) {
            _ if target == "clean" => "manual cleaning runs clean steps on its disks",
            (_, true) => "automated cleaning would wipe its disks",
            (false, false) => "its instance_info has no image_checksum, so the recorded image may not be the one it runs and a re-deploy could wipe it",
            (true, false) => return Ok(false),
        };
        // Consent is looked at (and spent) only where the guard would refuse.
        if opts.confirm_destructive {
            return Ok(false);
        }
        let extra_consent = match node.extra.get(CONSENT_KEY) {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => {
                matches!(s.to_ascii_lowercase().as_str(), "true" | "yes" | "1")
            }
            _ => false,
        };
        if extra_consent {
            return Ok(true);
        }
        let ident = node.ident();
        Err(Error::Refused(format!(
            "Refusing \"{target}\" on node {ident}: it was adopted and {why}. To go ahead anyway, run \
             `baremetal node set {ident} --extra rackboot_allow_destructive=true` (or `rackboot node {} {ident} --confirm-destructive`), \
             or record the image's checksum with `baremetal node set {ident} --instance-info image_checksum=<sha256>`.",
            match target {
                "deleted" => "undeploy",
                "active" => "deploy",
                t => t,
            }
        )))
    }

    pub(super) fn automated_clean(&self, node: &Node) -> bool {
        node.automated_clean
            .unwrap_or(self.inner.settings.automated_clean)
    }
}
