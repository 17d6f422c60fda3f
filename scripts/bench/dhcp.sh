#!/usr/bin/env bash
# DHCP benchmark: perfdhcp (ISC Kea's load generator) against dnsmasq and
# against rackboot, one after the other in the same run, on a veth pair
# between a private network namespace and one the script creates. Both
# servers persist their leases (dnsmasq's lease file; rackboot's database)
# and answer the same 1000 client MACs (enrolled as nodes in rackboot).
#
#   scripts/bench/dhcp.sh [SECONDS=10] [RATES="2000 10000 20000"]
#
# Prints, per offered rate: completed DORA exchanges per second, drops, and
# the p50/p99 reply latency of DISCOVER->OFFER and REQUEST->ACK, from
# perfdhcp's own timestamps (-x t). Needs root (unshare -n, ip netns).
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-10}
RATES=${2:-"2000 10000 20000"}
MACS=1000

. scripts/bench/lib.sh
bench_enter dhcp.sh "scripts/install-deps.sh installs it" perfdhcp dnsmasq python3 curl -- "$SECS" "$RATES"
ns=rbperf-$$
bench_veth "$ns" 10.89.0.1/16 10.89.0.2/16

python3 -c "
for i in range($MACS):
    print('52:54:00:89:%02x:%02x' % (i // 256, i % 256))
" > "$run/macs"

# perfdhcp as a relay (giaddr 10.89.0.2) -> one line of figures.
perf() { # $1 = label, $2 = rate
    ip netns exec "$ns" perfdhcp -4 -l 10.89.0.2 -r "$2" -M "$run/macs" -p "$SECS" -x t 10.89.0.1 \
        > "$run/perf.out" 2>&1 || true
    python3 - "$1" "$2" "$run/perf.out" "$SECS" <<'EOF'
import re, sys
label, rate, path, secs = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
text = open(path).read()
def section(name):
    m = re.search(r"Statistics for: " + name + r"\*\*\*(.*?)(\*\*\*|$)", text, re.S)
    return m.group(1) if m else ""
def num(sec, key):
    m = re.search(key + r": ([0-9.]+)", sec)
    return float(m.group(1)) if m else 0.0
def lat(name):
    m = re.search(r"Timestamps for packets: " + name + r"\*\*\*\n(.*?)(\n\*\*\*|\Z)", text, re.S)
    ds = []
    for line in (m.group(1).splitlines() if m else []):
        p = re.findall(r"([0-9]+\.[0-9]+)", line)
        if len(p) == 2:
            ds.append((float(p[1]) - float(p[0])) * 1000)
    ds.sort()
    pick = lambda q: ds[min(len(ds) - 1, int(q * len(ds)))] if ds else float("nan")
    return pick(0.5), pick(0.99)
do, ra = section("DISCOVER-OFFER"), section("REQUEST-ACK")
acks = num(ra, "received packets")
sent = num(do, "sent packets")
drops = (sent - acks) / sent * 100 if sent else 0
d50, d99 = lat("DISCOVER-OFFER")
r50, r99 = lat("REQUEST-ACK")
print(f"{label:9s} {rate:>7s} {acks / secs:10.0f} {drops:8.1f}% {d50:8.2f} {d99:8.2f} {r50:8.2f} {r99:8.2f}")
EOF
}

header() {
    printf '%-9s %7s %10s %9s %8s %8s %8s %8s\n' server offered "DORA/s" drops "DO p50" "DO p99" "RA p50" "RA p99"
}

# --- dnsmasq 2.90 (the reference), lease file on, no ping --------------------
cat > "$run/dnsmasq.conf" <<EOF
port=0
interface=rbs
bind-interfaces
dhcp-range=10.89.1.0,10.89.255.250,255.255.0.0,1h
dhcp-authoritative
dhcp-leasefile=$run/dnsmasq.leases
no-ping
EOF
results=()
for rate in $RATES; do
    rm -f "$run/dnsmasq.leases"
    dnsmasq -k -C "$run/dnsmasq.conf" --pid-file="$run/dnsmasq.pid" 2>"$run/dnsmasq.log" & dm=$!
    pids+=("$dm")
    sleep 0.5
    results+=("$(perf dnsmasq "$rate")")
    kill "$dm"; wait "$dm" 2>/dev/null || true
done

# --- rackboot: enrolled MACs only, leases written in batches ------------------
API=127.0.0.1:16386
cat > "$run/rackboot.toml" <<EOF
[data]
dir = "$run/data"
[api]
listen = "$API"
[http]
listen = "127.0.0.1:18080"
[conductor]
sync_power_state_interval = "0s"
[dhcp]
mode = "authoritative"
interface = "rbs"
range = ["10.89.1.0", "10.89.255.250"]
lease_time = "1h"
router_advertisements = false
${BENCH_DHCP_EXTRA:-}
EOF
RUST_LOG=warn $RB serve --config "$run/rackboot.toml" 2> "$run/rackboot.log" & rb=$!
pids+=("$rb")
for _ in $(seq 100); do curl -sf "http://$API/v1" >/dev/null && break; sleep 0.1; done
python3 - "$API" "$run/macs" <<'EOF'
import json, sys, urllib.request
api, macs = sys.argv[1], open(sys.argv[2]).read().split()
h = {"Content-Type": "application/json", "X-OpenStack-Ironic-API-Version": "1.80"}
def post(path, body):
    r = urllib.request.Request(f"http://{api}{path}", data=json.dumps(body).encode(), headers=h)
    return json.load(urllib.request.urlopen(r))
for i, mac in enumerate(macs):
    n = post("/v1/nodes", {"name": f"perf{i}", "driver": "fake-hardware"})
    post("/v1/ports", {"address": mac, "node_uuid": n["uuid"]})
EOF
sleep 0.5
for rate in $RATES; do
    results+=("$(perf rackboot "$rate")")
done
kill "$rb"; wait "$rb" 2>/dev/null || true
leases=$(python3 -c "
import sqlite3, sys; print(sqlite3.connect('$run/data/rackboot.db').execute('select count(*) from dhcp_leases').fetchone()[0])" 2>/dev/null || echo "?")

echo "perfdhcp against dnsmasq $(dnsmasq --version | head -1 | awk '{print $3}') and rackboot, ${SECS} s per rate, $MACS client MACs, veth pair, $(nproc) CPUs"
echo "(latency in ms; DO = DISCOVER->OFFER, RA = REQUEST->ACK; perfdhcp itself shares the CPUs)"
header
for r in "${results[@]}"; do echo "$r"; done
echo "rackboot leases in its database after the run: $leases"
