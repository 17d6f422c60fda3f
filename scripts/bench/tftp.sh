#!/usr/bin/env bash
# TFTP benchmark: a 30 MiB file at blksize 1468 fetched with atftp over a
# veth pair, from tftpd-hpa (lockstep; it has no windowsize) and from
# rackboot (lockstep, then windowsize 8), in one run. Median of RUNS.
#
#   scripts/bench/tftp.sh [RUNS=3] [MIB=30]
#
# Needs root (private network namespaces), atftp and in.tftpd
# (apt-get install atftp tftpd-hpa).
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-3}
MIB=${2:-30}
. scripts/bench/lib.sh
bench_enter tftp.sh "apt-get install atftp tftpd-hpa" atftp in.tftpd -- "$RUNS" "$MIB"
ns=rbtftp-$$
bench_veth "$ns" 10.90.0.1/24 10.90.0.2/24
mkdir -p "$run/root"
head -c $((MIB << 20)) /dev/urandom > "$run/root/big.img"

# One fetch; prints milliseconds. $1 = port, rest = atftp options.
fetch() {
    local port=$1; shift
    local t0 t1
    t0=$(date +%s%N)
    ip netns exec "$ns" atftp --option "blksize 1468" "$@" -g -r big.img -l "$run/out" 10.90.0.1 "$port" >/dev/null 2>&1
    t1=$(date +%s%N)
    cmp -s "$run/out" "$run/root/big.img" || { echo "bench/tftp.sh: corrupt transfer" >&2; exit 1; }
    echo $(( (t1 - t0) / 1000000 ))
}
median() { tr ' ' '\n' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

in.tftpd -L -s "$run/root" -a 10.90.0.1:6969 & pids+=($!)
printf '[data]\ndir = "%s/data"\n[api]\nlisten = "127.0.0.1:16387"\n[http]\nlisten = "127.0.0.1:18081"\n[conductor]\nsync_power_state_interval = "0s"\n[tftp]\nlisten = "10.90.0.1:69"\nroot = "%s/root"\nmax_windowsize = 64\n' "$run" "$run" > "$run/rackboot.toml"
RUST_LOG=warn $RB serve --config "$run/rackboot.toml" 2> "$run/rackboot.log" & pids+=($!)
sleep 1
hpa=(); lock=(); win=()
for _ in $(seq "$RUNS"); do
    hpa+=("$(fetch 6969)")
    lock+=("$(fetch 69)")
    win+=("$(fetch 69 --option "windowsize 8")")
done
h=$(echo "${hpa[@]}" | median); l=$(echo "${lock[@]}" | median); w=$(echo "${win[@]}" | median)
mbs() { echo "scale=1; $MIB * 1000 / $1" | bc; }
echo "TFTP ${MIB} MiB, blksize 1468, atftp over a veth pair, median of $RUNS, $(nproc) CPUs"
printf '%-40s %8s %10s\n' server ms "MiB/s"
printf '%-40s %8d %10s\n' "tftpd-hpa (lockstep)" "$h" "$(mbs "$h")"
printf '%-40s %8d %10s\n' "rackboot (lockstep)" "$l" "$(mbs "$l")"
printf '%-40s %8d %10s\n' "rackboot (windowsize 8)" "$w" "$(mbs "$w")"
echo "rackboot lockstep vs tftpd-hpa: $(echo "scale=2; $h / $l" | bc)x   rackboot windowsize 8 vs its lockstep: $(echo "scale=2; $l / $w" | bc)x"
