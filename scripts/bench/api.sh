#!/usr/bin/env bash
# API benchmark: rackboot's Ironic-compatible API against OpenStack Ironic.
#
#   bash scripts/bench/api.sh                 # rackboot only; Ironic figures from anchors.md
#   bash scripts/bench/api.sh --with-ironic   # also install+run Ironic 39.0.0 (or BENCH_WITH_IRONIC=1)
#
# Environment:
#   RACKBOOT_BIN=path        use this binary instead of `cargo build --release`
#   BENCH_NODES=10000        nodes created / listed on rackboot
#   BENCH_ADOPT=1000         nodes adopted on rackboot (10 client threads)
#   BENCH_IRONIC_NODES=1000  BENCH_IRONIC_ADOPT=200   reduced scale for Ironic
#   BENCH_POLL=0.05          seconds between provision-state polls (first poll immediate)
#
# Safety: the measurement runs in a private network namespace (`unshare -n`,
# only `lo` up) and talks to 127.0.0.1 only; it needs root for that. The only
# steps outside the namespace are `cargo build` and, with --with-ironic, the
# one-time `pip install` into .bench-venv/ (git-ignored). Only processes this
# script started are stopped, by PID; temp dirs are removed on exit.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SELF="$HERE/$(basename "${BASH_SOURCE[0]}")"
HELPER="$HERE/api_bench.py"
VENV="$ROOT/.bench-venv"
IRONIC_VERSION=39.0.0
IRONICCLIENT_VERSION=6.3.0

NODES=${BENCH_NODES:-10000}
ADOPT=${BENCH_ADOPT:-1000}
IRONIC_NODES=${BENCH_IRONIC_NODES:-1000}
IRONIC_ADOPT=${BENCH_IRONIC_ADOPT:-200}
THREADS=10
POLL=${BENCH_POLL:-0.05}   # seconds between state polls (first poll is immediate)

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

WITH_IRONIC=${BENCH_WITH_IRONIC:-0}
INNER=0
for arg in "$@"; do
    case "$arg" in
        --with-ironic) WITH_IRONIC=1 ;;
        --inner) INNER=1 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$SELF" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $arg (try --help)" ;;
    esac
done

# ---------------------------------------------------------------------------
# Outer part: host namespace. Build, prepare the Ironic venv, then re-exec
# inside a fresh network namespace.

setup_ironic_venv() {
    # Prints nothing on stdout; returns non-zero when Ironic is unusable.
    if [[ -x "$VENV/bin/ironic" ]] &&
        "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('ironic') != '$IRONIC_VERSION')" 2>/dev/null; then
        log "Ironic $IRONIC_VERSION already installed in $VENV"
        return 0
    fi
    grep -qxF '/.bench-venv' "$ROOT/.gitignore" 2>/dev/null || echo '/.bench-venv' >>"$ROOT/.gitignore"
    log "installing Ironic $IRONIC_VERSION into $VENV (pip; may take a few minutes, giving up after 15 min)"
    python3 -m venv "$VENV" || return 1
    timeout 900 "$VENV/bin/pip" install -q "ironic==$IRONIC_VERSION" \
        "python-ironicclient==$IRONICCLIENT_VERSION" >&2 || return 1
    [[ -x "$VENV/bin/ironic" ]]
}

if [[ $INNER == 0 ]]; then
    if [[ $(id -u) != 0 ]]; then
        echo "api.sh needs root: it runs the benchmark in a private network namespace" >&2
        echo "(unshare -n) so that no traffic can leave 127.0.0.1. Re-run as root, e.g.:" >&2
        echo "  sudo bash scripts/bench/api.sh $*" >&2
        exit 2
    fi
    command -v unshare >/dev/null || die "unshare (util-linux) is required"
    command -v ip >/dev/null || die "ip (iproute2) is required"
    command -v python3 >/dev/null || die "python3 is required"

    if [[ -n "${RACKBOOT_BIN:-}" ]]; then
        BIN=$(realpath "$RACKBOOT_BIN")
        [[ -x "$BIN" ]] || die "RACKBOOT_BIN=$RACKBOOT_BIN is not an executable"
        log "using RACKBOOT_BIN=$BIN"
    else
        log "cargo build --release"
        (cd "$ROOT" && cargo build --release) >&2 || die "cargo build --release failed"
        BIN="$ROOT/target/release/rackboot"
    fi

    IRONIC_OK=0
    IRONIC_WHY="not requested (pass --with-ironic to measure it in this run)"
    if [[ $WITH_IRONIC == 1 ]]; then
        if setup_ironic_venv; then
            IRONIC_OK=1
        else
            IRONIC_WHY="pip install ironic==$IRONIC_VERSION failed or timed out"
            log "WARNING: $IRONIC_WHY; falling back to the anchors.md figures"
        fi
    fi

    export BENCH_BIN="$BIN" BENCH_IRONIC_OK="$IRONIC_OK" BENCH_IRONIC_WHY="$IRONIC_WHY"
    log "entering a private network namespace (unshare -n)"
    exec unshare -n -- bash "$SELF" --inner
