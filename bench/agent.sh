#!/usr/bin/env bash
# agent.sh — breeze-agent's footprint (issue 13 §4: RSS < 5 MiB, < 1 ms CPU
# per heartbeat). Prints figures only; asserts nothing.
#
#   bench/agent.sh [-n HEARTBEATS] [-p]   (default 12: about a minute)
#
# Starts the throwaway stack of bench/heartbeat.sh (bench/heartbeat_stack.sh)
# and a breeze-server with the shortest heartbeat interval it allows
# (HEARTBEAT_INTERVAL_SECONDS=5, BREEZE_ENV=test), enrols the real agent
# (build/breeze-agent enroll, key created through the API) and runs
# `breeze-agent run` until the server has answered HEARTBEATS more
# heartbeats with 200 after the first (counted in the server's request log).
# Then prints, for the agent process:
#   - peak RSS (VmHWM) and RSS at the end (VmRSS), from /proc/PID/status;
#   - CPU per heartbeat: the CPU time its threads used from the first
#     accepted heartbeat to the last, divided by the heartbeats between
#     (nanoseconds from /proc/PID/task/*/schedstat, so a heartbeat's
#     fraction of a millisecond is not lost to the 10 ms tick of
#     /proc/PID/stat), and the start-up CPU before the first heartbeat;
#   - the whole run's user and system CPU from /proc/PID/stat;
#   - RssAnon and RssFile (the part of RSS that is mapped files: shared
#     libraries) and how many shared libraries are mapped, with the RSS of
#     the eight largest mapped files (/proc/PID/smaps), PSS (shared pages
#     divided among the processes mapping them) and USS (private pages
#     only) from /proc/PID/smaps_rollup;
#   - with -p, where the CPU goes: `perf record --call-graph dwarf` of the
#     agent over the measured heartbeats, its share by library and by the
#     agent's own functions with their callees (perf from Debian).
# Uses $BREEZE_BUILD_DIR (default build). Everything is removed at the end.
set -euo pipefail

HB=12 PERF=""
while getopts "n:ph" o; do
    case "$o" in
        n) HB=$OPTARG ;;
        p) PERF=1 ;;
        *) sed -n '2,28p' "$0" >&2; exit 2 ;;
    esac
done

# shellcheck source=bench/heartbeat_stack.sh
. "$(dirname -- "$0")/heartbeat_stack.sh"
AGENT=$BUILD/breeze-agent
[[ -x "$AGENT" ]] || { echo "bench: $AGENT not built (make build)" >&2; exit 1; }
INTERVAL=5

stack_up
server_start HEARTBEAT_INTERVAL_SECONDS=$INTERVAL
token=$(admin_token)
key=$(jq -n --arg s "$SITE_ID" '{siteId: $s, name: "agent footprint", maxUsage: 1, ttlMinutes: 30}' |
    curl -fsS -H 'Content-Type: application/json' -H "Authorization: Bearer $token" \
        --data-binary @- "$URL/api/v1/enrollment-keys" | jq -r .key)
BREEZE_ENROLLMENT_KEY=$key BREEZE_ENROLLMENT_SECRET=$AGENT_ENROLLMENT_SECRET \
    "$AGENT" enroll --server "$URL" --config-dir "$DIR/agent" >/dev/null 2>"$DIR/enroll.log"

"$AGENT" run --config-dir "$DIR/agent" 2>"$DIR/agent.log" &
APID=$!
ALL_SERVER_PIDS+=("$APID") # stopped with the stack

# Heartbeats the server answered with 200 (its request log).
accepted() {
    grep -c '"route":"/api/v1/agents/:agentId/heartbeat".*"status":200' "$DIR/server.log" || true
}

