//! TFTP packets (RFC 1350) with options (RFC 2347 OACK, 2348 blksize, 2349
//! timeout/tsize, 7440 windowsize). Pure: no I/O, no panics on any input.

/// Opcodes.
pub const RRQ: u16 = 1;
pub const WRQ: u16 = 2;
pub const DATA: u16 = 3;
pub const ACK: u16 = 4;
pub const ERROR: u16 = 5;
pub const OACK: u16 = 6;

/// Error codes (RFC 1350 §5, RFC 2347).
pub mod code {
    pub const NOT_DEFINED: u16 = 0;
    pub const FILE_NOT_FOUND: u16 = 1;
    pub const ACCESS_VIOLATION: u16 = 2;
    pub const ILLEGAL_OPERATION: u16 = 4;
}

/// A parsed packet. Strings are kept as sent (options are matched without
/// regard to case, as RFC 2347 says).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    Read(Request),
    Write(Request),
    Data { block: u16, data: &'a [u8] },
    Ack { block: u16 },
    Error { code: u16, message: String },
    Oack(Vec<(String, String)>),
}

/// A read or write request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub filename: String,
    pub mode: String,
    pub options: Vec<(String, String)>,
}

impl Request {
    /// An option's value by name, any case.
    #[cfg(test)]
    pub fn option(&self, name: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why bytes are not a TFTP packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("shorter than 4 bytes")]
    Truncated,
    #[error("unknown opcode {0}")]
    BadOpcode(u16),
    #[error("a request field is not NUL-terminated")]
    Unterminated,
    #[error("a request field is not text")]
    NotText,
    #[error("request without a file name")]
    NoFilename,
}

/// Splits NUL-terminated strings.
fn strings(b: &[u8]) -> Result<Vec<String>, Error> {
    if b.is_empty() {
        return Ok(Vec::new());
    }
    if b.last() != Some(&0) {
        return Err(Error::Unterminated);
    }
    b[..b.len() - 1]
        .split(|&c| c == 0)
        .map(|s| String::from_utf8(s.to_vec()).map_err(|_| Error::NotText))
        .collect()
}

fn request(b: &[u8]) -> Result<Request, Error> {
    let mut parts = strings(b)?.into_iter();
    let filename = parts
        .next()
        .filter(|f| !f.is_empty())
        .ok_or(Error::NoFilename)?;
    let mode = parts.next().unwrap_or_default();
    let rest: Vec<String> = parts.collect();
    // Option names and values come in pairs; an odd one out is ignored.
    let options = rest
        .chunks_exact(2)
        .map(|p| (p[0].clone(), p[1].clone()))
        .collect();
    Ok(Request {
        filename,
        mode,
        options,
    })
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([b[i], b[i + 1]])
}

impl<'a> Packet<'a> {
    pub fn parse(b: &'a [u8]) -> Result<Packet<'a>, Error> {
        if b.len() < 4 && !(b.len() >= 2 && matches!(u16_at(b, 0), RRQ | WRQ)) {
            return Err(Error::Truncated);
        }
        let op = u16_at(b, 0);
        Ok(match op {
            RRQ => Packet::Read(request(&b[2..])?),
            WRQ => Packet::Write(request(&b[2..])?),
            DATA => Packet::Data {
                block: u16_at(b, 2),
                data: &b[4..],
            },
            ACK => Packet::Ack {
                block: u16_at(b, 2),
            },
            ERROR => {
                let text = &b[4..];
                let end = text.iter().position(|&c| c == 0).unwrap_or(text.len());
                Packet::Error {
                    code: u16_at(b, 2),
                    message: String::from_utf8_lossy(&text[..end]).into_owned(),
                }
            }
            OACK => {
                let s = strings(&b[2..])?;
                Packet::Oack(
                    s.chunks_exact(2)
                        .map(|p| (p[0].clone(), p[1].clone()))
                        .collect(),
                )
            }
            other => return Err(Error::BadOpcode(other)),
        })
    }
}

/// DATA header + payload.
pub fn data(block: u16, payload: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&DATA.to_be_bytes());
    out.extend_from_slice(&block.to_be_bytes());
    out.extend_from_slice(payload);
}

#[cfg(test)]
pub fn ack(block: u16) -> [u8; 4] {
    let b = block.to_be_bytes();
    let o = ACK.to_be_bytes();
    [o[0], o[1], b[0], b[1]]
}

pub fn error(code: u16, message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + message.len());
    out.extend_from_slice(&ERROR.to_be_bytes());
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(message.as_bytes());
    out.push(0);
    out
}

pub fn oack(options: &[(String, String)]) -> Vec<u8> {
    let mut out = OACK.to_be_bytes().to_vec();
    for (k, v) in options {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The RRQ EDK2/OVMF sends (Preboot-Oxide's capture, reference notes):
    /// `snponly.efi`, octet, tsize 0, blksize 1468, windowsize 4.
    const OVMF_RRQ: &[u8] =
        b"\x00\x01snponly.efi\x00octet\x00tsize\x000\x00blksize\x001468\x00windowsize\x004\x00";

    #[test]
    fn parses_requests_and_their_options() {
        let Packet::Read(r) = Packet::parse(OVMF_RRQ).unwrap() else {
            panic!("not a read request")
        };
        assert_eq!(
            (r.filename.as_str(), r.mode.as_str()),
            ("snponly.efi", "octet")
        );
        assert_eq!(r.option("TSIZE"), Some("0"));
        assert_eq!(r.option("blksize"), Some("1468"));
        assert_eq!(r.option("windowsize"), Some("4"));
        assert_eq!(r.option("timeout"), None);
        let mut w = OVMF_RRQ.to_vec();
        w[1] = 2;
        assert!(matches!(Packet::parse(&w), Ok(Packet::Write(_))));
    }

    #[test]
    fn other_packets_round_trip() {
        let mut out = Vec::new();
        data(65535, b"abc", &mut out);
        assert_eq!(
            Packet::parse(&out).unwrap(),
            Packet::Data {
                block: 65535,
                data: b"abc"
            }
        );
        assert_eq!(Packet::parse(&ack(7)).unwrap(), Packet::Ack { block: 7 });
        assert_eq!(
            Packet::parse(&error(8, "tsize probe")).unwrap(),
            Packet::Error {
                code: 8,
                message: "tsize probe".into()
            }
        );
        let o = oack(&[("blksize".into(), "1468".into())]);
        assert_eq!(
            Packet::parse(&o).unwrap(),
            Packet::Oack(vec![("blksize".into(), "1468".into())])
        );
    }

    #[test]
    fn bad_packets_are_errors() {
        assert_eq!(Packet::parse(&[0, 4, 0]), Err(Error::Truncated));
        assert_eq!(Packet::parse(&[0, 9, 0, 0]), Err(Error::BadOpcode(9)));
        assert_eq!(Packet::parse(b"\x00\x01file"), Err(Error::Unterminated));
        assert_eq!(
            Packet::parse(b"\x00\x01\x00octet\x00"),
            Err(Error::NoFilename)
        );
        assert_eq!(
            Packet::parse(b"\x00\x01\xff\xfe\x00octet\x00"),
            Err(Error::NotText)
        );
        // ERROR without a terminating NUL still parses.
        assert!(matches!(
            Packet::parse(b"\x00\x05\x00\x01oops"),
            Ok(Packet::Error { code: 1, .. })
        ));
        for len in 0..OVMF_RRQ.len() {
            let _ = Packet::parse(&OVMF_RRQ[..len]);
        }
    }
}
