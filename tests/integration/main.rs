//! Integration tests: one binary, a real appliance per test, real peers.

mod bmc;
mod common;
mod netns;

mod bad_input;
mod boot_http;
mod cli_adoption;
mod dhcp;
mod direct;
mod e2e;
mod enroll;
mod inspection;
mod ipmi;
mod native_cli;
mod redfish;
mod resources;
mod restart;
mod shared_store;
mod tftp;
mod vmedia;
