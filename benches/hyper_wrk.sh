#!/usr/bin/env bash
# hyper on xev against the same servers on tokio current_thread, in one
# run, over four protocols:
#
#   http1  HTTP/1.1 keep-alive              wrk     hyper_server        / hyper_tokio
#   https  HTTP/1.1 keep-alive over TLS     wrk     https_server        / hyper_tokio --tls
#   h2c    HTTP/2, prior knowledge          h2load  hyper_server --h2   / hyper_tokio --h2
#   h2     HTTP/2 over TLS (ALPN h2)        h2load  https_server        / hyper_tokio --tls
#
#   benches/hyper_wrk.sh [ROUNDS] [CONNECTIONS] [SECONDS] [SCENARIOS]   # default 5 50 10 "http1 https h2c h2"
#   STREAMS=10 benches/hyper_wrk.sh ...    # HTTP/2 streams in flight per connection
#
# Every server runs for the whole run, pinned to CPU 0; the load generator
# (one thread) is pinned to CPU 1. Rounds alternate xev and tokio, scenario
# by scenario, so that load from elsewhere on the machine hits both. Each
# run prints requests/s, latency, and the server's CPU time per request
# (utime + stime from /proc, divided by the requests completed), which
# other load disturbs far less than requests/s; the summary gives medians
# and xev/tokio ratios. Every request is `GET /` (14-byte body).
#
# Linux only; needs taskset, wrk (Debian: wrk) for http1/https and h2load
# (Debian: nghttp2-client) for h2c/h2. A scenario whose tool is missing is
# skipped with a message. Nothing here runs in CI.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-5}
CONNS=${2:-50}
SECS=${3:-10}
SCENARIOS=${4:-"http1 https h2c h2"}
STREAMS=${STREAMS:-10}

cargo build --release --features hyper --example hyper_server --example https_server --example hyper_tokio
BIN=${CARGO_TARGET_DIR:-target}/release/examples

PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true' EXIT
LOG=${CARGO_TARGET_DIR:-target}/hyper_wrk_servers.log
: >"$LOG"
start() { # PORT PROGRAM ARGS...
    local port=$1
    shift
    taskset -c 0 "$BIN/$1" --addr "127.0.0.1:$port" "${@:2}" >/dev/null 2>>"$LOG" &
    PIDS+=($!)
    eval "PID_$port=$!"
}
start 3100 hyper_server
start 3101 hyper_tokio
start 3102 hyper_server --h2
start 3103 hyper_tokio --h2
start 3104 https_server
start 3105 hyper_tokio --tls
sleep 1

# scenario -> "xev port, tokio port, scheme, tool"
declare -A XEV_PORT=([http1]=3100 [https]=3104 [h2c]=3102 [h2]=3104)
declare -A TOKIO_PORT=([http1]=3101 [https]=3105 [h2c]=3103 [h2]=3105)
declare -A SCHEME=([http1]=http [https]=https [h2c]=http [h2]=https)
declare -A TOOL=([http1]=wrk [https]=wrk [h2c]=h2load [h2]=h2load)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
RESULTS=$(mktemp)

# Runs the load generator once; prints "requests req/s p50 p99" (wrk) or
# "requests req/s mean max" (h2load).
load() { # TOOL URL
    case $1 in
    wrk)
        out=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECS}s" --latency "$2")
        if grep -qE 'Non-2xx|Socket errors' <<<"$out"; then
            grep -E 'Non-2xx|Socket errors' <<<"$out" >&2
        fi
        echo "$(awk '/requests in/ {print $1}' <<<"$out")" \
            "$(awk '/Requests\/sec/ {print $2}' <<<"$out")" \
            "p50 $(awk '$1 == "50%" {print $2}' <<<"$out")" \
            "p99 $(awk '$1 == "99%" {print $2}' <<<"$out")"
        ;;
    h2load)
        out=$(taskset -c 1 h2load -t1 -c"$CONNS" -m"$STREAMS" -D"$SECS" "$2")
        failed=$(awk '/^requests:/ {print $10}' <<<"$out")
        if [ "${failed:-0}" != 0 ]; then grep '^requests:' <<<"$out" >&2; fi
        echo "$(awk '/^requests:/ {print $8}' <<<"$out")" \
            "$(awk '/^finished in/ {print $4}' <<<"$out")" \
            "mean $(awk '/^time for request:/ {print $6}' <<<"$out")" \
            "max $(awk '/^time for request:/ {print $5}' <<<"$out")"
        ;;
    esac
}

for scenario in $SCENARIOS; do
    if ! command -v "${TOOL[$scenario]}" >/dev/null; then
        echo "skipping $scenario: ${TOOL[$scenario]} is not installed"
        SCENARIOS=${SCENARIOS//$scenario/}
    fi
done

for round in $(seq 1 "$ROUNDS"); do
    for scenario in $SCENARIOS; do
        for name in xev tokio; do
            if [ $name = xev ]; then port=${XEV_PORT[$scenario]}; else port=${TOKIO_PORT[$scenario]}; fi
            pid_var=PID_$port
            pid=${!pid_var}
            before=$(cpu_ticks "$pid")
            read -r requests rps lat1 lat1v lat2 lat2v \
                <<<"$(load "${TOOL[$scenario]}" "${SCHEME[$scenario]}://127.0.0.1:$port/")"
            after=$(cpu_ticks "$pid")
            cpu_us=$(awk -v t=$((after - before)) -v hz="$HZ" -v n="$requests" \
                'BEGIN {printf "%.2f", t / hz * 1e6 / n}')
            rps=${rps%%.*}
            echo "round $round $scenario $name: $rps req/s, $lat1 $lat1v, $lat2 $lat2v, $cpu_us us CPU/request"
            echo "$round $scenario $name $rps $cpu_us" >>"$RESULTS"
        done
    done
done

echo
echo "medians over $ROUNDS rounds ($CONNS connections, ${SECS}s each; HTTP/2: $STREAMS streams per connection)"
echo "ratio: xev / tokio of the medians; paired: median of the per-round ratios, and the rounds xev did better in"
printf '%-8s %10s %10s %6s %7s %6s | %8s %8s %6s %7s %6s\n' scenario "xev req/s" "tok req/s" ratio paired wins \
    "xev us" "tok us" ratio paired wins
for scenario in $SCENARIOS; do
    awk -v s="$scenario" '
        function median(a, n,    i, j, t) {
            for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
            return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
        }
        $2 == s && $3 == "xev" { xr[$1] = $4; xc[$1] = $5 }
        $2 == s && $3 == "tokio" { tr[$1] = $4; tc[$1] = $5 }
        END {
            n = 0
            for (r in xr) if (r in tr) {
                n++; a[n] = xr[r]; b[n] = tr[r]; c[n] = xc[r]; d[n] = tc[r]
                pr[n] = xr[r] / tr[r]; pc[n] = xc[r] / tc[r]
                wr += xr[r] > tr[r]; wc += xc[r] < tc[r]
            }
            mxr = median(a, n); mtr = median(b, n); mxc = median(c, n); mtc = median(d, n)
            printf "%-8s %10d %10d %6.2f %7.2f %3d/%-2d | %8.2f %8.2f %6.2f %7.2f %3d/%-2d\n", s,
                mxr, mtr, mxr / mtr, median(pr, n), wr, n, mxc, mtc, mxc / mtc, median(pc, n), wc, n
        }' "$RESULTS"
done
rm -f "$RESULTS"
echo "servers' messages (errors other than clients going away): $(wc -l <"$LOG") lines in $LOG"
