//! The DHCP server: `wire` (messages), `leases` (the pool), `handler` (the
//! pure decider) and, here, the sockets around them.
//!
//! One socket on UDP 67 bound to the interface (SO_BINDTODEVICE), and in
//! proxy mode a second one on 4011. A packet is parsed, looked up in the
//! BootBackend, decided, answered; only then are its events queued for the
//! node timeline, and changed leases are written in batches, so the reply
//! never waits for the disk.

pub mod handler;
pub mod leases;
#[cfg(test)]
pub mod vectors;
pub mod wire;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::net::UdpSocket;
use tokio::sync::watch;

use self::handler::{Dest, Mode, Port};
use self::leases::{Lease, Leases};
use self::wire::Message;
use super::BootBackend;
use crate::model::{Mac, Severity};

/// A lease store failure, as the store put it.
pub type LeaseError = Box<dyn std::error::Error + Send + Sync>;

/// Where the DHCP server keeps its leases, handed in by `app.rs`. The calls
/// block; the server makes them off the reply path, in batches.
pub trait LeaseStore: Send + Sync + 'static {
    /// Every lease kept.
    fn load(&self) -> std::result::Result<Vec<Lease>, LeaseError>;
    /// Writes changed leases (all or none).
    fn save(&self, leases: &[Lease]) -> std::result::Result<(), LeaseError>;
}

/// Everything the server needs besides the decider's settings.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub interface: String,
    pub decider: handler::Settings,
    /// First and last address of the pool (authoritative mode).
    pub range: Option<(Ipv4Addr, Ipv4Addr)>,
    /// How often changed leases are written.
    pub lease_flush_interval: Duration,
    /// UDP ports (67 and 4011 unless a test says otherwise).
    pub dhcp_port: u16,
    pub pxe_port: u16,
}

/// Counters by message verdict, for the log line at shutdown (`/metrics`
/// counts by message type and verdict in `crate::metrics`).
#[derive(Debug, Default)]
pub struct Counters {
    pub received: AtomicU64,
    pub replied: AtomicU64,
    pub ignored: AtomicU64,
    pub malformed: AtomicU64,
}

/// The interface's first IPv4 address and netmask.
pub fn interface_ipv4(name: &str) -> Result<(Ipv4Addr, Ipv4Addr)> {
    let addrs = nix::ifaddrs::getifaddrs().context("cannot list network interfaces")?;
    for a in addrs {
        if a.interface_name != name {
            continue;
        }
        let ip = a
            .address
            .as_ref()
            .and_then(|s| s.as_sockaddr_in())
            .map(|s| s.ip());
        let mask = a
            .netmask
            .as_ref()
            .and_then(|s| s.as_sockaddr_in())
            .map(|s| s.ip());
        if let (Some(ip), Some(mask)) = (ip, mask) {
            return Ok((ip, mask));
        }
    }
    anyhow::bail!(
        "[dhcp] interface {name:?} has no IPv4 address; add one (ip addr add 10.77.0.1/24 dev {name}) or set [dhcp] server_address"
    )
}

/// The server's sockets: UDP 67 (or `[dhcp] port`) and, in proxy mode, 4011.
pub struct Sockets {
    pub main: UdpSocket,
    pub pxe: Option<UdpSocket>,
}

/// Binds the server's sockets to the interface (done by `app.rs` before
/// the server starts, so READY means bound).
pub fn bind(interface: &str, mode: Mode, dhcp_port: u16, pxe_port: u16) -> Result<Sockets> {
    Ok(Sockets {
        main: bind_udp(interface, dhcp_port)?,
        pxe: match mode {
            Mode::Proxy => Some(bind_udp(interface, pxe_port)?),
            Mode::Authoritative => None,
        },
    })
}

fn bind_udp(interface: &str, port: u16) -> Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.set_broadcast(true)?;
    s.bind_device(Some(interface.as_bytes())).with_context(|| {
        format!("cannot bind to interface {interface:?} (SO_BINDTODEVICE needs CAP_NET_RAW; does the interface exist?)")
    })?;
    s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)).into())
        .with_context(|| format!("cannot bind UDP port {port} on {interface} (needs CAP_NET_BIND_SERVICE; is another DHCP server running?)"))?;
    s.set_nonblocking(true)?;
    Ok(UdpSocket::from_std(s.into())?)
}

