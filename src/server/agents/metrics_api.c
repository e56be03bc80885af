/*
 * metrics_api.c — GET /api/v1/devices/:id/metrics: a device's metrics
 * history as avg/max per bucket (metrics.c). Scoped by the caller's
 * tenancy; another tenant's device answers 404.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/iso8601.h"
#include "server/agents/agents_api.h"
#include "server/agents/agents_metrics.h"

/* Range when the query names none: the last 24 hours, 5-minute buckets. */
#define DEFAULT_RANGE_S 86400
#define DEFAULT_BUCKET "5m"

/* The times the answer can render as RFC 3339 date-times (RFC 3339 §5.6,
 * four-digit years): 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z. */
#define MIN_TIME_S (-62135596800LL)
#define MAX_TIME_S 253402300799LL

/* The request's range and bucket. */
struct series_query {
	int64_t from, to; /* epoch seconds, from inclusive, to exclusive */
	const char *bucket;
	int bucket_s;
};

/* Time parameter NAME (ISO 8601, common/iso8601.h) into *OUT epoch
 * seconds (fractions dropped); *OUT untouched when absent. Fails the
 * request (400) when malformed, or when its UTC offset moves it out of
 * years 0001-9999 (the answer echoes it as an RFC 3339 date-time). */
static int time_param(struct request *rq, const char *name, int64_t *out)
{
	const char *v = http_query(rq, name);
	int64_t us;

	if (v == NULL)
		return 0;
	if (iso8601_parse_us(v, &us) != 0) {
		http_fail(rq, 400, "validation_error",
			  "parameter '%s' must be an ISO 8601 time (e.g. 2026-01-02T03:04:05Z)",
			  name);
		return BZ_ERR_RESPONDED;
	}
	*out = us >= 0 ? us / 1000000 : -((-us + 999999) / 1000000);
	if (*out < MIN_TIME_S || *out > MAX_TIME_S) {
		http_fail(rq, 400, "validation_error",
			  "parameter '%s' must be a time from 0001-01-01T00:00:00Z to "
			  "9999-12-31T23:59:59Z (after applying its UTC offset)",
			  name);
		return BZ_ERR_RESPONDED;
	}
	return 0;
}

/* Reads and checks from, to and bucket into Q. Fails the request (400)
 * and returns BZ_ERR_RESPONDED on a bad one. */
static int series_query_parse(struct request *rq, struct series_query *q)
{
	q->to = bz_now() + 1; /* through the current second: a heartbeat just sent counts */
	q->from = INT64_MIN;
	q->bucket = http_query(rq, "bucket") ? http_query(rq, "bucket") : DEFAULT_BUCKET;
	if (time_param(rq, "from", &q->from) != 0 || time_param(rq, "to", &q->to) != 0)
		return BZ_ERR_RESPONDED;
	if (q->from == INT64_MIN && (q->from = q->to - DEFAULT_RANGE_S) < MIN_TIME_S) {
		http_fail(rq, 400, "validation_error",
			  "parameter 'from' is needed: the default range would begin before "
			  "0001-01-01T00:00:00Z");
		return BZ_ERR_RESPONDED;
	}
	if ((q->bucket_s = agents_metrics_bucket_seconds(q->bucket)) == 0) {
		http_fail(rq, 400, "validation_error",
			  "parameter 'bucket' must be 1m, 5m, 15m, 1h, 6h or 1d");
		return BZ_ERR_RESPONDED;
	}
	if (q->from >= q->to) {
		http_fail(rq, 400, "validation_error", "parameter 'from' must be before 'to'");
		return BZ_ERR_RESPONDED;
	}
	if (q->to - q->from > AGENTS_METRICS_MAX_RANGE_S) {
		http_fail(rq, 400, "validation_error", "the range may cover at most %lld days",
			  AGENTS_METRICS_MAX_RANGE_S / 86400);
		return BZ_ERR_RESPONDED;
	}
	if ((q->to - q->from + q->bucket_s - 1) / q->bucket_s > AGENTS_METRICS_MAX_POINTS) {
		http_fail(rq, 400, "too_many_points",
			  "the range holds more than %d buckets of %s; use a larger bucket",
			  AGENTS_METRICS_MAX_POINTS, q->bucket);
		return BZ_ERR_RESPONDED;
	}
	return 0;
}

/* Epoch seconds T as an RFC 3339 date-time without fraction
 * ("0001-01-02T03:04:05Z": four-digit years, which gmtime + strftime "%Y"
 * does not give below 1000), or JSON null outside years 0001-9999. */
static json_t *time_json(int64_t t)
{
	char buf[32];

	if (t < MIN_TIME_S || t > MAX_TIME_S || iso8601_format_us(t * 1000000, buf) != 0)
		return json_null();
	buf[19] = 'Z'; /* "YYYY-MM-DDTHH:MM:SS" then ".ffffffZ" */
	buf[20] = '\0';
	return json_string(buf);
}

static json_t *point_json(const struct agents_metrics_point *p)
{
	json_t *j = json_pack("{s:o,s:I}", "t", time_json(p->t), "samples", (json_int_t)p->samples);

	for (int m = 0; j != NULL && m < AGENTS_METRIC_COUNT; m++)
		json_object_set_new(j, agents_metric_name(m),
				    p->has[m] ? json_pack("{s:f,s:f}", "avg", p->avg[m], "max",
							  p->max[m])
					      : json_null());
	return j;
}

static void get_device_metrics(struct request *rq)
{
	struct series_query q;
	struct agents_metrics_point *pts;
	size_t n;
	char id[37];
	PGconn *c;

	if (http_path_uuid(rq, "id", id, "device not found") != 0 ||
	    series_query_parse(rq, &q) != 0 || (c = http_db(rq)) == NULL)
		return;
	int rc = agents_metrics_series(c, &rq->scope, id, q.from, q.to, q.bucket_s, &pts, &n);
	if (rc != 0) {
		http_fail_why(rq, rc, &(struct bz_errinfo){.msg = "device not found"});
		return;
	}
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, point_json(&pts[i]));
	free(pts);
	http_reply(rq, 200,
		   json_pack("{s:s,s:o,s:o,s:s,s:i,s:o}", "deviceId", id, "from", time_json(q.from),
			     "to", time_json(q.to), "bucket", q.bucket, "bucketSeconds", q.bucket_s,
			     "points", arr));
}

static const char *const metrics_query[] = {"from", "to", "bucket", NULL};

const struct route device_metrics_routes[] = {
	{"GET", "/api/v1/devices/:id/metrics", get_device_metrics, ROUTE_USER, "devices:read", NULL,
	 metrics_query},
};
const size_t device_metrics_routes_count =
	sizeof(device_metrics_routes) / sizeof(*device_metrics_routes);
