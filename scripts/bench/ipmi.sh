#!/usr/bin/env bash
# IPMI `power status` cost: ipmitool (what Ironic forks per call) vs rackboot's
# native client, against N OpenIPMI ipmi_sim BMCs on 127.0.0.1 inside a
# private network namespace; then a power-state sync of SYNC_BMCS BMCs:
# Ironic's way (one `ipmitool power status` per node, sync_power_state_workers
# = 8 at once) vs passes of rackboot's sync loop with 8 workers. Prints the
# peer's figure, ours and the ratio.
#   scripts/bench/ipmi.sh [N_BMCS=8] [CALLS_PER_BMC=10] [SYNC_BMCS=50]
#   BENCH_SIM_HOOK=1   keep ipmi_sim's chassis-control shell hook (slower BMCs)
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-8}
CALLS=${2:-10}
SYNC=${3:-50}

. scripts/bench/lib.sh
bench_enter ipmi.sh "scripts/install-deps.sh installs it" ipmi_sim ipmitool -- "$N" "$CALLS" "$SYNC"
lab=$PWD/tests/ipmi-lab
echo password > "$run/pw"
TOTAL=$(( N > SYNC ? N : SYNC ))
for i in $(seq 1 "$TOTAL"); do
    port=$((9622 + i)); d=$run/bmc$i; mkdir -p "$d/chassis"; echo 1 > "$d/chassis/power"
    sed -e "s|@NAME@|bmc$i|; s|@ADDR@|127.0.0.1|; s|@PORT@|$port|; s|@LABDIR@|$lab|; s|@STATEDIR@|$d/chassis|; s|@USER@|admin|; s|@PASS@|password|" \
        "$lab/lan.conf.in" > "$d/lan.conf"
    # By default the simulated BMCs answer from memory: the chassis-control
    # hook forks a shell for every Get Chassis Status, which would make the
    # simulator, not the clients, the thing measured. BENCH_SIM_HOOK=1 keeps it.
    [[ "${BENCH_SIM_HOOK:-0}" == 1 ]] || sed -i '/^ *chassis_control /d' "$d/lan.conf"
    ipmi_sim -n -c "$d/lan.conf" -f "$lab/bmc.emu" -s "$d/sim" >/dev/null 2>&1 &
    pids+=($!)
done
for i in $(seq 1 "$TOTAL"); do
    port=$((9622 + i)); deadline=$((SECONDS + 15))
    until ipmitool -I lanplus -H 127.0.0.1 -p $port -U admin -f "$run/pw" -C 3 power status >/dev/null 2>&1; do
        (( SECONDS < deadline )) || { echo "BMC on $port never answered" >&2; exit 1; }
    done
