#!/usr/bin/env bash
# A libvirt "BMC" for the virtual media end-to-end test: libvirtd + virtlogd
# and sushy-tools' emulator (libvirt driver) in front of one TCG domain (2 GiB:
# the agent ramdisk unpacks to about 570 MB), the
# way Ironic's own CI emulates Redfish BMCs.
#
#   tests/libvirt-lab.sh WORKDIR TAP MAC SUSHY_PORT
#
# Runs in the caller's network namespace (the test's, where TAP is on the
# test's bridge) and in a private mount namespace of its own: libvirt's
# global directories (/run/libvirt, /var/lib/libvirt, /var/cache/libvirt,
# /var/log/libvirt, /etc/libvirt) are bind-mounted over WORKDIR, so the host's
# /etc is never edited and nothing is left behind. Debian's libvirtd resolves
# the user libvirt-qemu before reading qemu.conf; copies of /etc/passwd and
# /etc/group with that user are bind-mounted too (libvirt-daemon-system would
# create it, with polkit and iptables we do not need).
#
# Writes WORKDIR/ready ("<system path>") once the emulator answers, then
# waits; SIGTERM (or SIGINT) tears everything down: the domain, the pool and
# every daemon it started, by PID. The domain's serial console is
# WORKDIR/console.log.
set -euo pipefail

