//! The boot HTTP server with curl: files (HEAD, ranges, conditional
//! requests, a 4 GiB sparse file), per-MAC iPXE scripts in each state, and
//! the ramdisk deploy's wait for the agent call-back.

use std::process::Command;

use serde_json::{json, Value};

use crate::common::*;

struct Boot {
    s: Server,
    http: u16,
    assets: tempfile::TempDir,
}

fn boot_server(extra: &str) -> Boot {
    let assets = tempfile::tempdir().unwrap();
    // Port 0: the appliance reports the port it bound, and tells booting
    // nodes that address (no public_url).
    let s = Server::start_with(&format!(
        "[http]\nlisten = \"127.0.0.1:0\"\n\
         [tftp]\nlisten = \"127.0.0.1:0\"\nroot = \"{}\"\n{extra}",
        assets.path().display()
    ));
    let http = s.http_port.expect("boot HTTP listens");
    Boot { s, http, assets }
}

impl Boot {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http)
    }

    /// curl with arguments; returns (status, headers, body).
    fn curl(&self, path: &str, args: &[&str]) -> (u16, String, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let headers = dir.path().join("h");
        let body = dir.path().join("b");
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "60", "-o"])
            .arg(&body)
            .arg("-D")
            .arg(&headers)
            .args(["-w", "%{http_code}"])
            .args(args)
            .arg(self.url(path))
            .output()
            .unwrap();
        let status = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        (
            status,
            std::fs::read_to_string(&headers).unwrap_or_default(),
            std::fs::read(&body).unwrap_or_default(),
        )
    }
}

/// A header's value (name matched without regard to case).
fn header<'a>(headers: &'a str, name: &str) -> Option<&'a str> {
    headers.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn files_head_ranges_conditionals_and_a_4_gib_sparse_file() {
    let b = boot_server("");
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(b.assets.path().join("ipxe.efi"), &data).unwrap();
    // HEAD: the real length (curl -I would hang or fail if a body followed).
    let (st, h, _) = b.curl("/assets/ipxe.efi", &["-I"]);
    assert_eq!(st, 200);
    assert_eq!(header(&h, "content-length"), Some("100000"));
    assert_eq!(header(&h, "accept-ranges"), Some("bytes"));
    let etag = header(&h, "etag").unwrap().to_string();
    let modified = header(&h, "last-modified").unwrap().to_string();
    // GET whole.
    let (st, _, body) = b.curl("/assets/ipxe.efi", &[]);
    assert_eq!((st, body.len()), (200, 100_000));
    assert_eq!(body, data);
    // One range.
    let (st, h, body) = b.curl("/assets/ipxe.efi", &["-r", "1000-1999"]);
    assert_eq!(st, 206);
    assert_eq!(header(&h, "content-range"), Some("bytes 1000-1999/100000"));
    assert_eq!(body, data[1000..2000]);
    // Two ranges: multipart/byteranges with both parts.
    let (st, h, body) = b.curl("/assets/ipxe.efi", &["-r", "0-9,99990-"]);
    assert_eq!(st, 206);
    assert!(header(&h, "content-type")
        .unwrap()
        .starts_with("multipart/byteranges; boundary="));
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("Content-Range: bytes 0-9/100000"), "{text}");
    assert!(
        text.contains("Content-Range: bytes 99990-99999/100000"),
        "{text}"
    );
    assert_eq!(
        header(&h, "content-length")
            .unwrap()
            .parse::<usize>()
            .unwrap(),
        body.len()
    );
    // Unsatisfiable.
    let (st, h, _) = b.curl("/assets/ipxe.efi", &["-r", "200000-"]);
    assert_eq!(st, 416);
    assert_eq!(header(&h, "content-range"), Some("bytes */100000"));
    // Conditional requests: 304.
    let (st, _, body) = b.curl(
        "/assets/ipxe.efi",
        &["-H", &format!("If-None-Match: {etag}")],
    );
    assert_eq!((st, body.len()), (304, 0));
    let (st, _, _) = b.curl(
        "/assets/ipxe.efi",
        &["-H", &format!("If-Modified-Since: {modified}")],
    );
    assert_eq!(st, 304);
    // If-Range with a stale validator: the whole file instead of the range.
    let (st, _, body) = b.curl(
        "/assets/ipxe.efi",
        &["-r", "0-9", "-H", "If-Range: \"stale\""],
    );
    assert_eq!((st, body.len()), (200, 100_000));
    let (st, _, body) = b.curl(
        "/assets/ipxe.efi",
        &["-r", "0-9", "-H", &format!("If-Range: {etag}")],
    );
    assert_eq!((st, body.len()), (206, 10));
    // A 4 GiB sparse file, read at its end (sizes past 32 bits).
    let big = b.assets.path().join("big.iso");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(4 << 30).unwrap();
    use std::os::unix::fs::FileExt;
    f.write_at(b"END-OF-ISO", (4 << 30) - 10).unwrap();
    let (st, h, body) = b.curl("/assets/big.iso", &["-r", "-10"]);
    assert_eq!(st, 206);
    assert_eq!(
        header(&h, "content-range"),
        Some("bytes 4294967286-4294967295/4294967296")
    );
    assert_eq!(body, b"END-OF-ISO");
    let (st, h, _) = b.curl("/assets/big.iso", &["-I"]);
    assert_eq!(
        (st, header(&h, "content-length")),
        (200, Some("4294967296"))
    );
    // Escapes and missing files.
    for p in [
        "/assets/../Cargo.toml",
        "/assets/%2e%2e/x",
        "/assets/missing",
    ] {
        assert_eq!(b.curl(p, &[]).0, 404, "{p}");
    }
}

