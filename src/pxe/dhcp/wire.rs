//! DHCPv4 messages (RFC 2131 / 2132) as plain data: `Message::parse` and
//! `Message::emit`. Pure: no I/O, no panics on any input.
//!
//! Written here rather than over dhcproto because of four traps that matter
//! to PXE (shared/reference/crates.md): dhcproto silently drops every option
//! after a malformed one, decodes only the first option-93 value, keeps the
//! trailing NUL of `file`/`sname`, and never pads to 300 bytes. Here a
//! malformed option ends parsing with a note (`Message::malformed`) that the
//! server logs, repeated options are concatenated (RFC 3396), option 93 keeps
//! every value, and replies are padded.

use std::net::Ipv4Addr;

/// BOOTP header (236 bytes) + magic cookie.
pub const HEADER_LEN: usize = 240;
/// The BOOTP minimum (RFC 951's 64-byte vendor area); some ROMs and relays
/// drop shorter packets.
pub const MIN_REPLY_LEN: usize = 300;
/// What every client must accept (RFC 2131 §2).
pub const MIN_MAX_SIZE: usize = 576;
const COOKIE: [u8; 4] = [99, 130, 83, 99];

/// Option codes used here.
#[allow(dead_code)] // the full table, named for readers
pub mod opt {
    pub const PAD: u8 = 0;
    pub const SUBNET_MASK: u8 = 1;
    pub const ROUTER: u8 = 3;
    pub const DNS: u8 = 6;
    pub const DOMAIN_NAME: u8 = 15;
    pub const VENDOR: u8 = 43;
    pub const REQUESTED_IP: u8 = 50;
    pub const LEASE_TIME: u8 = 51;
    pub const OVERLOAD: u8 = 52;
    pub const MESSAGE_TYPE: u8 = 53;
    pub const SERVER_ID: u8 = 54;
    pub const PARAMS: u8 = 55;
    pub const MESSAGE: u8 = 56;
    pub const MAX_SIZE: u8 = 57;
    pub const RENEWAL: u8 = 58;
    pub const REBINDING: u8 = 59;
    pub const VENDOR_CLASS: u8 = 60;
    pub const TFTP_SERVER: u8 = 66;
    pub const BOOTFILE: u8 = 67;
    pub const USER_CLASS: u8 = 77;
    pub const RELAY_AGENT: u8 = 82;
    pub const CLIENT_ARCH: u8 = 93;
    pub const CLIENT_UUID: u8 = 97;
    pub const IPXE: u8 = 175;
    pub const END: u8 = 255;
}

/// DHCP message types (option 53).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    Discover,
    Offer,
    Request,
    Decline,
    Ack,
    Nak,
    Release,
    Inform,
}

impl MessageType {
    pub fn from_byte(b: u8) -> Option<MessageType> {
        Some(match b {
            1 => MessageType::Discover,
            2 => MessageType::Offer,
            3 => MessageType::Request,
            4 => MessageType::Decline,
            5 => MessageType::Ack,
            6 => MessageType::Nak,
            7 => MessageType::Release,
            8 => MessageType::Inform,
            _ => return None,
        })
    }

    pub fn byte(self) -> u8 {
        match self {
            MessageType::Discover => 1,
            MessageType::Offer => 2,
            MessageType::Request => 3,
            MessageType::Decline => 4,
            MessageType::Ack => 5,
            MessageType::Nak => 6,
            MessageType::Release => 7,
            MessageType::Inform => 8,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            MessageType::Discover => "DISCOVER",
            MessageType::Offer => "OFFER",
            MessageType::Request => "REQUEST",
            MessageType::Decline => "DECLINE",
            MessageType::Ack => "ACK",
            MessageType::Nak => "NAK",
            MessageType::Release => "RELEASE",
            MessageType::Inform => "INFORM",
        }
    }
}

/// Why bytes are not a DHCP message at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("shorter than a BOOTP header ({0} bytes)")]
    Truncated(usize),
    #[error("op {0} is neither BOOTREQUEST nor BOOTREPLY")]
    BadOp(u8),
    #[error("no DHCP magic cookie")]
    NoCookie,
    #[error("hardware address length {0} is over 16")]
    BadHlen(u8),
}

