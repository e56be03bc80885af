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
set -euo pipefail

N=1000 K=16 RATE="" DURATION=20 STEP=5 FIRST=250 SERVER_ENV=()
while getopts "n:k:r:d:s:0:e:h" o; do
    case "$o" in
        n) N=$OPTARG ;;
        k) K=$OPTARG ;;
        r) RATE=$OPTARG ;;
        d) DURATION=$OPTARG ;;
        s) STEP=$OPTARG ;;
        0) FIRST=$OPTARG ;;
        e) SERVER_ENV+=("$OPTARG") ;;
        *) sed -n '2,23p' "$0" >&2; exit 2 ;;
    esac
done

# shellcheck source=bench/heartbeat_stack.sh
. "$(dirname -- "$0")/heartbeat_stack.sh"

stack_up
server_start "${SERVER_ENV[@]}"
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
