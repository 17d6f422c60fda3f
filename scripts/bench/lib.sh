# Shared by the benchmarks that run in a private network namespace; sourced,
# never run. Each benchmark calls, before anything else:
#
#   bench_enter NAME "HINT" TOOL... -- "$@"
#
# Outside the namespace it checks for root and each TOOL (HINT says how to
# install what is missing), builds the release binary and runs the script
# again inside `unshare -n` with the same arguments. Inside, it brings `lo` up
# and sets RB (the release binary), run (a temporary directory) and pids (the
# processes the script starts; append with pids+=("$!")). On exit every PID in
# pids is stopped and waited for, the namespace made by bench_veth is
# deleted, and $run is removed.

bench_enter() {
    local name=$1 hint=$2
    shift 2
    local tools=()
    while [[ $# -gt 0 && $1 != -- ]]; do
        tools+=("$1")
        shift
    done
    [[ $# -gt 0 ]] && shift # the "--"
    if [[ "${RACKBOOT_BENCH_IN_NETNS:-}" != 1 ]]; then
        [[ $(id -u) -eq 0 ]] || {
            echo "bench/$name: needs root (it runs in a private network namespace via unshare -n)" >&2
            exit 2
        }
        local t
        for t in "${tools[@]}"; do
            command -v "$t" >/dev/null || { echo "bench/$name: needs $t ($hint)" >&2; exit 2; }
        done
        cargo build --release --quiet
        exec unshare -n -- env RACKBOOT_BENCH_IN_NETNS=1 bash "$0" "$@"
    fi
    ip link set lo up
    RB=$PWD/target/release/rackboot
    run=$(mktemp -d)
    pids=()
    bench_ns=
    trap bench_cleanup EXIT
}

bench_cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    [[ -z "$bench_ns" ]] || ip netns del "$bench_ns" 2>/dev/null || true
    rm -rf "$run"
}

# bench_veth NS SERVER_CIDR CLIENT_CIDR: a veth pair, `rbs` here with
# SERVER_CIDR and `rbc` with CLIENT_CIDR in a new namespace NS (deleted on
# exit), both up.
bench_veth() {
    bench_ns=$1
    ip link add rbs type veth peer name rbc
    ip netns add "$bench_ns"
    ip link set rbc netns "$bench_ns"
    ip addr add "$2" dev rbs
    ip link set rbs up
    ip -n "$bench_ns" addr add "$3" dev rbc
    ip -n "$bench_ns" link set rbc up
    ip -n "$bench_ns" link set lo up
}
