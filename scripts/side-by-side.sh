#!/usr/bin/env bash
# Side-by-side API comparison: the same sample of requests against a real
# OpenStack Ironic 39.0.0 and against rackboot, per request both status codes
# and the difference of the body key sets (driver: scripts/side_by_side.py).
#
#   sudo bash scripts/side-by-side.sh                        # table on stdout
#   sudo bash scripts/side-by-side.sh --report FILE          # also the full report
#                                                            # (with error texts) in FILE
#
# Environment:
#   RACKBOOT_BIN=path     the rackboot binary (default target/release/rackboot;
#                         this script never builds: run `cargo build --release` first)
#   IRONIC_VENV=dir       the Ironic venv (default .bench-venv/, shared with
#                         scripts/bench/api.sh; Ironic 39.0.0 is pip-installed
#                         there once if missing)
#   SBS_KEEP_TMP=1        keep the temp dir (configs, server logs) for inspection
#
# Exit status: 0 when the comparison ran (differences are reported, not a
# failure); 1 when a server fails to start or Ironic cannot be installed;
# 2 for usage errors (not root, unknown argument).
#
# Safety: both servers and the driver run in a private network namespace
# (`unshare -n`, only `lo` up) and talk to 127.0.0.1 only; that needs root.
# The only step outside the namespace is the one-time `pip install` into the
# venv. Only processes this script started are stopped, by PID; temp dirs are
# removed on exit.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
SELF="$HERE/$(basename "${BASH_SOURCE[0]}")"
DRIVER="$HERE/side_by_side.py"
DEFAULT_VENV="$ROOT/.bench-venv"
VENV=${IRONIC_VENV:-$DEFAULT_VENV}
IRONIC_VERSION=39.0.0
IRONICCLIENT_VERSION=6.3.0
HOST_NAME=sbs-host      # [DEFAULT] host (Ironic) and [conductor] host (rackboot)
IRONIC_PORT=16386
RB_PORT=16385
RB_BOOT_PORT=16387      # rackboot's boot HTTP (the ramdisk's endpoints)

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
usage() { sed -n '2,/^set -euo/p' "$SELF" | grep '^#' | sed 's/^# \{0,1\}//'; }

INNER=0
REPORT=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --report) [[ $# -ge 2 ]] || { usage >&2; exit 2; }; REPORT=$2; shift ;;
        --report=*) REPORT=${1#--report=} ;;
        --inner) INNER=1 ;;
        -h|--help) usage; exit 0 ;;
        *) log "unknown argument: $1 (try --help)"; exit 2 ;;
    esac
    shift
done

# ---------------------------------------------------------------------------
# Outer part: host namespace. Check the binary, prepare the Ironic venv, then
# re-exec inside a fresh network namespace.

# Same approach, path and versions as scripts/bench/api.sh.
setup_ironic_venv() {
    # Prints nothing on stdout; returns non-zero when Ironic is unusable.
    if [[ -x "$VENV/bin/ironic" ]] &&
        "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('ironic') != '$IRONIC_VERSION')" 2>/dev/null; then
        log "Ironic $IRONIC_VERSION already installed in $VENV"
        return 0
    fi
    if [[ $VENV == "$DEFAULT_VENV" ]]; then
        grep -qxF '/.bench-venv' "$ROOT/.gitignore" 2>/dev/null || echo '/.bench-venv' >>"$ROOT/.gitignore"
    fi
    log "installing Ironic $IRONIC_VERSION into $VENV (pip; may take a few minutes, giving up after 15 min)"
    python3 -m venv "$VENV" || return 1
    timeout 900 "$VENV/bin/pip" install -q "ironic==$IRONIC_VERSION" \
        "python-ironicclient==$IRONICCLIENT_VERSION" >&2 || return 1
    [[ -x "$VENV/bin/ironic" ]]
}

if [[ $INNER == 0 ]]; then
    if [[ $(id -u) != 0 ]]; then
        echo "side-by-side.sh needs root: it runs both servers in a private network namespace" >&2
        echo "(unshare -n) so that no traffic can leave 127.0.0.1. Re-run as root, e.g.:" >&2
        echo "  sudo bash scripts/side-by-side.sh ${REPORT:+--report $REPORT}" >&2
        exit 2
    fi
    command -v unshare >/dev/null || die "unshare (util-linux) is required"
    command -v ip >/dev/null || die "ip (iproute2) is required"
    command -v python3 >/dev/null || die "python3 is required"

    BIN=${RACKBOOT_BIN:-$ROOT/target/release/rackboot}
    [[ $BIN == /* ]] || BIN="$PWD/$BIN"
    [[ -f $BIN && -x $BIN ]] ||
        die "rackboot binary $BIN is missing or not executable; build it (cargo build --release) or set RACKBOOT_BIN=path"
    BIN=$(realpath "$BIN")
    log "rackboot binary: $BIN"

    setup_ironic_venv || die "Ironic $IRONIC_VERSION is not usable in $VENV (pip install failed or timed out)"

    if [[ -n $REPORT ]]; then
        [[ $REPORT == /* ]] || REPORT="$PWD/$REPORT"
        : >"$REPORT" || die "cannot write the report file $REPORT"
    fi

    export SBS_BIN="$BIN" SBS_VENV="$VENV" SBS_REPORT="$REPORT"
    log "entering a private network namespace (unshare -n)"
    exec unshare -n -- bash "$SELF" --inner
fi

# ---------------------------------------------------------------------------
# Inner part: private network namespace.

[[ -n "${SBS_BIN:-}" ]] || { log "--inner is internal; run scripts/side-by-side.sh"; exit 2; }
VENV=$SBS_VENV
ip link set lo up
# Sanity: a fresh namespace has nothing but lo.
if ip -o link show | grep -v ': lo:' | grep -q .; then
    die "network namespace is not private (found interfaces besides lo); refusing to run"
fi

TMP=$(mktemp -d /tmp/rackboot-side-by-side.XXXXXX)
PIDS=()
stop_pid() {
    local pid=$1 i k kids
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do   # up to 10 s
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "PID $pid did not stop after SIGTERM; SIGKILL"
        # Its own children (Ironic's forked service process) first.
        kids=$(cat /proc/"$pid"/task/*/children 2>/dev/null || true)
        for k in $kids; do kill -KILL "$k" 2>/dev/null || true; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        stop_pid "$pid"
    done
    if [[ "${SBS_KEEP_TMP:-0}" == 1 ]]; then
        log "kept $TMP (SBS_KEEP_TMP=1)"
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

show_logs() {
    local f
    for f in "$@"; do
        [[ -s $f ]] || continue
        log "last lines of $f:"
        tail -n 25 "$f" >&2
    done
}

# Polls GET /v1 until it answers 200 or the deadline passes (as api.sh).
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
    time.sleep(0.1)
sys.exit(f"GET /v1 did not answer within {secs:.0f} s")
PY
}

