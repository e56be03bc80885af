/*
 * metrics_api.c — GET /metrics: the registry of common/metrics.h in the
 * Prometheus text exposition format 0.0.4, for a scraper that sends
 * `Authorization: Bearer <METRICS_SCRAPE_TOKEN>` (checklist M1).
 *
 * Without METRICS_SCRAPE_TOKEN the endpoint does not exist (404, as for any
 * unknown API path; production refuses to start without it). A missing or
 * wrong token is a 401 with a Bearer challenge (RFC 6750 §3); the token is
 * compared in constant time. The series hold no tenant names or ids, but
 * request rates, login failures and limiter states are still worth hiding
 * from the public, hence the token, and the proxy keeps /metrics off the
 * public side as well.
 */
#include "server/metrics/metrics_api.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/metrics.h"
#include "crypto/crypto.h"
#include "server/redis/redis.h"

/* Budgets of the scrape-time checks (ms): well under Prometheus's default
 * scrape timeout of 10 s, even with both dependencies down. */
#define SCRAPE_DB_BUDGET_MS 1000
#define SCRAPE_REDIS_BUDGET_MS 500

/* The scrape's own Redis connection, kept between scrapes. */
static struct redis_shared scrape_redis = REDIS_SHARED_INIT;

/* 1 if AUTH is "Bearer <TOKEN>" (scheme case-insensitive, RFC 9110
 * §11.1), the token compared in constant time. */
static int bearer_ok(const char *auth, const char *token)
{
	static const char scheme[] = "Bearer ";

	if (auth == NULL || strncasecmp(auth, scheme, sizeof(scheme) - 1) != 0)
		return 0;
	return crypto_ct_streq(auth + sizeof(scheme) - 1, token);
}

/* The gauges whose truth is only known by asking: PostgreSQL and Redis
 * answer now, and the backend the rate limiter will try next. */
static void collect(struct app *app)
{
	struct ratelimit_stats st;

	metrics_gauge_set(METRIC_POSTGRES_UP, db_ping(app->pool, SCRAPE_DB_BUDGET_MS) == 0);
	metrics_gauge_set(METRIC_REDIS_UP,
			  app->cfg->redis_url != NULL &&
				  redis_shared_ping(&scrape_redis, app->cfg->redis_url,
						    SCRAPE_REDIS_BUDGET_MS) == 0);
	if (app->rl != NULL) {
		ratelimit_stats(app->rl, &st);
		metrics_gauge_set(METRIC_RATELIMIT_LOCAL, st.backend == RATELIMIT_BACKEND_LOCAL);
	}
}

static void scrape(struct request *rq)
{
	const char *token = rq->app->cfg->secrets[SECRET_METRICS_SCRAPE_TOKEN];
	size_t len = 0;

	if (token == NULL || *token == '\0') {
		http_fail(rq, 404, "not_found", "no such route");
		return;
	}
	if (!bearer_ok(http_header(rq, "Authorization"), token)) {
		http_set_header(rq, "WWW-Authenticate", "Bearer realm=\"metrics\"");
		http_fail(rq, 401, "unauthorized", "a valid metrics scrape token is required");
		return;
	}
	collect(rq->app);
	char *text = metrics_render(&len);
	if (text == NULL) {
		http_fail_err(rq, BZ_ERR_NOMEM, NULL);
		return;
	}
	http_set_header(rq, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
	rq->status = 200;
	ulfius_set_binary_body_response(rq->resp, 200, text, len);
	free(text);
}

const struct route metrics_routes[] = {
	/* Any query is ignored (scrapers may add their own parameters), so an
	 * unconfigured endpoint is the same 404 whatever is sent. */
	{"GET", "/metrics", scrape, ROUTE_PUBLIC | ROUTE_ANY_QUERY, NULL, NULL, NULL},
};
const size_t metrics_routes_count = sizeof(metrics_routes) / sizeof(*metrics_routes);
