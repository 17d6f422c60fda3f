//! The ramdisk's call-back (heartbeat) and the call-back timeouts
//! (deploy, cleaning and inspection).

use super::*;
use crate::model::internal;

/// What a heartbeat says (Ironic's heartbeat body).
#[derive(Debug, Clone, Default)]
pub struct Heartbeat {
    pub agent_token: Option<String>,
    /// The agent's command API (`callback_url` in the body).
    pub agent_url: Option<String>,
    pub agent_version: Option<String>,
    pub agent_verify_ca: Option<String>,
    /// The appliance's boot HTTP base URL as the ramdisk reached it.
    pub appliance_url: Option<String>,
}

impl Conductor {
    /// A booted ramdisk's heartbeat (`POST /v1/heartbeat/{node}` on the boot
    /// HTTP listener). A node waiting for it in `wait call-back` finishes its
    /// deploy: wait call-back -> deploying -> active. In any other state it
    /// is only noted. `from` is the caller's address, for the history.
    pub async fn heartbeat(&self, ident: &str, from: &str, beat: Heartbeat) -> Result<State> {
        let (lock, mut node) = self.lock_ident(ident).await?;
        if let Err(why) = super::agent::check_token(&node, beat.agent_token.as_deref()) {
            // Refused and logged; nothing about the node changes.
            tracing::warn!(node = %node.uuid, %from, "heartbeat refused: {why}");
            drop(lock);
            return Err(Error::Invalid(why.to_string()));
        }
        for (key, v) in [
            // An empty callback_url (a ramdisk without a command API)
            // never hides the agent a plan of clean steps talks to.
            (
                internal::AGENT_URL,
                beat.agent_url.clone().filter(|u| !u.is_empty()),
            ),
            (internal::AGENT_VERSION, beat.agent_version.clone()),
            (internal::AGENT_VERIFY_CA, beat.agent_verify_ca.clone()),
            (
                super::agent_deploy::APPLIANCE_URL,
                beat.appliance_url.clone(),
            ),
        ] {
            if let Some(v) = v {
                node.driver_internal_info
                    .insert(key.into(), Value::String(v));
            }
        }
        node.driver_internal_info.insert(
            internal::AGENT_LAST_HEARTBEAT.into(),
            Value::from(self.unix_now()),
        );
        let agent = beat
            .agent_version
            .as_deref()
            .map(|v| format!(" (agent {v})"))
            .unwrap_or_default();
        let state = node.provision_state;
        let has_agent_api = beat.agent_url.as_deref().is_some_and(|u| !u.is_empty())
            || node
                .driver_internal_info
                .contains_key(super::agent_clean::CLEAN_STEPS);
        if state == State::CleanWait && has_agent_api {
            // The agent runs the clean steps: a worker moves them on.
            return self
                .resume_agent(lock, node, from, &agent, Job::AgentClean)
                .await;
        }
        if state == State::CleanWait
            && node
                .driver_internal_info
                .contains_key(super::agent_clean::MANUAL_CLEAN_STEPS)
        {
            // Manual clean steps run on the agent; a ramdisk without its
            // command API cannot run them (the clean wait times out).
            return Err(Error::Invalid(
                "Manual cleaning needs the agent's command API: the heartbeat has no callback_url"
                    .into(),
            ));
        }
        if state == State::WaitCallBack && node.interfaces.deploy == "direct" {
            // The agent writes the image: a worker drives its deploy steps.
            if !has_agent_api {
                return Err(Error::Invalid(
                    "The direct deploy needs the agent's command API: the heartbeat has no callback_url".into(),
                ));
            }
            return self
                .resume_agent(lock, node, from, &agent, Job::AgentDeploy)
                .await;
        }
        if !matches!(state, State::WaitCallBack | State::CleanWait) {
            let h = HistoryEntry::new(
                Severity::Info,
                "agent",
                format!("heartbeat from {from}{agent} (node is {state}: nothing to do)"),
            );
            self.save_locked(node, vec![h], lock).await?;
            return Ok(state);
        }
        // wait call-back -> deploying -> active; clean wait -> cleaning -> available.
        let Some((resumed, to)) = states::next(state, Event::Resume)
            .and_then(|resumed| Some((resumed, states::next(resumed, Event::Done)?)))
        else {
            return Err(Error::InvalidState(format!(
                "internal error: the state table has no way on from {state} after a heartbeat"
            )));
        };
        if state == State::CleanWait {
            // Cleaning is done (the deploy ramdisk runs no clean steps yet):
            // the instance the node booted is gone, and so is its decision.
            node.set_boot_decision(None);
        }
        node.set_callback_deadline(None);
        node.set_adopted(None);
        node.enter(to);
        node.updated_at = Some(now());
        node.last_error = None;
        let h = vec![
            HistoryEntry::new(
                Severity::Info,
                "agent",
                format!("heartbeat from {from}{agent}: the ramdisk is up"),
            ),
            HistoryEntry::new(
                Severity::Info,
                "provisioning",
                format!("{state} -> {resumed} -> {to}"),
            ),
        ];
        self.save_locked(node, h, lock).await?;
        Ok(to)
    }

