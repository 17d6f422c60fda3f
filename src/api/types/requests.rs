//! The request bodies the API accepts (`NodeCreate`, `PortCreate`, the
//! provision, power, boot-device and maintenance requests), each refusing
//! unknown fields as Ironic does.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::model::Interfaces;

/// `POST /v1/nodes` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeCreate {
    pub uuid: Option<String>,
    pub name: Option<String>,
    pub driver: Option<String>,
    #[serde(default)]
    pub driver_info: Option<Map<String, Value>>,
    #[serde(default)]
    pub instance_info: Option<Map<String, Value>>,
    #[serde(default)]
    pub properties: Option<Map<String, Value>>,
    #[serde(default)]
    pub extra: Option<Map<String, Value>>,
    pub instance_uuid: Option<String>,
    pub chassis_uuid: Option<String>,
    pub resource_class: Option<String>,
    pub conductor_group: Option<String>,
    pub description: Option<String>,
    pub owner: Option<String>,
    pub lessee: Option<String>,
    #[serde(default)]
    pub network_data: Option<Map<String, Value>>,
    pub automated_clean: Option<Value>,
    pub retired: Option<Value>,
    pub retired_reason: Option<String>,
    pub shard: Option<String>,
    pub parent_node: Option<String>,
    pub disable_power_off: Option<Value>,
    pub bios_interface: Option<String>,
    pub boot_interface: Option<String>,
    pub console_interface: Option<String>,
    pub deploy_interface: Option<String>,
    pub firmware_interface: Option<String>,
    pub inspect_interface: Option<String>,
    pub management_interface: Option<String>,
    pub network_interface: Option<String>,
    pub power_interface: Option<String>,
    pub raid_interface: Option<String>,
    pub rescue_interface: Option<String>,
    pub storage_interface: Option<String>,
    pub vendor_interface: Option<String>,
}

impl NodeCreate {
    /// The `*_interface` fields that were given, by kind.
    pub fn interfaces(&self) -> Vec<(&'static str, &str)> {
        let all: [(&'static str, &Option<String>); 13] = [
            ("bios", &self.bios_interface),
            ("boot", &self.boot_interface),
            ("console", &self.console_interface),
            ("deploy", &self.deploy_interface),
            ("firmware", &self.firmware_interface),
            ("inspect", &self.inspect_interface),
            ("management", &self.management_interface),
            ("network", &self.network_interface),
            ("power", &self.power_interface),
            ("raid", &self.raid_interface),
            ("rescue", &self.rescue_interface),
            ("storage", &self.storage_interface),
            ("vendor", &self.vendor_interface),
        ];
        debug_assert_eq!(all.len(), Interfaces::KINDS.len());
        all.into_iter()
            .filter_map(|(k, v)| v.as_deref().map(|v| (k, v)))
            .collect()
    }
}

/// `POST /v1/ports` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortCreate {
    pub address: Option<String>,
    pub node_uuid: Option<String>,
    pub node_ident: Option<String>,
    pub uuid: Option<String>,
    pub pxe_enabled: Option<Value>,
    #[serde(default)]
    pub local_link_connection: Option<Map<String, Value>>,
    pub physical_network: Option<String>,
    #[serde(default)]
    pub extra: Option<Map<String, Value>>,
    pub portgroup_uuid: Option<String>,
    pub is_smartnic: Option<Value>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub vendor: Option<String>,
    pub category: Option<String>,
    #[serde(default)]
    pub available_for_dynamic_portgroup: Option<Value>,
}

/// `PUT …/states/provision` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvisionRequest {
    pub target: String,
    pub configdrive: Option<Value>,
    pub clean_steps: Option<Value>,
    pub deploy_steps: Option<Value>,
    pub service_steps: Option<Value>,
    pub rescue_password: Option<String>,
    pub disable_ramdisk: Option<Value>,
    pub runbook: Option<String>,
    /// rackboot's own: consent to a destructive action on an adopted node.
    pub confirm_destructive: Option<Value>,
}

/// `PUT …/states/power` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowerRequest {
    pub target: String,
    pub timeout: Option<Value>,
}

/// `PUT …/management/boot_device` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootDeviceRequest {
    pub boot_device: String,
    pub persistent: Option<Value>,
}

/// `PUT …/maintenance` body.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceRequest {
    pub reason: Option<String>,
}
