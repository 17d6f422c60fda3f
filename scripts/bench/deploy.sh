#!/usr/bin/env bash
# Direct deploy benchmark: one QEMU VM (TCG, 2 vCPUs, 2 GiB, e1000 NIC,
# virtio disk) behind its OpenIPMI ipmi_sim BMC is deployed by rackboot with
# the `direct` interface: the real ironic-python-agent writes a whole-disk raw
# image of BENCH_IMAGE_MIB (default 1024) MiB from rackboot's boot HTTP server.
#
# The limit it is measured against: the same VM, booted into the same agent
# ramdisk, fetching the same image from the same server with plain curl
# (`rackboot.fetch=` on the kernel command line; images/build-ipa-ramdisk.sh's
# rackboot-fetch unit), once to /dev/null and once onto its disk, before the
# agent starts.
#
#   scripts/bench/deploy.sh
#
# Reports: deploy wall time (`deploy` request to `active`), the agent's write
# time and throughput (IPA's "Image streamed onto device … in N seconds"),
# curl's times and throughputs, and the ratios.
#
# Needs root; everything runs in a private network namespace (unshare -n):
# a bridge and a tap for the VM, ipmi_sim on 127.0.0.1, rackboot's DHCP,
# TFTP and HTTP on the bridge. The image is cached by size and content key in
# /var/cache/rackboot/bench (outside the clone).
set -euo pipefail
cd "$(dirname "$0")/../.."
MIB=${BENCH_IMAGE_MIB:-1024}
CACHE=${RACKBOOT_BENCH_CACHE:-/var/cache/rackboot/bench}
. scripts/bench/lib.sh
if [[ "${RACKBOOT_BENCH_IN_NETNS:-}" != 1 ]]; then
    # Built outside the namespace (they may download).
    images/build-ipa-ramdisk.sh
    images/build-test-disk.sh >/dev/null
    # The test disk image (it boots), then pseudo-random data up to the size.
    key=$( { sha256sum images/out/disk/test-disk.raw; echo "$MIB v1"; } | sha256sum | cut -c1-16)
    mkdir -p "$CACHE"
    if [[ ! -s "$CACHE/disk-$key.raw.sha256" ]]; then
        echo "bench/deploy: building a $MIB MiB raw image in $CACHE" >&2
        python3 - images/out/disk/test-disk.raw "$CACHE/disk-$key.raw.tmp" "$MIB" <<'PY'
import random, sys
src, dst, mib = sys.argv[1], sys.argv[2], int(sys.argv[3])
rng = random.Random(13)
with open(src, "rb") as f, open(dst, "wb") as out:
    head = f.read()
    out.write(head)
    left = mib * 2**20 - len(head)
    while left > 0:
        n = min(left, 8 * 2**20)
        out.write(rng.randbytes(n))
        left -= n
PY
        mv "$CACHE/disk-$key.raw.tmp" "$CACHE/disk-$key.raw"
        sha256sum "$CACHE/disk-$key.raw" | cut -d' ' -f1 > "$CACHE/disk-$key.raw.sha256"
    fi
    export BENCH_IMAGE="$CACHE/disk-$key.raw"
fi
bench_enter deploy.sh "scripts/install-deps.sh" qemu-system-x86_64 ipmi_sim python3 curl -- "$@"
ROOT=$PWD
IPA=$ROOT/images/out/ipa
IMAGE=$BENCH_IMAGE
SHA=$(cat "$IMAGE.sha256")
MAC=52:54:00:77:d0:01
API=http://127.0.0.1:16391

ip link add rbbr0 type bridge
ip link set rbbr0 up
ip addr add 10.77.0.1/24 dev rbbr0
ip tuntap add rbtap0 mode tap
ip link set rbtap0 master rbbr0
ip link set rbtap0 up

# The VM (started and stopped by its BMC) and the BMC.
mkdir -p "$run/chassis"
# Twice the image, and at least the 4 GiB the agent wants of a root disk.
disk_mib=$(( MIB * 2 > 5120 ? MIB * 2 : 5120 ))
truncate -s $(( disk_mib * 2**20 )) "$run/disk0.img"
# As the tests' agent VMs: two vCPUs on one TCG thread.
# The console is appended to across the VM's restarts (the agent's lines stay).
echo "qemu-system-x86_64 -accel tcg,thread=single -m 2048 -smp 2 -nographic -nodefaults \
-chardev file,id=con,path=$run/serial,append=on -serial chardev:con \
-netdev tap,id=n0,ifname=rbtap0,script=no,downscript=no \
-device e1000,netdev=n0,mac=$MAC,romfile=/usr/lib/ipxe/qemu/pxe-e1000.rom -boot n \
-drive file=$run/disk0.img,if=virtio,format=raw" > "$run/chassis/vm.cmd"
sed -e "s|@NAME@|bench|; s|@ADDR@|127.0.0.1|; s|@PORT@|9623|; s|@LABDIR@|$ROOT/tests/ipmi-lab|" \
    -e "s|@STATEDIR@|$run/chassis|; s|@USER@|admin|; s|@PASS@|password|" \
    -e "s|/chassis-control.sh |/vm-chassis-control.sh |" \
    tests/ipmi-lab/lan.conf.in > "$run/lan.conf"
ipmi_sim -n -c "$run/lan.conf" -f tests/ipmi-lab/bmc.emu -s "$run/sim" </dev/null >"$run/ipmi_sim.log" 2>&1 &
pids+=($!)
vm_stop() { tests/ipmi-lab/vm-chassis-control.sh "$run/chassis" set power 0 2>/dev/null || true; }
trap 'vm_stop; bench_cleanup' EXIT

