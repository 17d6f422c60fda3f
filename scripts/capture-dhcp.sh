#!/usr/bin/env bash
# Captures the DHCP exchange between QEMU's own firmware and rackboot, for
# the unit-test vectors in src/pxe/dhcp/vectors.rs.
#
#   scripts/capture-dhcp.sh OUTDIR [bios|uefi|uefi-pxe ...]
#
# bios     = SeaBIOS + QEMU's iPXE e1000 ROM
# uefi     = OVMF + QEMU's iPXE EFI e1000 ROM
# uefi-pxe = OVMF's own EDK2 PXE client on virtio-net (no option ROM)
#
# Runs in a private network namespace (unshare -n): a bridge 10.88.250.1/24,
# a tap per VM, rackboot in authoritative mode on the bridge with the VM's
# MAC enrolled and adopted with a network-boot decision, and tcpdump on the
# tap. Each VM runs (TCG) until it has sent a REQUEST and got the ACK, or
# 60 s. Writes OUTDIR/<mode>.pcap and prints each DHCP payload as hex.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=$(realpath -m "${1:?usage: capture-dhcp.sh OUTDIR [modes]}")
shift
MODES=${*:-bios uefi uefi-pxe}
if [[ "${RACKBOOT_IN_NETNS:-}" != 1 ]]; then
    [[ $(id -u) -eq 0 ]] || { echo "capture-dhcp.sh: needs root" >&2; exit 2; }
    cargo build --quiet
    mkdir -p "$OUT"
    exec unshare -n -- env RACKBOOT_IN_NETNS=1 bash "$0" "$OUT" $MODES
fi
ip link set lo up
run=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$run"; }
trap cleanup EXIT
ip link add rbcap type bridge
ip link set rbcap up
ip addr add 10.88.250.1/24 dev rbcap
API=127.0.0.1:16390
mkdir -p "$run/data"
: > "$run/data/blank.img"
cat > "$run/rackboot.toml" <<EOF
[data]
dir = "$run/data"
[api]
listen = "$API"
[http]
listen = "0.0.0.0:8080"
[conductor]
sync_power_state_interval = "0s"
[dhcp]
mode = "authoritative"
interface = "rbcap"
range = ["10.88.250.100", "10.88.250.199"]
router = "10.88.250.1"
EOF
RUST_LOG=info target/debug/rackboot serve --config "$run/rackboot.toml" 2> "$run/rackboot.log" & pids+=($!)
for _ in $(seq 100); do curl -sf "http://$API/v1" >/dev/null && break; sleep 0.1; done
H=(-H 'Content-Type: application/json' -H 'X-OpenStack-Ironic-API-Version: 1.80')
f="file://$run/data/blank.img"
i=0
for mode in $MODES; do
    i=$((i + 1))
    mac=52:54:00:88:fa:$(printf %02x $i)
    uuid=$(curl -sf "${H[@]}" -X POST "http://$API/v1/nodes" -d "{\"name\": \"$mode\", \"driver\": \"fake-hardware\", \"boot_interface\": \"ipxe\", \"deploy_interface\": \"ramdisk\", \"driver_info\": {\"deploy_kernel\": \"$f\", \"deploy_ramdisk\": \"$f\"}, \"instance_info\": {\"image_source\": \"$f\"}}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["uuid"])')
    curl -sf "${H[@]}" -X POST "http://$API/v1/ports" -d "{\"address\": \"$mac\", \"node_uuid\": \"$uuid\"}" >/dev/null
    for target in manage adopt; do
        curl -sf "${H[@]}" -X PUT "http://$API/v1/nodes/$mode/states/provision" -d "{\"target\": \"$target\"}"
        sleep 1
    done
    curl -sf "${H[@]}" "http://$API/v1/nodes/$mode" | python3 -c 'import json,sys; n=json.load(sys.stdin); print(n["name"], n["provision_state"], n["driver_internal_info"].get("boot_decision"))'
    tap=rbtap$i
    ip tuntap add "$tap" mode tap
    ip link set "$tap" master rbcap
    ip link set "$tap" up
    tcpdump -i "$tap" -w "$OUT/$mode.pcap" -U 'udp port 67 or udp port 68 or udp port 4011' 2>/dev/null & tcp=$!
    pids+=($tcp)
    sleep 1
    net="-netdev tap,id=n0,ifname=$tap,script=no,downscript=no"
    case $mode in
    bios) qemu=(-device e1000,netdev=n0,mac=$mac,romfile=/usr/lib/ipxe/qemu/pxe-e1000.rom -boot n) ;;
    uefi|uefi-pxe)
        cp /usr/share/OVMF/OVMF_VARS_4M.fd "$run/vars-$mode.fd"
        qemu=(-drive if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd
              -drive if=pflash,format=raw,file="$run/vars-$mode.fd")
        if [[ $mode == uefi ]]; then
            qemu+=(-device e1000,netdev=n0,mac=$mac,romfile=/usr/lib/ipxe/qemu/efi-e1000.rom,bootindex=1)
        else
            qemu+=(-device virtio-net-pci,netdev=n0,mac=$mac,romfile=,bootindex=1)
        fi ;;
    esac
    qemu-system-x86_64 -accel tcg -m 256 -nographic -nodefaults -serial "file:$run/$mode.serial" \
        -uuid "00000000-0000-4000-8000-0000000000$(printf %02x $i)" $net "${qemu[@]}" & vm=$!
    pids+=($vm)
    for _ in $(seq 600); do
        grep -q "DHCP REQUEST.*acked" <(grep "$mac" "$run/rackboot.log") && break
        sleep 0.1
    done
    sleep 2
    kill $vm; wait $vm 2>/dev/null || true
    kill $tcp; wait $tcp 2>/dev/null || true
    echo "== $mode ($mac)"
    grep "$mac" "$run/rackboot.log" | sed 's/.*DHCP/DHCP/' | head -8
    python3 - "$OUT/$mode.pcap" <<'EOF'
import struct, sys
data = open(sys.argv[1], "rb").read()
off = 24
while off + 16 <= len(data):
    incl = struct.unpack("<I", data[off + 8:off + 12])[0]
    pkt = data[off + 16:off + 16 + incl]
    off += 16 + incl
    if len(pkt) < 42 or pkt[12:14] != b"\x08\x00":
        continue
    ihl = (pkt[14] & 15) * 4
    udp = pkt[14 + ihl:]
    sport, dport = struct.unpack(">HH", udp[:4])
    payload = udp[8:]
    print(f"{sport}->{dport} {len(payload)} {payload.hex()}")
EOF
done
