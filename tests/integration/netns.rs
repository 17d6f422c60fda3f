//! Test network segments: a bridge in the test's own network namespace (the
//! appliance's side, 10.88.N.1/24) and hosts in network namespaces the test
//! creates, each joined to the bridge by a veth pair. Nothing touches the
//! host's namespace; everything is removed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static NEXT: AtomicU32 = AtomicU32::new(1);

fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (scripts/install-deps.sh installs it)", args[0]));
    assert!(
        out.status.success(),
        "{:?} failed: {}",
        args,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Fails clearly when the test cannot make namespaces.
pub fn require_root() {
    let uid = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        .unwrap_or_default();
    assert_eq!(
        uid, "0",
        "this test creates network namespaces and needs root (scripts/test.sh runs it as root inside unshare -n)"
    );
}

/// A bridge with the appliance's address and the hosts joined to it.
pub struct Segment {
    pub n: u32,
    pub bridge: String,
    hosts: Vec<String>,
    taps: Vec<String>,
}

impl Segment {
    pub fn new() -> Segment {
        require_root();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(n < 250, "too many test segments");
        let bridge = format!("rbb{n}");
        run(&["ip", "link", "add", &bridge, "type", "bridge"]);
        run(&["ip", "link", "set", &bridge, "up"]);
        run(&[
            "ip",
            "addr",
            "add",
            &format!("10.88.{n}.1/24"),
            "dev",
            &bridge,
        ]);
        Segment {
            n,
            bridge,
            hosts: Vec::new(),
            taps: Vec::new(),
        }
    }

    /// The appliance's address on this segment.
    pub fn server_ip(&self) -> String {
        format!("10.88.{}.1", self.n)
    }

    /// `10.88.N.<last>`.
    pub fn ip(&self, last: u8) -> String {
        format!("10.88.{}.{last}", self.n)
    }

    /// A MAC unique to this segment: 52:54:00:88:N:i.
    pub fn mac(&self, i: u8) -> String {
        format!("52:54:00:88:{:02x}:{i:02x}", self.n)
    }

    /// A tap on the bridge, for a QEMU VM.
    pub fn tap(&mut self) -> String {
        let tap = format!("rbp{}x{}", self.n, self.taps.len());
        run(&["ip", "tuntap", "add", &tap, "mode", "tap"]);
        run(&["ip", "link", "set", &tap, "master", &self.bridge]);
        run(&["ip", "link", "set", &tap, "up"]);
        self.taps.push(tap.clone());
        tap
    }

    /// A new host (network namespace) with `eth0` on the bridge.
    pub fn host(&mut self, mac: &str) -> Host {
        let i = self.hosts.len();
        let ns = format!("rbt{}-{}-{i}", std::process::id(), self.n);
        let veth = format!("rbv{}x{i}", self.n);
        run(&["ip", "netns", "add", &ns]);
        self.hosts.push(ns.clone());
        run(&[
            "ip", "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ]);
        run(&["ip", "link", "set", &veth, "master", &self.bridge]);
        run(&["ip", "link", "set", &veth, "up"]);
        run(&["ip", "-n", &ns, "link", "set", "eth0", "address", mac]);
        run(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
        run(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        let dir = tempfile::tempdir().unwrap();
        Host { ns, dir }
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        for t in &self.taps {
            let _ = Command::new("ip").args(["link", "del", t]).status();
        }
        for ns in &self.hosts {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .status();
    }
}

/// One host on a segment.
pub struct Host {
    pub ns: String,

    pub dir: tempfile::TempDir,
}

impl Host {
    /// A command run inside the host's namespace.
    pub fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns, program]);
        c
    }

    pub fn run(&self, program: &str, args: &[&str]) -> Output {
        self.cmd(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e}"))
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The event log the client scripts below append to.
    pub fn events(&self) -> Vec<String> {
        std::fs::read_to_string(self.path("events"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Waits until the event log has a line starting with `prefix` after
    /// line `after`; returns it.
    pub fn wait_event(&self, prefix: &str, after: usize, secs: u64) -> String {
        self.wait_events(&[prefix], after, secs)
    }

    /// Like `wait_event`, for any of several prefixes.
    pub fn wait_events(&self, prefixes: &[&str], after: usize, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(l) = self
                .events()
                .into_iter()
                .skip(after)
                .find(|l| prefixes.iter().any(|p| l.starts_with(p)))
            {
                return l;
            }
            assert!(
                Instant::now() < deadline,
                "no {prefixes:?} event within {secs} s; events: {:?}",
                self.events()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn script(&self, name: &str, body: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, body).unwrap();
        run(&["chmod", "+x", p.to_str().unwrap()]);
        p
    }

    /// busybox udhcpc with a script that logs `<event> ip=… siaddr=… boot_file=… serverid=… router=…`
    /// and configures the address.
    pub fn udhcpc(&self, args: &[&str]) -> Command {
        let script = self.script(
            "udhcpc.sh",
            &format!(
                "#!/bin/sh\necho \"$1 ip=$ip siaddr=$siaddr boot_file=$boot_file serverid=$serverid router=$router\" >> {log}\n\
                 case \"$1\" in\n  bound|renew) ip addr flush dev \"$interface\"; ip addr add \"$ip/${{mask:-24}}\" dev \"$interface\" ;;\n  deconfig) ip addr flush dev \"$interface\" ;;\nesac\nexit 0\n",
                log = self.path("events").display()
            ),
        );
        let mut c = self.cmd("busybox");
        c.args(["udhcpc", "-f", "-i", "eth0", "-s"])
            .arg(script)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    }

    /// ISC dhclient (foreground, one try) with a script that logs
    /// `<REASON> ip=<new_ip_address>` and configures the address.
    pub fn dhclient(&self, args: &[&str]) -> Command {
        let script = self.dhclient_script();
        let mut c = self.cmd("dhclient");
        c.args(["-4", "-1", "-lf"])
            .arg(self.path("dhclient.leases"))
            .arg("-pf")
            .arg(self.path("dhclient.pid"))
            .arg("-sf")
            .arg(script)
            .args(args)
            .arg("eth0")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    }

    fn dhclient_script(&self) -> PathBuf {
        self.script(
            "dhclient.sh",
            &format!(
                "#!/bin/sh\necho \"$reason ip=$new_ip_address\" >> {log}\n\
                 case \"$reason\" in\n  BOUND|RENEW|REBIND|REBOOT) ip addr flush dev \"$interface\"; ip addr add \"$new_ip_address/24\" dev \"$interface\" ;;\n  RELEASE|EXPIRE|STOP) ip addr flush dev \"$interface\" ;;\nesac\nexit 0\n",
                log = self.path("events").display()
            ),
        )
    }
}

/// A child process that is stopped when the guard goes, even when a test
/// fails half-way.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        stop(&mut self.0);
    }
}

/// Stops a child we started (by PID) and reaps it.
pub fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// `kill -SIG pid` for a child we started.
pub fn signal(child: &Child, sig: &str) {
    run(&["kill", &format!("-{sig}"), &child.id().to_string()]);
}

/// The `ip=` field of a client event line.
pub fn ip_of(event: &str) -> String {
    event
        .split_whitespace()
        .find_map(|w| w.strip_prefix("ip="))
        .unwrap_or_default()
        .to_string()
}

/// Firmware a test VM boots with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    /// SeaBIOS + QEMU's iPXE e1000 ROM.
    BiosIpxe,
    /// OVMF's own EDK2 PXE client on virtio-net.
    UefiPxe,
    /// OVMF + QEMU's iPXE EFI e1000 ROM.
    UefiIpxe,
}

/// A QEMU VM (TCG) network-booting from a tap; killed on drop.
pub struct Vm {
    child: Child,
    dir: tempfile::TempDir,
}

/// QEMU's arguments for a VM on `tap` with `mac`; its files (serial
/// console, OVMF variables) go in `dir`.
pub fn qemu_args(tap: &str, mac: &str, fw: Firmware, dir: &Path) -> Vec<String> {
    assert!(
        Path::new("/usr/bin/qemu-system-x86_64").exists(),
        "qemu-system-x86_64 is needed (scripts/install-deps.sh installs qemu-system-x86, seabios, ipxe-qemu, ovmf)"
    );
    let mut a: Vec<String> = [
        "-accel",
        "tcg",
        "-m",
        "512",
        "-nographic",
        "-nodefaults",
        "-serial",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.push(format!("file:{}", dir.join("serial").display()));
    a.push("-netdev".into());
    a.push(format!("tap,id=n0,ifname={tap},script=no,downscript=no"));
    match fw {
        Firmware::BiosIpxe => {
            a.push("-device".into());
            a.push(format!(
                "e1000,netdev=n0,mac={mac},romfile=/usr/lib/ipxe/qemu/pxe-e1000.rom"
            ));
            a.extend(["-boot".to_string(), "n".to_string()]);
        }
        Firmware::UefiPxe | Firmware::UefiIpxe => {
            let vars = dir.join("vars.fd");
            std::fs::copy("/usr/share/OVMF/OVMF_VARS_4M.fd", &vars)
                .expect("OVMF is needed (scripts/install-deps.sh installs ovmf)");
            a.push("-drive".into());
            a.push("if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd".into());
            a.push("-drive".into());
            a.push(format!("if=pflash,format=raw,file={}", vars.display()));
            a.push("-device".into());
            a.push(format!(
                "virtio-net-pci,netdev=n0,mac={mac},romfile=,bootindex=1"
            ));
        }
    }
    a
}

impl Vm {
    pub fn start(tap: &str, mac: &str, fw: Firmware) -> Vm {
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new("qemu-system-x86_64")
            .args(qemu_args(tap, mac, fw, dir.path()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start qemu-system-x86_64");
        Vm { child, dir }
    }

    /// What the VM printed on its serial console so far.
    pub fn serial(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.dir.path().join("serial")).unwrap_or_default())
            .into_owned()
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// An appliance serving DHCP (authoritative), TFTP and boot HTTP on a test
/// segment's bridge, with `file://` images allowed under `images`; `extra`
/// is appended to its `[conductor]` section (and may open others).
pub fn lab_appliance(seg: &Segment, images: &Path, extra: &str) -> crate::common::Server {
    let ip = seg.server_ip();
    crate::common::Server::start_with(&format!(
        "[http]\nlisten = \"{ip}:8080\"\n\
         [tftp]\nlisten = \"{ip}:69\"\nroot = \"{assets}\"\n\
         [dhcp]\nmode = \"authoritative\"\ninterface = \"{br}\"\nrange = [\"{a}\", \"{b}\"]\nrouter = \"{ip}\"\n\
         [conductor]\nfile_url_allowed_paths = [\"{images}\"]\n{extra}",
        assets = crate::common::repo().join("boot-assets").display(),
        br = seg.bridge,
        a = seg.ip(100),
        b = seg.ip(199),
        images = images.display(),
    ))
}

/// QEMU arguments for a VM that runs the agent ramdisk: BIOS + iPXE on
/// `tap`/`mac`, 2 GiB (the agent's initramfs unpacks to about 570 MB), two
/// vCPUs on one host thread: with a thread each (MTTCG), a guest on a loaded
/// 2-core host once stalled for good in early boot (RCU stall, a halted vCPU
/// never woken by the other).
pub fn agent_qemu_args(tap: &str, mac: &str, dir: &Path) -> Vec<String> {
    let mut a = qemu_args(tap, mac, Firmware::BiosIpxe, dir);
    let m = a.iter().position(|x| x == "-m").expect("qemu_args sets -m");
    a[m + 1] = "2048".into();
    a.extend(["-smp".into(), "2".into()]);
    let accel = a
        .iter()
        .position(|x| x == "tcg")
        .expect("qemu_args sets -accel tcg");
    a[accel] = "tcg,thread=single".into();
    a
}

/// QEMU with `args`, as one shell command line (for a BMC's `vm.cmd`).
pub fn qemu_cmd(args: Vec<String>) -> String {
    std::iter::once("qemu-system-x86_64".to_string())
        .chain(args)
        .collect::<Vec<_>>()
        .join(" ")
}

/// One VM running the agent ramdisk at a time (2 GiB, two vCPUs on one TCG thread
/// each): held by every test that boots one, so they take turns instead of
/// starving the rest of the suite on a small CI machine.
pub fn agent_vm_turn() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock().unwrap_or_else(|p| p.into_inner())
}
