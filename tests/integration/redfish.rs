//! The `redfish` hardware type and `rackboot bmc --redfish` against
//! sushy-tools 2.2 (PyPI), the Redfish BMC emulator Ironic tests against,
//! with its `--fake` system driver (no hypervisor). The emulator's request
//! log (Werkzeug's access log) shows every call the appliance made.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

use serde_json::{json, Value};

use crate::common::*;

/// The emulator's default system (sushy-tools' fake driver).
pub const SYSTEM: &str = "27946b59-9e44-4fa7-8e91-f3527a1ef094";
pub const SYSTEM2: &str = "4d2b5c8e-0f35-4a31-9b5e-1c2d3e4f5a6b";

/// One sushy-emulator process with its own state (TMPDIR) and log.
pub struct Emulator {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Child,
    auth: Option<(String, String)>,
}

fn sushy_emulator() -> PathBuf {
    let p = repo().join(".sushy-venv/bin/sushy-emulator");
    assert!(
        p.exists(),
        "sushy-tools is not installed at {}; run scripts/install-deps.sh (scripts/test.sh does)",
        p.display()
    );
    p
}

impl Emulator {
    /// An emulator with `systems` (uuid, power state) and, with `auth`, an
    /// htpasswd file (bcrypt) it checks basic authentication against.
    pub fn start(systems: &[(&str, &str)], auth: Option<(&str, &str)>) -> Emulator {
        Emulator::start_with(systems, auth, None)
    }

