#!/usr/bin/env bash
# Boot HTTP benchmark: a 1 GiB file fetched with curl from nginx (sendfile
# on) and from rackboot's boot HTTP server (/assets/), by 1 client and by
# 50 clients at once, in one run, over loopback in a private network
# namespace. Prints wall time and aggregate throughput, and the ratio.
#
#   scripts/bench/http.sh [MIB=1024] [CLIENTS=50]
#
# Needs root (unshare -n), curl and nginx (apt-get install nginx-light).
set -euo pipefail
cd "$(dirname "$0")/../.."
MIB=${1:-1024}
CLIENTS=${2:-50}
. scripts/bench/lib.sh
bench_enter http.sh "apt-get install nginx-light" nginx curl -- "$MIB" "$CLIENTS"
mkdir -p "$run/www" "$run/nginx"
head -c $((MIB << 20)) /dev/urandom > "$run/www/big.img"
cat > "$run/nginx/nginx.conf" <<CONF
user root;
worker_processes auto;
pid $run/nginx/nginx.pid;
error_log $run/nginx/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path $run/nginx;
    proxy_temp_path $run/nginx;
    fastcgi_temp_path $run/nginx;
    uwsgi_temp_path $run/nginx;
    scgi_temp_path $run/nginx;
    server {
        listen 127.0.0.1:18090;
        location /assets/ { alias $run/www/; }
    }
}
CONF
nginx -c "$run/nginx/nginx.conf" -g 'daemon off;' & pids+=($!)
printf '[data]\ndir = "%s/data"\n[api]\nlisten = "127.0.0.1:16388"\n[conductor]\nsync_power_state_interval = "0s"\n[tftp]\nlisten = "127.0.0.1:0"\nroot = "%s/www"\n[http]\nlisten = "127.0.0.1:18091"\n' "$run" "$run" > "$run/rackboot.toml"
RUST_LOG=warn $RB serve --config "$run/rackboot.toml" 2> "$run/rackboot.log" & pids+=($!)
for port in 18090 18091; do
    for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/assets/big.img" -r 0-0 && break; sleep 0.1; done
done
# Warm the page cache.
cat "$run/www/big.img" > /dev/null

ms() { date +%s%N; }
# $1 = port, $2 = clients -> wall ms
fetch() {
    local port=$1 n=$2 t0 t1 p=()
    t0=$(ms)
    for _ in $(seq "$n"); do
        curl -sf -o /dev/null "http://127.0.0.1:$port/assets/big.img" & p+=($!)
    done
    for x in "${p[@]}"; do wait "$x" || { echo "bench/http.sh: a download failed" >&2; exit 1; }; done
    t1=$(ms)
    echo $(( (t1 - t0) / 1000000 ))
}
n1=$(fetch 18090 1); r1=$(fetch 18091 1)
n1b=$(fetch 18090 1); r1b=$(fetch 18091 1)
n1=$(( n1 < n1b ? n1 : n1b )); r1=$(( r1 < r1b ? r1 : r1b ))
nN=$(fetch 18090 "$CLIENTS"); rN=$(fetch 18091 "$CLIENTS")
gbs() { echo "scale=2; $1 * $MIB / 1024 * 1000 / $2" | bc; }
echo "HTTP: a ${MIB} MiB file over loopback, nginx $(nginx -v 2>&1 | sed 's/.*\///') (sendfile) vs rackboot, $(nproc) CPUs"
printf '%-24s %12s %12s %12s %12s %8s\n' clients "nginx ms" "nginx GiB/s" "rackboot ms" "rb GiB/s" ratio
printf '%-24s %12d %12s %12d %12s %7.2fx\n' 1 "$n1" "$(gbs 1 "$n1")" "$r1" "$(gbs 1 "$r1")" "$(echo "$n1 / $r1" | bc -l)"
printf '%-24s %12d %12s %12d %12s %7.2fx\n' "$CLIENTS at once" "$nN" "$(gbs "$CLIENTS" "$nN")" "$rN" "$(gbs "$CLIENTS" "$rN")" "$(echo "$nN / $rN" | bc -l)"
echo "(ratio = nginx time / rackboot time: above 1 means rackboot is faster)"
