#!/usr/bin/env bash
# Syscalls and user-space instructions per ping-pong round trip, counted on
# the server process alone, for xev, tokio current_thread and the mio floor.
#
#   benches/count.sh                 # 1 and 64 connections, all three peers
#   PEERS="xev" CONNS="64" benches/count.sh
#
# Each measurement runs `peers serve-PEER --conns C --rounds R` (the echo
# server on this process's main thread, the load generator in a child
# process) twice: with R round trips per connection and with none. The
# difference, divided by C x R, is the cost of a round trip; connection
# setup, runtime start-up and teardown cancel out.
#
# - syscalls: `strace -c` without `-f`: the server is one thread (the serve
#   mode checks it), and `-f` would follow the child, i.e. count the client;
# - instructions: `valgrind --tool=callgrind --trace-children=no`, total Ir
#   (user space only; valgrind cannot see the kernel), and the same without
#   the instructions spent inside libc (the syscall wrappers, about the same
#   for every peer: ~115 per round trip with glibc 2.36).
#
# Environment: PEERS, CONNS, ROUNDS_1 (rounds at 1 connection, default
# 20000), ROUNDS_N (rounds per connection above 1, default 1000), REPEAT
# (runs per measurement, the median is kept; default 3).
set -euo pipefail
cd "$(dirname "$0")/.."

PEERS=${PEERS:-"xev tokio mio"}
CONNS=${CONNS:-"1 64"}
ROUNDS_1=${ROUNDS_1:-20000}
ROUNDS_N=${ROUNDS_N:-1000}
REPEAT=${REPEAT:-3}

for tool in strace valgrind callgrind_annotate; do
    command -v "$tool" >/dev/null || { echo "count.sh needs $tool" >&2; exit 1; }
done

bin=$(cargo bench --bench peers --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*\)).*/\1/p' | tail -n 1)
[ -x "$bin" ] || { echo "count.sh: could not find the peers benchmark binary" >&2; exit 1; }
work=$(mktemp -d)
touch "$work/log"
trap 'rm -rf "$work"' EXIT
trap 'echo "count.sh: a measurement failed; what it printed:" >&2; cat "$work/log" >&2' ERR

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# strace_counts PEER CONNS ROUNDS: "syscall calls errors" lines, plus "total".
strace_counts() {
    local out="$work/strace.txt"
    strace -c -o "$out" "$bin" serve-"$1" --conns "$2" --rounds "$3" 2>>"$work/log"
    awk '$1 ~ /^[0-9.]+$/ && NF >= 5 { print $NF, $4, (NF == 6 ? $5 : 0) }' "$out"
}

# instructions PEER CONNS ROUNDS: "total_Ir libc_Ir" of the server process.
instructions() {
    local out="$work/callgrind.out"
    valgrind --tool=callgrind --trace-children=no --callgrind-out-file="$out" \
        "$bin" serve-"$1" --conns "$2" --rounds "$3" 2>>"$work/log"
    local total libc
    total=$(sed -n 's/^summary: //p' "$out")
    libc=$(callgrind_annotate --auto=no --threshold=100 "$out" 2>/dev/null |
        awk '/PROGRAM TOTALS/ { next } /^ *[0-9,]+ \(/ && /libc\.so/ { gsub(",", "", $1); n += $1 } END { print n + 0 }')
    echo "$total $libc"
}

# per_trip FILE_WITH FILE_WITHOUT TRIPS NAME: (calls - baseline calls) / trips.
per_trip() {
    awk -v trips="$3" -v name="$4" -v field="${5:-2}" '
        FNR == NR { if ($1 == name) base = $field; next }
        $1 == name { n = $field }
        END { printf "%.2f", (n - base) / trips }' "$2" "$1"
}

printf '%-6s %5s %7s | %9s %8s %7s %10s %9s %6s %8s | %15s %9s\n' \
    peer conns trips syscalls/rt recvfrom sendto epoll_wait epoll_ctl other "EAGAIN" \
    "instructions/rt" "w/o libc"
