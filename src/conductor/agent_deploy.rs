//! The `direct` deploy, conductor side, as Ironic's agent deploy drives it
//! from the agent's heartbeats in `wait call-back`:
//!
//! 1. `write_image`: `standby.prepare_image` with Ironic's `image_info`
//!    (the image served by the boot HTTP server, its sha256, disk format,
//!    streamed raw), run asynchronously; each heartbeat reads the agent's
//!    command list until it ends.
//! 2. `prepare_instance_boot`: boot device disk, persistent.
//! 3. `tear_down_agent`: `standby.power_off` through the agent, then the
//!    BMC's power state is watched and forced off if the agent did not.
//! 4. `boot_instance`: power on; the node is `active` and boots its disk.
//!
//! A failed step ends in `deploy failed` with the agent's error.

use serde_json::json;

use super::*;
use crate::drivers::direct::{IMAGE_SHA256, IMAGE_SIZE};
use crate::model::BootDecision;

/// `driver_internal_info`: the boot HTTP base URL the ramdisk reached the
/// appliance at (from its heartbeat).
pub const APPLIANCE_URL: &str = "agent_appliance_url";
/// `driver_internal_info`: the deploy step the agent runs, and since when.
pub const DEPLOY_STEP: &str = "agent_deploy_step";
pub const DEPLOY_STEP_STARTED: &str = "agent_deploy_step_started";

/// How long the agent's own power-off is given before the BMC forces it
/// (Ironic: 6 tries, 5 s apart).
const SOFT_OFF_POLLS: u32 = 6;
const SOFT_OFF_INTERVAL: Duration = Duration::from_secs(5);

/// Ironic's `image_info` for `standby.prepare_image`.
pub fn image_info(node: &Node, image_url: &str) -> std::result::Result<Value, String> {
    let text = |m: &serde_json::Map<String, Value>, k: &str| {
        m.get(k).and_then(Value::as_str).map(str::to_string)
    };
    let sha256 = text(&node.driver_internal_info, IMAGE_SHA256)
        .ok_or("the image was not staged (no sha256 of it is known)")?;
    let format = text(&node.instance_info, "image_disk_format").unwrap_or_else(|| "raw".into());
    // The agent names its download after the id: for an image URL, Ironic
    // uses its last path segment.
    let source = text(&node.instance_info, "image_source").unwrap_or_default();
    let id = source
        .rsplit('/')
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or("image")
        .to_string();
    let mut info = json!({
        "id": id,
        "urls": [image_url],
        "disk_format": format,
        "container_format": "bare",
        "os_hash_algo": "sha256",
        "os_hash_value": sha256,
        "stream_raw_images": true,
        "image_type": "whole-disk",
        "node_uuid": node.uuid,
    });
    if let Some(size) = node.driver_internal_info.get(IMAGE_SIZE) {
        info["image_size"] = size.clone();
    }
    if let Some(hints) = node.properties.get("root_device") {
        info["root_device"] = hints.clone();
    }
    Ok(info)
}

