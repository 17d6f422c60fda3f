//! The `ipmitool` power and management interfaces: the fallback for BMCs the
//! native client does not get along with. Each call forks `ipmitool -I
//! lanplus`, as Ironic does; the password goes through the environment
//! (`-E`, `IPMI_PASSWORD`), never the command line. Every call has a deadline
//! and the child is killed if it overruns.

use std::time::Duration;

use tokio::process::Command;
use tokio::time::Instant;

use super::ipmi::{chassis, parse_driver_info, IpmiInfo, PrivLevel};
use super::{BoxFuture, Error, Management, Power, Result, Task};
use crate::model::{Node, PowerState, Severity};

/// Deadline of one ipmitool run.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How often power is polled while waiting for a change.
const POLL: Duration = Duration::from_millis(500);

/// Runs ipmitool with a pinned cipher suite, or 17 then 3: without `-C`,
/// ipmitool 1.8.19 asks the BMC for its suites first, which hangs 10 s on
/// BMCs that ignore the request (ipmitool#199).
async fn ipmitool(info: &IpmiInfo, args: &[&str]) -> Result<String> {
    match info.cipher_suite {
        Some(c) => ipmitool_with(info, c, args).await,
        None => match ipmitool_with(info, 17, args).await {
            Ok(out) => Ok(out),
            Err(Error::Failed(why))
                if why.contains("RMCP+ session")
                    || why.contains("algorithm")
                    || why.contains("cipher") =>
            {
                ipmitool_with(info, 3, args).await
            }
            Err(e) => Err(e),
        },
    }
}

