//! The DHCP decider: one request in, one reply (with where to send it) or a
//! reason to stay silent out. Pure: the node's boot answer, the lease table
//! and the time are passed in; no sockets, no store.
//! Rules: RFC 2131 §4.1 (addressing) and §4.3 (message handling), PXE 2.1
//! (proxy DHCP and port 4011), shared/reference/pxe-protocol.md.

use std::net::{Ipv4Addr, SocketAddrV4};

use super::leases::Leases;
use super::wire::{opt, Message, MessageType, BROADCAST_FLAG};
use crate::model::Mac;
use crate::pxe::bootfile::{self, BootAnswer, BootFile, Class, Client, Loaders};
use crate::pxe::{BootAction, NodeBoot};

/// Authoritative: this server hands out addresses. Proxy: another server
/// does; this one only tells PXE clients what to boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Authoritative,
    Proxy,
}

/// How a proxy answers a PXE ROM of one kind of firmware; read as is from
/// `[dhcp] proxy_bios` and `proxy_uefi` ("offer", "port4011").
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyStrategy {
    /// Boot file, siaddr and option 43.6 = 8 in the proxy OFFER (smee).
    Offer,
    /// siaddr and option 54 only, no 43: the firmware asks again on port
    /// 4011 (pixiecore, dnsmasq for UEFI; what most UEFI firmware honours).
    Port4011,
}

/// What the decider needs to know about this server.
#[derive(Debug, Clone)]
pub struct Settings {
    pub mode: Mode,
    pub server_ip: Ipv4Addr,
    pub subnet_mask: Ipv4Addr,
    pub router: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub domain: Option<String>,
    pub lease_time: u64,
    pub offer_hold: u64,
    /// Give addresses (never boot files) to MACs that are not enrolled.
    pub unknown_allowed: bool,
    pub loaders: Loaders,
    /// Boot HTTP server, no trailing slash.
    pub public_url: String,
    pub proxy_bios: ProxyStrategy,
    pub proxy_uefi: ProxyStrategy,
}

/// Which socket the request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    /// UDP 67.
    Dhcp,
    /// UDP 4011, the PXE boot server.
    Pxe,
}

/// Where a reply goes (RFC 2131 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    /// To the relay at giaddr:67.
    Relay(Ipv4Addr),
    /// To an address that already works (ciaddr, or the 4011 sender).
    Unicast(SocketAddrV4),
    /// 255.255.255.255:68 out of the interface.
    Broadcast,
    /// To yiaddr:68 at chaddr: needs an ARP entry (else broadcast).
    Direct { ip: Ipv4Addr, mac: Mac },
}

/// A reply and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub msg: Message,
    pub dest: Dest,
}

/// What happened, for the log, the node timeline and the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub reply: Option<Reply>,
    /// One word for metrics: offer, ack, nak, inform, release, decline, ignore.
    pub verdict: &'static str,
    /// A sentence for people.
    pub note: String,
}

impl Outcome {
    fn ignore(note: impl Into<String>) -> Outcome {
        Outcome {
            reply: None,
            verdict: "ignore",
            note: note.into(),
        }
    }
}

/// Handles one request. `who` is the BootBackend's answer for the MAC (None:
/// not enrolled); `leases` is the pool in authoritative mode.
pub fn handle(
    req: &Message,
    port: Port,
    src: SocketAddrV4,
    who: Option<&NodeBoot>,
    s: &Settings,
    leases: Option<&mut Leases>,
    now: u64,
) -> Outcome {
    if req.op != 1 {
        return Outcome::ignore("not a BOOTREQUEST");
    }
    let Some(mac) = req.mac() else {
        return Outcome::ignore(format!(
            "hardware type {} length {} is not Ethernet",
            req.htype, req.hlen
        ));
    };
    let Some(kind) = req.message_type() else {
        return Outcome::ignore("no valid DHCP message type (option 53)");
    };
    let client = Client::of(req);
    if let Some(n) = who.filter(|n| n.action == BootAction::VirtualMedia) {
        return Outcome::ignore(format!(
            "node {} boots from virtual media (boot interface redfish-virtual-media): DHCP does not answer it",
            n.label()
        ));
    }
    if who.is_none() && (s.mode == Mode::Proxy || !s.unknown_allowed) {
        return Outcome::ignore(format!(
            "MAC {} is not enrolled ({}); set [dhcp] unknown = \"allow\" to give it an address anyway",
            Mac(mac),
            client.describe()
        ));
    }
    match (s.mode, leases) {
        (Mode::Proxy, _) => proxy(req, kind, port, src, &client, who, s),
        (Mode::Authoritative, Some(leases)) if port == Port::Dhcp => {
            authoritative(req, kind, mac, &client, who, s, leases, now)
        }
        (Mode::Authoritative, _) => Outcome::ignore("port 4011 is only served in proxy mode"),
    }
}

