//! `rackboot bmc …`: talk to one BMC directly, with the native RMCP+ client
//! or (`--redfish`) the Redfish client, for operators checking a BMC before
//! enrolling it. The password comes from a file (or `IPMI_PASSWORD` /
//! `REDFISH_PASSWORD`), never from the command line.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::drivers::ipmi::{self, IpmiInfo, PrivLevel};
use crate::model::PowerState;

/// `rackboot bmc [OPTIONS] VERB [OPTIONS]`: every option is global, so it
/// may come before the verb or after it (`rackboot bmc status --address …`).
#[derive(Args)]
#[cfg_attr(test, derive(Debug, PartialEq))]
pub struct BmcArgs {
    /// BMC address (IP or host name); with --redfish, its Redfish URL
    /// (https is assumed without a scheme). Required.
    // Checked in `run` (see `address`): clap refuses a global argument that
    // is also required.
    #[arg(long, global = true)]
    address: Option<String>,
    /// BMC UDP port (IPMI).
    #[arg(long, default_value_t = 623, global = true)]
    port: u16,
    /// Talk Redfish instead of IPMI.
    #[arg(long, global = true)]
    redfish: bool,
    /// Redfish: the ComputerSystem (path or Id), when the BMC has several.
    #[arg(long = "system-id", global = true)]
    system_id: Option<String>,
    /// Redfish: authentication (a session, basic, or a session falling back to basic).
    #[arg(long = "auth-type", default_value = "auto", value_parser = ["auto", "session", "basic"], global = true)]
    auth_type: String,
    /// Redfish: do not check the BMC's TLS certificate.
    #[arg(long, global = true, conflicts_with = "ca_file")]
    insecure: bool,
    /// Redfish: check the BMC's TLS certificate against this CA file or directory.
    #[arg(long = "ca-file", global = true)]
    ca_file: Option<std::path::PathBuf>,
    /// BMC user name.
    #[arg(long, global = true)]
    username: Option<String>,
    /// File holding the password (first line); default: $IPMI_PASSWORD
    /// ($REDFISH_PASSWORD with --redfish).
    #[arg(long = "password-file", global = true)]
    password_file: Option<std::path::PathBuf>,
    /// Cipher suite 3 or 17 (default: 17, falling back to 3).
    #[arg(long = "cipher-suite", value_parser = ["3", "17"], global = true)]
    cipher_suite: Option<String>,
    /// Privilege level.
    #[arg(long = "priv-level", default_value = "ADMINISTRATOR", value_parser = ["CALLBACK", "USER", "OPERATOR", "ADMINISTRATOR"], global = true)]
    priv_level: String,
    /// Run the command this many times in one process, on one kept session,
    /// and print the per-call time to stderr.
    #[arg(long, default_value_t = 1, global = true)]
    repeat: u32,
    /// How long a power change may take, in seconds.
    #[arg(long = "timeout", default_value_t = 60, global = true)]
    timeout: u64,
    #[command(subcommand)]
    cmd: BmcCmd,
}

#[derive(Subcommand)]
#[cfg_attr(test, derive(Debug, PartialEq))]
enum BmcCmd {
    /// Print the chassis power state.
    Status,
    /// Power on and wait until the BMC reports on.
    On,
    /// Power off (hard) and wait until the BMC reports off.
    Off,
    /// Soft power off (ACPI) and wait.
    SoftOff,
    /// Off (unless already off), then on.
    Reboot,
    /// Set the next boot device.
    Bootdev {
        #[arg(value_parser = ["pxe", "disk", "cdrom", "bios", "safe"])]
        device: String,
        /// Keep it for all future boots.
        #[arg(long)]
        persistent: bool,
        /// Legacy BIOS boot instead of UEFI.
        #[arg(long)]
        legacy: bool,
    },
    /// Send a diagnostic interrupt (NMI).
    Nmi,
    /// Redfish virtual media: insert an image or eject.
    Vmedia {
        #[command(subcommand)]
        action: VmediaCmd,
    },
}

