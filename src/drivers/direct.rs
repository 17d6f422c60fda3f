//! Ironic's `direct` deploy interface, machine side: the instance is a
//! whole-disk image (`instance_info/image_source`, raw or qcow2) that
//! ironic-python-agent writes to the node's disk. `deploy` stages and
//! checks the image, then boots the node into the agent ramdisk and waits
//! in `wait call-back`; the conductor drives the agent from its heartbeats
//! (`conductor/agent_deploy.rs`) and the node ends booting from its disk.

use serde_json::Value;

use super::pxe::{check_image_ref, stage, stage_deploy_images};
use super::*;
use crate::images;
use crate::model::internal;

/// `driver_internal_info` keys of a direct deploy in progress.
pub const IMAGE_SHA256: &str = "deploy_image_sha256";
pub const IMAGE_SIZE: &str = "deploy_image_size";
/// The bytes the image fills on the disk: its size for raw, the virtual
/// size in its header for qcow2.
pub const IMAGE_DISK_BYTES: &str = "deploy_image_disk_bytes";

/// The virtual size of a qcow2 image (header: magic `QFI\xfb`, then the
/// size as a big-endian u64 at byte 24); `None` when it is not qcow2.
pub fn qcow2_virtual_size(head: &[u8]) -> Option<u64> {
    if head.len() < 32 || &head[..4] != b"QFI\xfb" {
        return None;
    }
    Some(u64::from_be_bytes(head[24..32].try_into().ok()?))
}

/// The bytes `path` fills once written: the qcow2 virtual size, or its size.
async fn disk_bytes(path: &std::path::Path, size: u64) -> u64 {
    use tokio::io::AsyncReadExt;
    let mut head = [0u8; 32];
    let read = async {
        let mut f = tokio::fs::File::open(path).await?;
        f.read_exact(&mut head).await
    };
    match read.await {
        Ok(_) => qcow2_virtual_size(&head).unwrap_or(size),
        Err(_) => size,
    }
}

/// The disk formats the agent writes.
pub const DISK_FORMATS: &[&str] = &["raw", "qcow2"];

pub struct DirectDeploy;

impl Deploy for DirectDeploy {
    fn validate(&self, node: &Node) -> Result<()> {
        let source = node
            .instance_info
            .get("image_source")
            .filter(|v| !v.is_null())
            .ok_or_else(|| {
                Error::MissingParameter(
                    "the direct deploy needs instance_info/image_source, the whole-disk image to write (http(s):// or file://)".into(),
                )
            })?;
        check_image_ref("instance_info/image_source", source)?;
        images::cache::Expect::from_instance_info(&node.instance_info)
            .map_err(Error::InvalidParameter)?
            .ok_or_else(|| {
                Error::MissingParameter(
                    "the direct deploy needs the image's checksum: instance_info/image_checksum, or image_os_hash_algo and image_os_hash_value".into(),
                )
            })?;
        if let Some(f) = node.instance_info.get("image_disk_format") {
            if !f.as_str().is_some_and(|f| DISK_FORMATS.contains(&f)) {
                return Err(Error::InvalidParameter(format!(
                    "instance_info/image_disk_format {f} is not one of {}",
                    DISK_FORMATS.join(", ")
                )));
            }
        }
        for key in ["deploy_kernel", "deploy_ramdisk"] {
            match node.driver_info.get(key) {
                Some(v) => check_image_ref(&format!("driver_info/{key}"), v)?,
                None => {
                    return Err(Error::MissingParameter(format!(
                        "driver_info/{key} is missing; the direct deploy boots the agent ramdisk"
                    )))
                }
            }
        }
        Ok(())
    }