impl Conductor {
    /// One round of a direct deploy, run by a worker after a heartbeat
    /// moved the node from `wait call-back` to `deploying`.
    pub(super) async fn agent_deploy(
        &self,
        task: &mut Task,
        b: &Bundle,
    ) -> std::result::Result<Option<Event>, String> {
        let uuid = task.node.uuid;
        let text = |k: &str| {
            task.node
                .driver_internal_info
                .get(k)
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let (url, token) = super::agent_clean::agent_endpoint(&task.node, "deploy")?;
        let agent = self.agent_client().clone();
        let fail = |e: super::agent_client::AgentError| {
            format!("Agent error while deploying node {uuid}: {e}")
        };
        match text(DEPLOY_STEP).as_deref() {
            None => {
                let base = text(APPLIANCE_URL).ok_or_else(|| {
                    format!("Failed to deploy node {uuid}: the appliance's URL is not known")
                })?;
                let image_url = format!("{}/images/{uuid}/image", base.trim_end_matches('/'));
                let info = image_info(&task.node, &image_url)
                    .map_err(|e| format!("Failed to deploy node {uuid}: {e}"))?;
                let configdrive = crate::images::configdrive::for_agent(
                    &uuid.to_string(),
                    task.node.name.as_deref(),
                    task.node.instance_info.get("configdrive"),
                )
                .map_err(|e| format!("Failed to prepare the config drive of node {uuid}: {e}"))?;
                let with_drive = if configdrive.is_some() {
                    " and a config drive"
                } else {
                    ""
                };
                agent
                    .execute(
                        &url,
                        &token,
                        "standby.prepare_image",
                        json!({"image_info": info, "configdrive": configdrive}),
                        false,
                    )
                    .await
                    .map_err(fail)?;
                task.node
                    .driver_internal_info
                    .insert(DEPLOY_STEP.into(), Value::from("write_image"));
                task.node
                    .driver_internal_info
                    .insert(DEPLOY_STEP_STARTED.into(), Value::from(self.unix_now()));
                task.record(
                    Severity::Info,
                    "agent",
                    format!(
                        "deploy step deploy.write_image started: the agent writes {} ({} format) from {image_url}{with_drive}",
                        info["id"].as_str().unwrap_or(""),
                        info["disk_format"].as_str().unwrap_or("raw")
                    ),
                );
                Ok(Some(Event::Wait))
            }
            Some("write_image") => {
                let list = agent.commands(&url, &token).await.map_err(fail)?;
                let since = task
                    .node
                    .driver_internal_info
                    .get(DEPLOY_STEP_STARTED)
                    .and_then(Value::as_i64)
                    .map(|t| self.unix_now() - t)
                    .unwrap_or(0);
                match list.iter().rev().find(|c| c.command_name == "prepare_image") {
                    Some(c) if c.running() => {
                        task.record(
                            Severity::Info,
                            "agent",
                            format!("deploy step deploy.write_image running for {since} s"),
                        );
                        return Ok(Some(Event::Wait));
                    }
                    Some(c) if c.command_status == "SUCCEEDED" => task.record(
                        Severity::Info,
                        "agent",
                        format!("deploy step deploy.write_image done in {since} s"),
                    ),
                    Some(c) => {
                        return Err(format!(
                            "Deploy step deploy.write_image failed on node {uuid}. {}",
                            c.error_text()
                        ))
                    }
                    None => {
                        return Err(format!(
                            "Deploy step deploy.write_image failed on node {uuid}: the agent does not list it (did it restart?)"
                        ))
                    }
                }
                self.finish_direct_deploy(task, b, &url, &token).await?;
                Ok(None)
            }
            Some(other) => Err(format!(
                "Failed to deploy node {uuid}: unknown deploy step {other:?} recorded"
            )),
        }
    }

    /// prepare_instance_boot, tear_down_agent, boot_instance.
    async fn finish_direct_deploy(
        &self,
        task: &mut Task,
        b: &Bundle,
        url: &str,
        token: &str,
    ) -> std::result::Result<(), String> {
        let uuid = task.node.uuid;
        let step =
            |name: &str, e: String| format!("Deploy step deploy.{name} failed on node {uuid}. {e}");
        b.management
            .set_boot_device(task, "disk", true)
            .await
            .map_err(|e| step("prepare_instance_boot", e.to_string()))?;
        task.node.set_boot_decision(Some(BootDecision::Local));
        task.record(
            Severity::Info,
            "provisioning",
            "deploy step deploy.prepare_instance_boot: boot device disk (persistent)",
        );
        // The agent powers the machine off itself (its disks synced); the
        // BMC makes sure.
        let asked = self
            .agent_client()
            .execute(url, token, "standby.power_off", json!({}), false)
            .await;
        let mut off = false;
        if asked.is_ok() {
            for _ in 0..SOFT_OFF_POLLS {
                tokio::time::sleep(SOFT_OFF_INTERVAL).await;
                if b.power.get_power_state(task).await == Ok(PowerState::Off) {
                    off = true;
                    break;
                }
            }
        }
        let how = if off {
            "the agent powered the machine off"
        } else {
            self.power_action(task, b, PowerState::Off)
                .await
                .map_err(|e| step("tear_down_agent", e))?;
            "powered off through the BMC (the agent did not)"
        };
        task.node.power_state = Some(PowerState::Off);
        task.record(
            Severity::Info,
            "provisioning",
            format!("deploy step deploy.tear_down_agent: {how}"),
        );
        self.power_action(task, b, PowerState::On)
            .await
            .map_err(|e| step("boot_instance", e))?;
        task.record(
            Severity::Info,
            "provisioning",
            "deploy step deploy.boot_instance: powered on; it boots from its disk",
        );
        forget_deploy(&mut task.node);
        task.node.wipe_agent();
        task.node.set_callback_deadline(None);
        Ok(())
    }
}

/// Drops a direct deploy's progress (at its end, and when it starts again).
pub fn forget_deploy(node: &mut Node) {
    for k in [DEPLOY_STEP, DEPLOY_STEP_STARTED] {
        node.driver_internal_info.remove(k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_info_the_agent_gets() {
        let mut n = crate::conductor::tests::fake_node("d", State::Deploying);
        n.instance_info
            .insert("image_source".into(), json!("http://192.0.2.1/disk.qcow2"));
        assert!(
            image_info(&n, "http://x/images/u/image").is_err(),
            "not staged"
        );
        n.driver_internal_info
            .insert(IMAGE_SHA256.into(), json!("ab".repeat(32)));
        n.driver_internal_info
            .insert(IMAGE_SIZE.into(), json!(1024));
        n.instance_info
            .insert("image_disk_format".into(), json!("qcow2"));
        n.properties
            .insert("root_device".into(), json!({"name": "/dev/vda"}));
        let info = image_info(&n, "http://x/images/u/image").unwrap();
        assert_eq!(info["urls"], json!(["http://x/images/u/image"]));
        assert_eq!(info["os_hash_algo"], "sha256");
        assert_eq!(info["os_hash_value"], "ab".repeat(32));
        assert_eq!(info["disk_format"], "qcow2");
        assert_eq!(info["image_type"], "whole-disk");
        assert_eq!(info["root_device"]["name"], "/dev/vda");
        assert_eq!(info["image_size"], 1024);
        assert_eq!(info["id"], "disk.qcow2");
    }
}
