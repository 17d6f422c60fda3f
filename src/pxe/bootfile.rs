//! What kind of network-boot client sent a DHCP message, and what boot file
//! it should be offered. Pure: (option 93 arch, option 77/175 iPXE marks,
//! option 60 PXEClient/HTTPClient) → the answer, tested as a table.
//! Rules and sources: shared/reference/pxe-protocol.md §1, §5, §6, §9.

use super::dhcp::wire::{opt, Message};

/// The client, as far as DHCP tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// What option 60 says it is.
    pub class: Class,
    /// Every architecture in option 93 (a client may list several).
    pub archs: Vec<u16>,
    /// iPXE: option 77 says `iPXE` (raw or RFC 3004 counted) or option 175 is present.
    pub ipxe: bool,
    /// iPXE feature tags from option 175 (None when 175 is absent).
    pub ipxe_features: Option<Vec<u8>>,
    /// Option 97 when well-formed (type 0 + 16 bytes), to be echoed.
    pub uuid: Option<Vec<u8>>,
}

/// Option 60's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// `PXEClient…`: a PXE ROM or iPXE.
    Pxe,
    /// `HTTPClient…`: UEFI HTTP boot.
    Http,
    /// Anything else (an OS DHCP client such as udhcpc).
    Other,
}

/// iPXE feature tag for HTTP (ipxe: src/include/ipxe/features.h).
const IPXE_FEATURE_HTTP: u8 = 0x13;

impl Client {
    pub fn of(m: &Message) -> Client {
        let class = match m.get(opt::VENDOR_CLASS) {
            Some(v) if v.starts_with(b"PXEClient") => Class::Pxe,
            Some(v) if v.starts_with(b"HTTPClient") => Class::Http,
            _ => Class::Other,
        };
        let archs = m
            .get(opt::CLIENT_ARCH)
            .map(|b| {
                b.chunks_exact(2)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]))
                    .collect()
            })
            .unwrap_or_default();
        let ipxe_features = m.get(opt::IPXE).map(features_of);
        let ipxe = user_class_says_ipxe(m.get(opt::USER_CLASS)) || ipxe_features.is_some();
        let uuid = m
            .get(opt::CLIENT_UUID)
            .filter(|u| u.len() == 17 && u[0] == 0)
            .map(<[u8]>::to_vec);
        Client {
            class,
            archs,
            ipxe,
            ipxe_features,
            uuid,
        }
    }

    /// A client that wants a boot file at all.
    pub fn netboot(&self) -> bool {
        self.class != Class::Other || self.ipxe
    }

    /// The first architecture listed (what the firmware runs as).
    pub fn arch(&self) -> Option<u16> {
        self.archs.first().copied()
    }

    /// A short description for logs and the timeline.
    pub fn describe(&self) -> String {
        let kind = if self.ipxe {
            "iPXE"
        } else {
            match self.class {
                Class::Pxe => "PXE ROM",
                Class::Http => "UEFI HTTP boot",
                Class::Other => "DHCP client",
            }
        };
        match self.arch() {
            Some(a) => format!("{kind}, {}", arch_name(a)),
            None => kind.to_string(),
        }
    }
}

/// Option 77 is `iPXE` either as one raw string or as an RFC 3004 counted
/// string among others.
fn user_class_says_ipxe(v: Option<&[u8]>) -> bool {
    let Some(v) = v else { return false };
    if v == b"iPXE" {
        return true;
    }
    let mut i = 0;
    while i < v.len() {
        let len = v[i] as usize;
        match v.get(i + 1..i + 1 + len) {
            Some(s) if s == b"iPXE" => return true,
            Some(_) => i += 1 + len,
            None => return false,
        }
    }
    false
}

/// Feature tags present (with a non-zero value) in option 175.
fn features_of(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 1 < v.len() {
        let (code, len) = (v[i], v[i + 1] as usize);
        if code == 0 || code == 255 {
            i += 1;
            continue;
        }
        if let Some(val) = v.get(i + 2..i + 2 + len) {
            if val.iter().any(|&b| b != 0) {
                out.push(code);
            }
        }
        i += 2 + len;
    }
    out
}

/// IANA processor architecture names (option 93).
pub fn arch_name(a: u16) -> String {
    match a {
        0 => "x86 BIOS".into(),
        6 => "x86 UEFI".into(),
        7 | 9 => "x64 UEFI".into(),
        10 => "ARM32 UEFI".into(),
        11 => "ARM64 UEFI".into(),
        15 => "x86 UEFI HTTP".into(),
        16 => "x64 UEFI HTTP".into(),
        18 => "ARM32 UEFI HTTP".into(),
        19 => "ARM64 UEFI HTTP".into(),
        other => format!("architecture {other}"),
    }
}