for conns in $CONNS; do
    rounds=$ROUNDS_N
    [ "$conns" -eq 1 ] && rounds=$ROUNDS_1
    trips=$((conns * rounds))
    for peer in $PEERS; do
        : >"$work/sys.all"
        : >"$work/ir.all"
        for run in $(seq "$REPEAT"); do
            strace_counts "$peer" "$conns" "$rounds" >"$work/sys.with"
            strace_counts "$peer" "$conns" 0 >"$work/sys.without"
            row=""
            for name in total recvfrom sendto epoll_wait epoll_ctl; do
                row="$row $(per_trip "$work/sys.with" "$work/sys.without" "$trips" "$name")"
            done
            errors=$(per_trip "$work/sys.with" "$work/sys.without" "$trips" total 3)
            echo "$row $errors" >>"$work/sys.all"
            read -r with with_libc < <(instructions "$peer" "$conns" "$rounds")
            read -r without without_libc < <(instructions "$peer" "$conns" 0)
            awk -v a="$with" -v b="$without" -v la="$with_libc" -v lb="$without_libc" -v t="$trips" \
                'BEGIN { printf "%.0f %.0f\n", (a - b) / t, ((a - la) - (b - lb)) / t }' >>"$work/ir.all"
        done
        col() { awk -v c="$1" '{ print $c }' "$work/sys.all" | median; }
        total=$(col 1); recv=$(col 2); send=$(col 3); wait=$(col 4); ctl=$(col 5); errs=$(col 6)
        other=$(awk -v t="$total" -v a="$recv" -v b="$send" -v c="$wait" -v d="$ctl" 'BEGIN { printf "%.2f", t - a - b - c - d }')
        ir=$(awk '{ print $1 }' "$work/ir.all" | median)
        ir_own=$(awk '{ print $2 }' "$work/ir.all" | median)
        ir_range=$(awk 'NR == 1 { lo = hi = $1 } { lo = ($1 < lo) ? $1 : lo; hi = ($1 > hi) ? $1 : hi }
            END { printf "%d-%d", lo, hi }' "$work/ir.all")
        printf '%-6s %5s %7s | %11.2f %8.2f %7.2f %10.2f %9.2f %6.2f %8.2f | %5.0f %-9s %9.0f\n' \
            "$peer" "$conns" "$trips" "$total" "$recv" "$send" "$wait" "$ctl" "$other" "$errs" \
            "$ir" "($ir_range)" "$ir_own"
        echo "$conns $peer $total $ir $ir_own" >>"$work/table"
    done
done

echo
echo "ratios (per round trip, same connection count):"
awk '
    { sys[$1, $2] = $3; ir[$1, $2] = $4; own[$1, $2] = $5; if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 } }
    function r(a, b) { return (b > 0) ? sprintf("%.2f", a / b) : "-" }
    END {
        printf "%5s | %-17s | %-17s | %-17s\n", "", "syscalls/rt", "instructions/rt", "w/o libc"
        printf "%5s | %9s %7s | %9s %7s | %9s %7s\n", "conns", "xev/tokio", "xev/mio", "xev/tokio", "xev/mio", "xev/tokio", "xev/mio"
        for (i = 1; i <= n; i++) {
            c = order[i]
            printf "%5s | %9s %7s | %9s %7s | %9s %7s\n", c,
                r(sys[c, "xev"], sys[c, "tokio"]), r(sys[c, "xev"], sys[c, "mio"]),
                r(ir[c, "xev"], ir[c, "tokio"]), r(ir[c, "xev"], ir[c, "mio"]),
                r(own[c, "xev"], own[c, "tokio"]), r(own[c, "xev"], own[c, "mio"])
        }
    }' "$work/table"
echo
echo "median of $REPEAT run(s), the range of instructions/rt in brackets; EAGAIN: failed syscalls"
echo "per round trip (a read that found nothing); w/o libc: instructions outside libc.so"
echo "(xev $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo ' + uncommitted changes in src/'))"
