/*
 * metrics.c — the registry's cells and the text exposition (Prometheus
 * exposition format 0.0.4:
 * https://prometheus.io/docs/instrumenting/exposition_formats/).
 */
#include "common/metrics.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/metrics_internal.h"

#define MAX_VALUES 16 /* label values of one counter family, "other" included */

struct counter_family {
	const char *name, *help;
	const char *label;		    /* NULL: no label */
	const char *values[MAX_VALUES + 1]; /* fixed set, NULL-terminated; "other" last */
	_Atomic uint64_t cells[MAX_VALUES];
};

/* The fixed label values. The limiter names are ratelimit_limiter_name()'s
 * and the reasons ssrf_kind_name()'s (tests/unit/test_metrics.c checks both
 * lists against them). */
static struct counter_family counters[METRIC_COUNTER_COUNT] = {
	[METRIC_LOGINS] = {"breeze_auth_logins_total",
			   "Password logins by result: success (session issued, also after "
			   "MFA), mfa_challenge (password right, second factor asked), failure.",
			   "result",
			   {"success", "mfa_challenge", "failure", "other", NULL}},
	[METRIC_REFRESH_REUSE] =
		{"breeze_auth_refresh_reuse_detected_total",
		 "Rotated refresh tokens presented again (the session is revoked).",
		 NULL,
		 {"", NULL}},
	[METRIC_MFA_FAILURES] = {"breeze_auth_mfa_failures_total",
				 "Wrong or refused second-factor codes at login.",
				 NULL,
				 {"", NULL}},
	[METRIC_RATELIMIT_REJECTIONS] = {"breeze_ratelimit_rejections_total",
					 "Checks refused by a rate limiter, by limiter.",
					 "limiter",
					 {"login", "login_ip", "api_user", "agent_device",
					  "agent_org", "enroll", "mfa", "webhook_test", "other",
					  NULL}},
	[METRIC_HEARTBEATS] = {"breeze_agent_heartbeats_total",
			       "Agent heartbeats accepted.",
			       NULL,
			       {"", NULL}},
	[METRIC_ENROLLMENTS] = {"breeze_agent_enrollments_total",
				"Agent enrolment attempts by result.",
				"result",
				{"success", "failure", "other", NULL}},
	[METRIC_AGENT_TOKEN_SUSPENSIONS] = {"breeze_agent_token_suspensions_total",
					    "Agent tokens suspended after a cross-tenant probe.",
					    NULL,
					    {"", NULL}},
	[METRIC_OUTBOUND_BLOCKED] = {"breeze_outbound_blocked_total",
				     "Outbound requests refused, by reason.",
				     "reason",
				     {"blocked_address", "blocked_host", "bad_scheme", "bad_url",
				      "dns_failure", "too_many_redirects", "response_too_large",
				      "timeout", "connect_failed", "other", NULL}},
	[METRIC_AUDIT_ROWS] = {"breeze_audit_rows_written_total",
			       "Audit rows written by this process (a row whose transaction later "
			       "rolled back included).",
			       NULL,
			       {"", NULL}},
};

static _Atomic int64_t gauges[METRIC_GAUGE_COUNT] = {[METRIC_AUDIT_VERIFY_OK] = -1};

/* Index of VALUE in F's values; "other" (the last) when unknown. */
static size_t value_index(const struct counter_family *f, const char *value)
{
	size_t i;

	if (f->label == NULL)
		return 0;
	for (i = 0; f->values[i + 1] != NULL; i++)
		if (value != NULL && !strcmp(f->values[i], value))
			return i;
	return i;
}

void metrics_add(enum metrics_counter c, const char *value, uint64_t n)
{
	if ((unsigned)c >= METRIC_COUNTER_COUNT)
		return;
	atomic_fetch_add_explicit(&counters[c].cells[value_index(&counters[c], value)], n,
				  memory_order_relaxed);
}

void metrics_inc(enum metrics_counter c, const char *value)
{
	metrics_add(c, value, 1);
}

