#!/usr/bin/env bash
# Syscalls, user-space instructions and CPU time per ping-pong round trip,
# counted on the server process alone, for xev (on each backend, in each
# echo shape), tokio current_thread and the mio floor.
#
#   benches/count.sh                          # 1, 64 and 512 connections, every row
#   PEERS="xev mio" CONNS=64 REPEAT=1 benches/count.sh
#   BACKENDS=io_uring SHAPES=queue PEERS=xev CONNS=512 benches/count.sh
#
# The xev rows: one per backend in BACKENDS and shape in SHAPES, named
# xev/BACKEND, or xev/BACKEND/queue for the queue shape (`--shape queue`:
# read, then WriteQueue::push of a copy, libxev's shape; write_all: read,
# then write_all). io_uring rows are skipped, with the reason printed, when
# `XEV_BACKEND=auto cargo run --release --example backend` does not say
# `backend: IoUring`.
#
# Each figure comes from `peers serve-PEER --conns C --rounds R` (the echo
# server on the process's main thread, the load generator in a child
# process) run twice: with R round trips per connection and with none. The
# difference divided by C x R is the cost of one round trip; start-up,
# connection setup and teardown cancel out.
#
# - counted (the server slowed down by the tool, the client not):
#   syscalls with `strace -c` WITHOUT `-f` (the server is one thread, which
#   serve mode checks; `-f` would follow the child and count the client),
#   instructions with `valgrind --tool=callgrind --trace-children=no`:
#   total Ir, and Ir outside libc.so (the syscall wrappers, about the same
#   for every peer: ~115 per round trip with glibc 2.36);
# - at full speed: `perf stat --no-inherit` on syscall tracepoints, context
#   switches and task-clock, i.e. the server's main thread only, untraced.
#   Skipped if perf or its tracepoints are unavailable;
# - CPU of every thread of the server process, io_uring's io-wq workers
#   (`iou-wrk-*`, threads of the process the kernel runs) included: the
#   process's CPU clock (CLOCK_PROCESS_CPUTIME_ID), which serve mode prints
#   at exit, from the same full-speed runs (runs of their own without perf);
# - where the server's CPU time goes, at the most connections asked for:
#   `perf record` samples split into kernel, program and libc. The kernel's
#   share is what no runtime can save.
#
# Environment: PEERS (xev tokio mio), BACKENDS (poll io_uring), SHAPES
# (write_all queue), CONNS (1 64 512), REPEAT (runs per figure, the median
# is kept; default 3), ROUNDS_1 / ROUNDS_N / ROUNDS_512 (rounds per
# connection for the counted figures at 1 / 2..511 / 512 or more
# connections; default 20000 / 1000 / 125), FAST_1 / FAST_N / FAST_512 (the
# same at full speed; default 20000 / 5000 / 625). At 512 connections the
# rounds are scaled down so that each run makes as many round trips as at
# 64 (64,000 counted, 320,000 at full speed).
set -euo pipefail
cd "$(dirname "$0")/.."

PEERS=${PEERS:-"xev tokio mio"}
BACKENDS=${BACKENDS:-"poll io_uring"}
SHAPES=${SHAPES:-"write_all queue"}
CONNS=${CONNS:-"1 64 512"}
REPEAT=${REPEAT:-3}
ROUNDS_1=${ROUNDS_1:-20000}
ROUNDS_N=${ROUNDS_N:-1000}
ROUNDS_512=${ROUNDS_512:-125}
FAST_1=${FAST_1:-20000}
FAST_N=${FAST_N:-5000}
FAST_512=${FAST_512:-625}

for tool in strace valgrind callgrind_annotate; do
    command -v "$tool" >/dev/null || { echo "count.sh needs $tool" >&2; exit 1; }
done
TRACEPOINTS=syscalls:sys_enter_recvfrom,syscalls:sys_enter_sendto,syscalls:sys_enter_epoll_wait
if perf stat -i -x, -e syscalls:sys_enter_io_uring_enter -o /dev/null true 2>/dev/null; then
    TRACEPOINTS=$TRACEPOINTS,syscalls:sys_enter_io_uring_enter
fi
have_perf=0
if perf stat -i -x, -e "raw_syscalls:sys_enter,$TRACEPOINTS" -o /dev/null true 2>/dev/null; then
    have_perf=1
fi