#[derive(Subcommand)]
#[cfg_attr(test, derive(Debug, PartialEq))]
enum VmediaCmd {
    /// Insert the image at URL (ejecting what the device held).
    Insert {
        url: String,
        /// cdrom (an ISO) or disk (a USB stick or floppy image).
        #[arg(long, default_value = "cdrom", value_parser = ["cdrom", "disk"])]
        device: String,
    },
    /// Eject what is inserted (in every device unless --device is given).
    Eject {
        #[arg(long, value_parser = ["cdrom", "disk"])]
        device: Option<String>,
    },
}

fn password(args: &BmcArgs) -> Result<Option<String>, String> {
    match &args.password_file {
        Some(p) => std::fs::read_to_string(p)
            .map(|s| Some(s.lines().next().unwrap_or_default().to_string()))
            .map_err(|e| format!("cannot read --password-file {}: {e}", p.display())),
        None if args.redfish => Ok(std::env::var("REDFISH_PASSWORD").ok()),
        None => Ok(std::env::var("IPMI_PASSWORD").ok()),
    }
}

/// `--address`, which clap cannot require of a global option: the same
/// usage error (exit code 2) clap gives for a missing required argument.
fn address(args: &BmcArgs) -> Result<String, clap::Error> {
    args.address.clone().ok_or_else(|| {
        let mut top = <crate::Args as clap::CommandFactory>::command();
        top.build();
        let usage = top.find_subcommand_mut("bmc").map(|c| c.render_usage());
        let usage = usage.map(|u| format!("\n{u}\n")).unwrap_or_default();
        clap::Error::raw(
            clap::error::ErrorKind::MissingRequiredArgument,
            format!(
                "the following required arguments were not provided:\n  --address <ADDRESS>\n{usage}\nFor more information, try '--help'.\n"
            ),
        )
    })
}

pub fn run(args: BmcArgs) -> ExitCode {
    let address = match address(&args) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(2);
        }
    };
    let priv_level = match args.priv_level.as_str() {
        "CALLBACK" => PrivLevel::Callback,
        "USER" => PrivLevel::User,
        "OPERATOR" => PrivLevel::Operator,
        _ => PrivLevel::Administrator,
    };
    let password = match password(&args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if args.redfish {
        return run_redfish(&args, &address, password);
    }
    let info = IpmiInfo {
        address,
        port: args.port,
        username: args.username.clone(),
        password,
        cipher_suite: args.cipher_suite.as_deref().and_then(|s| s.parse().ok()),
        priv_level,
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let timeout = Duration::from_secs(args.timeout);
    // One command (or --repeat of it): no keepalive.
    let pool = ipmi::pool::Pool::new(ipmi::pool::PoolSettings {
        keep: std::time::Duration::ZERO,
        ..ipmi::pool::PoolSettings::default()
    });
    exit(rt.block_on(async {
        let r = repeated(args.repeat, "opens the session", || {
            once(&args.cmd, &pool, &info, timeout)
        })
        .await;
        pool.close_all().await;
        r
    }))
}

/// A single-threaded runtime for one command.
fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("cannot start the runtime: {e}");
            ExitCode::FAILURE
        })
}

/// Runs `call` `repeat` times, printing the per-call times to stderr when
/// more than once; says what the first call does that the others do not.
async fn repeated<F, Fut>(repeat: u32, first_does: &str, mut call: F) -> crate::drivers::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = crate::drivers::Result<()>>,
{
    let mut times = Vec::new();
    let mut last = Ok(());
    for _ in 0..repeat.max(1) {
        let started = std::time::Instant::now();
        last = call().await;
        times.push(started.elapsed());
        if last.is_err() {
            break;
        }
    }
    if times.len() > 1 {
        let first = times.remove(0);
        times.sort();
        eprintln!(
            "{} calls: first {} us ({first_does}), then median {} us, max {} us (kept session)",
            times.len() + 1,
            first.as_micros(),
            times[times.len() / 2].as_micros(),
            times[times.len() - 1].as_micros()
        );
    }
    last
}

