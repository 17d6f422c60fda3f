//! The `direct` deploy, conductor side, as Ironic's agent deploy drives it
//! from the agent's heartbeats in `wait call-back`:
//!
//! At the first heartbeat the agent is asked for its deploy steps and the
//! plan is made (`deploy_plan`): the conductor's steps at Ironic's
//! priorities, with the agent's own steps the request's `deploy_steps` and
//! the deploy templates named by `instance_info/traits` add:
//!
//! - `write_image` (80): the image must fit the disk the agent will pick
//!   (`poll.get_hardware_info`), then `standby.prepare_image` with Ironic's
//!   `image_info` (the image served by the boot HTTP server, its sha256,
//!   disk format, streamed raw) and the config drive, run asynchronously;
//! - an agent step (41 to 99): `deploy.execute_deploy_step`;
//! - `prepare_instance_boot` (60): boot device disk, persistent;
//! - `tear_down_agent` (40): `standby.power_off` through the agent, then
//!   the BMC's power state is watched and forced off if the agent did not;
//! - `boot_instance` (20): power on; the node is `active` and boots its disk.
//!
//! Each heartbeat reads the agent's command list until the running step
//! ends. A failed step ends in `deploy failed` with the agent's error.

use serde_json::json;

use super::agent_clean::{agent_steps, arg_errors, step_args, step_name};
use super::*;
use crate::drivers::direct::{IMAGE_SHA256, IMAGE_SIZE};
use crate::model::BootDecision;

/// `driver_internal_info`: the boot HTTP base URL the ramdisk reached the
/// appliance at (from its heartbeat).
pub const APPLIANCE_URL: &str = "agent_appliance_url";
/// `driver_internal_info`: the deploy plan, the step it is at and since
/// when, and the agent's hardware manager version (for its deploy steps).
pub const DEPLOY_PLAN: &str = "agent_deploy_plan";
pub const DEPLOY_STEP_INDEX: &str = "agent_deploy_step_index";
pub const DEPLOY_STEP_STARTED: &str = "agent_deploy_step_started";
pub const DEPLOY_VERSION: &str = "agent_deploy_version";
/// `driver_internal_info`: the `deploy_steps` of the deploy request.
pub const USER_DEPLOY_STEPS: &str = "user_deploy_steps";

/// The conductor's own deploy steps of the direct deploy, at Ironic's
/// priorities (`deploy.deploy`, 100, boots the agent before the plan).
const BUILTIN_STEPS: &[(&str, u64)] = &[
    ("write_image", 80),
    ("prepare_instance_boot", 60),
    ("tear_down_agent", 40),
    ("boot_instance", 20),
];

fn step_failed(uuid: uuid::Uuid, name: &str, e: String) -> String {
    format!("Deploy step {name} failed on node {uuid}. {e}")
}

