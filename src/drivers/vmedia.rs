//! The `redfish-virtual-media` boot interface: the node boots an ISO its
//! BMC presents as a CD, so no DHCP, TFTP or PXE is needed.
//!
//! The appliance builds the ISO per node (`images::bootiso`: BIOS and UEFI
//! El Torito) with the kernel, ramdisk and the kernel line they need —
//! `ipa-api-url`, `BOOTIF`, and a static address from the node's
//! `network_data` for DHCP-less boot — or uses `driver_info/deploy_iso` /
//! `instance_info/boot_iso` as given. The boot HTTP server serves it at
//! `/vmedia/<file>` (with ranges: BMCs read ISOs in many partial requests).
//! Booting it: power off (as Ironic does before changing media), eject,
//! `InsertMedia`, boot device `cdrom` (once for the ramdisk, persistent for
//! an instance), power on. Clean-up ejects and deletes the ISO.

use std::path::PathBuf;

use serde_json::{Map, Value};

use super::pxe::{check_image_ref, stage};
use super::{Boot, BoxFuture, Bundle, Error, Result, Task};

type BootFuture<'a> = BoxFuture<'a, Result<String>>;
use crate::images::bootiso;
use crate::model::{PowerState, Severity};
use crate::redact::redact;

/// driver_info keys of the virtual media boot interface (with `pxe`'s
/// deploy_kernel and deploy_ramdisk).
pub const PROPERTIES: &[(&str, &str)] = &[
    ("deploy_iso", "URL (http, https, file) or absolute path of a bootable ISO of the deploy ramdisk, used as given instead of the ISO the appliance builds from deploy_kernel and deploy_ramdisk (redfish-virtual-media). Optional."),
    ("kernel_append_params", "Extra kernel parameters of the ISOs built for virtual media. Optional."),
];

/// Which ISO of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// The deploy ramdisk (deploy, cleaning, inspection).
    Deploy,
    /// The instance of a `ramdisk` deploy.
    Instance,
}

impl Which {
    fn name(self) -> &'static str {
        match self {
            Which::Deploy => "deploy",
            Which::Instance => "instance",
        }
    }
}

/// The ISO's file name under the vmedia directory (and URL path).
pub fn iso_file(node: uuid::Uuid, which: Which) -> String {
    format!("{node}-{}.iso", which.name())
}

/// A static IPv4 configuration from OpenStack `network_data`: the kernel's
/// `ip=` (address, gateway, netmask, no autoconfiguration, DNS) and the MAC
/// of the link it is on. None when the node has no static IPv4 network.
pub fn static_ip(network_data: &Map<String, Value>) -> Option<(String, Option<String>)> {
    let networks = network_data.get("networks")?.as_array()?;
    let net = networks.iter().find(|n| {
        n.get("type").and_then(Value::as_str) == Some("ipv4")
            && n.get("ip_address").and_then(Value::as_str).is_some()
    })?;
    let addr = net.get("ip_address")?.as_str()?;
    let (ip, mask) = match addr.split_once('/') {
        Some((ip, prefix)) => {
            let p: u32 = prefix.parse().ok().filter(|p| *p <= 32)?;
            let m = if p == 0 { 0 } else { u32::MAX << (32 - p) };
            (ip.to_string(), std::net::Ipv4Addr::from(m).to_string())
        }
        None => (addr.to_string(), net.get("netmask")?.as_str()?.to_string()),
    };
    ip.parse::<std::net::Ipv4Addr>().ok()?;
    mask.parse::<std::net::Ipv4Addr>().ok()?;
    let gateway = net
        .get("routes")
        .and_then(Value::as_array)
        .and_then(|r| {
            r.iter()
                .find(|r| r.get("network").and_then(Value::as_str) == Some("0.0.0.0"))
                .or_else(|| r.first())
        })
        .and_then(|r| r.get("gateway"))
        .and_then(Value::as_str)
        .filter(|g| g.parse::<std::net::Ipv4Addr>().is_ok())
        .unwrap_or("");
    let dns: Vec<&str> = network_data
        .get("services")
        .and_then(Value::as_array)
        .map(|s| {
            s.iter()
                .filter(|s| s.get("type").and_then(Value::as_str) == Some("dns"))
                .filter_map(|s| s.get("address").and_then(Value::as_str))
                .filter(|a| a.parse::<std::net::Ipv4Addr>().is_ok())
                .take(2)
                .collect()
        })
        .unwrap_or_default();
    let mut line = format!("ip={ip}::{gateway}:{mask}:::off");
    for d in dns {
        line.push(':');
        line.push_str(d);
    }
    let link = net.get("link").and_then(Value::as_str);
    let mac = network_data
        .get("links")
        .and_then(Value::as_array)
        .and_then(|links| {
            links
                .iter()
                .find(|l| link.is_some() && l.get("id").and_then(Value::as_str) == link)
        })
        .and_then(|l| l.get("ethernet_mac_address"))
        .and_then(Value::as_str)
        .and_then(|m| m.parse::<crate::model::Mac>().ok())
        .map(|m| m.to_string());
    Some((line, mac))
}

