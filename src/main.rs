//! rackboot: a rack bootstrap appliance in one binary.
//!
//! `rackboot serve` runs the appliance; `rackboot node …`, `rackboot port …`,
//! `rackboot enroll FILE` and the other verbs are a client for its
//! Ironic-compatible API.

mod api;
mod app;
mod cli;
mod conductor;
mod config;
mod drivers;
mod images;
mod inspection;
mod metrics;
mod model;
mod net;
mod pxe;
mod redact;
mod store;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "rackboot",
    version,
    about = "Rack bootstrap appliance: Ironic-compatible node adoption and provisioning"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process; the size difference does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the appliance.
    Serve {
        /// TOML configuration file (default: embedded defaults).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Manage nodes (like `baremetal node …`).
    Node(cli::NodeArgs),
    /// Manage ports (like `baremetal port …`).
    Port(cli::PortArgs),
    /// Manage allocations (like `baremetal allocation …`).
    Allocation(cli::AllocationArgs),
    /// Manage chassis (like `baremetal chassis …`).
    Chassis(cli::ChassisArgs),
    /// Create or update nodes and ports from a Bifrost inventory (JSON or YAML).
    Enroll(cli::EnrollArgs),
    /// Talk to one BMC directly (IPMI, or Redfish with --redfish): status, on, off, soft-off, reboot, bootdev, vmedia.
    Bmc(cli::bmc::BmcArgs),
    /// Build a BIOS + UEFI bootable ISO of a kernel and ramdisk (a deploy_iso for virtual media).
    Iso(cli::IsoArgs),
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match args.command {
        Command::Serve { config } => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
                )
                .with_writer(std::io::stderr)
                // No colour codes in files and the journal.
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .init();
            let config = match config::Config::load(config.as_deref()) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("rackboot: {e}");
                    return std::process::ExitCode::from(2);
                }
            };
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("rackboot: cannot start the runtime: {e}");
                    return std::process::ExitCode::FAILURE;
                }
            };
            match rt.block_on(app::serve(config)) {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("rackboot: {e:#}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
        Command::Node(a) => cli::run(cli::Cmd::Node(a)),
        Command::Port(a) => cli::run(cli::Cmd::Port(a)),
        Command::Allocation(a) => cli::run(cli::Cmd::Allocation(a)),
        Command::Chassis(a) => cli::run(cli::Cmd::Chassis(a)),
        Command::Enroll(a) => cli::run(cli::Cmd::Enroll(a)),
        Command::Bmc(a) => cli::bmc::run(a),
        Command::Iso(a) => cli::iso::run(a),
    }
}
