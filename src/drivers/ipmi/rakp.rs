//! RMCP+ session establishment and per-packet crypto: cipher suites 3
//! (RAKP-HMAC-SHA1, HMAC-SHA1-96, AES-CBC-128) and 17 (RAKP-HMAC-SHA256,
//! HMAC-SHA256-128, AES-CBC-128); Open Session and RAKP 1–4 messages; key
//! derivation (SIK, K1, K2); integrity and confidentiality. Pure: the random
//! numbers are passed in.

use aes::cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
use hmac::{Hmac, Mac};

use super::wire::{self, Error as WireError};

/// A cipher suite this client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    /// RAKP-HMAC-SHA1 / HMAC-SHA1-96 / AES-CBC-128.
    S3,
    /// RAKP-HMAC-SHA256 / HMAC-SHA256-128 / AES-CBC-128.
    S17,
}

impl Suite {
    pub fn id(self) -> u8 {
        match self {
            Suite::S3 => 3,
            Suite::S17 => 17,
        }
    }

    /// (authentication, integrity, confidentiality) algorithm numbers.
    pub fn algorithms(self) -> (u8, u8, u8) {
        match self {
            Suite::S3 => (0x01, 0x01, 0x01),
            Suite::S17 => (0x03, 0x04, 0x01),
        }
    }

    /// Length of the RAKP4 ICV and of every packet's integrity code.
    pub fn mac_len(self) -> usize {
        match self {
            Suite::S3 => 12,
            Suite::S17 => 16,
        }
    }

    fn hmac(self, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        fn run<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
            // HMAC takes keys of any length, so this cannot fail.
            let mut m = <M as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
            for p in parts {
                m.update(p);
            }
            m.finalize().into_bytes().to_vec()
        }
        match self {
            Suite::S3 => run::<Hmac<sha1::Sha1>>(key, parts),
            Suite::S17 => run::<Hmac<sha2::Sha256>>(key, parts),
        }
    }
}

/// Why session establishment or a session packet failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("the BMC answered RMCP+ status {0:#04x} ({text})", text = status_text(*.0))]
    Status(u8),
    #[error("RAKP 2 key exchange code is wrong: authentication failed (check ipmi_username/ipmi_password)")]
    BadRakp2,
    #[error("RAKP 4 integrity check value is wrong (BMC key Kg mismatch?)")]
    BadRakp4,
    #[error("packet integrity check failed")]
    BadIntegrity,
    #[error("encrypted payload is malformed (length or confidentiality pad)")]
    BadCiphertext,
    #[error("unexpected message for this session step")]
    Unexpected,
}

/// RMCP+ status codes in words (IPMI 2.0 T13-15).
pub fn status_text(code: u8) -> &'static str {
    match code {
        0x00 => "no errors",
        0x01 => "insufficient resources to create a session",
        0x02 => "invalid session ID",
        0x03 => "invalid payload type",
        0x04 => "invalid authentication algorithm",
        0x05 => "invalid integrity algorithm",
        0x06 => "no matching authentication payload",
        0x07 => "no matching integrity payload",
        0x08 => "inactive session ID",
        0x09 => "invalid role",
        0x0a => "unauthorized role or privilege level requested",
        0x0b => "insufficient resources to create a session at the requested role",
        0x0c => "invalid name length",
        0x0d => "unauthorized name",
        0x0e => "unauthorized GUID",
        0x0f => "invalid integrity check value",
        0x10 => "invalid confidentiality algorithm",
        0x11 => "no cipher suite match with proposed security algorithms",
        0x12 => "illegal or unrecognized parameter",
        _ => "unknown status",
    }
}

/// Open Session Request payload.
pub fn open_session_request(tag: u8, max_priv: u8, console_sid: u32, suite: Suite) -> Vec<u8> {
    let (a, i, c) = suite.algorithms();
    let mut p = vec![tag, max_priv, 0, 0];
    p.extend_from_slice(&console_sid.to_le_bytes());
    for (kind, alg) in [(0u8, a), (1, i), (2, c)] {
        p.extend_from_slice(&[kind, 0, 0, 8, alg, 0, 0, 0]);
    }
    p
}

