//! RMCP, IPMI 1.5 and RMCP+ (IPMI 2.0) framing, and the IPMI LAN message
//! inside it. Pure: no I/O, no clock, and no input makes it panic — received
//! bytes are checked for length before any field is read.
//!
//! Multi-byte IPMI fields are little-endian; the RMCP header is not.

/// Why received bytes are not a packet we can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("packet truncated")]
    Truncated,
    #[error("not an RMCP/IPMI packet (bad RMCP header)")]
    NotIpmi,
    #[error("unsupported session auth type {0:#04x}")]
    UnsupportedAuthType(u8),
    #[error("payload length exceeds the packet")]
    BadLength,
    #[error("bad session trailer (pad or next header)")]
    BadTrailer,
    #[error("IPMI message checksum mismatch")]
    BadChecksum,
}

pub type Result<T> = std::result::Result<T, Error>;

/// The RMCP header of every IPMI packet: version 6, no RMCP ACK, class IPMI.
pub const RMCP_HEADER: [u8; 4] = [0x06, 0x00, 0xff, 0x07];

/// RMCP+ payload types (IPMI 2.0 T13-16).
pub mod payload {
    pub const IPMI: u8 = 0x00;
    pub const OPEN_SESSION_REQUEST: u8 = 0x10;
    pub const OPEN_SESSION_RESPONSE: u8 = 0x11;
    pub const RAKP1: u8 = 0x12;
    pub const RAKP2: u8 = 0x13;
    pub const RAKP3: u8 = 0x14;
    pub const RAKP4: u8 = 0x15;
}

/// Software ID of the remote console (what ipmitool and pyghmi use).
pub const CONSOLE_SWID: u8 = 0x81;
/// Slave address of the BMC.
pub const BMC_ADDR: u8 = 0x20;

fn u32_le(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// A received packet, fields borrowed from the buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    /// IPMI 1.5 session, auth type none (pre-session messages).
    V15 {
        session_id: u32,
        seq: u32,
        message: &'a [u8],
    },
    /// RMCP+ session packet.
    V20(Rmcpp<'a>),
}

/// An RMCP+ packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rmcpp<'a> {
    pub payload_type: u8,
    pub encrypted: bool,
    pub authenticated: bool,
    pub session_id: u32,
    pub seq: u32,
    pub payload: &'a [u8],
    /// The bytes the integrity MAC covers (auth type through next header).
    pub signed: &'a [u8],
    /// The integrity MAC as received (empty when not authenticated).
    pub auth_code: &'a [u8],
}

/// Parses one UDP payload. `mac_len` is the integrity code length of the
/// session (12 for HMAC-SHA1-96, 16 for HMAC-SHA256-128), used only for
/// authenticated packets.
pub fn parse(buf: &[u8], mac_len: usize) -> Result<Packet<'_>> {
    if buf.len() < 5 {
        return Err(Error::Truncated);
    }
    if buf[..4] != RMCP_HEADER {
        return Err(Error::NotIpmi);
    }
    match buf[4] {
        0x00 => {
            // auth type, seq(4), session id(4), length(1), message
            let h = buf.get(4..14).ok_or(Error::Truncated)?;
            let len = h[9] as usize;
            let message = buf.get(14..14 + len).ok_or(Error::BadLength)?;
            Ok(Packet::V15 {
                seq: u32_le(&h[1..5]),
                session_id: u32_le(&h[5..9]),
                message,
            })
        }
        0x06 => {
            let h = buf.get(4..16).ok_or(Error::Truncated)?;
            let ptype = h[1];
            let payload_type = ptype & 0x3f;
            if payload_type == 0x02 {
                // OEM explicit payloads carry 6 more header bytes; not used here.
                return Err(Error::UnsupportedAuthType(0x06));
            }
            let len = u16::from_le_bytes([h[10], h[11]]) as usize;
            let payload = buf.get(16..16 + len).ok_or(Error::BadLength)?;
            let authenticated = ptype & 0x40 != 0;
            let (signed, auth_code) = if authenticated {
                let end = buf.len().checked_sub(mac_len).ok_or(Error::Truncated)?;
                if end < 16 + len + 2 {
                    return Err(Error::Truncated);
                }
                let next_header = buf[end - 1];
                let pad = buf[end - 2] as usize;
                if next_header != 0x07 || 16 + len + pad + 2 != end {
                    return Err(Error::BadTrailer);
                }
                if buf[16 + len..16 + len + pad].iter().any(|&b| b != 0xff) {
                    return Err(Error::BadTrailer);
                }
                (&buf[4..end], &buf[end..])
            } else {
                (&buf[4..16 + len], &buf[..0])
            };
            Ok(Packet::V20(Rmcpp {
                payload_type,
                encrypted: ptype & 0x80 != 0,
                authenticated,
                session_id: u32_le(&h[2..6]),
                seq: u32_le(&h[6..10]),
                payload,
                signed,
                auth_code,
            }))
        }
        other => Err(Error::UnsupportedAuthType(other)),
    }
}