int metrics_label_known(enum metrics_counter c, const char *value)
{
	if ((unsigned)c >= METRIC_COUNTER_COUNT || counters[c].label == NULL)
		return 0;
	for (size_t i = 0; counters[c].values[i] != NULL; i++)
		if (value != NULL && !strcmp(counters[c].values[i], value))
			return 1;
	return 0;
}

uint64_t metrics_counter_value(enum metrics_counter c, const char *value)
{
	if ((unsigned)c >= METRIC_COUNTER_COUNT)
		return 0;
	if (counters[c].label != NULL && !metrics_label_known(c, value))
		return 0;
	return atomic_load(&counters[c].cells[value_index(&counters[c], value)]);
}

void metrics_gauge_set(enum metrics_gauge g, int64_t v)
{
	if ((unsigned)g < METRIC_GAUGE_COUNT)
		atomic_store(&gauges[g], v);
}

void metrics_gauge_add(enum metrics_gauge g, int64_t delta)
{
	if ((unsigned)g < METRIC_GAUGE_COUNT)
		atomic_fetch_add(&gauges[g], delta);
}

int64_t metrics_gauge_value(enum metrics_gauge g)
{
	return (unsigned)g < METRIC_GAUGE_COUNT ? atomic_load(&gauges[g]) : 0;
}

/* ---- Histograms ---- */

/* Upper bounds (seconds) shared by every histogram: from a Redis round
 * trip to a request at its deadline. */
const double metrics_buckets[METRICS_NB] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
					    0.25,  0.5,	   1,	  2.5,	5,     10};

void metrics_hist_observe(struct metrics_hist *h, int64_t us)
{
	size_t i = 0;

	if (us < 0)
		us = 0;
	while (i < METRICS_NB && (double)us > metrics_buckets[i] * 1e6)
		i++;
	atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum_us, (uint64_t)us, memory_order_relaxed);
}

static struct metrics_hist db_wait;

void metrics_db_wait_observe(int64_t duration_us)
{
	metrics_hist_observe(&db_wait, duration_us);
}

/* ---- HTTP: one slot per route template ---- */

#define METHODS 8
#define CLASSES 5
#define SLOTS (2 * METRICS_MAX_ROUTES)

static const char *const method_names[METHODS] = {"GET",   "HEAD",   "POST",	"PUT",
						  "PATCH", "DELETE", "OPTIONS", "other"};

struct route_slot {
	_Atomic(const char *) route;
	_Atomic uint64_t requests[METHODS][CLASSES];
	struct metrics_hist duration;
};

static struct route_slot slots[SLOTS];
static _Atomic unsigned n_routes;
static struct route_slot other_slot = {.route = "(other)"};

static size_t method_index(const char *m)
{
	size_t i;

	for (i = 0; i < METHODS - 1; i++)
		if (m != NULL && !strcmp(method_names[i], m))
			return i;
	return i;
}

/* FNV-1a of S: where its slot's probe sequence starts. */
static size_t route_hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % SLOTS;
}

/* ROUTE's slot, claimed on first use with a compare-and-swap, so threads
 * meeting on a new template agree on one slot without a lock. */
static struct route_slot *route_slot(const char *route)
{
	size_t i = route_hash(route);

	for (size_t probes = 0; probes < SLOTS; probes++, i = (i + 1) % SLOTS) {
		const char *cur = atomic_load(&slots[i].route);
		if (cur == NULL) {
			if (atomic_fetch_add(&n_routes, 1) >= METRICS_MAX_ROUTES) {
				atomic_fetch_sub(&n_routes, 1);
				return &other_slot;
			}
			const char *expected = NULL;
			if (atomic_compare_exchange_strong(&slots[i].route, &expected, route))
				return &slots[i];
			atomic_fetch_sub(&n_routes, 1);
			cur = expected;
		}
		if (!strcmp(cur, route))
			return &slots[i];
	}
	return &other_slot;
}

void metrics_http_observe(const char *method, const char *route, int status, int64_t duration_us)
{
	struct route_slot *s = route_slot(route != NULL ? route : "(unmatched)");
	int cls = status / 100 - 1;

	if (cls < 0 || cls >= CLASSES)
		cls = CLASSES - 1;
	atomic_fetch_add_explicit(&s->requests[method_index(method)][cls], 1, memory_order_relaxed);
	metrics_hist_observe(&s->duration, duration_us);
}

