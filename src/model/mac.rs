//! MAC addresses: parsed once at the edge, printed lower-case with colons.

use std::fmt;
use std::str::FromStr;

/// A 48-bit Ethernet MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac(pub [u8; 6]);

/// Why a string is not a MAC address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a valid MAC address (expected six hex pairs such as 52:54:00:12:34:56)")]
pub struct BadMac(pub String);

impl FromStr for Mac {
    type Err = BadMac;

    /// Accepts `aa:bb:cc:dd:ee:ff` and `aa-bb-cc-dd-ee-ff`, any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadMac(s.to_string());
        let sep = if s.contains('-') { '-' } else { ':' };
        let mut out = [0u8; 6];
        let mut parts = s.split(sep);
        for byte in out.iter_mut() {
            let part = parts.next().ok_or_else(bad)?;
            if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Mac(out))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_cases() {
        let ok = [
            ("52:54:00:12:34:56", "52:54:00:12:34:56"),
            ("52:54:00:AB:cd:EF", "52:54:00:ab:cd:ef"),
            ("52-54-00-ab-cd-ef", "52:54:00:ab:cd:ef"),
        ];
        for (input, want) in ok {
            assert_eq!(input.parse::<Mac>().unwrap().to_string(), want);
        }
        let bad = [
            "",
            "52:54:00:12:34",
            "52:54:00:12:34:56:78",
            "5:54:00:12:34:56",
            "zz:54:00:12:34:56",
            "525400123456",
            "52:54:00:12:34:5g",
            "52:54-00:12:34:56",
            "+5:54:00:12:34:56",
        ];
        for input in bad {
            assert!(input.parse::<Mac>().is_err(), "{input:?} accepted");
        }
    }
}