    fn prepare<'a>(&'a self, task: &'a mut Task) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move { stage_deploy_images(task, false).await })
    }

    fn take_over<'a>(&'a self, task: &'a mut Task) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            // An adopted direct deployment boots from its own disk.
            task.node
                .set_boot_decision(Some(crate::model::BootDecision::Local));
            Ok(())
        })
    }

    /// Stages the image (checksum checked before the machine is touched),
    /// then boots the agent ramdisk; the agent's heartbeat goes on.
    fn deploy<'a>(
        &'a self,
        task: &'a mut Task,
        bundle: &'a Bundle,
    ) -> BoxFuture<'a, Result<DeployOutcome>> {
        Box::pin(async move {
            let expect = images::cache::Expect::from_instance_info(&task.node.instance_info)
                .map_err(Error::InvalidParameter)?;
            let source = task
                .node
                .instance_info
                .get("image_source")
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| Error::MissingParameter("instance_info/image_source".into()))?;
            if let Some(staged) =
                stage(task, "instance_info/image_source", &source, expect.as_ref()).await?
            {
                task.node
                    .driver_internal_info
                    .insert(IMAGE_SHA256.into(), Value::String(staged.sha256));
                task.node
                    .driver_internal_info
                    .insert(IMAGE_SIZE.into(), Value::from(staged.size));
                let bytes = disk_bytes(&staged.path, staged.size).await;
                task.node
                    .driver_internal_info
                    .insert(IMAGE_DISK_BYTES.into(), Value::from(bytes));
            }
            task.node
                .driver_internal_info
                .remove(internal::BOOT_DECISION);
            let how = bundle.boot.prepare_ramdisk(task, bundle).await?;
            task.record(
                Severity::Info,
                "provisioning",
                format!("direct deploy: {how}; the agent ramdisk boots to write the image"),
            );
            Ok(DeployOutcome::Wait)
        })
    }

    /// As the ramdisk deploy's (power off, the boot interface forgets the
    /// ramdisk and the instance), and the staged image's facts.
    fn tear_down<'a>(
        &'a self,
        task: &'a mut Task,
        bundle: &'a Bundle,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            super::pxe::RamdiskDeploy.tear_down(task, bundle).await?;
            for k in [IMAGE_SHA256, IMAGE_SIZE, IMAGE_DISK_BYTES] {
                task.node.driver_internal_info.remove(k);
            }
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
    use crate::model::State;
    use serde_json::json;

    #[test]
    fn what_a_direct_deploy_needs() {
        let r = Registry::standard();
        let mut node = Node::new(
            uuid::Uuid::new_v4(),
            "ipmi",
            r.hardware_type("ipmi").unwrap().defaults(),
            State::Available,
            String::new(),
        );
        let d = DirectDeploy;
        let err = d.validate(&node).unwrap_err().to_string();
        assert!(err.contains("instance_info/image_source"), "{err}");
        node.instance_info
            .insert("image_source".into(), json!("http://192.0.2.1/disk.raw"));
        let err = d.validate(&node).unwrap_err().to_string();
        assert!(err.contains("checksum"), "{err}");
        node.instance_info
            .insert("image_checksum".into(), json!("0".repeat(64)));
        let err = d.validate(&node).unwrap_err().to_string();
        assert!(err.contains("driver_info/deploy_kernel"), "{err}");
        for k in ["deploy_kernel", "deploy_ramdisk"] {
            node.driver_info
                .insert(k.into(), json!("http://192.0.2.1/x"));
        }
        assert_eq!(d.validate(&node), Ok(()));
        node.instance_info
            .insert("image_disk_format".into(), json!("vmdk"));
        assert!(d.validate(&node).is_err());
    }

    /// On headers qemu-img (the peer) writes.
    #[test]
    fn qcow2_headers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.qcow2");
        let st = std::process::Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2"])
            .arg(&path)
            .arg("8G")
            .status()
            .expect("qemu-img is needed for this test: apt-get install qemu-utils (scripts/install-deps.sh does)");
        assert!(st.success());
        let head = std::fs::read(&path).unwrap();
        assert_eq!(qcow2_virtual_size(&head), Some(8 << 30));
        assert_eq!(qcow2_virtual_size(&head[..31]), None);
        assert_eq!(qcow2_virtual_size(&[0u8; 64]), None);
    }
}
