//! Automated cleaning through ironic-python-agent, as Ironic's agent
//! deploy interface drives it: at the first heartbeat of `clean wait` the
//! conductor asks the agent for its clean steps (`clean.get_clean_steps`),
//! keeps those with a priority above zero (after
//! `[conductor] clean_step_priority_override`), highest first, and starts
//! each with `clean.execute_clean_step`; every later heartbeat reads the
//! agent's command list: a step still running waits, a failed one fails
//! cleaning with the agent's error, a finished one starts the next. When
//! none is left the node is powered off and becomes `available`.
//!
//! A ramdisk that heartbeats without a command API (`callback_url` empty,
//! as the test ramdisk and Anaconda) ends cleaning at its heartbeat.

use std::collections::BTreeMap;

use serde_json::json;

use super::agent_client::{AgentClient, AgentError};
use super::*;

/// `driver_internal_info` keys of a cleaning in progress.
pub const CLEAN_STEPS: &str = "clean_steps";
pub const CLEAN_STEP_INDEX: &str = "clean_step_index";
pub const HARDWARE_MANAGER_VERSION: &str = "hardware_manager_version";
/// Set when an abort came during a step the agent cannot abort: cleaning
/// stops once that step ends.
pub const CLEAN_ABORT_AFTER: &str = "clean_abort_after";
/// The steps a manual cleaning (`clean`) was given, as the API checked them.
pub const MANUAL_CLEAN_STEPS: &str = "manual_clean_steps";

/// The agent's steps of the `deploy` interface (the one the agent deploy
/// interface runs; see automated_plan), by name, from its answer to
/// `clean.get_clean_steps` or `deploy.get_deploy_steps` (`key`: their
/// list by hardware manager). A step two managers list: the first.
pub(super) fn agent_steps(
    result: &Value,
    key: &str,
) -> std::result::Result<BTreeMap<String, Value>, String> {
    let by_manager = result
        .get(key)
        .and_then(Value::as_object)
        .ok_or_else(|| format!("the agent's answer has no {key}"))?;
    let mut known = BTreeMap::new();
    for list in by_manager.values() {
        for s in list.as_array().into_iter().flatten() {
            if s.get("interface").and_then(Value::as_str) == Some("deploy") {
                known.entry(step_name(s)).or_insert_with(|| s.clone());
            }
        }
    }
    Ok(known)
}

/// A requested step's `args` (none: empty).
pub(super) fn step_args(step: &Value) -> serde_json::Map<String, Value> {
    step.get("args")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// Ironic's check of a requested step's args against the agent step's
/// `argsinfo` (`_validate_user_step`): args it does not take, and, with
/// `required`, those it requires that are missing. `kind`: "clean", "deploy".
pub(super) fn arg_errors(
    kind: &str,
    name: &str,
    args: &serde_json::Map<String, Value>,
    agent_step: &Value,
    required: bool,
) -> Vec<String> {
    let empty = serde_json::Map::new();
    let argsinfo = agent_step
        .get("argsinfo")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let mut errors = Vec::new();
    let unexpected: Vec<&str> = args
        .keys()
        .filter(|k| !argsinfo.contains_key(*k))
        .map(String::as_str)
        .collect();
    if !unexpected.is_empty() {
        errors.push(format!(
            "{kind} step {name} has these unexpected arguments: {}",
            unexpected.join(", ")
        ));
    }
    let missing: Vec<String> = argsinfo
        .iter()
        .filter(|(k, i)| {
            required
                && i.get("required").and_then(Value::as_bool) == Some(true)
                && !args.contains_key(*k)
        })
        .map(
            |(k, i)| match i.get("description").and_then(Value::as_str) {
                Some(d) => format!("{k} ({d})"),
                None => k.clone(),
            },
        )
        .collect();
    if !missing.is_empty() {
        errors.push(format!(
            "{kind} step {name} is missing these required arguments: {}",
            missing.join(", ")
        ));
    }
    errors
}

/// The conductor's own flow steps in Ironic, which rackboot does not run.
const FLOW_STEPS: &[&str] = &["power_on", "power_off", "reboot", "hold", "wait"];

/// Ironic's schema of user clean steps (`_STEPS_SCHEMA`): a list of objects
/// with `interface` (one of Ironic's step interfaces) and `step`, and
/// optionally `args` (an object), `order`, `execute_on_child_nodes` and
/// `limit_child_node_execution`; nothing else.
pub fn check_user_steps(v: &Value) -> std::result::Result<Vec<Value>, String> {
    let list = v
        .as_array()
        .ok_or_else(|| format!("{v} is not of type 'array'"))?;
    for s in list {
        let m = s
            .as_object()
            .ok_or_else(|| format!("{s} is not of type 'object'"))?;
        for key in ["interface", "step"] {
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
                "order" => {
                    val.as_u64().is_some()
                        || val
                            .as_str()
                            .is_some_and(|x| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit()))
                }
                "execute_on_child_nodes" => val.is_boolean(),
                "limit_child_node_execution" => val.is_array(),
                other => {
                    return Err(format!(
                        "Additional properties are not allowed ('{other}' was unexpected)"
                    ))
                }
            };
            if !ok {
                let want = match k.as_str() {
                    "interface" => format!(
                        "is not one of {:?}",
                        crate::model::template::STEP_INTERFACES
                    ),
                    "step" => "is not a non-empty string".into(),
                    "args" => "is not of type 'object'".into(),
                    _ => "is not valid".into(),
                };
                return Err(format!("{val} {want} (in {k})"));
            }
        }
        if m.get("execute_on_child_nodes").and_then(Value::as_bool) == Some(true) {
            return Err("execute_on_child_nodes: rackboot has no child nodes yet".into());
        }
    }
    Ok(list.clone())
}

