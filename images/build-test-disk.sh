#!/usr/bin/env bash
# Builds the small bootable whole-disk image the `direct` deploy test writes
# with ironic-python-agent (issue 13): an MBR disk whose one partition (FAT16,
# from 1 MiB, active) holds SYSLINUX, the test kernel and a busybox
# initramfs whose /init
#   1. prints RACKBOOT-DISK-BOOTED on the console (console=ttyS0),
#   2. loads the virtio/SCSI/ATA disk drivers and iso9660/vfat,
#   3. looks for the config drive (a file system labelled config-2: IPA's
#      partition on the same disk, a second disk or a CD-ROM), mounts it
#      read-only and prints RACKBOOT-CONFIGDRIVE-UUID=<uuid> from
#      openstack/latest/meta_data.json, or RACKBOOT-CONFIGDRIVE-NONE,
#   4. mounts its own FAT partition (label RACKBOOT, which has an empty etc/
#      directory for IPA's inject_files deploy step to find) and prints
#      RACKBOOT-INJECTED=<first line of /etc/rackboot-injected>, or
#      RACKBOOT-INJECTED-NONE,
#   5. powers off (poweroff -f), so a test can wait for the VM to exit.
#
#   images/build-test-disk.sh [OUTDIR=images/out/disk]
#
# Writes OUTDIR/test-disk.raw (32 MiB), test-disk.qcow2, oversized.qcow2 (an
# empty qcow2 of 8 GiB virtual size, larger than the tests' VM disks) and a
# .sha256 (the hex alone) for each. Inputs: images/out/vmlinuz and the busybox binary inside
# images/out/initrd.cpio.gz (images/build-test-ramdisk.sh makes them; it is
# run first). The kernel's modules come from the same Debian kernel package
# (apt-get download, checked against vmlinuz byte for byte). No root, no loop
# device, no mount: sfdisk, mkfs.vfat --offset, syslinux --offset and mtools
# work on the image file, so it builds in an unprivileged container. Cached by
# content: the key hashes this script, vmlinuz and initrd.cpio.gz, and the
# result is kept in $RACKBOOT_IMAGE_CACHE (default /var/cache/rackboot/images).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=$(realpath -m "${1:-images/out/disk}")
IN=$PWD/images/out
CACHE_ROOT=${RACKBOOT_IMAGE_CACHE:-/var/cache/rackboot/images}
DISK_MIB=32      # the whole image
PART_START_MIB=1 # the partition starts here and runs to the end
CMDLINE="console=ttyS0 panic=5"

