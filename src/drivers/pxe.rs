//! Network-boot interfaces: `ipxe`/`pxe` boot and the `ramdisk` deploy.
//!
//! Boot validation checks what a later network boot of the node needs — a
//! port with a MAC, the deploy kernel and ramdisk, a reachable instance image
//! — and touches no hardware. Takeover (adoption) records the node's boot
//! decision and nothing else: no boot device is set on a running machine.

use serde_json::Value;

use super::{
    Boot, BoxFuture, Bundle, Deploy, DeployOutcome, Error, Management, Power, Result, Task,
};
use crate::images;
use crate::model::{BootDecision, Node, PowerState, Severity};
use crate::redact::redact;

/// driver_info keys the network-boot interfaces read.
pub const PROPERTIES: &[(&str, &str)] = &[
    ("deploy_kernel", "URL (http, https, file) or absolute path of the deploy kernel. Required for network boot."),
    ("deploy_ramdisk", "URL (http, https, file) or absolute path of the deploy ramdisk. Required for network boot."),
];

/// Checks that an image reference is a string naming a supported source.
pub fn check_image_ref(key: &str, value: &Value) -> Result<()> {
    match value {
        Value::String(s) if images::Source::parse(s).is_ok() => Ok(()),
        Value::String(s) => Err(Error::InvalidParameter(format!(
            "{key} {:?} is not an http://, https:// or file:// URL or an absolute path",
            redact(s)
        ))),
        _ => Err(Error::InvalidParameter(format!(
            "{key} must be a string (a URL or an absolute path)"
        ))),
    }
}

fn required_ref<'a>(node: &'a Node, key: &str) -> Result<&'a str> {
    match node.driver_info.get(key) {
        None | Some(Value::Null) => Err(Error::MissingParameter(format!(
            "driver_info/{key} is not set; a later network boot of this node needs it. \
             Set it with: baremetal node set {} --driver-info {key}=<URL>",
            node.ident()
        ))),
        Some(v) => {
            check_image_ref(&format!("driver_info/{key}"), v)?;
            Ok(v.as_str().unwrap_or_default())
        }
    }
}

/// The image a network boot of the instance would use: `boot_iso` if set,
/// else `image_source`. Returns (instance_info key, reference).
fn instance_image(node: &Node) -> Result<(&'static str, &str)> {
    for key in ["boot_iso", "image_source"] {
        match node.instance_info.get(key) {
            None | Some(Value::Null) => continue,
            Some(v) => {
                check_image_ref(&format!("instance_info/{key}"), v)?;
                return Ok((key, v.as_str().unwrap_or_default()));
            }
        }
    }
    Err(Error::MissingParameter(format!(
        "instance_info/image_source is not set; it must name the image the node runs (the file may be empty). \
         Set it with: baremetal node set {} --instance-info image_source=<URL>",
        node.ident()
    )))
}

/// iPXE / PXE boot.
pub struct PxeBoot;