bin=$(cargo bench --bench peers --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*\)).*/\1/p' | tail -n 1)
[ -x "$bin" ] || { echo "count.sh: could not find the peers benchmark binary" >&2; exit 1; }
work=$(mktemp -d)
touch "$work/log"
trap 'rm -rf "$work"' EXIT
trap 'echo "count.sh: a measurement failed; what it printed:" >&2; cat "$work/log" >&2' ERR

# The rows: "LABEL PEER SHAPE" (PEER as serve-PEER takes it; SHAPE "-" for
# tokio and mio).
uring_ok=1
case " $BACKENDS " in
*" io_uring "*)
    probe=$(XEV_BACKEND=auto cargo run -q --release --example backend 2>&1) || true
    if ! grep -q '^backend: IoUring' <<<"$probe"; then
        uring_ok=0
        echo "count.sh: io_uring rows skipped: $(tr '\n' ' ' <<<"$probe" | cut -c1-300)"
    fi
    ;;
esac
: >"$work/rows"
for peer in $PEERS; do
    if [ "$peer" != xev ]; then
        echo "$peer $peer -" >>"$work/rows"
        continue
    fi
    for backend in $BACKENDS; do
        [ "$backend" != io_uring ] || [ "$uring_ok" = 1 ] || continue
        for shape in $SHAPES; do
            label="xev/$backend"
            [ "$shape" = write_all ] || label="$label/$shape"
            echo "$label xev/$backend $shape" >>"$work/rows"
        done
    done
done

# serve_args PEER SHAPE CONNS ROUNDS: the serve-PEER command line.
serve_args() {
    echo "$bin" serve-"$1" --conns "$3" --rounds "$4"
    [ "$2" = - ] || echo --shape "$2"
}

# Each counter prints "name value" lines for one run of serve PEER SHAPE CONNS ROUNDS.

strace_counter() {
    strace -c -o "$work/strace.txt" $(serve_args "$@") 2>>"$work/log"
    # "% time seconds usecs/call calls [errors] syscall"; the last line is "total".
    awk '$1 ~ /^[0-9.]+$/ && NF >= 5 {
        print $NF, $4
        if ($NF == "total") print "errors", (NF == 6 ? $5 : 0)
    }' "$work/strace.txt"
}