/// The kernel command line of a node's ISO: `BOOTIF` (the static link's
/// MAC, else the first PXE port's, else the first port's), `ipa-api-url`,
/// `boot_method=vmedia`, the static address, the inspection call-back when
/// inspecting, `root=/dev/ram0` for an instance ramdisk, then the node's
/// `kernel_append_params` / `ramdisk_kernel_arguments`.
pub fn cmdline(task: &Task, which: Which, inspect: bool) -> Result<String> {
    let v = &task.settings.vmedia;
    let Some(url) = v.boot_url.get() else {
        return Err(Error::Failed(
            "the boot HTTP server is off ([http] listen): virtual media ISOs are served from it and the ramdisk calls back there".into(),
        ));
    };
    let node = &task.node;
    let stat = static_ip(&node.network_data);
    let mac = stat.as_ref().and_then(|(_, m)| m.clone()).or_else(|| {
        task.ports
            .iter()
            .find(|p| p.pxe_enabled)
            .or(task.ports.first())
            .map(|p| p.address.to_string())
    });
    let mut parts: Vec<String> = Vec::new();
    if which == Which::Instance {
        parts.push("root=/dev/ram0".into());
    }
    if let Some(m) = mac {
        parts.push(format!("BOOTIF=01-{}", m.to_lowercase().replace(':', "-")));
    }
    parts.push(format!("ipa-api-url={url}"));
    parts.push("boot_method=vmedia".into());
    if let Some((ip, _)) = stat {
        parts.push(ip);
    }
    if inspect {
        parts.push(format!(
            "ipa-inspection-callback-url={url}/v1/continue_inspection"
        ));
        if !v.inspection_params.trim().is_empty() {
            parts.push(v.inspection_params.trim().to_string());
        }
    }
    let text = |m: &Map<String, Value>, k: &str| {
        m.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.trim().to_string())
    };
    if let Some(a) = text(&node.instance_info, "kernel_append_params")
        .or_else(|| text(&node.driver_info, "kernel_append_params"))
    {
        parts.push(a);
    }
    if which == Which::Instance {
        if let Some(a) = text(&node.instance_info, "ramdisk_kernel_arguments") {
            parts.push(a);
        }
    }
    let line = parts.join(" ");
    bootiso::check_cmdline(&line).map_err(Error::InvalidParameter)?;
    Ok(line)
}

fn vmedia_dir(task: &Task) -> Result<PathBuf> {
    task.settings.vmedia.dir.clone().ok_or_else(|| {
        Error::Failed("virtual media has no directory for its ISOs (the data dir)".into())
    })
}