impl Boot for PxeBoot {
    fn validate<'a>(&'a self, task: &'a Task) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let node = &task.node;
            if !task.ports.iter().any(|p| p.pxe_enabled) {
                return Err(Error::MissingParameter(format!(
                    "node {} has no PXE-enabled port with a MAC address; create one with: \
                     baremetal port create <MAC> --node {}",
                    node.ident(),
                    node.uuid
                )));
            }
            required_ref(node, "deploy_kernel")?;
            required_ref(node, "deploy_ramdisk")?;
            let (key, reference) = instance_image(node)?;
            images::check_reachable(
                &task.http,
                reference,
                task.settings.image_check_timeout,
                &task.settings.file_url_allowed_paths,
            )
            .await
            .map_err(|why| {
                Error::Failed(format!(
                    "instance_info/{key} {} is not reachable: {why}",
                    redact(reference)
                ))
            })?;
            task.record(
                Severity::Info,
                "provisioning",
                format!(
                    "boot validation: instance_info/{key} {} is reachable",
                    redact(reference)
                ),
            );
            Ok(())
        })
    }

    fn prepare_instance<'a>(&'a self, task: &'a mut Task) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            record_boot_decision(task, "boot device left unchanged");
            // Stage what a later network boot needs, so it is served from
            // here whatever happens to the sources (takeover).
            stage_deploy_images(task, false).await?;
            Ok(())
        })
    }

    /// Stages driver_info/deploy_kernel and deploy_ramdisk (both required),
    /// then boots from the network; the boot services serve the deploy
    /// ramdisk to a node in a ramdisk state.
    fn prepare_ramdisk<'a>(
        &'a self,
        task: &'a mut Task,
        bundle: &'a Bundle,
    ) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move {
            stage_deploy_images(task, true).await?;
            let how =
                boot_from_network(task, bundle.power.as_ref(), bundle.management.as_ref()).await?;
            Ok(format!("boot device pxe, {how}"))
        })
    }

    /// Nothing to forget: what the node boots follows its state, and the
    /// staged images are shared in the cache.
    fn clean_up_ramdisk<'a>(&'a self, _task: &'a mut Task) -> BoxFuture<'a, Result<()>> {
        Box::pin(async { Ok(()) })
    }

    fn boot_instance<'a>(
        &'a self,
        task: &'a mut Task,
        bundle: &'a Bundle,
    ) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move {
            let how =
                boot_from_network(task, bundle.power.as_ref(), bundle.management.as_ref()).await?;
            Ok(format!("boot device pxe (persistent), {how}"))
        })
    }

    fn clean_up_instance<'a>(&'a self, task: &'a mut Task) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            task.node.set_boot_decision(None);
            Ok(())
        })
    }
}

/// Records what the node boots from now on, without touching the machine:
/// the network for the `ramdisk` deploy (its instance), else its disk.
/// `left` says what was left alone, for the history.
pub(super) fn record_boot_decision(task: &mut Task, left: &str) {
    let decision = if task.node.interfaces.deploy == "ramdisk" {
        BootDecision::Network
    } else {
        BootDecision::Local
    };
    task.node.set_boot_decision(Some(decision));
    task.record(
        Severity::Info,
        "provisioning",
        format!("boot decision recorded: {} ({left})", decision.as_str()),
    );
}

/// Stages `driver_info/deploy_kernel` and `deploy_ramdisk`; `required`:
/// a missing one is an error (cleaning boots them), else it is skipped.
pub(super) async fn stage_deploy_images(task: &Task, required: bool) -> Result<()> {
    for key in ["deploy_kernel", "deploy_ramdisk"] {
        let reference = task
            .node
            .driver_info
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_string);
        match reference {
            Some(r) => {
                stage(task, &format!("driver_info/{key}"), &r, None).await?;
            }
            None if required => {
                return Err(Error::MissingParameter(format!(
                    "driver_info/{key} is missing; booting the deploy ramdisk needs it"
                )))
            }
            None => {}
        }
    }
    Ok(())
}

/// Makes the machine boot from the network now: boot device PXE
/// (persistent), then power on, or reboot if it runs. Says which.
async fn boot_from_network(
    task: &mut Task,
    power: &dyn Power,
    mgmt: &dyn Management,
) -> Result<&'static str> {
    mgmt.set_boot_device(task, "pxe", true).await?;
    let running = power.get_power_state(task).await? == PowerState::On;
    let target = if running {
        PowerState::Rebooting
    } else {
        PowerState::On
    };
    power.set_power_state(task, target).await?;
    task.node.power_state = Some(PowerState::On);
    Ok(if running { "rebooted" } else { "powered on" })
}

/// Stages one image into the cache (when there is one), with progress and
/// the result in the node history. The error names the image and why.
pub async fn stage(
    task: &Task,
    what: &str,
    reference: &str,
    expect: Option<&images::cache::Expect>,
) -> Result<Option<images::cache::Staged>> {
    let Some(cache) = task.settings.cache.clone() else {
        return Ok(None);
    };
    let progress = |msg: String| task.record(Severity::Info, "images", msg);
    let staged = cache
        .stage(reference, expect, &progress)
        .await
        .map_err(|e| Error::Failed(format!("cannot stage {what}: {e}")))?;
    task.record(
        Severity::Info,
        "images",
        format!(
            "{what} {} staged ({} bytes, sha256 {}{})",
            redact(reference),
            staged.size,
            &staged.sha256[..16],
            if expect.is_some() {
                ", checksum verified"
            } else {
                ""
            }
        ),
    );
    Ok(Some(staged))
}