log() { printf 'build-test-disk: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
started=$(date +%s)

images/build-test-ramdisk.sh "$IN" >&2
[[ -s $IN/vmlinuz && -s $IN/initrd.cpio.gz ]] || die "no $IN/vmlinuz or $IN/initrd.cpio.gz"

KEY=$( { cat "$0"; sha256sum <"$IN/vmlinuz"; sha256sum <"$IN/initrd.cpio.gz"; } | sha256sum | cut -c1-16)
CACHED="$CACHE_ROOT/test-disk-$KEY"
FILES=(test-disk.raw test-disk.raw.sha256 test-disk.qcow2 test-disk.qcow2.sha256
    oversized.qcow2 oversized.qcow2.sha256 manifest)

install_out() {
    mkdir -p "$OUT"
    local f
    for f in "${FILES[@]}"; do
        cp --sparse=always "$CACHED/$f" "$OUT/$f.tmp"
        mv "$OUT/$f.tmp" "$OUT/$f"
    done
}
report() {
    log "$OUT/test-disk.raw ($(stat -c %s "$OUT/test-disk.raw") bytes, $(du -k "$OUT/test-disk.raw" | cut -f1) KiB allocated), sha256 $(cat "$OUT/test-disk.raw.sha256")"
    log "$OUT/test-disk.qcow2 ($(stat -c %s "$OUT/test-disk.qcow2") bytes), sha256 $(cat "$OUT/test-disk.qcow2.sha256")"
    log "key $KEY, $(( $(date +%s) - started )) s"
}

ok=1
for f in "${FILES[@]}"; do [[ -s $CACHED/$f ]] || ok=0; done
if ((ok)); then
    if cmp -s "$CACHED/manifest" "$OUT/manifest" 2>/dev/null \
        && [[ $(sha256sum <"$OUT/test-disk.raw" | cut -c1-64) == "$(cat "$OUT/test-disk.raw.sha256")" ]]; then
        log "$OUT is current (key $KEY)"
    else
        install_out
    fi
    report
    exit 0
fi

for t in apt-get dpkg-deb cpio gzip sfdisk mkfs.vfat syslinux mcopy qemu-img od; do
    command -v $t >/dev/null || die "needs $t (apt-get install fdisk dosfstools syslinux syslinux-common mtools qemu-utils; scripts/install-deps.sh does)"
done
MBR=/usr/lib/syslinux/mbr/mbr.bin
[[ -f $MBR ]] || die "no $MBR (apt-get install syslinux-common)"

work=$(mktemp -d /tmp/rackboot-disk.XXXXXX)
trap 'rm -rf "$work"' EXIT

# The kernel's version string: the setup header's kernel_version field
# (offset 0x20e) points to it, 0x200 bytes on.
vptr=$(od -An -tu2 -j 526 -N 2 "$IN/vmlinuz" | tr -d ' ')
kver=$(dd if="$IN/vmlinuz" bs=1 skip=$((vptr + 512)) count=64 status=none | tr '\0' '\n' | head -1 | cut -d' ' -f1)
[[ $kver =~ ^[0-9]+\.[0-9]+ ]] || die "cannot read the kernel version from $IN/vmlinuz"

log "kernel $kver: downloading linux-image-$kver for its modules"
( cd "$work" && apt-get download -q "linux-image-$kver" >/dev/null ) \
    || die "cannot download linux-image-$kver (apt-get update? or rebuild $IN/vmlinuz: rm $IN/vmlinuz $IN/recipe)"
# Only the kernel and the module directories the disk drivers, file systems
# and their dependencies live in (the whole package unpacks to 400 MB).
MODDIRS=(drivers/virtio drivers/block drivers/scsi drivers/ata drivers/cdrom fs/isofs fs/fat fs/nls lib crypto block)
mkdir -p "$work/kernel"
dpkg-deb --fsys-tarfile "$work"/linux-image-"$kver"_*.deb \
    | tar -x -C "$work/kernel" --wildcards "./boot/vmlinuz-$kver" "${MODDIRS[@]/#/./lib/modules/$kver/kernel/}"
rm -f "$work"/linux-image-"$kver"_*.deb
cmp -s "$work/kernel/boot/vmlinuz-$kver" "$IN/vmlinuz" \
    || die "$IN/vmlinuz is not the vmlinuz of linux-image-$kver (rebuild it: rm $IN/vmlinuz $IN/recipe)"
modroot="$work/kernel/lib/modules/$kver/kernel"

# Modules by name (file names use - and _ alike) and their dependencies,
# read from each module's .modinfo section (no kmod needed).
declare -A MODPATH
while IFS= read -r f; do
    n=${f##*/}; n=${n%.ko*}; n=${n//-/_}
    MODPATH[$n]=$f
done < <(find "$modroot" -name '*.ko' -o -name '*.ko.xz' -o -name '*.ko.zst')
declare -A SEEN
ORDER=()
add_module() {  # depth first, so a module comes after what it needs
    local n=${1//-/_} dep
    [[ -n ${SEEN[$n]:-} ]] && return 0
    SEEN[$n]=1
    [[ -n ${MODPATH[$n]:-} ]] || die "module $n is not in linux-image-$kver under ${MODDIRS[*]} (add its directory to MODDIRS)"
    [[ ${MODPATH[$n]} == *.ko ]] || die "module $n is compressed; teach this script to unpack it"
    for dep in $(tr '\0' '\n' <"${MODPATH[$n]}" | sed -n 's/^depends=//p' | head -1 | tr ',' ' '); do
        add_module "$dep"
    done
    ORDER+=("$n")
}
# Disks (virtio-blk, virtio-scsi, SATA/IDE disks and CD-ROMs), the config
# drive's file systems and the code pages vfat mounts with by default.
for m in virtio_pci virtio_blk virtio_scsi sd_mod sr_mod ata_piix ahci isofs vfat nls_cp437 nls_ascii nls_utf8; do
    add_module "$m"
done

root="$work/initramfs"
mkdir -p "$root"/{bin,dev,proc,sys,mnt,tmp,lib/modules}
( cd "$root" && gzip -dc "$IN/initrd.cpio.gz" | cpio -i --quiet -d bin/busybox )
[[ -x $root/bin/busybox ]] || die "no bin/busybox in $IN/initrd.cpio.gz"
for n in "${ORDER[@]}"; do
    cp "${MODPATH[$n]}" "$root/lib/modules/$n.ko"
done
printf '%s\n' "${ORDER[@]}" >"$root/lib/modules/order"

cat >"$root/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
exec </dev/console >/dev/console 2>&1
echo "RACKBOOT-DISK-BOOTED"
# In dependency order; a second pass in case one raced its dependency.
for pass in 1 2; do
    for m in $(cat /lib/modules/order); do
        grep -q "^$m " /proc/modules || insmod /lib/modules/$m.ko 2>/dev/null
    done
done
# The ISO9660 volume label (primary volume descriptor, sector 16, byte 40).
isolabel() {
    [ "$(dd if="$1" bs=1 skip=32769 count=5 2>/dev/null)" = CD001 ] || return 1
    dd if="$1" bs=1 skip=32808 count=32 2>/dev/null | sed 's/ *$//'
}
find_configdrive() {
    dev=$(findfs LABEL=config-2 2>/dev/null || findfs LABEL=CONFIG-2 2>/dev/null)
    [ -n "$dev" ] && [ -b "$dev" ] && { echo "$dev"; return 0; }
    for d in /dev/vd* /dev/sd* /dev/sr* /dev/xvd* /dev/nvme*n*; do
        [ -b "$d" ] || continue
        [ "$(isolabel "$d")" = config-2 ] && { echo "$d"; return 0; }
    done
    return 1
}
# Virtio disks appear as their driver loads; SCSI and ATA scans finish a
# little later, so look again for a few seconds.
dev=""
for try in 1 2 3 4 5 6; do
    dev=$(find_configdrive) && break
    dev=""
    sleep 1
done
uuid=""
if [ -n "$dev" ]; then
    if mount -o ro "$dev" /mnt 2>/dev/null || mount -o ro -t iso9660 "$dev" /mnt 2>/dev/null \
        || mount -o ro -t vfat "$dev" /mnt 2>/dev/null; then
        md=/mnt/openstack/latest/meta_data.json
        if [ -f "$md" ]; then
            # One key per line, then the first top-level-looking "uuid".
            uuid=$(tr ',{}' '\n\n\n' <"$md" | sed -n 's/^[[:space:]]*"uuid"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' | head -1)
        fi
        echo "RACKBOOT-CONFIGDRIVE-DEVICE=$dev"
        umount /mnt
    else
        echo "RACKBOOT-CONFIGDRIVE-DEVICE=$dev (cannot mount it)"
    fi
fi
if [ -n "$uuid" ]; then
    echo "RACKBOOT-CONFIGDRIVE-UUID=$uuid"
else
    echo "RACKBOOT-CONFIGDRIVE-NONE"
fi
injected=""
own=$(findfs LABEL=RACKBOOT 2>/dev/null)
if [ -n "$own" ] && mount -o ro -t vfat "$own" /mnt 2>/dev/null; then
    [ -f /mnt/etc/rackboot-injected ] && injected=$(head -n 1 /mnt/etc/rackboot-injected)
    umount /mnt
fi
if [ -n "$injected" ]; then
    echo "RACKBOOT-INJECTED=$injected"
else
    echo "RACKBOOT-INJECTED-NONE"
fi
sync
poweroff -f
# If power-off is not possible, stay up as an instance would.
while true; do sleep 3600; done
EOF
chmod +x "$root/init"
( cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 ) | gzip -9n >"$work/initrd.gz"

cat >"$work/syslinux.cfg" <<EOF
SERIAL 0 115200
DEFAULT rackboot
PROMPT 0
TIMEOUT 0
LABEL rackboot
  KERNEL /vmlinuz
  INITRD /initrd.gz
  APPEND $CMDLINE
EOF

log "disk: MBR, FAT16 from ${PART_START_MIB} MiB, SYSLINUX ($DISK_MIB MiB)"
img="$work/test-disk.raw"
offset=$((PART_START_MIB * 1024 * 1024))
sectors=$(( (DISK_MIB - PART_START_MIB) * 2048 ))
truncate -s "${DISK_MIB}M" "$img"
# One primary partition, FAT16 (LBA), active.
echo "label: dos
label-id: 0x7261636b
start=$((PART_START_MIB * 2048)), size=$sectors, type=e, bootable" | sfdisk -q --no-reread --no-tell-kernel "$img" >/dev/null
mkfs.vfat -F 16 -n RACKBOOT -i 7261636b -h $((PART_START_MIB * 2048)) --offset $((PART_START_MIB * 2048)) \
    "$img" $((sectors / 2)) >/dev/null
export MTOOLS_SKIP_CHECK=1 MTOOLSRC=/dev/null
mcopy -i "$img@@$offset" "$IN/vmlinuz" ::/vmlinuz
mcopy -i "$img@@$offset" "$work/initrd.gz" ::/initrd.gz
mcopy -i "$img@@$offset" "$work/syslinux.cfg" ::/syslinux.cfg
mmd -i "$img@@$offset" ::/etc
syslinux --install --offset "$offset" "$img"
dd if="$MBR" of="$img" bs=440 count=1 conv=notrunc status=none
qemu-img convert -f raw -O qcow2 "$img" "$work/test-disk.qcow2"
sha256sum <"$img" | cut -c1-64 >"$work/test-disk.raw.sha256"
sha256sum <"$work/test-disk.qcow2" | cut -c1-64 >"$work/test-disk.qcow2.sha256"
qemu-img create -q -f qcow2 "$work/oversized.qcow2" 8G
sha256sum <"$work/oversized.qcow2" | cut -c1-64 >"$work/oversized.qcow2.sha256"
{
    echo "key $KEY"
    echo "kernel $kver, cmdline $CMDLINE"
    echo "modules ${ORDER[*]}"
    echo "initramfs bytes $(stat -c %s "$work/initrd.gz")"
    echo "raw bytes $(stat -c %s "$img") sha256 $(cat "$work/test-disk.raw.sha256")"
    echo "qcow2 bytes $(stat -c %s "$work/test-disk.qcow2") sha256 $(cat "$work/test-disk.qcow2.sha256")"
    echo "built in $(( $(date +%s) - started )) s"
} >"$work/manifest"

mkdir -p "$CACHE_ROOT"
tmp="$CACHE_ROOT/.test-disk-$KEY.$$"
rm -rf "$tmp"
mkdir -p "$tmp"
for f in "${FILES[@]}"; do cp --sparse=always "$work/$f" "$tmp/$f"; done
rm -rf "$CACHED"
mv "$tmp" "$CACHED"
log "built in $(( $(date +%s) - started )) s"
install_out
report
