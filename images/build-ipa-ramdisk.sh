#!/usr/bin/env bash
# Builds the ironic-python-agent deploy ramdisk offline: Debian's kernel
# (ipa.kernel) and an initramfs (ipa.initramfs, zstd) holding a Debian
# minbase system with the tools IPA uses and ironic-python-agent from PyPI
# in a venv (/opt/ipa; Debian's oslo libraries are too old), started by
# systemd once a NIC has an address from DHCP. IPA finds the appliance
# through ipa-api-url= on the kernel command line.
#
#   images/build-ipa-ramdisk.sh [OUTDIR=images/out/ipa]
#
# Needs root (mmdebstrap in root mode), mmdebstrap, zstd and cpio, and
# reaches only the machine's apt source and PyPI. The result is cached by
# content: the key hashes this script, the IPA version, the package list and
# the apt suite, and the built pair is kept in $RACKBOOT_IMAGE_CACHE
# (default /var/cache/rackboot/images), outside any clone, so a second run
# (or a fresh clone on the same machine) only copies it.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=$(realpath -m "${1:-images/out/ipa}")
IPA_VERSION=13.0.0
CACHE_ROOT=${RACKBOOT_IMAGE_CACHE:-/var/cache/rackboot/images}

log() { printf 'build-ipa-ramdisk: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# What IPA calls (hardware inventory, disks, partitions, images, BMC, boot
# entries, LLDP comes from IPA itself over raw sockets).
PACKAGES=(
    systemd systemd-sysv udev dbus kmod iproute2 iputils-ping ca-certificates
    python3 python3-venv
    lshw dmidecode pciutils usbutils hdparm smartmontools nvme-cli sg3-utils
    parted gdisk util-linux fdisk dosfstools e2fsprogs xfsprogs mdadm lvm2 psmisc
    qemu-utils ipmitool efibootmgr mokutil lsscsi curl
    linux-image-amd64
)
SUITE=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
MIRROR=$(apt-get indextargets --format '$(REPO_URI)' 'Created-By: Packages' 2>/dev/null \
    | grep -v security | sort -u | head -1)
MIRROR=${MIRROR:-http://deb.debian.org/debian/}

KEY=$( { cat "$0"; echo "$IPA_VERSION $SUITE ${PACKAGES[*]}"; } | sha256sum | cut -c1-16)
CACHED="$CACHE_ROOT/ipa-$KEY"

install_out() {
    mkdir -p "$OUT"
    cp "$CACHED/ipa.kernel" "$OUT/ipa.kernel.tmp"
    cp "$CACHED/ipa.initramfs" "$OUT/ipa.initramfs.tmp"
    mv "$OUT/ipa.kernel.tmp" "$OUT/ipa.kernel"
    mv "$OUT/ipa.initramfs.tmp" "$OUT/ipa.initramfs"
    cp "$CACHED/manifest" "$OUT/manifest"
    log "$OUT/ipa.kernel ($(stat -c %s "$OUT/ipa.kernel") bytes), ipa.initramfs ($(stat -c %s "$OUT/ipa.initramfs") bytes), key $KEY"
}

if [[ -s "$CACHED/ipa.kernel" && -s "$CACHED/ipa.initramfs" && -s "$CACHED/manifest" ]]; then
    if ! cmp -s "$CACHED/manifest" "$OUT/manifest" 2>/dev/null; then
        install_out
    else
        log "$OUT is current (key $KEY)"
    fi
    exit 0
fi

[[ $(id -u) == 0 ]] || die "needs root (mmdebstrap builds the root file system as root); run it under sudo"
for t in mmdebstrap zstd cpio; do
    command -v $t >/dev/null || die "needs $t (apt-get install mmdebstrap zstd cpio; scripts/install-deps.sh does)"
done

started=$(date +%s)
work=$(mktemp -d /tmp/rackboot-ipa.XXXXXX)
trap 'rm -rf "$work"' EXIT
root="$work/root"
mkdir -p "$CACHE_ROOT"

# IPA and its dependencies as wheels for the ramdisk's Python (Debian's
# 3.11), fetched on this machine (its proxy and CA settings apply; the
# ramdisk's own trust store has only Debian's) and cached by version.
WHEELS="$CACHE_ROOT/ipa-wheels-$IPA_VERSION-cp311"
if [[ ! -f "$WHEELS/.complete" ]]; then
    log "downloading ironic-python-agent $IPA_VERSION and its dependencies (wheels)"
    rm -rf "$WHEELS.tmp"
    env -u PIP_FIND_LINKS python3 -m pip download -q --no-cache-dir --timeout 60 --retries 5 \
        --only-binary=:all: --implementation cp --python-version 3.11 --abi cp311 --abi abi3 --abi none \
        --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux_2_28_x86_64 --platform linux_x86_64 --platform any \
        -d "$WHEELS.tmp" "ironic-python-agent==$IPA_VERSION" \
        || die "pip download of ironic-python-agent $IPA_VERSION failed"
    touch "$WHEELS.tmp/.complete"
    rm -rf "$WHEELS"
    mv "$WHEELS.tmp" "$WHEELS"
fi

log "mmdebstrap $SUITE (minbase + ${#PACKAGES[@]} packages) from $MIRROR"
# The hooks: IPA into a venv from PyPI (with pip's own timeout and
# retries), its unit and the network, then everything a ramdisk does not
# need removed.
mmdebstrap --mode=root --variant=minbase --format=directory \
    --include="$(IFS=,; echo "${PACKAGES[*]}")" \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --customize-hook='chroot "$1" python3 -m venv /opt/ipa' \
    --customize-hook="mkdir -p \"\$1/tmp/wheels\" && cp \"$WHEELS\"/*.whl \"\$1/tmp/wheels/\"" \
    --customize-hook="chroot \"\$1\" env -u PIP_FIND_LINKS /opt/ipa/bin/pip install -q --no-index --find-links /tmp/wheels ironic-python-agent==$IPA_VERSION" \
    --customize-hook='rm -rf "$1/tmp/wheels"' \
    --customize-hook='chroot "$1" env -u PIP_FIND_LINKS /opt/ipa/bin/pip freeze > "$1/opt/ipa/requirements.lock"' \
    "$SUITE" "$root" "$MIRROR" >"$work/mmdebstrap.log" 2>&1 \
    || { tail -n 40 "$work/mmdebstrap.log" >&2; die "mmdebstrap failed (log above)"; }

kver=$(ls "$root/lib/modules" | head -1)
[[ -n "$kver" && -f "$root/boot/vmlinuz-$kver" ]] || die "no kernel in the root file system"
cp "$root/boot/vmlinuz-$kver" "$work/ipa.kernel"

log "configuring (kernel $kver)"
# systemd runs straight from the initramfs: /init is systemd.
ln -sf /lib/systemd/systemd "$root/init"
echo ipa-ramdisk >"$root/etc/hostname"
: >"$root/etc/machine-id"
# Every wired NIC asks DHCP for an address (IPA looks itself up by all its MACs).
mkdir -p "$root/etc/systemd/network"
cat >"$root/etc/systemd/network/50-dhcp.network" <<'EOF'
[Match]
Name=en* eth*

[Network]
DHCP=ipv4
LinkLocalAddressing=no
IPv6AcceptRA=no

[DHCPv4]
ClientIdentifier=mac
EOF
cat >"$root/etc/systemd/system/ironic-python-agent.service" <<'EOF'
[Unit]
Description=ironic-python-agent
After=network-online.target
Wants=network-online.target

[Service]
ExecStartPre=/bin/sh -c 'echo RACKBOOT-IPA-STARTING > /dev/console'
ExecStart=/opt/ipa/bin/ironic-python-agent
Restart=always
RestartSec=5s
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=multi-user.target
EOF
# For scripts/bench/deploy.sh only: with rackboot.fetch=URL on the kernel
# command line, curl fetches URL to /dev/null (and onto
# rackboot.fetch_disk=DEVICE, when given) before the agent starts, printing
# RACKBOOT-FETCH lines on the console: the plain download the agent's write
# is measured against. Without the option the unit does nothing.
cat >"$root/usr/local/sbin/rackboot-fetch" <<'EOF'
#!/bin/sh
url="" disk=""
for x in $(cat /proc/cmdline); do
    case "$x" in
    rackboot.fetch=*) url=${x#rackboot.fetch=} ;;
    rackboot.fetch_disk=*) disk=${x#rackboot.fetch_disk=} ;;
    esac
done
[ -n "$url" ] || exit 0
fetch() {
    t0=$(date +%s.%N)
    bytes=$(curl -sS --max-time 3600 -o "$2" -w '%{size_download}' "$url") || bytes=0
    sync
    t1=$(date +%s.%N)
    echo "RACKBOOT-FETCH target=$1 bytes=$bytes seconds=$(echo "$t0 $t1" | awk '{printf "%.3f", $2 - $1}')" >/dev/console
}
fetch null /dev/null
[ -n "$disk" ] && [ -b "$disk" ] && fetch disk "$disk"
exit 0
EOF
chmod 755 "$root/usr/local/sbin/rackboot-fetch"
cat >"$root/etc/systemd/system/rackboot-fetch.service" <<'EOF'
[Unit]
Description=rackboot benchmark download (only with rackboot.fetch= on the kernel command line)
ConditionKernelCommandLine=rackboot.fetch
After=network-online.target
Wants=network-online.target
Before=ironic-python-agent.service

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/rackboot-fetch
TimeoutStartSec=3700

[Install]
WantedBy=multi-user.target
EOF
# DHCP-less boot (virtual media): with ip=<addr>::<gw>:<netmask>:::off on the
# kernel command line (the kernel's form, which rackboot's virtual media ISOs
# carry from the node's network_data), the NIC named by BOOTIF gets that
# static address before systemd-networkd starts: a .network file in /run
# that sorts before 50-dhcp.network. Without ip= it does nothing.
cat >"$root/usr/local/sbin/rackboot-static-ip" <<'EOF'
#!/bin/sh
static="" bootif=""
for x in $(cat /proc/cmdline); do
    case "$x" in
    ip=*) static=${x#ip=} ;;
    BOOTIF=*) bootif=${x#BOOTIF=} ;;
    esac
done
addr=$(echo "$static" | cut -d: -f1)
gw=$(echo "$static" | cut -d: -f3)
mask=$(echo "$static" | cut -d: -f4)
dns1=$(echo "$static" | cut -d: -f8)
dns2=$(echo "$static" | cut -d: -f9)
[ -n "$addr" ] && [ -n "$mask" ] || exit 0
prefix=0
for o in $(echo "$mask" | tr '.' ' '); do
    case $o in 255) prefix=$((prefix+8));; 254) prefix=$((prefix+7));; 252) prefix=$((prefix+6));;
    248) prefix=$((prefix+5));; 240) prefix=$((prefix+4));; 224) prefix=$((prefix+3));;
    192) prefix=$((prefix+2));; 128) prefix=$((prefix+1));; esac