    /// The same over HTTPS with the certificate and key in `tls`.
    pub fn start_with(
        systems: &[(&str, &str)],
        auth: Option<(&str, &str)>,
        tls: Option<(&std::path::Path, &std::path::Path)>,
    ) -> Emulator {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let list: Vec<Value> = systems
            .iter()
            .enumerate()
            .map(|(i, (uuid, power))| {
                json!({"uuid": uuid, "name": format!("node-{i}"), "power_state": power,
                       "external_notifier": false,
                       "nics": [{"mac": format!("52:54:00:aa:00:{i:02x}"), "ip": "172.22.0.100"}]})
            })
            .collect();
        let mut config = format!(
            "SUSHY_EMULATOR_FAKE_DRIVER = True\nSUSHY_EMULATOR_FAKE_SYSTEMS = {}\n",
            // JSON's literals are Python's once true/false/null are spelled out.
            serde_json::to_string(&list)
                .unwrap()
                .replace("false", "False")
                .replace("true", "True")
        );
        if let Some((user, password)) = auth {
            let file = dir.path().join("htpasswd");
            let out = Command::new("htpasswd")
                .args(["-B", "-b", "-c"])
                .arg(&file)
                .args([user, password])
                .output()
                .expect("htpasswd (apache2-utils) is needed for the emulator's users");
            assert!(out.status.success(), "htpasswd: {out:?}");
            config.push_str(&format!(
                "SUSHY_EMULATOR_AUTH_FILE = {:?}\n",
                file.display().to_string()
            ));
        }
        let conf = dir.path().join("emulator.conf");
        std::fs::write(&conf, config).unwrap();
        let log = std::fs::File::create(dir.path().join("emulator.log")).unwrap();
        let mut cmd = Command::new(sushy_emulator());
        if let Some((cert, key)) = tls {
            cmd.arg("--ssl-certificate")
                .arg(cert)
                .arg("--ssl-key")
                .arg(key);
        }
        let mut child = cmd
            .arg("--config")
            .arg(&conf)
            .args(["--fake", "-i", "127.0.0.1", "-p", &port.to_string()])
            .env("TMPDIR", dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start sushy-emulator");
        wait_for_port(port, &mut child, "sushy-emulator");
        Emulator {
            dir,
            port,
            child,
            auth: auth.map(|(u, p)| (u.to_string(), p.to_string())),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The requests the emulator served, as "METHOD PATH STATUS".
    pub fn requests(&self) -> Vec<String> {
        let log = std::fs::read_to_string(self.dir.path().join("emulator.log")).unwrap();
        log.lines()
            .filter_map(|l| {
                let start = l.find("\"")? + 1;
                let rest = &l[start..];
                let end = rest.find('"')?;
                let mut parts = rest[..end].split_whitespace();
                let (method, path) = (parts.next()?, parts.next()?);
                let status = rest[end + 1..]
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .trim_matches(|c: char| !c.is_ascii_digit());
                Some(format!("{method} {path} {status}"))
            })
            .collect()
    }

    fn curl(&self, args: &[&str]) -> Output {
        let mut c = Command::new("curl");
        c.args(["-s", "--max-time", "10"]);
        if let Some((u, p)) = &self.auth {
            c.args(["-u", &format!("{u}:{p}")]);
        }
        c.args(args).output().expect("curl")
    }

    /// A resource as the emulator shows it.
    pub fn get(&self, path: &str) -> Value {
        let out = self.curl(&[&format!("{}{path}", self.url())]);
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }

    pub fn system(&self, uuid: &str) -> Value {
        self.get(&format!("/redfish/v1/Systems/{uuid}"))
    }

    /// A reset sent behind the appliance's back.
    pub fn reset(&self, uuid: &str, reset_type: &str) {
        let out = self.curl(&[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "-d",
            &json!({ "ResetType": reset_type }).to_string(),
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!(
                "{}/redfish/v1/Systems/{uuid}/Actions/ComputerSystem.Reset",
                self.url()
            ),
        ]);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "204");
    }

    /// Waits until the fake driver has applied a pending power change (it
    /// applies them 1–11 s after the reset).
    pub fn wait_power(&self, uuid: &str, want: &str) {
        wait_until(&format!("system {uuid} to be {want}"), 30, || {
            self.system(uuid)["PowerState"] == want
        });
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Requests after the first `skip`, excluding nothing.
fn since(e: &Emulator, skip: usize) -> Vec<String> {
    e.requests().into_iter().skip(skip).collect()
}

fn create_redfish_node(s: &Server, e: &Emulator, img: &ImageServer, name: &str) -> String {
    let address = format!("redfish_address={}", e.url());
    let kernel = format!("deploy_kernel={}", img.url("deploy.kernel"));
    let ramdisk = format!("deploy_ramdisk={}", img.url("deploy.initramfs"));
    let mut args = vec![
        "node",
        "create",
        "--name",
        name,
        "--driver",
        "redfish",
        "--deploy-interface",
        "ramdisk",
        "--driver-info",
        &address,
        "--driver-info",
        "redfish_username=admin",
        "--driver-info",
        "redfish_password=s3cr3t-redfish",
        "--driver-info",
        &kernel,
        "--driver-info",
        &ramdisk,
    ];
    args.extend_from_slice(&["-f", "value", "-c", "uuid"]);
    ok(baremetal(s, &args), "node create --driver redfish")
        .trim()
        .to_string()
}

fn wait_power_state(s: &Server, node: &str, want: &str) {
    wait_until(&format!("{node} to be recorded as {want}"), 60, || {
        s.node(node)["power_state"] == want
    });
}

/// adoption.md's example with `--driver redfish`: manage reads the power
/// state over Redfish (basic authentication against the emulator's
/// htpasswd), adopt sends the BMC nothing — the emulator's request log
/// proves it. Then power, boot device and boot mode through the
/// `baremetal` CLI reach the emulated system, and are read back.
#[test]
fn redfish_node_is_adopted_without_a_request_then_powered_and_booted() {
    let e = Emulator::start(&[(SYSTEM, "On")], Some(("admin", "s3cr3t-redfish")));
    // No sync pass during the test: every request is the test's own.
    let s = Server::start_with("[conductor]\nsync_power_state_interval = \"1h\"\n");
    let img = ImageServer::start();
    let props = ok(
        baremetal(&s, &["driver", "property", "list", "redfish"]),
        "driver property list redfish",
    );
    for key in [
        "redfish_address",
        "redfish_system_id",
        "redfish_username",
        "redfish_password",
        "redfish_verify_ca",
        "redfish_auth_type",
    ] {
        assert!(props.contains(key), "{key} missing from {props}");
    }
    let uuid = create_redfish_node(&s, &e, &img, "rack1-r01");
    ok(
        baremetal(
            &s,
            &["port", "create", "52:54:00:aa:00:00", "--node", &uuid],
        ),
        "port create",
    );
    let image = format!("image_source={}", img.url("blankimage"));
    ok(
        baremetal(&s, &["node", "set", "rack1-r01", "--instance-info", &image]),
        "set image",
    );
    let validate = ok(
        baremetal(&s, &["node", "validate", "rack1-r01", "-f", "json"]),
        "validate",
    );
    let validate: Value = serde_json::from_str(&validate).unwrap();
    for i in validate.as_array().unwrap() {
        if i["Interface"] == "power" || i["Interface"] == "management" {
            assert_eq!(i["Result"], true, "{i}");
        }
    }
    assert!(e.requests().is_empty(), "validate touches no BMC");
    ok(
        baremetal(&s, &["node", "manage", "rack1-r01", "--wait", "60"]),
        "manage over Redfish",
    );
    let n = s.node("rack1-r01");
    assert_eq!(
        (n["provision_state"].as_str(), n["power_state"].as_str()),
        (Some("manageable"), Some("power on"))
    );
    let at_adopt = e.requests().len();
    assert!(
        e.requests()
            .iter()
            .any(|r| r == &format!("GET /redfish/v1/Systems/{SYSTEM} 200")),
        "manage read the system: {:?}",
        e.requests()
    );
    ok(
        baremetal(&s, &["node", "adopt", "rack1-r01", "--wait", "60"]),
        "adopt",
    );
    let n = s.node("rack1-r01");
    assert_eq!(n["provision_state"], "active");
    assert_eq!(n["last_error"], Value::Null);
    assert_eq!(n["driver_info"]["redfish_password"], "******");
    assert_eq!(
        since(&e, at_adopt),
        Vec::<String>::new(),
        "adoption sent the BMC nothing"
    );
    assert!(!s.log().contains("s3cr3t-redfish"), "password in the log");

    // Power off, on and reboot through the API reach the emulated system.
    let before = e.requests().len();
    ok(
        baremetal(
            &s,
            &["node", "power", "off", "rack1-r01", "--power-timeout", "60"],
        ),
        "power off",
    );
    wait_power_state(&s, "rack1-r01", "power off");
    assert_eq!(e.system(SYSTEM)["PowerState"], "Off");
    let resets: Vec<String> = since(&e, before)
        .into_iter()
        .filter(|r| r.starts_with("POST"))
        .collect();
    assert_eq!(
        resets,
        [format!(
            "POST /redfish/v1/Systems/{SYSTEM}/Actions/ComputerSystem.Reset 204"
        )]
    );
    ok(
        baremetal(
            &s,
            &["node", "power", "on", "rack1-r01", "--power-timeout", "60"],
        ),
        "power on",
    );
    wait_power_state(&s, "rack1-r01", "power on");
    assert_eq!(e.system(SYSTEM)["PowerState"], "On");
    ok(
        baremetal(
            &s,
            &["node", "reboot", "rack1-r01", "--power-timeout", "60"],
        ),
        "reboot",
    );
    wait_until("the reboot in the history", 60, || {
        s.history(&uuid).iter().any(|h| {
            h["event"]
                .as_str()
                .unwrap_or("")
                .contains("ComputerSystem.Reset ForceOff, then On")
        })
    });
    wait_power_state(&s, "rack1-r01", "power on");

    // Boot device, persistent, read back through the API and the emulator.
    ok(
        baremetal(
            &s,
            &[
                "node",
                "boot",
                "device",
                "set",
                "rack1-r01",
                "pxe",
                "--persistent",
            ],
        ),
        "boot device set pxe",
    );
    let boot = e.system(SYSTEM)["Boot"].clone();
    assert_eq!(boot["BootSourceOverrideTarget"], "Pxe", "{boot}");
    assert_eq!(boot["BootSourceOverrideEnabled"], "Continuous", "{boot}");
    let shown = ok(
        baremetal(
            &s,
            &["node", "boot", "device", "show", "rack1-r01", "-f", "json"],
        ),
        "boot device show",
    );
    let shown: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["boot_device"], "pxe");
    assert_eq!(shown["persistent"], true);
    let supported = ok(
        baremetal(
            &s,
            &[
                "node",
                "boot",
                "device",
                "show",
                "rack1-r01",
                "--supported",
                "-f",
                "json",
            ],
        ),
        "supported boot devices",
    );
    assert!(
        supported.contains("cdrom") && !supported.contains("safe"),
        "{supported}"
    );
    // Boot mode: the node asks for legacy BIOS through its capabilities;
    // the next boot device sets BootSourceOverrideMode too.
    ok(
        baremetal(
            &s,
            &[
                "node",
                "set",
                "rack1-r01",
                "--property",
                "capabilities=boot_mode:bios",
            ],
        ),
        "capabilities boot_mode:bios",
    );
    ok(
        baremetal(&s, &["node", "boot", "device", "set", "rack1-r01", "cdrom"]),
        "boot device set cdrom",
    );
    let boot = e.system(SYSTEM)["Boot"].clone();
    assert_eq!(boot["BootSourceOverrideTarget"], "Cd", "{boot}");
    assert_eq!(boot["BootSourceOverrideMode"], "Legacy", "{boot}");
    // An NMI reaches the BMC (sushy-tools' fake driver refuses it: its
    // words come back through the API).
    let text = fails(
        baremetal(&s, &["node", "inject", "nmi", "rack1-r01"]),
        "inject nmi",
    );
    assert!(text.contains("Power state Nmi is not supported"), "{text}");
    // A device the interface does not set is refused before any request.
    let before = e.requests().len();
    let text = fails(
        baremetal(&s, &["node", "boot", "device", "set", "rack1-r01", "safe"]),
        "boot device safe",
    );
    assert!(text.contains("safe"), "{text}");
    assert!(since(&e, before).iter().all(|r| !r.starts_with("PATCH")));
    assert!(!s.log().contains("s3cr3t-redfish"), "password in the log");
}

/// What goes wrong with a Redfish BMC is said in words that name the
/// setting to fix: a wrong password, a system that is not there, a BMC that
/// refuses connections, and one that accepts them but never answers (the
/// read deadline).
#[test]
fn redfish_errors_name_the_setting_to_fix() {
    let e = Emulator::start(
        &[(SYSTEM, "Off"), (SYSTEM2, "On")],
        Some(("admin", "right-one")),
    );
    let s = Server::start_with(
        "[conductor]\nsync_power_state_interval = \"1h\"\nredfish_connect_timeout = \"2s\"\nredfish_read_timeout = \"2s\"\nredfish_connection_attempts = 2\nredfish_connection_retry_interval = \"100ms\"\n",
    );
    let create = |name: &str, info: Value| {
        let (st, v) = s.json(
            "POST",
            "/v1/nodes",
            Some(json!({"driver": "redfish", "name": name, "driver_info": info})),
        );
        assert_eq!(st, 201, "{v}");
    };
    let manage_fails = |name: &str| -> String {
        let text = fails(
            baremetal(&s, &["node", "manage", name, "--wait", "60"]),
            &format!("manage {name}"),
        );
        assert!(text.contains("enroll"), "{text}");
        s.node(name)["last_error"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    // Wrong password.
    create(
        "badpw",
        json!({"redfish_address": e.url(), "redfish_username": "admin", "redfish_password": "nope-nope",
               "redfish_system_id": format!("/redfish/v1/Systems/{SYSTEM}")}),
    );
    let err = manage_fails("badpw");
    assert!(
        err.contains("401") && err.contains("check redfish_username/redfish_password"),
        "{err}"
    );
    assert!(!err.contains("nope-nope"), "{err}");
    // Two systems and no redfish_system_id: which one is ambiguous.
    create(
        "which",
        json!({"redfish_address": e.url(), "redfish_username": "admin", "redfish_password": "right-one"}),
    );
    let err = manage_fails("which");
    assert!(
        err.contains("manages 2 systems") && err.contains("set redfish_system_id"),
        "{err}"
    );
    // A system id (here an Id, not a path) the BMC does not have.
    create(
        "ghost",
        json!({"redfish_address": e.url(), "redfish_username": "admin", "redfish_password": "right-one",
               "redfish_system_id": "not-a-system"}),
    );
    let err = manage_fails("ghost");
    assert!(
        err.contains("system not-a-system not found")
            && err.contains("set redfish_system_id to one of")
            && err.contains(SYSTEM2),
        "{err}"
    );
    // The Id of the second system picks it.
    create(
        "second",
        json!({"redfish_address": e.url(), "redfish_username": "admin", "redfish_password": "right-one",
               "redfish_system_id": SYSTEM2}),
    );
    s.provision("second", "manage", "manageable");
    assert_eq!(s.node("second")["power_state"], "power on");
    // Nobody listens: refused, retried, then named.
    let dead = free_port();
    create(
        "refused",
        json!({"redfish_address": format!("http://127.0.0.1:{dead}")}),
    );
    let err = manage_fails("refused");
    assert!(
        err.contains("cannot connect to Redfish BMC")
            && err.contains("(2 tries)")
            && err.contains("check redfish_address"),
        "{err}"
    );
    // Accepts connections, never answers: the read deadline.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    create(
        "silent",
        json!({"redfish_address": format!("http://127.0.0.1:{silent_port}")}),
    );
    let err = manage_fails("silent");
    assert!(
        err.contains("did not answer GET /redfish/v1/ within 4 s"),
        "{err}"
    );
    drop(silent);
    // driver_info mistakes are caught before any request.
    let (st, v) = s.json(
        "POST",
        "/v1/nodes",
        Some(json!({"driver": "redfish", "name": "noaddr", "driver_info": {"redfish_auth_type": "kerberos"}})),
    );
    assert_eq!(st, 201, "{v}");
    let (_, v) = s.json("GET", "/v1/nodes/noaddr/validate", None);
    assert!(
        v["power"]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("redfish_address"),
        "{v}"
    );
    assert!(!s.log().contains("right-one") && !s.log().contains("nope-nope"));
}

/// The power-state sync loop reads Redfish nodes and enforces the state
/// recorded at adoption: a system powered off behind the appliance's back
/// is powered on again.
#[test]
fn sync_loop_enforces_power_on_redfish_nodes() {
    let e = Emulator::start(&[(SYSTEM, "On")], None);
    let s = Server::start_with("[conductor]\nsync_power_state_interval = \"1s\"\n");
    let blank = s.dir.path().join("blank.img");
    std::fs::write(&blank, b"").unwrap();
    let file = format!("file://{}", blank.display());
    let (st, v) = s.json(
        "POST",
        "/v1/nodes",
        Some(json!({"driver": "redfish", "name": "kept", "deploy_interface": "ramdisk",
                    "driver_info": {"redfish_address": e.url(), "deploy_kernel": file, "deploy_ramdisk": file},
                    "instance_info": {"image_source": file}})),
    );
    assert_eq!(st, 201, "{v}");
    let uuid = v["uuid"].as_str().unwrap().to_string();
    let (st, _) = s.json(
        "POST",
        "/v1/ports",
        Some(json!({"address": "52:54:00:aa:bb:78", "node_uuid": uuid})),
    );
    assert_eq!(st, 201);
    s.provision("kept", "manage", "manageable");
    s.provision("kept", "adopt", "active");
    assert_eq!(s.node("kept")["power_state"], "power on");
    e.reset(SYSTEM, "ForceOff");
    e.wait_power(SYSTEM, "Off");
    wait_until("the sync loop to power it on again", 60, || {
        s.history(&uuid).iter().any(|h| {
            h["event"]
                .as_str()
                .unwrap_or("")
                .contains("power state enforced")
        })
    });
    e.wait_power(SYSTEM, "On");
    assert_eq!(s.node("kept")["power_state"], "power on");
}

/// `rackboot bmc --redfish` against the emulator: status, off, on,
/// bootdev with mode, and virtual media insert (the emulator fetches the
/// image) and eject.
#[test]
fn bmc_cli_speaks_redfish() {
    let e = Emulator::start(&[(SYSTEM, "Off")], Some(("admin", "cli-pw")));
    let img = ImageServer::start();
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "cli-pw\n").unwrap();
    let run = |args: &[&str]| -> Output {
        Command::new(env!("CARGO_BIN_EXE_rackboot"))
            .args([
                "bmc",
                "--redfish",
                "--address",
                &e.url(),
                "--username",
                "admin",
            ])
            .arg("--password-file")
            .arg(&pw)
            .args(args)
            .output()
            .unwrap()
    };
    let text = |o: &Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    let status = run(&["status"]);
    assert_eq!(text(&status).trim(), "Chassis Power is off");
    let on = run(&["on"]);
    assert!(on.status.success(), "{}", text(&on));
    assert_eq!(e.system(SYSTEM)["PowerState"], "On");
    assert_eq!(text(&run(&["status"])).trim(), "Chassis Power is on");
    let boot = run(&["bootdev", "pxe", "--legacy"]);
    assert!(boot.status.success(), "{}", text(&boot));
    // sushy-tools' fake driver reads Once back as Continuous; we say so.
    assert!(
        text(&boot).contains("reads BootSourceOverrideEnabled back as Continuous"),
        "{}",
        text(&boot)
    );
    let b = e.system(SYSTEM)["Boot"].clone();
    assert_eq!(
        (
            b["BootSourceOverrideTarget"].as_str(),
            b["BootSourceOverrideMode"].as_str()
        ),
        (Some("Pxe"), Some("Legacy"))
    );
    let insert = run(&["vmedia", "insert", &img.url("deploy.kernel")]);
    assert!(insert.status.success(), "{}", text(&insert));
    let cd = e.get(&format!("/redfish/v1/Systems/{SYSTEM}/VirtualMedia/Cd"));
    assert_eq!(cd["Inserted"], true, "{cd}");
    assert_eq!(cd["Image"], img.url("deploy.kernel"));
    let eject = run(&["vmedia", "eject"]);
    assert!(
        text(&eject).contains("ejected /redfish/v1/Systems/"),
        "{}",
        text(&eject)
    );
    let cd = e.get(&format!("/redfish/v1/Systems/{SYSTEM}/VirtualMedia/Cd"));
    assert_eq!(cd["Inserted"], false, "{cd}");
    let off = run(&["off"]);
    assert!(off.status.success(), "{}", text(&off));
    assert_eq!(e.system(SYSTEM)["PowerState"], "Off");
    // A wrong password, in words, without the password.
    std::fs::write(&pw, "wrong-pw\n").unwrap();
    let bad = run(&["status"]);
    assert!(!bad.status.success());
    assert!(
        text(&bad).contains("check redfish_username/redfish_password"),
        "{}",
        text(&bad)
    );
    assert!(!text(&bad).contains("wrong-pw"));
}

/// `curl` against the appliance's boot HTTP server: (status, body).
fn boot_curl(port: u16, path: &str, args: &[&str]) -> (u16, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("b");
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "60", "-o"])
        .arg(&body)
        .args(["-w", "%{http_code}"])
        .args(args)
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0),
        std::fs::read(&body).unwrap_or_default(),
    )
}

