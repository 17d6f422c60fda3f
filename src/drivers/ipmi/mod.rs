//! The `ipmi` hardware type's power and management interfaces.
//!
//! driver_info is parsed once into [`IpmiInfo`] with errors that name the
//! missing or bad key. The BMC is reached with the native RMCP+ client
//! (`session`, `rakp`, `wire`); sessions are kept open and shared per BMC by
//! the `pool`, with a keepalive while they are in use.

pub mod chassis;
pub mod pool;
pub mod rakp;
pub mod session;
#[cfg(test)]
mod vectors;
pub mod wire;

use std::net::IpAddr;
use std::time::Duration;

use serde_json::Value;

use super::{BoxFuture, Error, Management, Power, Result, Task};
use crate::model::{Node, PowerState};

/// driver_info keys of the `ipmi` hardware type.
pub const PROPERTIES: &[(&str, &str)] = &[
    ("ipmi_address", "IP address or hostname of the node's BMC. Required."),
    ("ipmi_username", "BMC user name (at most 16 bytes). Optional; default: the anonymous user."),
    ("ipmi_password", "BMC password (at most 20 bytes). Optional; never shown or logged."),
    ("ipmi_port", "UDP port of the BMC, 1-65535. Optional, default 623."),
    ("ipmi_cipher_suite", "RMCP+ cipher suite, 3 or 17. Optional; default: try 17, then 3."),
    ("ipmi_priv_level", "Privilege level: CALLBACK, USER, OPERATOR or ADMINISTRATOR. Optional, default ADMINISTRATOR."),
    ("ipmi_protocol_version", "IPMI protocol version; only \"2.0\" is supported. Optional."),
];

/// IPMI privilege levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrivLevel {
    Callback,
    User,
    Operator,
    Administrator,
}

/// A node's BMC access, parsed from driver_info.
#[derive(Clone, PartialEq, Eq)]
pub struct IpmiInfo {
    pub address: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
    pub cipher_suite: Option<u8>,
    pub priv_level: PrivLevel,
}

impl std::fmt::Debug for IpmiInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpmiInfo")
            .field("address", &self.address)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "******"))
            .field("cipher_suite", &self.cipher_suite)
            .field("priv_level", &self.priv_level)
            .finish()
    }
}

/// A driver_info value as text. The `baremetal` CLI JSON-parses
/// `--driver-info` values, so `ipmi_password=12345678` arrives as a number;
/// Ironic takes it as text, and so does this.
pub(crate) fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn optional_string(node: &Node, key: &str, max_len: usize) -> Result<Option<String>> {
    match node.driver_info.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match text(v) {
            Some(s) if s.len() <= max_len => Ok(Some(s)),
            Some(_) => Err(Error::InvalidParameter(format!(
                "driver_info/{key} is longer than the {max_len} bytes IPMI allows"
            ))),
            None => Err(Error::InvalidParameter(format!(
                "driver_info/{key} must be a string"
            ))),
        },
    }
}

fn optional_int(node: &Node, key: &str) -> Result<Option<i64>> {
    match node.driver_info.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| {
            Error::InvalidParameter(format!("driver_info/{key} must be an integer, got {n}"))
        }),
        Some(Value::String(s)) => s.trim().parse::<i64>().map(Some).map_err(|_| {
            Error::InvalidParameter(format!("driver_info/{key} must be an integer, got {s:?}"))
        }),
        Some(other) => Err(Error::InvalidParameter(format!(
            "driver_info/{key} must be an integer, got {other}"
        ))),
    }
}