done
mac=$(echo "${bootif#01-}" | tr '-' ':' | tr 'A-F' 'a-f')
mkdir -p /run/systemd/network
{
    echo "[Match]"
    if [ -n "$mac" ]; then echo "MACAddress=$mac"; else echo "Name=en* eth*"; fi
    echo
    echo "[Network]"
    echo "Address=$addr/$prefix"
    [ -n "$gw" ] && echo "Gateway=$gw"
    [ -n "$dns1" ] && echo "DNS=$dns1"
    [ -n "$dns2" ] && echo "DNS=$dns2"
    echo "LinkLocalAddressing=no"
    echo "IPv6AcceptRA=no"
} >/run/systemd/network/10-rackboot-static.network
echo "RACKBOOT-STATIC ip=$addr/$prefix gw=$gw" >/dev/console
EOF
chmod 755 "$root/usr/local/sbin/rackboot-static-ip"
cat >"$root/etc/systemd/system/rackboot-static-ip.service" <<'EOF'
[Unit]
Description=rackboot static address from ip= on the kernel command line (DHCP-less boot)
ConditionKernelCommandLine=ip
DefaultDependencies=no
Before=systemd-networkd.service network-pre.target
Wants=network-pre.target

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/rackboot-static-ip

[Install]
WantedBy=sysinit.target
EOF
mkdir -p "$root/etc/ironic-python-agent"
cat >"$root/etc/ironic-python-agent/ironic-python-agent.conf" <<'EOF'
[DEFAULT]
# ipa-api-url and the rest come from the kernel command line.
debug = false
EOF
chroot "$root" systemctl enable systemd-networkd.service systemd-networkd-wait-online.service \
    ironic-python-agent.service rackboot-fetch.service rackboot-static-ip.service >/dev/null 2>&1