/// The plan of a manual cleaning: the user's steps in their order, each
/// matched with the step the agent lists (its `abortable`, `priority`,
/// `reboot_requested`), with the user's `args` checked against the
/// step's `argsinfo` (Ironic's `_validate_user_clean_steps`).
pub fn manual_plan(result: &Value, user: &[Value]) -> std::result::Result<Vec<Value>, String> {
    let known = agent_steps(result, "clean_steps")?;
    let mut errors = Vec::new();
    let mut plan = Vec::new();
    for u in user {
        let name = step_name(u);
        let step = u.get("step").and_then(Value::as_str).unwrap_or("");
        if FLOW_STEPS.contains(&step) {
            errors.push(format!(
                "clean step {name} is one of Ironic's flow steps, which rackboot does not run yet"
            ));
            continue;
        }
        let Some(agent_step) = known.get(&name) else {
            errors.push(format!("node does not support this clean step: {name}"));
            continue;
        };
        let args = step_args(u);
        errors.extend(arg_errors("clean", &name, &args, agent_step, true));
        let mut s = agent_step.clone();
        s["args"] = Value::Object(args);
        plan.push(s);
    }
    if errors.is_empty() {
        Ok(plan)
    } else {
        Err(errors.join("; "))
    }
}

/// The step a cleaning in progress runs (from its plan and place).
fn current_step(node: &Node) -> Option<Value> {
    let i = node.driver_internal_info.get(CLEAN_STEP_INDEX)?.as_u64()? as usize;
    node.driver_internal_info
        .get(CLEAN_STEPS)?
        .as_array()?
        .get(i)
        .cloned()
}

/// Ironic's last_error for an aborted cleaning.
fn aborted(node: &Node) -> String {
    let step = current_step(node)
        .map(|s| {
            format!(
                " during or after the completion of step \"{}\"",
                step_name(&s)
            )
        })
        .unwrap_or_default();
    format!("Clean operation aborted for node {}{step}", node.uuid)
}

/// One clean step as the agent lists it (and as it is sent back).
pub(super) fn step_name(step: &Value) -> String {
    format!(
        "{}.{}",
        step.get("interface").and_then(Value::as_str).unwrap_or("?"),
        step.get("step").and_then(Value::as_str).unwrap_or("?")
    )
}

