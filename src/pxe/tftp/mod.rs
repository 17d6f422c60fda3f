//! The TFTP server: read-only, files from `[tftp] root` only, for first-stage
//! loaders. Options blksize, tsize, timeout (RFC 2347-2349) and windowsize
//! (RFC 7440); block numbers roll over past 65535; a client ERROR ends a
//! transfer at once (PXE ROMs abort after a tsize probe); retransmissions
//! are bounded; transfers at once are capped.
//!
//! Written here rather than with async-tftp (DESIGN.md): that crate has no
//! windowsize, ignores client ERROR packets and runs its own reactor.

pub mod wire;

use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::net::UdpSocket;
use tokio::sync::{watch, Semaphore};

use self::wire::{code, Packet, Request};

/// Server limits (`[tftp]` keys).
#[derive(Debug, Clone)]
pub struct Settings {
    pub root: PathBuf,
    /// Largest block size granted (interface MTU − 32 for IPv4).
    pub max_blksize: u16,
    /// Largest window granted.
    pub max_windowsize: u16,
    /// Retransmission timeout when the client asks for none.
    pub timeout: Duration,
    /// Retransmissions of one packet before the transfer is dropped.
    pub retries: u32,
    /// Transfers at once; more are refused with an ERROR.
    pub max_transfers: usize,
}

/// Counters for logs and metrics.
#[derive(Debug, Default)]
pub struct Counters {
    pub transfers: AtomicU64,
    pub completed: AtomicU64,
    pub failed: AtomicU64,
    pub retransmits: AtomicU64,
    pub bytes: AtomicU64,
    pub refused: AtomicU64,
}

/// What a request gets: the options granted, and the OACK if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub blksize: u16,
    pub windowsize: u16,
    pub timeout: Duration,
    /// Options to acknowledge (only those the client asked for and we took).
    pub oack: Vec<(String, String)>,
}

/// Negotiates options for a read of a file of `size` bytes. Options with
/// bad values are left out of the OACK (RFC 2347: the default applies).
pub fn negotiate(req: &Request, s: &Settings, size: u64) -> Negotiated {
    let mut n = Negotiated {
        blksize: 512,
        windowsize: 1,
        timeout: s.timeout,
        oack: Vec::new(),
    };
    for (name, value) in &req.options {
        let v: Option<u64> = value.trim().parse().ok();
        match name.to_ascii_lowercase().as_str() {
            "blksize" => {
                if let Some(b) = v.filter(|b| (8..=65464).contains(b)) {
                    n.blksize = (b as u16).min(s.max_blksize.max(8));
                    n.oack.push(("blksize".into(), n.blksize.to_string()));
                }
            }
            "tsize" => n.oack.push(("tsize".into(), size.to_string())),
            "timeout" => {
                if let Some(t) = v.filter(|t| (1..=255).contains(t)) {
                    n.timeout = Duration::from_secs(t);
                    n.oack.push(("timeout".into(), t.to_string()));
                }
            }
            "windowsize" => {
                if let Some(w) = v.filter(|w| (1..=65535).contains(w)) {
                    n.windowsize = (w as u16).min(s.max_windowsize.max(1));
                    n.oack.push(("windowsize".into(), n.windowsize.to_string()));
                }
            }
            _ => {}
        }
    }
    n
}

/// Maps a requested name to a file under `root` (canonical), or says why
/// not as a TFTP error. Backslashes count as slashes and a leading slash is
/// dropped; `..`, and symlinks leading out of the root, are refused.
pub fn resolve(root: &Path, name: &str) -> Result<PathBuf, (u16, String)> {
    let name = name.replace('\\', "/");
    let rel = name.trim_start_matches('/');
    if rel.is_empty() {
        return Err((code::FILE_NOT_FOUND, "no file name".into()));
    }
    if Path::new(rel)
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err((
            code::ACCESS_VIOLATION,
            format!("{name:?} leaves the TFTP root"),
        ));
    }
    let full = root.join(rel);
    let real = match full.canonicalize() {
        Ok(p) => p,
        Err(_) => return Err((code::FILE_NOT_FOUND, format!("{name} not found"))),
    };
    if !real.starts_with(root) {
        return Err((
            code::ACCESS_VIOLATION,
            format!("{name:?} leads out of the TFTP root"),
        ));
    }
    if !real.is_file() {
        return Err((code::FILE_NOT_FOUND, format!("{name} is not a file")));
    }
    Ok(real)
}

/// Binds the server's socket (done by `app.rs` before the server starts).
pub async fn bind(listen: std::net::SocketAddr) -> Result<UdpSocket> {
    UdpSocket::bind(listen).await.with_context(|| {
        format!("cannot bind TFTP on {listen} ([tftp] listen; port 69 needs CAP_NET_BIND_SERVICE)")
    })
}