/// The `ramdisk` deploy of a `redfish` node with `redfish-virtual-media`
/// against sushy-tools' fake system: the appliance builds the instance ISO
/// with the static address from `network_data`, the BMC inserts it (the
/// emulator fetches it from the boot HTTP server), boots from Cd, and the
/// ramdisk's call-back makes the node active; undeploy ejects the media,
/// powers off and deletes the ISO. The `vmedia` API reaches the BMC too.
#[test]
fn virtual_media_ramdisk_deploy_against_the_emulator() {
    let e = Emulator::start(&[(SYSTEM, "Off")], None);
    let s = Server::start_with("[http]\nlisten = \"127.0.0.1:0\"\n");
    let http = s.http_port.expect("boot HTTP listens");
    let img = ImageServer::start();
    let mac = "52:54:00:aa:00:00";
    let (st, v) = s.json(
        "POST",
        "/v1/nodes",
        Some(json!({
            "driver": "redfish", "name": "vm1", "boot_interface": "redfish-virtual-media",
            "deploy_interface": "ramdisk",
            "driver_info": {"redfish_address": e.url(),
                            "deploy_kernel": img.url("deploy.kernel"), "deploy_ramdisk": img.url("deploy.initramfs")},
            "instance_info": {"kernel": img.url("deploy.kernel"), "ramdisk": img.url("deploy.initramfs")},
            "network_data": {
                "links": [{"id": "port0", "type": "phy", "ethernet_mac_address": mac}],
                "networks": [{"id": "n0", "type": "ipv4", "link": "port0", "ip_address": "10.9.0.5",
                              "netmask": "255.255.255.0",
                              "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "10.9.0.1"}]}],
                "services": []
            }
        })),
    );
    assert_eq!(st, 201, "{v}");
    let uuid = v["uuid"].as_str().unwrap().to_string();
    let (st, _) = s.json(
        "POST",
        "/v1/ports",
        Some(json!({"address": mac, "node_uuid": uuid})),
    );
    assert_eq!(st, 201);
    s.provision("vm1", "manage", "manageable");
    s.provision("vm1", "provide", "available");
    let before = e.requests().len();
    s.provision("vm1", "active", "wait call-back");
    let n = s.node("vm1");
    assert_eq!(n["power_state"], "power on");
    let iso_path = format!("/vmedia/{uuid}-instance.iso");
    let iso_url = format!("http://127.0.0.1:{http}{iso_path}");
    // The BMC was told to insert our ISO, boot from Cd and power on.
    let cd = e.get(&format!("/redfish/v1/Systems/{SYSTEM}/VirtualMedia/Cd"));
    assert_eq!(
        (cd["Inserted"].as_bool(), cd["Image"].as_str()),
        (Some(true), Some(iso_url.as_str())),
        "{cd}"
    );
    let boot = e.system(SYSTEM)["Boot"].clone();
    assert_eq!(boot["BootSourceOverrideTarget"], "Cd", "{boot}");
    let calls: Vec<String> = since(&e, before)
        .into_iter()
        .filter(|r| !r.starts_with("GET"))
        .collect();
    assert_eq!(
        calls,
        [
            format!("POST /redfish/v1/Systems/{SYSTEM}/VirtualMedia/Cd/Actions/VirtualMedia.InsertMedia 204"),
            format!("PATCH /redfish/v1/Systems/{SYSTEM} 204"),
            format!("POST /redfish/v1/Systems/{SYSTEM}/Actions/ComputerSystem.Reset 204"),
        ]
    );
    // The ISO carries the kernel line a DHCP-less boot needs; it is served
    // with ranges, as BMCs read it.
    let events = s.events("vm1");
    let built = events
        .iter()
        .find(|e| e.contains("instance ISO built"))
        .unwrap_or_else(|| panic!("{events:#?}"));
    assert!(
        built.contains(&format!(
            "root=/dev/ram0 BOOTIF=01-52-54-00-aa-00-00 ipa-api-url=http://127.0.0.1:{http} boot_method=vmedia ip=10.9.0.5::10.9.0.1:255.255.255.0:::off"
        )),
        "{built}"
    );
    let (st, part) = boot_curl(http, &iso_path, &["-r", "32768-34815"]);
    assert_eq!((st, part.len()), (206, 2048));
    assert_eq!(
        &part[1..6],
        b"CD001",
        "sector 16: the primary volume descriptor"
    );
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("i.iso");
    let (st, whole) = boot_curl(http, &iso_path, &[]);
    assert_eq!(st, 200);
    std::fs::write(&local, whole).unwrap();
    let cfg = Command::new("isoinfo")
        .args(["-R", "-x", "/boot/grub/grub.cfg", "-i"])
        .arg(&local)
        .output()
        .expect("isoinfo (genisoimage)");
    assert!(
        String::from_utf8_lossy(&cfg.stdout)
            .contains("linux /vmlinuz root=/dev/ram0 BOOTIF=01-52-54-00-aa-00-00"),
        "{cfg:?}"
    );
    // The ramdisk looks itself up and calls back: active.
    let (st, found) = boot_curl(http, &format!("/v1/lookup?addresses={mac}"), &[]);
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&found));
    let found: Value = serde_json::from_slice(&found).unwrap();
    let token = found["config"]["agent_token"].as_str().unwrap().to_string();
    let (st, _) = boot_curl(
        http,
        &format!("/v1/heartbeat/{uuid}"),
        &[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "-d",
            &json!({"callback_url": "http://127.0.0.1:9", "agent_version": "test", "agent_token": token}).to_string(),
        ],
    );
    assert_eq!(st, 202);
    s.wait_state("vm1", "active");
    // The vmedia API reaches the BMC: detach, then attach again.
    let (st, v) = s.json("DELETE", "/v1/nodes/vm1/vmedia", None);
    assert!(st == 204 || st == 200, "{st} {v}");
    let cd = e.get(&format!("/redfish/v1/Systems/{SYSTEM}/VirtualMedia/Cd"));
    assert_eq!(cd["Inserted"], false, "{cd}");
    let (st, v) = s.json(
        "POST",
        "/v1/nodes/vm1/vmedia",
        Some(json!({"device_type": "cdrom", "image_url": iso_url})),
    );
    assert!(st == 204 || st == 200, "{st} {v}");
    let cd = e.get(&format!("/redfish/v1/Systems/{SYSTEM}/VirtualMedia/Cd"));
    assert_eq!(cd["Inserted"], true, "{cd}");
    // Undeploy: power off, eject, the ISO is gone.
    s.provision("vm1", "deleted", "available");
    e.wait_power(SYSTEM, "Off");
    let cd = e.get(&format!("/redfish/v1/Systems/{SYSTEM}/VirtualMedia/Cd"));
    assert_eq!(cd["Inserted"], false, "{cd}");
    assert_eq!(boot_curl(http, &iso_path, &[]).0, 404);
}

