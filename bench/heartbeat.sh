#!/usr/bin/env bash
# heartbeat.sh — the heartbeat benchmark (issue 13 §1). Prints figures only;
# asserts nothing.
#
#   bench/heartbeat.sh [-n AGENTS] [-k CONNECTIONS] [-r RATE] [-d SECONDS]
#                      [-s STEP_SECONDS] [-0 FIRST_RATE] [-e VAR=value]…
#
# Starts a throwaway PostgreSQL + Redis (scripts/dev-services) in a
# temporary directory with production durability (fsync, synchronous_commit
# and full_page_writes on; pg_stat_statements preloaded), migrates and
# bootstraps it, starts breeze-server (BREEZE_ENV=test, every other setting
# at its default), creates an enrolment key through the API and enrols
# AGENTS agents (build/bench_heartbeat --enroll), then runs
#   (a) a saturation search: constant rates from FIRST_RATE up, ×1.5 per
#       step of STEP_SECONDS, until the achieved rate is below 95 % of the
#       offered one or p99 is above 100 ms;
#   (b) a fixed-rate run of SECONDS at RATE (default: 70 % of the highest
#       rate the search sustained), with every figure bench_heartbeat prints.
# Defaults: 1000 agents, 16 connections, 5 s steps from 250/s, a 20 s run:
# about 1–2 minutes. -e adds a server setting (e.g. -e
# HEARTBEAT_GROUP_COMMIT=false). Uses $BREEZE_BUILD_DIR (default build). Everything is
# removed at the end.
#
#   bench/heartbeat.sh -E 10000,1000000 [-n ACTIVE] [-O ORGS] [-k …] [-r …] …
#
# The enrolled-devices mode ("throughput within 20 % of the 10,000-device
# figure"): for each total in the list (ascending), the
# database is filled up to that many enrolled devices with the bulk fast
# path (bench/bulk_enroll.c: the rows API enrolment writes, audit chain
# included; see docs/performance.md for its speed), vacuumed, analyzed and
# checkpointed, and the same (a)+(b) runs are made with ACTIVE agents
# (default 10,000) drawn at random among all enrolled. The fixed rate of (b) is the same for every
# total (-r, or 70 % of what the first total sustained), so the figures
# compare. The devices are spread over ORGS organizations (default 500,
# created through the API): every limit stays at its default, and one
# organization may send 600 agent requests a minute, so a fleet in one
# organization would measure the limiter's 429s. Prints one summary line
# per total at the end.
set -euo pipefail

N=1000 K=16 RATE="" DURATION=20 STEP=5 FIRST=250 ENROLLED="" N_SET="" ORGS=500 SERVER_ENV=()
while getopts "n:k:r:d:s:0:E:O:e:h" o; do
    case "$o" in
        E) ENROLLED=$OPTARG ;;
        O) ORGS=$OPTARG ;;
        n) N=$OPTARG N_SET=1 ;;
        k) K=$OPTARG ;;
        r) RATE=$OPTARG ;;
        d) DURATION=$OPTARG ;;
        s) STEP=$OPTARG ;;
        0) FIRST=$OPTARG ;;
        e) SERVER_ENV+=("$OPTARG") ;;
        *) sed -n '2,38p' "$0" >&2; exit 2 ;;
    esac
done

# shellcheck source=bench/heartbeat_stack.sh
. "$(dirname -- "$0")/heartbeat_stack.sh"

stack_up
server_start "${SERVER_ENV[@]}"
if [[ -n "$ENROLLED" ]]; then
    [[ -n "$N_SET" ]] || N=10000
    echo "== $ORGS organizations (through the API)"
    stack_orgs "$ORGS"
    enrolled=0 files=() summary=()
    for total in ${ENROLLED//,/ }; do
        ((total >= enrolled && total >= N)) || { echo "bench: -E totals ascend, each >= -n" >&2; exit 2; }
        if ((total > enrolled)); then
            files+=("$DIR/bulk.$total")
            echo "== bulk enrolment: $((total - enrolled)) more devices (to $total)"
            stack_bulk_enroll "$((total - enrolled))" "$DIR/bulk.$total"
            enrolled=$total
        fi
        # ACTIVE agents drawn at random among every enrolled device.
        cat "${files[@]}" | shuf -n "$N" >"$DIR/active"
        chmod 600 "$DIR/active"
        export AGENTS_FILE=$DIR/active
        echo "== $total enrolled devices, $N active, $K connections, $(nproc) cores;" \
            "PostgreSQL: $PG_SETTINGS"
        hb --agents "$N" --connections "$K" --rate "$FIRST" --duration 2 >/dev/null
        search "$FIRST" "$STEP" 1.5 "$N" "$K"
        [[ -n "$RATE" ]] || RATE=$(awk -v b="$BEST" -v f="$FIRST" 'BEGIN { r = int(b * 0.7); print (r > 0 ? r : f) }')
        out=$(hb --agents "$N" --connections "$K" --rate "$RATE" --duration "$DURATION" --label "enrolled-$total")
        echo "$out"
        summary+=("$(printf '%10s %10s %10s %10s %9s %9s %10s %10s' "$total" "$BEST" "$RATE" \
            "$(field achieved_rate_per_s "$out")" "$(field latency_p99_ms "$out")" \
            "$(field latency_p999_ms "$out")" "$(field cpu_server_ms_per_heartbeat "$out")" \
            "$(field cpu_postgres_ms_per_heartbeat "$out")")")
    done
    echo "== summary: saturation (a) and the fixed-rate run (b) per enrolled total"
    printf '%10s %10s %10s %10s %9s %9s %10s %10s\n' enrolled best/s fixed/s achieved/s \
        p99_ms p999_ms srv_ms/hb pg_ms/hb
    printf '%s\n' "${summary[@]}"
    exit 0
fi
stack_enroll "$N" "$K"
echo "== heartbeats: $N agents, $K connections, $(nproc) cores, generator, server, PostgreSQL and Redis on one machine"
echo "== PostgreSQL: $PG_SETTINGS"

echo "== (a) saturation search ($STEP s per step; stop when achieved < 95 % of offered or p99 > 100 ms)"
# A short warm-up: pool connections opened, caches filled.
hb --agents "$N" --connections "$K" --rate "$FIRST" --duration 2 >/dev/null
search "$FIRST" "$STEP" 1.5 "$N" "$K"
best=$BEST

[[ -n "$RATE" ]] || RATE=$(awk -v b="$best" -v f="$FIRST" 'BEGIN { r = int(b * 0.7); print (r > 0 ? r : f) }')
echo "== (b) fixed rate: $RATE/s for $DURATION s"
hb --agents "$N" --connections "$K" --rate "$RATE" --duration "$DURATION" --label fixed