done
ms() { date +%s%N; }
# CPU seconds (user+sys) used by the children of a command, via bash's `time`.
TIMEFORMAT='%U %S'
cpu_us() { awk '{printf "%d", ($1 + $2) * 1000000}' "$1"; }
# Sequential: one call after another, every BMC CALLS times.
t0=$(ms)
{ time (for c in $(seq 1 "$CALLS"); do for i in $(seq 1 "$N"); do
    ipmitool -I lanplus -H 127.0.0.1 -p $((9622 + i)) -U admin -f "$run/pw" -C 3 power status >/dev/null
done; done) ; } 2> "$run/cpu.peer"
t1=$(ms)
{ time (for c in $(seq 1 "$CALLS"); do for i in $(seq 1 "$N"); do
    $RB bmc --address 127.0.0.1 --port $((9622 + i)) --username admin --password-file "$run/pw" status >/dev/null
done; done) ; } 2> "$run/cpu.ours"
t2=$(ms)
# The whole rack at once (one process per BMC, in parallel), once.
t3=$(ms)
calls=()
for i in $(seq 1 "$N"); do ipmitool -I lanplus -H 127.0.0.1 -p $((9622 + i)) -U admin -f "$run/pw" -C 3 power status >/dev/null & calls+=($!); done
wait "${calls[@]}"
t4=$(ms)
calls=()
for i in $(seq 1 "$N"); do $RB bmc --address 127.0.0.1 --port $((9622 + i)) --username admin --password-file "$run/pw" status >/dev/null & calls+=($!); done
wait "${calls[@]}"
t5=$(ms)
# One process, one kept session: the per-call cost the appliance pays.
KEPT=$((CALLS * 10))
{ time ($RB bmc --address 127.0.0.1 --port 9623 --username admin --password-file "$run/pw" --repeat $KEPT status 2> "$run/kept" >/dev/null) ; } 2> "$run/cpu.kept"
kept=$(sed -n 's/.*then median \([0-9]*\) us.*/\1/p' "$run/kept")
total=$((N * CALLS))
peer_call=$(( (t1 - t0) / total / 1000 )); ours_call=$(( (t2 - t1) / total / 1000 ))
peer_rack=$(( (t4 - t3) / 1000 )); ours_rack=$(( (t5 - t4) / 1000 ))
echo "IPMI power status, $N ipmi_sim BMCs, $CALLS calls each, 127.0.0.1 in a private netns, $(nproc) CPUs"
printf '%-52s %14s %14s %8s\n' metric "ipmitool -C 3" rackboot ratio
printf '%-52s %11d us %11d us %7.1fx\n' "one status call (fresh process + session), mean" "$peer_call" "$ours_call" "$(echo "$peer_call / $ours_call" | bc -l)"
printf '%-52s %11d us %11d us %7.1fx\n' "whole rack of $N at once (wall)" "$peer_rack" "$ours_rack" "$(echo "$peer_rack / $ours_rack" | bc -l)"
peer_cpu=$(( $(cpu_us "$run/cpu.peer") / total )); ours_cpu=$(( $(cpu_us "$run/cpu.ours") / total )); kept_cpu=$(( $(cpu_us "$run/cpu.kept") / KEPT ))
printf '%-52s %11d us %11d us %7.1fx\n' "client CPU per call (fresh process + session)" "$peer_cpu" "$ours_cpu" "$(echo "$peer_cpu / ($ours_cpu + 1)" | bc -l)"
printf '%-52s %11d us %11d us %7.1fx\n' "client CPU per call on a kept session (in-process)" "$peer_cpu" "$kept_cpu" "$(echo "$peer_cpu / ($kept_cpu + 1)" | bc -l)"
printf '%-52s %11d us %11d us %7.1fx\n' "status on a kept session (appliance, in-process)" "$peer_call" "$kept" "$(echo "$peer_call / $kept" | bc -l)"
printf '%-52s %14s %11d us\n' "rackboot: whole rack vs ipmitool's single call" "$peer_call" "$ours_rack"
echo "(ratio > 1: rackboot faster. Both include process start-up; Ironic also enforces a 5 s gap per BMC.)"

