//! Volume connector and target changes: under the node's lock, with
//! Ironic's power-state rules (its `update_volume_*` and `destroy_volume_*`),
//! since a storage interface acts on them while the node runs.

use super::*;
use crate::store::Record;

/// A change to a volume connector or target.
pub enum VolumeChange<T> {
    Update(T),
    Delete(Uuid),
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
            VolumeChange::Update(_) => (off, "update"),
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
        Ok(self
            .store()
            .call(move |s| -> store::Result<()> {
                let r = match &change {
                    VolumeChange::Update(rec) => s.save_record(rec),
                    VolumeChange::Delete(uuid) => s.delete_record::<T>(*uuid),
                };
                lock.release_in(s);
                r
            })
            .await?)
    }
}