/// What the BMC answered to Open Session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenSessionResponse {
    pub tag: u8,
    pub max_priv: u8,
    pub console_sid: u32,
    pub bmc_sid: u32,
    pub algorithms: (u8, u8, u8),
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// Parses an Open Session Response; a non-zero status is an error.
pub fn parse_open_session_response(p: &[u8]) -> Result<OpenSessionResponse, Error> {
    if p.len() < 2 {
        return Err(WireError::Truncated.into());
    }
    if p[1] != 0 {
        return Err(Error::Status(p[1]));
    }
    if p.len() < 36 {
        return Err(WireError::Truncated.into());
    }
    Ok(OpenSessionResponse {
        tag: p[0],
        max_priv: p[2],
        console_sid: le32(&p[4..8]),
        bmc_sid: le32(&p[8..12]),
        algorithms: (p[16], p[24], p[32]),
    })
}

/// The inputs every RAKP code is computed over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    pub console_sid: u32,
    pub bmc_sid: u32,
    pub rm: [u8; 16],
    pub rc: [u8; 16],
    pub guid: [u8; 16],
    /// Role byte as sent in RAKP1 (privilege | 0x10 for name-only lookup).
    pub role: u8,
    pub user: Vec<u8>,
}

/// RAKP Message 1 payload.
pub fn rakp1(tag: u8, bmc_sid: u32, rm: &[u8; 16], role: u8, user: &[u8]) -> Vec<u8> {
    let mut p = vec![tag, 0, 0, 0];
    p.extend_from_slice(&bmc_sid.to_le_bytes());
    p.extend_from_slice(rm);
    p.extend_from_slice(&[role, 0, 0, user.len() as u8]);
    p.extend_from_slice(user);
    p
}

/// What RAKP Message 2 carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rakp2<'a> {
    pub tag: u8,
    pub console_sid: u32,
    pub rc: [u8; 16],
    pub guid: [u8; 16],
    pub auth: &'a [u8],
}

/// Parses RAKP Message 2; a non-zero status is an error.
pub fn parse_rakp2(p: &[u8]) -> Result<Rakp2<'_>, Error> {
    if p.len() < 2 {
        return Err(WireError::Truncated.into());
    }
    if p[1] != 0 {
        return Err(Error::Status(p[1]));
    }
    if p.len() < 40 {
        return Err(WireError::Truncated.into());
    }
    let mut rc = [0; 16];
    rc.copy_from_slice(&p[8..24]);
    let mut guid = [0; 16];
    guid.copy_from_slice(&p[24..40]);
    Ok(Rakp2 {
        tag: p[0],
        console_sid: le32(&p[4..8]),
        rc,
        guid,
        auth: &p[40..],
    })
}

/// Compares secrets in constant time.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Session keys derived after RAKP: integrity (K1) and AES (K2[0..16]).
#[derive(Clone)]
pub struct Keys {
    pub suite: Suite,
    pub sik: Vec<u8>,
    pub k1: Vec<u8>,
    pub aes: [u8; 16],
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

impl Exchange {
    /// Role | name length | name: the tail of every RAKP code's input.
    fn name(&self) -> Vec<u8> {
        let mut n = vec![self.role, self.user.len() as u8];
        n.extend_from_slice(&self.user);
        n
    }

    /// The RAKP2 key-exchange code the BMC must have sent.
    pub fn rakp2_code(&self, suite: Suite, kuid: &[u8]) -> Vec<u8> {
        suite.hmac(
            kuid,
            &[
                &self.console_sid.to_le_bytes(),
                &self.bmc_sid.to_le_bytes(),
                &self.rm,
                &self.rc,
                &self.guid,
                &self.name(),
            ],
        )
    }

