//! The command-line grammar of `rackboot node|port|allocation|chassis|enroll …`:
//! the clap argument structs and verb enums, and nothing that acts on them.

use clap::{Args, Subcommand};

#[derive(Args)]
pub(super) struct Conn {
    /// API endpoint (default http://127.0.0.1:6385).
    #[arg(long = "os-endpoint", env = "OS_ENDPOINT", global = true)]
    pub(super) endpoint: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub(super) json: bool,
}

#[derive(Args)]
pub struct NodeArgs {
    #[command(flatten)]
    pub(super) conn: Conn,
    #[command(subcommand)]
    pub(super) cmd: NodeCmd,
}

#[derive(Args)]
pub struct PortArgs {
    #[command(flatten)]
    pub(super) conn: Conn,
    #[command(subcommand)]
    pub(super) cmd: PortCmd,
}

#[derive(Args)]
pub struct AllocationArgs {
    #[command(flatten)]
    pub(super) conn: Conn,
    #[command(subcommand)]
    pub(super) cmd: AllocationCmd,
}

#[derive(Args)]
pub struct ChassisArgs {
    #[command(flatten)]
    pub(super) conn: Conn,
    #[command(subcommand)]
    pub(super) cmd: ChassisCmd,
}

#[derive(Args)]
pub struct EnrollArgs {
    #[command(flatten)]
    pub(super) conn: Conn,
    /// A Bifrost inventory: JSON or YAML (by extension, else by content).
    pub(super) file: std::path::PathBuf,
    /// API calls in flight at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub(super) parallel: u16,
    /// Also re-send the secret driver_info and instance_info values (passwords)
    /// of existing nodes: the API never shows them, so a change cannot be seen.
    #[arg(long = "update-secrets")]
    pub(super) update_secrets: bool,
}

#[derive(Args, Default)]
pub(super) struct Fields {
    /// driver_info key=value (repeatable; values parsed as JSON when they are JSON).
    #[arg(long = "driver-info", value_name = "KEY=VALUE")]
    pub(super) driver_info: Vec<String>,
    /// driver_info KEY=VALUE lines read from FILE ('#' comments allowed): keeps
    /// BMC passwords out of the process arguments.
    #[arg(long = "driver-info-file", value_name = "FILE")]
    pub(super) driver_info_file: Option<std::path::PathBuf>,
    /// instance_info key=value (repeatable).
    #[arg(long = "instance-info", value_name = "KEY=VALUE")]
    pub(super) instance_info: Vec<String>,
    /// properties key=value (repeatable).
    #[arg(long = "property", value_name = "KEY=VALUE")]
    pub(super) property: Vec<String>,
    /// extra key=value (repeatable).
    #[arg(long = "extra", value_name = "KEY=VALUE")]
    pub(super) extra: Vec<String>,
    #[arg(long = "boot-interface")]
    pub(super) boot_interface: Option<String>,
    #[arg(long = "deploy-interface")]
    pub(super) deploy_interface: Option<String>,
    #[arg(long = "power-interface")]
    pub(super) power_interface: Option<String>,
    #[arg(long = "management-interface")]
    pub(super) management_interface: Option<String>,
    #[arg(long = "network-interface")]
    pub(super) network_interface: Option<String>,
    #[arg(long = "resource-class")]
    pub(super) resource_class: Option<String>,
    #[arg(long)]
    pub(super) description: Option<String>,
}

#[derive(Subcommand)]
pub(super) enum NodeCmd {
    /// Enroll a node.
    Create {
        #[arg(long)]
        driver: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        uuid: Option<String>,
        #[command(flatten)]
        fields: Fields,
    },
    /// List nodes.
    List {
        #[arg(long = "provision-state")]
        provision_state: Option<String>,
        #[arg(long)]
        driver: Option<String>,
        /// Show every field.
        #[arg(long)]
        long: bool,
    },
    /// Show one node.
    Show { node: String },
    /// Set node fields.
    Set {
        node: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        driver: Option<String>,
        #[arg(long = "instance-uuid")]
        instance_uuid: Option<String>,
        #[arg(long = "reset-interfaces")]
        reset_interfaces: bool,
        #[command(flatten)]
        fields: Fields,
    },
    /// Remove node fields.
    Unset {
        node: String,
        #[arg(long = "driver-info", value_name = "KEY")]
        driver_info: Vec<String>,
        #[arg(long = "instance-info", value_name = "KEY")]
        instance_info: Vec<String>,
        #[arg(long = "property", value_name = "KEY")]
        property: Vec<String>,
        #[arg(long = "extra", value_name = "KEY")]
        extra: Vec<String>,
        #[arg(long = "instance-uuid")]
        instance_uuid: bool,
        #[arg(long)]
        name: bool,
    },
    /// enroll → manageable (validates power, records the first power state).
    Manage(Verb),
    /// manageable → active without touching the machine.
    Adopt(Verb),
    /// manageable → available.
    Provide(Verb),
    /// available → active.
    Deploy(Verb),
    /// active → available.
    Undeploy(Verb),
    /// Re-deploy an active node.
    Rebuild(Verb),
    /// Abort a waiting operation.
    Abort { node: String },
    /// Delete nodes (no cleaning, no power action).
    Delete { nodes: Vec<String> },
    /// Power control.
    Power {
        #[arg(value_parser = ["on", "off", "reboot"])]
        action: String,
        node: String,
        #[arg(long)]
        soft: bool,
    },
    /// Validate every interface of a node.
    Validate { node: String },
    /// The node's timeline: every state change, BMC call, and DHCP, TFTP
    /// and HTTP boot event, in order ("why didn't it boot?").
    #[command(alias = "timeline")]
    History { node: String },
    /// `node add trait NODE TRAIT...`.
    #[command(subcommand)]
    Add(AddCmd),
    /// `node remove trait NODE [TRAIT...] [--all]`.
    #[command(subcommand)]
    Remove(RemoveCmd),
    /// `node trait list NODE`.
    #[command(subcommand)]
    Trait(TraitCmd),
    /// `node vif list|attach|detach`.
    #[command(subcommand)]
    Vif(VifCmd),
}

