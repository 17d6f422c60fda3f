//! The native client (placeholder until filled in).
use clap::Args;

#[derive(Args)]
pub struct NodeArgs {}
#[derive(Args)]
pub struct PortArgs {}
pub enum Cmd {
    Node(NodeArgs),
    Port(PortArgs),
}
pub fn run(_c: Cmd) -> std::process::ExitCode {
    std::process::ExitCode::FAILURE
}
