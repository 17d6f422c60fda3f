//! `rackboot iso`: builds the BIOS + UEFI bootable ISO the
//! `redfish-virtual-media` boot interface builds per node, for operators
//! who want a `deploy_iso` of their own (or to check the loaders).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::images::bootiso::{self, Loaders};

#[derive(Args)]
pub struct IsoArgs {
    /// The kernel.
    #[arg(long)]
    kernel: PathBuf,
    /// The ramdisk (initramfs).
    #[arg(long)]
    initrd: PathBuf,
    /// The kernel command line.
    #[arg(long, default_value = "")]
    append: String,
    /// Where to write the ISO.
    #[arg(long)]
    out: PathBuf,
    /// ISOLINUX's isolinux.bin (default: Debian's).
    #[arg(long)]
    isolinux_bin: Option<PathBuf>,
    /// ISOLINUX's ldlinux.c32 (default: Debian's).
    #[arg(long)]
    ldlinux_c32: Option<PathBuf>,
    /// The UEFI GRUB for CDs (default: Debian's gcdx64.efi.signed).
    #[arg(long)]
    efi_loader: Option<PathBuf>,
}

pub fn run(a: IsoArgs) -> ExitCode {
    let d = Loaders::default();
    let loaders = Loaders {
        isolinux_bin: a.isolinux_bin.unwrap_or(d.isolinux_bin),
        ldlinux_c32: a.ldlinux_c32.unwrap_or(d.ldlinux_c32),
        efi_loader: a.efi_loader.unwrap_or(d.efi_loader),
    };
    for (what, p) in [("--kernel", &a.kernel), ("--initrd", &a.initrd)] {
        if !p.is_file() {
            eprintln!("{what} {}: no such file", p.display());
            return ExitCode::from(2);
        }
    }
    match bootiso::build(
        &a.out,
        &a.kernel,
        &a.initrd,
        &a.append,
        &loaders,
        jiff::Timestamp::now(),
    ) {
        Ok(size) => {
            println!("{} ({size} bytes)", a.out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
