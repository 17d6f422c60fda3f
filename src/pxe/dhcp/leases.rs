//! The address pool and its leases, in memory. Pure: time is passed in
//! (unix seconds), nothing here does I/O. The server persists what changed
//! (`take_dirty`) in batches, so the hot path never waits for the disk.
//!
//! Rules:
//! - a client keeps its address: its last lease is remembered after expiry
//!   and release, and given back first;
//! - an offered address is held for that client for `hold` seconds, so two
//!   clients booting together never get the same offer (dnsmasq 2.90 offers
//!   both the same hashed address, and iPXE never recovers from the NAK);
//! - a new client starts probing at a hash of its MAC; addresses nobody ever
//!   had are taken before expired ones of other clients;
//! - a declined address is quarantined for `DECLINE_QUARANTINE` seconds.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

/// How long a declined address is left alone (dnsmasq uses 10 minutes too).
pub const DECLINE_QUARANTINE: u64 = 600;

pub use crate::model::lease::{Lease, LeaseState as State};

/// Why a REQUEST gets a NAK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    OutsidePool(Ipv4Addr),
    TakenByOther(Ipv4Addr),
    NotOffered(Ipv4Addr),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::OutsidePool(ip) => write!(f, "{ip} is not in this server's range"),
            Refusal::TakenByOther(ip) => write!(f, "{ip} is leased to another client"),
            Refusal::NotOffered(ip) => write!(f, "{ip} is not the address offered to this client"),
        }
    }
}

/// The pool (`first..=last`) and every record in it.
#[derive(Debug)]
pub struct Leases {
    first: u32,
    last: u32,
    by_ip: HashMap<u32, Lease>,
    by_mac: HashMap<[u8; 6], u32>,
    dirty: HashSet<u32>,
}

impl Leases {
    pub fn new(first: Ipv4Addr, last: Ipv4Addr) -> Leases {
        Leases {
            first: u32::from(first),
            last: u32::from(last).max(u32::from(first)),
            by_ip: HashMap::new(),
            by_mac: HashMap::new(),
            dirty: HashSet::new(),
        }
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        (self.first..=self.last).contains(&u32::from(ip))
    }

    fn size(&self) -> u32 {
        self.last - self.first + 1
    }

    /// Loads persisted records (at start-up); records outside the pool are dropped.
    pub fn load(&mut self, leases: impl IntoIterator<Item = Lease>) {
        for l in leases {
            if self.contains(l.ip) {
                self.put(l);
            }
        }
        self.dirty.clear();
    }

    fn put(&mut self, l: Lease) {
        let key = u32::from(l.ip);
        if let Some(old) = self.by_ip.get(&key) {
            if old.mac != l.mac && self.by_mac.get(&old.mac) == Some(&key) {
                self.by_mac.remove(&old.mac);
            }
        }
        if let Some(prev) = self.by_mac.insert(l.mac, key) {
            // The client moved: its old record stays (others may reuse it).
            let _ = prev;
        }
        self.by_ip.insert(key, l);
        self.dirty.insert(key);
    }

    /// The record of an address.
    #[cfg(test)]
    pub fn get(&self, ip: Ipv4Addr) -> Option<&Lease> {
        self.by_ip.get(&u32::from(ip))
    }

    /// This client's current record, if any.
    #[cfg(test)]
    pub fn of(&self, mac: [u8; 6]) -> Option<&Lease> {
        self.by_mac.get(&mac).and_then(|k| self.by_ip.get(k))
    }

    /// Whether `mac` may have `ip` now.
    fn free_for(&self, ip: u32, mac: [u8; 6], now: u64) -> bool {
        match self.by_ip.get(&ip) {
            None => true,
            Some(l) if l.state == State::Declined => l.expires <= now,
            Some(l) => l.mac == mac || l.expires <= now,
        }
    }

    /// Picks and holds an address for a DISCOVER. None: the pool is full.
    pub fn offer(
        &mut self,
        mac: [u8; 6],
        requested: Option<Ipv4Addr>,
        now: u64,
        hold: u64,
    ) -> Option<Ipv4Addr> {
        let ip = self.pick(mac, requested, now)?;
        self.put(Lease {
            ip: Ipv4Addr::from(ip),
            mac,
            state: match self.by_ip.get(&ip) {
                // Offering again what it holds keeps a binding a binding.
                Some(l) if l.mac == mac && l.state == State::Bound && l.expires > now => {
                    State::Bound
                }
                _ => State::Offered,
            },
            expires: match self.by_ip.get(&ip) {
                Some(l) if l.mac == mac && l.state == State::Bound => l.expires.max(now + hold),
                _ => now + hold,
            },
        });
        Some(Ipv4Addr::from(ip))
    }

