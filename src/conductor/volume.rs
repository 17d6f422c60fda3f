//! Volume connector and target changes: under the node's lock, with
//! Ironic's power-state rules (its `update_volume_*` and `destroy_volume_*`),
//! since a storage interface acts on them while the node runs.

use super::*;
use crate::store::Record;

/// A change to a volume connector or target, with the record as it was
/// read when the change was made (if it changed meanwhile, the change is
/// refused rather than lost).
pub enum VolumeChange<T> {
    Update { old: T, new: T },
    Delete(T),
}

impl Conductor {
    /// Writes a volume record change under `node`'s lock. An update needs
    /// the node powered off; a deletion needs it powered off or in
    /// `manageable`, `enroll` or `adopt failed`. `what` names the record
    /// in Ironic's refusal ("volume connector").
    pub async fn change_volume_record<T: Record + Clone>(
        &self,
        node: Uuid,
        what: &str,
        change: VolumeChange<T>,
    ) -> Result<()> {
        let (lock, n) = self.lock(node, &node.to_string()).await?;
        let off = n.power_state == Some(crate::model::PowerState::Off);
        let (allowed, action) = match &change {
            VolumeChange::Update { .. } => (off, "update"),
            VolumeChange::Delete(_) => (
                off || matches!(
                    n.provision_state,
                    State::Manageable | State::Enroll | State::AdoptFailed
                ),
                "deletion",
            ),
        };
        if !allowed {
            let power = n
                .power_state
                .map_or_else(|| "None".to_string(), |p| p.to_string());
            return Err(Error::Invalid(format!(
                "The requested action \"{what} {action}\" can not be performed on node \"{}\" while it is in state \"{power}\".",
                n.uuid
            )));
        }
        let what = what.to_string();
        self.store()
            .call(move |s| -> Result<()> {
                let r = (|| {
                    let (read, write) = match &change {
                        VolumeChange::Update { old, new } => (old, Some(new)),
                        VolumeChange::Delete(old) => (old, None),
                    };
                    let now: T = s.get_record(&read.uuid().to_string())?;
                    if serde_json::to_value(&now).ok() != serde_json::to_value(read).ok() {
                        return Err(Error::InvalidState(format!(
                            "The {what} {} changed while this request waited for its node; retry",
                            read.uuid()
                        )));
                    }
                    match write {
                        Some(new) => s.save_record(new)?,
                        None => s.delete_record::<T>(read.uuid())?,
                    }
                    Ok(())
                })();
                lock.release_in(s);
                r
            })
            .await
    }
}
