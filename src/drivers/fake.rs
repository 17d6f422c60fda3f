//! Fake interfaces: they touch no hardware. Fake power remembers the node's
//! state through the node record (as Ironic's does) and records every call in
//! the node history, so tests can prove what was — and was not — sent.

use std::time::Duration;

use serde_json::Value;

use super::{
    Boot, BoxFuture, Bundle, Deploy, DeployOutcome, Error, Management, Power, Result, Task,
};
use crate::model::{Node, PowerState, Severity};

/// driver_info keys the fake interfaces read.
pub const PROPERTIES: &[(&str, &str)] = &[
    ("fake_power_state", "The power state fake power reports before any is recorded: \"power on\" (default) or \"power off\". Optional."),
    ("fake_power_delay", "Seconds each fake power call takes. Optional, default 0."),
    ("fake_deploy_delay", "Seconds each fake deploy step (prepare, take over, deploy) takes. Optional, default 0."),
];

/// Reads an optional delay in seconds (number or numeric string) from driver_info.
fn delay(node: &Node, key: &str) -> Result<Duration> {
    let secs = match node.driver_info.get(key) {
        None | Some(Value::Null) => return Ok(Duration::ZERO),
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
        Some(_) => None,
    };
    match secs {
        Some(s) if s.is_finite() && (0.0..=3600.0).contains(&s) => Ok(Duration::from_secs_f64(s)),
        _ => Err(Error::InvalidParameter(format!(
            "driver_info/{key} must be a number of seconds between 0 and 3600"
        ))),
    }
}

fn initial_power(node: &Node) -> Result<PowerState> {
    match node.driver_info.get("fake_power_state") {
        None | Some(Value::Null) => Ok(PowerState::On),
        Some(Value::String(s)) if s == "power on" => Ok(PowerState::On),
        Some(Value::String(s)) if s == "power off" => Ok(PowerState::Off),
        Some(_) => Err(Error::InvalidParameter(
            "driver_info/fake_power_state must be \"power on\" or \"power off\"".into(),
        )),
    }
}

/// Fake power: reports the recorded state, accepts every change.
pub struct FakePower;

impl Power for FakePower {
    fn validate(&self, node: &Node) -> Result<()> {
        initial_power(node)?;
        delay(node, "fake_power_delay")?;
        Ok(())
    }

    fn get_power_state<'a>(&'a self, task: &'a Task) -> BoxFuture<'a, Result<PowerState>> {
        Box::pin(async move {
            tokio::time::sleep(delay(&task.node, "fake_power_delay")?).await;
            let state = match task.node.power_state {
                Some(s) => s,
                None => initial_power(&task.node)?,
            };
            task.record(
                Severity::Info,
                "power",
                format!("fake power call: get_power_state -> {state}"),
            );
            Ok(state)
        })
    }

    fn set_power_state<'a>(
        &'a self,
        task: &'a Task,
        target: PowerState,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            tokio::time::sleep(delay(&task.node, "fake_power_delay")?).await;
            task.record(
                Severity::Info,
                "power",
                format!("fake power call: set_power_state {target}"),
            );
            Ok(())
        })
    }
}

/// Fake management: remembers the boot device it was given, per node.
#[derive(Default)]
pub struct FakeManagement;

/// Where fake management keeps the boot device: in the node record, so it
/// survives restarts and goes with the node.
const BOOT_DEVICE_KEY: &str = "fake_boot_device";

impl Management for FakeManagement {
    fn validate(&self, _node: &Node) -> Result<()> {
        Ok(())
    }

    fn set_boot_device<'a>(
        &'a self,
        task: &'a mut Task,
        device: &'a str,
        persistent: bool,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            task.record(
                Severity::Info,
                "management",
                format!("fake management call: set_boot_device {device} persistent={persistent}"),
            );
            task.node.driver_internal_info.insert(
                BOOT_DEVICE_KEY.into(),
                serde_json::json!({"boot_device": device, "persistent": persistent}),
            );
            Ok(())
        })
    }

    fn get_boot_device<'a>(
        &'a self,
        task: &'a Task,
    ) -> BoxFuture<'a, Result<(Option<String>, Option<bool>)>> {
        Box::pin(async move {
            let v = task.node.driver_internal_info.get(BOOT_DEVICE_KEY);
            let device = v
                .and_then(|v| v["boot_device"].as_str())
                .map(str::to_string);
            let persistent = v.and_then(|v| v["persistent"].as_bool());
            Ok((device, persistent))
        })
    }

    fn inject_nmi<'a>(&'a self, _task: &'a mut Task) -> BoxFuture<'a, Result<String>> {
        Box::pin(async { Ok("fake management call: inject_nmi".to_string()) })
    }

    fn has_virtual_media(&self) -> bool {
        true
    }

    fn attach_virtual_media<'a>(
        &'a self,
        _task: &'a mut Task,
        device: &'a str,
        url: &'a str,
    ) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move {
            Ok(format!(
                "virtual media {device} attached: {}",
                crate::redact::redact(url)
            ))
        })
    }

    fn detach_virtual_media<'a>(
        &'a self,
        _task: &'a mut Task,
        devices: &'a [String],
    ) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move {
            Ok(format!(
                "virtual media detached: {}",
                if devices.is_empty() {
                    "all devices".to_string()
                } else {
                    devices.join(", ")
                }
            ))
        })
    }
}