cat > "$run/rackboot.toml" <<EOF
[data]
dir = "$run/data"
[api]
listen = "127.0.0.1:16391"
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
file_url_allowed_paths = ["$IPA", "$(dirname "$IMAGE")"]
EOF
RUST_LOG=warn "$RB" serve --config "$run/rackboot.toml" 2>>"$run/rackboot.log" &
pids+=($!)
for _ in $(seq 100); do curl -sf "$API/v1" >/dev/null && break; sleep 0.1; done
curl -sf "$API/v1" >/dev/null || { echo "bench/deploy: rackboot did not start:" >&2; cat "$run/rackboot.log" >&2; exit 1; }

python3 - "$API" "$IPA" "$IMAGE" "$SHA" "$MAC" "$run" <<'PY'
import json, re, sys, time, urllib.error, urllib.request

api, ipa, image, sha, mac, run = sys.argv[1:]
size = __import__("os").path.getsize(image)
H = {"Content-Type": "application/json", "X-OpenStack-Ironic-API-Version": "1.80"}

def call(method, path, body=None):
    req = urllib.request.Request(api + path, method=method, headers=H,
                                 data=None if body is None else json.dumps(body).encode())
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            data = r.read()
            return json.loads(data) if data else None
    except urllib.error.HTTPError as e:
        sys.exit(f"bench/deploy: {method} {path}: {e.code} {e.read().decode(errors='replace')}")

def wait(state, secs):
    deadline = time.time() + secs
    while True:
        n = call("GET", "/v1/nodes/bench")
        if n["provision_state"] == state:
            return time.time()
        if n["provision_state"].endswith("failed") or time.time() > deadline:
            sys.exit(f"bench/deploy: node is {n['provision_state']} ({n['last_error']}), not {state}; "
                     f"see {run}/serial and {run}/rackboot.log")
        time.sleep(0.2)

def serial():
    try:
        return open(f"{run}/serial", errors="replace").read()
    except FileNotFoundError:
        return ""

instance = {"image_source": f"file://{image}", "image_checksum": sha, "image_disk_format": "raw"}
node = call("POST", "/v1/nodes", {
    "name": "bench", "driver": "ipmi", "boot_interface": "ipxe", "deploy_interface": "direct",
    "driver_info": {"ipmi_address": "127.0.0.1", "ipmi_port": 9623, "ipmi_username": "admin",
                    "ipmi_password": "password",
                    "deploy_kernel": f"file://{ipa}/ipa.kernel", "deploy_ramdisk": f"file://{ipa}/ipa.initramfs",
                    "kernel_append_params": "console=ttyS0"},
    "instance_info": instance})
call("POST", "/v1/ports", {"address": mac, "node_uuid": node["uuid"]})
for verb, state in [("manage", "manageable"), ("provide", "available")]:
    call("PUT", "/v1/nodes/bench/states/provision", {"target": verb})
    wait(state, 60)
url = f"http://10.77.0.1:8080/images/{node['uuid']}/image"

# 1. The limit: curl in the agent ramdisk, before the agent starts (the
#    deploy then goes on; it is not the one measured).
call("PATCH", "/v1/nodes/bench", [{"op": "replace", "path": "/driver_info/kernel_append_params",
      "value": f"console=ttyS0 rackboot.fetch={url} rackboot.fetch_disk=/dev/vda"}])
call("PUT", "/v1/nodes/bench/states/provision", {"target": "active"})
deadline = time.time() + 1800
fetch = {}
while len(fetch) < 2:
    for m in re.finditer(r"RACKBOOT-FETCH target=(\w+) bytes=(\d+) seconds=([0-9.]+)", serial()):
        fetch[m.group(1)] = (int(m.group(2)), float(m.group(3)))
    if time.time() > deadline:
        sys.exit(f"bench/deploy: no RACKBOOT-FETCH lines on the console; see {run}/serial")
    time.sleep(0.5)
for target, (got, _) in fetch.items():
    if got != size:
        sys.exit(f"bench/deploy: curl fetched {got} bytes to {target}, the image has {size}")
wait("active", 1800)
call("PUT", "/v1/nodes/bench/states/provision", {"target": "deleted"})
wait("available", 300)

# 2. The deploy measured (undeploy cleared instance_info, as Ironic's does).
call("PATCH", "/v1/nodes/bench", [{"op": "replace", "path": "/driver_info/kernel_append_params",
      "value": "console=ttyS0"}, {"op": "add", "path": "/instance_info", "value": instance}])
t0 = time.time()
call("PUT", "/v1/nodes/bench/states/provision", {"target": "active"})
wall = wait("active", 1800) - t0
m = None
for m in re.finditer(r"Image streamed onto device (\S+) in ([0-9.]+) seconds", serial()):
    pass
if not m:
    sys.exit(f"bench/deploy: the agent's write time is not on the console; see {run}/serial")
write_s = float(m.group(2))
mib = size / 2**20
null_s, disk_s = fetch["null"][1], fetch["disk"][1]
print(f"image: {mib:.0f} MiB raw, served by rackboot's boot HTTP server to one TCG VM (e1000, virtio disk)")
print(f"limit   curl to /dev/null:        {null_s:7.1f} s  {mib / null_s:7.1f} MiB/s")
print(f"limit   curl onto the disk:       {disk_s:7.1f} s  {mib / disk_s:7.1f} MiB/s")
print(f"rackboot agent write (streamed):  {write_s:7.1f} s  {mib / write_s:7.1f} MiB/s")
print(f"rackboot deploy wall time:        {wall:7.1f} s  (deploy request to active: agent boot, write, power cycle)")
print(f"ratio   agent write / curl to disk:    {write_s / disk_s:.2f}")
print(f"ratio   agent write / curl to null:    {write_s / null_s:.2f}")
PY