fn priority_of(v: &Value) -> Option<u64> {
    match v.get("priority")? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Ironic's schema of `deploy_steps` (API 1.69): a list of objects with
/// `interface` (one of Ironic's step interfaces), `step`, `args` (an
/// object) and `priority` (a whole number, or one as a string); nothing
/// else.
pub fn check_deploy_steps(v: &Value) -> std::result::Result<Vec<Value>, String> {
    let list = v
        .as_array()
        .ok_or_else(|| format!("{v} is not of type 'array'"))?;
    for s in list {
        let m = s
            .as_object()
            .ok_or_else(|| format!("{s} is not of type 'object'"))?;
        for key in ["interface", "step", "args", "priority"] {
            if !m.contains_key(key) {
                return Err(format!("'{key}' is a required property"));
            }
        }
        for (k, val) in m {
            let ok = match k.as_str() {
                "interface" => val
                    .as_str()
                    .is_some_and(|i| crate::model::template::STEP_INTERFACES.contains(&i)),
                "step" => val.as_str().is_some_and(|x| !x.is_empty()),
                "args" => val.is_object(),
                "priority" => priority_of(s).is_some(),
                other => {
                    return Err(format!(
                        "Additional properties are not allowed ('{other}' was unexpected)"
                    ))
                }
            };
            if !ok {
                return Err(format!("{val} is not valid for {k}"));
            }
        }
    }
    Ok(list.clone())
}

/// The plan of a direct deploy: the conductor's steps at Ironic's
/// priorities, the agent's deploy steps that have a priority of their own,
/// and the requested steps (the deploy request's, then the deploy
/// templates'), which name agent steps with their priority and args (0
/// leaves one out), highest priority first. A requested step the agent does
/// not have, with args its `argsinfo` does not take, named twice, or at a
/// priority the agent cannot run it at (it runs between its boot, 100, and
/// `deploy.tear_down_agent`, 40) is refused, all reasons together.
pub fn deploy_plan(result: &Value, requested: &[Value]) -> std::result::Result<Vec<Value>, String> {
    let agent = agent_steps(result, "deploy_steps")?;
    let mut plan: Vec<Value> = BUILTIN_STEPS
        .iter()
        .map(|(s, p)| json!({"interface": "deploy", "step": s, "priority": p, "args": {}}))
        .collect();
    let builtin = |n: &str| {
        BUILTIN_STEPS
            .iter()
            .find(|(s, _)| format!("deploy.{s}") == n)
            .map(|(_, p)| *p)
    };
    for (name, s) in &agent {
        let p = priority_of(s).unwrap_or(0);
        if builtin(name).is_none() && p > 40 && p < 100 {
            let mut s = s.clone();
            s["args"] = json!({});
            plan.push(s);
        }
    }
    let mut errors = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for r in requested {
        let name = step_name(r);
        let p = priority_of(r).unwrap_or(0);
        if !seen.insert(name.clone()) {
            errors.push(format!("deploy step {name} is requested more than once (by deploy_steps or the deploy templates)"));
            continue;
        }
        if name == "deploy.deploy" {
            errors.push(
                "deploy step deploy.deploy is a core step and cannot be overridden by user steps"
                    .into(),
            );
            continue;
        }
        if let Some(bp) = builtin(&name) {
            if p != bp {
                errors.push(format!(
                    "deploy step {name} is rackboot's own and runs at Ironic's priority {bp} only ({p} requested)"
                ));
            }
            continue;
        }
        let Some(agent_step) = agent.get(&name) else {
            errors.push(format!("node does not support this deploy step: {name}"));
            continue;
        };
        // A step left out (priority 0) needs none of its required args.
        let args = step_args(r);
        errors.extend(arg_errors("deploy", &name, &args, agent_step, p != 0));
        plan.retain(|s| step_name(s) != name);
        if p == 0 {
            continue;
        }
        if p <= 40 || p >= 100 {
            errors.push(format!(
                "deploy step {name} runs on the agent, between its boot (deploy.deploy, 100) and deploy.tear_down_agent (40): its priority must be 41 to 99, not {p}"
            ));
            continue;
        }
        let mut s = agent_step.clone();
        s["args"] = Value::Object(args);
        s["priority"] = Value::from(p);
        plan.push(s);
    }
    if !errors.is_empty() {
        return Err(errors.join("; "));
    }
    plan.sort_by_key(|s| std::cmp::Reverse(priority_of(s).unwrap_or(0)));
    Ok(plan)
}

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
    let path = source.split(['?', '#']).next().unwrap_or_default();
    let id = path
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

/// The disk the agent will write the image to, from its inventory (the
/// answer to `poll.get_hardware_info`), as IPA picks it: with root device
/// hints, the first disk that matches them all; without, the smallest disk
/// of at least 4 GiB. `None` when that cannot be told here (hints with
/// operators, or no such disk: the agent then says so itself).
pub fn target_disk(inventory: &Value, hints: Option<&Value>) -> Option<(String, u64)> {
    const GIB: u64 = 1 << 30;
    let disks = inventory.get("disks")?.as_array()?;
    let name_of = |d: &Value| d.get("name").and_then(Value::as_str).map(str::to_string);
    let size_of = |d: &Value| d.get("size").and_then(Value::as_u64);
    let hints = match hints {
        None => None,
        Some(Value::Object(h)) if h.is_empty() => None,
        Some(Value::Object(h)) => Some(h),
        Some(_) => return None,
    };
    let Some(hints) = hints else {
        return disks
            .iter()
            .filter_map(|d| Some((name_of(d)?, size_of(d)?)))
            .filter(|(_, size)| *size >= 4 * GIB)
            .min_by_key(|(_, size)| *size);
    };
    let plain = |v: &Value| -> Option<String> {
        match v {
            Value::String(s) => {
                let t = s.trim();
                let op = ["<", ">", "=", "!", "s==", "s!=", "<in>", "<or>"]
                    .iter()
                    .any(|o| t.starts_with(o));
                (!op).then(|| t.to_string())
            }
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    };
    let mut wanted = Vec::new();
    for (k, v) in hints {
        wanted.push((k.as_str(), plain(v)?));
    }
    let matches = |d: &Value| {
        wanted.iter().all(|(k, want)| match *k {
            "name" => name_of(d)
                .is_some_and(|n| n == *want || n.strip_prefix("/dev/") == Some(want.as_str())),
            "size" => size_of(d).is_some_and(|s| (s / GIB).to_string() == *want),
            "rotational" => d
                .get("rotational")
                .and_then(Value::as_bool)
                .is_some_and(|r| r.to_string() == want.to_ascii_lowercase()),
            key => d
                .get(key)
                .and_then(Value::as_str)
                .is_some_and(|x| x.eq_ignore_ascii_case(want)),
        })
    };
    if wanted.iter().any(|(k, _)| {
        ![
            "name",
            "size",
            "rotational",
            "serial",
            "wwn",
            "model",
            "vendor",
        ]
        .contains(k)
    }) {
        return None;
    }
    disks
        .iter()
        .find(|d| matches(d))
        .and_then(|d| Some((name_of(d)?, size_of(d)?)))
}

impl Conductor {
    /// Before the image is written: does it fit the disk the agent will
    /// pick? Asks the agent for its inventory; an agent that cannot answer
    /// or hints this cannot evaluate leave the check to the agent's write.
    async fn check_image_fits(
        &self,
        task: &mut Task,
        url: &str,
        token: &str,
    ) -> std::result::Result<(), String> {
        let uuid = task.node.uuid;
        let Some(bytes) = task
            .node
            .driver_internal_info
            .get(crate::drivers::direct::IMAGE_DISK_BYTES)
            .and_then(Value::as_u64)
        else {
            return Ok(());
        };
        if task.node.properties.contains_key("skip_block_devices")
            || task.node.instance_info.contains_key("root_device")
        {
            // The agent's choice then depends on more than this mirrors.
            task.record(
                Severity::Info,
                "agent",
                "skip_block_devices or instance_info/root_device is set: the agent checks the image's size as it writes",
            );
            return Ok(());
        }
        // A config drive takes a partition of up to 64 MiB after the image.
        let has_drive = task
            .node
            .instance_info
            .get("configdrive")
            .is_some_and(|v| !v.is_null() && v != "");
        let bytes = bytes + if has_drive { 64 << 20 } else { 0 };
        let inventory = match self
            .agent_client()
            .execute(url, token, "poll.get_hardware_info", json!({}), true)
            .await
        {
            Ok(r) => r.command_result.unwrap_or(Value::Null),
            Err(e) => {
                task.record(
                    Severity::Warning,
                    "agent",
                    format!("the agent's inventory could not be read ({e}); the image's size is not checked against its disk"),
                );
                return Ok(());
            }
        };
        match target_disk(&inventory, task.node.properties.get("root_device")) {
            Some((disk, size)) if bytes > size => Err(format!(
                "Failed to deploy node {uuid}: the image needs {bytes} bytes on disk{}, more than the target disk {disk} has ({size} bytes); nothing was written",
                if has_drive { " with its config drive" } else { "" }
            )),
            Some((disk, size)) => {
                task.record(
                    Severity::Info,
                    "agent",
                    format!("the image ({bytes} bytes on disk) fits the target disk {disk} ({size} bytes)"),
                );
                Ok(())
            }
            None => {
                task.record(
                    Severity::Info,
                    "agent",
                    "the target disk cannot be told from the agent's inventory and root device hints; the agent checks it as it writes",
                );
                Ok(())
            }
        }
    }

    /// One round of a direct deploy, run by a worker after a heartbeat
    /// moved the node from `wait call-back` to `deploying`. The first round
    /// asks the agent for its deploy steps and makes the plan; every round
    /// then looks at the step the agent runs and, once it is done, goes on
    /// through the plan until the next step the agent runs or the end.
    pub(super) async fn agent_deploy(
        &self,
        task: &mut Task,
        b: &Bundle,
    ) -> std::result::Result<Option<Event>, String> {
        let uuid = task.node.uuid;
        let (url, token) = super::agent_clean::agent_endpoint(&task.node, "deploy")?;
        let agent = self.agent_client().clone();
        let fail = |e: super::agent_client::AgentError| {
            format!("Agent error while deploying node {uuid}: {e}")
        };
        let plan: Option<Vec<Value>> = task
            .node
            .driver_internal_info
            .get(DEPLOY_PLAN)
            .and_then(Value::as_array)
            .cloned();
        let Some(plan) = plan else {
            // The first heartbeat: the agent's steps, the user's and the
            // deploy templates' make the plan.
            let params = json!({"node": super::agent_clean::node_doc(&task.node),
                                "ports": super::agent_clean::ports_doc(&task.ports)});
            let r = agent
                .execute(&url, &token, "deploy.get_deploy_steps", params, true)
                .await
                .map_err(fail)?;
            let result = r.command_result.unwrap_or(Value::Null);
            let mut requested: Vec<Value> = task
                .node
                .driver_internal_info
                .get(USER_DEPLOY_STEPS)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            // The request's steps win over the templates' (Ironic's order).
            let named: Vec<String> = requested.iter().map(step_name).collect();
            requested.extend(
                self.template_steps(&task.node)
                    .await?
                    .into_iter()
                    .filter(|s| !named.contains(&step_name(s))),
            );
            let plan = deploy_plan(&result, &requested)
                .map_err(|e| format!("Failed to deploy node {uuid}: {e}"))?;
            if let Some(v) = result.get("hardware_manager_version") {
                task.node
                    .driver_internal_info
                    .insert(DEPLOY_VERSION.into(), v.clone());
            }
            task.record(
                Severity::Info,
                "agent",
                format!(
                    "deploy steps: {}",
                    plan.iter()
                        .map(|s| format!("{} ({})", step_name(s), s["priority"]))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
            task.node
                .driver_internal_info
                .insert(DEPLOY_PLAN.into(), Value::Array(plan.clone()));
            return self.run_deploy_steps(task, b, &plan, 0, &url, &token).await;
        };
        let i = task
            .node
            .driver_internal_info
            .get(DEPLOY_STEP_INDEX)
            .and_then(Value::as_u64)
            .unwrap_or(0) as usize;
        let step = plan.get(i).cloned().ok_or_else(|| {
            format!("Failed to deploy node {uuid}: deploy step {i} is not in the plan")
        })?;
        let name = step_name(&step);
        let command = if name == "deploy.write_image" {
            "prepare_image"
        } else {
            "execute_deploy_step"
        };
        let list = agent.commands(&url, &token).await.map_err(fail)?;
        let since = task
            .node
            .driver_internal_info
            .get(DEPLOY_STEP_STARTED)
            .and_then(Value::as_i64)
            .map(|t| self.unix_now() - t)
            .unwrap_or(0);
        match list.iter().rev().find(|c| c.command_name == command) {
            Some(c) if c.running() => {
                task.record(
                    Severity::Info,
                    "agent",
                    format!("deploy step {name} running for {since} s"),
                );
                Ok(Some(Event::Wait))
            }
            Some(c) if c.command_status == "SUCCEEDED" => {
                task.record(
                    Severity::Info,
                    "agent",
                    format!("deploy step {name} done in {since} s"),
                );
                self.run_deploy_steps(task, b, &plan, i + 1, &url, &token)
                    .await
            }
            Some(c) => Err(format!(
                "Deploy step {name} failed on node {uuid}. {}",
                c.error_text()
            )),
            None => Err(format!(
                "Deploy step {name} failed on node {uuid}: the agent does not list it (did it restart?)"
            )),
        }
    }

    /// Runs the plan from step `from`: the conductor's own steps here and
    /// now, until a step the agent runs has started (`Wait`) or the plan
    /// is done (`None`: the node is `active`).
    async fn run_deploy_steps(
        &self,
        task: &mut Task,
        b: &Bundle,
        plan: &[Value],
        from: usize,
        url: &str,
        token: &str,
    ) -> std::result::Result<Option<Event>, String> {
        let uuid = task.node.uuid;
        let agent = self.agent_client().clone();
        let fail = |e: super::agent_client::AgentError| {
            format!("Agent error while deploying node {uuid}: {e}")
        };
        for (i, step) in plan.iter().enumerate().skip(from) {
            let name = step_name(step);
            let t0 = std::time::Instant::now();
            let started = |task: &mut Task| {
                task.node
                    .driver_internal_info
                    .insert(DEPLOY_STEP_INDEX.into(), Value::from(i as u64));
                task.node
                    .driver_internal_info
                    .insert(DEPLOY_STEP_STARTED.into(), Value::from(self.unix_now()));
            };
            match name.as_str() {
                "deploy.write_image" => {
                    self.check_image_fits(task, url, token).await?;
                    let base = task
                        .node
                        .driver_internal_info
                        .get(APPLIANCE_URL)
                        .and_then(Value::as_str)
                        .map(str::to_string)
                        .ok_or_else(|| {
                            format!(
                                "Failed to deploy node {uuid}: the appliance's URL is not known"
                            )
                        })?;
                    let image_url = format!("{}/images/{uuid}/image", base.trim_end_matches('/'));
                    let info = image_info(&task.node, &image_url)
                        .map_err(|e| format!("Failed to deploy node {uuid}: {e}"))?;
                    let configdrive = crate::images::configdrive::for_agent(
                        &uuid.to_string(),
                        task.node.name.as_deref(),
                        task.node.instance_info.get("configdrive"),
                    )
                    .map_err(|e| {
                        format!("Failed to prepare the config drive of node {uuid}: {e}")
                    })?;
                    let with_drive = if configdrive.is_some() {
                        " and a config drive"
                    } else {
                        ""
                    };
                    agent
                        .execute(
                            url,
                            token,
                            "standby.prepare_image",
                            json!({"image_info": info, "configdrive": configdrive}),
                            false,
                        )
                        .await
                        .map_err(fail)?;
                    started(task);
                    task.record(
                        Severity::Info,
                        "agent",
                        format!(
                            "deploy step deploy.write_image started: the agent writes {} ({} format) from {image_url}{with_drive}",
                            info["id"].as_str().unwrap_or(""),
                            info["disk_format"].as_str().unwrap_or("raw")
                        ),
                    );
                    return Ok(Some(Event::Wait));
                }
                "deploy.prepare_instance_boot" => {
                    b.management
                        .set_boot_device(task, "disk", true)
                        .await
                        .map_err(|e| step_failed(uuid, &name, e.to_string()))?;
                    // The deploy ramdisk's boot is over: virtual media is
                    // ejected (as Ironic's prepare_instance does); PXE has
                    // nothing to forget.
                    b.boot
                        .clean_up_ramdisk(task)
                        .await
                        .map_err(|e| step_failed(uuid, &name, e.to_string()))?;
                    task.node.set_boot_decision(Some(BootDecision::Local));
                    task.record(
                        Severity::Info,
                        "provisioning",
                        format!(
                            "deploy step deploy.prepare_instance_boot: boot device disk (persistent), {:.1} s",
                            t0.elapsed().as_secs_f64()
                        ),
                    );
                }
                "deploy.tear_down_agent" => {
                    let how = self.tear_down_agent(task, b, url, token).await?;
                    task.record(
                        Severity::Info,
                        "provisioning",
                        format!(
                            "deploy step deploy.tear_down_agent: {how}, {:.1} s",
                            t0.elapsed().as_secs_f64()
                        ),
                    );
                }
                "deploy.boot_instance" => {
                    self.power_action(task, b, PowerState::On)
                        .await
                        .map_err(|e| step_failed(uuid, &name, e))?;
                    task.record(
                        Severity::Info,
                        "provisioning",
                        format!(
                            "deploy step deploy.boot_instance: powered on; it boots from its disk, {:.1} s",
                            t0.elapsed().as_secs_f64()
                        ),
                    );
                }
                _ => {
                    // A step of the agent's own.
                    let params = json!({
                        "step": step,
                        "node": super::agent_clean::node_doc(&task.node),
                        "ports": super::agent_clean::ports_doc(&task.ports),
                        "deploy_version": task.node.driver_internal_info.get(DEPLOY_VERSION).cloned().unwrap_or(Value::Null),
                    });
                    agent
                        .execute(url, token, "deploy.execute_deploy_step", params, false)
                        .await
                        .map_err(fail)?;
                    started(task);
                    task.record(
                        Severity::Info,
                        "agent",
                        format!(
                            "deploy step {name} (priority {}) started on the agent",
                            step["priority"]
                        ),
                    );
                    return Ok(Some(Event::Wait));
                }
            }
        }
        forget_deploy(&mut task.node);
        task.node.driver_internal_info.remove(USER_DEPLOY_STEPS);
        task.node.wipe_agent();
        task.node.set_callback_deadline(None);
        Ok(None)
    }

    /// The agent powers the machine off itself (its disks synced); the BMC
    /// makes sure. Says how it went off.
    async fn tear_down_agent(
        &self,
        task: &mut Task,
        b: &Bundle,
        url: &str,
        token: &str,
    ) -> std::result::Result<&'static str, String> {
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
                .map_err(|e| step_failed(task.node.uuid, "deploy.tear_down_agent", e))?;
            "powered off through the BMC (the agent did not)"
        };
        task.node.power_state = Some(PowerState::Off);
        Ok(how)
    }

    /// The steps of the deploy templates the node's instance traits name
    /// (`instance_info/traits`), as Ironic applies them.
    async fn template_steps(&self, node: &Node) -> std::result::Result<Vec<Value>, String> {
        let traits: Vec<String> = node
            .instance_info
            .get("traits")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let mut steps = Vec::new();
        for t in traits {
            let name = t.clone();
            let found = self
                .store()
                .call(move |s| s.get_record::<crate::model::template::DeployTemplate>(&name))
                .await;
            match found {
                Ok(tpl) => {
                    for s in tpl.steps {
                        steps.push(json!({"interface": s.interface, "step": s.step,
                                          "args": s.args, "priority": s.priority.unwrap_or(0),
                                          "template": tpl.name}));
                    }
                }
                Err(crate::store::Error::RecordNotFound { .. }) => {}
                Err(e) => return Err(format!("cannot read deploy template {t}: {e}")),
            }
        }
        Ok(steps)
    }
}

/// Drops a direct deploy's progress (at its end, and when it starts again).
pub fn forget_deploy(node: &mut Node) {
    for k in [
        DEPLOY_PLAN,
        DEPLOY_STEP_INDEX,
        DEPLOY_STEP_STARTED,
        DEPLOY_VERSION,
    ] {
        node.driver_internal_info.remove(k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// IPA 13.0.0's deploy steps (as `deploy.get_deploy_steps` lists them).
    fn ipa_deploy_steps() -> Value {
        json!({"deploy_steps": {
            "GenericHardwareManager": [
                {"step": "write_image", "priority": 0, "interface": "deploy", "reboot_requested": false},
                {"step": "apply_configuration", "priority": 0, "interface": "raid", "reboot_requested": false,
                 "argsinfo": {"raid_config": {"required": true}}}],
            "InjectFilesHardwareManager": [
                {"step": "inject_files", "priority": 0, "interface": "deploy", "reboot_requested": false,
                 "abortable": true, "argsinfo": {"files": {"required": true, "description": "..."}}}]},
            "hardware_manager_version": {"generic_hardware_manager": "1.2"}})
    }

    #[test]
    fn deploy_plans() {
        let names = |p: &[Value]| {
            p.iter()
                .map(|s| format!("{} {}", step_name(s), s["priority"]))
                .collect::<Vec<_>>()
        };
        let agent = ipa_deploy_steps();
        assert_eq!(
            names(&deploy_plan(&agent, &[]).unwrap()),
            [
                "deploy.write_image 80",
                "deploy.prepare_instance_boot 60",
                "deploy.tear_down_agent 40",
                "deploy.boot_instance 20"
            ]
        );
        let inject = json!({"interface": "deploy", "step": "inject_files", "priority": "55",
                            "args": {"files": [{"path": "/etc/x", "content": "eA=="}]}});
        let plan = deploy_plan(&agent, std::slice::from_ref(&inject)).unwrap();
        assert_eq!(
            names(&plan)[1..3],
            ["deploy.prepare_instance_boot 60", "deploy.inject_files 55"]
        );
        assert_eq!(plan[2]["args"]["files"][0]["path"], "/etc/x");
        assert_eq!(plan[2]["abortable"], true);
        // Priority 0 leaves it out; the built-in priorities are accepted as they are.
        let mut off = inject.clone();
        off["priority"] = json!(0);
        assert_eq!(deploy_plan(&agent, &[off]).unwrap().len(), 4);
        let same =
            json!({"interface": "deploy", "step": "write_image", "priority": 80, "args": {}});
        assert_eq!(deploy_plan(&agent, &[same]).unwrap().len(), 4);
        for (req, want) in [
            (
                vec![json!({"interface": "deploy", "step": "nope", "priority": 50, "args": {}})],
                "node does not support this deploy step",
            ),
            (
                vec![
                    json!({"interface": "raid", "step": "apply_configuration", "priority": 50, "args": {}}),
                ],
                "node does not support",
            ),
            (
                vec![
                    json!({"interface": "deploy", "step": "inject_files", "priority": 50, "args": {}}),
                ],
                "missing these required arguments: files",
            ),
            (
                vec![
                    json!({"interface": "deploy", "step": "inject_files", "priority": 50, "args": {"files": {}, "x": 1}}),
                ],
                "unexpected arguments: x",
            ),
            (
                vec![
                    json!({"interface": "deploy", "step": "inject_files", "priority": 30, "args": {"files": {}}}),
                ],
                "must be 41 to 99, not 30",
            ),
            (
                vec![
                    json!({"interface": "deploy", "step": "write_image", "priority": 90, "args": {}}),
                ],
                "priority 80 only (90 requested)",
            ),
            (
                vec![json!({"interface": "deploy", "step": "deploy", "priority": 100, "args": {}})],
                "core step",
            ),
            (vec![inject.clone(), inject.clone()], "more than once"),
        ] {
            let e = deploy_plan(&agent, &req).unwrap_err();
            assert!(e.contains(want), "{req:?}: {e}");
        }
        assert!(deploy_plan(&json!({}), &[]).is_err());
    }

    #[test]
    fn deploy_steps_are_checked_as_ironics_schema_does() {
        let ok = json!({"interface": "deploy", "step": "x", "args": {}, "priority": 50});
        let cases: &[(Value, bool)] = &[
            (json!([ok.clone()]), true),
            (
                json!([{"interface": "deploy", "step": "x", "args": {}, "priority": "50"}]),
                true,
            ),
            (
                json!([{"interface": "deploy", "step": "x", "args": {}}]),
                false,
            ),
            (
                json!([{"interface": "deploy", "step": "x", "priority": 1}]),
                false,
            ),
            (
                json!([{"interface": "nic", "step": "x", "args": {}, "priority": 1}]),
                false,
            ),
            (
                json!([{"interface": "deploy", "step": "x", "args": {}, "priority": -1}]),
                false,
            ),
            (
                json!([{"interface": "deploy", "step": "x", "args": {}, "priority": 1, "order": 1}]),
                false,
            ),
            (json!(ok), false),
        ];
        for (v, want) in cases {
            assert_eq!(check_deploy_steps(v).is_ok(), *want, "{v}");
        }
    }

    #[test]
    fn the_target_disk_as_the_agent_picks_it() {
        const G: u64 = 1 << 30;
        let inv = json!({"disks": [
            {"name": "/dev/sda", "size": 500 * G, "serial": "S1", "rotational": true, "model": "BIG"},
            {"name": "/dev/vda", "size": 5 * G, "serial": "V1", "rotational": false},
            {"name": "/dev/vdb", "size": G, "serial": "tiny"},
        ]});
        type Case = (Option<Value>, Option<(&'static str, u64)>);
        let cases: &[Case] = &[
            (None, Some(("/dev/vda", 5 * G))),
            (Some(json!({})), Some(("/dev/vda", 5 * G))),
            (
                Some(json!({"name": "/dev/sda"})),
                Some(("/dev/sda", 500 * G)),
            ),
            (Some(json!({"name": "sda"})), Some(("/dev/sda", 500 * G))),
            (Some(json!({"serial": "s1"})), Some(("/dev/sda", 500 * G))),
            (Some(json!({"size": 5})), Some(("/dev/vda", 5 * G))),
            (
                Some(json!({"size": "500", "rotational": true})),
                Some(("/dev/sda", 500 * G)),
            ),
            (Some(json!({"model": "big", "rotational": false})), None),
            (Some(json!({"size": ">= 100"})), None),
            (Some(json!({"hctl": "0:0:0:0"})), None),
            (Some(json!({"name": "/dev/nvme0n1"})), None),
        ];
        for (hints, want) in cases {
            let got = target_disk(&inv, hints.as_ref());
            assert_eq!(
                got,
                want.map(|(n, s)| (n.to_string(), s)),
                "hints {hints:?}"
            );
        }
        assert_eq!(
            target_disk(&json!({"disks": [{"name": "/dev/x", "size": G}]}), None),
            None
        );
        assert_eq!(target_disk(&json!({}), None), None);
    }

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
        // A temp URL's signature stays out of the id (and the history).
        n.instance_info.insert(
            "image_source".into(),
            json!(
                "https://swift.example/v1/AUTH_x/c/disk.raw?temp_url_sig=s3cr3t&temp_url_expires=1"
            ),
        );
        let info = image_info(&n, "http://x/images/u/image").unwrap();
        assert_eq!(info["id"], "disk.raw");
    }
}