/// Parses `[conductor] clean_step_priority_override` entries
/// (`interface.step:priority`, Ironic's form).
pub fn parse_overrides(entries: &[String]) -> std::result::Result<BTreeMap<String, u64>, String> {
    entries
        .iter()
        .map(|e| {
            let (name, prio) = e
                .rsplit_once(':')
                .filter(|(n, _)| {
                    n.split_once('.')
                        .is_some_and(|(i, s)| !i.is_empty() && !s.is_empty())
                })
                .ok_or_else(|| {
                    format!(
                        "{e:?} is not interface.step:priority (e.g. \"deploy.erase_devices:0\")"
                    )
                })?;
            let prio = prio
                .trim()
                .parse::<u64>()
                .map_err(|_| format!("{e:?}: the priority must be a whole number"))?;
            Ok((name.trim().to_string(), prio))
        })
        .collect()
}

/// The automated plan from the agent's answer to `get_clean_steps`: steps
/// with a priority above zero (after overrides), highest first (ties keep
/// the agent's order); each step carries its effective priority.
pub fn automated_plan(
    result: &Value,
    overrides: &BTreeMap<String, u64>,
) -> std::result::Result<Vec<Value>, String> {
    let by_manager = result
        .get("clean_steps")
        .and_then(Value::as_object)
        .ok_or("the agent's answer has no clean_steps")?;
    let mut steps: Vec<Value> = Vec::new();
    for list in by_manager.values() {
        for s in list
            .as_array()
            .ok_or("clean_steps of a hardware manager is not a list")?
        {
            for key in ["interface", "step", "priority"] {
                if s.get(key).is_none() {
                    return Err(format!("a clean step has no {key}: {s}"));
                }
            }
            // Ironic's agent deploy interface takes the agent's deploy
            // steps; RAID and BIOS steps need agent interfaces of their own.
            if s.get("interface").and_then(Value::as_str) != Some("deploy") {
                continue;
            }
            let mut s = s.clone();
            let name = step_name(&s);
            // The same step from two managers: the agent runs the one with
            // the higher priority; list it once.
            if steps.iter().any(|x| step_name(x) == name) {
                continue;
            }
            if let Some(p) = overrides.get(&name) {
                s["priority"] = Value::from(*p);
            }
            steps.push(s);
        }
    }
    let prio = |s: &Value| s.get("priority").and_then(Value::as_u64).unwrap_or(0);
    steps.retain(|s| prio(s) > 0);
    steps.sort_by_key(|s| std::cmp::Reverse(prio(s)));
    Ok(steps)
}

/// The node as the agent's clean commands get it (secrets masked, the
/// token left out).
pub(super) fn node_doc(node: &Node) -> Value {
    let mut internal = node.driver_internal_info.clone();
    for k in [internal::AGENT_TOKEN, CLEAN_STEPS] {
        internal.remove(k);
    }
    json!({
        "uuid": node.uuid,
        "name": node.name,
        "driver": node.driver,
        "provision_state": node.provision_state.to_string(),
        "properties": node.properties,
        "instance_info": crate::redact::Masked { map: &node.instance_info, extra: &[] },
        "driver_info": crate::redact::Masked { map: &node.driver_info, extra: &[] },
        "driver_internal_info": internal,
    })
}

pub(super) fn ports_doc(ports: &[crate::model::Port]) -> Value {
    Value::Array(
        ports
            .iter()
            .map(|p| {
                json!({"uuid": p.uuid, "address": p.address.to_string(), "pxe_enabled": p.pxe_enabled,
                       "extra": p.extra, "local_link_connection": p.local_link_connection})
            })
            .collect(),
    )
}

impl Conductor {
    /// Abort from clean wait: a step the agent cannot abort runs to its
    /// end first (cleaning stops then); otherwise clean failed at once and
    /// the node powered off.
    pub(super) async fn abort_cleaning(
        &self,
        lock: super::locking::LockGuard,
        mut node: Node,
        user: &Option<String>,
    ) -> Result<()> {
        if let Some(step) = current_step(&node) {
            if step.get("abortable").and_then(Value::as_bool) != Some(true) {
                node.driver_internal_info
                    .insert(CLEAN_ABORT_AFTER.into(), Value::Bool(true));
                node.updated_at = Some(now());
                let h = history(
                    Severity::Info,
                    "provisioning",
                    format!(
                        "abort requested: clean step {} is not abortable; cleaning stops once it ends",
                        step_name(&step)
                    ),
                    user,
                );
                return self.save_locked(node, vec![h], lock).await.map(drop);
            }
        }
        let msg = aborted(&node);
        self.abort_wait(lock, node, &msg, user).await
    }