# --- Ironic (configured as scripts/bench/api.sh does) -----------------------
IDIR="$TMP/ironic"
mkdir -p "$IDIR/state" "$IDIR/locks" "$IDIR/httpboot" "$IDIR/tftpboot"
# Ironic's ipmitool interfaces refuse to load without the ipmitool binary.
hw=fake-hardware,ipmi pw=fake,ipmitool
if ! command -v ipmitool >/dev/null; then
    hw=fake-hardware pw=fake
    log "note: ipmitool is not installed, so Ironic runs with enabled_hardware_types=fake-hardware only"
fi
cat >"$IDIR/ironic.conf" <<EOF
[DEFAULT]
host = $HOST_NAME
auth_strategy = noauth
rpc_transport = none
state_path = $IDIR/state
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
port = $IRONIC_PORT
[database]
connection = sqlite:///$IDIR/ironic.sqlite
[conductor]
automated_clean = false
[dhcp]
dhcp_provider = none
[deploy]
http_root = $IDIR/httpboot
http_url = http://127.0.0.1:18081
[pxe]
tftp_root = $IDIR/tftpboot
[oslo_concurrency]
lock_path = $IDIR/locks
EOF
log "ironic-dbsync create_schema"
if ! "$VENV/bin/ironic-dbsync" --config-file "$IDIR/ironic.conf" create_schema \
    >"$IDIR/dbsync.log" 2>&1; then
    show_logs "$IDIR/dbsync.log"
    die "ironic-dbsync create_schema failed"
fi
log "starting Ironic $IRONIC_VERSION all-in-one"
"$VENV/bin/ironic" --config-file "$IDIR/ironic.conf" >"$IDIR/ironic.log" 2>&1 &
IRONIC_PID=$!
PIDS+=("$IRONIC_PID")

# --- rackboot -----------------------------------------------------------------
mkdir -p "$TMP/rackboot-data"
cat >"$TMP/rackboot.toml" <<EOF
[data]
dir = "$TMP/rackboot-data"
[api]
listen = "127.0.0.1:$RB_PORT"
auth = "none"
[http]
listen = "127.0.0.1:$RB_BOOT_PORT"
[tftp]
listen = "127.0.0.1:0"
[dhcp]
mode = "off"
[conductor]
host = "$HOST_NAME"
automated_clean = false
EOF
log "starting rackboot ($SBS_BIN)"
"$SBS_BIN" serve --config "$TMP/rackboot.toml" >"$TMP/rackboot.log" 2>&1 &
RB_PID=$!
PIDS+=("$RB_PID")

if ! wait_api "http://127.0.0.1:$RB_PORT" "$RB_PID" 30; then
    show_logs "$TMP/rackboot.log"
    die "rackboot did not start"
fi
log "rackboot is up (PID $RB_PID)"
if ! wait_api "http://127.0.0.1:$IRONIC_PORT" "$IRONIC_PID" 120; then
    grep -m 5 -E 'Error|ERROR' "$IDIR/ironic.log" >&2 || true
    show_logs "$IDIR/ironic.log"
    die "Ironic did not start"
fi
log "Ironic is up (PID $IRONIC_PID)"

# --- the comparison -----------------------------------------------------------
ARGS=(--ironic "http://127.0.0.1:$IRONIC_PORT" --rackboot "http://127.0.0.1:$RB_PORT"
      --rackboot-boot "http://127.0.0.1:$RB_BOOT_PORT")
[[ -n $SBS_REPORT ]] && ARGS+=(--report "$SBS_REPORT")
rc=0
python3 "$DRIVER" "${ARGS[@]}" || rc=$?
for pid in "$IRONIC_PID" "$RB_PID"; do
    kill -0 "$pid" 2>/dev/null || log "WARNING: PID $pid exited during the comparison"
done
if [[ $rc != 0 ]]; then
    show_logs "$IDIR/ironic.log" "$TMP/rackboot.log"
    die "the comparison did not run (driver exit status $rc)"
fi
if grep -Eq ' (ERROR|WARN)' "$TMP/rackboot.log"; then
    log "rackboot logged warnings/errors (first 10):"
    grep -E ' (ERROR|WARN)' "$TMP/rackboot.log" | head -n 10 >&2
fi
exit 0
