//! Simulated BMCs for tests: OpenIPMI's `ipmi_sim` on 127.0.0.1 with a
//! chassis-control hook — either chassis state kept in files
//! (tests/ipmi-lab/chassis-control.sh) or a QEMU VM that IPMI really powers
//! (tests/ipmi-lab/vm-chassis-control.sh).

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// One simulated BMC: ipmi_sim on 127.0.0.1:<port>, chassis state in files.
pub struct Bmc {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Child,
}

pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Bmc {
    pub fn start(power_on: bool) -> Bmc {
        Bmc::start_with("chassis-control.sh", |state| {
            std::fs::write(state.join("power"), if power_on { "1\n" } else { "0\n" }).unwrap();
        })
    }

    /// A BMC whose chassis is a QEMU VM: power on starts `vm_cmd` (a shell
    /// command line), power off stops it. The VM is off at first.
    pub fn start_vm(vm_cmd: &str) -> Bmc {
        Bmc::start_with("vm-chassis-control.sh", |state| {
            std::fs::write(state.join("vm.cmd"), vm_cmd).unwrap();
        })
    }

    fn start_with(hook: &str, setup: impl FnOnce(&std::path::Path)) -> Bmc {
        let dir = tempfile::tempdir().unwrap();
        let port = free_udp_port();
        let lab = repo().join("tests/ipmi-lab");
        let state = dir.path().join("chassis");
        std::fs::create_dir_all(&state).unwrap();
        setup(&state);
        let conf = std::fs::read_to_string(lab.join("lan.conf.in"))
            .unwrap()
            .replace("/chassis-control.sh ", &format!("/{hook} "))
            .replace("@NAME@", &format!("bmc{port}"))
            .replace("@ADDR@", "127.0.0.1")
            .replace("@PORT@", &port.to_string())
            .replace("@LABDIR@", lab.to_str().unwrap())
            .replace("@STATEDIR@", state.to_str().unwrap())
            .replace("@USER@", "admin")
            .replace("@PASS@", "password");
        std::fs::write(dir.path().join("lan.conf"), conf).unwrap();
        std::fs::write(dir.path().join("pw"), "password\n").unwrap();
        let child = Bmc::spawn(dir.path(), &lab);
        let bmc = Bmc { dir, port, child };
        bmc.wait_ready();
        bmc
    }

    pub fn spawn(dir: &std::path::Path, lab: &std::path::Path) -> Child {
        Command::new("ipmi_sim")
            .args(["-n", "-c"])
            .arg(dir.join("lan.conf"))
            .arg("-f")
            .arg(lab.join("bmc.emu"))
            .arg("-s")
            .arg(dir.join("sim"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ipmi_sim (Debian openipmi) is needed; scripts/test.sh installs it")
    }

    /// Ready when it answers a status request.
    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !self.ipmitool(&["power", "status"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "ipmi_sim on port {} never answered",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the simulator (the BMC goes silent); `resume` starts it again
    /// on the same port with the same chassis state.
    pub fn silence(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn resume(&mut self) {
        self.child = Bmc::spawn(self.dir.path(), &repo().join("tests/ipmi-lab"));
        self.wait_ready();
    }

    pub fn state(&self, file: &str) -> String {
        std::fs::read_to_string(self.dir.path().join("chassis").join(file))
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    pub fn events(&self) -> Vec<String> {
        self.state("events.log")
            .lines()
            .map(str::to_string)
            .collect()
    }

    pub fn password_file(&self) -> PathBuf {
        self.dir.path().join("pw")
    }

    /// The reference client.
    pub fn ipmitool(&self, args: &[&str]) -> Output {
        Command::new("ipmitool")
            .args([
                "-I",
                "lanplus",
                "-H",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "admin",
                "-C",
                "3",
                "-f",
            ])
            .arg(self.password_file())
            .args(args)
            .output()
            .expect("ipmitool is needed; scripts/test.sh installs it")
    }

    /// `rackboot bmc ARGS…` against this BMC.
    pub fn rackboot(&self, extra: &[&str], cmd: &[&str]) -> Output {
        let args: Vec<&str> = extra.iter().chain(cmd).copied().collect();
        rackboot_bmc(self.port, &self.password_file(), &args)
    }
}

impl Drop for Bmc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A VM this BMC powered: stop it by its PID.
        let pid = self.state("vm.pid");
        if !pid.is_empty() {
            let _ = Command::new("kill").args(["-9", &pid]).status();
        }
    }
}

/// `rackboot bmc --address 127.0.0.1 --port PORT --username admin --password-file PW ARGS…`.
pub fn rackboot_bmc(port: u16, password_file: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rackboot"))
        .args([
            "bmc",
            "--address",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--username",
            "admin",
            "--password-file",
        ])
        .arg(password_file)
        .args(args)
        .output()
        .unwrap()
}
