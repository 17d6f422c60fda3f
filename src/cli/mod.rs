//! The native client: `rackboot node|port|allocation|chassis|enroll …`, for hosts
//! without Python. Same verbs and flags as `baremetal` where they overlap;
//! tables by default, `--json` for scripts. Credentials come from the
//! environment (`OS_AUTH_TYPE=http_basic`, `OS_USERNAME`, `OS_PASSWORD`),
//! never from the command line.

pub mod bmc;
pub mod iso;

mod args;
mod client;
mod enroll;
mod inventory;
mod node;
mod output;
mod port;
mod records;

pub use args::{AllocationArgs, ChassisArgs, EnrollArgs, NodeArgs, PortArgs};
pub use iso::IsoArgs;

use std::process::ExitCode;

use client::{Client, Failure};

// Parsed once per process; the size difference does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Cmd {
    Node(NodeArgs),
    Port(PortArgs),
    Allocation(AllocationArgs),
    Chassis(ChassisArgs),
    Enroll(EnrollArgs),
}

/// Runs a client command; errors go to stderr with exit code 1.
pub fn run(cmd: Cmd) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rackboot: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let res = rt.block_on(async {
        match cmd {
            Cmd::Node(a) => {
                let c = Client::new(&a.conn)?;
                node::node(&c, a.cmd).await
            }
            Cmd::Port(a) => {
                let c = Client::new(&a.conn)?;
                port::port(&c, a.cmd).await
            }
            Cmd::Allocation(a) => {
                let c = Client::new(&a.conn)?;
                records::allocation(&c, a.cmd).await
            }
            Cmd::Chassis(a) => {
                let c = Client::new(&a.conn)?;
                records::chassis(&c, a.cmd).await
            }
            Cmd::Enroll(a) => {
                let c = Client::new(&a.conn)?;
                enroll::enroll(&c, a).await
            }
        }
    });
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(msg)) => {
            eprintln!("{msg}");
            ExitCode::FAILURE
        }
    }
}