async fn ipmitool_with(info: &IpmiInfo, suite: u8, args: &[&str]) -> Result<String> {
    let level = match info.priv_level {
        PrivLevel::Callback => "CALLBACK",
        PrivLevel::User => "USER",
        PrivLevel::Operator => "OPERATOR",
        PrivLevel::Administrator => "ADMINISTRATOR",
    };
    let mut cmd = Command::new("ipmitool");
    cmd.args([
        "-I",
        "lanplus",
        "-H",
        &info.address,
        "-p",
        &info.port.to_string(),
        "-L",
        level,
        "-E",
    ]);
    cmd.args(["-C", &suite.to_string()]);
    if let Some(u) = &info.username {
        cmd.args(["-U", u]);
    }
    cmd.args(args)
        .env("IPMI_PASSWORD", info.password.clone().unwrap_or_default())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let bmc = format!("{}:{}", info.address, info.port);
    let out = match tokio::time::timeout(CALL_TIMEOUT, cmd.output()).await {
        Err(_) => {
            return Err(Error::Failed(format!(
                "ipmitool {} for BMC {bmc} did not finish within {} s",
                args.join(" "),
                CALL_TIMEOUT.as_secs()
            )))
        }
        Ok(Err(e)) => {
            return Err(Error::Failed(format!(
                "cannot run ipmitool (install the ipmitool package): {e}"
            )))
        }
        Ok(Ok(o)) => o,
    };
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(Error::Failed(format!(
            "ipmitool -C {suite} {} for BMC {bmc} failed: {}",
            args.join(" "),
            stderr.trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

/// Parses `Chassis Power is on|off`.
fn parse_status(out: &str) -> Result<bool> {
    match out.trim() {
        "Chassis Power is on" => Ok(true),
        "Chassis Power is off" => Ok(false),
        other => Err(Error::Failed(format!(
            "unexpected ipmitool output {other:?}"
        ))),
    }
}

async fn is_on(info: &IpmiInfo) -> Result<bool> {
    parse_status(&ipmitool(info, &["power", "status"]).await?)
}

async fn wait_for(info: &IpmiInfo, on: bool, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if is_on(info).await? == on {
            return Ok(());
        }
        if Instant::now() + POLL > deadline {
            return Err(Error::Failed(format!(
                "power did not reach {} within {} s",
                if on { "on" } else { "off" },
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Power through ipmitool.
pub struct IpmitoolPower;

impl Power for IpmitoolPower {
    fn validate(&self, node: &Node) -> Result<()> {
        parse_driver_info(node).map(|_| ())
    }

    fn get_power_state<'a>(&'a self, task: &'a Task) -> BoxFuture<'a, Result<PowerState>> {
        Box::pin(async move {
            let info = parse_driver_info(&task.node)?;
            Ok(if is_on(&info).await? {
                PowerState::On
            } else {
                PowerState::Off
            })
        })
    }

    fn set_power_state<'a>(
        &'a self,
        task: &'a Task,
        target: PowerState,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let info = parse_driver_info(&task.node)?;
            let timeout = task.settings.power_state_change_timeout;
            let on = is_on(&info).await?;
            let plan = chassis::power_plan(target, on).ok_or_else(|| {
                Error::InvalidParameter(format!("\"{target}\" is not a power target"))
            })?;
            for (op, want_on) in plan {
                let arg = match op {
                    chassis::Control::PowerUp => "on",
                    chassis::Control::PowerDown => "off",
                    chassis::Control::SoftShutdown => "soft",
                    chassis::Control::DiagnosticInterrupt => "diag",
                };
                ipmitool(&info, &["power", arg]).await?;
                wait_for(&info, want_on, timeout).await?;
            }
            task.record(
                Severity::Info,
                "power",
                format!(
                    "ipmitool: power action {target} done on BMC {}:{}",
                    info.address, info.port
                ),
            );
            Ok(())
        })
    }
}

/// Boot devices through ipmitool, with Ironic's raw bytes.
pub struct IpmitoolManagement;

impl Management for IpmitoolManagement {
    fn validate(&self, node: &Node) -> Result<()> {
        parse_driver_info(node).map(|_| ())
    }

    fn set_boot_device<'a>(
        &'a self,
        task: &'a mut Task,
        device: &'a str,
        persistent: bool,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let info = parse_driver_info(&task.node)?;
            let selector = chassis::device_selector(device)
                .ok_or_else(|| Error::InvalidParameter(format!("unknown boot device {device}")))?;
            let uefi = task.node.boots_uefi();
            // Keep the flags past the BMC's 60 s timeout (best effort), then param 5.
            let _ = ipmitool(&info, &["raw", "0x00", "0x08", "0x03", "0x08"]).await;
            let flags = format!("{:#04x}", chassis::boot_flags(persistent, uefi));
            let dev = format!("{selector:#04x}");
            ipmitool(
                &info,
                &[
                    "raw", "0x00", "0x08", "0x05", &flags, &dev, "0x00", "0x00", "0x00",
                ],
            )
            .await?;
            task.record(
                Severity::Info,
                "management",
                format!(
                    "ipmitool: boot device set to {device} (persistent={persistent}, uefi={uefi})"
                ),
            );
            Ok(())
        })
    }

    fn get_boot_device<'a>(
        &'a self,
        task: &'a Task,
    ) -> BoxFuture<'a, Result<(Option<String>, Option<bool>)>> {
        Box::pin(async move {
            let info = parse_driver_info(&task.node)?;
            let out = ipmitool(&info, &["raw", "0x00", "0x09", "0x05", "0x00", "0x00"]).await?;
            // " 01 05 00 04 00 00 00": version, parameter, data1..5
            let bytes: Vec<u8> = out
                .split_whitespace()
                .filter_map(|b| u8::from_str_radix(b, 16).ok())
                .collect();
            let (Some(d1), Some(d2)) = (bytes.get(2), bytes.get(3)) else {
                return Err(Error::Failed(format!(
                    "unexpected ipmitool output {:?}",
                    out.trim()
                )));
            };
            let device = chassis::selector_device(*d2).map(str::to_string);
            Ok((device, (d1 & 0x80 != 0).then_some(d1 & 0x40 != 0)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_output_cases() {
        assert_eq!(parse_status("Chassis Power is on\n"), Ok(true));
        assert_eq!(parse_status("Chassis Power is off\n"), Ok(false));
        assert!(parse_status("Error: Unable to establish IPMI v2 / RMCP+ session").is_err());
        assert!(parse_status("").is_err());
    }
}
