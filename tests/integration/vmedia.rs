//! Virtual media: the ISO the `redfish-virtual-media` boot interface builds
//! boots under both firmware QEMU has — SeaBIOS (El Torito BIOS entry,
//! ISOLINUX) and OVMF (El Torito UEFI entry, Debian's GRUB for CDs) — with
//! no network at all, and the kernel gets the command line it was given.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

fn boot_iso(iso: &Path, uefi: bool, dir: &Path) -> String {
    let serial = dir.join(if uefi { "uefi.serial" } else { "bios.serial" });
    let mut args: Vec<String> = [
        "-accel",
        "tcg",
        "-m",
        "512",
        "-nographic",
        "-nodefaults",
        "-nic",
        "none",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(["-serial".into(), format!("file:{}", serial.display())]);
    args.extend(["-cdrom".into(), iso.display().to_string()]);
    if uefi {
        let vars = dir.join("vars.fd");
        std::fs::copy("/usr/share/OVMF/OVMF_VARS_4M.fd", &vars)
            .expect("OVMF is needed (scripts/install-deps.sh installs ovmf)");
        args.extend([
            "-drive".into(),
            "if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd".into(),
            "-drive".into(),
            format!("if=pflash,format=raw,file={}", vars.display()),
        ]);
    } else {
        args.extend(["-boot".into(), "d".into()]);
    }
    let mut vm = Command::new("qemu-system-x86_64")
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("qemu-system-x86_64 (scripts/install-deps.sh installs qemu-system-x86)");
    let deadline = Instant::now() + Duration::from_secs(180);
    let out = loop {
        let text =
            String::from_utf8_lossy(&std::fs::read(&serial).unwrap_or_default()).into_owned();
        if text.contains("RACKBOOT-RAMDISK-UP") {
            break text;
        }
        if Instant::now() > deadline {
            let _ = vm.kill();
            let _ = vm.wait();
            panic!(
                "the ISO did not boot under {} within 180 s; console:\n{text}",
                if uefi { "OVMF" } else { "SeaBIOS" }
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let _ = vm.kill();
    let _ = vm.wait();
    out
}

#[test]
fn the_deploy_iso_boots_under_bios_and_uefi() {
    let images = repo().join("images/out");
    let dir = tempfile::tempdir().unwrap();
    let iso = dir.path().join("deploy.iso");
    let out = Command::new(env!("CARGO_BIN_EXE_rackboot"))
        .args(["iso", "--kernel"])
        .arg(images.join("vmlinuz"))
        .arg("--initrd")
        .arg(images.join("initrd.cpio.gz"))
        .args([
            "--append",
            "console=ttyS0 rackboot.marker=vmedia-iso",
            "--out",
        ])
        .arg(&iso)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "rackboot iso: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for uefi in [false, true] {
        let console = boot_iso(&iso, uefi, dir.path());
        let line = console
            .lines()
            .find(|l| l.contains("Command line:"))
            .unwrap_or_else(|| panic!("no kernel command line on the console:\n{console}"));
        assert!(
            line.contains("console=ttyS0 rackboot.marker=vmedia-iso"),
            "uefi={uefi}: {line}"
        );
    }
}