callgrind_counter() {
    local out="$work/callgrind.out"
    valgrind --tool=callgrind --trace-children=no --callgrind-out-file="$out" \
        $(serve_args "$@") 2>>"$work/log"
    local total libc
    total=$(sed -n 's/^summary: //p' "$out")
    libc=$(callgrind_annotate --auto=no --threshold=100 "$out" 2>/dev/null |
        awk '/PROGRAM TOTALS/ { next }
             /^ *[0-9,]+ \(/ && /libc\.so/ { gsub(",", "", $1); n += $1 }
             END { print n + 0 }')
    echo "ir $total"
    echo "ir_own $((total - libc))"
}

perf_counter() {
    perf stat -i -x, -o "$work/perf.txt" \
        -e "raw_syscalls:sys_enter,$TRACEPOINTS,context-switches,task-clock" \
        $(serve_args "$@") 2>"$work/serve.err" || { cat "$work/serve.err" >>"$work/log"; return 1; }
    cat "$work/serve.err" >>"$work/log"
    # "value,unit,event,..."; task-clock is in msec, printed here in ns.
    awk -F, '/^[0-9]/ {
        name = $3; sub(/^.*:sys_enter_?/, "", name)
        if (name == "") name = "total"
        if ($3 == "task-clock") print "cpu_ns", $1 * 1e6; else print name, $1
    }' "$work/perf.txt"
    cpu_all <"$work/serve.err"
}

# The process's CPU time, every thread's, from serve mode's last line.
cpu_all() { sed -n 's/.*cpu_all_ns=\([0-9]*\).*/cpu_all_ns \1/p'; }

# Without perf: the process's CPU time alone, from runs at full speed.
cpu_counter() {
    $(serve_args "$@") 2>"$work/serve.err" || { cat "$work/serve.err" >>"$work/log"; return 1; }
    cat "$work/serve.err" >>"$work/log"
    cpu_all <"$work/serve.err"
}

# measure COUNTER PEER SHAPE CONNS ROUNDS: "name per-round-trip" lines, the
# median over REPEAT pairs of runs (R rounds, then 0).
measure() {
    local counter=$1 peer=$2 shape=$3 conns=$4 rounds=$5
    local trips=$((conns * rounds))
    : >"$work/samples"
    for _ in $(seq "$REPEAT"); do
        "$counter" "$peer" "$shape" "$conns" "$rounds" >"$work/with"
        "$counter" "$peer" "$shape" "$conns" 0 >"$work/without"
        awk -v trips="$trips" 'FNR == NR { base[$1] = $2; next }
            { print $1, ($2 - base[$1]) / trips }' "$work/without" "$work/with" >>"$work/samples"
    done
    awk '{ v[$1] = v[$1] " " $2 }
        END { for (name in v) print name, v[name] }' "$work/samples" |
        while read -r name values; do
            echo "$name $(printf '%s\n' $values | sort -g |
                awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')"
        done
}

get() { awk -v name="$2" '$1 == name { print $2; found = 1 } END { if (!found) print 0 }' "$1"; }

rounds_for() {
    if [ "$1" -eq 1 ]; then echo "$2"; elif [ "$1" -lt 512 ]; then echo "$3"; else echo "$4"; fi
}

# The files of one row's figures: $work/LABEL.CONNS.COUNTER, "/" in LABEL as "_".
file() { echo "$work/${1//\//_}.$2.$3"; }

: >"$work/table"
for conns in $CONNS; do
    rounds=$(rounds_for "$conns" "$ROUNDS_1" "$ROUNDS_N" "$ROUNDS_512")
    fast=$(rounds_for "$conns" "$FAST_1" "$FAST_N" "$FAST_512")
    while read -r label peer shape; do
        measure strace_counter "$peer" "$shape" "$conns" "$rounds" >"$(file "$label" "$conns" strace)"
        measure callgrind_counter "$peer" "$shape" "$conns" "$rounds" >"$(file "$label" "$conns" callgrind)"
        if [ "$have_perf" = 1 ]; then
            measure perf_counter "$peer" "$shape" "$conns" "$fast" >"$(file "$label" "$conns" perf)"
        else
            measure cpu_counter "$peer" "$shape" "$conns" "$fast" >"$(file "$label" "$conns" perf)"
        fi
        echo "$conns $label" >>"$work/table"
    done <"$work/rows"
done

echo "counted: strace -c (syscalls; the server's main thread) and callgrind (instructions), per"
echo "round trip; median of $REPEAT; rounds per connection: $ROUNDS_1 at 1 connection, $ROUNDS_N"
echo "up to 511, $ROUNDS_512 at 512 and more"
printf '%-22s %5s | %8s %8s %7s %10s %9s %11s %6s %7s | %12s %9s\n' \
    row conns syscalls recvfrom sendto epoll_wait epoll_ctl uring_enter other failed \
    instructions "w/o libc"
while read -r conns label; do
    f=$(file "$label" "$conns" strace)
    total=$(get "$f" total); recv=$(get "$f" recvfrom); send=$(get "$f" sendto)
    wait=$(get "$f" epoll_wait); ctl=$(get "$f" epoll_ctl); failed=$(get "$f" errors)
    enter=$(get "$f" io_uring_enter)
    g=$(file "$label" "$conns" callgrind)
    awk -v p="$label" -v c="$conns" -v t="$total" -v r="$recv" -v s="$send" -v w="$wait" -v e="$ctl" \
        -v u="$enter" -v f="$failed" -v ir="$(get "$g" ir)" -v own="$(get "$g" ir_own)" 'BEGIN {
        other = t - r - s - w - e - u
        if (other < 0.005 && other > -0.005) other = 0
        if (f < 0.005 && f > -0.005) f = 0
        printf "%-22s %5s | %8.2f %8.2f %7.2f %10.2f %9.2f %11.2f %6.2f %7.2f | %12.0f %9.0f\n",
            p, c, t, r, s, w, e, u, other, f, ir, own }'
done <"$work/table"

echo
if [ "$have_perf" = 1 ]; then
    echo "at full speed: perf stat --no-inherit on the server's main thread (syscalls, context"
    echo "switches, CPU ns), and the CPU time of every thread of the server process (io-wq"
    echo "workers included), per round trip;"
else
    echo "at full speed (no perf here): the CPU time of every thread of the server process"
    echo "(io-wq workers included), per round trip;"
fi
echo "rounds per connection: $FAST_1 at 1 connection, $FAST_N up to 511, $FAST_512 at 512 and"
echo "more; median of $REPEAT"
printf '%-22s %5s | %8s %10s %11s %16s %11s %22s\n' row conns syscalls epoll_wait uring_enter \
    "context switches" "CPU ns" "CPU ns/rt (all threads)"
