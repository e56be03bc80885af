#!/usr/bin/env bash
# heartbeat_rss.sh — breeze-server's memory over a long run with many active
# agents. Prints figures only; asserts nothing.
#
#   bench/heartbeat_rss.sh [-n AGENTS] [-r RATE] [-d SECONDS] [-i SAMPLE_S]
#                          [-k CONNECTIONS] [-O ORGS] [-p PERF_SECONDS]
#
# The throwaway stack of bench/heartbeat.sh (production durability, every
# limit at its default), ORGS organizations (default 200), AGENTS agents
# (default 100,000) enrolled through the bulk fast path and spread over
# them, then one constant-rate run of RATE heartbeats/s (default 1,000: each
# agent beats every AGENTS/RATE seconds, within its own limits) for SECONDS
# (default 600) over CONNECTIONS connections (default 64). breeze-server's
# RSS (VmRSS, /proc) is printed every SAMPLE_S seconds (default 30), then
# its first, last, lowest and highest value after the first minute and the
# spread around their mean. With -p, `perf record` samples the server for
# PERF_SECONDS in the middle of the run and the top of `perf report` is
# printed (where its CPU goes). Uses $BREEZE_BUILD_DIR (default build).
set -euo pipefail

N=100000 RATE=1000 DURATION=600 EVERY=30 K=64 ORGS=200 PERF=0
while getopts "n:r:d:i:k:O:p:h" o; do
    case "$o" in
        n) N=$OPTARG ;;
        r) RATE=$OPTARG ;;
        d) DURATION=$OPTARG ;;
        i) EVERY=$OPTARG ;;
        k) K=$OPTARG ;;
        O) ORGS=$OPTARG ;;
        p) PERF=$OPTARG ;;
        *) sed -n '2,18p' "$0" >&2; exit 2 ;;
    esac
done

# shellcheck source=bench/heartbeat_stack.sh
. "$(dirname -- "$0")/heartbeat_stack.sh"

stack_up
server_start
echo "== $ORGS organizations (through the API)"
stack_orgs "$ORGS"
echo "== bulk enrolment of $N agents"
stack_bulk_enroll "$N" "$DIR/agents"

rss_kib() {
    sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$SERVER_PID/status"
}

echo "== $N active agents, $RATE/s for $DURATION s over $K connections; RSS every $EVERY s"
hb --agents "$N" --connections "$K" --rate "$RATE" --duration "$DURATION" --label rss \
    >"$DIR/hb.out" 2>&1 &
gen=$!
: >"$DIR/rss"
start=$SECONDS perf_done=0
while kill -0 "$gen" 2>/dev/null; do
    t=$((SECONDS - start))
    r=$(rss_kib)
    echo "$t $r" >>"$DIR/rss"
    printf '%6s s  RSS %8s KiB\n' "$t" "$r"
    if ((PERF > 0 && !perf_done && t >= DURATION / 2)); then
        perf record -q -g -o "$DIR/perf.data" -p "$SERVER_PID" -- sleep "$PERF" >/dev/null 2>&1 || true
        perf_done=1
        continue
    fi
    sleep "$EVERY"
done
wait "$gen" || true
cat "$DIR/hb.out"
echo "== RSS after the first minute (KiB)"
awk '$1 >= 60 { n++; v[n] = $2; s += $2; if (min == "" || $2 < min) min = $2; if ($2 > max) max = $2 }
     END { if (n == 0) { print "no samples"; exit }
           m = s / n
           printf "first %d  last %d  min %d  max %d  mean %.0f  spread -%.1f %% / +%.1f %%\n",
               v[1], v[n], min, max, m, 100 * (m - min) / m, 100 * (max - m) / m }' "$DIR/rss"
if ((PERF > 0)) && [[ -s "$DIR/perf.data" ]]; then
    echo "== where breeze-server's CPU goes (perf, $PERF s, self time)"
    perf report -q -i "$DIR/perf.data" --no-children --sort dso,sym --percent-limit 1.5 \
        2>/dev/null | head -40
    echo "== by library"
    perf report -q -i "$DIR/perf.data" --no-children --sort dso 2>/dev/null | head -15
fi