    /// Checks RAKP2's code (wrong password → `BadRakp2`).
    pub fn verify_rakp2(&self, suite: Suite, kuid: &[u8], got: &[u8]) -> Result<(), Error> {
        if same(&self.rakp2_code(suite, kuid), got) {
            Ok(())
        } else {
            Err(Error::BadRakp2)
        }
    }

    /// The RAKP3 key-exchange code the console sends.
    pub fn rakp3_code(&self, suite: Suite, kuid: &[u8]) -> Vec<u8> {
        suite.hmac(
            kuid,
            &[&self.rc, &self.console_sid.to_le_bytes(), &self.name()],
        )
    }

    /// RAKP Message 3 payload.
    pub fn rakp3(&self, tag: u8, suite: Suite, kuid: &[u8]) -> Vec<u8> {
        let mut p = vec![tag, 0, 0, 0];
        p.extend_from_slice(&self.bmc_sid.to_le_bytes());
        p.extend_from_slice(&self.rakp3_code(suite, kuid));
        p
    }

    /// Derives SIK, K1 and K2. `kg` is the BMC key, or the password when unset.
    pub fn keys(&self, suite: Suite, kg: &[u8]) -> Keys {
        let sik = suite.hmac(kg, &[&self.rm, &self.rc, &self.name()]);
        let k1 = suite.hmac(&sik, &[&[0x01; 20]]);
        let k2 = suite.hmac(&sik, &[&[0x02; 20]]);
        let mut aes = [0; 16];
        aes.copy_from_slice(&k2[..16]);
        Keys {
            suite,
            sik,
            k1,
            aes,
        }
    }

    /// Checks RAKP4's integrity check value.
    pub fn verify_rakp4(&self, keys: &Keys, payload: &[u8]) -> Result<(), Error> {
        if payload.len() < 2 {
            return Err(WireError::Truncated.into());
        }
        if payload[1] != 0 {
            return Err(Error::Status(payload[1]));
        }
        let icv = payload.get(8..).ok_or(WireError::Truncated)?;
        let want = keys.suite.hmac(
            &keys.sik,
            &[&self.rm, &self.bmc_sid.to_le_bytes(), &self.guid],
        );
        if same(&want[..keys.suite.mac_len()], icv) {
            Ok(())
        } else {
            Err(Error::BadRakp4)
        }
    }
}

impl Keys {
    /// The integrity code of an outgoing packet (`signed` = auth type ..
    /// next header).
    pub fn mac(&self, signed: &[u8]) -> Vec<u8> {
        let mut m = self.suite.hmac(&self.k1, &[signed]);
        m.truncate(self.suite.mac_len());
        m
    }

    /// Checks a received packet's integrity code.
    pub fn verify(&self, p: &wire::Rmcpp<'_>) -> Result<(), Error> {
        if p.authenticated && same(&self.mac(p.signed), p.auth_code) {
            Ok(())
        } else {
            Err(Error::BadIntegrity)
        }
    }

    /// AES-CBC-128 with IPMI's confidentiality pad (1, 2, …, N, N).
    pub fn encrypt(&self, iv: &[u8; 16], msg: &[u8]) -> Vec<u8> {
        let cipher = aes::Aes128::new(&self.aes.into());
        let pad = (16 - (msg.len() + 1) % 16) % 16;
        let mut plain = msg.to_vec();
        plain.extend((1..=pad as u8).chain([pad as u8]));
        let mut out = iv.to_vec();
        let mut prev = *iv;
        for chunk in plain.chunks(16) {
            let mut block = [0u8; 16];
            for (i, b) in chunk.iter().enumerate() {
                block[i] = b ^ prev[i];
            }
            let mut ga = block.into();
            cipher.encrypt_block(&mut ga);
            prev.copy_from_slice(&ga);
            out.extend_from_slice(&ga);
        }
        out
    }