/// Checks the settings (the root must exist) before the server starts.
pub fn check(mut settings: Settings) -> Result<Settings> {
    settings.root = settings
        .root
        .canonicalize()
        .with_context(|| format!("[tftp] root {} does not exist", settings.root.display()))?;
    Ok(settings)
}

/// Serves read requests on `sock` until `stop`; transfers in flight then
/// are ended (a client retries with a new request).
pub async fn serve(
    sock: UdpSocket,
    settings: Settings,
    timeline: Option<Arc<super::Timeline>>,
    mut stop: watch::Receiver<bool>,
) {
    let listen = sock.local_addr().ok();
    tracing::info!(?listen, root = %settings.root.display(), "TFTP listening (read-only)");
    let counters = Arc::new(Counters::default());
    let slots = Arc::new(Semaphore::new(settings.max_transfers.max(1)));
    let settings = Arc::new(settings);
    let c = counters.clone();
    let mut transfers = tokio::task::JoinSet::new();
    {
        let mut buf = vec![0u8; 2048];
        loop {
            // Reap finished transfers (at most max_transfers are running).
            while transfers.try_join_next().is_some() {}
            let (n, client) = tokio::select! {
                r = sock.recv_from(&mut buf) => match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "TFTP receive failed");
                        continue;
                    }
                },
                _ = stop.changed() => break,
            };
            let req = match Packet::parse(&buf[..n]) {
                Ok(Packet::Read(r)) => r,
                Ok(Packet::Write(r)) => {
                    tracing::info!(%client, file = %r.filename, "TFTP write request refused (read-only)");
                    let _ = sock
                        .send_to(
                            &wire::error(code::ACCESS_VIOLATION, "this TFTP server is read-only"),
                            client,
                        )
                        .await;
                    continue;
                }
                Ok(_) => continue, // stray packet for a finished transfer
                Err(e) => {
                    tracing::debug!(%client, error = %e, "ignored a packet that is not TFTP");
                    continue;
                }
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                c.refused.fetch_add(1, Ordering::Relaxed);
                crate::metrics::tftp("busy", 0, 0);
                tracing::warn!(%client, file = %req.filename, "TFTP busy: too many transfers ([tftp] max_transfers)");
                let _ = sock
                    .send_to(
                        &wire::error(code::NOT_DEFINED, "server busy, try again"),
                        client,
                    )
                    .await;
                continue;
            };
            let (s, c, t) = (settings.clone(), c.clone(), timeline.clone());
            let local = sock.local_addr().ok();
            transfers.spawn(async move {
                let _slot = slot;
                let file = req.filename.clone();
                let note = transfer(req, client, local, &s, &c).await;
                if let Some((t, node)) = t.as_ref().and_then(|t| Some((t, t.node_of(client.ip())?)))
                {
                    let (sev, text) = match note {
                        Ok(text) => (
                            crate::model::Severity::Info,
                            format!("TFTP {file} to {}: {text}", client.ip()),
                        ),
                        Err(text) => (
                            crate::model::Severity::Warning,
                            format!("TFTP {file} to {}: {text}", client.ip()),
                        ),
                    };
                    t.note(node, sev, "tftp", text);
                }
            });
        }
    }
    transfers.shutdown().await;
}

/// Reads a file in large chunks off the runtime, serving blocks from them.
struct Reader {
    file: Arc<std::fs::File>,
    size: u64,
    buf: Vec<u8>,
    start: u64,
}

impl Reader {
    const CHUNK: u64 = 256 * 1024;

    async fn block(&mut self, offset: u64, len: usize) -> std::io::Result<&[u8]> {
        let end = (offset + len as u64).min(self.size);
        if offset < self.start || end > self.start + self.buf.len() as u64 {
            let file = self.file.clone();
            let want = (self.size - offset).min(Self::CHUNK.max(len as u64)) as usize;
            let buf = tokio::task::spawn_blocking(move || {
                let mut b = vec![0u8; want];
                let mut got = 0;
                while got < want {
                    let n = file.read_at(&mut b[got..], offset + got as u64)?;
                    if n == 0 {
                        break;
                    }
                    got += n;
                }
                b.truncate(got);
                Ok::<_, std::io::Error>(b)
            })
            .await
            .map_err(std::io::Error::other)??;
            self.buf = buf;
            self.start = offset;
        }
        let from = (offset - self.start) as usize;
        let to = ((end - self.start) as usize).min(self.buf.len());
        Ok(&self.buf[from.min(to)..to])
    }
}

enum Reply {
    Ack(u16),
    ClientError(u16, String),
    Timeout,
}

