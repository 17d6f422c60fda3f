//! Virtual media (Ironic's `/v1/nodes/{ident}/vmedia`, 1.89+): an image
//! the BMC presents to the node as a CD, disk or floppy, through the
//! management interface: `redfish` inserts it with the BMC's VirtualMedia
//! service, `fake` records it; the others refuse it.

use super::*;

impl Conductor {
    /// Refuses drivers whose management interface has no virtual media.
    fn vmedia_bundle(&self, node: &Node, call: &str) -> Result<crate::drivers::Bundle> {
        let bundle = self.bundle(node)?;
        if bundle.management.has_virtual_media() {
            bundle
                .management
                .validate(node)
                .map_err(|e| Error::Invalid(e.to_string()))?;
            Ok(bundle)
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
        let (lock, node) = self.lock_ident(ident).await?;
        let bundle = self.vmedia_bundle(&node, "attach_virtual_media")?;
        let mut task = self.task(node).await?;
        let res = bundle
            .management
            .attach_virtual_media(&mut task, device, url)
            .await;
        self.vmedia_done(task, lock, res, &user).await
    }

    /// Detaches the `devices` (all when empty) under the node's lock.
    pub async fn vmedia_detach(
        &self,
        ident: &str,
        devices: Vec<String>,
        user: Option<String>,
    ) -> Result<()> {
        let (lock, node) = self.lock_ident(ident).await?;
        let bundle = self.vmedia_bundle(&node, "detach_virtual_media")?;
        let mut task = self.task(node).await?;
        let res = bundle
            .management
            .detach_virtual_media(&mut task, &devices)
            .await;
        self.vmedia_done(task, lock, res, &user).await
    }

    /// Saves what a virtual media call did (or why it failed) in the history.
    async fn vmedia_done(
        &self,
        task: crate::drivers::Task,
        lock: super::locking::LockGuard,
        res: std::result::Result<String, crate::drivers::Error>,
        user: &Option<String>,
    ) -> Result<()> {
        let mut records = task.take_records();
        let mut node = task.node;
        match &res {
            Ok(done) => {
                node.last_error = None;
                records.push(history(Severity::Info, "vmedia", done.clone(), user));
            }
            Err(e) => records.push(history(
                Severity::Error,
                "vmedia",
                format!("virtual media failed: {e}"),
                user,
            )),
        }
        self.save_locked(node, records, lock).await?;
        res.map(drop).map_err(|e| Error::Invalid(e.to_string()))
    }
}
