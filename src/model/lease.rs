//! A DHCP lease record: one address, who holds it, in what state, until when.
//! The DHCP server keeps them in memory and the store persists them; both
//! use this one typed record, so no layer matches on state strings.

use std::net::Ipv4Addr;

/// Where an address is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseState {
    Offered,
    Bound,
    Released,
    Declined,
}

impl LeaseState {
    pub fn as_str(self) -> &'static str {
        match self {
            LeaseState::Offered => "offered",
            LeaseState::Bound => "bound",
            LeaseState::Released => "released",
            LeaseState::Declined => "declined",
        }
    }

    pub fn parse(s: &str) -> Option<LeaseState> {
        Some(match s {
            "offered" => LeaseState::Offered,
            "bound" => LeaseState::Bound,
            "released" => LeaseState::Released,
            "declined" => LeaseState::Declined,
            _ => return None,
        })
    }
}

/// One address's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub ip: Ipv4Addr,
    pub mac: [u8; 6],
    pub state: LeaseState,
    /// Unix seconds when the hold, lease or quarantine ends.
    pub expires: u64,
}

#[cfg(test)]
mod tests {
    use super::LeaseState;

    #[test]
    fn states_round_trip() {
        for s in [
            LeaseState::Offered,
            LeaseState::Bound,
            LeaseState::Released,
            LeaseState::Declined,
        ] {
            assert_eq!(LeaseState::parse(s.as_str()), Some(s));
        }
        assert_eq!(LeaseState::parse("leased"), None);
    }
}