while read -r conns label; do
    f=$(file "$label" "$conns" perf)
    awk -v p="$label" -v c="$conns" -v t="$(get "$f" total)" -v w="$(get "$f" epoll_wait)" \
        -v u="$(get "$f" io_uring_enter)" -v x="$(get "$f" context-switches)" \
        -v n="$(get "$f" cpu_ns)" -v a="$(get "$f" cpu_all_ns)" -v perf="$have_perf" 'BEGIN {
        if (perf) printf "%-22s %5s | %8.3f %10.3f %11.3f %16.3f %11.0f %22.0f\n", p, c, t, w, u, x, n, a
        else printf "%-22s %5s | %8s %10s %11s %16s %11s %22.0f\n", p, c, "-", "-", "-", "-", "-", a }'
done <"$work/table"

# Where the server thread's CPU time goes, at the most connections asked
# for: sampled with `perf record` (software clock, the main thread only),
# split by where the samples landed. The kernel's share bounds what any
# runtime can save: its own code is the rest.
share_conns=${CONNS##* }
if [ "$have_perf" = 1 ] && [ "$share_conns" -gt 1 ] &&
    perf record -q -e cpu-clock -o "$work/probe.data" true 2>/dev/null; then
    share_fast=$(rounds_for "$share_conns" "$FAST_1" "$FAST_N" "$FAST_512")
    echo
    echo "where the server's CPU time goes at $share_conns connections: perf record --no-inherit"
    echo "-e cpu-clock, $share_fast rounds per connection, perf report --sort dso"
    printf '%-22s | %8s %9s %8s %8s\n' row kernel program libc other
    while read -r label peer shape; do
        data=$(file "$label" "$share_conns" data)
        perf record -q --no-inherit -e cpu-clock -F 2000 -o "$data" \
            $(serve_args "$peer" "$shape" "$share_conns" "$share_fast") >/dev/null 2>>"$work/log"
        perf report -i "$data" --sort dso --stdio 2>/dev/null |
            awk -v p="$label" -v prog="$(basename "$bin")" '
                $1 ~ /%$/ { v = $1; sub(/%/, "", v)
                    if ($2 == "[kernel.kallsyms]") k += v
                    else if ($2 == prog) g += v
                    else if ($2 ~ /^libc/) l += v
                    else o += v }
                END { printf "%-22s | %7.1f%% %8.1f%% %7.1f%% %7.1f%%\n", p, k, g, l, o }'
    done <"$work/rows"
fi

# ratio A B CONNS COUNTER NAME: A's figure over B's, "-" if either is missing.
ratio() {
    local a b
    a=$(file "$1" "$3" "$4") b=$(file "$2" "$3" "$4")
    if [ -f "$a" ] && [ -f "$b" ]; then
        awk -v a="$(get "$a" "$5")" -v b="$(get "$b" "$5")" \
            'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "-" }'
    else
        printf -- "-"
    fi
}

echo
echo "ratios, same connection count: each xev row's figure over tokio's, mio's, and (io_uring"
echo "rows) xev/poll's in the same shape; CPU: the main thread's, then every thread's"
printf '%-22s %5s | %-20s | %-20s | %-20s | %-20s | %-20s\n' "" "" syscalls instructions \
    "w/o libc" "CPU ns (thread)" "CPU ns (all threads)"
printf '%-22s %5s |' row conns
for _ in 1 2 3 4 5; do printf ' %6s %6s %6s |' tokio mio poll; done
echo
while read -r conns label; do
    case "$label" in xev/*) ;; *) continue ;; esac
    poll=-
    case "$label" in xev/io_uring*) poll="xev/poll${label#xev/io_uring}" ;; esac
    printf '%-22s %5s |' "$label" "$conns"
    for pair in "strace total" "callgrind ir" "callgrind ir_own" "perf cpu_ns" "perf cpu_all_ns"; do
        set -- $pair
        cells=""
        for other in tokio mio "$poll"; do
            if [ "$other" = - ]; then cells="$cells -"; else cells="$cells $(ratio "$label" "$other" "$conns" "$1" "$2")"; fi
        done
        set -- $cells
        printf ' %6s %6s %6s |' "$@"
    done
    echo
done <"$work/table"

echo
echo "xev $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo ' + uncommitted changes in src/')"
