/*
 * metrics.h — the in-process metrics registry and its Prometheus text
 * exposition (format 0.0.4; checklist M1; docs/monitoring.md lists every
 * series).
 *
 * Every family is declared here, with its labels taken from a fixed set of
 * values (metrics.c): a value outside the set is counted as "other", so no
 * caller can put a tenant name, an id or a raw path into a label and the
 * number of series stays bounded. HTTP series are labelled with the route
 * TEMPLATE (/api/v1/devices/:id), never the path of the request.
 *
 * Lock-free: every cell is a C11 atomic, so any thread (request handlers,
 * workers, the pool) records without waiting. Domain code calls the
 * registry where it decides an event; it has no HTTP types. Counters count
 * since the process started (Prometheus handles restarts).
 */
#ifndef BZ_METRICS_H
#define BZ_METRICS_H

#include <stddef.h>
#include <stdint.h>

/* Counter families, each with at most one label (its values: metrics.c). */
enum metrics_counter {
	METRIC_LOGINS,			/* breeze_auth_logins_total{result} */
	METRIC_REFRESH_REUSE,		/* breeze_auth_refresh_reuse_detected_total */
	METRIC_MFA_FAILURES,		/* breeze_auth_mfa_failures_total */
	METRIC_RATELIMIT_REJECTIONS,	/* breeze_ratelimit_rejections_total{limiter} */
	METRIC_HEARTBEATS,		/* breeze_agent_heartbeats_total */
	METRIC_ENROLLMENTS,		/* breeze_agent_enrollments_total{result} */
	METRIC_AGENT_TOKEN_SUSPENSIONS, /* breeze_agent_token_suspensions_total */
	METRIC_OUTBOUND_BLOCKED,	/* breeze_outbound_blocked_total{reason} */
	METRIC_AUDIT_ROWS,		/* breeze_audit_rows_written_total */
	METRIC_COUNTER_COUNT
};

/* Gauges without labels (integers). */
enum metrics_gauge {
	METRIC_HTTP_IN_FLIGHT,	    /* breeze_http_requests_in_flight */
	METRIC_DB_POOL_IN_USE,	    /* breeze_db_pool_connections_in_use */
	METRIC_DB_POOL_SIZE,	    /* breeze_db_pool_connections */
	METRIC_POSTGRES_UP,	    /* breeze_postgres_up (set at scrape time) */
	METRIC_REDIS_UP,	    /* breeze_redis_up (set at scrape time) */
	METRIC_RATELIMIT_LOCAL,	    /* 1 while the limiter runs on its local fallback */
	METRIC_AUDIT_VERIFY_OK,	    /* breeze_audit_chain_verify_last_success */
	METRIC_AUDIT_VERIFY_TIME,   /* breeze_audit_chain_verify_last_timestamp_seconds */
	METRIC_AUDIT_VERIFY_BROKEN, /* breeze_audit_chain_verify_last_broken_chains */
	METRIC_GAUGE_COUNT
};

/* Adds 1 (metrics_add: N) to counter C under label value VALUE (NULL for
 * families without a label; a value outside the family's fixed set counts
 * as "other"). Never fails. */
void metrics_inc(enum metrics_counter c, const char *value);
void metrics_add(enum metrics_counter c, const char *value, uint64_t n);

/* Current value of counter C under VALUE (tests; 0 for unknown values). */
uint64_t metrics_counter_value(enum metrics_counter c, const char *value);

/* 1 if VALUE is one of counter C's fixed label values. */
int metrics_label_known(enum metrics_counter c, const char *value);

/* Sets gauge G to V, or adds DELTA (may be negative) to it. */
void metrics_gauge_set(enum metrics_gauge g, int64_t v);
void metrics_gauge_add(enum metrics_gauge g, int64_t delta);
int64_t metrics_gauge_value(enum metrics_gauge g);

/*
 * One HTTP request: METHOD (folded to GET, HEAD, POST, PUT, PATCH, DELETE,
 * OPTIONS or "other"), ROUTE the matched route TEMPLATE — a string with
 * static storage duration (the route table's literal): it is kept, never
 * copied — STATUS the answer's status (counted by class, "2xx"…), and
 * DURATION_US its duration in microseconds. At most METRICS_MAX_ROUTES
 * distinct templates; later ones are counted under "(other)".
 */
#define METRICS_MAX_ROUTES 256
void metrics_http_observe(const char *method, const char *route, int status, int64_t duration_us);

/* One wait of DURATION_US microseconds for a pooled database connection
 * (breeze_db_pool_wait_seconds). */
void metrics_db_wait_observe(int64_t duration_us);

/*
 * The whole registry and the process_* series (CPU, resident and virtual
 * memory, open and max file descriptors, start time; read from /proc at
 * this call) as Prometheus text format 0.0.4. Returns a malloc'd
 * NUL-terminated string the caller frees (its length in *LEN when LEN is
 * non-NULL), or NULL when out of memory.
 */
char *metrics_render(size_t *len);

#endif