/// Fake boot: nothing to check, nothing to prepare, nothing sent to the
/// machine. What the node boots is only recorded in the node.
pub struct FakeBoot;

impl Boot for FakeBoot {
    fn validate<'a>(&'a self, _task: &'a Task) -> BoxFuture<'a, Result<()>> {
        Box::pin(async { Ok(()) })
    }

    fn prepare_instance<'a>(&'a self, task: &'a mut Task) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            task.node
                .set_boot_decision(Some(crate::model::BootDecision::Local));
            Ok(())
        })
    }

    fn prepare_ramdisk<'a>(
        &'a self,
        _task: &'a mut Task,
        _bundle: &'a Bundle,
    ) -> BoxFuture<'a, Result<String>> {
        Box::pin(async { Ok(NOTHING_SENT.to_string()) })
    }

    fn clean_up_ramdisk<'a>(&'a self, _task: &'a mut Task) -> BoxFuture<'a, Result<()>> {
        Box::pin(async { Ok(()) })
    }

    fn boot_instance<'a>(
        &'a self,
        _task: &'a mut Task,
        _bundle: &'a Bundle,
    ) -> BoxFuture<'a, Result<String>> {
        Box::pin(async { Ok(NOTHING_SENT.to_string()) })
    }

    fn clean_up_instance<'a>(&'a self, task: &'a mut Task) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            task.node.set_boot_decision(None);
            Ok(())
        })
    }
}

/// What fake boot says it did to make the node boot.
const NOTHING_SENT: &str = "fake boot: no boot device or power command sent";

/// Fake deploy: every step succeeds after `fake_deploy_delay`.
pub struct FakeDeploy;

impl Deploy for FakeDeploy {
    fn validate(&self, node: &Node) -> Result<()> {
        delay(node, "fake_deploy_delay").map(|_| ())
    }

    fn prepare<'a>(&'a self, task: &'a mut Task) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            tokio::time::sleep(delay(&task.node, "fake_deploy_delay")?).await;
            Ok(())
        })
    }

    fn take_over<'a>(&'a self, task: &'a mut Task) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            tokio::time::sleep(delay(&task.node, "fake_deploy_delay")?).await;
            Ok(())
        })
    }

    fn deploy<'a>(
        &'a self,
        task: &'a mut Task,
        _bundle: &'a Bundle,
    ) -> BoxFuture<'a, Result<DeployOutcome>> {
        Box::pin(async move {
            tokio::time::sleep(delay(&task.node, "fake_deploy_delay")?).await;
            Ok(DeployOutcome::Done)
        })
    }

    /// Touches nothing; the boot interface forgets the instance.
    fn tear_down<'a>(
        &'a self,
        task: &'a mut Task,
        bundle: &'a Bundle,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move { bundle.boot.clean_up_instance(task).await })
    }

    fn cleaning_touches_disks(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Interfaces, State};
    use serde_json::json;
    use uuid::Uuid;

    #[test]
    fn delay_cases() {
        let cases = [
            (json!(null), Some(0.0)),
            (json!(1.5), Some(1.5)),
            (json!("2"), Some(2.0)),
            (json!(-1), None),
            (json!("soon"), None),
            (json!(99999), None),
            (json!([1]), None),
        ];
        for (v, want) in cases {
            let mut n = Node::new(
                Uuid::new_v4(),
                "fake-hardware",
                Interfaces::default(),
                State::Enroll,
                String::new(),
            );
            n.driver_info.insert("fake_deploy_delay".into(), v.clone());
            let got = delay(&n, "fake_deploy_delay").ok().map(|d| d.as_secs_f64());
            assert_eq!(got, want, "{v}");
        }
    }
}
