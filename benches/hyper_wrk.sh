#!/usr/bin/env bash
# wrk against examples/hyper_server.rs (hyper on xev) and
# examples/hyper_tokio.rs (the same server on tokio current_thread), in
# alternating rounds so that load from elsewhere on the machine hits both.
#
#   benches/hyper_wrk.sh [ROUNDS] [CONNECTIONS] [DURATION]   # default 5 50 10s
#
# Servers are pinned to CPU 0 and wrk (one thread) to CPU 1. Each round
# prints requests/s, wrk's 50th and 99th latency percentiles, and the
# server's CPU time per request (utime + stime from /proc, divided by the
# requests wrk completed), which other load disturbs far less than
# requests/s. Linux only; needs wrk and taskset.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-5}
CONNS=${2:-50}
DUR=${3:-10s}

cargo build --release --example hyper_server --example hyper_tokio
BIN=${CARGO_TARGET_DIR:-target}/release/examples

taskset -c 0 "$BIN/hyper_server" --addr 127.0.0.1:3100 >/dev/null &
XEV=$!
taskset -c 0 "$BIN/hyper_tokio" --addr 127.0.0.1:3101 >/dev/null &
TOKIO=$!
trap 'kill $XEV $TOKIO' EXIT
sleep 0.5

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)

for round in $(seq 1 "$ROUNDS"); do
    for server in xev:3100:$XEV tokio:3101:$TOKIO; do
        IFS=: read -r name port pid <<<"$server"
        before=$(cpu_ticks "$pid")
        out=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"$DUR" --latency "http://127.0.0.1:$port/")
        after=$(cpu_ticks "$pid")
        rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
        requests=$(awk '/requests in/ {print $1}' <<<"$out")
        p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
        p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
        cpu_us=$(awk -v t=$((after - before)) -v hz="$HZ" -v n="$requests" \
            'BEGIN {printf "%.2f", t / hz * 1e6 / n}')
        errors=$(grep -E 'Non-2xx|Socket errors' <<<"$out" | tr '\n' ' ' || true)
        echo "round $round $name: $rps req/s, p50 $p50, p99 $p99, $cpu_us us CPU/request $errors"
    done
done