    /// Reverses [`Keys::encrypt`], checking the pad.
    pub fn decrypt(&self, payload: &[u8]) -> Result<Vec<u8>, Error> {
        if payload.len() < 32 || !payload.len().is_multiple_of(16) {
            return Err(Error::BadCiphertext);
        }
        let cipher = aes::Aes128::new(&self.aes.into());
        let mut prev = [0u8; 16];
        prev.copy_from_slice(&payload[..16]);
        let mut plain = Vec::with_capacity(payload.len() - 16);
        for chunk in payload[16..].chunks(16) {
            let mut ga = aes::Block::clone_from_slice(chunk);
            cipher.decrypt_block(&mut ga);
            for i in 0..16 {
                plain.push(ga[i] ^ prev[i]);
            }
            prev.copy_from_slice(chunk);
        }
        let pad = *plain.last().ok_or(Error::BadCiphertext)? as usize;
        if pad > 15 || pad + 1 > plain.len() {
            return Err(Error::BadCiphertext);
        }
        let body = plain.len() - pad - 1;
        if plain[body..body + pad]
            .iter()
            .enumerate()
            .any(|(i, &b)| b as usize != i + 1)
        {
            return Err(Error::BadCiphertext);
        }
        plain.truncate(body);
        Ok(plain)
    }

    /// A whole encrypted, authenticated IPMI packet.
    pub fn seal(&self, session_id: u32, seq: u32, iv: &[u8; 16], msg: &[u8], out: &mut Vec<u8>) {
        let payload = self.encrypt(iv, msg);
        wire::emit_rmcpp(
            wire::payload::IPMI,
            true,
            true,
            session_id,
            seq,
            &payload,
            out,
        );
        let mac = self.mac(&out[4..]);
        out.extend_from_slice(&mac);
    }