fn exit(result: crate::drivers::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// `rackboot bmc --redfish …`.
fn run_redfish(args: &BmcArgs, address: &str, password: Option<String>) -> ExitCode {
    use crate::drivers::redfish::{self, client};
    let (base, root) = match redfish::parse_address(address) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("--address: {e}");
            return ExitCode::from(2);
        }
    };
    let verify_ca = match (&args.ca_file, args.insecure) {
        (Some(p), _) => client::VerifyCa::Path(p.clone()),
        (None, true) => client::VerifyCa::No,
        (None, false) => client::VerifyCa::Yes,
    };
    let info = redfish::RedfishInfo {
        endpoint: client::Endpoint {
            base,
            root,
            username: args.username.clone(),
            password,
            verify_ca,
            auth: client::AuthType::parse(&args.auth_type).unwrap_or(client::AuthType::Auto),
        },
        system_id: args.system_id.clone(),
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let timeout = Duration::from_secs(args.timeout);
    let pool = client::Pool::new(client::Settings {
        connection_attempts: 1,
        ..client::Settings::default()
    });
    exit(rt.block_on(async {
        let bmc = redfish::connect(&pool, &info)?;
        let r = repeated(args.repeat, "opens the connection and the session", || {
            once_redfish(&args.cmd, &bmc, &info, timeout)
        })
        .await;
        pool.close_all().await;
        r
    }))
}

async fn once_redfish(
    cmd: &BmcCmd,
    bmc: &crate::drivers::redfish::client::Bmc,
    info: &crate::drivers::redfish::RedfishInfo,
    timeout: Duration,
) -> crate::drivers::Result<()> {
    use crate::drivers::redfish::{self, BootMode, MediaKind};
    let power = |target| redfish::set_power(bmc, info, target, timeout);
    match cmd {
        BmcCmd::Status => redfish::power_state(bmc, info).await.map(|s| {
            println!(
                "Chassis Power is {}",
                if s == PowerState::On { "on" } else { "off" }
            )
        }),
        BmcCmd::On => power(PowerState::On).await.map(drop),
        BmcCmd::Off => power(PowerState::Off).await.map(drop),
        BmcCmd::SoftOff => power(PowerState::SoftOff).await.map(drop),
        BmcCmd::Reboot => power(PowerState::Rebooting).await.map(drop),
        BmcCmd::Nmi => redfish::inject_nmi(bmc, info).await,
        BmcCmd::Bootdev {
            device,
            persistent,
            legacy,
        } => {
            let mode = if *legacy {
                BootMode::Legacy
            } else {
                BootMode::Uefi
            };
            let set = redfish::set_boot(bmc, info, device, *persistent, Some(mode)).await?;
            let want = if *persistent { "Continuous" } else { "Once" };
            if let Some(e) = set.enabled_read_back.filter(|e| e != want) {
                eprintln!("note: the BMC reads BootSourceOverrideEnabled back as {e}, not {want}");
            }
            Ok(())
        }
        BmcCmd::Vmedia {
            action: VmediaCmd::Insert { url, device },
        } => {
            let kind = MediaKind::parse(device).unwrap_or(MediaKind::Cd);
            let path = redfish::insert_media(bmc, info, kind, url).await?;
            println!("inserted into {path}");
            Ok(())
        }
        BmcCmd::Vmedia {
            action: VmediaCmd::Eject { device },
        } => {
            let kind = device.as_deref().and_then(MediaKind::parse);
            let ejected = redfish::eject_media(bmc, info, kind).await?;
            if ejected.is_empty() {
                println!("nothing was inserted");
            }
            for p in ejected {
                println!("ejected {p}");
            }
            Ok(())
        }
    }
}