/// Loader file names in the TFTP root / `assets/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaders {
    pub bios: String,
    pub uefi_x64: String,
    pub uefi_arm64: String,
}

impl Default for Loaders {
    fn default() -> Self {
        Loaders {
            bios: "undionly.kpxe".into(),
            uefi_x64: "snponly.efi".into(),
            uefi_arm64: "snp.efi".into(),
        }
    }
}

/// Where the boot file is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootFile {
    /// A file on the TFTP server (the `file` field and option 67).
    Tftp(String),
    /// A URL (iPXE and UEFI HTTP boot).
    Url(String),
}

impl BootFile {
    pub fn as_str(&self) -> &str {
        match self {
            BootFile::Tftp(s) | BootFile::Url(s) => s,
        }
    }
}

/// The boot part of an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootAnswer {
    pub file: BootFile,
    /// Option 60 to send back (`PXEClient` / `HTTPClient`), when needed.
    pub vendor_class: Option<&'static str>,
    /// Option 43 with PXE discovery control 8 (use this file, no discovery).
    pub pxe_skip_discovery: bool,
    /// Option 175.176 = 1 so iPXE does not wait for ProxyDHCP offers.
    pub ipxe_no_proxy_wait: bool,
}

/// Chooses the boot file for a client that should network-boot.
/// `public_url` is the boot HTTP server (no trailing slash). Err says why
/// nothing can be offered.
pub fn choose(c: &Client, loaders: &Loaders, public_url: &str) -> Result<BootAnswer, String> {
    if c.ipxe {
        if let Some(f) = &c.ipxe_features {
            if !f.contains(&IPXE_FEATURE_HTTP) {
                return Err(
                    "this iPXE build has no HTTP support (option 175 lacks feature 0x13), so it cannot fetch the boot script"
                        .into(),
                );
            }
        }
        return Ok(BootAnswer {
            file: BootFile::Url(format!("{public_url}/boot.ipxe")),
            vendor_class: None,
            pxe_skip_discovery: false,
            ipxe_no_proxy_wait: true,
        });
    }
    let arch = c.arch().unwrap_or(0);
    match c.class {
        Class::Http => {
            let loader = match arch {
                15 | 16 => &loaders.uefi_x64,
                19 => &loaders.uefi_arm64,
                other => return Err(format!("no HTTP boot loader for {}", arch_name(other))),
            };
            Ok(BootAnswer {
                file: BootFile::Url(format!("{public_url}/assets/{loader}")),
                vendor_class: Some("HTTPClient"),
                pxe_skip_discovery: false,
                ipxe_no_proxy_wait: false,
            })
        }
        Class::Pxe => {
            let loader = match arch {
                0 => &loaders.bios,
                // 9 is EBC on paper, but x64 firmware sends it (MAAS LP:1768034).
                7 | 9 => &loaders.uefi_x64,
                11 => &loaders.uefi_arm64,
                other => return Err(format!("no PXE loader for {}", arch_name(other))),
            };
            Ok(BootAnswer {
                file: BootFile::Tftp(loader.clone()),
                vendor_class: Some("PXEClient"),
                pxe_skip_discovery: true,
                ipxe_no_proxy_wait: false,
            })
        }
        Class::Other => {
            Err("not a network-boot client (no PXEClient/HTTPClient vendor class, not iPXE)".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pxe::dhcp::wire::Message;

    fn msg(opts: &[(u8, &[u8])]) -> Message {
        let mut b = vec![0u8; 240];
        b[0] = 1;
        b[1] = 1;
        b[2] = 6;
        b[236..240].copy_from_slice(&[99, 130, 83, 99]);
        for (c, v) in opts {
            b.push(*c);
            b.push(v.len() as u8);
            b.extend_from_slice(v);
        }
        b.push(255);
        Message::parse(&b).unwrap()
    }

    const URL: &str = "http://10.77.0.1:8080";

    /// (what, options, Ok((file, option 60, 43.6 = 8, 175.176 = 1)) or Err(reason)).
    type Case<'a> = (
        &'a str,
        Vec<(u8, &'a [u8])>,
        Result<(&'a str, Option<&'a str>, bool, bool), &'a str>,
    );

    #[test]
    fn client_and_boot_file_table() {
        let l = Loaders::default();
        let http_ipxe: &[u8] = &[0x13, 1, 1, 0x15, 1, 1];
        let tftp_only_ipxe: &[u8] = &[0x15, 1, 1, 0x13, 1, 0];
        let cases: Vec<Case> = vec![
            (
                "SeaBIOS iPXE ROM",
                vec![
                    (60, b"PXEClient:Arch:00000:UNDI:002001"),
                    (93, &[0, 0]),
                    (77, b"iPXE"),
                    (175, http_ipxe),
                ],
                Ok(("http://10.77.0.1:8080/boot.ipxe", None, false, true)),
            ),
            (
                "iPXE by 77 only",
                vec![
                    (60, b"PXEClient:Arch:00007:UNDI:003010"),
                    (93, &[0, 7]),
                    (77, b"iPXE"),
                ],
                Ok(("http://10.77.0.1:8080/boot.ipxe", None, false, true)),
            ),
            (
                "iPXE RFC 3004 user class",
                vec![(77, &[3, b'f', b'o', b'o', 4, b'i', b'P', b'X', b'E'])],
                Ok(("http://10.77.0.1:8080/boot.ipxe", None, false, true)),
            ),
            (
                "custom iPXE seen by 175",
                vec![(77, b"Tinkerbell"), (175, http_ipxe)],
                Ok(("http://10.77.0.1:8080/boot.ipxe", None, false, true)),
            ),
            (
                "iPXE without HTTP",
                vec![(77, b"iPXE"), (175, tftp_only_ipxe)],
                Err("no HTTP support"),
            ),
            (
                "BIOS PXE ROM",
                vec![(60, b"PXEClient:Arch:00000:UNDI:002001"), (93, &[0, 0])],
                Ok(("undionly.kpxe", Some("PXEClient"), true, false)),
            ),
            (
                "OVMF PXE x64 (7)",
                vec![(60, b"PXEClient:Arch:00007:UNDI:003000"), (93, &[0, 7])],
                Ok(("snponly.efi", Some("PXEClient"), true, false)),
            ),
            (
                "x64 firmware sending 9",
                vec![(60, b"PXEClient:Arch:00009:UNDI:003000"), (93, &[0, 9])],
                Ok(("snponly.efi", Some("PXEClient"), true, false)),
            ),
            (
                "arm64 PXE",
                vec![(60, b"PXEClient:Arch:00011:UNDI:003000"), (93, &[0, 11])],
                Ok(("snp.efi", Some("PXEClient"), true, false)),
            ),
            (
                "two archs: the first counts",
                vec![(60, b"PXEClient"), (93, &[0, 7, 0, 0])],
                Ok(("snponly.efi", Some("PXEClient"), true, false)),
            ),
            (
                "PXE without 93 is BIOS",
                vec![(60, b"PXEClient")],
                Ok(("undionly.kpxe", Some("PXEClient"), true, false)),
            ),
            (
                "x64 HTTP boot",
                vec![(60, b"HTTPClient:Arch:00016:UNDI:003000"), (93, &[0, 16])],
                Ok((
                    "http://10.77.0.1:8080/assets/snponly.efi",
                    Some("HTTPClient"),
                    false,
                    false,
                )),
            ),
            (
                "arm64 HTTP boot",
                vec![(60, b"HTTPClient:Arch:00019:UNDI:003000"), (93, &[0, 19])],
                Ok((
                    "http://10.77.0.1:8080/assets/snp.efi",
                    Some("HTTPClient"),
                    false,
                    false,
                )),
            ),
            (
                "ia32 UEFI",
                vec![(60, b"PXEClient"), (93, &[0, 6])],
                Err("no PXE loader for x86 UEFI"),
            ),
            (
                "RISC-V",
                vec![(60, b"PXEClient"), (93, &[0, 27])],
                Err("no PXE loader for architecture 27"),
            ),
            (
                "udhcpc",
                vec![(60, b"RackBootRamdisk")],
                Err("not a network-boot client"),
            ),
        ];
        for (what, opts, want) in cases {
            let c = Client::of(&msg(&opts));
            let got = choose(&c, &l, URL);
            match (got, want) {
                (Ok(a), Ok((file, vc, skip, nowait))) => {
                    assert_eq!(
                        (
                            a.file.as_str(),
                            a.vendor_class,
                            a.pxe_skip_discovery,
                            a.ipxe_no_proxy_wait
                        ),
                        (file, vc, skip, nowait),
                        "{what}"
                    );
                    assert!(c.netboot(), "{what}");
                }
                (Err(e), Err(want)) => assert!(e.contains(want), "{what}: {e}"),
                (got, want) => panic!("{what}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn uuid_is_kept_only_when_well_formed() {
        let good = [0u8; 17];
        let mut bad_type = [0u8; 17];
        bad_type[0] = 1;
        assert_eq!(Client::of(&msg(&[(97, &good)])).uuid, Some(good.to_vec()));
        assert_eq!(Client::of(&msg(&[(97, &bad_type)])).uuid, None);
        assert_eq!(Client::of(&msg(&[(97, &good[..16])])).uuid, None);
    }
}