    /// Verifies and decrypts a session packet; returns the IPMI message.
    pub fn open(&self, p: &wire::Rmcpp<'_>) -> Result<Vec<u8>, Error> {
        self.verify(p)?;
        if p.payload_type != wire::payload::IPMI {
            return Err(Error::Unexpected);
        }
        if p.encrypted {
            self.decrypt(p.payload)
        } else {
            Ok(p.payload.to_vec())
        }
    }
}

/// A BMC's answer to one session command, as (completion code, data) — or
/// `None` when the datagram is not that answer: it must parse, be addressed
/// to our session ID, carry a valid integrity code, decrypt, and match the
/// request (response net function, command and sequence number). Anything
/// else (a stray, a late answer to an earlier retransmit, a forgery) is
/// ignored and the caller keeps waiting.
pub fn session_reply(
    b: &[u8],
    keys: &Keys,
    console_sid: u32,
    net_fn: u8,
    cmd: u8,
    rq_seq: u8,
) -> Option<(u8, Vec<u8>)> {
    let Ok(wire::Packet::V20(p)) = wire::parse(b, keys.suite.mac_len()) else {
        return None;
    };
    if p.session_id != console_sid {
        return None;
    }
    let plain = keys.open(&p).ok()?;
    let r = wire::Response::parse(&plain).ok()?;
    (r.net_fn == net_fn + 1 && r.cmd == cmd && r.rq_seq == rq_seq).then(|| (r.cc, r.data.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::super::vectors::*;
    use super::*;
    use crate::drivers::ipmi::wire::{parse, Packet};

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn arr(s: &str) -> [u8; 16] {
        hex(s).try_into().unwrap()
    }

    fn exchange() -> Exchange {
        Exchange {
            console_sid: 0xa0a2a3a4,
            bmc_sid: 0x0000_7482,
            rm: arr("1e31fa811fba7d43816be359b7061b8f"),
            rc: arr("ef278d4e937b984f4b89e8b3c0259616"),
            guid: arr("a123456789abcdefa123456789abcdef"),
            role: 0x14,
            user: b"admin".to_vec(),
        }
    }

    fn rmcpp(frame: &[u8]) -> wire::Rmcpp<'_> {
        match parse(frame, 12).unwrap() {
            Packet::V20(p) => p,
            other => panic!("not RMCP+: {other:?}"),
        }
    }

    #[test]
    fn open_session_and_rakp_messages_match_the_capture() {
        assert_eq!(
            open_session_request(0, 0, 0xa0a2a3a4, Suite::S3),
            rmcpp(FRAME_3).payload
        );
        let resp = parse_open_session_response(rmcpp(FRAME_4).payload).unwrap();
        assert_eq!(
            (resp.console_sid, resp.bmc_sid, resp.algorithms),
            (0xa0a2a3a4, 0x7482, (1, 1, 1))
        );
        let x = exchange();
        assert_eq!(
            rakp1(0, x.bmc_sid, &x.rm, x.role, &x.user),
            rmcpp(FRAME_5).payload
        );
        let r2 = parse_rakp2(rmcpp(FRAME_6).payload).unwrap();
        assert_eq!(
            (r2.rc, r2.guid, r2.console_sid),
            (x.rc, x.guid, x.console_sid)
        );
        x.verify_rakp2(Suite::S3, b"password", r2.auth).unwrap();
        assert_eq!(
            x.verify_rakp2(Suite::S3, b"wrong", r2.auth),
            Err(Error::BadRakp2)
        );
        assert_eq!(x.rakp3(0, Suite::S3, b"password"), rmcpp(FRAME_7).payload);
        let keys = x.keys(Suite::S3, b"password");
        x.verify_rakp4(&keys, rmcpp(FRAME_8).payload).unwrap();
    }

    #[test]
    fn suite_3_keys_match_the_capture() {
        let x = exchange();
        assert_eq!(x.rakp2_code(Suite::S3, b"password"), hex(SHA1_RAKP2));
        assert_eq!(x.rakp3_code(Suite::S3, b"password"), hex(SHA1_RAKP3));
        let k = x.keys(Suite::S3, b"password");
        assert_eq!((k.sik.clone(), k.k1.clone()), (hex(SHA1_SIK), hex(SHA1_K1)));
        assert_eq!(k.aes.to_vec(), hex(&SHA1_K2[..32]));
        // RAKP4 carries the first 12 bytes of the full HMAC-SHA1.
        let mut rakp4 = vec![0, 0, 0, 0];
        rakp4.extend_from_slice(&x.console_sid.to_le_bytes());
        rakp4.extend_from_slice(&hex(&SHA1_RAKP4[..24]));
        x.verify_rakp4(&k, &rakp4).unwrap();
    }

    #[test]
    fn suite_17_keys_match_python_hmac_sha256() {
        // No simulator here speaks suite 17: the expected values were
        // computed independently with Python's hmac/hashlib (vectors.rs).
        let x = exchange();
        assert_eq!(x.rakp2_code(Suite::S17, b"password"), hex(SHA256_RAKP2));
        assert_eq!(x.rakp3_code(Suite::S17, b"password"), hex(SHA256_RAKP3));
        let k = x.keys(Suite::S17, b"password");
        assert_eq!(
            (k.sik.clone(), k.k1.clone()),
            (hex(SHA256_SIK), hex(SHA256_K1))
        );
        assert_eq!(k.aes.to_vec(), hex(&SHA256_K2[..32]));
        let mut rakp4 = vec![0, 0, 0, 0];
        rakp4.extend_from_slice(&x.console_sid.to_le_bytes());
        rakp4.extend_from_slice(&hex(&SHA256_RAKP4[..32]));
        x.verify_rakp4(&k, &rakp4).unwrap();
        assert_eq!(Suite::S17.mac_len(), 16);
        // A suite-17 packet round-trips through seal/open with a 16-byte MAC.
        let mut out = Vec::new();
        k.seal(
            0x7482,
            1,
            &[7; 16],
            &[0x20, 0x00, 0xe0, 0x81, 0x18, 0x01, 0x66],
            &mut out,
        );
        let Packet::V20(p) = parse(&out, 16).unwrap() else {
            panic!()
        };
        assert_eq!(p.auth_code.len(), 16);
        assert_eq!(
            k.open(&p).unwrap(),
            [0x20, 0x00, 0xe0, 0x81, 0x18, 0x01, 0x66]
        );
    }

    #[test]
    fn every_session_frame_verifies_and_decrypts() {
        let keys = exchange().keys(Suite::S3, b"password");
        let frames: [(&[u8], &str); 14] = [
            (FRAME_9, "2018c881043b043c"),
            (FRAME_10, "811c6320043b00049d"),
            (FRAME_11, "20b03081083e000237"),
            (FRAME_12, "81b4cb20083ec1d9"),
            (FRAME_13, "2018c8810c0172"),
            (FRAME_14, "811c63200c0100000309080 29f9112000 20f000000006a"),
            (FRAME_15, "20b0308110000 06f"),
            (FRAME_16, "81b4cb201000c10f"),
            (FRAME_17, "20b030811400 0368"),
            (FRAME_18, "81b4cb201400c10b"),
            (FRAME_19, "2000e081180166"),
            (FRAME_20, "81047b20180100010000c6"),
            (FRAME_21, "2018c8811c3c8274000031"),
            (FRAME_22, "811c63201c3c0088"),
        ];
        for (frame, want) in frames {
            let p = rmcpp(frame);
            let msg = keys.open(&p).unwrap();
            assert_eq!(msg, hex(&want.replace(' ', "")), "frame with seq {}", p.seq);
            let mut tampered = frame.to_vec();
            tampered[20] ^= 1;
            assert_eq!(keys.verify(&rmcpp(&tampered)), Err(Error::BadIntegrity));
        }
        // Our own sealing of frame 19's message, with its IV and seq, is byte-identical.
        let p = rmcpp(FRAME_19);
        let iv: [u8; 16] = p.payload[..16].try_into().unwrap();
        let mut out = Vec::new();
        keys.seal(p.session_id, p.seq, &iv, &hex("2000e081180166"), &mut out);
        assert_eq!(out, FRAME_19);
    }

    #[test]
    fn bad_ciphertext_is_an_error_not_a_panic() {
        let keys = exchange().keys(Suite::S3, b"password");
        for len in [0, 15, 16, 17, 31, 33] {
            assert_eq!(
                keys.decrypt(&vec![0; len]),
                Err(Error::BadCiphertext),
                "len {len}"
            );
        }
        let mut c = keys.encrypt(&[1; 16], b"hello");
        let last = c.len() - 1;
        c[last] ^= 0x55;
        assert_eq!(keys.decrypt(&c), Err(Error::BadCiphertext));
        for len in 0..40 {
            let _ = parse_open_session_response(&vec![0; len]);
            let _ = parse_rakp2(&vec![0; len]);
            let _ = exchange().verify_rakp4(&keys, &vec![0; len]);
        }
        assert_eq!(
            parse_open_session_response(&[0, 0x11]),
            Err(Error::Status(0x11))
        );
    }

    /// The BMC's answers in the capture (frames 10, 12 … 22), each with the
    /// request it answers: (frame, net fn, command, sequence).
    fn replies() -> Vec<(&'static [u8], u8, u8, u8)> {
        let keys = exchange().keys(Suite::S3, b"password");
        [
            FRAME_10, FRAME_12, FRAME_14, FRAME_16, FRAME_18, FRAME_20, FRAME_22,
        ]
        .into_iter()
        .map(|f| {
            let msg = keys.open(&rmcpp(f)).unwrap();
            let r = wire::Response::parse(&msg).unwrap();
            (f, r.net_fn - 1, r.cmd, r.rq_seq)
        })
        .collect()
    }

    #[test]
    fn session_reply_accepts_only_the_answer_to_our_request() {
        let x = exchange();
        let keys = x.keys(Suite::S3, b"password");
        for (f, net_fn, cmd, seq) in replies() {
            assert!(session_reply(f, &keys, x.console_sid, net_fn, cmd, seq).is_some());
            // Another session, another request, another sequence number.
            assert!(session_reply(f, &keys, x.console_sid ^ 1, net_fn, cmd, seq).is_none());
            assert!(session_reply(f, &keys, x.console_sid, net_fn, cmd ^ 1, seq).is_none());
            assert!(session_reply(f, &keys, x.console_sid, net_fn + 2, cmd, seq).is_none());
            assert!(
                session_reply(f, &keys, x.console_sid, net_fn, cmd, (seq + 1) & 0x3f).is_none()
            );
            // Other keys (another password).
            let other = x.keys(Suite::S3, b"Password");
            assert!(session_reply(f, &other, x.console_sid, net_fn, cmd, seq).is_none());
        }
        // A well-sealed packet for another session ID is not ours either.
        let (f, net_fn, cmd, seq) = replies()[2];
        let msg = keys.open(&rmcpp(f)).unwrap();
        for sid in [x.console_sid, 0x1234_5678] {
            let mut out = Vec::new();
            keys.seal(sid, 7, &[3; 16], &msg, &mut out);
            let got = session_reply(&out, &keys, x.console_sid, net_fn, cmd, seq);
            assert_eq!(got.is_some(), sid == x.console_sid, "session id {sid:#x}");
        }
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            /// Arbitrary bytes into every reply parser: errors, never a panic.
            #[test]
            fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..300)) {
                let x = exchange();
                let k3 = x.keys(Suite::S3, b"password");
                let k17 = x.keys(Suite::S17, b"password");
                let _ = wire::parse(&b, 12);
                let _ = wire::parse(&b, 16);
                let _ = wire::Response::parse(&b);
                let _ = parse_open_session_response(&b);
                let _ = parse_rakp2(&b);
                let _ = x.verify_rakp4(&k3, &b);
                let _ = x.verify_rakp4(&k17, &b);
                let _ = k3.decrypt(&b);
                let _ = k17.decrypt(&b);
                prop_assert!(session_reply(&b, &k3, x.console_sid, 0x06, 0x01, 3).is_none());
                prop_assert!(session_reply(&b, &k17, x.console_sid, 0x06, 0x01, 3).is_none());
            }

            /// Any change to a captured answer past the RMCP header (header
            /// fields, session ID, sequence, lengths, ciphertext, pad, MAC)
            /// is refused — and never panics.
            #[test]
            fn tampered_answers_are_refused(
                which in 0usize..7,
                edits in proptest::collection::vec((4usize..200, 1u8..=255), 1..4),
            ) {
                let x = exchange();
                let keys = x.keys(Suite::S3, b"password");
                let (f, net_fn, cmd, seq) = replies()[which];
                let mut g = f.to_vec();
                for (i, v) in edits {
                    let i = 4 + i % (g.len() - 4);
                    g[i] ^= v;
                }
                if g != f {
                    prop_assert!(session_reply(&g, &keys, x.console_sid, net_fn, cmd, seq).is_none());
                }
            }

            /// Truncated or extended answers and any payload length field.
            #[test]
            fn bad_lengths_are_refused(
                which in 0usize..7,
                cut in 0usize..80,
                extra in proptest::collection::vec(any::<u8>(), 0..40),
                len_field in any::<u16>(),
            ) {
                let x = exchange();
                let keys = x.keys(Suite::S3, b"password");
                let (f, net_fn, cmd, seq) = replies()[which];
                let short = &f[..cut.min(f.len() - 1)];
                prop_assert!(session_reply(short, &keys, x.console_sid, net_fn, cmd, seq).is_none());
                let mut long = f.to_vec();
                long.extend_from_slice(&extra);
                if !extra.is_empty() {
                    prop_assert!(session_reply(&long, &keys, x.console_sid, net_fn, cmd, seq).is_none());
                }
                // RMCP+ payload length: bytes 14..16.
                let mut g = f.to_vec();
                g[14..16].copy_from_slice(&len_field.to_le_bytes());
                if g != f {
                    prop_assert!(session_reply(&g, &keys, x.console_sid, net_fn, cmd, seq).is_none());
                }
            }
        }
    }
}
