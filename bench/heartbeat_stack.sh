# shellcheck shell=bash
# heartbeat_stack.sh — the throwaway stack of bench/heartbeat.sh and
# bench/deadlines.sh (sourced by them; not run on its own).
#
#   stack_up           PostgreSQL + Redis (scripts/dev-services) in a temp dir,
#                      with production durability, migrated and bootstrapped
#   server_start ENV…  breeze-server with extra VAR=value settings
#   stack_enroll N K   an enrolment key (through the API) and N agents
#   stack_orgs N       N organizations with a site each (through the API)
#   stack_bulk_enroll N FILE  N more agents through the bulk fast path
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
BULK=$BUILD/bench_bulk_enroll
for b in "$BIN" "$GEN" "$BULK"; do
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
        "$BIN" serve --env-file "$ENV_FILE" "${root[@]}" >>"$DIR/server.log" 2>&1 &
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

# The throwaway administrator's access token (through the API).
admin_token() {
    jq -n --arg e admin@bench.test --arg p "$ADMIN_PASSWORD" '{email: $e, password: $p}' |
        curl -fsS -H 'Content-Type: application/json' --data-binary @- "$URL/api/v1/auth/login" |
        jq -r .accessToken
}

# An enrolment key for N agents (through the API, as an administrator) and
# the enrolment of N agents into $DIR/agents (tokens; mode 0600).
stack_enroll() {
    local n=$1 k=$2 token key
    token=$(admin_token)
    key=$(jq -n --arg s "$SITE_ID" --argjson n "$n" '{siteId: $s, name: "bench", maxUsage: $n, ttlMinutes: 120}' |
        curl -fsS -H 'Content-Type: application/json' -H "Authorization: Bearer $token" \
            --data-binary @- "$URL/api/v1/enrollment-keys" | jq -r .key)
    BENCH_ENROLLMENT_KEY=$key BENCH_ENROLLMENT_SECRET=$AGENT_ENROLLMENT_SECRET \
        "$GEN" --url "$URL" --agents "$n" --connections "$k" --enroll --agents-file "$DIR/agents" \
        --duration 1 --rate 1 >/dev/null
    # Heartbeat statistics start from a database that has seen the devices.
    PGOPTIONS="-c client_min_messages=error" psql -qX "$MIGRATION_DATABASE_URL" -c "ANALYZE" >/dev/null
}

# A POST of JSON BODY to PATH of $SETUP_URL as the administrator (token
# $SETUP_TOKEN); prints member .id of the answer.
setup_post() {
    curl -fsS -H 'Content-Type: application/json' -H "Authorization: Bearer $SETUP_TOKEN" \
        --data-binary "$2" "$SETUP_URL$1" | jq -r .id
}

# A second breeze-server for the administrator's setup calls only (its
# per-user API limit raised: thousands of organizations, sites and keys),
# so the one measured keeps every limit at its default. Sets SETUP_URL,
# SETUP_PID, SETUP_TOKEN.
setup_server_start() {
    local url=$URL pid=$SERVER_PID
    server_start RATE_LIMIT_API_USER=100000/60
    SETUP_URL=$URL SETUP_PID=$SERVER_PID URL=$url SERVER_PID=$pid
    SETUP_TOKEN=$(URL=$SETUP_URL admin_token)
}

setup_server_stop() {
    kill -TERM "$SETUP_PID" 2>/dev/null || true
    wait "$SETUP_PID" 2>/dev/null || true
}

# ORGS organizations with a site each (through the API), listed as
# "org-id site-id" lines in $DIR/orgs: bulk enrolment spreads the devices
# over them, so that each organization stays within its agent limit
# (AGENT_ORG_RATE_LIMIT_PER_MIN, 600 by default) as a real fleet of many
# customers does.
stack_orgs() {
    local n=$1 i org site
    setup_server_start
    : >"$DIR/orgs"
    for ((i = 0; i < n; i++)); do
        org=$(setup_post /api/v1/organizations "{\"name\": \"Bench Org $i\"}")
        site=$(setup_post "/api/v1/organizations/$org/sites" '{"name": "Main"}')
        echo "$org $site" >>"$DIR/orgs"
    done
    setup_server_stop
}

# N more agents enrolled through the bulk fast path (bench/bulk_enroll.c)
# into FILE (tokens; mode 0600), spread evenly over the organizations of
# $DIR/orgs (or all in the bootstrap site without it): one enrolment key
# per organization created through the API, then one bench_bulk_enroll run
# with all of them; VACUUM ANALYZE and a CHECKPOINT afterwards.
stack_bulk_enroll() {
    local n=$1 file=$2 sites=() keys=() db=${DATABASE_URL##*/} i norg uses org site
    if [[ -s "$DIR/orgs" ]]; then
        while read -r org site; do sites+=("$org:$site"); done <"$DIR/orgs"
    else
        sites=(":$SITE_ID")
    fi
    norg=${#sites[@]}
    ((n / norg <= 100000)) || { echo "bench: over 100,000 devices per organization" >&2; exit 2; }
    setup_server_start
    for ((i = 0; i < norg; i++)); do
        uses=$((n / norg + (i < n % norg ? 1 : 0)))
        ((uses > 0)) || continue
        site=${sites[i]#*:}
        keys+=(--key-id "$(setup_post /api/v1/enrollment-keys "$(jq -nc --arg s "$site" \
            --argjson n "$uses" '{siteId: $s, name: "bench bulk", maxUsage: $n, ttlMinutes: 120}')")")
    done
    setup_server_stop
    BENCH_DATABASE_URL=$DATABASE_URL BREEZE_ENV=test "$BULK" --database "${db%%\?*}" \
        "${keys[@]}" --agents "$n" --tokens "$file" ${BULK_BATCH:+--batch "$BULK_BATCH"}
    # Each measurement starts from the same state: the new rows vacuumed
    # (no autovacuum of them during the run) and a checkpoint behind it.
    PGOPTIONS="-c client_min_messages=error" psql -qX "$MIGRATION_DATABASE_URL" \
        -c "VACUUM ANALYZE" >/dev/null
    psql -qX "${SUPERUSER_DATABASE_URL%/postgres}/breeze" -c "CHECKPOINT" >/dev/null
}

# bench_heartbeat against the running server, with every pid it measures
# (agents from $AGENTS_FILE, default $DIR/agents).
hb() {
    "$GEN" --url "$URL" --agents-file "${AGENTS_FILE:-$DIR/agents}" --server-pid "$SERVER_PID" \
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