/// Adds an ARP entry for (ip, mac) on the interface so a reply can be
/// unicast to a client that has no address yet (RFC 2131 §4.1). False when
/// the kernel refuses; the caller then broadcasts.
fn arp_set(sock: &UdpSocket, interface: &str, ip: Ipv4Addr, mac: Mac) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: arpreq is plain old data; every field is initialised below and
    // the ioctl only reads it.
    unsafe {
        let mut req: libc::arpreq = std::mem::zeroed();
        let pa = &mut req.arp_pa as *mut libc::sockaddr as *mut libc::sockaddr_in;
        (*pa).sin_family = libc::AF_INET as libc::sa_family_t;
        (*pa).sin_addr.s_addr = u32::from(ip).to_be();
        req.arp_ha.sa_family = libc::ARPHRD_ETHER;
        for (i, b) in mac.0.iter().enumerate() {
            req.arp_ha.sa_data[i] = *b as libc::c_char;
        }
        req.arp_flags = libc::ATF_COM;
        for (i, b) in interface.bytes().take(15).enumerate() {
            req.arp_dev[i] = b as libc::c_char;
        }
        libc::ioctl(sock.as_raw_fd(), libc::SIOCSARP, &req) == 0
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Logs ignored packets at most once a minute per MAC (a bounded table).
struct Quiet {
    seen: HashMap<[u8; 6], Instant>,
}

impl Quiet {
    const MAX: usize = 4096;
    const EVERY: Duration = Duration::from_secs(60);

    fn should_log(&mut self, mac: [u8; 6]) -> bool {
        let now = Instant::now();
        match self.seen.get(&mac) {
            Some(t) if now.duration_since(*t) < Self::EVERY => false,
            _ => {
                if self.seen.len() >= Self::MAX {
                    self.seen.clear();
                }
                self.seen.insert(mac, now);
                true
            }
        }
    }
}

/// The running server's shared parts.
struct Shared {
    settings: ServerSettings,
    backend: Arc<BootBackend>,
    leases: Option<Mutex<Leases>>,
    timeline: Arc<super::Timeline>,
    counters: Arc<Counters>,
    quiet: Mutex<Quiet>,
}

/// A started server.
pub struct Running {
    pub counters: Arc<Counters>,
    /// The receive loops and the lease flush; each ends at `stop`.
    tasks: tokio::task::JoinSet<()>,
}

impl Running {
    /// Waits, after `stop` turned true, for the receive loops to end and
    /// the last lease write.
    pub async fn finish(mut self) {
        while self.tasks.join_next().await.is_some() {}
        let c = &self.counters;
        tracing::info!(
            received = c.received.load(Ordering::Relaxed),
            replied = c.replied.load(Ordering::Relaxed),
            ignored = c.ignored.load(Ordering::Relaxed),
            malformed = c.malformed.load(Ordering::Relaxed),
            "DHCP server stopped; leases written"
        );
    }
}

/// Starts the server; runs until `stop` turns true, then writes the last
/// leases. Errors only at start-up (binding, reading leases).
pub async fn serve(
    sockets: Sockets,
    settings: ServerSettings,
    backend: Arc<BootBackend>,
    store: Arc<dyn LeaseStore>,
    timeline: Arc<super::Timeline>,
    stop: watch::Receiver<bool>,
) -> Result<Running> {
    let Sockets { main, pxe } = sockets;
    let leases = match (settings.decider.mode, settings.range) {
        (Mode::Authoritative, Some((first, last))) => {
            let s = store.clone();
            let rows = tokio::task::spawn_blocking(move || s.load())
                .await?
                .map_err(|e| anyhow::anyhow!("cannot read DHCP leases: {e}"))?;
            let mut l = Leases::new(first, last);
            l.load(rows);
            Some(Mutex::new(l))
        }
        (Mode::Authoritative, None) => {
            anyhow::bail!("[dhcp] mode = \"authoritative\" needs [dhcp] range")
        }
        (Mode::Proxy, _) => None,
    };
    let counters = Arc::new(Counters::default());
    tracing::info!(
        interface = %settings.interface,
        mode = ?settings.decider.mode,
        server = %settings.decider.server_ip,
        "DHCP server listening on UDP {}{}",
        settings.dhcp_port,
        if pxe.is_some() { format!(" and {}", settings.pxe_port) } else { String::new() }
    );
    let shared = Arc::new(Shared {
        settings,
        backend,
        leases,
        timeline,
        counters: counters.clone(),
        quiet: Mutex::new(Quiet {
            seen: HashMap::new(),
        }),
    });
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(receive(
        shared.clone(),
        Arc::new(main),
        Port::Dhcp,
        stop.clone(),
    ));
    if let Some(pxe) = pxe {
        tasks.spawn(receive(
            shared.clone(),
            Arc::new(pxe),
            Port::Pxe,
            stop.clone(),
        ));
    }
    if shared.leases.is_some() {
        tasks.spawn(flush_leases(shared, store, stop));
    }
    Ok(Running { counters, tasks })
}

async fn receive(
    shared: Arc<Shared>,
    sock: Arc<UdpSocket>,
    port: Port,
    mut stop: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 4096];
    let mut out = Vec::with_capacity(600);
    loop {
        let (n, src) = tokio::select! {
            r = sock.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "DHCP receive failed");
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let SocketAddr::V4(src) = src else { continue };
        shared.counters.received.fetch_add(1, Ordering::Relaxed);
        handle_packet(&shared, &sock, port, src, &buf[..n], &mut out).await;
    }
}

