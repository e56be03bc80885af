#!/usr/bin/env bash
# deadlines.sh — what the database deadlines of issue 7 cost: the same
# heartbeat load against a server with them ON (A: every default) and OFF
# (B), alternately. Prints figures only; asserts nothing.
#
#   bench/deadlines.sh [-n AGENTS] [-k CONNECTIONS] [-r SATURATION_RATE]
#                      [-d SECONDS] [-R ROUNDS] [-S]
#
# The stack is bench/heartbeat.sh's (throwaway PostgreSQL with production
# durability, Redis, one enrolled fleet). Two servers run side by side on
# the same database:
#   A  DATABASE_STATEMENT_TIMEOUT_MS, DATABASE_LOCK_TIMEOUT_MS,
#      DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS, the keepalives,
#      DATABASE_TCP_USER_TIMEOUT_MS and DATABASE_REQUEST_DEADLINE_MS at
#      their defaults;
#   B  the three timeouts and tcp_user_timeout 0 (off), the request
#      deadline at its maximum (600000 ms, with HTTP_TIMEOUT_SECONDS=601
#      above it), keepalive idle time 7200 s (libpq keepalives cannot be
#      switched off; no probe is sent during a run).
# Only the server under load does anything. Without -r a short saturation
# search against A finds the sustained rate S. Each round runs, for A and
# then for B: a saturation-ish run offered 1.3 × S (achieved throughput)
# and a fixed-rate run at 0.6 × S (latency and CPU per heartbeat), SECONDS
# each (default 8). ROUNDS (default 5) rounds: A,B,A,B,… The machine may
# be shared: the spread (min–max) is printed next to every median, and
# only a B/A ratio outside both spreads would mean something.
# -S then counts system calls per heartbeat of the server and of its
# PostgreSQL backends for A and B (strace -c at 100/s): counts do not depend
# on how busy the machine is, and a timer armed per statement would show.
set -euo pipefail

N=1000 K=16 SAT="" D=8 ROUNDS=5 SYSCALLS=0
while getopts "n:k:r:d:R:Sh" o; do
    case "$o" in
        n) N=$OPTARG ;;
        k) K=$OPTARG ;;
        r) SAT=$OPTARG ;;
        d) D=$OPTARG ;;
        R) ROUNDS=$OPTARG ;;
        S) SYSCALLS=1 ;;
        *) sed -n '2,29p' "$0" >&2; exit 2 ;;
    esac
done

# shellcheck source=bench/heartbeat_stack.sh
. "$(dirname -- "$0")/heartbeat_stack.sh"

OFF=(DATABASE_STATEMENT_TIMEOUT_MS=0 DATABASE_LOCK_TIMEOUT_MS=0
    DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS=0 DATABASE_TCP_USER_TIMEOUT_MS=0
    DATABASE_KEEPALIVE_IDLE_SECONDS=7200 DATABASE_REQUEST_DEADLINE_MS=600000
    HTTP_TIMEOUT_SECONDS=601)

stack_up
server_start
A_PID=$SERVER_PID A_URL=$URL
server_start "${OFF[@]}"
B_PID=$SERVER_PID B_URL=$URL
use() {
    if [[ $1 == A ]]; then SERVER_PID=$A_PID URL=$A_URL; else SERVER_PID=$B_PID URL=$B_URL; fi
}
use A
stack_enroll "$N" "$K"
echo "== deadlines A/B: $N agents, $K connections, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== PostgreSQL: $PG_SETTINGS"
echo "== B: ${OFF[*]}"
for m in A B; do
    use "$m"
    hb --agents "$N" --connections "$K" --rate 300 --duration 2 >/dev/null # warm-up
done
if [[ -z "$SAT" ]]; then
    echo "== saturation search against A (3 s steps)"
    use A
    search 300 3 1.25 "$N" "$K"
    SAT=$BEST
    ((SAT > 0)) || { echo "deadlines: no rate was sustained" >&2; exit 1; }
fi
HIGH=$(awk -v s="$SAT" 'BEGIN { printf "%d", s * 1.3 }')
LOW=$(awk -v s="$SAT" 'BEGIN { printf "%d", s * 0.6 }')
echo "== $ROUNDS rounds of A,B: saturation-ish run offered $HIGH/s, fixed run $LOW/s, $D s each"

declare -A V # V[mode.metric] = space-separated values, one per round
add() { V[$1]="${V[$1]:-} $2"; }
printf '%5s %4s %12s %10s %10s %10s %10s %10s %s\n' round mode sat_ach/s sat_srv_ms p50_ms p99_ms \
    srv_ms/hb pg_ms/hb "non-200 answers"
