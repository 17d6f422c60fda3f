//! Test harness: a real `rackboot serve` on an ephemeral loopback port with its
//! own data dir, the real `baremetal` CLI, a real HTTP image server
//! (python3 -m http.server), and a minimal HTTP client for raw requests.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A port nothing listens on right now: for peers that cannot report the
/// port they bound (python's http.server, ipmi_sim) and for dead endpoints.
/// The appliance itself binds port 0 and reports where it listens.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Where the appliance listens, from the STATUS line it sends with READY=1
/// (`listening api=ADDR http=ADDR|off tftp=ADDR|off`).
#[derive(Debug, Clone, Copy)]
struct Listening {
    api: u16,
    http: Option<u16>,
    tftp: Option<u16>,
}

fn parse_listening(message: &str) -> Option<Listening> {
    let status = message
        .lines()
        .find_map(|l| l.strip_prefix("STATUS=listening "))?;
    let port = |key: &str| -> Option<u16> {
        status
            .split(' ')
            .find_map(|kv| kv.strip_prefix(key))
            .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
            .map(|a| a.port())
    };
    Some(Listening {
        api: port("api=")?,
        http: port("http="),
        tftp: port("tftp="),
    })
}

/// Waits for the appliance's READY=1 on its notify socket (bounded); returns
/// where it listens.
fn wait_ready(notify: &UnixDatagram, child: &mut Child, log: &std::path::Path) -> Listening {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buf = [0u8; 512];
    loop {
        if let Ok(n) = notify.recv(&mut buf) {
            let message = String::from_utf8_lossy(&buf[..n]);
            if message.lines().any(|l| l == "READY=1") {
                return parse_listening(&message).unwrap_or_else(|| {
                    panic!("READY=1 came without the listening STATUS: {message:?}")
                });
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "rackboot exited before it was ready: {status}\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "rackboot did not say READY=1 within 30 s\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
    }
}

/// Waits until something accepts TCP connections on `port`.
pub fn wait_for_port(port: u16, child: &mut Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited before listening on port {port}: {status}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{what} did not listen on port {port} within 20 s");
}

/// A running appliance.
pub struct Server {
    pub dir: tempfile::TempDir,
    /// The API's port.
    pub port: u16,
    /// Boot HTTP's and TFTP's ports (None: off).
    pub http_port: Option<u16>,
    pub tftp_port: Option<u16>,
    pub child: Option<Child>,
    extra_config: String,
    /// The data dir (database and image cache); another server's to share it.
    data: PathBuf,
}

impl Server {
    pub fn start() -> Server {
        Server::start_with("")
    }

    /// Starts with extra TOML appended to the `[api]` section's file.
    pub fn start_with(extra_config: &str) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        Server::start_on(dir, data, extra_config)
    }

    /// A second appliance on `other`'s data dir: one database file, two
    /// processes (as several appliances share one store).
    pub fn sharing(other: &Server, extra_config: &str) -> Server {
        Server::start_on(
            tempfile::tempdir().unwrap(),
            other.data.clone(),
            extra_config,
        )
    }

    fn start_on(dir: tempfile::TempDir, data: PathBuf, extra_config: &str) -> Server {
        let mut s = Server {
            dir,
            port: 0,
            http_port: None,
            tftp_port: None,
            child: None,
            extra_config: extra_config.to_string(),
            data,
        };
        s.spawn();
        s
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("rackboot.toml")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("rackboot.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// (Re)starts the process with the same data dir; the API binds port 0
    /// (a fresh port) and reports it.
    pub fn spawn(&mut self) {
        // Boot services on ephemeral loopback ports unless a test says otherwise,
        // so parallel appliances never fight over 69 or 8080.
        let mut extra = self.extra_config.clone();
        if !extra.contains("[tftp]") {
            extra.push_str("\n[tftp]\nlisten = \"127.0.0.1:0\"\n");
        }
        if !extra.contains("[http]") {
            extra.push_str("\n[http]\nlisten = \"127.0.0.1:0\"\n");
        }
        let config = format!(
            "[data]\ndir = \"{}\"\n[api]\nlisten = \"127.0.0.1:0\"\n{}\n",
            self.data.display(),
            extra
        );
        std::fs::write(self.config_path(), config).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        // READY=1 comes once every listener (API, boot HTTP, TFTP, DHCP) is
        // bound, as systemd would see it.
        let notify_path = self.dir.path().join("notify");
        let _ = std::fs::remove_file(&notify_path);
        let notify = UnixDatagram::bind(&notify_path).unwrap();
        notify
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_rackboot"))
            .args(["serve", "--config"])
            .arg(self.config_path())
            .env("NOTIFY_SOCKET", &notify_path)
            .env("RUST_LOG", "debug")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start rackboot");
        let listening = wait_ready(&notify, &mut child, &self.log_path());
        self.port = listening.api;
        self.http_port = listening.http;
        self.tftp_port = listening.tftp;
        self.child = Some(child);
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// kill -9.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// SIGTERM, then wait for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("server running");
        let pid = c.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = c.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "rackboot did not exit within 60 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// One raw HTTP request; returns (status, headers, body).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        headers: &[(&str, &str)],
    ) -> (u16, String, Vec<u8>) {
        http(self.port, method, path, body, headers)
    }

    /// A JSON request at API 1.115.
    pub fn json(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let b = body.map(|b| b.to_string().into_bytes());
        let (status, _, resp) = self.request(
            method,
            path,
            b.as_deref(),
            &[
                ("X-OpenStack-Ironic-API-Version", "1.115"),
                ("Content-Type", "application/json"),
            ],
        );
        let v = if resp.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&resp).unwrap_or(Value::Null)
        };
        (status, v)
    }

    pub fn node(&self, ident: &str) -> Value {
        let (status, v) = self.json("GET", &format!("/v1/nodes/{ident}"), None);
        assert_eq!(status, 200, "GET node {ident}: {v}");
        v
    }

    pub fn history(&self, ident: &str) -> Vec<Value> {
        let (status, v) = self.json(
            "GET",
            &format!("/v1/nodes/{ident}/history?detail=True"),
            None,
        );
        assert_eq!(status, 200, "history {ident}: {v}");
        v["history"].as_array().unwrap().clone()
    }

    /// Creates a node from `body` with one port `mac`; returns its UUID.
    pub fn node_with_port(&self, body: Value, mac: &str) -> String {
        let (st, v) = self.json("POST", "/v1/nodes", Some(body));
        assert_eq!(st, 201, "{v}");
        let uuid = v["uuid"].as_str().unwrap().to_string();
        let (st, v) = self.json(
            "POST",
            "/v1/ports",
            Some(serde_json::json!({"address": mac, "node_uuid": uuid})),
        );
        assert_eq!(st, 201, "{v}");
        uuid
    }

    /// A provision verb, then a wait for `end`. A node the sync loop is
    /// reading is locked for that moment: like python-ironicclient, retry on
    /// 409 (bounded).
    pub fn provision(&self, node: &str, target: &str, end: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        let (st, v) = loop {
            let (st, v) = self.json(
                "PUT",
                &format!("/v1/nodes/{node}/states/provision"),
                Some(serde_json::json!({"target": target})),
            );
            if st != 409 || Instant::now() >= deadline {
                break (st, v);
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        assert_eq!(st, 202, "{target}: {v}");
        self.wait_state(node, end);
    }

    /// The node's history events, oldest first.
    pub fn events(&self, node: &str) -> Vec<String> {
        self.history(node)
            .iter()
            .filter_map(|h| h["event"].as_str().map(str::to_string))
            .collect()
    }

    /// Polls until the node reaches `state` (bounded).
    pub fn wait_state(&self, ident: &str, state: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let n = self.node(ident);
            if n["provision_state"] == state {
                return n;
            }
            assert!(
                Instant::now() < deadline,
                "node {ident} never reached {state}: {n}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Minimal HTTP/1.1 client (Connection: close).
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    headers: &[(&str, &str)],
) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    let body = body.unwrap_or(b"");
    req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    s.write_all(req.as_bytes()).unwrap();
    // A server may answer (413) and close before reading a large body.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("HTTP response head");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut body = raw[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, head, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(nl) = b.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&b[..nl]).trim(), 16).unwrap_or(0);
        let Some(chunk) = b.get(nl + 2..nl + 2 + size).filter(|_| size > 0) else {
            break;
        };
        out.extend_from_slice(chunk);
        b = b.get(nl + 2 + size + 2..).unwrap_or_default();
    }
    out
}

/// The real `baremetal` CLI from python-ironicclient.
pub fn baremetal_bin() -> PathBuf {
    let path = std::env::var_os("RACKBOOT_BAREMETAL")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv/bin/baremetal"));
    assert!(
        path.exists(),
        "the baremetal CLI (python-ironicclient) is not at {}; run scripts/test.sh, which installs it into .venv, \
         or set RACKBOOT_BAREMETAL",
        path.display()
    );
    path
}

/// Runs `baremetal ARGS` against `server` with no auth.
pub fn baremetal(server: &Server, args: &[&str]) -> Output {
    baremetal_env(server, args, &[("OS_AUTH_TYPE", "none")])
}

pub fn baremetal_env(server: &Server, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(baremetal_bin());
    cmd.args(args)
        .env_remove("OS_CLOUD")
        .env_remove("OS_BAREMETAL_API_VERSION")
        .env("OS_ENDPOINT", server.endpoint())
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run baremetal")
}

/// Runs the CLI and insists it succeeds; returns stdout.
pub fn ok(out: Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    stdout
}

/// Runs the CLI and insists it fails; returns stdout+stderr.
pub fn fails(out: Output, what: &str) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success(),
        "{what} should have failed but succeeded:\n{text}"
    );
    text
}

/// `python3 -m http.server` serving a directory on loopback.
pub struct ImageServer {
    _dir: tempfile::TempDir,
    pub port: u16,
    child: Child,
}

impl ImageServer {
    pub fn start() -> ImageServer {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("blankimage"), b"").unwrap();
        std::fs::write(dir.path().join("deploy.kernel"), b"kernel").unwrap();
        std::fs::write(dir.path().join("deploy.initramfs"), b"ramdisk").unwrap();
        let port = free_port();
        let mut child = Command::new("python3")
            .args([
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                &port.to_string(),
                "--directory",
            ])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m http.server (python3 is needed for the image server)");
        wait_for_port(port, &mut child, "python3 -m http.server");
        ImageServer {
            _dir: dir,
            port,
            child,
        }
    }

    pub fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for ImageServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Events of fake power calls in a node's history.
pub fn power_calls(history: &[Value]) -> Vec<String> {
    history
        .iter()
        .filter_map(|h| h["event"].as_str())
        .filter(|e| e.starts_with("fake power call"))
        .map(str::to_string)
        .collect()
}

/// History entries after the first whose event contains `marker`.
pub fn after<'a>(history: &'a [Value], marker: &str) -> &'a [Value] {
    let i = history
        .iter()
        .position(|h| h["event"].as_str().is_some_and(|e| e.contains(marker)))
        .unwrap_or_else(|| panic!("no history entry contains {marker:?}: {history:?}"));
    &history[i..]
}

/// Polls `f` every 100 ms until it holds; fails the test, naming `what`, after
/// `secs` seconds.
pub fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