    /// The agent client (built once per conductor).
    pub(super) fn agent_client(&self) -> &AgentClient {
        &self.inner.agent
    }

    /// One round of agent-driven cleaning, run by a worker after a
    /// heartbeat moved the node from `clean wait` to `cleaning`.
    pub(super) async fn agent_clean(
        &self,
        task: &mut Task,
        b: &Bundle,
    ) -> std::result::Result<Option<Event>, String> {
        let uuid = task.node.uuid;
        let (url, token) = agent_endpoint(&task.node, "clean")?;
        let agent = self.agent_client().clone();
        let fail = |e: AgentError| format!("Agent error while cleaning node {uuid}: {e}");
        let mut plan: Vec<Value> = task
            .node
            .driver_internal_info
            .get(CLEAN_STEPS)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let current = task
            .node
            .driver_internal_info
            .get(CLEAN_STEP_INDEX)
            .and_then(Value::as_u64)
            .map(|i| i as usize);
        let next = match current {
            None if !task.node.driver_internal_info.contains_key(CLEAN_STEPS) => {
                let params = json!({"node": node_doc(&task.node), "ports": ports_doc(&task.ports)});
                let r = agent
                    .execute(&url, &token, "clean.get_clean_steps", params, true)
                    .await
                    .map_err(fail)?;
                let result = r.command_result.unwrap_or(Value::Null);
                let manual = task
                    .node
                    .driver_internal_info
                    .get(MANUAL_CLEAN_STEPS)
                    .and_then(Value::as_array)
                    .cloned();
                plan = match &manual {
                    Some(user) => manual_plan(&result, user),
                    None => automated_plan(&result, &self.inner.settings.clean_step_overrides),
                }
                .map_err(|e| format!("Failed to clean node {uuid}: {e}"))?;
                let listed = plan
                    .iter()
                    .map(|s| format!("{} ({})", step_name(s), s["priority"]))
                    .collect::<Vec<_>>()
                    .join(", ");
                task.record(
                    Severity::Info,
                    "agent",
                    format!(
                        "agent command clean.get_clean_steps: {} {} step(s): {}",
                        plan.len(),
                        if manual.is_some() {
                            "manual"
                        } else {
                            "automated"
                        },
                        if listed.is_empty() { "none" } else { &listed }
                    ),
                );
                task.node
                    .driver_internal_info
                    .insert(CLEAN_STEPS.into(), Value::Array(plan.clone()));
                if let Some(v) = result.get("hardware_manager_version") {
                    task.node
                        .driver_internal_info
                        .insert(HARDWARE_MANAGER_VERSION.into(), v.clone());
                }
                0
            }
            None => 0,
            Some(i) => {
                let name = plan.get(i).map(step_name).unwrap_or_else(|| "?".into());
                let list = agent.commands(&url, &token).await.map_err(fail)?;
                match list.iter().rev().find(|c| c.command_name == "execute_clean_step") {
                    Some(c) if c.running() => {
                        task.record(
                            Severity::Info,
                            "agent",
                            format!("clean step {name} still running on the agent"),
                        );
                        return Ok(Some(Event::Wait));
                    }
                    Some(c) if c.command_status == "SUCCEEDED" => {
                        task.record(
                            Severity::Info,
                            "agent",
                            format!("agent command clean.execute_clean_step {name}: done"),
                        );
                        if task.node.driver_internal_info.contains_key(CLEAN_ABORT_AFTER) {
                            let msg = aborted(&task.node);
                            forget_cleaning(&mut task.node);
                            task.node.wipe_agent();
                            task.node.set_callback_deadline(None);
                            if let Err(e) = self.power_action(task, b, PowerState::Off).await {
                                task.record(
                                    Severity::Warning,
                                    "power",
                                    format!("cleaning aborted, and the power-off failed: {e}"),
                                );
                            }
                            return Err(msg);
                        }
                        i + 1
                    }
                    Some(c) if c.command_status == "CLEAN_VERSION_MISMATCH" => {
                        // The agent's hardware managers changed: ask again
                        // for its steps and start over, as Ironic does.
                        task.record(
                            Severity::Warning,
                            "agent",
                            format!("clean step {name}: the agent's hardware managers changed; its steps are read again"),
                        );
                        if !task.node.driver_internal_info.contains_key(MANUAL_CLEAN_STEPS) {
                            forget_cleaning(&mut task.node);
                            return Box::pin(self.agent_clean(task, b)).await;
                        }
                        // Manual steps need not be idempotent: only this
                        // one runs again, with the agent's new version.
                        let params = json!({"node": node_doc(&task.node), "ports": ports_doc(&task.ports)});
                        let r = agent
                            .execute(&url, &token, "clean.get_clean_steps", params, true)
                            .await
                            .map_err(fail)?;
                        if let Some(v) = r
                            .command_result
                            .as_ref()
                            .and_then(|x| x.get("hardware_manager_version"))
                        {
                            task.node
                                .driver_internal_info
                                .insert(HARDWARE_MANAGER_VERSION.into(), v.clone());
                        }
                        i
                    }
                    Some(c) => {
                        return Err(format!(
                            "Agent returned error for clean step {name} on node {uuid} : {}",
                            c.error_text()
                        ))
                    }
                    None => {
                        return Err(format!(
                            "Failed to clean node {uuid}: the agent does not list clean step {name} (did it restart?)"
                        ))
                    }
                }
            }
        };
        if let Some(step) = plan.get(next) {
            let name = step_name(step);
            let params = json!({
                "step": step,
                "node": node_doc(&task.node),
                "ports": ports_doc(&task.ports),
                "clean_version": task.node.driver_internal_info.get(HARDWARE_MANAGER_VERSION).cloned().unwrap_or(Value::Null),
            });
            agent
                .execute(&url, &token, "clean.execute_clean_step", params, false)
                .await
                .map_err(fail)?;
            task.node
                .driver_internal_info
                .insert(CLEAN_STEP_INDEX.into(), Value::from(next as u64));
            let deadline =
                self.unix_now() + self.inner.settings.clean_callback_timeout.as_secs() as i64;
            task.node.set_callback_deadline(Some(deadline));
            task.record(
                Severity::Info,
                "agent",
                format!(
                    "agent command clean.execute_clean_step {name} (priority {}) started",
                    step["priority"]
                ),
            );
            return Ok(Some(Event::Wait));
        }
        // Every step ran: the agent's work is done; power the node off as
        // Ironic's tear-down of cleaning does.
        self.power_action(task, b, PowerState::Off)
            .await
            .map_err(|e| format!("Failed to tear down cleaning of node {uuid}: {e}"))?;
        // And forget the ramdisk's boot (virtual media is ejected).
        b.boot
            .clean_up_ramdisk(task)
            .await
            .map_err(|e| format!("Failed to tear down cleaning of node {uuid}: {e}"))?;
        forget_cleaning(&mut task.node);
        let manual = task
            .node
            .driver_internal_info
            .remove(MANUAL_CLEAN_STEPS)
            .is_some();
        task.node.set_boot_decision(None);
        if !manual {
            // Automated cleaning wiped what an adopted machine ran; manual
            // steps may not have, so the guard stays for those.
            task.node.set_adopted(None);
        }
        task.node.wipe_agent();
        task.node.set_callback_deadline(None);
        task.record(
            Severity::Info,
            "provisioning",
            format!(
                "{} cleaning done: {} step(s) ran on the agent; powered off",
                if manual { "manual" } else { "automated" },
                plan.len()
            ),
        );
        // Manual cleaning goes back to manageable (Ironic's "manage" event).
        Ok(manual.then_some(Event::Manage))
    }
}