async fn handle_packet(
    shared: &Shared,
    sock: &UdpSocket,
    port: Port,
    src: SocketAddrV4,
    bytes: &[u8],
    out: &mut Vec<u8>,
) {
    let req = match Message::parse(bytes) {
        Ok(m) => m,
        Err(e) => {
            shared.counters.malformed.fetch_add(1, Ordering::Relaxed);
            crate::metrics::dhcp("not DHCP", "ignore");
            tracing::debug!(%src, error = %e, "ignored a packet that is not DHCP");
            return;
        }
    };
    let mac = req.mac();
    if let Some(why) = &req.malformed {
        shared.counters.malformed.fetch_add(1, Ordering::Relaxed);
        tracing::info!(%src, mac = %mac.map(Mac).map_or("-".into(), |m| m.to_string()), "malformed DHCP options ignored: {why}");
    }
    let who = mac.and_then(|m| shared.backend.boot_for(Mac(m)));
    let outcome = {
        let mut guard = shared
            .leases
            .as_ref()
            .map(|l| l.lock().unwrap_or_else(|p| p.into_inner()));
        handler::handle(
            &req,
            port,
            src,
            who.as_ref(),
            &shared.settings.decider,
            guard.as_deref_mut(),
            unix_now(),
        )
    };
    if let Some(reply) = &outcome.reply {
        reply.msg.emit(out);
        let to = match reply.dest {
            Dest::Relay(g) => SocketAddrV4::new(g, 67),
            Dest::Unicast(a) => a,
            Dest::Broadcast => SocketAddrV4::new(Ipv4Addr::BROADCAST, 68),
            Dest::Direct { ip, mac } => {
                if arp_set(sock, &shared.settings.interface, ip, mac) {
                    SocketAddrV4::new(ip, 68)
                } else {
                    SocketAddrV4::new(Ipv4Addr::BROADCAST, 68)
                }
            }
        };
        match tokio::time::timeout(Duration::from_secs(1), sock.send_to(out, to)).await {
            Ok(Ok(_)) => {
                shared.counters.replied.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Err(e)) => tracing::warn!(%to, error = %e, "DHCP reply could not be sent"),
            Err(_) => tracing::warn!(%to, "DHCP reply send timed out"),
        }
    } else {
        shared.counters.ignored.fetch_add(1, Ordering::Relaxed);
    }
    let kind = req.message_type().map_or("?", |k| k.name());
    crate::metrics::dhcp(kind, outcome.verdict);
    let mac_text = mac.map(Mac).map_or("-".into(), |m| m.to_string());
    match &who {
        Some(node) => {
            tracing::info!(node = %node.label(), mac = %mac_text, "DHCP {kind}: {}", outcome.note);
            let severity = if outcome.verdict == "ignore" || outcome.verdict == "nak" {
                Severity::Warning
            } else {
                Severity::Info
            };
            let via = if port == Port::Pxe {
                " on port 4011"
            } else {
                ""
            };
            shared.timeline.note(
                node.node,
                severity,
                "dhcp",
                format!(
                    "DHCP {kind}{via} from {mac_text} ({}): {}",
                    bootfile_client(&req),
                    outcome.note
                ),
            );
            if let Some(r) = outcome
                .reply
                .as_ref()
                .filter(|r| r.msg.message_type() == Some(wire::MessageType::Ack))
            {
                let ip = if r.msg.yiaddr.is_unspecified() {
                    r.msg.ciaddr
                } else {
                    r.msg.yiaddr
                };
                if !ip.is_unspecified() {
                    shared.timeline.learn_ip(ip, node.node);
                }
            }
        }
        None if outcome.reply.is_none() => {
            let log = mac.is_none_or(|m| {
                shared
                    .quiet
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .should_log(m)
            });
            // Every ignored packet is logged; repeats within a minute at debug.
            if log {
                tracing::info!(mac = %mac_text, %src, "DHCP {kind} ignored: {}", outcome.note);
            } else {
                tracing::debug!(mac = %mac_text, %src, "DHCP {kind} ignored: {}", outcome.note);
            }
        }
        None => tracing::debug!(mac = %mac_text, "DHCP {kind}: {}", outcome.note),
    }
}

fn bootfile_client(req: &Message) -> String {
    super::bootfile::Client::of(req).describe()
}

/// Writes changed leases every interval, and once more at stop.
async fn flush_leases(
    shared: Arc<Shared>,
    store: Arc<dyn LeaseStore>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(
        shared
            .settings
            .lease_flush_interval
            .max(Duration::from_millis(10)),
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            _ = tick.tick() => false,
            _ = stop.changed() => true,
        };
        let dirty = match &shared.leases {
            Some(l) => l.lock().unwrap_or_else(|p| p.into_inner()).take_dirty(),
            None => return,
        };
        if !dirty.is_empty() {
            let n = dirty.len();
            let ips: Vec<Ipv4Addr> = dirty.iter().map(|r| r.ip).collect();
            let s = store.clone();
            let saved =
                tokio::task::spawn_blocking(move || s.save(&dirty).map_err(|e| e.to_string()))
                    .await
                    .unwrap_or_else(|e| Err(e.to_string()));
            if let Err(e) = saved {
                // Kept dirty: the next flush tries again, nothing is lost.
                if let Some(l) = &shared.leases {
                    l.lock().unwrap_or_else(|p| p.into_inner()).mark_dirty(&ips);
                }
                tracing::error!(error = %e, leases = n, "cannot write DHCP leases; will retry");
            }
        }
        if stopping {
            return;
        }
    }
}