if [[ "${1:-}" != __inner ]]; then
    [[ $# -eq 4 ]] || { echo "usage: $0 WORKDIR TAP MAC SUSHY_PORT" >&2; exit 2; }
    [[ $(id -u) -eq 0 ]] || { echo "libvirt-lab: needs root" >&2; exit 2; }
    for t in libvirtd virtlogd virsh qemu-system-x86_64; do
        command -v "$t" >/dev/null || { echo "libvirt-lab: needs $t (scripts/install-deps.sh installs libvirt-daemon, libvirt-clients, qemu-system-x86)" >&2; exit 2; }
    done
    mkdir -p /run/libvirt /var/lib/libvirt /var/cache/libvirt /var/log/libvirt
    exec unshare --mount --propagation private -- bash "$0" __inner "$@"
fi
shift
W=$1 TAP=$2 MAC=$3 PORT=$4
REPO=$(cd "$(dirname "$0")/.." && pwd)
DOM=rbvm
URI="qemu:///system?socket=$W/sock/libvirt-sock"
pids=()

cleanup() {
    set +e
    if [[ -S "$W/sock/libvirt-sock" ]]; then
        virsh -q -c "$URI" destroy "$DOM" >/dev/null 2>&1
        virsh -q -c "$URI" undefine "$DOM" >/dev/null 2>&1
        virsh -q -c "$URI" pool-destroy default >/dev/null 2>&1
        virsh -q -c "$URI" pool-undefine default >/dev/null 2>&1
    fi
    [[ -f /run/libvirt/qemu/$DOM.pid ]] && kill "$(cat /run/libvirt/qemu/$DOM.pid)" 2>/dev/null
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${pids[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
}
trap cleanup EXIT
trap 'exit 0' TERM INT

wait_for() { # SECONDS WHAT COMMAND...
    local end=$((SECONDS + $1)) what=$2
    shift 2
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < end)) || { echo "libvirt-lab: no $what within the deadline" >&2; exit 1; }
        sleep 0.2
    done
}

mkdir -p "$W"/{run,lib,cache,log,etc,sock,pool,tmp,pylibvirt}
mount --bind "$W/run" /run/libvirt
mount --bind "$W/lib" /var/lib/libvirt
mount --bind "$W/cache" /var/cache/libvirt
mount --bind "$W/log" /var/log/libvirt
cp -a /etc/libvirt/. "$W/etc/"
cp /etc/passwd "$W/passwd"
cp /etc/group "$W/group"
getent passwd libvirt-qemu >/dev/null ||
    echo 'libvirt-qemu:x:64055:64055:Libvirt Qemu:/var/lib/libvirt:/usr/sbin/nologin' >>"$W/passwd"
getent group libvirt-qemu >/dev/null || echo 'libvirt-qemu:x:64055:' >>"$W/group"
mount --bind "$W/passwd" /etc/passwd
mount --bind "$W/group" /etc/group
# QEMU as root, and no cgroups (libvirt's machine/ cgroups are host-wide).
cat >"$W/etc/qemu.conf" <<CONF
user = "root"
group = "root"
cgroup_controllers = [ ]
remember_owner = 0
CONF
cat >"$W/libvirtd.conf" <<CONF
unix_sock_dir = "$W/sock"
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "3:file:$W/libvirtd.log"
CONF
mount --bind "$W/etc" /etc/libvirt

# In the foreground as jobs, so their PIDs are theirs.
virtlogd -p "$W/virtlogd.pid" >"$W/virtlogd.stderr" 2>&1 &
pids+=($!)
wait_for 10 virtlogd test -S /run/libvirt/virtlogd-sock
libvirtd -f "$W/libvirtd.conf" -p "$W/libvirtd.pid" >"$W/libvirtd.stderr" 2>&1 &
pids+=($!)
wait_for 30 libvirtd virsh -c "$URI" list

virsh -q -c "$URI" pool-define-as default dir --target "$W/pool" >/dev/null
virsh -q -c "$URI" pool-start default >/dev/null
# type='qemu' (TCG): qemu under libvirt cannot open /dev/kvm here. A 5 GiB
# sparse disk (the agent skips disks under 4 GiB), an empty CD drive for the
# virtual media; the NIC on the test's tap. SeaBIOS named as the loader, so
# the emulator reports BootSourceOverrideMode Legacy (without it, none).
truncate -s 5G "$W/disk0.img"
cat >"$W/$DOM.xml" <<XML
<domain type='qemu'>
  <name>$DOM</name>
  <memory unit='MiB'>2048</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <loader readonly='yes' type='rom'>/usr/share/seabios/bios-256k.bin</loader>
    <boot dev='hd'/>
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='$W/disk0.img'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <target dev='hdc' bus='ide'/>
      <readonly/>
    </disk>
    <interface type='ethernet'>
      <mac address='$MAC'/>
      <target dev='$TAP' managed='no'/>
      <model type='e1000'/>
    </interface>
    <serial type='file'>
      <source path='$W/console.log' append='on'/>
      <target port='0'/>
    </serial>
    <console type='file'>
      <source path='$W/console.log' append='on'/>
      <target type='serial' port='0'/>
    </console>
  </devices>
</domain>
XML
virsh -q -c "$URI" define "$W/$DOM.xml" >/dev/null

# Debian's python3-libvirt, for the venv's Python (same 3.11), alone.
for f in /usr/lib/python3/dist-packages/libvirt*.py /usr/lib/python3/dist-packages/libvirtmod*.so; do
    ln -sf "$f" "$W/pylibvirt/"
done
export PYTHONPATH="$W/pylibvirt"
"$REPO/.sushy-venv/bin/python" -c 'import libvirt' || {
    echo "libvirt-lab: the libvirt Python module does not load (scripts/install-deps.sh installs python3-libvirt)" >&2
    exit 1
}
cat >"$W/sushy.conf" <<CONF
SUSHY_EMULATOR_LIBVIRT_URI = '$URI'
SUSHY_EMULATOR_STORAGE_POOL = 'default'
CONF
TMPDIR="$W/tmp" "$REPO/.sushy-venv/bin/sushy-emulator" --config "$W/sushy.conf" \
    --libvirt-uri "$URI" -i 127.0.0.1 -p "$PORT" >"$W/emulator.log" 2>&1 &
pids+=($!)
wait_for 60 sushy-emulator curl -sf --max-time 5 "http://127.0.0.1:$PORT/redfish/v1/Systems"
system=$(curl -sf --max-time 10 "http://127.0.0.1:$PORT/redfish/v1/Systems" |
    /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["Members"][0]["@odata.id"])')
echo "$system" >"$W/ready.tmp"
mv "$W/ready.tmp" "$W/ready"
# Until the test is done (SIGTERM).
while :; do sleep 1; done
