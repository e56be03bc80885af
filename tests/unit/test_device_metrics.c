/*
 * test_device_metrics.c — the parts of the metrics history that need no database:
 * the bucket table, the series names, and the range checks that
 * agents_metrics_series() and agents_metrics_maintain() make before any
 * query (so they are called with a NULL connection here).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "server/agents/agents_metrics.h"

static void test_buckets(void **state)
{
	static const struct {
		const char *name;
		int s;
	} cases[] = {{"1m", 60},    {"5m", 300},   {"15m", 900}, {"1h", 3600},
		     {"6h", 21600}, {"1d", 86400}, {"2m", 0},	 {"", 0},
		     {"1M", 0},	    {"1h ", 0},	   {"60", 0},	 {"1d\n", 0}};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++)
		assert_int_equal(agents_metrics_bucket_seconds(cases[i].name), cases[i].s);
	assert_int_equal(agents_metrics_bucket_seconds(NULL), 0);
}

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(agents_metric_name(AGENTS_METRIC_CPU), "cpuPercent");
	assert_string_equal(agents_metric_name(AGENTS_METRIC_MEMORY), "memoryPercent");
	assert_string_equal(agents_metric_name(AGENTS_METRIC_DISK), "diskPercent");
	assert_string_equal(agents_metric_name(AGENTS_METRIC_LOAD15), "load15");
	assert_string_equal(agents_metric_name(AGENTS_METRIC_COUNT), "");
}

static void test_series_range_checks(void **state)
{
	struct tenancy_scope sc = {0};
	struct agents_metrics_point *pts = (void *)&sc;
	size_t n = 7;
	const char *id = "00000000-0000-0000-0000-000000000001";
	const int64_t t = 1800000000;

	(void)state;
	/* from >= to, a range over 31 days, more than 1500 buckets, no bucket. */
	assert_int_equal(agents_metrics_series(NULL, &sc, id, t, t, 60, &pts, &n), BZ_ERR_INVALID);
	assert_null(pts);
	assert_int_equal(n, 0);
	assert_int_equal(agents_metrics_series(NULL, &sc, id, t + 1, t, 60, &pts, &n),
			 BZ_ERR_INVALID);
	assert_int_equal(agents_metrics_series(NULL, &sc, id, t - 31 * 86400 - 1, t, 86400, &pts,
					       &n),
			 BZ_ERR_INVALID);
	assert_int_equal(agents_metrics_series(NULL, &sc, id, t - 1501 * 60, t, 60, &pts, &n),
			 BZ_ERR_INVALID);
	assert_int_equal(agents_metrics_series(NULL, &sc, id, t - 1500 * 60 - 1, t, 60, &pts, &n),
			 BZ_ERR_INVALID);
	assert_int_equal(agents_metrics_series(NULL, &sc, id, t - 60, t, 0, &pts, &n),
			 BZ_ERR_INVALID);
	/* A path id that is no UUID is simply not found. */
	assert_int_equal(agents_metrics_series(NULL, &sc, "nope", t - 60, t, 60, &pts, &n),
			 BZ_ERR_NOT_FOUND);
}

static void test_maintain_checks(void **state)
{
	struct agents_metrics_maintenance m;

	(void)state;
	assert_int_equal(agents_metrics_maintain(NULL, 1800000000, 0, &m), BZ_ERR_INVALID);
	assert_int_equal(agents_metrics_maintain(NULL, 1800000000, 3651, &m), BZ_ERR_INVALID);
	assert_int_equal(agents_metrics_maintain(NULL, 0, 30, &m), BZ_ERR_INVALID);
	assert_int_equal(m.created + m.dropped, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buckets),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_series_range_checks),
		cmocka_unit_test(test_maintain_checks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