/// The boot answer for this client, or why there is none.
fn boot_answer(
    client: &Client,
    who: Option<&NodeBoot>,
    s: &Settings,
) -> Result<BootAnswer, String> {
    let Some(node) = who else {
        return Err("not enrolled: address only".into());
    };
    match &node.action {
        BootAction::Network(what) => {
            if !client.netboot() {
                return Err(format!(
                    "{what}, but this is {}: address only",
                    client.describe()
                ));
            }
            bootfile::choose(client, &s.loaders, &s.public_url)
        }
        BootAction::LocalDisk => Err("boots from its local disk: no boot file".into()),
        BootAction::Nothing(why) => Err(format!("{why}: no boot file")),
        BootAction::VirtualMedia => Err("boots from virtual media: no boot file".into()),
    }
}

#[allow(clippy::too_many_arguments)]
fn authoritative(
    req: &Message,
    kind: MessageType,
    mac: [u8; 6],
    client: &Client,
    who: Option<&NodeBoot>,
    s: &Settings,
    leases: &mut Leases,
    now: u64,
) -> Outcome {
    let requested = req.get_ip(opt::REQUESTED_IP);
    let server_id = req.get_ip(opt::SERVER_ID);
    match kind {
        MessageType::Discover => {
            let Some(ip) = leases.offer(mac, requested, now, s.offer_hold) else {
                return Outcome::ignore("no free address in [dhcp] range");
            };
            let boot = boot_answer(client, who, s);
            let mut m = reply_base(req, MessageType::Offer, s);
            m.yiaddr = ip;
            lease_options(&mut m, s);
            let note = boot_note("offered", ip, &boot);
            if let Ok(b) = &boot {
                boot_options(&mut m, req, client, b, s);
            }
            finish(m, req, "offer", note)
        }
        MessageType::Request => {
            if let Some(id) = server_id {
                if id != s.server_ip {
                    leases.forget_offer(mac, now);
                    return Outcome::ignore(format!("the client chose the DHCP server {id}"));
                }
            }
            let selecting = server_id.is_some();
            let ip = match (requested, req.ciaddr) {
                (Some(ip), _) => ip,
                (None, c) if !c.is_unspecified() => c,
                _ => return Outcome::ignore("REQUEST without a requested address or ciaddr"),
            };
            match leases.request(mac, ip, selecting, now, s.lease_time) {
                Ok(()) => {
                    let boot = boot_answer(client, who, s);
                    let mut m = reply_base(req, MessageType::Ack, s);
                    m.yiaddr = ip;
                    m.ciaddr = req.ciaddr;
                    lease_options(&mut m, s);
                    let note = boot_note("acked", ip, &boot);
                    if let Ok(b) = &boot {
                        boot_options(&mut m, req, client, b, s);
                    }
                    finish(m, req, "ack", note)
                }
                Err(why) => {
                    let mut m = reply_base(req, MessageType::Nak, s);
                    m.set(opt::MESSAGE, why.to_string().into_bytes());
                    if req.giaddr.is_unspecified() {
                        m.flags |= BROADCAST_FLAG;
                    }
                    let dest = if req.giaddr.is_unspecified() {
                        Dest::Broadcast
                    } else {
                        Dest::Relay(req.giaddr)
                    };
                    Outcome {
                        reply: Some(Reply { msg: m, dest }),
                        verdict: "nak",
                        note: format!("NAK: {why}"),
                    }
                }
            }
        }
        MessageType::Release => {
            if server_id.is_some_and(|id| id != s.server_ip) {
                return Outcome::ignore("RELEASE for another server");
            }
            let ok = leases.release(mac, req.ciaddr, now);
            Outcome {
                reply: None,
                verdict: "release",
                note: if ok {
                    format!("released {}", req.ciaddr)
                } else {
                    format!("RELEASE of {}, which this client does not hold", req.ciaddr)
                },
            }
        }
        MessageType::Decline => {
            if server_id.is_some_and(|id| id != s.server_ip) {
                return Outcome::ignore("DECLINE for another server");
            }
            let Some(ip) = requested else {
                return Outcome::ignore("DECLINE without the declined address (option 50)");
            };
            let ok = leases.decline(mac, ip, now);
            Outcome {
                reply: None,
                verdict: "decline",
                note: if ok {
                    format!(
                        "declined {ip}: quarantined, the client will be offered another address"
                    )
                } else {
                    format!("DECLINE of {ip}, which this client does not hold")
                },
            }
        }
        MessageType::Inform => {
            let mut m = reply_base(req, MessageType::Ack, s);
            m.ciaddr = req.ciaddr;
            net_options(&mut m, s);
            let boot = boot_answer(client, who, s);
            if let Ok(b) = &boot {
                boot_options(&mut m, req, client, b, s);
            }
            finish(m, req, "inform", format!("INFORM from {}", req.ciaddr))
        }
        other => Outcome::ignore(format!("{} is a server message", other.name())),
    }
}