fn script(b: &Boot, mac: &str) -> String {
    let (st, _, body) = b.curl(&format!("/ipxe/{}", mac.replace(':', "-")), &[]);
    assert_eq!(st, 200);
    String::from_utf8(body).unwrap()
}

/// Waits until the boot backend has caught up with a node change.
fn wait_script(b: &Boot, mac: &str, needle: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let s = script(b, mac);
        if s.contains(needle) {
            return s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {needle:?} in:\n{s}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn per_mac_scripts_follow_the_node_and_the_ramdisk_deploy_waits_for_its_call_back() {
    // rd calls back well within it; iso never does and fails after it.
    let b = boot_server("[conductor]\ndeploy_callback_timeout = \"10s\"\n");
    let s = &b.s;
    let data = s.dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    for f in ["vmlinuz", "initrd.img", "deploy.kernel", "deploy.initrd"] {
        std::fs::write(data.join(f), f).unwrap();
    }
    let file = |n: &str| format!("file://{}", data.join(n).display());
    // /boot.ipxe chains to the per-MAC script.
    let (_, _, boot) = b.curl("/boot.ipxe", &[]);
    let boot = String::from_utf8(boot).unwrap();
    assert!(boot.starts_with("#!ipxe\n"));
    assert!(
        boot.contains(&format!(
            "chain --autofree {}/ipxe/${{mac:hexhyp}}",
            b.url("")
        )),
        "{boot}"
    );
    // Unknown MAC.
    let unknown = script(&b, "52:54:00:99:99:99");
    assert!(
        unknown.contains("is not enrolled") && unknown.trim_end().ends_with("exit"),
        "{unknown}"
    );
    // Enrolled: nothing to boot.
    let mac = "52:54:00:42:00:01";
    s.node_with_port(
        json!({"name": "rd", "driver": "fake-hardware", "boot_interface": "ipxe", "deploy_interface": "ramdisk",
               "driver_info": {"deploy_kernel": file("deploy.kernel"), "deploy_ramdisk": file("deploy.initrd")},
               "instance_info": {"kernel": file("vmlinuz"), "ramdisk": file("initrd.img"),
                                 "ramdisk_kernel_arguments": "console=ttyS0"}}),
        mac,
    );
    let t = wait_script(&b, mac, "nothing to boot");
    assert!(t.contains("the node is enroll"), "{t}");
    s.provision("rd", "manage", "manageable");
    s.provision("rd", "provide", "available");
    // Deploy: PXE, power on, then wait for the call-back.
    s.provision("rd", "active", "wait call-back");
    let n = s.node("rd");
    assert_eq!(n["power_state"], "power on");
    assert_eq!(n["target_provision_state"], "active");
    let uuid = n["uuid"].as_str().unwrap().to_string();
    let t = wait_script(&b, mac, "kernel ");
    let base = b.url("");
    assert!(t.contains(&format!("kernel {base}/images/{uuid}/kernel initrd=ramdisk root=/dev/ram0 BOOTIF=01-${{mac:hexhyp}} ipa-api-url={base} console=ttyS0 || goto failed")), "{t}");
    assert!(
        t.contains(&format!(
            "initrd {base}/images/{uuid}/ramdisk || goto failed"
        )),
        "{t}"
    );
    // The images it names are served, and only those.
    let (st, _, k) = b.curl(&format!("/images/{uuid}/kernel"), &[]);
    assert_eq!((st, k.as_slice()), (200, &b"vmlinuz"[..]));
    assert_eq!(b.curl(&format!("/images/{uuid}/deploy_kernel"), &[]).0, 404);
    // The agent reads the API version first: 1.67 (tokens, no agent TLS).
    let (st, _, root) = b.curl("/", &[]);
    assert_eq!(st, 200);
    let root: Value = serde_json::from_slice(&root).unwrap();
    assert_eq!(root["default_version"]["version"], "1.67", "{root}");
    // The ramdisk looks itself up and calls back.
    let (st, _, body) = b.curl(
        &format!("/v1/lookup?addresses=aa:bb:cc:dd:ee:ff,{mac}"),
        &[],
    );
    assert_eq!(st, 200);
    let found: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(found["node"]["uuid"], uuid.as_str());
    assert_eq!(found["config"]["agent_token_required"], true);
    assert_eq!(found["config"]["heartbeat_timeout"], 300);
    assert_eq!(
        found["config"]["permitted_image_formats"],
        json!(["raw", "gpt", "qcow2", "iso"])
    );
    assert_eq!(found["config"]["agent_containers"]["runner"], "podman");
    let token = found["config"]["agent_token"].as_str().unwrap().to_string();
    assert_eq!(token.len(), 43, "{found}");
    // The token is shown once per boot: a second lookup gets a mask.
    let (_, _, again) = b.curl(&format!("/v1/lookup?addresses={mac}"), &[]);
    let again: Value = serde_json::from_slice(&again).unwrap();
    assert_eq!(again["config"]["agent_token"], "******");
    // Nor is it in the API's node.
    assert_eq!(
        s.node("rd")["driver_internal_info"]["agent_secret_token"],
        "******"
    );
    let beat = |body: String| {
        b.curl(
            &format!("/v1/heartbeat/{uuid}"),
            &[
                "-X",
                "POST",
                "-H",
                "Content-Type: application/json",
                "-d",
                &body,
            ],
        )
    };
    // Without the token, or with another one, a heartbeat changes nothing.
    for (body, why) in [
        (
            json!({"callback_url": "", "agent_version": "test"}),
            "Agent token is required for heartbeat processing.",
        ),
        (
            json!({"callback_url": "", "agent_token": "forged"}),
            "Invalid or missing agent token received.",
        ),
        (
            json!({"callback_url": "", "agent_token": "******"}),
            "Invalid or missing agent token received.",
        ),
    ] {
        let (st, _, resp) = beat(body.to_string());
        assert_eq!(st, 400, "{}", String::from_utf8_lossy(&resp));
        assert!(
            String::from_utf8_lossy(&resp).contains(why),
            "{}",
            String::from_utf8_lossy(&resp)
        );
        assert_eq!(s.node("rd")["provision_state"], "wait call-back");
    }
    assert!(
        !s.events("rd").iter().any(|e| e.contains("heartbeat from")),
        "a refused heartbeat left a trace in the history"
    );
    assert!(s.log().contains("heartbeat refused"), "refusals are logged");
    let (st, _, _) = beat(
        json!({"callback_url": "http://127.0.0.1:9999", "agent_version": "test", "agent_token": token})
            .to_string(),
    );
    assert_eq!(st, 202);
    s.wait_state("rd", "active");
    let events = s.events("rd");
    assert!(
        events
            .iter()
            .any(|e| e.contains("heartbeat from 127.0.0.1 (agent test): the ramdisk is up")),
        "{events:#?}"
    );
    assert_eq!(
        s.node("rd")["driver_internal_info"]["agent_url"],
        "http://127.0.0.1:9999"
    );
    assert!(
        events
            .iter()
            .any(|e| e.contains("wait call-back -> deploying -> active")),
        "{events:#?}"
    );
    // Active and booting its instance from the network: the same script.
    wait_script(&b, mac, "root=/dev/ram0");
    // Lookup is refused once active.
    assert_eq!(b.curl(&format!("/v1/lookup?addresses={mac}"), &[]).0, 404);
    // An ISO instance: sanboot.
    let mac2 = "52:54:00:42:00:02";
    std::fs::write(data.join("boot.iso"), "iso").unwrap();
    s.node_with_port(
        json!({"name": "iso", "driver": "fake-hardware", "boot_interface": "ipxe", "deploy_interface": "ramdisk",
               "instance_info": {"boot_iso": file("boot.iso")}}),
        mac2,
    );
    s.provision("iso", "manage", "manageable");
    s.provision("iso", "provide", "available");
    s.provision("iso", "active", "wait call-back");
    let uuid2 = s.node("iso")["uuid"].as_str().unwrap().to_string();
    let t = wait_script(&b, mac2, "sanboot");
    assert!(
        t.contains(&format!(
            "sanboot --no-describe {base}/images/{uuid2}/boot_iso || goto failed"
        )),
        "{t}"
    );
    // No call-back: deploy failed after the timeout, with Ironic's words.
    s.wait_state("iso", "deploy failed");
    let last = s.node("iso")["last_error"].as_str().unwrap().to_string();
    assert!(
        last.contains("Timeout reached while waiting for callback for node"),
        "{last}"
    );
    // Undeploy of the first node: power off, boot decision gone, nothing to boot.
    s.provision("rd", "deleted", "available");
    assert_eq!(s.node("rd")["power_state"], "power off");
    wait_script(&b, mac, "nothing to boot");
    // Undeploy forgot the ramdisk's token: its heartbeats are refused.
    let (st, _, _) = b.curl("/v1/heartbeat/rd", &["-X", "POST", "-d", "{}"]);
    assert_eq!(st, 400);
    assert_eq!(s.node("rd")["provision_state"], "available");
    assert_eq!(
        b.curl("/v1/heartbeat/nosuchnode", &["-X", "POST", "-d", "{}"])
            .0,
        404
    );
}

#[test]
fn an_adopted_local_boot_node_is_told_to_boot_its_disk() {
    let b = boot_server("");
    let s = &b.s;
    let blank = s.dir.path().join("data").join("blank.img");
    std::fs::create_dir_all(blank.parent().unwrap()).unwrap();
    std::fs::write(&blank, b"").unwrap();
    let f = format!("file://{}", blank.display());
    let mac = "52:54:00:42:00:03";
    s.node_with_port(
        json!({"name": "prod", "driver": "fake-hardware", "boot_interface": "ipxe",
               "driver_info": {"deploy_kernel": f, "deploy_ramdisk": f},
               "instance_info": {"image_source": f}}),
        mac,
    );
    s.provision("prod", "manage", "manageable");
    s.provision("prod", "adopt", "active");
    let t = wait_script(&b, mac, "local disk");
    assert_eq!(
        t,
        "#!ipxe\necho rackboot: node prod boots from its local disk\nexit\n"
    );
}

/// A python http.server whose request log can be read.
struct Origin {
    dir: tempfile::TempDir,
    port: u16,
    child: std::process::Child,
}

impl Origin {
    fn start() -> Origin {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("access.log")).unwrap();
        let www = dir.path().join("www");
        std::fs::create_dir(&www).unwrap();
        let child = Command::new("python3")
            .args([
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                &port.to_string(),
                "--directory",
            ])
            .arg(&www)
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Origin { dir, port, child }
    }

    fn put(&self, name: &str, bytes: usize, fill: u8) -> String {
        std::fs::write(self.dir.path().join("www").join(name), vec![fill; bytes]).unwrap();
        format!("http://127.0.0.1:{}/{name}", self.port)
    }

    fn gets(&self, name: &str) -> usize {
        std::fs::read_to_string(self.dir.path().join("access.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(&format!("\"GET /{name} ")))
            .count()
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x");
    std::fs::write(&p, bytes).unwrap();
    let out = Command::new("sha256sum").arg(&p).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn twenty_nodes_one_download_checksums_and_eviction() {
    let origin = Origin::start();
    let b = boot_server("[images]\ncache_size_mib = 3\n");
    let s = &b.s;
    let kernel = origin.put("vmlinuz", 2_000_000, 1);
    let ramdisk = origin.put("initrd", 1_000_000, 2);
    let iso1 = origin.put("one.iso", 2_000_000, 3);
    let iso2 = origin.put("two.iso", 2_000_000, 4);
    let names: Vec<String> = (0..20).map(|i| format!("n{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        s.node_with_port(
            json!({"name": name, "driver": "fake-hardware", "boot_interface": "ipxe", "deploy_interface": "ramdisk",
                   "instance_info": {"kernel": kernel, "ramdisk": ramdisk}}),
            &format!("52:54:00:43:00:{i:02x}"),
        );
        s.provision(name, "manage", "manageable");
        s.provision(name, "provide", "available");
    }
    // All twenty deploy at once: one download of each image.
    for name in &names {
        let (st, v) = s.json(
            "PUT",
            &format!("/v1/nodes/{name}/states/provision"),
            Some(json!({"target": "active"})),
        );
        assert_eq!(st, 202, "{v}");
    }
    for name in &names {
        s.wait_state(name, "wait call-back");
    }
    assert_eq!(
        (origin.gets("vmlinuz"), origin.gets("initrd")),
        (1, 1),
        "one download per image"
    );
    let events: Vec<String> = s
        .history("n7")
        .iter()
        .filter_map(|h| h["event"].as_str().map(str::to_string))
        .collect();
    assert!(
        events
            .iter()
            .any(|e| e.contains("instance_info/kernel") && e.contains("staged (2000000 bytes")),
        "{events:#?}"
    );
    // Served from the cache, not fetched again.
    let uuid = s.node("n3")["uuid"].as_str().unwrap().to_string();
    let (st, _, body) = b.curl(&format!("/images/{uuid}/kernel"), &[]);
    assert_eq!((st, body.len()), (200, 2_000_000));
    assert_eq!(origin.gets("vmlinuz"), 1);
    // A wrong checksum fails the deploy, naming the image and the reason.
    let bad = "0".repeat(64);
    s.node_with_port(
        json!({"name": "bad", "driver": "fake-hardware", "boot_interface": "ipxe", "deploy_interface": "ramdisk",
               "instance_info": {"boot_iso": iso1, "image_os_hash_algo": "sha256", "image_os_hash_value": bad}}),
        "52:54:00:43:01:00",
    );
    s.provision("bad", "manage", "manageable");
    s.provision("bad", "provide", "available");
    s.provision("bad", "active", "deploy failed");
    let err = s.node("bad")["last_error"].as_str().unwrap().to_string();
    assert!(
        err.contains(&format!("checksum mismatch for {iso1}: sha256 is ")) && err.contains(&bad),
        "{err}"
    );
    let calls = power_calls(&s.history("bad"));
    assert!(
        calls.iter().all(|c| !c.contains("set_power_state")),
        "the machine was not touched: {calls:?}"
    );
    // Eviction: one.iso (good checksum now) is staged by a node that then
    // gives up; two.iso pushes the cache over 3 MiB. one.iso goes; the
    // kernel and ramdisk the twenty waiting nodes use stay.
    let good1 = sha256_hex(&vec![3u8; 2_000_000]);
    s.node_with_port(
        json!({"name": "one", "driver": "fake-hardware", "boot_interface": "ipxe", "deploy_interface": "ramdisk",
               "instance_info": {"boot_iso": iso1, "image_os_hash_algo": "sha256", "image_os_hash_value": good1}}),
        "52:54:00:43:01:01",
    );
    s.provision("one", "manage", "manageable");
    s.provision("one", "provide", "available");
    s.provision("one", "active", "wait call-back");
    let cache_dir = s.dir.path().join("data").join("cache");
    assert!(cache_dir.join(&good1).exists());
    s.provision("one", "abort", "deploy failed");
    wait_script(&b, "52:54:00:43:01:01", "nothing to boot");
    s.node_with_port(
        json!({"name": "two", "driver": "fake-hardware", "boot_interface": "ipxe", "deploy_interface": "ramdisk",
               "instance_info": {"boot_iso": iso2}}),
        "52:54:00:43:01:02",
    );
    s.provision("two", "manage", "manageable");
    s.provision("two", "provide", "available");
    s.provision("two", "active", "wait call-back");
    assert!(
        !cache_dir.join(&good1).exists(),
        "the unused ISO was evicted"
    );
    for (bytes, fill) in [(2_000_000, 1u8), (1_000_000, 2u8)] {
        assert!(
            cache_dir.join(sha256_hex(&vec![fill; bytes])).exists(),
            "an image in use was evicted"
        );
    }
}

/// Automated cleaning with the ramdisk deploy interface boots the deploy
/// ramdisk and waits for its call-back in `clean wait`.
#[test]
fn cleaning_boots_the_deploy_ramdisk_and_waits_for_its_call_back() {
    // c1 calls back well within it; c2 never does and fails after it.
    let b = boot_server("[conductor]\nclean_callback_timeout = \"15s\"\n");
    let s = &b.s;
    let data = s.dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("deploy.kernel"), "dk").unwrap();
    std::fs::write(data.join("deploy.initrd"), "dr").unwrap();
    let file = |n: &str| format!("file://{}", data.join(n).display());
    for (name, mac) in [("c1", "52:54:00:44:00:01"), ("c2", "52:54:00:44:00:02")] {
        s.node_with_port(
            json!({"name": name, "driver": "fake-hardware", "boot_interface": "ipxe", "deploy_interface": "ramdisk",
                   "automated_clean": true,
                   "driver_info": {"deploy_kernel": file("deploy.kernel"), "deploy_ramdisk": file("deploy.initrd")}}),
            mac,
        );
        s.provision(name, "manage", "manageable");
        s.provision(name, "provide", "clean wait");
    }
    let uuid = s.node("c1")["uuid"].as_str().unwrap().to_string();
    let base = b.url("");
    let t = wait_script(&b, "52:54:00:44:00:01", "deploy ramdisk");
    assert!(
        t.contains(&format!(
            "kernel {base}/images/{uuid}/deploy_kernel initrd=deploy_ramdisk BOOTIF="
        )),
        "{t}"
    );
    assert_eq!(s.node("c1")["power_state"], "power on");
    let (st, _, found) = b.curl("/v1/lookup?addresses=52:54:00:44:00:01", &[]);
    assert_eq!(st, 200, "lookup is allowed in clean wait");
    let found: Value = serde_json::from_slice(&found).unwrap();
    let body = json!({"agent_token": found["config"]["agent_token"]}).to_string();
    let (st, _, _) = b.curl(
        &format!("/v1/heartbeat/{uuid}"),
        &["-X", "POST", "-d", &body],
    );
    assert_eq!(st, 202);
    s.wait_state("c1", "available");
    // c2's ramdisk never calls back.
    s.wait_state("c2", "clean failed");
    let err = s.node("c2")["last_error"].as_str().unwrap().to_string();
    assert!(
        err.contains("Timeout reached while cleaning the node"),
        "{err}"
    );
}
