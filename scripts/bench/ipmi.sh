#!/usr/bin/env bash
# IPMI `power status` cost: ipmitool (what Ironic forks per call) vs rackboot's
# native client, against N OpenIPMI ipmi_sim BMCs on 127.0.0.1 inside a
# private network namespace. Prints the peer's figure, ours and the ratio.
#   scripts/bench/ipmi.sh [N_BMCS=8] [CALLS_PER_BMC=10]
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-8}
CALLS=${2:-10}

if [[ "${RACKBOOT_BENCH_IN_NETNS:-}" != 1 ]]; then
    [[ $(id -u) -eq 0 ]] || { echo "bench/ipmi.sh: needs root (it runs in a private network namespace via unshare -n)" >&2; exit 2; }
    command -v ipmi_sim >/dev/null && command -v ipmitool >/dev/null || { echo "bench/ipmi.sh: needs ipmi_sim and ipmitool (scripts/install-deps.sh)" >&2; exit 2; }
    cargo build --release --quiet
    exec unshare -n -- env RACKBOOT_BENCH_IN_NETNS=1 bash "$0" "$N" "$CALLS"
fi
ip link set lo up
RB=target/release/rackboot
run=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$run"; }
trap cleanup EXIT
lab=$PWD/tests/ipmi-lab
echo password > "$run/pw"
for i in $(seq 1 "$N"); do
    port=$((9622 + i)); d=$run/bmc$i; mkdir -p "$d/chassis"; echo 1 > "$d/chassis/power"
    sed -e "s|@NAME@|bmc$i|; s|@ADDR@|127.0.0.1|; s|@PORT@|$port|; s|@LABDIR@|$lab|; s|@STATEDIR@|$d/chassis|; s|@USER@|admin|; s|@PASS@|password|" \
        "$lab/lan.conf.in" > "$d/lan.conf"
    ipmi_sim -n -c "$d/lan.conf" -f "$lab/bmc.emu" -s "$d/sim" >/dev/null 2>&1 &
    pids+=($!)
done
for i in $(seq 1 "$N"); do
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
