//! Pure types of the inventory: nodes, ports, MAC addresses, power states and
//! Ironic's provision state machine. No I/O here.

pub mod allocation;
pub mod chassis;
pub mod input;
pub mod inspection_rule;
pub mod inventory;
pub mod lease;
pub mod mac;
pub mod node;
pub mod port;
pub mod portgroup;
pub mod power;
pub mod states;
pub mod template;
pub mod traits;
pub mod volume;

pub use allocation::{Allocation, AllocationState};
pub use chassis::Chassis;
pub use inspection_rule::InspectionRule;
pub use inventory::NodeInventory;
pub use lease::{Lease, LeaseState};
pub use mac::Mac;
pub use node::{internal, BootDecision, HistoryEntry, Interfaces, Node, Severity};
pub use port::Port;
pub use portgroup::Portgroup;
pub use power::PowerState;
pub use states::State;
pub use template::{DeployTemplate, Runbook};
pub use volume::{VolumeConnector, VolumeTarget};

/// The current time in Ironic's timestamp format
/// (`2016-08-18T22:28:48.643434+00:00`).
pub fn now() -> String {
    format_timestamp(jiff::Timestamp::now())
}

/// Formats a timestamp as Ironic does: UTC, microseconds, explicit offset.
pub fn format_timestamp(ts: jiff::Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%S.%6f+00:00").to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamp_format_is_ironics() {
        let ts: jiff::Timestamp = "2016-08-18T22:28:48.643434Z".parse().unwrap();
        assert_eq!(
            super::format_timestamp(ts),
            "2016-08-18T22:28:48.643434+00:00"
        );
    }
}