#[derive(Subcommand)]
pub(super) enum AddCmd {
    /// Add traits to a node.
    Trait {
        node: String,
        #[arg(required = true)]
        traits: Vec<String>,
    },
}

#[derive(Subcommand)]
pub(super) enum RemoveCmd {
    /// Remove traits from a node (all of them with --all).
    Trait {
        node: String,
        traits: Vec<String>,
        #[arg(long, conflicts_with = "traits")]
        all: bool,
    },
}

#[derive(Subcommand)]
pub(super) enum TraitCmd {
    /// List a node's traits.
    List { node: String },
}

#[derive(Subcommand)]
pub(super) enum VifCmd {
    /// List the VIFs attached to a node.
    List { node: String },
    /// Attach a VIF to a free port (or port group) of a node.
    Attach {
        node: String,
        vif_id: String,
        /// Put it on this port.
        #[arg(long = "port-uuid")]
        port_uuid: Option<String>,
        /// More attach information, key=value (repeatable).
        #[arg(long = "vif-info", value_name = "KEY=VALUE")]
        vif_info: Vec<String>,
    },
    /// Detach a VIF from a node.
    Detach { node: String, vif_id: String },
}

#[derive(Subcommand)]
pub(super) enum AllocationCmd {
    /// Ask for a node of a resource class (with traits, from candidates).
    Create {
        #[arg(long = "resource-class")]
        resource_class: Option<String>,
        #[arg(long = "trait")]
        traits: Vec<String>,
        #[arg(long = "candidate-node")]
        candidate_nodes: Vec<String>,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        uuid: Option<String>,
        #[arg(long)]
        owner: Option<String>,
        #[arg(long = "extra", value_name = "KEY=VALUE")]
        extra: Vec<String>,
        /// Wait until it is active (optionally at most SECONDS).
        #[arg(long, num_args = 0..=1, default_missing_value = "0", value_name = "SECONDS")]
        wait: Option<u64>,
        /// Backfill: record an allocation for this deployed node.
        #[arg(long)]
        node: Option<String>,
    },
    /// List allocations.
    List {
        #[arg(long)]
        node: Option<String>,
        #[arg(long = "resource-class")]
        resource_class: Option<String>,
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        owner: Option<String>,
        #[arg(long)]
        long: bool,
    },
    /// Show one allocation.
    Show { allocation: String },
    /// Set an allocation's name or extra.
    Set {
        allocation: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long = "extra", value_name = "KEY=VALUE")]
        extra: Vec<String>,
    },
    /// Remove an allocation's name or extra keys.
    Unset {
        allocation: String,
        #[arg(long)]
        name: bool,
        #[arg(long = "extra", value_name = "KEY")]
        extra: Vec<String>,
    },
    /// Delete allocations (freeing their nodes).
    Delete { allocations: Vec<String> },
}

#[derive(Subcommand)]
pub(super) enum ChassisCmd {
    /// Create a chassis.
    Create {
        #[arg(long)]
        description: Option<String>,
        #[arg(long = "extra", value_name = "KEY=VALUE")]
        extra: Vec<String>,
        #[arg(long)]
        uuid: Option<String>,
    },
    /// List chassis.
    List {
        #[arg(long)]
        long: bool,
    },
    /// Show one chassis.
    Show { chassis: String },
    /// Set a chassis' description or extra.
    Set {
        chassis: String,
        #[arg(long)]
        description: Option<String>,
        #[arg(long = "extra", value_name = "KEY=VALUE")]
        extra: Vec<String>,
    },
    /// Remove a chassis' description or extra keys.
    Unset {
        chassis: String,
        #[arg(long)]
        description: bool,
        #[arg(long = "extra", value_name = "KEY")]
        extra: Vec<String>,
    },
    /// Delete chassis (they must hold no nodes).
    Delete { chassis: Vec<String> },
}

#[derive(Args)]
pub(super) struct Verb {
    pub(super) node: String,
    /// Wait for the end state (optionally at most SECONDS).
    #[arg(long, num_args = 0..=1, default_missing_value = "0", value_name = "SECONDS")]
    pub(super) wait: Option<u64>,
    /// Consent to a destructive action on an adopted node.
    #[arg(long = "confirm-destructive")]
    pub(super) confirm_destructive: bool,
}

#[derive(Subcommand)]
pub(super) enum PortCmd {
    /// Create a port.
    Create {
        address: String,
        #[arg(long)]
        node: String,
        #[arg(long = "pxe-enabled")]
        pxe_enabled: Option<bool>,
    },
    /// List ports.
    List {
        #[arg(long)]
        node: Option<String>,
        #[arg(long)]
        address: Option<String>,
        #[arg(long)]
        long: bool,
    },
    /// Show a port (by UUID or MAC).
    Show { port: String },
    /// Delete ports.
    Delete { ports: Vec<String> },
}
