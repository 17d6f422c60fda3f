//! Network-boot interfaces: `ipxe`/`pxe` boot and the `ramdisk` deploy.
//!
//! Boot validation checks what a later network boot of the node needs — a
//! port with a MAC, the deploy kernel and ramdisk, a reachable instance image
//! — and touches no hardware. Takeover (adoption) records the node's boot
//! decision and nothing else: no boot device is set on a running machine.

use serde_json::Value;

use super::{Boot, BoxFuture, Deploy, DeployOutcome, Error, Management, Power, Result, Task};
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
            let decision = if task.node.interfaces.deploy == "ramdisk" {
                BootDecision::Network
            } else {
                BootDecision::Local
            };
            task.node.set_boot_decision(Some(decision));
            task.record(
                Severity::Info,
                "provisioning",
                format!(
                    "boot decision recorded: {} (boot device left unchanged)",
                    decision.as_str()
                ),
            );
            // Stage what a later network boot needs, so it is served from
            // here whatever happens to the sources (takeover).
            stage_deploy_images(task, false).await?;
            Ok(())
        })
    }
}

/// Stages `driver_info/deploy_kernel` and `deploy_ramdisk`; `required`:
/// a missing one is an error (cleaning boots them), else it is skipped.
pub async fn stage_deploy_images(task: &Task, required: bool) -> Result<()> {
    for key in ["deploy_kernel", "deploy_ramdisk"] {
        let reference = task
            .node
            .driver_info
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_string);
        match reference {
            Some(r) => stage(task, &format!("driver_info/{key}"), &r, None).await?,
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
pub async fn boot_from_network(
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
) -> Result<()> {
    let Some(cache) = task.settings.cache.clone() else {
        return Ok(());
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
    Ok(())
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

    /// Boot device PXE (persistent), the boot decision "network", then power
    /// on (or reboot a running machine); the node then waits in
    /// `wait call-back` for its ramdisk's heartbeat.
    fn deploy<'a>(
        &'a self,
        task: &'a mut Task,
        power: &'a dyn Power,
        mgmt: &'a dyn Management,
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
            let how = boot_from_network(task, power, mgmt).await?;
            task.record(
                Severity::Info,
                "provisioning",
                format!("boot device pxe (persistent), {how}: the node network-boots its instance"),
            );
            Ok(DeployOutcome::Wait)
        })
    }

    fn tear_down<'a>(
        &'a self,
        task: &'a mut Task,
        power: &'a dyn Power,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            power.set_power_state(task, PowerState::Off).await?;
            task.node.power_state = Some(PowerState::Off);
            task.node.set_boot_decision(None);
            Ok(())
        })
    }

    fn cleaning_touches_disks(&self) -> bool {
        true
    }
}
