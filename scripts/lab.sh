#!/usr/bin/env bash
# A QEMU + virtual-BMC rack lab in one command, all inside a network
# namespace this script creates (nothing touches the host's network):
#   - netns "rblab" with a bridge rbbr0 (10.77.0.1/24) and N taps;
#   - N QEMU VMs (TCG; SeaBIOS + QEMU's iPXE e1000 ROM, or OVMF's own PXE
#     client on virtio-net), each powered by its own OpenIPMI ipmi_sim BMC
#     on 127.0.0.1:<9601+i> inside the namespace (IPMI power on starts the
#     VM, power off stops it);
#   - rackboot serving DHCP (authoritative), TFTP and HTTP on the bridge and
#     its API on 127.0.0.1:6385 inside the namespace;
#   - an inventory of the nodes (MAC, BMC address/port/credentials).
#
#   scripts/lab.sh up [N=2]    # FIRMWARE=bios|uefi|mixed (default mixed)
#   scripts/lab.sh status
#   scripts/lab.sh down
#   scripts/lab.sh enroll      # enroll every inventory node (driver ipmi,
#                              # ramdisk deploy of the test image)
# Run the baremetal CLI inside the namespace:
#   ip netns exec rblab env OS_ENDPOINT=http://127.0.0.1:6385 OS_AUTH_TYPE=none \
#       .venv/bin/baremetal node list
# State lives in $RACKBOOT_LAB_DIR (default /tmp/rackboot-lab). Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
LAB=${RACKBOOT_LAB_DIR:-/tmp/rackboot-lab}
NS=rblab
BR=rbbr0
API=127.0.0.1:6385
say() { printf 'lab: %s\n' "$*"; }
die() { printf 'lab: ERROR: %s\n' "$*" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || die "needs root (network namespaces, taps)"
in_ns() { ip netns exec "$NS" "$@"; }
alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }
mac_of() { printf '52:54:00:77:00:%02x' "$1"; }

up() {
    local n=${1:-2} fw=${FIRMWARE:-mixed}
    command -v qemu-system-x86_64 >/dev/null && command -v ipmi_sim >/dev/null ||
        die "missing QEMU or ipmi_sim: run scripts/install-deps.sh"
    say "building rackboot (release) and the test image"
    cargo build --release --quiet
    images/build-test-ramdisk.sh >/dev/null
    mkdir -p "$LAB"
    if ! ip netns list | grep -qw "$NS"; then
        say "creating network namespace $NS with bridge $BR 10.77.0.1/24"
        ip netns add "$NS"
        in_ns ip link set lo up
        in_ns ip link add "$BR" type bridge
        in_ns ip addr add 10.77.0.1/24 dev "$BR"
        in_ns ip link set "$BR" up
    else
        say "namespace $NS exists"
    fi
    : > "$LAB/inventory.tmp"
    for i in $(seq 0 $((n - 1))); do
        local vm="$LAB/vm$i" tap="rbtap$i" mac port=$((9601 + i)) kind
        mac=$(mac_of "$i")
        case $fw in
        bios) kind=bios ;;
        uefi) kind=uefi ;;
        *) if (( i % 2 == 0 )); then kind=bios; else kind=uefi; fi ;;
        esac
        mkdir -p "$vm/chassis"
        in_ns ip link show "$tap" >/dev/null 2>&1 || {
            in_ns ip tuntap add "$tap" mode tap
            in_ns ip link set "$tap" master "$BR"
            in_ns ip link set "$tap" up
        }
        local qemu="qemu-system-x86_64 -accel tcg -m 512 -nographic -nodefaults -serial file:$vm/console.log -netdev tap,id=n0,ifname=$tap,script=no,downscript=no"
        if [[ $kind == bios ]]; then
            qemu+=" -device e1000,netdev=n0,mac=$mac,romfile=/usr/lib/ipxe/qemu/pxe-e1000.rom -boot n"
        else
            [[ -f "$vm/vars.fd" ]] || cp /usr/share/OVMF/OVMF_VARS_4M.fd "$vm/vars.fd"
            qemu+=" -drive if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd -drive if=pflash,format=raw,file=$vm/vars.fd -device virtio-net-pci,netdev=n0,mac=$mac,romfile=,bootindex=1"
        fi
        echo "$qemu" > "$vm/chassis/vm.cmd"
        echo password > "$vm/password"
        sed -e "s|@NAME@|vm$i|; s|@ADDR@|127.0.0.1|; s|@PORT@|$port|; s|@LABDIR@|$ROOT/tests/ipmi-lab|; s|@STATEDIR@|$vm/chassis|; s|@USER@|admin|; s|@PASS@|password|" \
            -e "s|/chassis-control.sh |/vm-chassis-control.sh |" \
            "$ROOT/tests/ipmi-lab/lan.conf.in" > "$vm/lan.conf"
        if alive "$vm/ipmi_sim.pid"; then
            say "vm$i: BMC already running on 127.0.0.1:$port"
        else
            # Not through the in_ns function: $! must be ipmi_sim itself.
            ip netns exec "$NS" ipmi_sim -n -c "$vm/lan.conf" -f "$ROOT/tests/ipmi-lab/bmc.emu" -s "$vm/sim" \
                </dev/null >"$vm/ipmi_sim.log" 2>&1 &
            echo $! > "$vm/ipmi_sim.pid"
            say "vm$i ($kind, $mac): BMC on 127.0.0.1:$port (admin/password), VM off until powered on"
        fi
        printf '{"name": "vm%d", "firmware": "%s", "mac": "%s", "ipmi_address": "127.0.0.1", "ipmi_port": %d, "ipmi_username": "admin", "ipmi_password_file": "%s"}\n' \
            "$i" "$kind" "$mac" "$port" "$vm/password" >> "$LAB/inventory.tmp"
    done
    mv "$LAB/inventory.tmp" "$LAB/inventory.jsonl"
    cat > "$LAB/rackboot.toml" <<EOF
