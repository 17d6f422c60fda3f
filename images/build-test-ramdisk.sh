#!/usr/bin/env bash
# Builds the small test image the tests and the lab boot: Debian's kernel
# (vmlinuz) and a busybox initramfs (initrd.cpio.gz) whose /init
#   1. prints RACKBOOT-RAMDISK-UP on the console,
#   2. brings up the NIC named by BOOTIF=01-<mac> on the kernel command line,
#      gets an address with udhcpc (vendor class RackBootRamdisk), or takes
#      the static one of ip=<addr>::<gw>:<netmask>:::off (the kernel's form,
#      which the virtual media ISOs carry for DHCP-less boot),
#   3. looks itself up at <ipa-api-url>/v1/lookup?addresses=<mac>,
#   4. heartbeats to <ipa-api-url>/v1/heartbeat/<uuid> with the agent token
#      the lookup gave it,
#   5. prints RACKBOOT-HEARTBEAT-SENT and stays up (it is the instance).
# Any ramdisk that follows Ironic's conventions would do; this one is tiny.
#
#   images/build-test-ramdisk.sh [OUTDIR=images/out]
#
# Downloads two Debian packages (apt-get download; no root needed for that)
# and unpacks them; nothing is installed. Idempotent: an existing output is
# kept.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=$(realpath -m "${1:-images/out}")
RECIPE=6  # bump when /init changes, so a stale image is rebuilt
if [[ -s "$OUT/vmlinuz" && -s "$OUT/initrd.cpio.gz" && "$(cat "$OUT/recipe" 2>/dev/null)" == "$RECIPE" ]]; then
    echo "build-test-ramdisk: $OUT/vmlinuz and initrd.cpio.gz exist"
    exit 0
fi
for t in apt-get dpkg-deb cpio gzip; do
    command -v $t >/dev/null || { echo "build-test-ramdisk: needs $t" >&2; exit 2; }
done
mkdir -p "$OUT"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
kpkg=$(apt-cache depends linux-image-amd64 | sed -n 's/.*Depends: \(linux-image-[0-9].*\)/\1/p' | head -1)
[[ -n "$kpkg" ]] || { echo "build-test-ramdisk: cannot find the Debian kernel package (apt-get update?)" >&2; exit 1; }
echo "build-test-ramdisk: downloading $kpkg and busybox-static"
apt-get download -q "$kpkg" busybox-static >/dev/null
dpkg-deb -x "$kpkg"_*.deb kernel
dpkg-deb -x busybox-static_*.deb bb
kver=$(ls kernel/lib/modules | head -1)
cp kernel/boot/vmlinuz-"$kver" "$OUT/vmlinuz.tmp"

root=initramfs
mkdir -p $root/bin $root/dev $root/proc $root/sys $root/etc $root/lib/modules $root/tmp
cp bb/bin/busybox $root/bin/busybox
# NIC drivers QEMU's machines use (e1000, virtio-net), in load order.
mods=kernel/lib/modules/$kver/kernel
for m in drivers/net/ethernet/intel/e1000/e1000 drivers/virtio/virtio drivers/virtio/virtio_ring \
         drivers/virtio/virtio_pci_modern_dev drivers/virtio/virtio_pci_legacy_dev drivers/virtio/virtio_pci \
         net/core/failover drivers/net/net_failover drivers/net/virtio_net; do
    for f in "$mods/$m.ko" "$mods/$m.ko.xz"; do
        [[ -f "$f" ]] && cp "$f" $root/lib/modules/
    done
done
cat > $root/etc/udhcpc.script <<'EOF'
#!/bin/busybox sh
case "$1" in
bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    [ -n "$router" ] && ip route add default via "${router%% *}" dev "$interface"
    ;;
esac
exit 0
EOF
cat > $root/init <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
echo "RACKBOOT-RAMDISK-UP"
# Three passes, so a module whose dependency loads later still loads.
for pass in 1 2 3; do
    for m in e1000 failover virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci net_failover virtio_net; do
        grep -q "^$m " /proc/modules && continue
        for f in /lib/modules/$m.ko /lib/modules/$m.ko.xz; do
            [ -f "$f" ] && insmod "$f" 2>/dev/null
        done
    done
