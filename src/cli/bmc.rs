//! `rackboot bmc …`: talk to one BMC directly with the native RMCP+ client,
//! for operators checking a BMC before enrolling it. The password comes from
//! a file (or `IPMI_PASSWORD`), never from the command line.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::drivers::ipmi::{self, IpmiInfo, PrivLevel};
use crate::model::PowerState;

#[derive(Args)]
pub struct BmcArgs {
    /// BMC address (IP or host name).
    #[arg(long)]
    address: String,
    /// BMC UDP port.
    #[arg(long, default_value_t = 623)]
    port: u16,
    /// BMC user name.
    #[arg(long)]
    username: Option<String>,
    /// File holding the password (first line); default: $IPMI_PASSWORD.
    #[arg(long = "password-file")]
    password_file: Option<std::path::PathBuf>,
    /// Cipher suite 3 or 17 (default: 17, falling back to 3).
    #[arg(long = "cipher-suite", value_parser = ["3", "17"])]
    cipher_suite: Option<String>,
    /// Privilege level.
    #[arg(long = "priv-level", default_value = "ADMINISTRATOR", value_parser = ["CALLBACK", "USER", "OPERATOR", "ADMINISTRATOR"])]
    priv_level: String,
    /// Run the command this many times in one process, on one kept session,
    /// and print the per-call time to stderr.
    #[arg(long, default_value_t = 1)]
    repeat: u32,
    /// How long a power change may take, in seconds.
    #[arg(long = "timeout", default_value_t = 60)]
    timeout: u64,
    #[command(subcommand)]
    cmd: BmcCmd,
}

#[derive(Subcommand)]
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
}

fn password(args: &BmcArgs) -> Result<Option<String>, String> {
    match &args.password_file {
        Some(p) => std::fs::read_to_string(p)
            .map(|s| Some(s.lines().next().unwrap_or_default().to_string()))
            .map_err(|e| format!("cannot read --password-file {}: {e}", p.display())),
        None => Ok(std::env::var("IPMI_PASSWORD").ok()),
    }
}

pub fn run(args: BmcArgs) -> ExitCode {
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
    let info = IpmiInfo {
        address: args.address.clone(),
        port: args.port,
        username: args.username.clone(),
        password,
        cipher_suite: args.cipher_suite.as_deref().and_then(|s| s.parse().ok()),
        priv_level,
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let timeout = Duration::from_secs(args.timeout);
    // One command (or --repeat of it): no keepalive.
    let pool = ipmi::pool::Pool::new(ipmi::pool::PoolSettings {
        keep: std::time::Duration::ZERO,
        ..ipmi::pool::PoolSettings::default()
    });
    let result = rt.block_on(async {
        let mut times = Vec::new();
        let mut last = Ok(());
        for _ in 0..args.repeat.max(1) {
            let started = std::time::Instant::now();
            last = once(&args.cmd, &pool, &info, timeout).await;
            times.push(started.elapsed());
            if last.is_err() {
                break;
            }
        }
        pool.close_all().await;
        if times.len() > 1 {
            let first = times.remove(0);
            times.sort();
            eprintln!(
                "{} calls: first {} us (opens the session), then median {} us, max {} us (kept session)",
                times.len() + 1,
                first.as_micros(),
                times[times.len() / 2].as_micros(),
                times[times.len() - 1].as_micros()
            );
        }
        last
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
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
    }
}
