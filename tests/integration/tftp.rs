//! The TFTP server against real clients (curl, atftp, tftp-hpa) in a test
//! network namespace.

use std::process::Command;

use crate::common::*;
use crate::netns::*;

fn sha256(path: &std::path::Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// A file of pseudo-random bytes (so a misplaced block cannot go unnoticed).
fn random_file(path: &std::path::Path, bytes: usize) {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut v = Vec::with_capacity(bytes);
    while v.len() < bytes {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(bytes);
    std::fs::write(path, v).unwrap();
}

struct Tftp {
    seg: Segment,
    root: tempfile::TempDir,
    server: Server,
    client: Host,
}

fn tftp_server() -> Tftp {
    let mut seg = Segment::new();
    let root = tempfile::tempdir().unwrap();
    let server = Server::start_with(&format!(
        "[tftp]\nlisten = \"{}:69\"\nroot = \"{}\"\ntimeout = \"1s\"\nretries = 3\n",
        seg.server_ip(),
        root.path().display()
    ));
    let client = seg.host(&seg.mac(1));
    assert!(client
        .run(
            "ip",
            &["addr", "add", &format!("{}/24", seg.ip(10)), "dev", "eth0"]
        )
        .status
        .success());
    Tftp {
        seg,
        root,
        server,
        client,
    }
}

#[test]
fn curl_atftp_and_tftp_hpa_fetch_files_with_options() {
    let t = tftp_server();
    random_file(&t.root.path().join("snponly.efi"), 1_000_003);
    let want = sha256(&t.root.path().join("snponly.efi"));
    let ip = t.seg.server_ip();
    let out = |name: &str| t.client.path(name);
    // curl, default and blksize 1468.
    for (name, extra) in [
        ("curl-512", vec![]),
        ("curl-1468", vec!["--tftp-blksize", "1468"]),
    ] {
        let o = t
            .client
            .cmd("curl")
            .args(["-sS", "--max-time", "60", "-o"])
            .arg(out(name))
            .args(&extra)
            .arg(format!("tftp://{ip}/snponly.efi"))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(sha256(&out(name)), want, "{name}");
    }
    // atftp with windowsize 8 and blksize 1468 (RFC 7440).
    let o = t
        .client
        .cmd("atftp")
        .args([
            "--option",
            "blksize 1468",
            "--option",
            "windowsize 8",
            "--option",
            "tsize",
            "-g",
            "-r",
            "snponly.efi",
            "-l",
        ])
        .arg(out("atftp"))
        .arg(&ip)
        .output()
        .expect("atftp (scripts/install-deps.sh installs it)");
    assert!(
        o.status.success(),
        "atftp: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(sha256(&out("atftp")), want, "atftp windowsize 8");
    // tftp-hpa.
    let o = t
        .client
        .cmd("tftp")
        .args(["-m", "binary", &ip, "-c", "get", "snponly.efi"])
        .arg(out("hpa"))
        .output()
        .expect("tftp-hpa (scripts/install-deps.sh installs it)");
    assert!(
        o.status.success(),
        "tftp-hpa: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(sha256(&out("hpa")), want, "tftp-hpa");
    let log = t.server.log();
    assert!(log.contains("windowsize=8"), "the window was granted");
}

#[test]
fn escapes_writes_and_missing_files_are_refused() {
    let t = tftp_server();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), "secret").unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret"), t.root.path().join("link")).unwrap();
    let ip = t.seg.server_ip();
    for name in ["../etc/passwd", "link", "missing.efi"] {
        let o = t
            .client
            .cmd("curl")
            .args(["-sS", "--max-time", "10", "-o", "/dev/null"])
            .arg(format!("tftp://{ip}/{name}"))
            .output()
            .unwrap();
        assert!(!o.status.success(), "{name} must be refused");
    }
    // A write request.
    std::fs::write(t.client.path("up"), "data").unwrap();
    let o = t
        .client
        .cmd("curl")
        .args(["-sS", "--max-time", "10", "-T"])
        .arg(t.client.path("up"))
        .arg(format!("tftp://{ip}/up"))
        .output()
        .unwrap();
    assert!(!o.status.success(), "a write must be refused");
    assert!(!t.root.path().join("up").exists());
    let log = t.server.log();
    assert!(
        log.contains("leads out of the TFTP root"),
        "symlink escape logged"
    );
    assert!(log.contains("write request refused (read-only)"));
}

/// A PXE ROM's tsize probe: RRQ with tsize, OACK, then ERROR. The server
/// must stop at once: nothing arrives afterwards, not even after its
/// retransmission timeout (1 s, 3 retries here).
#[test]
fn a_tsize_probe_aborted_with_error_leaves_nothing_retransmitting() {
    let t = tftp_server();
    random_file(&t.root.path().join("undionly.kpxe"), 70_000);
    let script = format!(
        r#"
import socket, struct, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.sendto(b"\x00\x01undionly.kpxe\x00octet\x00tsize\x000\x00blksize\x001468\x00", ("{ip}", 69))
data, peer = s.recvfrom(2048)
assert data[:2] == b"\x00\x06", data
assert b"tsize\x0070000\x00" in data, data
s.sendto(b"\x00\x05\x00\x08tsize probe done\x00", peer)
s.settimeout(4.5)
try:
    more, _ = s.recvfrom(2048)
    print("AFTER-ERROR", more[:4].hex())
except socket.timeout:
    print("SILENT")
"#,
        ip = t.seg.server_ip()
    );
    let o = t.client.run("python3", &["-c", &script]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{}{}",
        stdout,
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        stdout.trim(),
        "SILENT",
        "the server kept sending after the client's ERROR"
    );
    assert!(t
        .server
        .log()
        .contains("client ended it after the OACK: ERROR 8"));
}

#[test]
fn a_64_mib_file_crosses_block_rollover_at_blksize_512() {
    let t = tftp_server();
    let f = t.root.path().join("big.img");
    random_file(&f, 64 << 20);
    let o = t
        .client
        .cmd("curl")
        .args(["-sS", "--max-time", "300", "--tftp-blksize", "512", "-o"])
        .arg(t.client.path("big"))
        .arg(format!("tftp://{}/big.img", t.seg.server_ip()))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        sha256(&t.client.path("big")),
        sha256(&f),
        "131072 blocks, two rollovers"
    );
}