/// Waits for the client's next ACK or ERROR (other packets are skipped).
async fn next_reply(sock: &UdpSocket, wait: Duration) -> Reply {
    let mut buf = [0u8; 600];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await {
            Err(_) => return Reply::Timeout,
            Ok(Err(_)) => return Reply::Timeout,
            Ok(Ok(n)) => match Packet::parse(&buf[..n]) {
                Ok(Packet::Ack { block }) => return Reply::Ack(block),
                Ok(Packet::Error { code, message }) => return Reply::ClientError(code, message),
                _ => continue,
            },
        }
    }
}

/// Runs one transfer; says how it went (Ok: sent, Err: why not).
async fn transfer(
    req: Request,
    client: std::net::SocketAddr,
    local: Option<std::net::SocketAddr>,
    s: &Settings,
    c: &Counters,
) -> Result<String, String> {
    c.transfers.fetch_add(1, Ordering::Relaxed);
    let started = Instant::now();
    let bind_ip = match local {
        Some(l) if !l.ip().is_unspecified() => l.ip(),
        _ if client.is_ipv4() => std::net::Ipv4Addr::UNSPECIFIED.into(),
        _ => std::net::Ipv6Addr::UNSPECIFIED.into(),
    };
    let sock = match UdpSocket::bind((bind_ip, 0)).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(%client, error = %e, "TFTP: cannot open a transfer socket");
            return Err(format!("cannot open a transfer socket: {e}"));
        }
    };
    if let Err(e) = sock.connect(client).await {
        return Err(format!("cannot reach the client: {e}"));
    }
    let fail = |code: u16, msg: String| {
        let sock = &sock;
        async move {
            let _ = sock.send(&wire::error(code, &msg)).await;
        }
    };
    if !req.mode.eq_ignore_ascii_case("octet") && !req.mode.eq_ignore_ascii_case("netascii") {
        fail(
            code::ILLEGAL_OPERATION,
            format!("mode {:?} is not supported; use octet", req.mode),
        )
        .await;
        return Err(format!("mode {:?} refused", req.mode));
    }
    let path = match resolve(&s.root, &req.filename) {
        Ok(p) => p,
        Err((code, msg)) => {
            tracing::info!(%client, file = %req.filename, "TFTP refused: {msg}");
            fail(code, msg.clone()).await;
            c.failed.fetch_add(1, Ordering::Relaxed);
            return Err(format!("refused: {msg}"));
        }
    };
    let file = match std::fs::File::open(&path).and_then(|f| f.metadata().map(|m| (f, m.len()))) {
        Ok(x) => x,
        Err(e) => {
            fail(code::FILE_NOT_FOUND, format!("{}: {e}", req.filename)).await;
            c.failed.fetch_add(1, Ordering::Relaxed);
            return Err(format!("cannot open it: {e}"));
        }
    };
    let (file, size) = file;
    let n = negotiate(&req, s, size);
    let blk = u64::from(n.blksize);
    // The last block is shorter than blksize (empty when size is a multiple).
    let total = size / blk + 1;
    let mut reader = Reader {
        file: Arc::new(file),
        size,
        buf: Vec::new(),
        start: 0,
    };
    let mut retransmits = 0u64;
    let outcome: Result<(), String> = async {
        if !n.oack.is_empty() {
            let oack = wire::oack(&n.oack);
            let mut tries = 0;
            loop {
                sock.send(&oack).await.map_err(|e| e.to_string())?;
                match next_reply(&sock, n.timeout).await {
                    Reply::Ack(0) => break,
                    Reply::Ack(_) => continue,
                    Reply::ClientError(code, msg) => {
                        return Err(format!(
                            "client ended it after the OACK: ERROR {code} {msg:?}"
                        ))
                    }
                    Reply::Timeout => {
                        tries += 1;
                        retransmits += 1;
                        if tries > s.retries {
                            return Err(format!("no ACK for the OACK after {} tries", tries));
                        }
                    }
                }
            }
        }
        let mut acked: u64 = 0; // blocks 1..=acked are confirmed
        let mut tries = 0;
        let mut pkt = Vec::with_capacity(4 + blk as usize);
        while acked < total {
            let end = (acked + u64::from(n.windowsize)).min(total);
            for i in acked + 1..=end {
                let data = reader
                    .block((i - 1) * blk, blk as usize)
                    .await
                    .map_err(|e| format!("read failed: {e}"))?;
                wire::data((i & 0xffff) as u16, data, &mut pkt);
                sock.send(&pkt).await.map_err(|e| e.to_string())?;
            }
            loop {
                match next_reply(&sock, n.timeout).await {
                    Reply::Ack(b) => {
                        // Which block in the window (acked, end] has these low 16 bits?
                        let hit = (acked + 1..=end).find(|i| (i & 0xffff) as u16 == b);
                        match hit {
                            Some(i) => {
                                if i < end {
                                    retransmits += end - i;
                                }
                                acked = i;
                                tries = 0;
                                break;
                            }
                            None => continue, // a duplicate of an older ACK
                        }
                    }
                    Reply::ClientError(code, msg) => {
                        return Err(format!("client sent ERROR {code} {msg:?}"));
                    }
                    Reply::Timeout => {
                        tries += 1;
                        retransmits += end - acked;
                        if tries > s.retries {
                            return Err(format!(
                                "no ACK after {tries} tries (block {}, {} s each)",
                                acked + 1,
                                n.timeout.as_secs_f32()
                            ));
                        }
                        break;
                    }
                }
            }
        }
        Ok(())
    }
    .await;
    c.retransmits.fetch_add(retransmits, Ordering::Relaxed);
    let ms = started.elapsed().as_millis();
    match outcome {
        Ok(()) => {
            c.completed.fetch_add(1, Ordering::Relaxed);
            c.bytes.fetch_add(size, Ordering::Relaxed);
            crate::metrics::tftp("done", size, retransmits);
            tracing::info!(
                %client, file = %req.filename, size, blksize = n.blksize, windowsize = n.windowsize,
                retransmits, ms, "TFTP transfer done"
            );
            Ok(format!(
                "sent {size} bytes in {ms} ms (blksize {}, windowsize {}, {retransmits} retransmitted)",
                n.blksize, n.windowsize
            ))
        }
        Err(why) => {
            c.failed.fetch_add(1, Ordering::Relaxed);
            crate::metrics::tftp("failed", 0, retransmits);
            tracing::info!(%client, file = %req.filename, retransmits, ms, "TFTP transfer ended: {why}");
            Err(format!("ended after {ms} ms: {why}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(root: &Path) -> Settings {
        Settings {
            root: root.to_path_buf(),
            max_blksize: 1468,
            max_windowsize: 64,
            timeout: Duration::from_secs(1),
            retries: 5,
            max_transfers: 64,
        }
    }

    fn req(opts: &[(&str, &str)]) -> Request {
        Request {
            filename: "f".into(),
            mode: "octet".into(),
            options: opts
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        }
    }

    #[test]
    fn negotiation_table() {
        let s = settings(Path::new("/"));
        // (options asked, blksize, windowsize, timeout s, OACK)
        type Case<'a> = (
            Vec<(&'a str, &'a str)>,
            u16,
            u16,
            u64,
            Vec<(&'a str, &'a str)>,
        );
        let cases: Vec<Case> = vec![
            (vec![], 512, 1, 1, vec![]),
            (
                vec![("tsize", "0"), ("blksize", "1468"), ("windowsize", "4")],
                1468,
                4,
                1,
                vec![("tsize", "1000"), ("blksize", "1468"), ("windowsize", "4")],
            ),
            (
                vec![("BLKSIZE", "65464")],
                1468,
                1,
                1,
                vec![("blksize", "1468")],
            ),
            (vec![("blksize", "7")], 512, 1, 1, vec![]),
            (vec![("blksize", "junk")], 512, 1, 1, vec![]),
            (
                vec![("windowsize", "1000")],
                512,
                64,
                1,
                vec![("windowsize", "64")],
            ),
            (vec![("windowsize", "0")], 512, 1, 1, vec![]),
            (vec![("timeout", "3")], 512, 1, 3, vec![("timeout", "3")]),
            (vec![("timeout", "256")], 512, 1, 1, vec![]),
            (vec![("multicast", "")], 512, 1, 1, vec![]),
        ];
        for (opts, blk, win, t, oack) in cases {
            let n = negotiate(&req(&opts), &s, 1000);
            let want: Vec<(String, String)> = oack
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect();
            assert_eq!(
                (n.blksize, n.windowsize, n.timeout.as_secs(), n.oack),
                (blk, win, t, want),
                "{opts:?}"
            );
        }
    }

    #[test]
    fn paths_stay_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::write(root.join("ipxe.efi"), b"x").unwrap();
        std::fs::create_dir(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/a"), b"x").unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"x").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), root.join("link")).unwrap();
        std::os::unix::fs::symlink(root.join("ipxe.efi"), root.join("inside-link")).unwrap();
        let ok = [
            "ipxe.efi",
            "/ipxe.efi",
            "sub/a",
            "sub\\a",
            "./sub/a",
            "inside-link",
        ];
        for name in ok {
            assert!(resolve(&root, name).is_ok(), "{name}");
        }
        let refused = [
            ("../etc/passwd", code::ACCESS_VIOLATION),
            ("sub/../../x", code::ACCESS_VIOLATION),
            ("..\\x", code::ACCESS_VIOLATION),
            ("link", code::ACCESS_VIOLATION),
            ("missing", code::FILE_NOT_FOUND),
            ("sub", code::FILE_NOT_FOUND),
            ("/", code::FILE_NOT_FOUND),
        ];
        for (name, want) in refused {
            assert_eq!(resolve(&root, name).map_err(|e| e.0), Err(want), "{name}");
        }
    }
}
