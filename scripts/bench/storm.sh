#!/usr/bin/env bash
# Boot storm: N QEMU VMs (TCG, SeaBIOS + QEMU's iPXE e1000 ROM) network-boot
# the test kernel + ramdisk at once, first from the reference (dnsmasq 2.90
# tuned as in shared/reference/qemu-pxe-lab.md: no-ping, 175.176 = 1, RA on;
# nginx serving the script, kernel and ramdisk), then from rackboot (DHCP +
# boot HTTP + image cache, N nodes in a ramdisk deploy, fake power: this
# script starts the VMs). Reports each VM's time from QEMU start to the
# ramdisk's RACKBOOT-RAMDISK-UP marker, lost boots, and wall time.
#
#   scripts/bench/storm.sh [N=8] [TIMEOUT=180]
#
# Needs root; everything runs in a private network namespace.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-8}
TIMEOUT=${2:-180}
. scripts/bench/lib.sh
# The test kernel + ramdisk (built outside the namespace: it may download).
[[ "${RACKBOOT_BENCH_IN_NETNS:-}" == 1 ]] || images/build-test-ramdisk.sh >/dev/null
bench_enter storm.sh "scripts/install-deps.sh; nginx: apt-get install nginx-light" \
    qemu-system-x86_64 dnsmasq nginx curl python3 -- "$N" "$TIMEOUT"
ROOT=$PWD
IMG=$ROOT/images/out
ip link add rbbr0 type bridge
ip link set rbbr0 up
ip addr add 10.77.0.1/24 dev rbbr0
ip addr add fd77::1/64 dev rbbr0 nodad
for i in $(seq 0 $((N - 1))); do
    ip tuntap add "rbtap$i" mode tap
    ip link set "rbtap$i" master rbbr0
    ip link set "rbtap$i" up
done
mac() { printf '52:54:00:77:b0:%02x' "$1"; }

# Starts N VMs at once and waits for every marker; prints "ms ms ... lost=K wall=W".
storm() {
    local label=$1 settle=${2:-} t0 vms=() done_at=() lost=0
    rm -f "$run"/serial.*
    t0=$(date +%s%N)
    for i in $(seq 0 $((N - 1))); do
        qemu-system-x86_64 -accel tcg -m 512 -nographic -nodefaults -serial "file:$run/serial.$i" \
            -netdev "tap,id=n0,ifname=rbtap$i,script=no,downscript=no" \
            -device "e1000,netdev=n0,mac=$(mac "$i"),romfile=/usr/lib/ipxe/qemu/pxe-e1000.rom" -boot n \
            </dev/null >/dev/null 2>&1 &
        vms+=($!)
        done_at+=(0)
    done
    local deadline=$(( $(date +%s) + TIMEOUT )) left=$N
    while (( left > 0 && $(date +%s) < deadline )); do
        for i in $(seq 0 $((N - 1))); do
            if (( done_at[i] == 0 )) && grep -q RACKBOOT-RAMDISK-UP "$run/serial.$i" 2>/dev/null; then
                done_at[i]=$(( ($(date +%s%N) - t0) / 1000000 )); left=$((left - 1))
            fi
        done
        sleep 0.1
    done
    # Let the booted ramdisks finish (rackboot: their heartbeats) before the VMs stop.
    [[ -n "$settle" ]] && $settle
    for p in "${vms[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${vms[@]}"; do wait "$p" 2>/dev/null || true; done
    local out="" wall=0
    for i in $(seq 0 $((N - 1))); do
        if (( done_at[i] == 0 )); then lost=$((lost + 1)); out+=" lost"; else out+=" ${done_at[i]}"; (( done_at[i] > wall )) && wall=${done_at[i]}; fi
    done
    echo "$label:$out lost=$lost wall=$wall"
}