async fn once(
    cmd: &BmcCmd,
    pool: &ipmi::pool::Pool,
    info: &IpmiInfo,
    timeout: Duration,
) -> crate::drivers::Result<()> {
    match cmd {
        BmcCmd::Status => ipmi::power_state(pool, info).await.map(|s| {
            println!(
                "Chassis Power is {}",
                if s == PowerState::On { "on" } else { "off" }
            )
        }),
        BmcCmd::On => ipmi::set_power(pool, info, PowerState::On, timeout).await,
        BmcCmd::Off => ipmi::set_power(pool, info, PowerState::Off, timeout).await,
        BmcCmd::SoftOff => ipmi::set_power(pool, info, PowerState::SoftOff, timeout).await,
        BmcCmd::Reboot => ipmi::set_power(pool, info, PowerState::Rebooting, timeout).await,
        BmcCmd::Bootdev {
            device,
            persistent,
            legacy,
        } => ipmi::set_boot_device(pool, info, device, *persistent, !*legacy).await,
        BmcCmd::Nmi => ipmi::inject_nmi(pool, info).await,
        BmcCmd::Vmedia { .. } => Err(crate::drivers::Error::InvalidParameter(
            "virtual media is a Redfish service: add --redfish and give the BMC's Redfish URL as --address".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn bmc(argv: &[&str]) -> Result<BmcArgs, clap::Error> {
        let args = crate::Args::try_parse_from(argv)?;
        match args.command {
            crate::Command::Bmc(b) => Ok(b),
            _ => panic!("{argv:?} is not a bmc command"),
        }
    }

    #[test]
    fn options_parse_before_or_after_the_verb() {
        let before = bmc(&[
            "rackboot",
            "bmc",
            "--address",
            "127.0.0.1",
            "--port",
            "6230",
            "--username",
            "admin",
            "--password-file",
            "/run/pw",
            "--cipher-suite",
            "3",
            "--priv-level",
            "OPERATOR",
            "--repeat",
            "5",
            "--timeout",
            "9",
            "bootdev",
            "pxe",
            "--persistent",
        ])
        .unwrap();
        let after = bmc(&[
            "rackboot",
            "bmc",
            "bootdev",
            "pxe",
            "--persistent",
            "--address",
            "127.0.0.1",
            "--port",
            "6230",
            "--username",
            "admin",
            "--password-file",
            "/run/pw",
            "--cipher-suite",
            "3",
            "--priv-level",
            "OPERATOR",
            "--repeat",
            "5",
            "--timeout",
            "9",
        ])
        .unwrap();
        assert_eq!(before, after);
        assert_eq!(before.address.as_deref(), Some("127.0.0.1"));
        assert_eq!(before.port, 6230);
        assert_eq!(before.username.as_deref(), Some("admin"));
        assert_eq!(
            before.password_file.as_deref(),
            Some(std::path::Path::new("/run/pw"))
        );
        assert_eq!(before.cipher_suite.as_deref(), Some("3"));
        assert_eq!(before.priv_level, "OPERATOR");
        assert_eq!(before.repeat, 5);
        assert_eq!(before.timeout, 9);
        assert_eq!(
            before.cmd,
            BmcCmd::Bootdev {
                device: "pxe".into(),
                persistent: true,
                legacy: false
            }
        );

        // Split across both sides, as an operator might type it.
        let mixed = bmc(&[
            "rackboot",
            "bmc",
            "--address",
            "127.0.0.1",
            "status",
            "--port",
            "623",
            "--username",
            "admin",
        ])
        .unwrap();
        let plain = bmc(&[
            "rackboot",
            "bmc",
            "status",
            "--address",
            "127.0.0.1",
            "--port",
            "623",
            "--username",
            "admin",
        ])
        .unwrap();
        assert_eq!(mixed, plain);
        assert_eq!(plain.cmd, BmcCmd::Status);
        // Defaults stay what they were.
        assert_eq!(plain.priv_level, "ADMINISTRATOR");
        assert_eq!((plain.repeat, plain.timeout), (1, 60));
        assert_eq!(plain.password_file, None);
    }

    #[test]
    fn address_is_still_required_and_values_still_checked() {
        let none = bmc(&["rackboot", "bmc", "status"]).unwrap();
        let err = address(&none).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
        assert_eq!(err.exit_code(), 2);
        for bad in [
            &["rackboot", "bmc", "status", "--cipher-suite", "2"][..],
            &["rackboot", "bmc", "status", "--priv-level", "ROOT"][..],
            &["rackboot", "bmc", "status", "--port", "x"][..],
            &["rackboot", "bmc", "status", "--password", "pw"][..],
        ] {
            assert!(bmc(bad).is_err(), "{bad:?}");
        }
    }
}