fn proxy(
    req: &Message,
    kind: MessageType,
    port: Port,
    src: SocketAddrV4,
    client: &Client,
    who: Option<&NodeBoot>,
    s: &Settings,
) -> Outcome {
    if client.class == Class::Other && !client.ipxe {
        return Outcome::ignore(format!(
            "proxy mode answers PXE clients only; this is {}",
            client.describe()
        ));
    }
    let boot = match boot_answer(client, who, s) {
        Ok(b) => b,
        Err(why) => return Outcome::ignore(why),
    };
    match (port, kind) {
        (Port::Dhcp, MessageType::Discover) => {
            let mut m = reply_base(req, MessageType::Offer, s);
            m.ciaddr = Ipv4Addr::UNSPECIFIED;
            m.flags |= BROADCAST_FLAG;
            m.set(
                opt::VENDOR_CLASS,
                boot.vendor_class.unwrap_or("PXEClient").as_bytes().to_vec(),
            );
            if let Some(u) = &client.uuid {
                m.set(opt::CLIENT_UUID, u.clone());
            }
            let strategy = match client.arch() {
                _ if client.ipxe => ProxyStrategy::Offer,
                None | Some(0) => s.proxy_bios,
                Some(_) => s.proxy_uefi,
            };
            m.siaddr = s.server_ip;
            let note = match strategy {
                ProxyStrategy::Offer => {
                    boot_options(&mut m, req, client, &boot, s);
                    format!("proxy offer: boot {}", boot.file.as_str())
                }
                ProxyStrategy::Port4011 => {
                    "proxy offer: boot server on port 4011 (no option 43)".to_string()
                }
            };
            let dest = if req.giaddr.is_unspecified() {
                Dest::Broadcast
            } else {
                Dest::Relay(req.giaddr)
            };
            Outcome {
                reply: Some(Reply { msg: m, dest }),
                verdict: "offer",
                note,
            }
        }
        (Port::Pxe, MessageType::Request | MessageType::Inform) => {
            let mut m = reply_base(req, MessageType::Ack, s);
            m.ciaddr = req.ciaddr;
            m.yiaddr = req.ciaddr;
            boot_options(&mut m, req, client, &boot, s);
            m.set(
                opt::VENDOR_CLASS,
                boot.vendor_class.unwrap_or("PXEClient").as_bytes().to_vec(),
            );
            let to = if req.ciaddr.is_unspecified() {
                *src.ip()
            } else {
                req.ciaddr
            };
            Outcome {
                reply: Some(Reply {
                    msg: m,
                    dest: Dest::Unicast(SocketAddrV4::new(to, src.port())),
                }),
                verdict: "ack",
                note: format!("PXE boot server (4011): boot {}", boot.file.as_str()),
            }
        }
        (Port::Dhcp, MessageType::Request) => {
            Outcome::ignore("proxy mode: the REQUEST is for the DHCP server that gave the address")
        }
        (_, other) => Outcome::ignore(format!("proxy mode does not answer {}", other.name())),
    }
}

/// A reply with the request's identity fields and options 53 and 54.
fn reply_base(req: &Message, kind: MessageType, s: &Settings) -> Message {
    let mut options = vec![
        (opt::MESSAGE_TYPE, vec![kind.byte()]),
        (opt::SERVER_ID, s.server_ip.octets().to_vec()),
    ];
    if let Some(ra) = req.get(opt::RELAY_AGENT) {
        options.push((opt::RELAY_AGENT, ra.to_vec()));
    }
    Message {
        op: 2,
        htype: req.htype,
        hlen: req.hlen,
        hops: 0,
        xid: req.xid,
        secs: 0,
        flags: req.flags,
        ciaddr: Ipv4Addr::UNSPECIFIED,
        yiaddr: Ipv4Addr::UNSPECIFIED,
        siaddr: Ipv4Addr::UNSPECIFIED,
        giaddr: req.giaddr,
        chaddr: req.chaddr,
        sname: Vec::new(),
        file: Vec::new(),
        options,
        malformed: None,
    }
}