# --- reference: dnsmasq (tuned) + nginx ---------------------------------------
mkdir -p "$run/www" "$run/nginx"
cp "$IMG/vmlinuz" "$IMG/initrd.cpio.gz" "$run/www/"
cat > "$run/www/boot.ipxe" <<'EOF'
#!ipxe
kernel http://10.77.0.1:8090/vmlinuz initrd=initrd.cpio.gz console=ttyS0 BOOTIF=01-${mac:hexhyp} ipa-api-url=http://10.77.0.1:8090
initrd http://10.77.0.1:8090/initrd.cpio.gz
boot
EOF
cat > "$run/nginx/nginx.conf" <<EOF
user root;
worker_processes auto;
pid $run/nginx/nginx.pid;
error_log $run/nginx/error.log;
events { worker_connections 1024; }
http {
    access_log off; sendfile on; tcp_nopush on;
    client_body_temp_path $run/nginx; proxy_temp_path $run/nginx; fastcgi_temp_path $run/nginx;
    uwsgi_temp_path $run/nginx; scgi_temp_path $run/nginx;
    server { listen 10.77.0.1:8090; root $run/www; }
}
EOF
cat > "$run/dnsmasq.conf" <<EOF
port=0
interface=rbbr0
bind-interfaces
dhcp-range=10.77.0.100,10.77.0.199,255.255.255.0,1h
dhcp-option=option:router,10.77.0.1
dhcp-authoritative
dhcp-leasefile=$run/dnsmasq.leases
dhcp-userclass=set:ipxe,iPXE
dhcp-match=set:ipxe,175
dhcp-boot=tag:ipxe,http://10.77.0.1:8090/boot.ipxe
dhcp-option=tag:ipxe,encap:175,176,1
no-ping
enable-ra
dhcp-range=fd77::,ra-only,64
EOF
nginx -c "$run/nginx/nginx.conf" -g 'daemon off;' & ng=$!; pids+=($ng)
dnsmasq -k -C "$run/dnsmasq.conf" --user=root --pid-file="$run/dnsmasq.pid" 2>"$run/dnsmasq.log" & dm=$!; pids+=($dm)
sleep 1
ref=$(storm "dnsmasq+nginx")
ref1=$(N=1; storm "dnsmasq+nginx single")
kill $dm $ng; wait $dm $ng 2>/dev/null || true

