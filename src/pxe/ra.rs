//! IPv6 router advertisements on the provisioning interface, so iPXE does
//! not wait ~15 s for one before it uses its DHCPv4 answer
//! (shared/reference/qemu-pxe-lab.md, pitfall 1). The RA says "no default
//! router, no prefix": it ends the wait and configures nothing.

use std::mem::MaybeUninit;
use std::net::{Ipv6Addr, SocketAddrV6};

use anyhow::{Context, Result};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::sync::watch;

const ROUTER_SOLICITATION: u8 = 133;
const ROUTER_ADVERTISEMENT: u8 = 134;
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);

/// The RA (RFC 4861 §4.2): hop limit 64, no flags, router lifetime 0 (not
/// a default router), no options. The kernel fills in the checksum.
pub fn advertisement() -> [u8; 16] {
    let mut ra = [0u8; 16];
    ra[0] = ROUTER_ADVERTISEMENT;
    ra[4] = 64;
    ra
}

/// Whether an ICMPv6 message is a router solicitation.
pub fn is_solicitation(b: &[u8]) -> bool {
    b.len() >= 8 && b[0] == ROUTER_SOLICITATION && b[1] == 0
}

/// The router-advertisement socket on one interface, bound and joined.
pub struct Responder {
    fd: AsyncFd<Socket>,
    to: SocketAddrV6,
    interface: String,
}

/// Opens the ICMPv6 socket on `interface` (done by `app.rs` at start-up).
pub fn bind(interface: &str) -> Result<Responder> {
    let index = nix::net::if_::if_nametoindex(interface)
        .with_context(|| format!("no interface {interface:?} for router advertisements"))?;
    let s = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))
        .context("cannot open an ICMPv6 socket (needs CAP_NET_RAW)")?;
    s.bind_device(Some(interface.as_bytes()))?;
    s.set_multicast_hops_v6(255)?;
    s.set_unicast_hops_v6(255)?;
    s.set_multicast_if_v6(index)?;
    s.join_multicast_v6(&ALL_ROUTERS, index)
        .with_context(|| format!("cannot join ff02::2 on {interface} (is IPv6 enabled on it?)"))?;
    s.set_nonblocking(true)?;
    // SAFETY: the AsyncFd owns the socket, so its descriptor stays open and
    // the same for the AsyncFd's whole life.
    let fd = unsafe { AsyncFd::register(s) }
        .map_err(|e| anyhow::anyhow!("cannot register the ICMPv6 socket with tokio: {e}"))?;
    Ok(Responder {
        fd,
        to: SocketAddrV6::new(ALL_NODES, 0, 0, index),
        interface: interface.to_string(),
    })
}

/// Answers router solicitations until `stop`; sends one advertisement at
/// start.
pub async fn serve(r: Responder, mut stop: watch::Receiver<bool>) {
    let Responder { fd, to, interface } = r;
    let ra = advertisement();
    let send = |fd: &AsyncFd<Socket>| {
        if let Err(e) = fd.get_ref().send_to(&ra, &to.into()) {
            tracing::debug!(error = %e, "router advertisement not sent");
        }
    };
    send(&fd);
    tracing::info!(%interface, "answering IPv6 router solicitations (no prefix, no default route)");
    let mut buf = [MaybeUninit::<u8>::uninit(); 1500];
    loop {
        tokio::select! {
            r = fd.readable() => {
                let mut guard = match r {
                    Ok(g) => g,
                    Err(e) => {
                        tracing::warn!(error = %e, "router solicitation socket failed");
                        return;
                    }
                };
                match guard.try_io(|inner| inner.get_ref().recv_from(&mut buf)) {
                    Ok(Ok((n, from))) => {
                        // SAFETY: recv_from initialised the first n bytes.
                        let bytes: Vec<u8> = buf[..n].iter().map(|b| unsafe { b.assume_init() }).collect();
                        if is_solicitation(&bytes) {
                            send(&fd);
                            let from = from.as_socket_ipv6().map(|a| a.ip().to_string()).unwrap_or_default();
                            tracing::debug!(%interface, %from, "router solicitation answered");
                        }
                    }
                    Ok(Err(e)) => tracing::debug!(error = %e, "ICMPv6 receive failed"),
                    Err(_would_block) => continue,
                }
            }
            _ = stop.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertisement_bytes() {
        let ra = advertisement();
        assert_eq!(ra[0], 134);
        assert_eq!(
            &ra[6..8],
            &[0, 0],
            "router lifetime 0: not a default router"
        );
        assert!(is_solicitation(&[133, 0, 0, 0, 0, 0, 0, 0]));
        assert!(!is_solicitation(&[133, 0, 0]));
        assert!(!is_solicitation(&[135, 0, 0, 0, 0, 0, 0, 0]));
    }
}