fn net_options(m: &mut Message, s: &Settings) {
    m.set(opt::SUBNET_MASK, s.subnet_mask.octets().to_vec());
    if let Some(r) = s.router {
        m.set(opt::ROUTER, r.octets().to_vec());
    }
    if !s.dns.is_empty() {
        m.set(opt::DNS, s.dns.iter().flat_map(|d| d.octets()).collect());
    }
    if let Some(d) = &s.domain {
        m.set(opt::DOMAIN_NAME, d.as_bytes().to_vec());
    }
}

fn lease_options(m: &mut Message, s: &Settings) {
    let t = s.lease_time.min(u64::from(u32::MAX)) as u32;
    m.set(opt::LEASE_TIME, t.to_be_bytes().to_vec());
    m.set(opt::RENEWAL, (t / 2).to_be_bytes().to_vec());
    m.set(opt::REBINDING, (t / 8 * 7).to_be_bytes().to_vec());
    net_options(m, s);
}

/// siaddr, sname, file, 66/67, 60, 97, 43 and 175 as the client needs them.
fn boot_options(m: &mut Message, req: &Message, client: &Client, b: &BootAnswer, s: &Settings) {
    let asked = |code: u8| req.get(opt::PARAMS).is_some_and(|p| p.contains(&code));
    m.siaddr = s.server_ip;
    m.sname = s.server_ip.to_string().into_bytes();
    m.file = b.file.as_str().as_bytes().to_vec();
    if asked(opt::TFTP_SERVER) {
        m.set(opt::TFTP_SERVER, m.sname.clone());
    }
    if matches!(b.file, BootFile::Url(_)) || asked(opt::BOOTFILE) || b.file.as_str().len() > 127 {
        m.set(opt::BOOTFILE, m.file.clone());
    }
    if let Some(vc) = b.vendor_class {
        m.set(opt::VENDOR_CLASS, vc.as_bytes().to_vec());
    }
    if let Some(u) = &client.uuid {
        m.set(opt::CLIENT_UUID, u.clone());
    }
    if b.pxe_skip_discovery {
        // PXE_DISCOVERY_CONTROL (6) = 8: boot the file in this offer.
        m.set(opt::VENDOR, vec![6, 1, 8, 255]);
    }
    if b.ipxe_no_proxy_wait {
        // 175.176 (no-pxedhcp) = 1: do not wait for ProxyDHCP offers.
        m.set(opt::IPXE, vec![176, 1, 1]);
    }
}

fn boot_note(what: &str, ip: Ipv4Addr, boot: &Result<BootAnswer, String>) -> String {
    match boot {
        Ok(b) => format!("{what} {ip}, boot {}", b.file.as_str()),
        Err(why) => format!("{what} {ip} ({why})"),
    }
}

/// Addresses an OFFER/ACK per RFC 2131 §4.1 and fits it into the client's
/// maximum message size.
fn finish(mut m: Message, req: &Message, verdict: &'static str, note: String) -> Outcome {
    fit(&mut m, req);
    let dest = if !req.giaddr.is_unspecified() {
        Dest::Relay(req.giaddr)
    } else if !req.ciaddr.is_unspecified() {
        Dest::Unicast(SocketAddrV4::new(req.ciaddr, 68))
    } else if req.broadcast() || m.yiaddr.is_unspecified() {
        Dest::Broadcast
    } else {
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&req.chaddr[..6]);
        Dest::Direct {
            ip: m.yiaddr,
            mac: Mac(mac),
        }
    };
    Outcome {
        reply: Some(Reply { msg: m, dest }),
        verdict,
        note,
    }
}

/// Option 57 counts the IP and UDP headers (28 bytes); it is clamped to
/// 576..=1500 (OVMF sends 65280 in its REQUEST). Options that can go go, in
/// this order, until the reply fits: domain, DNS, 66, 67 (the `file` field
/// still has the boot file).
pub fn max_reply_len(req: &Message) -> usize {
    let asked = match req.get(opt::MAX_SIZE) {
        Some([a, b]) => usize::from(u16::from_be_bytes([*a, *b])),
        _ => 0,
    };
    asked
        .saturating_sub(28)
        .clamp(super::wire::MIN_MAX_SIZE, 1500 - 28)
}

fn fit(m: &mut Message, req: &Message) {
    let limit = max_reply_len(req);
    let mut buf = Vec::new();
    for code in [opt::DOMAIN_NAME, opt::DNS, opt::TFTP_SERVER, opt::BOOTFILE] {
        m.emit(&mut buf);
        if buf.len() <= limit {
            return;
        }
        m.options.retain(|(c, _)| *c != code);
    }
}

#[cfg(test)]
mod tests;