# CPU nanoseconds of the agent's live threads.
cpu_ns() {
    cat /proc/"$APID"/task/*/schedstat | awk '{ s += $1 } END { printf "%d", s }'
}

# Waits until at least N heartbeats were accepted (the agent must live).
wait_for() {
    local n=$1 deadline=$((SECONDS + $1 * INTERVAL * 2 + 30))
    while (($(accepted) < n)); do
        kill -0 "$APID" 2>/dev/null || { echo "bench: the agent exited:" >&2; tail -5 "$DIR/agent.log" >&2; exit 1; }
        ((SECONDS < deadline)) || { echo "bench: too few heartbeats accepted" >&2; tail -3 "$DIR/agent.log" >&2; exit 1; }
        sleep 0.05
    done
}

wait_for 1
n0=$(accepted) c0=$(cpu_ns)
echo "== breeze-agent: $HB heartbeats at ${INTERVAL} s after the first ($(nproc) cores, shared)"
if [[ -n "$PERF" ]]; then
    perf record -q -F 20000 --call-graph dwarf -p "$APID" -o "$DIR/perf.data" 2>/dev/null &
    PERF_PID=$!
fi
wait_for $((n0 + HB))
n1=$(accepted) c1=$(cpu_ns)
if [[ -n "$PERF" ]]; then
    kill -INT "$PERF_PID"
    wait "$PERF_PID" || true
fi
status=$(cat /proc/"$APID"/status)
rollup=$(cat /proc/"$APID"/smaps_rollup)
read -r ut st < <(awk '{ print $14, $15 }' /proc/"$APID"/stat)
tck=$(getconf CLK_TCK)
maps=$(awk '/\.so/ { print $6 }' /proc/"$APID"/maps | sort -u | wc -l)
# RSS per mapped file (and [heap], [stack], anonymous), largest first.
by_file=$(awk '/^[0-9a-f]+-[0-9a-f]+ / { f = NF >= 6 ? $6 : "[anon]"; sub(".*/", "", f) }
    /^Rss:/ { rss[f] += $2 } END { for (f in rss) if (rss[f] > 0) print rss[f], f }' \
    /proc/"$APID"/smaps | sort -rn | head -8)
kill -TERM "$APID"
wait "$APID" || true

kib() { sed -n "s/^$1:[[:space:]]*\([0-9]*\) kB/\1/p" <<<"$status"$'\n'"$rollup" | head -1; }
awk -v n=$((n1 - n0)) -v c0="$c0" -v c1="$c1" -v hwm="$(kib VmHWM)" -v rss="$(kib VmRSS)" \
    -v anon="$(kib RssAnon)" -v file="$(kib RssFile)" -v libs="$maps" -v pss="$(kib Pss)" \
    -v uss=$(($(kib Private_Clean) + $(kib Private_Dirty))) \
    -v ut="$ut" -v st="$st" -v tck="$tck" -v ver="$("$AGENT" version 2>/dev/null | head -1)" 'BEGIN {
    printf "agent_version: %s\n", ver
    printf "heartbeats_measured: %d\n", n
    printf "cpu_ms_per_heartbeat: %.3f\n", (c1 - c0) / 1e6 / n
    printf "cpu_startup_ms: %.1f\n", c0 / 1e6
    printf "cpu_user_s: %.2f\ncpu_system_s: %.2f\n", ut / tck, st / tck
    printf "rss_peak_kib: %d\nrss_kib: %d\n", hwm, rss
    printf "rss_peak_mib: %.2f\n", hwm / 1024
    printf "rss_anon_kib: %d\nrss_file_kib: %d\nshared_libraries: %d\n", anon, file, libs
    printf "pss_kib: %d\nuss_kib: %d\n", pss, uss
}'
echo "rss_by_file_kib:"
while read -r line; do echo "    $line"; done <<<"$by_file"
if [[ -n "$PERF" ]]; then
    # || true: head closing the pipe early is not a failure.
    echo "== perf: share of the agent's CPU by library (measured heartbeats)"
    perf report -i "$DIR/perf.data" --stdio --no-children --sort dso 2>/dev/null |
        grep -E '^ +[0-9.]+%' | head -12 || true
    echo "== perf: share by the agent's own functions, callees included"
    perf report -i "$DIR/perf.data" --stdio --children --sort symbol -g none 2>/dev/null |
        grep -E '^ +[0-9.]+% .*(agent_|heartbeat|main)' | head -20 || true
fi
