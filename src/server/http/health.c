/*
 * health.c — GET /healthz (the process is up; touches neither PostgreSQL
 * nor Redis) and GET /readyz (PostgreSQL reachable: 503 when it is down or
 * does not answer within its budget; Redis down only degrades: 200 with
 * status "degraded", since requests are still served without it). Both
 * unauthenticated and free of details an attacker could use.
 */
#include "server/http/health.h"

#include "server/redis/redis.h"

/* Budgets of /readyz's checks (ms), run one after the other: together
 * they stay below the 2 s a load balancer's probe typically allows. */
#define READY_DB_BUDGET_MS 1200
#define READY_REDIS_BUDGET_MS 600

/* The probe's own Redis connection, kept between probes (one PING each,
 * no connect + AUTH every time a load balancer asks). */
static struct redis_shared ready_redis = REDIS_SHARED_INIT;

static void healthz(struct request *rq)
{
	http_reply(rq, 200, json_pack("{s:s}", "status", "ok"));
}

static void readyz(struct request *rq)
{
	int db_ok = db_ping(rq->app->pool, READY_DB_BUDGET_MS) == 0;
	int redis_ok = redis_shared_ping(&ready_redis, rq->app->cfg->redis_url,
					 READY_REDIS_BUDGET_MS) == 0;
	int draining = atomic_load(&rq->app->draining);
	int ok = db_ok && !draining;
	const char *status = !ok ? "unavailable" : redis_ok ? "ready" : "degraded";

	http_reply(rq, ok ? 200 : 503,
		   json_pack("{s:s,s:{s:s,s:s}}", "status", status, "checks", "postgres",
			     db_ok ? "ok" : "down", "redis", redis_ok ? "ok" : "down"));
}

const struct route health_routes[] = {
	{"GET", "/healthz", healthz, ROUTE_PUBLIC | ROUTE_INLINE, NULL, NULL, NULL},
	{"GET", "/readyz", readyz, ROUTE_PUBLIC, NULL, NULL, NULL},
};
const size_t health_routes_count = sizeof(health_routes) / sizeof(*health_routes);
