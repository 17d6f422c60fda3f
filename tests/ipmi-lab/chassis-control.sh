#!/bin/sh
# ipmi_sim chassis_control hook: keeps a simulated chassis's state in files so
# tests can read it, and logs every call.
#   chassis-control.sh STATEDIR get power|boot ...   -> prints "power:1", "boot:pxe"
#   chassis-control.sh STATEDIR set power 0|1 | reset 1 | boot NAME
set -eu
dir=$1; shift
op=$1; shift
mkdir -p "$dir"
[ -f "$dir/power" ] || echo 0 > "$dir/power"
[ -f "$dir/boot" ] || echo none > "$dir/boot"
case "$op" in
get)
    for item in "$@"; do
        case "$item" in
        power) echo "power:$(cat "$dir/power")" ;;
        boot) echo "boot:$(cat "$dir/boot")" ;;
        esac
    done
    ;;
set)
    while [ $# -ge 2 ]; do
        item=$1; value=$2; shift 2
        echo "set $item $value" >> "$dir/events.log"
        case "$item" in
        power) echo "$value" > "$dir/power" ;;
        reset) echo $(( $(cat "$dir/resets" 2>/dev/null || echo 0) + 1 )) > "$dir/resets" ;;
        boot) echo "$value" > "$dir/boot" ;;
        esac
    done
    ;;
esac