fi

# ---------------------------------------------------------------------------
# Inner part: private network namespace.

[[ -n "${BENCH_BIN:-}" ]] || die "--inner is internal; run scripts/bench/api.sh"
ip link set lo up
# Sanity: a fresh namespace has nothing but lo.
if ip -o link show | grep -v ': lo:' | grep -q .; then
    die "network namespace is not private (found interfaces besides lo); refusing to run"
fi

TMP=$(mktemp -d /tmp/rackboot-api-bench.XXXXXX)
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        stop_pid "$pid"
    done
    rm -rf "$TMP"
}
stop_pid() {
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do   # up to 10 s
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "PID $pid did not stop after SIGTERM; SIGKILL"
        # Its own children (Ironic's forked service process) first.
        local kids
        kids=$(cat /proc/"$pid"/task/*/children 2>/dev/null || true)
        for k in $kids; do kill -KILL "$k" 2>/dev/null || true; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Polls GET /v1 until it answers 200 or the deadline passes.
wait_api() { # url pid seconds
    python3 - "$1" "$2" "$3" <<'PY'
import http.client, os, sys, time
url, pid, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
host, port = url.split("//")[1].split(":")
end = time.monotonic() + secs
while time.monotonic() < end:
    if not os.path.exists(f"/proc/{pid}"):
        sys.exit("process exited before the API answered")
    try:
        c = http.client.HTTPConnection(host, int(port), timeout=2)
        c.request("GET", "/v1")
        if c.getresponse().status == 200:
            sys.exit(0)
    except OSError:
        pass
    time.sleep(0.05)
sys.exit(f"GET /v1 did not answer within {secs:.0f} s")
PY
}

IMAGE="$TMP/empty-image.img"
: >"$IMAGE"
HOSTNAME_FOR_BENCH=bench-host

# --- rackboot ---------------------------------------------------------------
RB_PORT=16385
mkdir -p "$TMP/rackboot-data"
cat >"$TMP/rackboot.toml" <<EOF
[data]
dir = "$TMP/rackboot-data"
[api]
listen = "127.0.0.1:$RB_PORT"
auth = "none"
max_limit = 1000
[http]
listen = "127.0.0.1:18080"
[tftp]
listen = "127.0.0.1:10069"
[dhcp]
mode = "off"
[conductor]
host = "$HOSTNAME_FOR_BENCH"
EOF

log "starting rackboot ($BENCH_BIN)"
"$BENCH_BIN" serve --config "$TMP/rackboot.toml" \
    >"$TMP/rackboot.log" 2>&1 &
RB_PID=$!
PIDS+=("$RB_PID")
if ! wait_api "http://127.0.0.1:$RB_PORT" "$RB_PID" 30; then
    tail -n 30 "$TMP/rackboot.log" >&2
    die "rackboot did not start"
fi
log "rackboot is up (PID $RB_PID); workload: $NODES nodes, detail list, $ADOPT adoptions"
python3 "$HELPER" run --url "http://127.0.0.1:$RB_PORT" --pid "$RB_PID" --label rackboot \
    --nodes "$NODES" --adopt "$ADOPT" --threads "$THREADS" --poll "$POLL" --image-file "$IMAGE" \
    --time-budget 240 --out "$TMP/rackboot.json" >&2 ||
    { tail -n 30 "$TMP/rackboot.log" >&2; die "rackboot workload failed"; }
if ! kill -0 "$RB_PID" 2>/dev/null; then
    tail -n 30 "$TMP/rackboot.log" >&2
    die "rackboot exited during the workload"
fi
if grep -Eq ' (ERROR|WARN)' "$TMP/rackboot.log"; then
    log "rackboot logged warnings/errors (first 10):"
    grep -E ' (ERROR|WARN)' "$TMP/rackboot.log" | head -n 10 >&2
fi
stop_pid "$RB_PID"

# --- Ironic -----------------------------------------------------------------
PEER_ARGS=()
IRONIC_NOTE="${BENCH_IRONIC_WHY:-}"
IRONIC_CONFIG_NOTE=""
run_ironic() {
    local port=16386 dir="$TMP/ironic"
    mkdir -p "$dir/state" "$dir/locks"
    # Ironic's ipmitool interfaces refuse to load without the ipmitool
    # binary (DriverLoadError, the service never starts). The workload only
    # uses fake-hardware, so without ipmitool Ironic runs fake-hardware only.
    local hw=fake-hardware,ipmi pw=fake,ipmitool
    if ! command -v ipmitool >/dev/null; then
        hw=fake-hardware pw=fake
        IRONIC_CONFIG_NOTE="ipmitool is not installed here, so Ironic ran with enabled_hardware_types=fake-hardware (no ipmi); the workload is fake-hardware only"
        log "note: $IRONIC_CONFIG_NOTE"
    fi
    cat >"$dir/ironic.conf" <<EOF
[DEFAULT]
host = $HOSTNAME_FOR_BENCH
auth_strategy = noauth
rpc_transport = none
state_path = $dir/state
enabled_hardware_types = $hw
enabled_boot_interfaces = fake,ipxe
enabled_deploy_interfaces = fake,ramdisk
enabled_power_interfaces = $pw
enabled_management_interfaces = $pw
enabled_inspect_interfaces = no-inspect,fake
enabled_console_interfaces = no-console,fake
enabled_raid_interfaces = no-raid,fake
enabled_vendor_interfaces = no-vendor,fake
enabled_bios_interfaces = no-bios,fake
enabled_firmware_interfaces = no-firmware,fake
enabled_rescue_interfaces = no-rescue,fake
enabled_storage_interfaces = noop,fake
enabled_network_interfaces = noop
default_network_interface = noop
use_stderr = true
debug = false
[api]
host_ip = 127.0.0.1
port = $port
[database]
connection = sqlite:///$dir/ironic.sqlite
[conductor]
automated_clean = false
[dhcp]
dhcp_provider = none
[deploy]
http_root = $dir/httpboot
http_url = http://127.0.0.1:18081
[pxe]
tftp_root = $dir/tftpboot
[oslo_concurrency]
lock_path = $dir/locks
EOF
    mkdir -p "$dir/httpboot" "$dir/tftpboot"
    log "ironic-dbsync create_schema"
    if ! "$VENV/bin/ironic-dbsync" --config-file "$dir/ironic.conf" create_schema \
        >"$dir/dbsync.log" 2>&1; then
        tail -n 20 "$dir/dbsync.log" >&2
        IRONIC_NOTE="ironic-dbsync create_schema failed"
        return 1
    fi
    log "starting Ironic $IRONIC_VERSION all-in-one"
    "$VENV/bin/ironic" --config-file "$dir/ironic.conf" >"$dir/ironic.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    if ! wait_api "http://127.0.0.1:$port" "$pid" 120; then
        grep -m 5 -E 'Error|ERROR' "$dir/ironic.log" >&2 || true
        tail -n 20 "$dir/ironic.log" >&2
        IRONIC_NOTE="Ironic did not start (see log above)"
        stop_pid "$pid"
        return 1
    fi
    log "Ironic is up (PID $pid); reduced workload: $IRONIC_NODES nodes, $IRONIC_ADOPT adoptions"
    if ! python3 "$HELPER" run --url "http://127.0.0.1:$port" --pid "$pid" --label ironic \
        --nodes "$IRONIC_NODES" --adopt "$IRONIC_ADOPT" --threads "$THREADS" --poll "$POLL" \
        --image-file "$IMAGE" --settle 3 --time-budget 600 --out "$TMP/ironic.json" >&2; then
        tail -n 30 "$dir/ironic.log" >&2
        IRONIC_NOTE="the workload against Ironic failed"
        stop_pid "$pid"
        return 1
    fi
    stop_pid "$pid"
    PEER_ARGS=(--peer "$TMP/ironic.json")
}
if [[ "${BENCH_IRONIC_OK:-0}" == 1 ]]; then
    run_ironic || log "WARNING: $IRONIC_NOTE; falling back to the anchors.md figures"
fi

# --- report -----------------------------------------------------------------
echo
echo "== rackboot API benchmark ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs, private netns, 127.0.0.1 only) =="
if [[ ${#PEER_ARGS[@]} == 0 ]]; then
    echo "Ironic was not measured in this run: $IRONIC_NOTE."
fi
[[ ${#PEER_ARGS[@]} != 0 && -n "$IRONIC_CONFIG_NOTE" ]] && echo "Note: $IRONIC_CONFIG_NOTE."
python3 "$HELPER" report --ours "$TMP/rackboot.json" "${PEER_ARGS[@]}"
