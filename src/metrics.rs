//! Prometheus metrics, served as text at `/metrics` on the boot HTTP
//! listener. Counters are process-wide and cheap to bump (an atomic, or a
//! short lock on a small map keyed by static strings).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

type Key = (&'static str, &'static str);
type Counts = Mutex<BTreeMap<Key, u64>>;

/// DHCP packets by (message type, verdict).
static DHCP: Counts = Mutex::new(BTreeMap::new());
/// TFTP transfers by result ("done", "failed"), plus retransmitted blocks.
static TFTP: Counts = Mutex::new(BTreeMap::new());
static TFTP_RETRANSMITS: AtomicU64 = AtomicU64::new(0);
static TFTP_BYTES: AtomicU64 = AtomicU64::new(0);
/// HTTP requests by (route, status class) and bytes of file bodies served.
static HTTP: Counts = Mutex::new(BTreeMap::new());
static HTTP_BYTES: AtomicU64 = AtomicU64::new(0);
/// BMC calls by (interface, result): "ok" or the failure kind.
static BMC: Counts = Mutex::new(BTreeMap::new());
/// Power-state sync reads by outcome (checked, enforced, failed, recovered).
static POWER_SYNC: Counts = Mutex::new(BTreeMap::new());
/// Conductor workflows by (job, outcome): count and seconds.
static WORKFLOWS: Mutex<BTreeMap<Key, (u64, f64)>> = Mutex::new(BTreeMap::new());

fn bump(map: &Counts, key: Key, n: u64) {
    *map.lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(key)
        .or_insert(0) += n;
}

pub fn dhcp(kind: &'static str, verdict: &'static str) {
    bump(&DHCP, (kind, verdict), 1);
}

pub fn tftp(result: &'static str, bytes: u64, retransmits: u64) {
    bump(&TFTP, (result, ""), 1);
    TFTP_BYTES.fetch_add(bytes, Ordering::Relaxed);
    TFTP_RETRANSMITS.fetch_add(retransmits, Ordering::Relaxed);
}

pub fn http(route: &'static str, status: u16) {
    let class = match status {
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    bump(&HTTP, (route, class), 1);
}

pub fn http_bytes(n: u64) {
    HTTP_BYTES.fetch_add(n, Ordering::Relaxed);
}

pub fn bmc(interface: &'static str, result: &'static str) {
    bump(&BMC, (interface, result), 1);
}

pub fn power_sync(outcome: &'static str) {
    bump(&POWER_SYNC, (outcome, ""), 1);
}

pub fn workflow(job: &'static str, outcome: &'static str, seconds: f64) {
    let mut w = WORKFLOWS.lock().unwrap_or_else(|p| p.into_inner());
    let e = w.entry((job, outcome)).or_insert((0, 0.0));
    e.0 += 1;
    e.1 += seconds;
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// The exposition text; `nodes` is (provision state, count).
pub fn render(nodes: &[(String, u64)]) -> String {
    let mut out = String::new();
    let lock = |m: &'static Counts| m.lock().unwrap_or_else(|p| p.into_inner()).clone();
    family(
        &mut out,
        "rackboot_dhcp_packets_total",
        "counter",
        "DHCP packets received, by message type and verdict.",
    );
    for ((t, v), n) in lock(&DHCP) {
        let _ = writeln!(
            out,
            "rackboot_dhcp_packets_total{{type=\"{t}\",verdict=\"{v}\"}} {n}"
        );
    }
    family(
        &mut out,
        "rackboot_tftp_transfers_total",
        "counter",
        "TFTP transfers, by result.",
    );
    for ((r, _), n) in lock(&TFTP) {
        let _ = writeln!(out, "rackboot_tftp_transfers_total{{result=\"{r}\"}} {n}");
    }
    family(
        &mut out,
        "rackboot_tftp_retransmits_total",
        "counter",
        "TFTP blocks sent again.",
    );
    let _ = writeln!(
        out,
        "rackboot_tftp_retransmits_total {}",
        TFTP_RETRANSMITS.load(Ordering::Relaxed)
    );
    family(
        &mut out,
        "rackboot_tftp_bytes_total",
        "counter",
        "Bytes of files sent over TFTP.",
    );
    let _ = writeln!(
        out,
        "rackboot_tftp_bytes_total {}",
        TFTP_BYTES.load(Ordering::Relaxed)
    );
    family(
        &mut out,
        "rackboot_http_requests_total",
        "counter",
        "Boot HTTP requests, by route and status class.",
    );
    for ((r, c), n) in lock(&HTTP) {
        let _ = writeln!(
            out,
            "rackboot_http_requests_total{{route=\"{r}\",status=\"{c}\"}} {n}"
        );
    }
    family(
        &mut out,
        "rackboot_http_bytes_total",
        "counter",
        "Bytes of file bodies served over boot HTTP.",
    );
    let _ = writeln!(
        out,
        "rackboot_http_bytes_total {}",
        HTTP_BYTES.load(Ordering::Relaxed)
    );
    family(
        &mut out,
        "rackboot_bmc_calls_total",
        "counter",
        "BMC calls, by interface and result (ok, or the failure kind).",
    );
    for ((i, r), n) in lock(&BMC) {
        let _ = writeln!(
            out,
            "rackboot_bmc_calls_total{{interface=\"{i}\",result=\"{r}\"}} {n}"
        );
    }
    family(
        &mut out,
        "rackboot_power_sync_reads_total",
        "counter",
        "Power-state reads by the sync loop, by outcome.",
    );
    for ((o, _), n) in lock(&POWER_SYNC) {
        let _ = writeln!(
            out,
            "rackboot_power_sync_reads_total{{outcome=\"{o}\"}} {n}"
        );
    }
    family(
        &mut out,
        "rackboot_nodes",
        "gauge",
        "Nodes, by provision state.",
    );
    for (state, n) in nodes {
        let _ = writeln!(out, "rackboot_nodes{{provision_state=\"{state}\"}} {n}");
    }
    let w = WORKFLOWS.lock().unwrap_or_else(|p| p.into_inner()).clone();
    family(
        &mut out,
        "rackboot_workflow_seconds",
        "summary",
        "Conductor workflow durations, by job and outcome.",
    );
    for ((job, outcome), (count, sum)) in w {
        let _ = writeln!(
            out,
            "rackboot_workflow_seconds_count{{job=\"{job}\",outcome=\"{outcome}\"}} {count}"
        );
        let _ = writeln!(
            out,
            "rackboot_workflow_seconds_sum{{job=\"{job}\",outcome=\"{outcome}\"}} {sum:.6}"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        dhcp("DISCOVER", "offer");
        dhcp("DISCOVER", "offer");
        bmc("ipmi", "unreachable");
        workflow("deploy", "done", 1.5);
        http("assets", 206);
        power_sync("checked");
        let text = render(&[("active".into(), 3)]);
        assert!(text.contains("rackboot_power_sync_reads_total{outcome=\"checked\"} "));
        assert!(
            text.contains("rackboot_dhcp_packets_total{type=\"DISCOVER\",verdict=\"offer\"} "),
            "{text}"
        );
        assert!(
            text.contains("rackboot_bmc_calls_total{interface=\"ipmi\",result=\"unreachable\"} ")
        );
        assert!(text.contains("rackboot_nodes{provision_state=\"active\"} 3"));
        assert!(text.contains("rackboot_workflow_seconds_count{job=\"deploy\",outcome=\"done\"} "));
        assert!(text.contains("rackboot_http_requests_total{route=\"assets\",status=\"2xx\"} "));
        // Every sample line is `name{labels} value` or `name value`.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