/// Ironic's `ramdisk` deploy: the instance is a kernel+ramdisk or ISO booted
/// over the network.
pub struct RamdiskDeploy;

impl Deploy for RamdiskDeploy {
    fn validate(&self, node: &Node) -> Result<()> {
        let has = |k: &str| node.instance_info.get(k).is_some_and(|v| !v.is_null());
        if has("boot_iso") && has("image_source") {
            return Err(Error::InvalidParameter(
                "instance_info/boot_iso and instance_info/image_source are mutually exclusive"
                    .into(),
            ));
        }
        if !(has("boot_iso") || has("image_source") || (has("kernel") && has("ramdisk"))) {
            return Err(Error::MissingParameter(
                "the ramdisk deploy needs instance_info/boot_iso, or instance_info/kernel and instance_info/ramdisk, \
                 or instance_info/image_source"
                    .into(),
            ));
        }
        for key in ["boot_iso", "image_source", "kernel", "ramdisk"] {
            if let Some(v) = node.instance_info.get(key).filter(|v| !v.is_null()) {
                check_image_ref(&format!("instance_info/{key}"), v)?;
            }
        }
        Ok(())
    }

    fn prepare<'a>(&'a self, _task: &'a mut Task) -> BoxFuture<'a, Result<()>> {
        Box::pin(async { Ok(()) })
    }

    fn take_over<'a>(&'a self, _task: &'a mut Task) -> BoxFuture<'a, Result<()>> {
        Box::pin(async { Ok(()) })
    }