for ((r = 1; r <= ROUNDS; r++)); do
    for m in A B; do
        use "$m"
        sat=$(hb --agents "$N" --connections "$K" --rate "$HIGH" --duration "$D" --label "$m-sat")
        fix=$(hb --agents "$N" --connections "$K" --rate "$LOW" --duration "$D" --label "$m-fixed")
        add "$m.sat" "$(field achieved_rate_per_s "$sat")"
        add "$m.satsrv" "$(field cpu_server_ms_per_heartbeat "$sat")"
        add "$m.p50" "$(field latency_p50_ms "$fix")"
        add "$m.p99" "$(field latency_p99_ms "$fix")"
        add "$m.srv" "$(field cpu_server_ms_per_heartbeat "$fix")"
        add "$m.pg" "$(field cpu_postgres_ms_per_heartbeat "$fix")"
        bad=$(grep -hE '^(status_[0-9]+|transport_errors|unanswered): ' <<<"$sat"$'\n'"$fix" |
            grep -vE '^status_200:|: 0$' | tr '\n' ' ' || true)
        printf '%5s %4s %12s %10s %10s %10s %10s %10s %s\n' "$r" "$m" \
            "$(field achieved_rate_per_s "$sat")" "$(field cpu_server_ms_per_heartbeat "$sat")" \
            "$(field latency_p50_ms "$fix")" "$(field latency_p99_ms "$fix")" \
            "$(field cpu_server_ms_per_heartbeat "$fix")" "$(field cpu_postgres_ms_per_heartbeat "$fix")" \
            "${bad:-none}"
    done
done

# "median min max" of the values given.
stats() {
    printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END {
        m = NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
        printf "%.4g %.4g %.4g\n", m, a[1], a[NR] }'
}
echo "== medians over $ROUNDS rounds (min-max)"
printf '%-42s %-26s %-26s %-8s %s\n' figure "A (deadlines on)" "B (off)" "B/A" \
    "per-round B/A: median (min-max)"
for row in "sat:achieved heartbeats/s at $HIGH/s offered" \
           "satsrv:server CPU ms/heartbeat at $HIGH/s" \
           "p50:p50 latency ms at $LOW/s" "p99:p99 latency ms at $LOW/s" \
           "srv:server CPU ms/heartbeat at $LOW/s" "pg:PostgreSQL CPU ms/heartbeat at $LOW/s"; do
    key=${row%%:*} label=${row#*:}
    # shellcheck disable=SC2086
    read -r am alo ahi <<<"$(stats ${V[A.$key]})"
    # shellcheck disable=SC2086
    read -r bm blo bhi <<<"$(stats ${V[B.$key]})"
    # Paired: each round's B over the same round's A (drift cancels).
    # shellcheck disable=SC2086
    paired=$(paste -d' ' <(printf '%s\n' ${V[A.$key]}) <(printf '%s\n' ${V[B.$key]}) |
        awk '$1 > 0 { printf "%.4f\n", $2 / $1 }')
    # shellcheck disable=SC2086
    read -r pm plo phi <<<"$(stats $paired)"
    printf '%-42s %-26s %-26s %-8s %s\n' "$label" "$am ($alo-$ahi)" "$bm ($blo-$bhi)" \
        "$(awk -v a="$am" -v b="$bm" 'BEGIN { printf "%.3f", (a > 0 ? b / a : 0) }')" \
        "$pm ($plo-$phi)"
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"

# strace -c's summary in FILE as "syscall calls" lines.
strace_counts() {
    awk '/^-+/ { sep++; next } sep == 1 && NF >= 5 { print $NF, $4 }' "$1"
}

# Counts system calls of the server's threads and of every breeze_app
# backend during a 4 s run at 100/s against mode M; writes
# $DIR/sys-{srv,pg}-M as "syscall calls-per-heartbeat" lines.
count_syscalls() {
    local m=$1 p t out n sp ss args=() targs=()
    use "$m"
    for p in $(psql -qAtX "$SUPERUSER_DATABASE_URL" -c \
        "SELECT pid FROM pg_stat_activity WHERE usename = 'breeze_app'"); do
        args+=(-p "$p")
    done
    for t in /proc/"$SERVER_PID"/task/*; do targs+=(-p "${t##*/}"); done
    strace -c -f -o "$DIR/strace-pg-$m" "${args[@]}" 2>/dev/null &
    sp=$!
    strace -c -f -o "$DIR/strace-srv-$m" "${targs[@]}" 2>/dev/null &
    ss=$!
    sleep 1
    out=$(hb --agents "$N" --connections "$K" --rate 100 --duration 4)
    kill -INT "$sp" "$ss"
    wait "$sp" "$ss" 2>/dev/null || true
    n=$(field status_200 "$out")
    strace_counts "$DIR/strace-pg-$m" | awk -v n="$n" '{ printf "%s %.3f\n", $1, $2 / n }' >"$DIR/sys-pg-$m"
    strace_counts "$DIR/strace-srv-$m" | awk -v n="$n" '{ printf "%s %.3f\n", $1, $2 / n }' >"$DIR/sys-srv-$m"
}

if ((SYSCALLS)); then
    command -v strace >/dev/null || { echo "deadlines: -S needs strace" >&2; exit 1; }
    echo "== system calls per heartbeat (strace -c, 100/s for 4 s; strace slows everything: only the counts mean something)"
    count_syscalls A
    count_syscalls B
    for who in srv pg; do
        [[ $who == srv ]] && echo "-- breeze-server (all threads)" || echo "-- PostgreSQL backends of breeze_app"
        printf '%-20s %8s %8s\n' syscall A B
        join -a1 -a2 -e 0 -o 0,1.2,2.2 <(sort "$DIR/sys-$who-A") <(sort "$DIR/sys-$who-B") |
            sort -k2,2gr | awk '{ printf "%-20s %8s %8s\n", $1, $2, $3; a += $2; b += $3 }
                END { printf "%-20s %8.3f %8.3f\n", "total", a, b }'
    done
fi
