#!/bin/sh
# ipmi_sim chassis_control hook that powers a QEMU VM: "set power 1" starts
# the VM described by STATEDIR/vm.cmd (a shell command line), "set power 0"
# stops it, "reset" restarts it, "get power" says whether it runs. The boot
# device is recorded (the VM always tries the network first, then its disk).
# Every call is logged to STATEDIR/events.log, and every VM start to
# STATEDIR/starts.log (so a test can tell a machine was never restarted).
#   vm-chassis-control.sh STATEDIR get power|boot ...
#   vm-chassis-control.sh STATEDIR set power 0|1 | reset 1 | boot NAME | shutdown 1
set -eu
dir=$1; shift
op=$1; shift
[ -f "$dir/boot" ] || echo none > "$dir/boot"

running() {
    [ -f "$dir/vm.pid" ] && kill -0 "$(cat "$dir/vm.pid")" 2>/dev/null
}

start() {
    running && return 0
    # The VM's own process group, so stopping it stops QEMU and nothing else.
    setsid sh -c "exec $(cat "$dir/vm.cmd")" </dev/null >>"$dir/qemu.log" 2>&1 &
    echo $! > "$dir/vm.pid"
    echo "$(date +%s.%N) $!" >> "$dir/starts.log"
}

stop() {
    if running; then
        pid=$(cat "$dir/vm.pid")
        kill "$pid" 2>/dev/null || true
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/vm.pid"
}

case "$op" in
get)
    for item in "$@"; do
        case "$item" in
        power) if running; then echo "power:1"; else echo "power:0"; fi ;;
        boot) echo "boot:$(cat "$dir/boot")" ;;
        esac
    done
    ;;
set)
    while [ $# -ge 2 ]; do
        item=$1; value=$2; shift 2
        echo "set $item $value" >> "$dir/events.log"
        case "$item" in
        power) if [ "$value" = 1 ]; then start; else stop; fi ;;
        reset) stop; start ;;
        boot) echo "$value" > "$dir/boot" ;;
        shutdown) stop ;;
        esac
    done
    ;;
esac