    fn pick(&self, mac: [u8; 6], requested: Option<Ipv4Addr>, now: u64) -> Option<u32> {
        // 1. Its own last address, if nobody else has it now.
        if let Some(&k) = self.by_mac.get(&mac) {
            if self
                .by_ip
                .get(&k)
                .is_some_and(|l| l.state != State::Declined)
                && self.free_for(k, mac, now)
            {
                return Some(k);
            }
        }
        // 2. The address it asks for (option 50), if free.
        if let Some(r) = requested.filter(|r| self.contains(*r)).map(u32::from) {
            if self.free_for(r, mac, now) && self.by_ip.get(&r).is_none_or(|l| l.mac == mac) {
                return Some(r);
            }
        }
        // 3. From a hash of the MAC: never-used addresses first, then expired ones.
        let size = self.size();
        let start = fnv(&mac) % size;
        let probe = |i: u32| self.first + (start + i) % size;
        if let Some(k) = (0..size).map(probe).find(|k| !self.by_ip.contains_key(k)) {
            return Some(k);
        }
        (0..size)
            .map(probe)
            .filter(|k| self.free_for(*k, mac, now))
            .min_by_key(|k| self.by_ip.get(k).map_or(0, |l| l.expires))
    }

    /// A REQUEST for `ip`: binds it or says why not. `selecting` is a
    /// REQUEST answering our OFFER (option 54 is ours): then only the
    /// address we offered is acceptable.
    pub fn request(
        &mut self,
        mac: [u8; 6],
        ip: Ipv4Addr,
        selecting: bool,
        now: u64,
        lease_time: u64,
    ) -> Result<(), Refusal> {
        if !self.contains(ip) {
            return Err(Refusal::OutsidePool(ip));
        }
        let k = u32::from(ip);
        if !self.free_for(k, mac, now) {
            return Err(Refusal::TakenByOther(ip));
        }
        if selecting && !self.by_ip.contains_key(&k) {
            return Err(Refusal::NotOffered(ip));
        }
        if selecting && self.by_mac.get(&mac) != Some(&k) {
            return Err(Refusal::NotOffered(ip));
        }
        self.put(Lease {
            ip,
            mac,
            state: State::Bound,
            expires: now + lease_time,
        });
        Ok(())
    }

    /// The client chose another server: let our hold go.
    pub fn forget_offer(&mut self, mac: [u8; 6], now: u64) {
        if let Some(&k) = self.by_mac.get(&mac) {
            if let Some(l) = self.by_ip.get_mut(&k) {
                if l.state == State::Offered {
                    l.expires = now;
                    self.dirty.insert(k);
                }
            }
        }
    }

    /// RELEASE: the address is free again but stays this client's first choice.
    pub fn release(&mut self, mac: [u8; 6], ip: Ipv4Addr, now: u64) -> bool {
        let k = u32::from(ip);
        match self.by_ip.get_mut(&k) {
            Some(l) if l.mac == mac && l.state == State::Bound => {
                l.state = State::Released;
                l.expires = now;
                self.dirty.insert(k);
                true
            }
            _ => false,
        }
    }

    /// DECLINE: the client found the address in use; quarantine it.
    pub fn decline(&mut self, mac: [u8; 6], ip: Ipv4Addr, now: u64) -> bool {
        let k = u32::from(ip);
        match self.by_ip.get(&k) {
            Some(l) if l.mac == mac => {
                self.by_mac.remove(&mac);
                self.by_ip.insert(
                    k,
                    Lease {
                        ip,
                        mac,
                        state: State::Declined,
                        expires: now + DECLINE_QUARANTINE,
                    },
                );
                self.dirty.insert(k);
                true
            }
            _ => false,
        }
    }

    /// Marks records to be written again (a write failed).
    pub fn mark_dirty(&mut self, ips: &[Ipv4Addr]) {
        self.dirty.extend(ips.iter().map(|ip| u32::from(*ip)));
    }

    /// Records changed since the last call, for persisting.
    pub fn take_dirty(&mut self) -> Vec<Lease> {
        let keys: Vec<u32> = self.dirty.drain().collect();
        keys.iter()
            .filter_map(|k| self.by_ip.get(k).copied())
            .collect()
    }

    /// Every record.
    #[cfg(test)]
    pub fn all(&self) -> impl Iterator<Item = &Lease> {
        self.by_ip.values()
    }
}