fn valid_host(s: &str) -> bool {
    if s.parse::<IpAddr>().is_ok() {
        return true;
    }
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// Parses and checks a node's IPMI driver_info. Never echoes the password.
pub fn parse_driver_info(node: &Node) -> Result<IpmiInfo> {
    let address =
        match node.driver_info.get("ipmi_address") {
            None | Some(Value::Null) => return Err(Error::MissingParameter(
                "Missing the following IPMI credentials in node's driver_info: ['ipmi_address']. \
                 Set it with: baremetal node set <node> --driver-info ipmi_address=<BMC address>"
                    .into(),
            )),
            Some(Value::String(s)) if valid_host(s.trim()) => s.trim().to_string(),
            Some(v) => {
                return Err(Error::InvalidParameter(format!(
                    "driver_info/ipmi_address {v} is not an IP address or host name"
                )))
            }
        };
    let port = match optional_int(node, "ipmi_port")? {
        None => 623,
        Some(p) if (1..=65535).contains(&p) => p as u16,
        Some(p) => {
            return Err(Error::InvalidParameter(format!(
                "driver_info/ipmi_port must be between 1 and 65535, got {p}"
            )))
        }
    };
    let cipher_suite = match optional_int(node, "ipmi_cipher_suite")? {
        None => None,
        Some(c @ (3 | 17)) => Some(c as u8),
        Some(c) => {
            return Err(Error::InvalidParameter(format!(
                "driver_info/ipmi_cipher_suite must be 3 or 17, got {c}"
            )))
        }
    };
    let priv_level = match optional_string(node, "ipmi_priv_level", 32)?.as_deref() {
        None | Some("ADMINISTRATOR") => PrivLevel::Administrator,
        Some("OPERATOR") => PrivLevel::Operator,
        Some("USER") => PrivLevel::User,
        Some("CALLBACK") => PrivLevel::Callback,
        Some(other) => {
            return Err(Error::InvalidParameter(format!(
                "driver_info/ipmi_priv_level {other:?} is invalid; valid levels are CALLBACK, USER, OPERATOR, ADMINISTRATOR"
            )))
        }
    };
    match optional_string(node, "ipmi_protocol_version", 8)?.as_deref() {
        None | Some("2.0" | "2") => {}
        Some(v) => {
            return Err(Error::InvalidParameter(format!(
                "driver_info/ipmi_protocol_version {v:?} is not supported; only \"2.0\" (RMCP+) is"
            )))
        }
    }
    let username = optional_string(node, "ipmi_username", 16)?;
    let password = optional_string(node, "ipmi_password", 20)?;
    for key in ["deploy_kernel", "deploy_ramdisk"] {
        if let Some(v) = node.driver_info.get(key) {
            super::pxe::check_image_ref(&format!("driver_info/{key}"), v)?;
        }
    }
    Ok(IpmiInfo {
        address,
        port,
        username,
        password,
        cipher_suite,
        priv_level,
    })
}

/// How often power is polled while waiting for a change.
const POWER_POLL: Duration = Duration::from_millis(250);

fn bmc_error(e: session::Error) -> Error {
    Error::Failed(e.to_string())
}

/// Runs `f` on the BMC's pooled session.
async fn with_session<T>(
    pool: &pool::Pool,
    info: &IpmiInfo,
    f: impl for<'s> FnOnce(
        &'s mut session::Session,
    ) -> BoxFuture<'s, std::result::Result<T, session::Error>>,
) -> Result<T> {
    pool.run(info, f).await.map_err(bmc_error)
}

/// Power status of one BMC.
pub async fn power_state(pool: &pool::Pool, info: &IpmiInfo) -> Result<PowerState> {
    let on = with_session(pool, info, |s| Box::pin(chassis::power_is_on(s))).await?;
    Ok(if on { PowerState::On } else { PowerState::Off })
}

/// Moves a BMC's chassis to `target` with Ironic's semantics and waits.
pub async fn set_power(
    pool: &pool::Pool,
    info: &IpmiInfo,
    target: PowerState,
    timeout: Duration,
) -> Result<()> {
    with_session(pool, info, move |s| {
        Box::pin(async move {
            let on = chassis::power_is_on(s).await?;
            let plan = chassis::power_plan(target, on).ok_or_else(|| session::Error::Session {
                bmc: s.bmc().to_string(),
                why: format!("\"{target}\" is not a power target"),
            })?;
            for (op, want_on) in plan {
                chassis::control(s, op).await?;
                chassis::wait_for(s, want_on, timeout, POWER_POLL).await?;
            }
            Ok(())
        })
    })
    .await
}

/// Pulses a diagnostic interrupt (NMI) on a BMC's chassis.
pub async fn inject_nmi(pool: &pool::Pool, info: &IpmiInfo) -> Result<()> {
    with_session(pool, info, |s| {
        Box::pin(chassis::control(s, chassis::Control::DiagnosticInterrupt))
    })
    .await
}

/// Sets a BMC's next boot device (parameter 3 = 0x08 first, then 5).
pub async fn set_boot_device(
    pool: &pool::Pool,
    info: &IpmiInfo,
    device: &str,
    persistent: bool,
    uefi: bool,
) -> Result<()> {
    let dev = device.to_string();
    with_session(pool, info, move |s| {
        Box::pin(async move { chassis::set_boot_device(s, &dev, persistent, uefi).await })
    })
    .await
}

/// IPMI power control (`ipmi` native and, for now, `ipmitool` too).
pub struct IpmiPower {
    pub pool: std::sync::Arc<pool::Pool>,
}

impl Power for IpmiPower {
    fn validate(&self, node: &Node) -> Result<()> {
        parse_driver_info(node).map(|_| ())
    }

    fn get_power_state<'a>(&'a self, task: &'a Task) -> BoxFuture<'a, Result<PowerState>> {
        Box::pin(async move {
            let info = parse_driver_info(&task.node)?;
            let state = power_state(&self.pool, &info).await?;
            task.record(
                crate::model::Severity::Info,
                "power",
                format!("BMC {}:{} power state: {state}", info.address, info.port),
            );
            Ok(state)
        })
    }