[data]
dir = "$LAB/data"
[api]
listen = "$API"
[http]
listen = "10.77.0.1:8080"
[tftp]
listen = "10.77.0.1:69"
root = "$ROOT/boot-assets"
[dhcp]
mode = "authoritative"
interface = "$BR"
range = ["10.77.0.100", "10.77.0.199"]
router = "10.77.0.1"
[conductor]
sync_power_state_interval = "10s"
file_url_allowed_paths = ["$ROOT/images/out"]
EOF
    if alive "$LAB/rackboot.pid"; then
        say "rackboot already running (pid $(cat "$LAB/rackboot.pid"))"
    else
        ip netns exec "$NS" "$ROOT/target/release/rackboot" serve --config "$LAB/rackboot.toml" </dev/null >"$LAB/rackboot.log" 2>&1 &
        echo $! > "$LAB/rackboot.pid"
        for _ in $(seq 50); do in_ns curl -sf "http://$API/v1" >/dev/null && break; sleep 0.2; done
        in_ns curl -sf "http://$API/v1" >/dev/null || die "rackboot did not start; see $LAB/rackboot.log"
        say "rackboot serving DHCP/TFTP/HTTP on $BR (10.77.0.1), API http://$API (inside $NS)"
    fi
    say "inventory: $LAB/inventory.jsonl; next: scripts/lab.sh enroll, then deploy with baremetal inside the namespace"
}

enroll() {
    [[ -f "$LAB/inventory.jsonl" ]] || die "no lab; run scripts/lab.sh up first"
    while read -r line; do
        python3 - "$line" "$API" "$ROOT/images/out" <<'PY' | in_ns bash
import json, sys
n, api, img = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
pw = open(n["ipmi_password_file"]).read().strip()
node = {"name": n["name"], "driver": "ipmi", "boot_interface": "ipxe", "deploy_interface": "ramdisk",
        "driver_info": {"ipmi_address": n["ipmi_address"], "ipmi_port": n["ipmi_port"],
                        "ipmi_username": n["ipmi_username"], "ipmi_password": pw},
        "instance_info": {"kernel": f"file://{img}/vmlinuz", "ramdisk": f"file://{img}/initrd.cpio.gz",
                          "ramdisk_kernel_arguments": "console=ttyS0"}}
h = "-H 'Content-Type: application/json' -H 'X-OpenStack-Ironic-API-Version: 1.80'"
print(f"curl -s {h} -X POST http://{api}/v1/nodes -d '{json.dumps(node)}' -o /dev/null")
print(f"uuid=$(curl -s {h} http://{api}/v1/nodes/{n['name']} | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"uuid\"])')")
print(f"curl -s {h} -X POST http://{api}/v1/ports -d '{{\"address\": \"{n['mac']}\", \"node_uuid\": \"'$uuid'\"}}' -o /dev/null")
print(f"echo 'lab: enrolled {n['name']} ({n['mac']}, BMC {n['ipmi_address']}:{n['ipmi_port']})'")
PY
    done < "$LAB/inventory.jsonl"
}

status() {
    ip netns list | grep -qw "$NS" || { say "no lab (namespace $NS does not exist)"; return 0; }
    alive "$LAB/rackboot.pid" && say "rackboot running (pid $(cat "$LAB/rackboot.pid"))" || say "rackboot NOT running"
    [[ -f "$LAB/inventory.jsonl" ]] || return 0
    while read -r line; do
        local name mac vm power state events
        name=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["name"])' "$line")
        mac=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["mac"])' "$line")
        vm="$LAB/$name"
        if alive "$vm/chassis/vm.pid"; then power="on (pid $(cat "$vm/chassis/vm.pid"))"; else power=off; fi
        state=$(in_ns curl -s -H 'X-OpenStack-Ironic-API-Version: 1.80' "http://$API/v1/nodes/$name" |
            python3 -c 'import json,sys
try: n=json.load(sys.stdin); print(n.get("provision_state") or "-", n.get("power_state") or "-")
except Exception: print("not enrolled")')
        printf '%-6s %-18s VM power %-16s node %s\n' "$name" "$mac" "$power" "$state"
        in_ns curl -s -H 'X-OpenStack-Ironic-API-Version: 1.80' "http://$API/v1/nodes/$name/history" 2>/dev/null |
            python3 -c 'import json,sys
try:
    for h in json.load(sys.stdin)["history"][-3:]: print("         ", h["created_at"][11:19], h["event"][:110])
except Exception: pass'
    done < "$LAB/inventory.jsonl"
}

down() {
    if [[ -d "$LAB" ]]; then
        for vm in "$LAB"/vm*; do
            [[ -d "$vm" ]] || continue
            alive "$vm/chassis/vm.pid" && { say "stopping $(basename "$vm")'s VM"; kill "$(cat "$vm/chassis/vm.pid")" || true; }
            alive "$vm/ipmi_sim.pid" && { say "stopping $(basename "$vm")'s BMC"; kill "$(cat "$vm/ipmi_sim.pid")" || true; }
        done
        alive "$LAB/rackboot.pid" && { say "stopping rackboot"; kill "$(cat "$LAB/rackboot.pid")" || true; sleep 1; }
    fi
    if ip netns list | grep -qw "$NS"; then
        say "deleting namespace $NS (bridge and taps go with it)"
        ip netns del "$NS"
    fi
    rm -rf "$LAB"
    say "down"
}

case "${1:-}" in
up) up "${2:-2}" ;;
enroll) enroll ;;
status) status ;;
down) down ;;
*) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
