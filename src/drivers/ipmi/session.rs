//! An RMCP+ session with one BMC over UDP: login (Get Channel Authentication
//! Capabilities, Open Session, RAKP 1–4, Set Session Privilege Level),
//! commands with retransmission inside a deadline, and Close Session.
//! Cipher suite 17 is tried first and 3 on refusal, unless one is pinned.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::rakp::{self, Exchange, Keys, Suite};
use super::wire::{self, Packet, Request, Response};
use super::{IpmiInfo, PrivLevel};

/// How hard to try.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Wait for the first answer to a packet; doubled on each retransmit.
    pub first_try: Duration,
    /// Sends of one request before giving up.
    pub tries: u32,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            first_try: Duration::from_millis(500),
            tries: 4,
        }
    }
}

/// What went wrong talking to a BMC, in words an operator can act on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    #[error("cannot resolve BMC address {bmc}: {why}")]
    Resolve { bmc: String, why: String },
    #[error("BMC {bmc} is unreachable: no answer after {tries} tries in {secs:.1} s (check ipmi_address/ipmi_port and the network)")]
    Unreachable { bmc: String, tries: u32, secs: f64 },
    #[error("authentication failed for BMC {bmc} — check ipmi_username/ipmi_password")]
    AuthFailed { bmc: String },
    #[error("BMC {bmc} refused privilege level {level} for this user — lower ipmi_priv_level or use a user with more rights")]
    Privilege { bmc: String, level: &'static str },
    #[error("BMC {bmc} does not support cipher suite {suite} — set ipmi_cipher_suite to one it supports (3 or 17)")]
    UnsupportedSuite { bmc: String, suite: u8 },
    #[error("BMC {bmc}: {why}")]
    Session { bmc: String, why: String },
    #[error("BMC {bmc} answered {what} with completion code {cc:#04x} ({text}){hint}", text = wire::completion_code_text(*cc), hint = completion_hint(*cc))]
    Completion {
        bmc: String,
        what: &'static str,
        cc: u8,
    },
    #[error("BMC {bmc}: network error: {why}")]
    Io { bmc: String, why: String },
}

/// What to do about a completion code, where there is something to do.
fn completion_hint(cc: u8) -> &'static str {
    match cc {
        0xd4 => " — the session's privilege level is too low for this command: set ipmi_priv_level to OPERATOR or ADMINISTRATOR (Ironic's default) and give the BMC user that level",
        _ => "",
    }
}

impl Error {
    /// The completion code, if the BMC answered with one.
    pub fn completion_code(&self) -> Option<u8> {
        match self {
            Error::Completion { cc, .. } => Some(*cc),
            _ => None,
        }
    }
}

fn priv_byte(p: PrivLevel) -> (u8, &'static str) {
    match p {
        PrivLevel::Callback => (1, "CALLBACK"),
        PrivLevel::User => (2, "USER"),
        PrivLevel::Operator => (3, "OPERATOR"),
        PrivLevel::Administrator => (4, "ADMINISTRATOR"),
    }
}

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // The OS random source failing is not recoverable in any useful way;
    // fall back to the clock so a session can still be attempted.
    if getrandom::fill(&mut b).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
            .to_le_bytes();
        for (i, x) in b.iter_mut().enumerate() {
            *x = t[i % t.len()];
        }
    }
    b
}

/// Logins tried per cipher suite before giving up.
const LOGIN_ATTEMPTS: u32 = 3;

/// An open, authenticated session.
pub struct Session {
    sock: UdpSocket,
    bmc: String,
    timing: Timing,
    keys: Keys,
    console_sid: u32,
    bmc_sid: u32,
    seq: u32,
    rq_seq: u8,
    buf: Vec<u8>,
}

/// Resolves the BMC's address (a name is looked up with a deadline).
pub async fn resolve(info: &IpmiInfo, timing: Timing) -> Result<SocketAddr, Error> {
    let bmc = format!("{}:{}", info.address, info.port);
    let host = info
        .address
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, info.port));
    }
    let deadline = timing.first_try * timing.tries.max(1);
    let lookup = tokio::net::lookup_host(format!("{host}:{}", info.port));
    let found = match tokio::time::timeout(deadline, lookup).await {
        Err(_) => {
            return Err(Error::Resolve {
                bmc,
                why: "lookup timed out".into(),
            })
        }
        Ok(Err(e)) => {
            return Err(Error::Resolve {
                bmc,
                why: e.to_string(),
            })
        }
        Ok(Ok(mut addrs)) => addrs.next(),
    };
    found.ok_or(Error::Resolve {
        bmc,
        why: "no address".into(),
    })
}

