#!/usr/bin/env bash
# Redfish power status cost: sushy (the library Ironic's redfish power
# interface calls, in Python, one cached connection as Ironic's SessionCache
# keeps) vs rackboot's Redfish client, against sushy-tools' emulator (--fake,
# SYSTEMS systems) on 127.0.0.1 inside a private network namespace; then a
# power-state sync of every system, WORKERS at a time on both sides: sushy on
# a thread pool (Ironic's sync_power_state_workers) vs passes of rackboot's
# sync loop. Prints the peer's figure, ours and the ratio, from one run.
#   scripts/bench/redfish.sh [CALLS=200] [SYSTEMS=50] [WORKERS=8]
set -euo pipefail
[[ "${RACKBOOT_BENCH_TRACE:-}" == 1 ]] && set -x
cd "$(dirname "$0")/../.."
CALLS=${1:-200}
SYSTEMS=${2:-50}
WORKERS=${3:-8}
PY=$PWD/.sushy-venv/bin/python
EMU=$PWD/.sushy-venv/bin/sushy-emulator
[[ -x "$EMU" ]] || { echo "bench/redfish.sh: needs .sushy-venv (scripts/install-deps.sh makes it)" >&2; exit 2; }

. scripts/bench/lib.sh
bench_enter redfish.sh "scripts/install-deps.sh installs it" curl -- "$CALLS" "$SYSTEMS" "$WORKERS"

PORT=8000
URL=http://127.0.0.1:$PORT
"$PY" - "$SYSTEMS" > "$run/emulator.conf" <<'PYEOF'
import sys
n = int(sys.argv[1])
systems = [{"uuid": "00000000-0000-4000-8000-%012d" % i, "name": "n%d" % i, "power_state": "On",
            "external_notifier": False, "nics": [{"mac": "52:54:00:00:%02x:%02x" % (i // 256, i % 256), "ip": "172.22.0.100"}]}
           for i in range(1, n + 1)]
print("SUSHY_EMULATOR_FAKE_DRIVER = True")
print("SUSHY_EMULATOR_FAKE_SYSTEMS = %r" % systems)
PYEOF
TMPDIR=$run "$EMU" --config "$run/emulator.conf" --fake -i 127.0.0.1 -p $PORT > "$run/emulator.log" 2>&1 & pids+=($!)
deadline=$((SECONDS + 20))
until curl -sf "$URL/redfish/v1/" >/dev/null; do
    (( SECONDS < deadline )) || { echo "sushy-emulator did not start:" >&2; cat "$run/emulator.log" >&2; exit 1; }
    sleep 0.2
done
paths=()
for i in $(seq 1 "$SYSTEMS"); do paths+=("/redfish/v1/Systems/00000000-0000-4000-8000-$(printf %012d "$i")"); done

# --- One BMC, CALLS status reads on one kept connection ----------------------
read -r peer_first peer_median peer_max < <("$PY" scripts/bench/redfish_sushy.py "$URL" single "$CALLS" "${paths[0]}")
"$RB" bmc --redfish --address "$URL" --system-id "${paths[0]}" --repeat "$CALLS" status 2> "$run/ours" >/dev/null
ours_first=$(sed -n 's/.*first \([0-9]*\) us.*/\1/p' "$run/ours")
ours_median=$(sed -n 's/.*then median \([0-9]*\) us.*/\1/p' "$run/ours")
ours_max=$(sed -n 's/.*max \([0-9]*\) us.*/\1/p' "$run/ours")
echo "Redfish power status, sushy-tools 2.2 --fake ($SYSTEMS systems), 127.0.0.1 in a private netns, $(nproc) CPUs, $CALLS calls"
printf '%-48s %14s %14s %8s\n' metric "sushy 5.14" rackboot ratio
row() { printf '%-48s %11d us %11d us %7.2fx\n' "$1" "$2" "$3" "$(echo "$2 / $3" | bc -l)"; }
row "first call (connects, reads the service root)" "$peer_first" "$ours_first"
row "status on the kept connection, median" "$peer_median" "$ours_median"
row "status on the kept connection, max" "$peer_max" "$ours_max"

# --- Power-state sync of every system, WORKERS at once ------------------------
PASSES=5
peer_sync=$("$PY" scripts/bench/redfish_sushy.py "$URL" sync "$WORKERS" "$PASSES" "${paths[@]}")
API=127.0.0.1:16385
H=(-H 'Content-Type: application/json' -H 'X-OpenStack-Ironic-API-Version: 1.80')
printf '[data]\ndir = "%s"\n[api]\nlisten = "%s"\n[conductor]\nsync_power_state_interval = "2s"\npower_state_sync_workers = %d\nredfish_calls_per_bmc = %d\n' \
    "$run/data" "$API" "$WORKERS" "$WORKERS" > "$run/rackboot.toml"
"$RB" serve --config "$run/rackboot.toml" 2> "$run/serve.log" & pids+=($!)
deadline=$((SECONDS + 15))
until curl -sf "http://$API/v1" >/dev/null; do
    (( SECONDS < deadline )) || { echo "rackboot serve did not start:" >&2; cat "$run/serve.log" >&2; exit 1; }
    sleep 0.1
done
for i in $(seq 1 "$SYSTEMS"); do
    curl -sf -X POST "http://$API/v1/nodes" "${H[@]}" \
        -d "{\"name\": \"n$i\", \"driver\": \"redfish\", \"driver_info\": {\"redfish_address\": \"$URL\", \"redfish_system_id\": \"${paths[$((i - 1))]}\"}}" >/dev/null
    curl -sf -X PUT "http://$API/v1/nodes/n$i/states/provision" "${H[@]}" -d '{"target": "manage"}' >/dev/null
done
deadline=$((SECONDS + 120))
until [[ $(curl -sf "http://$API/v1/nodes?fields=provision_state" "${H[@]}" | grep -o '"manageable"' | wc -l) -eq $SYSTEMS ]]; do
    (( SECONDS < deadline )) || { echo "nodes did not all reach manageable" >&2; tail "$run/serve.log" >&2; exit 1; }
    sleep 0.2
done
# The median of PASSES full passes after the first (kept connection, warm).
deadline=$((SECONDS + 60))
while :; do
    mapfile -t passes < <(grep "power-state sync pass" "$run/serve.log" | grep "checked=$SYSTEMS " | sed -n 's/.*elapsed_ms=\([0-9.]*\).*/\1/p' || true)
    (( ${#passes[@]} > PASSES )) && break
    (( SECONDS < deadline )) || { echo "fewer than $((PASSES + 1)) full sync passes in the log:" >&2; tail "$run/serve.log" >&2; exit 1; }
    sleep 0.2
done
ours_sync=$(printf '%s\n' "${passes[@]:1:$PASSES}" | sort -n | sed -n "$(( (PASSES + 1) / 2 ))p")
echo
echo "Power-state sync of $SYSTEMS emulated systems on one BMC, $WORKERS at a time on both sides"
printf '%-48s %14s %14s %8s\n' metric "sushy 5.14" rackboot ratio
printf '%-48s %11.1f ms %11.1f ms %7.2fx\n' "one pass, median of $PASSES (kept connection)" "$peer_sync" "$ours_sync" "$(echo "$peer_sync / $ours_sync" | bc -l)"
echo "(ratio > 1: rackboot faster. The emulator (Python, Werkzeug) answers every request of both sides.)"
