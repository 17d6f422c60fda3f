#!/usr/bin/env bash
# The README's test command: installs what the tests need, then runs every
# test. Integration tests run inside a private network namespace (unshare -n,
# only `lo` up), so they never touch the host's network or loopback.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
# The test kernel + busybox ramdisk the end-to-end boots load (images/out, git-ignored).
images/build-test-ramdisk.sh
# The whole-disk image the direct deploy writes (images/out/disk; cached by content).
images/build-test-disk.sh

if [[ $(id -u) -ne 0 ]]; then
    echo "scripts/test.sh: the integration tests run in a private network namespace (unshare -n), which needs root; run as root (CI does)" >&2
    exit 1
fi

# The ironic-python-agent ramdisk (images/out/ipa; built once per machine and
# cached by content in /var/cache/rackboot/images, about 2 minutes from nothing).
images/build-ipa-ramdisk.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --all-targets --locked -- -D warnings
echo "== build"
cargo build --locked --all-targets
echo "== tests (in a private network namespace)"
unshare -n -- bash -c 'ip link set lo up && exec cargo test --locked --offline --all-targets -- --test-threads=4'
