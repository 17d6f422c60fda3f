//! Chassis commands over a session: power status and control with Ironic's
//! semantics (wait until the BMC reports the new state; reboot = off unless
//! already off, then on — never `cycle` a chassis that is off) and boot
//! devices (parameter 3 = 0x08 first, then parameter 5).

use std::time::Duration;

use tokio::time::Instant;

use super::session::{Error, Session};
use crate::model::PowerState;

/// Chassis Control operations (IPMI 2.0 §28.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    PowerDown = 0x00,
    PowerUp = 0x01,
    /// Pulse a diagnostic interrupt (NMI).
    DiagnosticInterrupt = 0x04,
    SoftShutdown = 0x05,
}

/// The steps that bring a chassis that is (`on`) to `target`, with Ironic's
/// semantics: nothing when it is already there; reboot = off (unless already
/// off), then on — a chassis that is off is never cycled. Each step is a
/// Chassis Control followed by a wait for the power state given. `None` for
/// a target that is not an action.
pub fn power_plan(target: PowerState, on: bool) -> Option<Vec<(Control, bool)>> {
    use Control::*;
    Some(match target {
        PowerState::On if on => vec![],
        PowerState::Off | PowerState::SoftOff if !on => vec![],
        PowerState::On => vec![(PowerUp, true)],
        PowerState::Off => vec![(PowerDown, false)],
        PowerState::SoftOff => vec![(SoftShutdown, false)],
        PowerState::Rebooting | PowerState::SoftRebooting => {
            let off = if target == PowerState::SoftRebooting {
                SoftShutdown
            } else {
                PowerDown
            };
            let mut steps = if on { vec![(off, false)] } else { vec![] };
            steps.push((PowerUp, true));
            steps
        }
        PowerState::Error => return None,
    })
}

/// Reads whether the chassis is powered (Get Chassis Status, bit 0).
pub async fn power_is_on(s: &mut Session) -> Result<bool, Error> {
    let data = s.command(0x00, 0x01, &[], "Get Chassis Status").await?;
    match data.first() {
        Some(b) => Ok(b & 0x01 != 0),
        None => Err(Error::Session {
            bmc: s.bmc().to_string(),
            why: "empty Get Chassis Status answer".into(),
        }),
    }
}

/// Sends Chassis Control.
pub async fn control(s: &mut Session, op: Control) -> Result<(), Error> {
    s.command(0x00, 0x02, &[op as u8], "Chassis Control")
        .await
        .map(|_| ())
}

/// Polls until the chassis reports `on` (or the deadline passes).
pub async fn wait_for(
    s: &mut Session,
    on: bool,
    timeout: Duration,
    poll: Duration,
) -> Result<(), Error> {
    let deadline = Instant::now() + timeout;
    loop {
        if power_is_on(s).await? == on {
            return Ok(());
        }
        if Instant::now() + poll > deadline {
            return Err(Error::Session {
                bmc: s.bmc().to_string(),
                why: format!(
                    "power did not reach {} within {} s",
                    if on { "on" } else { "off" },
                    timeout.as_secs()
                ),
            });
        }
        tokio::time::sleep(poll).await;
    }
}

/// Boot devices and their parameter-5 selector values.
pub fn device_selector(device: &str) -> Option<u8> {
    Some(match device {
        "pxe" => 0x04,
        "disk" => 0x08,
        "safe" => 0x0c,
        "cdrom" => 0x14,
        "bios" => 0x18,
        _ => return None,
    })
}

/// The device a parameter-5 selector names.
pub fn selector_device(data2: u8) -> Option<&'static str> {
    Some(match data2 & 0x3c {
        0x04 => "pxe",
        0x08 => "disk",
        0x0c => "safe",
        0x14 => "cdrom",
        0x18 => "bios",
        _ => return None,
    })
}

/// Parameter 5's first data byte: valid, persistent, EFI.
pub fn boot_flags(persistent: bool, uefi: bool) -> u8 {
    0x80 | if persistent { 0x40 } else { 0 } | if uefi { 0x20 } else { 0 }
}

/// Sets the next boot device as Ironic does: parameter 3 = 0x08 (keep the
/// flags past the BMC's 60 s timeout; best effort), then parameter 5.
pub async fn set_boot_device(
    s: &mut Session,
    device: &str,
    persistent: bool,
    uefi: bool,
) -> Result<(), Error> {
    let selector = device_selector(device).ok_or_else(|| Error::Session {
        bmc: s.bmc().to_string(),
        why: format!("unknown boot device {device}"),
    })?;
    match s
        .command(
            0x00,
            0x08,
            &[0x03, 0x08],
            "Set System Boot Options (param 3)",
        )
        .await
    {
        Ok(_) => {}
        Err(e) if matches!(e.completion_code(), Some(0xc1 | 0xcc | 0x80)) => {
            tracing::debug!(bmc = %s.bmc(), error = %e, "BMC ignores boot-flag timeout parameter");
        }
        Err(e) => return Err(e),
    }
    let data = [0x05, boot_flags(persistent, uefi), selector, 0, 0, 0];
    s.command(0x00, 0x08, &data, "Set System Boot Options (param 5)")
        .await
        .map(|_| ())
}

/// Reads parameter 5: (device, persistent). The flags are vendor-dependent
/// (ipmi_sim never echoes them), so only the device is relied on.
pub async fn get_boot_device(s: &mut Session) -> Result<(Option<String>, Option<bool>), Error> {
    let data = s
        .command(0x00, 0x09, &[0x05, 0x00, 0x00], "Get System Boot Options")
        .await?;
    // version, parameter, data1..5
    let (Some(d1), Some(d2)) = (data.get(2), data.get(3)) else {
        return Err(Error::Session {
            bmc: s.bmc().to_string(),
            why: "short boot options answer".into(),
        });
    };
    let device = selector_device(*d2).map(str::to_string);
    let persistent = (d1 & 0x80 != 0).then_some(d1 & 0x40 != 0);
    Ok((device, persistent))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_plans() {
        use Control::*;
        use PowerState as P;
        let cases = [
            (P::On, true, Some(vec![])),
            (P::On, false, Some(vec![(PowerUp, true)])),
            (P::Off, false, Some(vec![])),
            (P::Off, true, Some(vec![(PowerDown, false)])),
            (P::SoftOff, true, Some(vec![(SoftShutdown, false)])),
            (P::SoftOff, false, Some(vec![])),
            (
                P::Rebooting,
                true,
                Some(vec![(PowerDown, false), (PowerUp, true)]),
            ),
            (P::Rebooting, false, Some(vec![(PowerUp, true)])),
            (
                P::SoftRebooting,
                true,
                Some(vec![(SoftShutdown, false), (PowerUp, true)]),
            ),
            (P::Error, true, None),
        ];
        for (target, on, want) in cases {
            assert_eq!(power_plan(target, on), want, "{target} from on={on}");
        }
    }

    #[test]
    fn boot_bytes_match_ironic() {
        // Ironic: 0xE0 valid+persistent+EFI, 0xA0 once EFI, 0xC0 persistent legacy, 0x80 once legacy.
        assert_eq!(boot_flags(true, true), 0xe0);
        assert_eq!(boot_flags(false, true), 0xa0);
        assert_eq!(boot_flags(true, false), 0xc0);
        assert_eq!(boot_flags(false, false), 0x80);
        for d in ["pxe", "disk", "safe", "cdrom", "bios"] {
            assert_eq!(selector_device(device_selector(d).unwrap()), Some(d));
        }
        assert_eq!(device_selector("floppy"), None);
        assert_eq!(selector_device(0x00), None, "no override");
    }
}