/* ---- Exposition ---- */

int metrics_buf_printf(struct metrics_buf *b, const char *fmt, ...)
{
	va_list ap;

	if (b->failed)
		return -1;
	for (;;) {
		size_t room = b->cap - b->len;
		va_start(ap, fmt);
		int n = b->buf != NULL ? vsnprintf(b->buf + b->len, room, fmt, ap) : -2;
		va_end(ap);
		if (n >= 0 && (size_t)n < room) {
			b->len += (size_t)n;
			return 0;
		}
		if (n == -1) {
			b->failed = 1;
			return -1;
		}
		size_t cap = b->cap ? b->cap * 2 : 16384;
		while (n > 0 && cap - b->len <= (size_t)n)
			cap *= 2;
		char *nb = realloc(b->buf, cap);
		if (nb == NULL) {
			b->failed = 1;
			return -1;
		}
		b->buf = nb;
		b->cap = cap;
	}
}

/* Writes V as a label value: backslash, double quote and newline escaped
 * (format 0.0.4). */
static void put_label_value(struct metrics_buf *b, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			metrics_buf_printf(b, "\\%c", *v);
		else if (*v == '\n')
			metrics_buf_printf(b, "\\n");
		else
			metrics_buf_printf(b, "%c", *v);
	}
}

void metrics_put_header(struct metrics_buf *b, const char *name, const char *type, const char *help)
{
	metrics_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void put_counters(struct metrics_buf *b)
{
	for (size_t c = 0; c < METRIC_COUNTER_COUNT; c++) {
		struct counter_family *f = &counters[c];
		metrics_put_header(b, f->name, "counter", f->help);
		if (f->label == NULL) {
			metrics_buf_printf(b, "%s %llu\n", f->name,
					   (unsigned long long)atomic_load(&f->cells[0]));
			continue;
		}
		for (size_t i = 0; f->values[i] != NULL; i++)
			metrics_buf_printf(b, "%s{%s=\"%s\"} %llu\n", f->name, f->label,
					   f->values[i],
					   (unsigned long long)atomic_load(&f->cells[i]));
	}
}

static void put_gauge(struct metrics_buf *b, const char *name, const char *help,
		      enum metrics_gauge g)
{
	metrics_put_header(b, name, "gauge", help);
	metrics_buf_printf(b, "%s %lld\n", name, (long long)atomic_load(&gauges[g]));
}

static void put_gauges(struct metrics_buf *b)
{
	long long local = atomic_load(&gauges[METRIC_RATELIMIT_LOCAL]) != 0;

	put_gauge(b, "breeze_http_requests_in_flight", "Requests being handled.",
		  METRIC_HTTP_IN_FLIGHT);
	put_gauge(b, "breeze_db_pool_connections_in_use",
		  "Pooled PostgreSQL connections held by a request.", METRIC_DB_POOL_IN_USE);
	put_gauge(b, "breeze_db_pool_connections", "Size of the PostgreSQL connection pool.",
		  METRIC_DB_POOL_SIZE);
	put_gauge(b, "breeze_postgres_up", "1 if PostgreSQL answered at the last scrape.",
		  METRIC_POSTGRES_UP);
	put_gauge(b, "breeze_redis_up", "1 if Redis answered a PING at the last scrape.",
		  METRIC_REDIS_UP);
	metrics_put_header(b, "breeze_ratelimit_backend", "gauge",
			   "1 for the backend the rate limiter uses now (redis, or local while "
			   "Redis is unreachable).");
	metrics_buf_printf(b,
			   "breeze_ratelimit_backend{backend=\"redis\"} %lld\n"
			   "breeze_ratelimit_backend{backend=\"local\"} %lld\n",
			   1 - local, local);
	put_gauge(b, "breeze_audit_chain_verify_last_success",
		  "1 if the last audit chain verification of this process found no break, 0 if "
		  "it found one, -1 before the first.",
		  METRIC_AUDIT_VERIFY_OK);
	put_gauge(b, "breeze_audit_chain_verify_last_timestamp_seconds",
		  "When the last audit chain verification of this process ended (epoch "
		  "seconds; 0 before the first).",
		  METRIC_AUDIT_VERIFY_TIME);
	put_gauge(b, "breeze_audit_chain_verify_last_broken_chains",
		  "Chains with a break in the last verification of this process.",
		  METRIC_AUDIT_VERIFY_BROKEN);
}

void metrics_put_hist(struct metrics_buf *b, const char *name, const char *labels,
		      const struct metrics_hist *h)
{
	unsigned long long cum = 0;
	const char *sep = labels[0] ? "," : "";

	for (size_t i = 0; i < METRICS_NB; i++) {
		cum += atomic_load(&h->bucket[i]);
		metrics_buf_printf(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep,
				   metrics_buckets[i], cum);
	}
	cum += atomic_load(&h->bucket[METRICS_NB]);
	metrics_buf_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep, cum);
	if (labels[0]) {
		metrics_buf_printf(b, "%s_sum{%s} %.6f\n%s_count{%s} %llu\n", name, labels,
				   (double)atomic_load(&h->sum_us) / 1e6, name, labels, cum);
	} else {
		metrics_buf_printf(b, "%s_sum %.6f\n%s_count %llu\n", name,
				   (double)atomic_load(&h->sum_us) / 1e6, name, cum);
	}
}

