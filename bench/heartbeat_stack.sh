# shellcheck shell=bash
# heartbeat_stack.sh — the throwaway stack of bench/heartbeat.sh and
# bench/deadlines.sh (sourced by them; not run on its own).
#
#   stack_up           PostgreSQL + Redis (scripts/dev-services) in a temp dir,
#                      with production durability, migrated and bootstrapped
#   server_start ENV…  breeze-server with extra VAR=value settings
#   stack_enroll N K   an enrolment key (through the API) and N agents
#   hb ARGS…           bench_heartbeat against the running server
#   stack_down         everything stopped and removed (the EXIT trap)
#
# Production durability: dev-services clusters run with fsync, synchronous
# commit and full-page writes off; this one gets them back on through
# ALTER SYSTEM (postgresql.auto.conf of this cluster only), plus
# pg_stat_statements preloaded, and is restarted.

REPO=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
BUILD=${BREEZE_BUILD_DIR:-build}
[[ "$BUILD" = /* ]] || BUILD=$REPO/$BUILD
BIN=$BUILD/breeze-server
GEN=$BUILD/bench_heartbeat
for b in "$BIN" "$GEN"; do
    [[ -x "$b" ]] || { echo "bench: $b not built (make build)" >&2; exit 1; }
done

DIR=""
SERVER_PID=""
ALL_SERVER_PIDS=()

stack_down() {
    local p
    for p in "${ALL_SERVER_PIDS[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    if [[ -n "$DIR" ]]; then
        "$REPO/scripts/dev-services" stop "$DIR/svc" >/dev/null 2>&1 || true
        rm -rf -- "$DIR"
    fi
}

free_port() {
    /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

stack_up() {
    # Under /tmp (a disk here, not tmpfs: fsync is real). Short path: the
    # socket path must fit in sun_path.
    DIR=$(mktemp -d /tmp/breeze-bench-hb.XXXXXX)
    chmod 711 "$DIR"
    trap stack_down EXIT
    local svc=$DIR/svc
    "$REPO/scripts/dev-services" start "$svc" >/dev/null
    ENV_FILE=$svc/breeze.env
    set -a
    # shellcheck disable=SC1090
    . "$ENV_FILE"
    set +a
    psql -qX "$SUPERUSER_DATABASE_URL" -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
ALTER SYSTEM SET fsync = on;
ALTER SYSTEM SET synchronous_commit = on;
ALTER SYSTEM SET full_page_writes = on;
ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements';
SQL
    "$REPO/scripts/dev-services" stop "$svc" >/dev/null
    "$REPO/scripts/dev-services" start "$svc" >/dev/null
    PG_PID=$(head -1 "$svc/pg/data/postmaster.pid")
    REDIS_PID=$(cat "$svc/redis/redis.pid")
    PG_SETTINGS=$(psql -qAtX "$SUPERUSER_DATABASE_URL" -c \
        "SELECT string_agg(name || '=' || setting, ' ' ORDER BY name) FROM pg_settings
          WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes', 'shared_preload_libraries')")
    case "$PG_SETTINGS" in
        *fsync=on*full_page_writes=on*synchronous_commit=on*) ;;
        *) echo "bench: durability settings not applied: $PG_SETTINGS" >&2; exit 1 ;;
    esac
    "$BIN" migrate --env-file "$ENV_FILE" >/dev/null 2>&1
    ADMIN_PASSWORD=$(openssl rand -hex 16)
    IDS=$(printf '%s\n' "$ADMIN_PASSWORD" | "$BIN" bootstrap --env-file "$ENV_FILE" \
        --password-stdin --email admin@bench.test --name Bench --partner "Bench Partner" \
        --org "Bench Org" --site "Bench Site" 2>/dev/null | tail -1)
    SITE_ID=$(jq -r .siteId <<<"$IDS")
    # The throwaway admin only creates the enrolment key: forced MFA
    # enrolment (on for the built-in admin roles) is switched off for this
    # benchmark cluster, which is removed at the end.
    psql -qX "${SUPERUSER_DATABASE_URL%/postgres}/breeze" -v ON_ERROR_STOP=1 \
        -c "UPDATE roles SET force_mfa = false WHERE builtin" >/dev/null
    # The generator's PostgreSQL counters: the superuser of this cluster.
    export BENCH_STATS_DATABASE_URL=$SUPERUSER_DATABASE_URL
}

# Starts breeze-server (BREEZE_ENV=test, defaults for everything else) with
# the extra VAR=value arguments; waits for /readyz. Sets SERVER_PID and URL
# (the ones hb uses); several servers may run at once.
server_start() {
    PORT=$(free_port)
    URL=http://127.0.0.1:$PORT
    local root=()
    [[ "$(id -u)" -ne 0 ]] || root=(--allow-root)
    env BREEZE_ENV=test LISTEN_ADDR="127.0.0.1:$PORT" "$@" \
        "$BIN" serve --env-file "$ENV_FILE" "${root[@]}" 2>>"$DIR/server.log" &
    SERVER_PID=$!
    ALL_SERVER_PIDS+=("$SERVER_PID")
    local i
    for ((i = 0; i < 100; i++)); do
        curl -fs "$URL/readyz" >/dev/null 2>&1 && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "bench: breeze-server did not come up; log:" >&2
    tail -n 20 "$DIR/server.log" >&2
    exit 1
}

# An enrolment key for N agents (through the API, as an administrator) and
# the enrolment of N agents into $DIR/agents (tokens; mode 0600).
stack_enroll() {
    local n=$1 k=$2 token key
    token=$(jq -n --arg e admin@bench.test --arg p "$ADMIN_PASSWORD" '{email: $e, password: $p}' |
        curl -fsS -H 'Content-Type: application/json' --data-binary @- "$URL/api/v1/auth/login" |
        jq -r .accessToken)
    key=$(jq -n --arg s "$SITE_ID" --argjson n "$n" '{siteId: $s, name: "bench", maxUsage: $n, ttlMinutes: 120}' |
        curl -fsS -H 'Content-Type: application/json' -H "Authorization: Bearer $token" \
            --data-binary @- "$URL/api/v1/enrollment-keys" | jq -r .key)
    BENCH_ENROLLMENT_KEY=$key BENCH_ENROLLMENT_SECRET=$AGENT_ENROLLMENT_SECRET \
        "$GEN" --url "$URL" --agents "$n" --connections "$k" --enroll --agents-file "$DIR/agents" \
        --duration 1 --rate 1 >/dev/null
    # Heartbeat statistics start from a database that has seen the devices.
    PGOPTIONS="-c client_min_messages=error" psql -qX "$MIGRATION_DATABASE_URL" -c "ANALYZE" >/dev/null
}

# bench_heartbeat against the running server, with every pid it measures.
hb() {
    "$GEN" --url "$URL" --agents-file "$DIR/agents" --server-pid "$SERVER_PID" \
        --pg-pid "$PG_PID" --redis-pid "$REDIS_PID" "$@"
}

# The value of NAME in bench_heartbeat's text output TEXT.
field() {
    sed -n "s/^$1: //p" <<<"$2" | head -1
}

# Saturation search against the running server: constant rates from FIRST
# up, ×FACTOR per step of STEP_S seconds, until the achieved rate is below
# 95 % of the offered one or p99 is above 100 ms (or no answer succeeded).
# Prints one line per step; sets BEST (the highest rate that held; 0 if
# none) and LAST_RATE (the one that did not).
# shellcheck disable=SC2034
search() {
    local first=$1 step_s=$2 factor=$3 n=$4 k=$5 rate out ach p99 answers
    printf '%10s %10s %9s %9s %9s %10s %s\n' offered/s achieved/s p50_ms p99_ms p999_ms srv_ms/hb answers
    rate=$first BEST=0
    while :; do
        out=$(hb --agents "$n" --connections "$k" --rate "$rate" --duration "$step_s")
        ach=$(field achieved_rate_per_s "$out")
        p99=$(field latency_p99_ms "$out")
        answers=$(grep -E '^(status_[0-9]+|transport_errors|late_unsent|unanswered): ' <<<"$out" |
            grep -v ': 0$' | tr '\n' ' ' | sed 's/: /=/g')
        printf '%10s %10s %9s %9s %9s %10s %s\n' "$rate" "$ach" "$(field latency_p50_ms "$out")" \
            "$p99" "$(field latency_p999_ms "$out")" "$(field cpu_server_ms_per_heartbeat "$out")" "$answers"
        if awk -v a="$ach" -v r="$rate" -v p="$p99" \
            'BEGIN { exit !(a < 0.95 * r || p == "n/a" || p > 100) }'; then
            break
        fi
        BEST=$rate
        rate=$(awk -v r="$rate" -v f="$factor" 'BEGIN { printf "%d", r * f }')
    done
    LAST_RATE=$rate
    echo "saturation: highest sustained rate $BEST/s (next step $rate/s: achieved ${ach}/s, p99 ${p99} ms)"
}
