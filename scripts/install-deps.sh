#!/usr/bin/env bash
# Installs what the tests need, idempotently:
#   Debian packages (apt-get): python3-venv, apache2-utils (htpasswd -B), iproute2, util-linux (unshare), curl,
#   openipmi (ipmi_sim) and ipmitool (the reference IPMI client), busybox (udhcpc) and
#   isc-dhcp-client (dhclient) as DHCP clients, dnsmasq-base (reference DHCP server for
#   the proxy-mode test), kea-admin (perfdhcp, for scripts/bench/dhcp.sh), and QEMU with its
#   own firmware (qemu-system-x86, seabios, ipxe-qemu, ovmf) as real PXE clients, atftp and
#   tftp-hpa as TFTP clients, ipxe (the loaders copied into boot-assets/), xorriso + isolinux
#   (the test ISO the sanboot test boots), mmdebstrap + zstd (images/build-ipa-ramdisk.sh),
#   fdisk (sfdisk) + dosfstools + mtools + syslinux + qemu-utils (images/build-test-disk.sh) and
#   genisoimage (config-drive ISOs for the disk image's boot test), and
#   grub-efi-amd64-signed (the UEFI loader of the virtual media ISOs, with isolinux for BIOS),
#   and libvirtd (libvirt-daemon, libvirt-clients, python3-libvirt) under sushy-tools' libvirt
#   driver for the virtual media end-to-end test (tests/libvirt-lab.sh; no libvirt-daemon-system:
#   the test runs its own daemons in private namespaces)
#   .venv/ (git-ignored): python-ironicclient pinned, for the real `baremetal` CLI
#   .sushy-venv/ (git-ignored): sushy-tools pinned (the Redfish BMC emulator Ironic tests
#   against) and sushy (Ironic's Redfish library, for scripts/bench/redfish.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

IRONICCLIENT_VERSION="6.3.0"
SUSHY_TOOLS_VERSION="2.2.0"
SUSHY_VERSION="5.14.0"
PACKAGES=(python3 python3-venv python3-pip apache2-utils iproute2 util-linux curl ca-certificates openipmi ipmitool ipxe busybox cpio xorriso isolinux syslinux-common isc-dhcp-client dnsmasq-base kea-admin atftp tftp-hpa qemu-system-x86 seabios ipxe-qemu ovmf tcpdump mmdebstrap zstd fdisk dosfstools mtools syslinux qemu-utils genisoimage grub-efi-amd64-signed libvirt-daemon libvirt-clients python3-libvirt)

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "install-deps: missing Debian packages: ${missing[*]} — run as root or: sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
    echo "install-deps: apt-get install ${missing[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if ! .venv/bin/python -c "import ironicclient, sys; from importlib.metadata import version; sys.exit(version('python-ironicclient') != '${IRONICCLIENT_VERSION}')" 2>/dev/null; then
    echo "install-deps: creating .venv with python-ironicclient==${IRONICCLIENT_VERSION}"
    python3 -m venv .venv
    .venv/bin/pip install -q --disable-pip-version-check "python-ironicclient==${IRONICCLIENT_VERSION}"
fi
if ! .sushy-venv/bin/python -c "import sys; from importlib.metadata import version; sys.exit(version('sushy-tools') != '${SUSHY_TOOLS_VERSION}' or version('sushy') != '${SUSHY_VERSION}')" 2>/dev/null; then
    echo "install-deps: creating .sushy-venv with sushy-tools==${SUSHY_TOOLS_VERSION} sushy==${SUSHY_VERSION}"
    python3 -m venv --system-site-packages .sushy-venv
    .sushy-venv/bin/pip install -q --disable-pip-version-check "sushy-tools==${SUSHY_TOOLS_VERSION}" "sushy==${SUSHY_VERSION}"
fi
# iPXE loaders for the TFTP root (git-ignored).
for f in undionly.kpxe ipxe.efi snponly.efi; do
    cmp -s "/usr/lib/ipxe/$f" "boot-assets/$f" || cp "/usr/lib/ipxe/$f" "boot-assets/$f"
done
.venv/bin/baremetal --version >/dev/null
# openstacksdk comes with python-ironicclient; tests/integration/sdk_resources.py drives it.
.venv/bin/python -c "import openstack" || { echo "install-deps: openstacksdk is missing from .venv" >&2; exit 1; }
echo "install-deps: ok (baremetal CLI: $(.venv/bin/pip show python-ironicclient 2>/dev/null | sed -n 's/^Version: //p'))"