/// Sends `packet` and waits for an answer `accept` takes, retransmitting
/// with a doubling wait; `packet` is rebuilt for every try.
async fn exchange<T>(
    sock: &UdpSocket,
    bmc: &str,
    timing: Timing,
    mut packet: impl FnMut(&mut Vec<u8>),
    mut accept: impl FnMut(&[u8]) -> Option<T>,
) -> Result<T, Error> {
    let started = Instant::now();
    let mut out = Vec::with_capacity(128);
    let mut buf = vec![0u8; 1024];
    let mut wait = timing.first_try;
    for _ in 0..timing.tries.max(1) {
        packet(&mut out);
        sock.send(&out).await.map_err(|e| Error::Io {
            bmc: bmc.to_string(),
            why: e.to_string(),
        })?;
        let deadline = Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await {
                Err(_) => break,
                // ICMP port unreachable surfaces as ECONNREFUSED on a
                // connected socket: count it as a lost try, not a new error.
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    tokio::time::sleep_until(deadline).await;
                    break;
                }
                Ok(Err(e)) => {
                    return Err(Error::Io {
                        bmc: bmc.to_string(),
                        why: e.to_string(),
                    })
                }
                Ok(Ok(n)) => {
                    if let Some(v) = accept(&buf[..n]) {
                        return Ok(v);
                    }
                }
            }
        }
        wait = wait.saturating_mul(2);
    }
    Err(Error::Unreachable {
        bmc: bmc.to_string(),
        tries: timing.tries.max(1),
        secs: started.elapsed().as_secs_f64(),
    })
}

impl Session {
    /// The cipher suite this session logged in with (3 or 17).
    pub fn cipher_suite(&self) -> u8 {
        self.keys.suite.id()
    }

