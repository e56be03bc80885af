/*
 * health.c — GET /healthz (the process is up) and GET /readyz (PostgreSQL
 * and Redis reachable; 503 naming what is down). Both unauthenticated and
 * free of details an attacker could use.
 */
#include "server/http/health.h"

#include "server/redis/redis.h"

#define READY_TIMEOUT_MS 2000

/* The probe's own Redis connection, kept between probes (one PING each,
 * no connect + AUTH every time a load balancer asks). */
static struct redis_shared ready_redis = REDIS_SHARED_INIT;

static void healthz(struct request *rq)
{
	http_reply(rq, 200, json_pack("{s:s}", "status", "ok"));
}

static void readyz(struct request *rq)
{
	int db_ok = db_ping(rq->app->pool, READY_TIMEOUT_MS) == 0;
	int redis_ok = redis_shared_ping(&ready_redis, rq->app->cfg->redis_url, READY_TIMEOUT_MS) ==
		       0;
	int draining = atomic_load(&rq->app->draining);
	int ok = db_ok && redis_ok && !draining;

	http_reply(rq, ok ? 200 : 503,
		   json_pack("{s:s,s:{s:s,s:s}}", "status", ok ? "ready" : "unavailable", "checks",
			     "postgres", db_ok ? "ok" : "down", "redis", redis_ok ? "ok" : "down"));
}

const struct route health_routes[] = {
	{"GET", "/healthz", healthz, ROUTE_PUBLIC, NULL, NULL, NULL},
	{"GET", "/readyz", readyz, ROUTE_PUBLIC, NULL, NULL, NULL},
};
const size_t health_routes_count = sizeof(health_routes) / sizeof(*health_routes);