/// FNV-1a over the MAC: a stable, well-spread starting point.
fn fnv(mac: &[u8; 6]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in mac {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 6] = [0x52, 0x54, 0, 0x77, 0xa0, 0];
    const B: [u8; 6] = [0x52, 0x54, 0, 0x77, 0xa1, 1];
    const C: [u8; 6] = [0x52, 0x54, 0, 0x77, 0xa2, 2];

    fn pool(n: u8) -> Leases {
        Leases::new(
            Ipv4Addr::new(10, 0, 0, 100),
            Ipv4Addr::new(10, 0, 0, 99 + n),
        )
    }

    #[test]
    fn clients_booting_together_get_different_offers() {
        let mut l = pool(100);
        let a = l.offer(A, None, 0, 30).unwrap();
        let b = l.offer(B, None, 0, 30).unwrap();
        let c = l.offer(C, None, 0, 30).unwrap();
        assert!(a != b && b != c && a != c);
        // Both ask for the same address: the second is refused.
        assert_eq!(l.request(A, a, true, 1, 3600), Ok(()));
        assert_eq!(
            l.request(B, a, true, 1, 3600),
            Err(Refusal::TakenByOther(a))
        );
        assert_eq!(l.request(B, b, true, 1, 3600), Ok(()));
        // Even when asking for another's offered address in a DISCOVER.
        let d = l.offer([9; 6], Some(c), 1, 30).unwrap();
        assert_ne!(d, c);
    }

    #[test]
    fn a_client_keeps_its_address() {
        let mut l = pool(10);
        let a = l.offer(A, None, 0, 30).unwrap();
        l.request(A, a, true, 0, 100).unwrap();
        // Renew, re-discover, after expiry, after release: the same address.
        assert_eq!(l.request(A, a, false, 50, 100), Ok(()));
        assert_eq!(l.offer(A, None, 60, 30), Some(a));
        assert_eq!(l.offer(A, None, 10_000, 30), Some(a));
        l.request(A, a, true, 10_000, 100).unwrap();
        assert!(l.release(A, a, 10_001));
        assert_eq!(l.offer(A, None, 10_002, 30), Some(a));
        // Persisted and loaded again: still the same.
        let saved: Vec<Lease> = l.all().copied().collect();
        let mut l2 = pool(10);
        l2.load(saved);
        assert_eq!(l2.offer(A, None, 20_000, 30), Some(a));
    }

    #[test]
    fn a_full_pool_reuses_expired_addresses_and_then_says_no() {
        let mut l = pool(2);
        let a = l.offer(A, None, 0, 30).unwrap();
        let b = l.offer(B, None, 5, 30).unwrap();
        assert_eq!(l.offer(C, None, 10, 30), None, "both held");
        // A's hold ran out: C may have it.
        assert_eq!(l.offer(C, None, 31, 30), Some(a));
        assert!(l.of(A).is_none(), "A lost its record");
        let _ = b;
    }

    #[test]
    fn selecting_requests_must_match_the_offer() {
        let mut l = pool(10);
        let a = l.offer(A, None, 0, 30).unwrap();
        let other = Ipv4Addr::from(u32::from(a) ^ 1);
        let want = if l.contains(other) {
            Refusal::NotOffered(other)
        } else {
            Refusal::OutsidePool(other)
        };
        assert_eq!(l.request(A, other, true, 1, 100), Err(want));
        assert_eq!(
            l.request(A, Ipv4Addr::new(192, 168, 1, 1), false, 1, 100),
            Err(Refusal::OutsidePool(Ipv4Addr::new(192, 168, 1, 1)))
        );
        // INIT-REBOOT for a free address in the pool is fine (authoritative).
        let free = Ipv4Addr::new(10, 0, 0, 105);
        if l.get(free).is_none() {
            assert_eq!(l.request(B, free, false, 1, 100), Ok(()));
        }
    }

    #[test]
    fn declined_addresses_are_quarantined() {
        let mut l = pool(10);
        let a = l.offer(A, None, 0, 30).unwrap();
        l.request(A, a, true, 0, 100).unwrap();
        assert!(l.decline(A, a, 5));
        let next = l.offer(A, None, 6, 30).unwrap();
        assert_ne!(next, a);
        assert_eq!(
            l.request(B, a, false, 7, 100),
            Err(Refusal::TakenByOther(a))
        );
        assert_eq!(l.get(a).unwrap().state, State::Declined);
        // After the quarantine it can be used again.
        assert_eq!(l.request(B, a, false, 6 + DECLINE_QUARANTINE, 100), Ok(()));
    }

    #[test]
    fn another_server_chosen_frees_the_hold() {
        let mut l = pool(1);
        let a = l.offer(A, None, 0, 30).unwrap();
        l.forget_offer(A, 1);
        assert_eq!(l.offer(B, None, 1, 30), Some(a));
        assert_eq!(l.take_dirty().len(), 1);
        assert!(l.take_dirty().is_empty());
        l.mark_dirty(&[a]);
        assert_eq!(l.take_dirty().len(), 1, "a failed write is retried");
    }
}