# --- Power-state sync of SYNC BMCs, 8 at a time on both sides ----------------
# Ironic: one ipmitool process per node, sync_power_state_workers = 8.
t6=$(ms)
seq 1 "$SYNC" | xargs -P 8 -I{} sh -c 'ipmitool -I lanplus -H 127.0.0.1 -p $((9622 + {})) -U admin -f "$1" -C 3 power status >/dev/null' _ "$run/pw"
t7=$(ms)
peer_sync=$(( (t7 - t6) / 1000000 ))
# rackboot: the appliance's own sync loop (every 2 s, 8 workers) over SYNC
# managed ipmi nodes. Pass times come from its log ("power-state sync pass").
API=127.0.0.1:16385
H=(-H 'Content-Type: application/json' -H 'X-OpenStack-Ironic-API-Version: 1.80')
serve() { # $1 = ipmi_session_idle_timeout, $2 = ipmi_session_keep
    printf '[data]\ndir = "%s"\n[api]\nlisten = "%s"\n[conductor]\nsync_power_state_interval = "2s"\npower_state_sync_workers = 8\nipmi_session_idle_timeout = "%s"\nipmi_session_keep = "%s"\n' \
        "$run/data" "$API" "$1" "$2" > "$run/rackboot.toml"
    : > "$run/serve.log"
    $RB serve --config "$run/rackboot.toml" 2> "$run/serve.log" & serve_pid=$!
    pids+=("$serve_pid")
    local deadline=$((SECONDS + 15))
    until curl -sf "http://$API/v1" >/dev/null; do
        (( SECONDS < deadline )) || { echo "rackboot serve did not start:" >&2; cat "$run/serve.log" >&2; exit 1; }
        sleep 0.1
    done
}
# Waits for the Kth pass that checked every node; prints its elapsed ms.
pass_ms() {
    local k=$1 deadline=$((SECONDS + 60)) got
    while :; do
        got=$(grep "power-state sync pass" "$run/serve.log" | grep "checked=$SYNC " | sed -n "${k}s/.*elapsed_ms=\([0-9.]*\).*/\1/p")
        [[ -n "$got" ]] && { echo "$got"; return; }
        (( SECONDS < deadline )) || { echo "no sync pass $k in the log:" >&2; tail "$run/serve.log" >&2; exit 1; }
        sleep 0.2
    done
}
stop_serve() { kill "$serve_pid"; wait "$serve_pid" || true; }
serve 20s 180s
for i in $(seq 1 "$SYNC"); do
    curl -sf -X POST "http://$API/v1/nodes" "${H[@]}" \
        -d "{\"name\": \"n$i\", \"driver\": \"ipmi\", \"driver_info\": {\"ipmi_address\": \"127.0.0.1\", \"ipmi_port\": $((9622 + i)), \"ipmi_username\": \"admin\", \"ipmi_password\": \"password\"}}" >/dev/null
    curl -sf -X PUT "http://$API/v1/nodes/n$i/states/provision" "${H[@]}" -d '{"target": "manage"}' >/dev/null
done
deadline=$((SECONDS + 120))
until [[ $(curl -sf "http://$API/v1/nodes?fields=provision_state" "${H[@]}" | grep -o '"manageable"' | wc -l) -eq $SYNC ]]; do
    (( SECONDS < deadline )) || { echo "nodes did not all reach manageable" >&2; exit 1; }
    sleep 0.2
done
# The first full pass after manage runs on the sessions manage opened.
kept_pass=$(pass_ms 1)
stop_serve
# Restarted with a 1 s idle timeout, shorter than the 2 s interval as the
# defaults' 20 s is shorter than their 60 s: the first pass logs in from
# nothing (suite 17 refused, then 3); keepalives hold the sessions open
# between passes, so later passes find them open.
serve 1s 180s
first_pass=$(pass_ms 1)
keepalive_pass=$(pass_ms 3)
stop_serve
# The same with ipmi_session_keep = 0s: every pass logs in again, with the
# suite the pool learned.
serve 1s 0s
relogin_pass=$(pass_ms 3)
stop_serve
echo
echo "Power-state sync of $SYNC ipmi_sim BMCs, 8 at a time on both sides"
printf '%-52s %14s %14s %8s\n' metric "ipmitool -C 3" rackboot ratio
r() { echo "$peer_sync / $1" | bc -l; }
printf '%-52s %11d ms %11.1f ms %7.1fx\n' "one pass, kept sessions" "$peer_sync" "$kept_pass" "$(r "$kept_pass")"
printf '%-52s %11d ms %11.1f ms %7.1fx\n' "one pass, sessions kept open by keepalive (defaults)" "$peer_sync" "$keepalive_pass" "$(r "$keepalive_pass")"
printf '%-52s %11d ms %11.1f ms %7.1fx\n' "one pass, logging in again (keep = 0s, suite 3)" "$peer_sync" "$relogin_pass" "$(r "$relogin_pass")"
printf '%-52s %11d ms %11.1f ms %7.1fx\n' "first pass after start (17 refused, then 3)" "$peer_sync" "$first_pass" "$(r "$first_pass")"