/// The agent's command API and token, from its heartbeat and lookup
/// (`what`: "clean", "deploy", for the message when one is missing).
pub(super) fn agent_endpoint(
    node: &Node,
    what: &str,
) -> std::result::Result<(String, String), String> {
    let text = |k: &str| {
        node.driver_internal_info
            .get(k)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    match (text(internal::AGENT_URL), text(internal::AGENT_TOKEN)) {
        (Some(url), Some(token)) => Ok((url, token)),
        _ => Err(format!(
            "Failed to {what} node {}: the agent's URL or token is not known",
            node.uuid
        )),
    }
}

/// Drops a cleaning's plan and place (at its end, and when it fails).
pub fn forget_cleaning(node: &mut Node) {
    for k in [
        CLEAN_STEPS,
        CLEAN_STEP_INDEX,
        HARDWARE_MANAGER_VERSION,
        CLEAN_ABORT_AFTER,
    ] {
        node.driver_internal_info.remove(k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// IPA 13.0.0's GenericHardwareManager clean steps (priorities as the
    /// agent lists them).
    fn ipa_steps() -> Value {
        json!({"clean_steps": {"GenericHardwareManager": [
            {"step": "erase_devices", "priority": 10, "interface": "deploy", "reboot_requested": false, "abortable": true},
            {"step": "erase_devices_metadata", "priority": 99, "interface": "deploy", "reboot_requested": false, "abortable": true},
            {"step": "erase_pstore", "priority": 0, "interface": "deploy", "reboot_requested": false, "abortable": true},
            {"step": "delete_configuration", "priority": 0, "interface": "raid", "reboot_requested": false, "abortable": true}
        ]}, "hardware_manager_version": {"generic_hardware_manager": "1.2"}})
    }

    #[test]
    fn plans() {
        let names = |p: &[Value]| p.iter().map(step_name).collect::<Vec<_>>();
        let none = BTreeMap::new();
        assert_eq!(
            names(&automated_plan(&ipa_steps(), &none).unwrap()),
            ["deploy.erase_devices_metadata", "deploy.erase_devices"]
        );
        let o = parse_overrides(&[
            "deploy.erase_devices:0".into(),
            "deploy.erase_pstore:100".into(),
        ])
        .unwrap();
        let p = automated_plan(&ipa_steps(), &o).unwrap();
        assert_eq!(
            names(&p),
            ["deploy.erase_pstore", "deploy.erase_devices_metadata"]
        );
        assert_eq!(p[0]["priority"], 100);
        assert!(automated_plan(&json!({}), &none).is_err());
        assert!(automated_plan(&json!({"clean_steps": {"m": [{"step": "x"}]}}), &none).is_err());
        for bad in [
            "erase_devices:0",
            "deploy.erase_devices",
            "deploy.x:high",
            ".x:1",
        ] {
            assert!(parse_overrides(&[bad.to_string()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn user_steps_are_checked_as_ironics_schema_does() {
        let cases: &[(Value, bool)] = &[
            (
                json!([{"interface": "deploy", "step": "erase_devices_metadata"}]),
                true,
            ),
            (
                json!([{"interface": "deploy", "step": "x", "args": {"a": 1}, "order": 2}]),
                true,
            ),
            (
                json!([{"interface": "raid", "step": "x", "order": "3"}]),
                true,
            ),
            (json!([]), true),
            (json!({"interface": "deploy"}), false),
            (json!([{"step": "x"}]), false),
            (json!([{"interface": "deploy"}]), false),
            (json!([{"interface": "disk", "step": "x"}]), false),
            (json!([{"interface": "deploy", "step": ""}]), false),
            (
                json!([{"interface": "deploy", "step": "x", "args": []}]),
                false,
            ),
            (
                json!([{"interface": "deploy", "step": "x", "order": "a"}]),
                false,
            ),
            (
                json!([{"interface": "deploy", "step": "x", "priority": 1}]),
                false,
            ),
            (
                json!([{"interface": "deploy", "step": "x", "execute_on_child_nodes": true}]),
                false,
            ),
            (json!(["x"]), false),
        ];
        for (v, ok) in cases {
            assert_eq!(
                check_user_steps(v).is_ok(),
                *ok,
                "{v}: {:?}",
                check_user_steps(v)
            );
        }
    }

    #[test]
    fn manual_plans_match_the_agents_steps() {
        let mut agent = ipa_steps();
        agent["clean_steps"]["GenericHardwareManager"][0]["argsinfo"] = json!({
            "passes": {"description": "how many passes", "required": false},
            "device": {"description": "which", "required": true}});
        let names = |p: &[Value]| p.iter().map(step_name).collect::<Vec<_>>();
        // The user's order, not the priorities; a priority-0 step runs too.
        let plan = manual_plan(
            &agent,
            &[
                json!({"interface": "deploy", "step": "erase_pstore"}),
                json!({"interface": "deploy", "step": "erase_devices_metadata"}),
            ],
        )
        .unwrap();
        assert_eq!(
            names(&plan),
            ["deploy.erase_pstore", "deploy.erase_devices_metadata"]
        );
        assert_eq!(plan[0]["abortable"], true);
        let plan = manual_plan(
            &agent,
            &[json!({"interface": "deploy", "step": "erase_devices", "args": {"device": "/dev/vda", "passes": 2}})],
        )
        .unwrap();
        assert_eq!(plan[0]["args"], json!({"device": "/dev/vda", "passes": 2}));
        for (user, want) in [
            (
                json!({"interface": "deploy", "step": "nope"}),
                "node does not support this clean step",
            ),
            (
                json!({"interface": "raid", "step": "delete_configuration"}),
                "node does not support this clean step",
            ),
            (
                json!({"interface": "deploy", "step": "erase_devices"}),
                "missing these required arguments: device (which)",
            ),
            (
                json!({"interface": "deploy", "step": "erase_devices", "args": {"device": "x", "zap": 1}}),
                "unexpected arguments: zap",
            ),
            (
                json!({"interface": "power", "step": "reboot"}),
                "flow steps",
            ),
        ] {
            let e = manual_plan(&agent, std::slice::from_ref(&user)).unwrap_err();
            assert!(e.contains(want), "{user}: {e}");
        }
    }

    #[tokio::test]
    async fn abort_in_clean_wait_waits_for_a_step_the_agent_cannot_abort() {
        use crate::conductor::tests::{conductor, fake_node, wait_for};
        let dir = tempfile::tempdir().unwrap();
        let c = conductor(&dir, Settings::default());
        for (name, abortable) in [("hard", false), ("soft", true)] {
            let mut n = fake_node(name, State::CleanWait);
            n.target_provision_state = State::CleanWait.default_target();
            let steps = ipa_steps()["clean_steps"]["GenericHardwareManager"].clone();
            let mut plan: Vec<Value> = steps.as_array().unwrap()[..2].to_vec();
            plan[1]["abortable"] = Value::Bool(abortable);
            n.driver_internal_info
                .insert(CLEAN_STEPS.into(), Value::Array(plan));
            n.driver_internal_info
                .insert(CLEAN_STEP_INDEX.into(), json!(1));
            c.store()
                .create_node(&n, &HistoryEntry::new(Severity::Info, "test", "seeded"))
                .unwrap();
            c.provision(name, "abort", ProvisionOptions::default())
                .await
                .unwrap();
        }
        let hard = c.load("hard").await.unwrap();
        assert_eq!(hard.provision_state, State::CleanWait, "the step runs on");
        assert_eq!(hard.driver_internal_info[CLEAN_ABORT_AFTER], true);
        let soft = wait_for(&c, "soft", State::CleanFailed).await;
        assert_eq!(
            soft.last_error,
            Some(format!(
                "Clean operation aborted for node {} during or after the completion of step \"deploy.erase_devices_metadata\"",
                soft.uuid
            ))
        );
        assert_eq!(soft.power_state, Some(PowerState::Off));
        assert!(!soft.driver_internal_info.contains_key(CLEAN_STEPS));
    }

    #[test]
    fn the_agent_never_sees_the_token_or_secrets() {
        let mut n = crate::conductor::tests::fake_node("c", State::Cleaning);
        n.driver_internal_info
            .insert(internal::AGENT_TOKEN.into(), json!("tok-secret"));
        n.driver_info
            .insert("ipmi_password".into(), json!("pw-secret"));
        let doc = node_doc(&n).to_string();
        assert!(
            !doc.contains("tok-secret") && !doc.contains("pw-secret"),
            "{doc}"
        );
    }
}