    /// clean wait -> cleaning (or wait call-back -> deploying), and a worker
    /// that asks the agent how its steps go (no free worker: only the heartbeat is recorded, and
    /// the next one tries again).
    async fn resume_agent(
        &self,
        lock: super::locking::LockGuard,
        mut node: Node,
        from: &str,
        agent: &str,
        job: Job,
    ) -> Result<State> {
        let h = HistoryEntry::new(
            Severity::Info,
            "agent",
            format!("heartbeat from {from}{agent}"),
        );
        let Ok(ticket) = self.worker_ticket() else {
            let state = node.provision_state;
            self.save_locked(node, vec![h], lock).await?;
            return Ok(state);
        };
        let Some(to) = states::next(node.provision_state, Event::Resume) else {
            return Err(Error::InvalidState(format!(
                "internal error: the state table has no resume from {}",
                node.provision_state
            )));
        };
        let from_state = node.provision_state;
        node.enter(to);
        node.updated_at = Some(now());
        // The agent is alive: its deadline starts again (a long step
        // heartbeats all along, as in Ironic).
        let timeout = if from_state == State::CleanWait {
            self.inner.settings.clean_callback_timeout
        } else {
            self.inner.settings.deploy_callback_timeout
        };
        node.set_callback_deadline(Some(self.unix_now() + timeout.as_secs() as i64));
        let begin = HistoryEntry::new(
            Severity::Info,
            "provisioning",
            format!("{from_state} -> {to}"),
        );
        self.launch_noting(ticket, lock, node, vec![h, begin], job)
            .await?;
        Ok(to)
    }

    /// Fails deploys whose call-back did not come in time.
    pub async fn check_callback_timeouts(&self) -> usize {
        let nodes = match self
            .store()
            .call(|s| {
                s.nodes_in_states(&[State::WaitCallBack, State::CleanWait, State::InspectWait])
            })
            .await
        {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "cannot list nodes waiting for a call-back");
                return 0;
            }
        };
        let now_s = self.unix_now();
        let mut failed = 0;
        for n in nodes {
            let due = n.callback_deadline().is_some_and(|d| d <= now_s);
            if !due {
                continue;
            }
            let Some((lock, mut node)) = self.try_lock(n.uuid).await else {
                continue;
            };
            let from = node.provision_state;
            if from == State::InspectWait {
                if self
                    .abort_wait(lock, node, super::inspection::INSPECT_TIMEOUT, &None)
                    .await
                    .is_ok()
                {
                    failed += 1;
                }
                continue;
            }
            if !matches!(from, State::WaitCallBack | State::CleanWait) {
                continue;
            }
            let Some(to) = states::next(from, Event::Fail) else {
                tracing::error!(node = %node.uuid, %from, "the state table has no failure from this state");
                continue;
            };
            let msg = if from == State::CleanWait {
                format!(
                    "Timeout reached while cleaning the node {} ({} s, [conductor] clean_callback_timeout): the deploy ramdisk never called back",
                    node.uuid,
                    self.inner.settings.clean_callback_timeout.as_secs()
                )
            } else {
                format!(
                    "Timeout reached while waiting for callback for node {} ({} s, [conductor] deploy_callback_timeout)",
                    node.uuid,
                    self.inner.settings.deploy_callback_timeout.as_secs()
                )
            };
            node.set_callback_deadline(None);
            node.enter(to);
            node.updated_at = Some(now());
            node.last_error = Some(msg.clone());
            let h = HistoryEntry::new(
                Severity::Error,
                "provisioning",
                format!("wait call-back -> {to}: {msg}"),
            );
            if self.save_locked(node, vec![h], lock).await.is_ok() {
                failed += 1;
            }
        }
        failed
    }

    /// Runs `check_callback_timeouts` periodically until `stop`.
    pub async fn run_callback_timeouts(&self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let every = (self
            .inner
            .settings
            .deploy_callback_timeout
            .min(self.inner.settings.clean_callback_timeout)
            .min(
                Some(self.inner.settings.inspect_wait_timeout)
                    .filter(|t| !t.is_zero())
                    .unwrap_or(Duration::MAX),
            )
            / 4)
        .clamp(Duration::from_millis(200), Duration::from_secs(10));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            self.check_callback_timeouts().await;
        }
    }
}