done
for x in $(cat /proc/cmdline); do
    case "$x" in
    BOOTIF=*) bootif=${x#BOOTIF=} ;;
    ipa-api-url=*) api=${x#ipa-api-url=} ;;
    ip=*) static=${x#ip=} ;;
    esac
done
# ip=<client>:<server>:<gateway>:<netmask>:<host>:<device>:<autoconf>
s_ip=$(echo "$static" | cut -d: -f1); s_gw=$(echo "$static" | cut -d: -f3)
s_mask=$(echo "$static" | cut -d: -f4)
prefix() {
    n=0
    for o in $(echo "$1" | tr '.' ' '); do
        case $o in 255) n=$((n+8));; 254) n=$((n+7));; 252) n=$((n+6));; 248) n=$((n+5));;
        240) n=$((n+4));; 224) n=$((n+3));; 192) n=$((n+2));; 128) n=$((n+1));; esac
    done
    echo $n
}
mac=$(echo "${bootif#01-}" | tr '-' ':' | tr 'A-F' 'a-f')
if [ -z "$bootif" ]; then
    # No BOOTIF (booted from an ISO, say): the first Ethernet NIC.
    for try in 1 2 3 4 5 6 7 8 9 10; do
        for i in /sys/class/net/*; do
            [ "${i##*/}" = lo ] && continue
            mac=$(cat "$i/address" 2>/dev/null)
            [ -n "$mac" ] && break 2
        done
        sleep 1
    done
fi
iface=""
for try in 1 2 3 4 5 6 7 8 9 10; do
    for i in /sys/class/net/*; do
        [ "$(cat "$i/address" 2>/dev/null)" = "$mac" ] && iface=${i##*/}
    done
    [ -n "$iface" ] && break
    sleep 1
done
echo "RACKBOOT-NIC mac=$mac iface=$iface api=$api"
if [ -n "$iface" ] && [ -n "$api" ]; then
    ip link set lo up
    ip link set "$iface" up
    if [ -n "$s_ip" ] && [ -n "$s_mask" ]; then
        ip addr add "$s_ip/$(prefix "$s_mask")" dev "$iface"
        [ -n "$s_gw" ] && ip route add default via "$s_gw" dev "$iface"
        echo "RACKBOOT-STATIC ip=$s_ip/$(prefix "$s_mask") gw=$s_gw"
    else
        udhcpc -i "$iface" -s /etc/udhcpc.script -q -n -t 10 -T 2 -V RackBootRamdisk
    fi
    found=$(timeout 15 wget -q -O - "$api/v1/lookup?addresses=$mac")
    uuid=$(echo "$found" | sed -n 's/.*"uuid": *"\([0-9a-f-]*\)".*/\1/p')
    token=$(echo "$found" | sed -n 's/.*"agent_token": *"\([A-Za-z0-9_*-]*\)".*/\1/p')
    echo "RACKBOOT-LOOKUP uuid=$uuid"
    if [ -n "$uuid" ]; then
        timeout 15 wget -q -O - --header 'Content-Type: application/json' \
            --post-data "{\"callback_url\": \"\", \"agent_version\": \"rackboot-test-ramdisk\", \"agent_token\": \"$token\"}" \
            "$api/v1/heartbeat/$uuid" >/dev/null 2>&1
        echo "RACKBOOT-HEARTBEAT-SENT"
    fi
fi
# The instance runs until it is powered off.
while true; do sleep 3600; done
EOF
chmod +x $root/init $root/etc/udhcpc.script
(cd $root && find . | cpio -o -H newc --quiet | gzip -9) > "$OUT/initrd.cpio.gz.tmp"
mv "$OUT/vmlinuz.tmp" "$OUT/vmlinuz"
mv "$OUT/initrd.cpio.gz.tmp" "$OUT/initrd.cpio.gz"
echo "$RECIPE" > "$OUT/recipe"
echo "build-test-ramdisk: $OUT/vmlinuz ($(stat -c %s "$OUT/vmlinuz") bytes), initrd.cpio.gz ($(stat -c %s "$OUT/initrd.cpio.gz") bytes), kernel $kver"
