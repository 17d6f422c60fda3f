//! Bootable ISOs for virtual media: the deploy kernel and ramdisk with the
//! kernel command line they need, bootable by BIOS (ISOLINUX) and UEFI
//! (GRUB), as Ironic's `redfish-virtual-media` builds them.
//!
//! Layout:
//! - `/vmlinuz`, `/initrd`: the kernel and ramdisk, streamed from disk.
//! - `/isolinux/isolinux.bin` (the El Torito BIOS entry, with its boot info
//!   table), `ldlinux.c32` and `isolinux.cfg`.
//! - `/boot/efi.img`: a FAT16 EFI system partition with
//!   `EFI/BOOT/BOOTX64.EFI`, Debian's GRUB for CDs (`gcdx64.efi`), the El
//!   Torito UEFI entry. That GRUB finds the ISO by its `/.disk/info` and
//!   reads `/boot/grub/grub.cfg` from it, so the kernel and ramdisk are on
//!   the ISO once, not copied into the partition.
//!
//! The loaders come from Debian packages on the appliance (`isolinux`,
//! `syslinux-common`, `grub-efi-amd64-signed`), paths in `[vmedia]`.

use std::path::{Path, PathBuf};

use super::iso9660::{self, Data, ElTorito};

/// Where the boot loaders are (`[vmedia]`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Loaders {
    /// ISOLINUX's El Torito image (Debian `isolinux`).
    pub isolinux_bin: PathBuf,
    /// ISOLINUX's core module (Debian `syslinux-common`).
    pub ldlinux_c32: PathBuf,
    /// A UEFI GRUB that finds its CD by `/.disk/info` (Debian
    /// `grub-efi-amd64-signed`'s `gcdx64.efi.signed`).
    pub efi_loader: PathBuf,
}

impl Default for Loaders {
    fn default() -> Self {
        Loaders {
            isolinux_bin: "/usr/lib/ISOLINUX/isolinux.bin".into(),
            ldlinux_c32: "/usr/lib/syslinux/modules/bios/ldlinux.c32".into(),
            efi_loader: "/usr/lib/grub/x86_64-efi-signed/gcdx64.efi.signed".into(),
        }
    }
}

/// Largest EFI loader put in the partition.
const MAX_EFI_LOADER: u64 = 32 << 20;

impl Loaders {
    fn check(&self) -> Result<(), String> {
        for (path, package, key) in [
            (&self.isolinux_bin, "isolinux", "isolinux_bin"),
            (&self.ldlinux_c32, "syslinux-common", "ldlinux_c32"),
            (&self.efi_loader, "grub-efi-amd64-signed", "efi_loader"),
        ] {
            if !path.is_file() {
                return Err(format!(
                    "the boot loader {} is missing: apt-get install {package}, or set [vmedia] {key}",
                    path.display()
                ));
            }
        }
        Ok(())
    }
}

/// Checks a kernel command line for what would break the loaders'
/// configuration files (quotes, newlines, GRUB's `$` and braces).
pub fn check_cmdline(cmdline: &str) -> Result<(), String> {
    match cmdline
        .chars()
        .find(|c| c.is_control() || "\"'$\\{};`".contains(*c))
    {
        Some(c) => Err(format!(
            "the kernel command line may not contain {c:?} (it goes into isolinux.cfg and grub.cfg)"
        )),
        None if cmdline.len() > 2048 => {
            Err("the kernel command line is longer than 2048 bytes".into())
        }
        None => Ok(()),
    }
}

