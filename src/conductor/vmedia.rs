//! Virtual media (Ironic's `/v1/nodes/{ident}/vmedia`, 1.89+): an image
//! the BMC presents to the node as a CD, disk or floppy. The `fake`
//! management interface accepts it (and records it in the node's history);
//! real BMCs get it with Redfish (issue 14); the others refuse it.

use super::*;

impl Conductor {
    /// Refuses drivers whose management interface has no virtual media.
    fn vmedia_supported(node: &Node, call: &str) -> Result<()> {
        if node.interfaces.management == "fake" {
            Ok(())
        } else {
            Err(Error::Invalid(format!(
                "Driver {} does not support {call} (disabled or not implemented).",
                node.driver
            )))
        }
    }

    /// Attaches `url` as a `device` under the node's lock.
    pub async fn vmedia_attach(
        &self,
        ident: &str,
        device: &str,
        url: &str,
        user: Option<String>,
    ) -> Result<()> {
        let (lock, mut node) = self.lock_ident(ident).await?;
        Self::vmedia_supported(&node, "attach_virtual_media")?;
        node.last_error = None;
        let h = history(
            Severity::Info,
            "vmedia",
            format!(
                "virtual media {device} attached: {}",
                crate::redact::redact(url)
            ),
            &user,
        );
        self.save_locked(node, vec![h], lock).await?;
        Ok(())
    }

    /// Detaches the `devices` (all when empty) under the node's lock.
    pub async fn vmedia_detach(
        &self,
        ident: &str,
        devices: Vec<String>,
        user: Option<String>,
    ) -> Result<()> {
        let (lock, mut node) = self.lock_ident(ident).await?;
        Self::vmedia_supported(&node, "detach_virtual_media")?;
        node.last_error = None;
        let which = if devices.is_empty() {
            "all devices".to_string()
        } else {
            devices.join(", ")
        };
        let h = history(
            Severity::Info,
            "vmedia",
            format!("virtual media detached: {which}"),
            &user,
        );
        self.save_locked(node, vec![h], lock).await?;
        Ok(())
    }
}