    fn set_power_state<'a>(
        &'a self,
        task: &'a Task,
        target: PowerState,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let info = parse_driver_info(&task.node)?;
            set_power(
                &self.pool,
                &info,
                target,
                task.settings.power_state_change_timeout,
            )
            .await?;
            task.record(
                crate::model::Severity::Info,
                "power",
                format!(
                    "BMC {}:{} power action {target} done",
                    info.address, info.port
                ),
            );
            Ok(())
        })
    }
}

/// IPMI boot-device control.
pub struct IpmiManagement {
    pub pool: std::sync::Arc<pool::Pool>,
}

impl Management for IpmiManagement {
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
            let uefi = task.node.boots_uefi();
            set_boot_device(&self.pool, &info, device, persistent, uefi).await?;
            task.record(
                crate::model::Severity::Info,
                "management",
                format!(
                    "BMC {}:{} boot device set to {device} (persistent={persistent}, uefi={uefi})",
                    info.address, info.port
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
            with_session(&self.pool, &info, |s| Box::pin(chassis::get_boot_device(s))).await
        })
    }

    fn inject_nmi<'a>(&'a self, task: &'a mut Task) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move {
            let info = parse_driver_info(&task.node)?;
            inject_nmi(&self.pool, &info).await?;
            Ok(format!(
                "BMC {}:{} chassis control: diagnostic interrupt (NMI) sent",
                info.address, info.port
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Interfaces, State};
    use serde_json::{json, Value};
    use uuid::Uuid;

    fn node(info: Value) -> Node {
        let mut n = Node::new(
            Uuid::new_v4(),
            "ipmi",
            Interfaces::default(),
            State::Enroll,
            String::new(),
        );
        n.driver_info = info.as_object().unwrap().clone();
        n
    }

    #[test]
    fn driver_info_cases() {
        let cases: &[(Value, Option<&str>)] = &[
            (json!({"ipmi_address": "10.0.0.5"}), None),
            (
                json!({"ipmi_address": "bmc-1.rack.example", "ipmi_port": "6230"}),
                None,
            ),
            (
                json!({"ipmi_address": "::1", "ipmi_cipher_suite": 17, "ipmi_priv_level": "OPERATOR"}),
                None,
            ),
            (json!({}), Some("ipmi_address")),
            (json!({"ipmi_address": ""}), Some("ipmi_address")),
            (json!({"ipmi_address": "bad host!"}), Some("ipmi_address")),
            (
                json!({"ipmi_address": "h", "ipmi_port": 0}),
                Some("ipmi_port"),
            ),
            (
                json!({"ipmi_address": "h", "ipmi_port": "x"}),
                Some("ipmi_port"),
            ),
            (
                json!({"ipmi_address": "h", "ipmi_cipher_suite": 1}),
                Some("ipmi_cipher_suite"),
            ),
            (
                json!({"ipmi_address": "h", "ipmi_priv_level": "ROOT"}),
                Some("ipmi_priv_level"),
            ),
            (
                json!({"ipmi_address": "h", "ipmi_username": "u".repeat(17)}),
                Some("ipmi_username"),
            ),
            (
                json!({"ipmi_address": "h", "ipmi_password": "p".repeat(21)}),
                Some("ipmi_password"),
            ),
            (
                json!({"ipmi_address": "h", "ipmi_password": 12345678, "ipmi_username": 42, "ipmi_protocol_version": 2.0}),
                None,
            ),
            (
                json!({"ipmi_address": "h", "ipmi_password": {"nested": true}}),
                Some("ipmi_password"),
            ),
            (
                json!({"ipmi_address": "h", "ipmi_protocol_version": "1.5"}),
                Some("ipmi_protocol_version"),
            ),
            (
                json!({"ipmi_address": "h", "deploy_kernel": "ftp://x/k"}),
                Some("deploy_kernel"),
            ),
        ];
        for (info, bad_key) in cases {
            let got = parse_driver_info(&node(info.clone()));
            match bad_key {
                None => assert!(got.is_ok(), "{info}: {got:?}"),
                Some(key) => {
                    let msg = got.expect_err(&info.to_string()).to_string();
                    assert!(msg.contains(key), "{info}: {msg}");
                }
            }
        }
    }

    #[test]
    fn password_never_in_errors_or_debug() {
        let n = node(json!({"ipmi_address": "h", "ipmi_password": "hunter2", "ipmi_port": -1}));
        assert!(!parse_driver_info(&n)
            .unwrap_err()
            .to_string()
            .contains("hunter2"));
        let ok = parse_driver_info(&node(
            json!({"ipmi_address": "h", "ipmi_password": "hunter2"}),
        ))
        .unwrap();
        assert!(!format!("{ok:?}").contains("hunter2"));
    }
}