/// Writes a BIOS + UEFI bootable ISO booting `kernel` and `initrd` with
/// `cmdline` to `out` (through a temporary file, renamed when complete).
/// Returns its size.
pub fn build(
    out: &Path,
    kernel: &Path,
    initrd: &Path,
    cmdline: &str,
    loaders: &Loaders,
    now: jiff::Timestamp,
) -> Result<u64, String> {
    check_cmdline(cmdline)?;
    loaders.check()?;
    let loader_len = std::fs::metadata(&loaders.efi_loader)
        .map_err(|e| format!("cannot read {}: {e}", loaders.efi_loader.display()))?
        .len();
    if loader_len > MAX_EFI_LOADER {
        return Err(format!(
            "the EFI loader {} is larger than 32 MiB",
            loaders.efi_loader.display()
        ));
    }
    let efi = std::fs::read(&loaders.efi_loader)
        .map_err(|e| format!("cannot read {}: {e}", loaders.efi_loader.display()))?;
    let esp = super::fat::build("RACKBOOT", vec![("EFI/BOOT/BOOTX64.EFI".into(), efi)])?;
    let isolinux_cfg = format!(
        "default deploy\nprompt 0\ntimeout 0\nlabel deploy\n  kernel /vmlinuz\n  append initrd=/initrd {cmdline}\n"
    );
    let grub_cfg = format!(
        "set default=0\nset timeout=0\nmenuentry \"rackboot deploy\" {{\n  linux /vmlinuz {cmdline}\n  initrd /initrd\n}}\n"
    );
    let files = vec![
        ("vmlinuz".to_string(), Data::File(kernel.to_path_buf())),
        ("initrd".to_string(), Data::File(initrd.to_path_buf())),
        (
            "isolinux/isolinux.bin".to_string(),
            Data::File(loaders.isolinux_bin.clone()),
        ),
        (
            "isolinux/ldlinux.c32".to_string(),
            Data::File(loaders.ldlinux_c32.clone()),
        ),
        (
            "isolinux/isolinux.cfg".to_string(),
            Data::Bytes(isolinux_cfg.into_bytes()),
        ),
        ("boot/efi.img".to_string(), Data::Bytes(esp)),
        (
            "boot/grub/grub.cfg".to_string(),
            Data::Bytes(grub_cfg.into_bytes()),
        ),
        (
            ".disk/info".to_string(),
            Data::Bytes(b"rackboot deploy ISO\n".to_vec()),
        ),
    ];
    let boot = ElTorito {
        bios: Some("isolinux/isolinux.bin".into()),
        efi: Some("boot/efi.img".into()),
    };
    let tmp = out.with_extension("iso.part");
    let result = (|| {
        let f = std::fs::File::create(&tmp)
            .map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
        let size = iso9660::write_image(&mut w, "RACKBOOT_DEPLOY", files, Some(&boot), now)?;
        let f = w
            .into_inner()
            .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
        f.sync_all()
            .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, out)
            .map_err(|e| format!("cannot rename {} to {}: {e}", tmp.display(), out.display()))?;
        Ok(size)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_that_would_break_the_configs_are_refused() {
        assert!(check_cmdline(
            "ipa-api-url=http://10.0.0.1:8080 BOOTIF=01-52-54-00-aa-bb-cc console=ttyS0"
        )
        .is_ok());
        for bad in ["a\nb", "x=\"y\"", "a;reboot", "$(x)", "{ }", "a'b"] {
            assert!(check_cmdline(bad).is_err(), "{bad:?}");
        }
        assert!(check_cmdline(&"a".repeat(3000)).is_err());
    }

    #[test]
    fn missing_loaders_say_which_package() {
        let dir = tempfile::tempdir().unwrap();
        let k = dir.path().join("k");
        std::fs::write(&k, b"kernel").unwrap();
        let loaders = Loaders {
            efi_loader: dir.path().join("nope.efi"),
            ..Loaders::default()
        };
        let e = build(
            &dir.path().join("x.iso"),
            &k,
            &k,
            "a=b",
            &loaders,
            jiff::Timestamp::now(),
        )
        .unwrap_err();
        assert!(
            e.contains("grub-efi-amd64-signed") || e.contains("isolinux"),
            "{e}"
        );
        assert!(!dir.path().join("x.iso").exists());
    }

    /// The boot records are where firmware looks: the El Torito descriptor
    /// at sector 17, a catalog with a BIOS entry for isolinux.bin (patched
    /// with its boot info table) and an EFI section for the FAT image;
    /// isoinfo (genisoimage), a reader nobody here wrote, agrees.
    #[test]
    fn el_torito_entries_point_at_the_loaders() {
        let loaders = Loaders::default();
        if let Err(e) = loaders.check() {
            panic!("{e} (scripts/install-deps.sh installs isolinux, syslinux-common and grub-efi-amd64-signed)");
        }
        let dir = tempfile::tempdir().unwrap();
        let k = dir.path().join("k");
        std::fs::write(&k, vec![7u8; 5000]).unwrap();
        let out = dir.path().join("boot.iso");
        let size = build(
            &out,
            &k,
            &k,
            "console=ttyS0",
            &loaders,
            "2026-12-08T00:00:00Z".parse().unwrap(),
        )
        .unwrap();
        let iso = std::fs::read(&out).unwrap();
        assert_eq!(iso.len() as u64, size);
        let s = |n: usize| &iso[n * 2048..(n + 1) * 2048];
        assert_eq!(&s(16)[..6], b"\x01CD001");
        assert_eq!(&s(17)[..31], b"\x00CD001\x01EL TORITO SPECIFICATION\x00");
        assert_eq!(&s(18)[..6], b"\xffCD001");
        let cat = u32::from_le_bytes(s(17)[71..75].try_into().unwrap()) as usize;
        let c = s(cat);
        assert_eq!((c[0], c[1], c[30], c[31]), (1, 0, 0x55, 0xAA));
        let sum = c[..32].chunks(2).fold(0u16, |a, w| {
            a.wrapping_add(u16::from_le_bytes([w[0], w[1]]))
        });
        assert_eq!(sum, 0, "validation entry checksum");
        assert_eq!((c[32], c[33]), (0x88, 0), "bootable, no emulation");
        assert_eq!(u16::from_le_bytes([c[38], c[39]]), 4);
        let bios_lba = u32::from_le_bytes(c[40..44].try_into().unwrap()) as usize;
        let isolinux = std::fs::read(&loaders.isolinux_bin).unwrap();
        let image = &iso[bios_lba * 2048..bios_lba * 2048 + isolinux.len()];
        assert_eq!(&image[..8], &isolinux[..8]);
        assert_eq!(&image[64..], &isolinux[64..]);
        assert_eq!(u32::from_le_bytes(image[8..12].try_into().unwrap()), 16);
        assert_eq!(
            u32::from_le_bytes(image[12..16].try_into().unwrap()) as usize,
            bios_lba
        );
        assert_eq!(
            u32::from_le_bytes(image[16..20].try_into().unwrap()) as usize,
            isolinux.len()
        );
        assert_eq!((c[64], c[65]), (0x91, 0xEF), "final section: UEFI");
        assert_eq!((c[96], c[97]), (0x88, 0));
        let efi_lba = u32::from_le_bytes(c[104..108].try_into().unwrap()) as usize;
        assert_eq!(&iso[efi_lba * 2048 + 54..efi_lba * 2048 + 62], b"FAT16   ");
        let out_s = out.to_str().unwrap();
        let run = |args: &[&str]| {
            let o = std::process::Command::new("isoinfo")
                .args(args)
                .output()
                .expect("isoinfo (genisoimage)");
            String::from_utf8_lossy(&o.stdout).into_owned()
        };
        let d = run(&["-d", "-i", out_s]);
        assert!(d.contains("El Torito VD version 1 found"), "{d}");
        assert!(
            d.contains("Bootoff") && d.contains(&format!("{bios_lba:X}")),
            "{d}"
        );
        let cfg = run(&["-R", "-i", out_s, "-x", "/boot/grub/grub.cfg"]);
        assert!(cfg.contains("linux /vmlinuz console=ttyS0"), "{cfg}");
        assert_eq!(run(&["-R", "-i", out_s, "-x", "/vmlinuz"]).len(), 5000);
    }
}