/* A route slot's label text route="…" into B. */
static void put_route_label(struct metrics_buf *b, const char *route)
{
	metrics_buf_printf(b, "route=\"");
	put_label_value(b, route);
	metrics_buf_printf(b, "\"");
}

/* 1 if S counted a request (the overflow slot is shown only then). */
static int slot_used(struct route_slot *s)
{
	for (size_t i = 0; i <= METRICS_NB; i++)
		if (atomic_load(&s->duration.bucket[i]) != 0)
			return 1;
	return 0;
}

static void put_http(struct metrics_buf *b)
{
	static const char *const cls[CLASSES] = {"1xx", "2xx", "3xx", "4xx", "5xx"};

	metrics_put_header(b, "breeze_http_requests_total", "counter",
			   "Requests answered, by method, route template and status class.");
	for (size_t i = 0; i <= SLOTS; i++) {
		struct route_slot *s = i < SLOTS ? &slots[i] : &other_slot;
		const char *route = atomic_load(&s->route);
		for (size_t m = 0; route != NULL && m < METHODS; m++)
			for (size_t k = 0; k < CLASSES; k++) {
				unsigned long long n = atomic_load(&s->requests[m][k]);
				if (n == 0)
					continue;
				metrics_buf_printf(b, "breeze_http_requests_total{method=\"%s\",",
						   method_names[m]);
				put_route_label(b, route);
				metrics_buf_printf(b, ",status=\"%s\"} %llu\n", cls[k], n);
			}
	}
	metrics_put_header(b, "breeze_http_request_duration_seconds", "histogram",
			   "Time from the request's dispatch to its answer, by route template.");
	for (size_t i = 0; i <= SLOTS; i++) {
		struct route_slot *s = i < SLOTS ? &slots[i] : &other_slot;
		const char *route = atomic_load(&s->route);
		if (route == NULL || (s == &other_slot && !slot_used(s)))
			continue;
		struct metrics_buf lb = {0};
		put_route_label(&lb, route);
		if (lb.failed || lb.buf == NULL) {
			b->failed = 1;
			free(lb.buf);
			return;
		}
		metrics_put_hist(b, "breeze_http_request_duration_seconds", lb.buf, &s->duration);
		free(lb.buf);
	}
}

char *metrics_render(size_t *len)
{
	struct metrics_buf b = {0};

	put_http(&b);
	put_counters(&b);
	put_gauges(&b);
	metrics_put_header(&b, "breeze_db_pool_wait_seconds", "histogram",
			   "Time spent waiting for a pooled PostgreSQL connection.");
	metrics_put_hist(&b, "breeze_db_pool_wait_seconds", "", &db_wait);
	metrics_put_process(&b);
	if (b.failed || b.buf == NULL) {
		free(b.buf);
		return NULL;
	}
	if (len != NULL)
		*len = b.len;
	return b.buf;
}