    /// The boot decision "network", then the boot interface boots the
    /// instance (with `ipxe`/`pxe`: boot device PXE, persistent, then power
    /// on or reboot a running machine); the node then waits in
    /// `wait call-back` for its ramdisk's heartbeat.
    fn deploy<'a>(
        &'a self,
        task: &'a mut Task,
        bundle: &'a Bundle,
    ) -> BoxFuture<'a, Result<DeployOutcome>> {
        Box::pin(async move {
            // Everything the instance boots is staged (and checked) before
            // the machine is touched.
            let expect = images::cache::Expect::from_instance_info(&task.node.instance_info)
                .map_err(Error::InvalidParameter)?;
            let text = |k: &str| {
                task.node
                    .instance_info
                    .get(k)
                    .and_then(Value::as_str)
                    .map(str::to_string)
            };
            if let Some(iso) = text("boot_iso") {
                stage(task, "instance_info/boot_iso", &iso, expect.as_ref()).await?;
            } else {
                for key in ["kernel", "ramdisk"] {
                    if let Some(r) = text(key) {
                        stage(task, &format!("instance_info/{key}"), &r, None).await?;
                    }
                }
            }
            task.node.set_boot_decision(Some(BootDecision::Network));
            let how = bundle.boot.boot_instance(task, bundle).await?;
            task.record(
                Severity::Info,
                "provisioning",
                format!("{how}: the node network-boots its instance"),
            );
            Ok(DeployOutcome::Wait)
        })
    }

    /// Power off, then the boot interface forgets the ramdisk and the
    /// instance.
    fn tear_down<'a>(
        &'a self,
        task: &'a mut Task,
        bundle: &'a Bundle,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            bundle.power.set_power_state(task, PowerState::Off).await?;
            task.node.power_state = Some(PowerState::Off);
            bundle.boot.clean_up_ramdisk(task).await?;
            bundle.boot.clean_up_instance(task).await?;
            Ok(())
        })
    }

    fn cleaning_touches_disks(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drivers::Registry;
    use crate::model::{Severity, State};
    use serde_json::json;

    /// A fake-hardware node with the given boot and deploy interfaces, its
    /// bundle and a task (no image cache: nothing is staged).
    fn task(boot: &str, deploy: &str, power: &str) -> (Task, Bundle) {
        let r = Registry::standard();
        let mut interfaces = r.hardware_type("fake-hardware").unwrap().defaults();
        interfaces.boot = boot.into();
        interfaces.deploy = deploy.into();
        let mut node = Node::new(
            uuid::Uuid::new_v4(),
            "fake-hardware",
            interfaces,
            State::Deploying,
            String::new(),
        );
        node.driver_info
            .insert("fake_power_state".into(), json!(power));
        node.instance_info
            .insert("kernel".into(), json!("http://192.0.2.1/k"));
        node.instance_info
            .insert("ramdisk".into(), json!("http://192.0.2.1/r"));
        let bundle = r.bundle(&node).unwrap();
        let task = Task::new(
            node,
            Vec::new(),
            reqwest::Client::new(),
            crate::drivers::Settings::default(),
        );
        (task, bundle)
    }

    fn events(task: &Task) -> Vec<String> {
        task.take_records()
            .into_iter()
            .map(|h| {
                assert_eq!(h.severity, Severity::Info, "{}", h.event);
                h.event
            })
            .collect()
    }

    #[tokio::test]
    async fn the_ramdisk_deploy_boots_and_tears_down_through_the_boot_interface() {
        let (mut t, b) = task("ipxe", "ramdisk", "power off");
        let outcome = b.deploy.deploy(&mut t, &b).await.unwrap();
        assert_eq!(outcome, DeployOutcome::Wait);
        assert_eq!(t.node.boot_decision(), Some(BootDecision::Network));
        assert_eq!(t.node.power_state, Some(PowerState::On));
        assert_eq!(
            events(&t),
            [
                "fake management call: set_boot_device pxe persistent=true",
                "fake power call: get_power_state -> power off",
                "fake power call: set_power_state power on",
                "boot device pxe (persistent), powered on: the node network-boots its instance",
            ]
        );
        b.deploy.tear_down(&mut t, &b).await.unwrap();
        assert_eq!(t.node.boot_decision(), None);
        assert_eq!(t.node.power_state, Some(PowerState::Off));
        assert_eq!(events(&t), ["fake power call: set_power_state power off"]);
    }

    #[tokio::test]
    async fn prepare_ramdisk_needs_the_deploy_images_and_reboots_a_running_node() {
        let (mut t, b) = task("ipxe", "ramdisk", "power on");
        let err = b.boot.prepare_ramdisk(&mut t, &b).await.unwrap_err();
        assert!(
            matches!(&err, Error::MissingParameter(m) if m.contains("driver_info/deploy_kernel")),
            "{err}"
        );
        assert!(events(&t).is_empty(), "nothing sent before the images");
        for key in ["deploy_kernel", "deploy_ramdisk"] {
            t.node
                .driver_info
                .insert(key.into(), json!("http://192.0.2.1/d"));
        }
        let how = b.boot.prepare_ramdisk(&mut t, &b).await.unwrap();
        assert_eq!(how, "boot device pxe, rebooted");
        assert_eq!(
            events(&t),
            [
                "fake management call: set_boot_device pxe persistent=true",
                "fake power call: get_power_state -> power on",
                "fake power call: set_power_state rebooting",
            ]
        );
    }

    /// Fake boot sends nothing to the machine, whichever deploy it serves.
    #[tokio::test]
    async fn fake_boot_sends_nothing() {
        let (mut t, b) = task("fake", "ramdisk", "power off");
        let how = b.boot.prepare_ramdisk(&mut t, &b).await.unwrap();
        assert!(how.starts_with("fake boot"), "{how}");
        let how = b.boot.boot_instance(&mut t, &b).await.unwrap();
        assert!(how.starts_with("fake boot"), "{how}");
        b.boot.clean_up_ramdisk(&mut t).await.unwrap();
        t.node.set_boot_decision(Some(BootDecision::Local));
        b.boot.clean_up_instance(&mut t).await.unwrap();
        assert_eq!(t.node.boot_decision(), None);
        assert!(events(&t).is_empty());
        assert_eq!(t.node.power_state, None);
    }
}