# Wait for any one NIC, not all of them.
mkdir -p "$root/etc/systemd/system/systemd-networkd-wait-online.service.d"
cat >"$root/etc/systemd/system/systemd-networkd-wait-online.service.d/any.conf" <<'EOF'
[Service]
ExecStart=
ExecStart=/lib/systemd/systemd-networkd-wait-online --any --timeout=120
EOF
# A console on ttyS0 for the logs, no getty prompts elsewhere.
chroot "$root" systemctl mask getty@tty1.service >/dev/null 2>&1 || true
# An empty root password would be a back door: lock it.
chroot "$root" passwd -l root >/dev/null 2>&1 || true

log "trimming"
rm -rf "$root/boot" "$root/var/cache/apt" "$root/var/lib/apt/lists" "$root/usr/share/doc" \
    "$root/usr/share/man" "$root/usr/share/locale" "$root/usr/share/info" \
    "$root/usr/lib/x86_64-linux-gnu/gconv" "$root/var/log/"*.log
find "$root/opt/ipa" -name '__pycache__' -prune -exec rm -rf {} +
find "$root/usr/lib/python3" -name '__pycache__' -prune -exec rm -rf {} +
# Kernel modules: storage, network, file systems, virtio and what udev
# needs for them; no sound, video, wireless, media or staging drivers.
mods="$root/lib/modules/$kver/kernel"
rm -rf "$mods/sound" "$mods/drivers/gpu" "$mods/drivers/media" "$mods/drivers/net/wireless" \
    "$mods/drivers/staging" "$mods/drivers/bluetooth" "$mods/drivers/infiniband" \
    "$mods/drivers/input/joystick" "$mods/drivers/input/touchscreen" "$mods/drivers/iio" \
    "$mods/drivers/isdn" "$mods/net/bluetooth" "$mods/net/wireless" "$mods/net/mac80211" \
    "$mods/drivers/hid" "$mods/drivers/video" "$mods/fs/ocfs2" "$mods/fs/gfs2" "$mods/fs/ceph"
chroot "$root" depmod "$kver"

log "packing the initramfs (cpio + zstd)"
( cd "$root" && find . -xdev -print0 | cpio --null -o -H newc --quiet ) \
    | zstd -q -T0 -12 >"$work/ipa.initramfs"

{
    echo "key $KEY"
    echo "ironic-python-agent $IPA_VERSION"
    echo "debian $SUITE, kernel $kver"
    echo "initramfs bytes $(stat -c %s "$work/ipa.initramfs")"
    echo "unpacked bytes $(du -sb "$root" | cut -f1)"
    echo "built in $(( $(date +%s) - started )) s"
    sed 's/^/python /' "$root/opt/ipa/requirements.lock"
} >"$work/manifest"

tmp="$CACHE_ROOT/.ipa-$KEY.$$"
rm -rf "$tmp"
mkdir -p "$tmp"
cp "$work/ipa.kernel" "$work/ipa.initramfs" "$work/manifest" "$tmp/"
rm -rf "$CACHED"
mv "$tmp" "$CACHED"
log "built in $(( $(date +%s) - started )) s"
install_out