    /// Opens a session: suite 17 then 3, or the pinned `ipmi_cipher_suite`.
    pub async fn open(info: &IpmiInfo, timing: Timing) -> Result<Session, Error> {
        let addr = resolve(info, timing).await?;
        let bmc = format!("{}:{}", info.address, info.port);
        let local: SocketAddr = if addr.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        }
        .parse()
        .unwrap_or_else(|_| unreachable!());
        let io = |e: std::io::Error| Error::Io {
            bmc: bmc.clone(),
            why: e.to_string(),
        };
        let connect = || async {
            let sock = UdpSocket::bind(local).await.map_err(io)?;
            sock.connect(addr).await.map_err(io)?;
            Ok::<_, Error>(sock)
        };
        let mut sock = connect().await?;
        Session::channel_auth_caps(&sock, &bmc, timing).await?;
        let suites: &[Suite] = match info.cipher_suite {
            Some(3) => &[Suite::S3],
            Some(_) => &[Suite::S17],
            None => &[Suite::S17, Suite::S3],
        };
        let mut last = Error::UnsupportedSuite {
            bmc: bmc.clone(),
            suite: 3,
        };
        for &suite in suites {
            // The BMC answered Get Channel Auth Caps, so a handshake that
            // stalls lost a packet: BMCs do not take RAKP retransmits well
            // (pyghmi restarts the login too), so start over from Open Session.
            for attempt in 0..LOGIN_ATTEMPTS {
                match Session::login(sock, &bmc, info, suite, timing).await {
                    Ok(s) => return Ok(s),
                    Err((_, e @ Error::UnsupportedSuite { .. })) => {
                        tracing::debug!(bmc = %bmc, suite = suite.id(), "cipher suite refused");
                        last = e;
                        sock = connect().await?;
                        break;
                    }
                    Err((_, e @ (Error::Unreachable { .. } | Error::Session { .. })))
                        if attempt + 1 < LOGIN_ATTEMPTS =>
                    {
                        tracing::debug!(bmc = %bmc, error = %e, "login stalled; starting over");
                        sock = connect().await?;
                    }
                    Err((_, e)) => return Err(e),
                }
            }
        }
        Err(last)
    }

    async fn channel_auth_caps(sock: &UdpSocket, bmc: &str, timing: Timing) -> Result<(), Error> {
        let mut msg = Vec::new();
        Request {
            net_fn: 0x06,
            cmd: 0x38,
            rq_seq: 0,
            data: &[0x8e, 0x04],
        }
        .emit(&mut msg);
        exchange(
            sock,
            bmc,
            timing,
            |out| wire::emit_v15(&msg, out),
            |b| match wire::parse(b, 0) {
                Ok(Packet::V15 { message, .. }) => Response::parse(message)
                    .ok()
                    .filter(|r| r.cmd == 0x38)
                    .map(|_| ()),
                _ => None,
            },
        )
        .await
    }

    /// Open Session + RAKP + Set Session Privilege Level with one suite. On
    /// a refused suite the socket is handed back for the next try.
    async fn login(
        sock: UdpSocket,
        bmc: &str,
        info: &IpmiInfo,
        suite: Suite,
        timing: Timing,
    ) -> Result<Session, (Option<UdpSocket>, Error)> {
        let fail = |e: Error| (None, e);
        let session_err = |why: String| Error::Session {
            bmc: bmc.to_string(),
            why,
        };
        let console_sid = u32::from_le_bytes(random::<4>()) | 1;
        let tag = random::<1>()[0];
        let open = rakp::open_session_request(tag, 0, console_sid, suite);
        let resp = exchange(
            &sock,
            bmc,
            timing,
            |out| {
                wire::emit_rmcpp(
                    wire::payload::OPEN_SESSION_REQUEST,
                    false,
                    false,
                    0,
                    0,
                    &open,
                    out,
                )
            },
            |b| match wire::parse(b, 0) {
                Ok(Packet::V20(p))
                    if p.payload_type == wire::payload::OPEN_SESSION_RESPONSE
                        && p.payload.first() == Some(&tag) =>
                {
                    Some(rakp::parse_open_session_response(p.payload))
                }
                _ => None,
            },
        )
        .await;
        let resp = match resp {
            Ok(Ok(r)) => r,
            Ok(Err(rakp::Error::Status(code @ (0x04 | 0x05 | 0x10 | 0x11)))) => {
                let _ = code;
                return Err((
                    Some(sock),
                    Error::UnsupportedSuite {
                        bmc: bmc.to_string(),
                        suite: suite.id(),
                    },
                ));
            }
            Ok(Err(e)) => return Err(fail(session_err(format!("Open Session refused: {e}")))),
            Err(e) => return Err(fail(e)),
        };
        if resp.algorithms != suite.algorithms() || resp.console_sid != console_sid {
            return Err(fail(session_err(format!(
                "Open Session answered algorithms {:?} for suite {}",
                resp.algorithms,
                suite.id()
            ))));
        }
        let (priv_level, priv_name) = priv_byte(info.priv_level);
        let user = info.username.clone().unwrap_or_default().into_bytes();
        let kuid = info.password.clone().unwrap_or_default().into_bytes();
        let rm = random::<16>();
        let role = priv_level | 0x10;
        let tag = tag.wrapping_add(1);
        let r1 = rakp::rakp1(tag, resp.bmc_sid, &rm, role, &user);
        let r2 = exchange(
            &sock,
            bmc,
            timing,
            |out| wire::emit_rmcpp(wire::payload::RAKP1, false, false, 0, 0, &r1, out),
            |b| match wire::parse(b, 0) {
                Ok(Packet::V20(p))
                    if p.payload_type == wire::payload::RAKP2
                        && p.payload.first() == Some(&tag) =>
                {
                    Some(p.payload.to_vec())
                }
                _ => None,
            },
        )
        .await
        .map_err(fail)?;
        let r2 = match rakp::parse_rakp2(&r2) {
            Ok(r) => r,
            Err(rakp::Error::Status(0x0d | 0x0c)) => {
                return Err(fail(Error::AuthFailed {
                    bmc: bmc.to_string(),
                }))
            }
            Err(rakp::Error::Status(0x09..=0x0b)) => {
                return Err(fail(Error::Privilege {
                    bmc: bmc.to_string(),
                    level: priv_name,
                }))
            }
            Err(e) => return Err(fail(session_err(format!("RAKP 2: {e}")))),
        };
        let x = Exchange {
            console_sid,
            bmc_sid: resp.bmc_sid,
            rm,
            rc: r2.rc,
            guid: r2.guid,
            role,
            user,
        };
        if x.verify_rakp2(suite, &kuid, r2.auth).is_err() {
            return Err(fail(Error::AuthFailed {
                bmc: bmc.to_string(),
            }));
        }
        let keys = x.keys(suite, &kuid);
        let tag = tag.wrapping_add(1);
        let r3 = x.rakp3(tag, suite, &kuid);
        let r4 = exchange(
            &sock,
            bmc,
            timing,
            |out| wire::emit_rmcpp(wire::payload::RAKP3, false, false, 0, 0, &r3, out),
            |b| match wire::parse(b, suite.mac_len()) {
                Ok(Packet::V20(p)) if p.payload_type == wire::payload::RAKP4 => {
                    // A BMC that already activated the session (our first RAKP4
                    // was lost) may answer a retransmitted RAKP3 with an
                    // authenticated, encrypted RAKP4: check it with the new keys.
                    let payload = if p.authenticated {
                        keys.verify(&p).ok()?;
                        if p.encrypted {
                            keys.decrypt(p.payload).ok()?
                        } else {
                            p.payload.to_vec()
                        }
                    } else {
                        p.payload.to_vec()
                    };
                    (payload.first() == Some(&tag)).then_some(payload)
                }
                _ => None,
            },
        )
        .await
        .map_err(fail)?;
        match x.verify_rakp4(&keys, &r4) {
            Ok(()) => {}
            Err(rakp::Error::Status(0x0f)) | Err(rakp::Error::BadRakp4) => {
                return Err(fail(Error::AuthFailed {
                    bmc: bmc.to_string(),
                }))
            }
            Err(e) => return Err(fail(session_err(format!("RAKP 4: {e}")))),
        }
        let mut s = Session {
            sock,
            bmc: bmc.to_string(),
            timing,
            keys,
            console_sid,
            bmc_sid: resp.bmc_sid,
            seq: 0,
            rq_seq: 0,
            buf: Vec::with_capacity(128),
        };
        match s
            .command(0x06, 0x3b, &[priv_level], "Set Session Privilege Level")
            .await
        {
            // The answer is the level granted; a BMC may grant less than asked.
            Ok(granted) if granted.first().map(|b| b & 0x0f) >= Some(priv_level) => Ok(s),
            Ok(_)
            | Err(Error::Completion {
                cc: 0x80..=0x81 | 0xd4,
                ..
            }) => {
                s.close().await;
                Err(fail(Error::Privilege {
                    bmc: bmc.to_string(),
                    level: priv_name,
                }))
            }
            Err(e) => {
                s.close().await;
                Err(fail(e))
            }
        }
    }

    /// The BMC this session talks to (`address:port`).
    pub fn bmc(&self) -> &str {
        &self.bmc
    }

    /// Sends one IPMI command and returns the response data after the
    /// completion code. A non-zero completion code is an error.
    pub async fn command(
        &mut self,
        net_fn: u8,
        cmd: u8,
        data: &[u8],
        what: &'static str,
    ) -> Result<Vec<u8>, Error> {
        self.rq_seq = (self.rq_seq + 1) & 0x3f;
        let rq_seq = self.rq_seq;
        let mut msg = std::mem::take(&mut self.buf);
        Request {
            net_fn,
            cmd,
            rq_seq,
            data,
        }
        .emit(&mut msg);
        let (keys, bmc_sid, console_sid) = (self.keys.clone(), self.bmc_sid, self.console_sid);
        let mut seq = self.seq;
        let result = exchange(
            &self.sock,
            &self.bmc,
            self.timing,
            |out| {
                // A retransmit gets a new sequence number and IV.
                seq = seq.wrapping_add(1).max(1);
                keys.seal(bmc_sid, seq, &random::<16>(), &msg, out);
            },
            |b| rakp::session_reply(b, &keys, console_sid, net_fn, cmd, rq_seq),
        )
        .await;
        self.seq = seq;
        self.buf = msg;
        let (cc, data) = result?;
        if cc != 0 {
            return Err(Error::Completion {
                bmc: self.bmc.clone(),
                what,
                cc,
            });
        }
        Ok(data)
    }

    /// Keeps the session from timing out at the BMC: a Get Device ID, sent at
    /// most twice (a BMC that does not answer costs a new login later, not a
    /// long wait for the callers queued behind this BMC).
    pub async fn keepalive(&mut self) -> Result<(), Error> {
        let timing = self.timing;
        self.timing.tries = timing.tries.min(2);
        let result = self
            .command(0x06, 0x01, &[], "Get Device ID (keepalive)")
            .await;
        self.timing = timing;
        result.map(drop)
    }

    /// Closes the session (best effort: the BMC drops it on timeout anyway).
    pub async fn close(mut self) {
        let sid = self.bmc_sid.to_le_bytes();
        self.timing = Timing {
            first_try: self.timing.first_try,
            tries: 1,
        };
        if let Err(e) = self.command(0x06, 0x3c, &sid, "Close Session").await {
            tracing::debug!(bmc = %self.bmc, error = %e, "Close Session failed");
        }
    }
}