/// A DHCPv4 message. Options keep their wire order; a code that appears
/// more than once is stored once with the values concatenated (RFC 3396).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub op: u8,
    pub htype: u8,
    pub hlen: u8,
    pub hops: u8,
    pub xid: u32,
    pub secs: u16,
    pub flags: u16,
    pub ciaddr: Ipv4Addr,
    pub yiaddr: Ipv4Addr,
    pub siaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub chaddr: [u8; 16],
    /// Server host name, without the NUL padding.
    pub sname: Vec<u8>,
    /// Boot file name, without the NUL padding.
    pub file: Vec<u8>,
    pub options: Vec<(u8, Vec<u8>)>,
    /// Set when parsing stopped at a malformed option: what was wrong. The
    /// options before it are kept.
    pub malformed: Option<String>,
}

pub const BROADCAST_FLAG: u16 = 0x8000;

fn ip(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

/// Bytes up to the first NUL.
fn cstr(b: &[u8]) -> Vec<u8> {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    b[..end].to_vec()
}

impl Message {
    /// Parses a message. Header problems are errors; option problems are
    /// noted in `malformed` and the options before them kept.
    pub fn parse(b: &[u8]) -> Result<Message, Error> {
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated(b.len()));
        }
        if b[0] != 1 && b[0] != 2 {
            return Err(Error::BadOp(b[0]));
        }
        if b[2] > 16 {
            return Err(Error::BadHlen(b[2]));
        }
        if b[236..240] != COOKIE {
            return Err(Error::NoCookie);
        }
        let mut chaddr = [0u8; 16];
        chaddr.copy_from_slice(&b[28..44]);
        let mut m = Message {
            op: b[0],
            htype: b[1],
            hlen: b[2],
            hops: b[3],
            xid: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            secs: u16::from_be_bytes([b[8], b[9]]),
            flags: u16::from_be_bytes([b[10], b[11]]),
            ciaddr: ip(&b[12..16]),
            yiaddr: ip(&b[16..20]),
            siaddr: ip(&b[20..24]),
            giaddr: ip(&b[24..28]),
            chaddr,
            sname: cstr(&b[44..108]),
            file: cstr(&b[108..236]),
            options: Vec::new(),
            malformed: None,
        };
        let overload = m.read_options(&b[240..], "options");
        // Option 52: more options in `file` (1), `sname` (2) or both (3).
        if let Some(o) = overload.filter(|o| (1..=3).contains(o)) {
            if o & 1 != 0 {
                m.read_options(&b[108..236], "file (overloaded)");
                m.file.clear();
            }
            if o & 2 != 0 {
                m.read_options(&b[44..108], "sname (overloaded)");
                m.sname.clear();
            }
        }
        Ok(m)
    }

    /// Reads one options area; returns option 52's value if seen.
    fn read_options(&mut self, area: &[u8], what: &str) -> Option<u8> {
        let mut i = 0;
        let mut overload = None;
        while i < area.len() {
            let code = area[i];
            match code {
                opt::PAD => {
                    i += 1;
                    continue;
                }
                opt::END => return overload,
                _ => {}
            }
            let Some(&len) = area.get(i + 1) else {
                self.note(format!("{what}: option {code} has no length byte"));
                return overload;
            };
            let start = i + 2;
            let end = start + len as usize;
            let Some(value) = area.get(start..end) else {
                self.note(format!(
                    "{what}: option {code} says {len} bytes but only {} remain; it and any later options are ignored",
                    area.len() - start.min(area.len())
                ));
                return overload;
            };
            if code == opt::OVERLOAD && len == 1 {
                overload = Some(value[0]);
            }
            match self.options.iter_mut().find(|(c, _)| *c == code) {
                Some((_, v)) => v.extend_from_slice(value),
                None => self.options.push((code, value.to_vec())),
            }
            i = end;
        }
        overload
    }

    fn note(&mut self, why: String) {
        if self.malformed.is_none() {
            self.malformed = Some(why);
        }
    }

    /// An option's value.
    pub fn get(&self, code: u8) -> Option<&[u8]> {
        self.options
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, v)| v.as_slice())
    }

    /// Sets (or replaces) an option.
    pub fn set(&mut self, code: u8, value: Vec<u8>) {
        match self.options.iter_mut().find(|(c, _)| *c == code) {
            Some((_, v)) => *v = value,
            None => self.options.push((code, value)),
        }
    }

    pub fn message_type(&self) -> Option<MessageType> {
        match self.get(opt::MESSAGE_TYPE) {
            Some([b]) => MessageType::from_byte(*b),
            _ => None,
        }
    }

    /// The client's hardware address when it is Ethernet.
    pub fn mac(&self) -> Option<[u8; 6]> {
        if self.htype == 1 && self.hlen == 6 {
            let mut m = [0u8; 6];
            m.copy_from_slice(&self.chaddr[..6]);
            Some(m)
        } else {
            None
        }
    }

    /// An option holding one IPv4 address.
    pub fn get_ip(&self, code: u8) -> Option<Ipv4Addr> {
        match self.get(code) {
            Some(b) if b.len() == 4 => Some(ip(b)),
            _ => None,
        }
    }

    pub fn broadcast(&self) -> bool {
        self.flags & BROADCAST_FLAG != 0
    }

    /// Encodes the message: options in order, option 82 last (RFC 3046),
    /// END, padded to 300 bytes. `file`/`sname` longer than their fields
    /// are cut (the caller checks lengths; this never panics).
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.clear();
        out.push(self.op);
        out.push(self.htype);
        out.push(self.hlen);
        out.push(self.hops);
        out.extend_from_slice(&self.xid.to_be_bytes());
        out.extend_from_slice(&self.secs.to_be_bytes());
        out.extend_from_slice(&self.flags.to_be_bytes());
        for a in [self.ciaddr, self.yiaddr, self.siaddr, self.giaddr] {
            out.extend_from_slice(&a.octets());
        }
        out.extend_from_slice(&self.chaddr);
        let field = |out: &mut Vec<u8>, v: &[u8], n: usize| {
            // Always NUL-terminated: some PXE ROMs need it.
            let take = v.len().min(n - 1);
            out.extend_from_slice(&v[..take]);
            out.resize(out.len() + (n - take), 0);
        };
        field(out, &self.sname, 64);
        field(out, &self.file, 128);
        out.extend_from_slice(&COOKIE);
        let relay = self.get(opt::RELAY_AGENT);
        for (code, value) in self.options.iter().filter(|(c, _)| *c != opt::RELAY_AGENT) {
            emit_option(out, *code, value);
        }
        if let Some(v) = relay {
            emit_option(out, opt::RELAY_AGENT, v);
        }
        out.push(opt::END);
        if out.len() < MIN_REPLY_LEN {
            out.resize(MIN_REPLY_LEN, 0);
        }
    }
}