/// A CA and a server certificate for 127.0.0.1 it signed (openssl):
/// (ca.pem, server.pem, server.key).
fn test_ca(dir: &std::path::Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl is needed for the TLS test");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=rackboot test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

/// redfish_verify_ca against an emulator serving HTTPS with a certificate
/// of its own CA: true refuses it (and says which setting to change),
/// false accepts it, and the CA's path accepts it; the CLI's --ca-file too.
#[test]
fn redfish_verify_ca_true_false_and_a_ca_path() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = test_ca(dir.path());
    let e = Emulator::start_with(&[(SYSTEM, "On")], None, Some((&cert, &key)));
    let url = format!("https://127.0.0.1:{}", e.port);
    let s = Server::start_with("[conductor]\nsync_power_state_interval = \"1h\"\n");
    let cases = [
        ("strict", json!(true), false),
        ("insecure", json!(false), true),
        ("ca", json!(ca.display().to_string()), true),
    ];
    for (name, verify, works) in cases {
        let (st, v) = s.json(
            "POST",
            "/v1/nodes",
            Some(json!({"driver": "redfish", "name": name,
                        "driver_info": {"redfish_address": url, "redfish_verify_ca": verify}})),
        );
        assert_eq!(st, 201, "{v}");
        if works {
            s.provision(name, "manage", "manageable");
            assert_eq!(s.node(name)["power_state"], "power on");
        } else {
            let text = fails(
                baremetal(&s, &["node", "manage", name, "--wait", "60"]),
                "manage against an unknown CA",
            );
            assert!(text.contains("enroll"), "{text}");
            let err = s.node(name)["last_error"]
                .as_str()
                .unwrap_or("")
                .to_string();
            assert!(
                err.contains("certificate") && err.contains("check redfish_verify_ca"),
                "{err}"
            );
        }
    }
    let out = Command::new(env!("CARGO_BIN_EXE_rackboot"))
        .args(["bmc", "--redfish", "--address", &url, "--ca-file"])
        .arg(&ca)
        .arg("status")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "Chassis Power is on",
        "{out:?}"
    );
}

