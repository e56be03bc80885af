/*
 * limit.c — how a route applies the rate limiter (docs/rate-limiting.md,
 * "How each limiter applies"): one check, the X-RateLimit-* headers on the
 * answer, 429 with Retry-After when refused, 503 in deny mode while Redis
 * is down, and at most one audit row per refused key and window for the
 * security-relevant limiters.
 */
#include <stdio.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "server/http/http.h"

void http_rate_ip(const struct request *rq, char *out, size_t len)
{
	/* A resolved client address is always a literal; anything else gets
	 * one shared bucket rather than none (fail closed). */
	if (ratelimit_norm_ip(rq->client_ip, out, len) != 0)
		snprintf(out, len, "unknown");
}

/* X-RateLimit-Limit / -Remaining / -Reset of the check's deciding limiter. */
static void set_limit_headers(struct request *rq, const struct ratelimit_result *r)
{
	char v[24];

	snprintf(v, sizeof(v), "%u", r->limit);
	http_set_header(rq, "X-RateLimit-Limit", v);
	snprintf(v, sizeof(v), "%u", r->remaining);
	http_set_header(rq, "X-RateLimit-Remaining", v);
	snprintf(v, sizeof(v), "%lld", (long long)r->reset_s);
	http_set_header(rq, "X-RateLimit-Reset", v);
}

/* Writes the refusal REFUSAL (a template: action, resource, actor) in its
 * own transaction, naming the limiter. Failures are logged, never answered:
 * the 429 stands. */
static void audit_refusal(struct request *rq, const struct audit_event *refusal,
			  const struct ratelimit_result *r)
{
	struct audit_event ev = *refusal;
	PGconn *c;

	ev.result = "denied";
	ev.ip_address = rq->client_ip[0] ? rq->client_ip : NULL;
	ev.details = json_pack("{s:s,s:I}", "limiter", r->limiter, "retryAfterSeconds",
			       (json_int_t)r->retry_after_s);
	if ((c = http_db(rq)) == NULL || audit_write_standalone(c, &ev) != 0)
		log_error("audit.write.failed", "action", ev.action, NULL);
	json_decref(ev.details);
}

int http_rate_admits(struct request *rq, const struct ratelimit_item *items, size_t n)
{
	struct ratelimit_result r;

	if (rq->app->rl == NULL || n == 0 || n > RATELIMIT_MAX_ITEMS)
		return 0;
	return ratelimit_check(rq->app->rl, items, n, bz_now_ms(), &r) == 0 && r.admitted;
}

int http_rate_render(struct request *rq, int rc, const struct ratelimit_result *r,
		     const struct audit_event *refusal)
{
	char v[24];

	if (rc == BZ_ERR_UNAVAILABLE) {
		/* RATE_LIMIT_ON_REDIS_FAILURE=deny: never unlimited. */
		http_set_header(rq, "Retry-After", "1");
		http_fail(rq, 503, "rate_limit_unavailable",
			  "rate limiting is unavailable; retry shortly");
		return BZ_ERR_RESPONDED;
	}
	if (rc != 0 || r == NULL) {
		http_fail_err(rq, BZ_ERR_INTERNAL, NULL);
		return BZ_ERR_RESPONDED;
	}
	set_limit_headers(rq, r);
	if (r->admitted)
		return 0;
	if (refusal != NULL && r->first_refusal)
		audit_refusal(rq, refusal, r);
	snprintf(v, sizeof(v), "%u", r->retry_after_s);
	http_set_header(rq, "Retry-After", v);
	http_fail(rq, 429, "rate_limited", "too many requests (%s); retry after %u s", r->limiter,
		  r->retry_after_s);
	return BZ_ERR_RESPONDED;
}

int http_rate_limit(struct request *rq, const struct ratelimit_item *items, size_t n,
		    const struct audit_event *refusal)
{
	struct ratelimit_item it[RATELIMIT_MAX_ITEMS];
	struct ratelimit_result r;

	if (rq->app->rl == NULL || n == 0 || n > RATELIMIT_MAX_ITEMS) {
		http_fail_err(rq, BZ_ERR_INTERNAL, NULL);
		return BZ_ERR_RESPONDED;
	}
	memcpy(it, items, n * sizeof(*it));
	for (size_t i = 0; i < n; i++)
		it[i].note_refusal = refusal != NULL;
	int rc = ratelimit_check(rq->app->rl, it, n, bz_now_ms(), &r);
	return http_rate_render(rq, rc, &r, refusal);
}