/// One option; values over 255 bytes are split (RFC 3396).
fn emit_option(out: &mut Vec<u8>, code: u8, value: &[u8]) {
    if value.is_empty() {
        out.extend_from_slice(&[code, 0]);
        return;
    }
    for chunk in value.chunks(255) {
        out.push(code);
        out.push(chunk.len() as u8);
        out.extend_from_slice(chunk);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DISCOVER from QEMU's iPXE e1000 ROM under SeaBIOS, with the option
    /// order of the reference capture (53,57,93,94,60,77,55,175,61,97).
    pub fn ipxe_bios_discover() -> Vec<u8> {
        let mut b = vec![0u8; 240];
        b[0] = 1;
        b[1] = 1;
        b[2] = 6;
        b[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
        b[28..34].copy_from_slice(&[0x52, 0x54, 0x00, 0x77, 0x00, 0x01]);
        b[236..240].copy_from_slice(&COOKIE);
        let opts: &[(u8, &[u8])] = &[
            (53, &[1]),
            (57, &[0x05, 0xc0]),
            (93, &[0, 0]),
            (94, &[1, 2, 1]),
            (60, b"PXEClient:Arch:00000:UNDI:002001"),
            (77, b"iPXE"),
            (
                55,
                &[
                    1, 3, 6, 7, 12, 15, 17, 26, 43, 60, 66, 67, 119, 128, 175, 203,
                ],
            ),
            (175, &[0xb1, 5, 1, 0x80, 0x86, 0x10, 0x0e, 0x13, 1, 1]),
            (61, &[1, 0x52, 0x54, 0x00, 0x77, 0x00, 0x01]),
            (97, &[0; 17]),
        ];
        for (c, v) in opts {
            b.push(*c);
            b.push(v.len() as u8);
            b.extend_from_slice(v);
        }
        b.push(255);
        b
    }

    #[test]
    fn parses_a_discover() {
        let m = Message::parse(&ipxe_bios_discover()).unwrap();
        assert_eq!(m.message_type(), Some(MessageType::Discover));
        assert_eq!(m.mac(), Some([0x52, 0x54, 0x00, 0x77, 0x00, 0x01]));
        assert_eq!(m.get(opt::USER_CLASS), Some(&b"iPXE"[..]));
        assert_eq!(m.get(opt::MAX_SIZE), Some(&[0x05, 0xc0][..]));
        assert_eq!(m.xid, 0x1234_5678);
        assert!(m.malformed.is_none());
        assert_eq!(m.options.len(), 10);
    }

    #[test]
    fn header_errors() {
        let good = ipxe_bios_discover();
        assert_eq!(Message::parse(&good[..239]), Err(Error::Truncated(239)));
        let mut b = good.clone();
        b[0] = 3;
        assert_eq!(Message::parse(&b), Err(Error::BadOp(3)));
        let mut b = good.clone();
        b[236] = 0;
        assert_eq!(Message::parse(&b), Err(Error::NoCookie));
        let mut b = good;
        b[2] = 17;
        assert_eq!(Message::parse(&b), Err(Error::BadHlen(17)));
    }

    #[test]
    fn malformed_option_keeps_earlier_ones_and_says_why() {
        let mut b = ipxe_bios_discover();
        let end = b.len() - 1;
        b.truncate(end);
        b.extend_from_slice(&[66, 40, b'x']);
        let m = Message::parse(&b).unwrap();
        assert_eq!(m.options.len(), 10);
        let why = m.malformed.unwrap();
        assert!(
            why.contains("option 66 says 40 bytes but only 1 remain"),
            "{why}"
        );
    }

    #[test]
    fn repeated_options_concatenate_and_overload_is_read() {
        let mut b = ipxe_bios_discover();
        b.pop();
        b.extend_from_slice(&[93, 2, 0, 7, 93, 2, 0, 9, 52, 1, 1, 255]);
        // Options in the file field.
        b[108..113].copy_from_slice(&[12, 3, b'a', b'b', b'c']); // host name
        b[113] = 255;
        let m = Message::parse(&b).unwrap();
        assert_eq!(m.get(opt::CLIENT_ARCH), Some(&[0, 0, 0, 7, 0, 9][..]));
        assert_eq!(m.get(12), Some(&b"abc"[..]));
        assert!(m.file.is_empty());
    }

    #[test]
    fn emit_round_trips_pads_and_puts_82_last() {
        let mut m = Message::parse(&ipxe_bios_discover()).unwrap();
        m.op = 2;
        m.file = b"http://10.77.0.1:8080/boot.ipxe".to_vec();
        m.options = vec![
            (53, vec![2]),
            (82, vec![1, 2, 0, 1]),
            (54, vec![10, 77, 0, 1]),
        ];
        let mut out = Vec::new();
        m.emit(&mut out);
        assert_eq!(out.len(), MIN_REPLY_LEN);
        let back = Message::parse(&out).unwrap();
        assert_eq!(back.file, m.file);
        let codes: Vec<u8> = back.options.iter().map(|(c, _)| *c).collect();
        assert_eq!(codes, [53, 54, 82]);
        // file is NUL-terminated even when too long; a long option is split.
        m.file = vec![b'a'; 200];
        m.options = vec![(43, vec![7; 300])];
        m.emit(&mut out);
        let back = Message::parse(&out).unwrap();
        assert_eq!(back.file.len(), 127);
        assert_eq!(back.get(43).unwrap().len(), 300);
    }

    #[test]
    fn no_input_panics() {
        let good = ipxe_bios_discover();
        for len in 0..good.len() {
            let _ = Message::parse(&good[..len]);
        }
        for i in 0..good.len() {
            for v in [0u8, 1, 0x34, 0xff] {
                let mut b = good.clone();
                b[i] = v;
                let _ = Message::parse(&b);
            }
        }
    }
}
