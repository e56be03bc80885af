#!/usr/bin/env bash
# deadlines.sh — what the database deadlines of issue 7 cost: the same
# heartbeat load against a server with them ON (A: every default) and OFF
# (B), alternately. Prints figures only; asserts nothing.
#
#   bench/deadlines.sh [-n AGENTS] [-k CONNECTIONS] [-r SATURATION_RATE]
#                      [-d SECONDS] [-R ROUNDS]
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
set -euo pipefail

N=1000 K=16 SAT="" D=8 ROUNDS=5
while getopts "n:k:r:d:R:h" o; do
    case "$o" in
        n) N=$OPTARG ;;
        k) K=$OPTARG ;;
        r) SAT=$OPTARG ;;
        d) D=$OPTARG ;;
        R) ROUNDS=$OPTARG ;;
        *) sed -n '2,27p' "$0" >&2; exit 2 ;;
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
printf '%-42s %-26s %-26s %s\n' figure "A (deadlines on)" "B (off)" "B/A of medians"
for row in "sat:achieved heartbeats/s at $HIGH/s offered" \
           "satsrv:server CPU ms/heartbeat at $HIGH/s" \
           "p50:p50 latency ms at $LOW/s" "p99:p99 latency ms at $LOW/s" \
           "srv:server CPU ms/heartbeat at $LOW/s" "pg:PostgreSQL CPU ms/heartbeat at $LOW/s"; do
    key=${row%%:*} label=${row#*:}
    # shellcheck disable=SC2086
    read -r am alo ahi <<<"$(stats ${V[A.$key]})"
    # shellcheck disable=SC2086
    read -r bm blo bhi <<<"$(stats ${V[B.$key]})"
    printf '%-42s %-26s %-26s %s\n' "$label" "$am ($alo-$ahi)" "$bm ($blo-$bhi)" \
        "$(awk -v a="$am" -v b="$bm" 'BEGIN { printf "%.3f", (a > 0 ? b / a : 0) }')"
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