/// `instance_info/boot_iso` is used as given: the ramdisk deploy of an ISO
/// through virtual media serves that ISO (staged in the image cache) and
/// builds nothing.
#[test]
fn virtual_media_serves_a_given_boot_iso() {
    let e = Emulator::start(&[(SYSTEM, "Off")], None);
    let s = Server::start_with("[http]\nlisten = \"127.0.0.1:0\"\n");
    let http = s.http_port.expect("boot HTTP listens");
    let img = ImageServer::start();
    let (st, v) = s.json(
        "POST",
        "/v1/nodes",
        Some(json!({
            "driver": "redfish", "name": "iso1", "boot_interface": "redfish-virtual-media",
            "deploy_interface": "ramdisk",
            "driver_info": {"redfish_address": e.url(),
                            "deploy_kernel": img.url("deploy.kernel"), "deploy_ramdisk": img.url("deploy.initramfs")},
            "instance_info": {"boot_iso": img.url("deploy.initramfs")}
        })),
    );
    assert_eq!(st, 201, "{v}");
    let uuid = v["uuid"].as_str().unwrap().to_string();
    s.provision("iso1", "manage", "manageable");
    s.provision("iso1", "provide", "available");
    s.provision("iso1", "active", "wait call-back");
    let path = format!("/vmedia/{uuid}-instance.iso");
    let cd = e.get(&format!("/redfish/v1/Systems/{SYSTEM}/VirtualMedia/Cd"));
    assert_eq!(
        cd["Image"],
        format!("http://127.0.0.1:{http}{path}"),
        "{cd}"
    );
    assert_eq!(boot_curl(http, &path, &[]), (200, b"ramdisk".to_vec()));
    let events = s.events("iso1");
    assert!(
        events
            .iter()
            .any(|e| e.contains("instance_info/boot_iso") && e.contains("is the ISO, as given")),
        "{events:#?}"
    );
    assert!(
        !events.iter().any(|e| e.contains("ISO built")),
        "{events:#?}"
    );
    s.provision("iso1", "deleted", "available");
    assert_eq!(boot_curl(http, &path, &[]).0, 404);
}