# --- rackboot -------------------------------------------------------------------
cat > "$run/rackboot.toml" <<EOF
[data]
dir = "$run/data"
[api]
listen = "127.0.0.1:16389"
[http]
listen = "10.77.0.1:8080"
[tftp]
listen = "10.77.0.1:69"
root = "$ROOT/boot-assets"
[dhcp]
mode = "authoritative"
interface = "rbbr0"
range = ["10.77.0.100", "10.77.0.199"]
router = "10.77.0.1"
[conductor]
sync_power_state_interval = "0s"
file_url_allowed_paths = ["$IMG"]
EOF
serve() {
    RUST_LOG=warn $RB serve --config "$run/rackboot.toml" 2>>"$run/rackboot.log" & rb=$!; pids+=($rb)
    for _ in $(seq 100); do curl -sf http://127.0.0.1:16389/v1 >/dev/null && break; sleep 0.1; done
}
serve
deploy_all() { # enrolls (first time) and deploys every VM's node to wait call-back
    python3 - "$N" "$IMG" "$1" <<'PY'
import json, sys, time, urllib.request
n, img, first = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
api = "http://127.0.0.1:16389"
h = {"Content-Type": "application/json", "X-OpenStack-Ironic-API-Version": "1.80"}
def call(method, path, body=None):
    r = urllib.request.Request(api + path, data=json.dumps(body).encode() if body is not None else None, headers=h, method=method)
    with urllib.request.urlopen(r) as resp:
        t = resp.read()
        return json.loads(t) if t else None
def state(name):
    return call("GET", f"/v1/nodes/{name}")["provision_state"]
def wait(name, want):
    for _ in range(600):
        if state(name) == want: return
        time.sleep(0.05)
    raise SystemExit(f"{name} never reached {want}")
info = {"kernel": f"file://{img}/vmlinuz", "ramdisk": f"file://{img}/initrd.cpio.gz", "ramdisk_kernel_arguments": "console=ttyS0"}
for i in range(n):
    name = f"s{i}"
    if first:
        node = call("POST", "/v1/nodes", {"name": name, "driver": "fake-hardware", "boot_interface": "ipxe", "deploy_interface": "ramdisk", "instance_info": info})
        call("POST", "/v1/ports", {"address": "52:54:00:77:b0:%02x" % i, "node_uuid": node["uuid"]})
        for t, w in (("manage", "manageable"), ("provide", "available")):
            call("PUT", f"/v1/nodes/{name}/states/provision", {"target": t}); wait(name, w)
    else:
        call("PATCH", f"/v1/nodes/{name}", [{"op": "add", "path": "/instance_info", "value": info}])
    call("PUT", f"/v1/nodes/{name}/states/provision", {"target": "active"})
for i in range(n):
    wait(f"s{i}", "wait call-back")
PY
}
undeploy_all() {
    python3 - "$N" <<'PY'
import json, sys, time, urllib.request
n = int(sys.argv[1]); api = "http://127.0.0.1:16389"
h = {"Content-Type": "application/json", "X-OpenStack-Ironic-API-Version": "1.80"}
for i in range(n):
    r = urllib.request.Request(f"{api}/v1/nodes/s{i}/states/provision", data=json.dumps({"target": "deleted"}).encode(), headers=h, method="PUT")
    urllib.request.urlopen(r).read()
for i in range(n):
    for _ in range(600):
        r = urllib.request.Request(f"{api}/v1/nodes/s{i}", headers=h)
        if json.load(urllib.request.urlopen(r))["provision_state"] == "available": break
        time.sleep(0.05)
PY
}
count_active() {
    curl -s -H 'X-OpenStack-Ironic-API-Version: 1.80' "http://127.0.0.1:16389/v1/nodes?fields=provision_state" |
        grep -o '"active"' | wc -l || true
}
wait_active() { # up to 60 s for every node to heartbeat
    for _ in $(seq 300); do (( $(count_active) >= N )) && return; sleep 0.2; done
}
deploy_all 1
ours=$(storm "rackboot" wait_active)
active=$(count_active)
undeploy_all
ours1=$(N=1; deploy_all 0 >/dev/null; storm "rackboot single")
# The same single boot with router advertisements off: what answering iPXE's
# IPv6 router solicitation saves.
N=1 undeploy_all
kill "$rb"; wait "$rb" 2>/dev/null || true
sed -i 's/^\[dhcp\]$/[dhcp]\nrouter_advertisements = false/' "$run/rackboot.toml"
serve
ours1_nora=$(N=1; deploy_all 0 >/dev/null; storm "rackboot single, RAs off")

echo "Boot storm: $N VMs at once (TCG, SeaBIOS + iPXE e1000), ms from QEMU start to RACKBOOT-RAMDISK-UP, $(nproc) CPUs"
for line in "$ref" "$ours" "$ref1" "$ours1" "$ours1_nora"; do echo "  $line"; done
echo "  rackboot nodes active (heartbeat received) after the storm: $active of $N"
w_ref=$(sed -n 's/.*wall=\([0-9]*\).*/\1/p' <<<"$ref"); w_ours=$(sed -n 's/.*wall=\([0-9]*\).*/\1/p' <<<"$ours")
s_ref=$(sed -n 's/.*wall=\([0-9]*\).*/\1/p' <<<"$ref1"); s_ours=$(sed -n 's/.*wall=\([0-9]*\).*/\1/p' <<<"$ours1")
s_nora=$(sed -n 's/.*wall=\([0-9]*\).*/\1/p' <<<"$ours1_nora")
echo "  wall time: reference ${w_ref} ms, rackboot ${w_ours} ms; single BIOS boot: reference ${s_ref} ms, rackboot ${s_ours} ms"
echo "  single BIOS boot with rackboot's router advertisements off: ${s_nora} ms (on: ${s_ours} ms)"