/// Writes an IPMI 1.5 packet with auth type none (pre-session).
pub fn emit_v15(message: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&RMCP_HEADER);
    out.push(0x00);
    out.extend_from_slice(&[0; 8]); // seq, session id
    out.push(message.len() as u8);
    out.extend_from_slice(message);
}

/// Writes an RMCP+ packet. For an authenticated packet the trailer is written
/// up to the next header; the caller appends the MAC over `out[4..]`.
pub fn emit_rmcpp(
    payload_type: u8,
    encrypted: bool,
    authenticated: bool,
    session_id: u32,
    seq: u32,
    payload: &[u8],
    out: &mut Vec<u8>,
) {
    out.clear();
    out.extend_from_slice(&RMCP_HEADER);
    out.push(0x06);
    let mut ptype = payload_type & 0x3f;
    if encrypted {
        ptype |= 0x80;
    }
    if authenticated {
        ptype |= 0x40;
    }
    out.push(ptype);
    out.extend_from_slice(&session_id.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u16).to_le_bytes());
    out.extend_from_slice(payload);
    if authenticated {
        // Pad so that auth type .. next header is a multiple of 4 bytes.
        let covered = out.len() - 4 + 2;
        let pad = (4 - covered % 4) % 4;
        out.extend(std::iter::repeat_n(0xff, pad));
        out.push(pad as u8);
        out.push(0x07);
    }
}

fn checksum(bytes: &[u8]) -> u8 {
    bytes
        .iter()
        .fold(0u8, |a, b| a.wrapping_add(*b))
        .wrapping_neg()
}

/// An IPMI request from the remote console to the BMC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    pub net_fn: u8,
    pub cmd: u8,
    /// 6-bit request sequence, echoed by the response.
    pub rq_seq: u8,
    pub data: &'a [u8],
}

impl Request<'_> {
    /// Writes the LAN-format message: rsAddr, netFn/LUN, chk1, rqAddr,
    /// rqSeq/LUN, cmd, data, chk2.
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.clear();
        out.push(BMC_ADDR);
        out.push(self.net_fn << 2);
        out.push(checksum(&out[0..2]));
        out.push(CONSOLE_SWID);
        out.push((self.rq_seq & 0x3f) << 2);
        out.push(self.cmd);
        out.extend_from_slice(self.data);
        let c = checksum(&out[3..]);
        out.push(c);
    }
}

/// An IPMI response from the BMC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response<'a> {
    pub net_fn: u8,
    pub cmd: u8,
    pub rq_seq: u8,
    /// Completion code (0 = success).
    pub cc: u8,
    pub data: &'a [u8],
}

impl<'a> Response<'a> {
    /// Parses a LAN-format response, checking both checksums.
    pub fn parse(b: &'a [u8]) -> Result<Response<'a>> {
        if b.len() < 8 {
            return Err(Error::Truncated);
        }
        if checksum(&b[0..2]) != b[2] || checksum(&b[3..b.len() - 1]) != b[b.len() - 1] {
            return Err(Error::BadChecksum);
        }
        Ok(Response {
            net_fn: b[1] >> 2,
            rq_seq: b[4] >> 2,
            cmd: b[5],
            cc: b[6],
            data: &b[7..b.len() - 1],
        })
    }
}

/// The completion code in words (IPMI 2.0 T5-2).
pub fn completion_code_text(cc: u8) -> &'static str {
    match cc {
        0x00 => "success",
        0xc0 => "node busy",
        0xc1 => "invalid command",
        0xc2 => "command invalid for given LUN",
        0xc3 => "timeout while processing command",
        0xc4 => "out of space",
        0xc5 => "reservation cancelled or invalid",
        0xc6 => "request data truncated",
        0xc7 => "request data length invalid",
        0xc8 => "request data field length limit exceeded",
        0xc9 => "parameter out of range",
        0xca => "cannot return number of requested data bytes",
        0xcb => "requested sensor, data, or record not present",
        0xcc => "invalid data field in request",
        0xcd => "command illegal for specified sensor or record type",
        0xce => "command response could not be provided",
        0xcf => "cannot execute duplicated request",
        0xd0 => "SDR repository in update mode",
        0xd1 => "device in firmware update mode",
        0xd2 => "BMC initialization in progress",
        0xd3 => "destination unavailable",
        0xd4 => "insufficient privilege level",
        0xd5 => "command not supported in present state",
        0xd6 => "command sub-function disabled or unavailable",
        0xff => "unspecified error",
        _ => "unknown completion code",
    }
}

#[cfg(test)]
mod tests {
    use super::super::vectors::*;
    use super::*;