fn text_of(m: &Map<String, Value>, k: &str) -> Option<String> {
    m.get(k)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Makes the node's ISO (or links the given one) and returns its URL.
async fn make_iso(task: &Task, which: Which, inspect: bool) -> Result<String> {
    let dir = vmedia_dir(task)?;
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| Error::Failed(format!("cannot create {}: {e}", dir.display())))?;
    let file = iso_file(task.node.uuid, which);
    let out = dir.join(&file);
    let (given_key, kernel_key, ramdisk_key, info) = match which {
        Which::Deploy => (
            "deploy_iso",
            "deploy_kernel",
            "deploy_ramdisk",
            &task.node.driver_info,
        ),
        Which::Instance => ("boot_iso", "kernel", "ramdisk", &task.node.instance_info),
    };
    let place = if which == Which::Deploy {
        "driver_info"
    } else {
        "instance_info"
    };
    let url = task
        .settings
        .vmedia
        .boot_url
        .get()
        .cloned()
        .ok_or_else(|| Error::Failed("the boot HTTP server is off ([http] listen): virtual media ISOs are served from it".into()))?;
    let _ = tokio::fs::remove_file(&out).await;
    if let Some(iso) = text_of(info, given_key) {
        let staged = stage(task, &format!("{place}/{given_key}"), &iso, None)
            .await?
            .ok_or_else(|| Error::Failed("virtual media needs the image cache".into()))?;
        let target = staged.path.clone();
        tokio::fs::symlink(&target, &out).await.map_err(|e| {
            Error::Failed(format!(
                "cannot link {} to {}: {e}",
                out.display(),
                target.display()
            ))
        })?;
        task.record(
            Severity::Info,
            "vmedia",
            format!("{place}/{given_key} {} is the ISO, as given", redact(&iso)),
        );
        return Ok(format!("{url}/vmedia/{file}"));
    }
    let (Some(k), Some(r)) = (text_of(info, kernel_key), text_of(info, ramdisk_key)) else {
        return Err(Error::MissingParameter(format!(
            "{place}/{kernel_key} and {place}/{ramdisk_key} (or {place}/{given_key}) are needed to boot {} from virtual media",
            if which == Which::Deploy { "the deploy ramdisk" } else { "the instance" }
        )));
    };
    let line = cmdline(task, which, inspect)?;
    let stage_one = |key: &'static str, r: String| async move {
        stage(task, &format!("{place}/{key}"), &r, None)
            .await?
            .ok_or_else(|| Error::Failed("virtual media needs the image cache".into()))
    };
    let kernel = stage_one(kernel_key, k).await?;
    let ramdisk = stage_one(ramdisk_key, r).await?;
    let loaders = task.settings.vmedia.loaders.clone();
    let (kp, rp, o, l2) = (
        kernel.path.clone(),
        ramdisk.path.clone(),
        out.clone(),
        line.clone(),
    );
    let size = tokio::task::spawn_blocking(move || {
        bootiso::build(&o, &kp, &rp, &l2, &loaders, jiff::Timestamp::now())
    })
    .await
    .map_err(|e| Error::Failed(format!("building the ISO stopped: {e}")))?
    .map_err(|e| Error::Failed(format!("cannot build the {} ISO: {e}", which.name())))?;
    task.record(
        Severity::Info,
        "vmedia",
        format!(
            "{} ISO built ({size} bytes, BIOS and UEFI) with kernel line: {}",
            which.name(),
            redact(&line)
        ),
    );
    Ok(format!("{url}/vmedia/{file}"))
}

/// Powers the node off (as Ironic does before changing media), inserts
/// `url` as its CD, sets the boot device to cdrom and powers it on.
async fn boot_from_media(
    task: &mut Task,
    bundle: &Bundle,
    url: &str,
    persistent: bool,
) -> Result<String> {
    let was_on = bundle.power.get_power_state(task).await? == PowerState::On;
    if was_on {
        bundle.power.set_power_state(task, PowerState::Off).await?;
        task.node.power_state = Some(PowerState::Off);
    }
    let inserted = bundle
        .management
        .attach_virtual_media(task, "cdrom", url)
        .await?;
    task.record(Severity::Info, "vmedia", inserted);
    bundle
        .management
        .set_boot_device(task, "cdrom", persistent)
        .await?;
    bundle.power.set_power_state(task, PowerState::On).await?;
    task.node.power_state = Some(PowerState::On);
    Ok(format!(
        "virtual media {url} inserted, boot device cdrom{}, {}",
        if persistent { " (persistent)" } else { "" },
        if was_on {
            "powered off and on"
        } else {
            "powered on"
        }
    ))
}

/// Ejects the CD (through `management`, when given) and deletes the
/// node's ISO of `which`.
async fn eject_and_forget(
    task: &mut Task,
    management: Option<&dyn super::Management>,
    which: Which,
) -> Result<()> {
    if let Some(m) = management {
        let done = m.detach_virtual_media(task, &["cdrom".to_string()]).await?;
        task.record(Severity::Info, "vmedia", done);
    }
    if let Ok(dir) = vmedia_dir(task) {
        let _ = tokio::fs::remove_file(dir.join(iso_file(task.node.uuid, which))).await;
    }
    Ok(())
}

/// The `redfish-virtual-media` boot interface.
pub struct VirtualMediaBoot {
    /// The management interface that presents media, for clean-ups (which
    /// get no bundle).
    pub management: std::sync::Arc<dyn super::Management>,
}

