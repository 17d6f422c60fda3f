#!/bin/sh
# ipmi_sim chassis_control hook: keeps a simulated chassis's state in files so
# tests can read it, and logs every call.
#   chassis-control.sh STATEDIR get power|boot ...   -> prints "power:1", "boot:pxe"
#   chassis-control.sh STATEDIR set power 0|1 | reset 1 | boot NAME | shutdown 1
# "shutdown 1" is ipmi_sim's soft off (ACPI): a simulated guest OS honours it
# half a second later by powering off, unless STATEDIR/ignore-acpi exists.
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
        shutdown)
            if [ ! -e "$dir/ignore-acpi" ]; then
                ( sleep 0.5; echo "guest powered off" >> "$dir/events.log"; echo 0 > "$dir/power" ) \
                    </dev/null >/dev/null 2>&1 &
            fi
            ;;
        esac
    done
    ;;
esac