    #[test]
    fn parse_get_channel_auth_caps() {
        let Packet::V15 {
            session_id,
            seq,
            message,
        } = parse(FRAME_1, 12).unwrap()
        else {
            panic!("frame 1 is IPMI 1.5")
        };
        assert_eq!((session_id, seq), (0, 0));
        assert_eq!(
            message,
            [0x20, 0x18, 0xc8, 0x81, 0x00, 0x38, 0x8e, 0x04, 0xb5]
        );
        // The request we would send is byte-identical.
        let mut msg = Vec::new();
        Request {
            net_fn: 0x06,
            cmd: 0x38,
            rq_seq: 0,
            data: &[0x8e, 0x04],
        }
        .emit(&mut msg);
        let mut pkt = Vec::new();
        emit_v15(&msg, &mut pkt);
        assert_eq!(pkt, FRAME_1);
        let Packet::V15 { message, .. } = parse(FRAME_2, 12).unwrap() else {
            panic!()
        };
        let r = Response::parse(message).unwrap();
        assert_eq!((r.net_fn, r.cmd, r.cc), (0x07, 0x38, 0x00));
        assert_eq!(r.data, [0x01, 0x97, 0x04, 0x03, 0x00, 0x00, 0x00, 0x00]);
    }

    #[test]
    fn parse_pre_session_rmcpp() {
        let expect = [
            (FRAME_3, payload::OPEN_SESSION_REQUEST),
            (FRAME_4, payload::OPEN_SESSION_RESPONSE),
            (FRAME_5, payload::RAKP1),
            (FRAME_6, payload::RAKP2),
            (FRAME_7, payload::RAKP3),
            (FRAME_8, payload::RAKP4),
        ];
        for (frame, ptype) in expect {
            let Packet::V20(p) = parse(frame, 12).unwrap() else {
                panic!()
            };
            assert_eq!(
                (p.payload_type, p.session_id, p.seq, p.authenticated),
                (ptype, 0, 0, false)
            );
            let mut out = Vec::new();
            emit_rmcpp(ptype, false, false, 0, 0, p.payload, &mut out);
            assert_eq!(out, frame, "re-emitted {ptype:#x}");
        }
    }

    #[test]
    fn parse_session_packets_and_trailer() {
        for frame in [FRAME_9, FRAME_14, FRAME_20, FRAME_22] {
            let Packet::V20(p) = parse(frame, 12).unwrap() else {
                panic!()
            };
            assert!(p.encrypted && p.authenticated);
            assert_eq!(p.auth_code.len(), 12);
            assert_eq!(p.signed.len() % 4, 0);
        }
        let Packet::V20(p) = parse(FRAME_9, 12).unwrap() else {
            panic!()
        };
        assert_eq!((p.session_id, p.seq), (0x0000_7482, 3));
    }

    #[test]
    fn request_checksums_match_ipmitool() {
        type Case<'a> = (u8, u8, u8, &'a [u8], &'a [u8]);
        let cases: [Case; 3] = [
            (
                0x06,
                0x3b,
                1,
                &[0x04],
                &[0x20, 0x18, 0xc8, 0x81, 0x04, 0x3b, 0x04, 0x3c],
            ),
            (
                0x00,
                0x01,
                6,
                &[],
                &[0x20, 0x00, 0xe0, 0x81, 0x18, 0x01, 0x66],
            ),
            (
                0x06,
                0x3c,
                7,
                &[0x82, 0x74, 0x00, 0x00],
                &[
                    0x20, 0x18, 0xc8, 0x81, 0x1c, 0x3c, 0x82, 0x74, 0x00, 0x00, 0x31,
                ],
            ),
        ];
        for (net_fn, cmd, rq_seq, data, want) in cases {
            let mut out = Vec::new();
            Request {
                net_fn,
                cmd,
                rq_seq,
                data,
            }
            .emit(&mut out);
            assert_eq!(out, want);
        }
        let r = Response::parse(&[
            0x81, 0x04, 0x7b, 0x20, 0x18, 0x01, 0x00, 0x01, 0x00, 0x00, 0xc6,
        ])
        .unwrap();
        assert_eq!(
            (r.net_fn, r.cmd, r.rq_seq, r.cc, r.data),
            (0x01, 0x01, 6, 0, &[0x01, 0x00, 0x00][..])
        );
        assert_eq!(
            Response::parse(&[0x81, 0x04, 0x7b, 0x20, 0x18, 0x01, 0x00, 0x01, 0x00, 0x00, 0xc7]),
            Err(Error::BadChecksum)
        );
    }

    #[test]
    fn no_input_panics() {
        let frames = [FRAME_1, FRAME_4, FRAME_9, FRAME_14];
        for f in frames {
            for len in 0..f.len() {
                let _ = parse(&f[..len], 12);
                let _ = parse(&f[..len], 16);
                let _ = Response::parse(&f[..len]);
            }
            for i in 4..f.len() {
                let mut g = f.to_vec();
                g[i] ^= 0xff;
                let _ = parse(&g, 12);
            }
        }
        assert_eq!(
            parse(&[0x06, 0x00, 0xff, 0x06, 0x00], 12),
            Err(Error::NotIpmi)
        );
        assert_eq!(parse(&RMCP_HEADER, 12), Err(Error::Truncated));
    }
}