impl Boot for VirtualMediaBoot {
    fn validate<'a>(&'a self, task: &'a Task) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let node = &task.node;
            let has = |m: &Map<String, Value>, k: &str| m.get(k).is_some_and(|v| !v.is_null());
            let given = has(&node.driver_info, "deploy_iso");
            let pair =
                has(&node.driver_info, "deploy_kernel") && has(&node.driver_info, "deploy_ramdisk");
            if !(given || pair) {
                return Err(Error::MissingParameter(format!(
                    "virtual media boot needs driver_info/deploy_kernel and deploy_ramdisk, or driver_info/deploy_iso. \
                     Set them with: baremetal node set {} --driver-info deploy_kernel=<URL> --driver-info deploy_ramdisk=<URL>",
                    node.ident()
                )));
            }
            for key in ["deploy_iso", "deploy_kernel", "deploy_ramdisk"] {
                if let Some(v) = node.driver_info.get(key).filter(|v| !v.is_null()) {
                    check_image_ref(&format!("driver_info/{key}"), v)?;
                }
            }
            for key in ["boot_iso", "kernel", "ramdisk"] {
                if let Some(v) = node.instance_info.get(key).filter(|v| !v.is_null()) {
                    check_image_ref(&format!("instance_info/{key}"), v)?;
                }
            }
            cmdline(task, Which::Deploy, false)?;
            Ok(())
        })
    }

    fn prepare_ramdisk<'a>(&'a self, task: &'a mut Task, bundle: &'a Bundle) -> BootFuture<'a> {
        Box::pin(async move {
            let inspect = matches!(
                task.node.provision_state,
                crate::model::State::Inspecting | crate::model::State::InspectWait
            );
            let url = make_iso(task, Which::Deploy, inspect).await?;
            boot_from_media(task, bundle, &url, false).await
        })
    }

    /// Ejects the deploy ISO and deletes it (a BMC call; no power action).
    fn clean_up_ramdisk<'a>(&'a self, task: &'a mut Task) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            eject_and_forget(task, Some(self.management.as_ref()), Which::Deploy).await
        })
    }

    fn prepare_instance<'a>(&'a self, task: &'a mut Task) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            super::pxe::record_boot_decision(task, "virtual media and boot device left unchanged");
            Ok(())
        })
    }

    fn boot_instance<'a>(&'a self, task: &'a mut Task, bundle: &'a Bundle) -> BootFuture<'a> {
        Box::pin(async move {
            let url = make_iso(task, Which::Instance, false).await?;
            boot_from_media(task, bundle, &url, true).await
        })
    }

    /// Forgets the boot decision, ejects the instance ISO and deletes it.
    fn clean_up_instance<'a>(&'a self, task: &'a mut Task) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            task.node.set_boot_decision(None);
            let dir = vmedia_dir(task).ok();
            let had = dir
                .map(|d| d.join(iso_file(task.node.uuid, Which::Instance)))
                .is_some_and(|p| p.symlink_metadata().is_ok());
            let m = had.then_some(self.management.as_ref());
            eject_and_forget(task, m, Which::Instance).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn static_addresses_from_network_data() {
        let nd = |v: Value| v.as_object().unwrap().clone();
        let full = nd(json!({
            "links": [{"id": "port0", "type": "phy", "ethernet_mac_address": "52:54:00:AA:00:01"}],
            "networks": [{"id": "n0", "type": "ipv4", "link": "port0", "ip_address": "10.9.0.5",
                          "netmask": "255.255.255.0",
                          "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "10.9.0.1"}]}],
            "services": [{"type": "dns", "address": "10.9.0.2"}]
        }));
        assert_eq!(
            static_ip(&full),
            Some((
                "ip=10.9.0.5::10.9.0.1:255.255.255.0:::off:10.9.0.2".to_string(),
                Some("52:54:00:aa:00:01".to_string())
            ))
        );
        let cidr = nd(json!({"networks": [{"type": "ipv4", "ip_address": "192.0.2.7/26"}]}));
        assert_eq!(
            static_ip(&cidr),
            Some(("ip=192.0.2.7:::255.255.255.192:::off".to_string(), None))
        );
        for none in [
            json!({}),
            json!({"networks": [{"type": "ipv4_dhcp", "link": "p"}]}),
            json!({"networks": [{"type": "ipv4", "ip_address": "not-an-ip", "netmask": "255.0.0.0"}]}),
            json!({"networks": [{"type": "ipv4", "ip_address": "10.0.0.1"}]}),
            json!({"networks": [{"type": "ipv4", "ip_address": "10.0.0.1/40"}]}),
        ] {
            assert_eq!(static_ip(&nd(none.clone())), None, "{none}");
        }
    }
}
