/* The metrics registry (common/metrics.h, checklist M1) and the audit
 * witness reader (server/audit/audit_witness.h): fixed label sets that
 * match the modules' own names, "other" for anything else, route templates
 * kept as given, the exposition's syntax, and checkpoint lines read back
 * from a log with other lines around them. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/metrics.h"
#include "server/audit/audit_witness.h"
#include "server/outbound/outbound.h"
#include "server/outbound/ssrf.h"
#include "server/ratelimit/ratelimit.h"

/* Every limiter and every refusal kind the modules name is a label value
 * of its family: none of them would be folded into "other". */
static void test_label_sets_match_the_modules(void **state)
{
	(void)state;
	for (int l = 0; l < RL_LIMITER_COUNT; l++)
		assert_true(metrics_label_known(METRIC_RATELIMIT_REJECTIONS,
						ratelimit_limiter_name((enum ratelimit_limiter)l)));
	for (int k = SSRF_OK + 1; k < SSRF_KIND_COUNT; k++)
		assert_true(metrics_label_known(METRIC_OUTBOUND_BLOCKED,
						ssrf_kind_name((enum ssrf_kind)k)));
}

static void test_unknown_values_count_as_other(void **state)
{
	(void)state;
	uint64_t other = metrics_counter_value(METRIC_LOGINS, "other");

	metrics_inc(METRIC_LOGINS, "5f0c6e7e-0000-4000-8000-000000000001");
	metrics_inc(METRIC_LOGINS, NULL);
	assert_int_equal(metrics_counter_value(METRIC_LOGINS, "other"), other + 2);
	assert_false(metrics_label_known(METRIC_LOGINS, "5f0c6e7e-0000-4000-8000-000000000001"));
	char *text = metrics_render(NULL);
	assert_non_null(text);
	assert_null(strstr(text, "5f0c6e7e"));
	free(text);
}

static void test_blocked_outbound_request_is_counted(void **state)
{
	(void)state;
	const struct ssrf_policy p = {0};
	struct outbound_request rq = {.url = "http://127.0.0.1:9/"};
	struct outbound_response out;
	uint64_t before = metrics_counter_value(METRIC_OUTBOUND_BLOCKED, "blocked_address");

	assert_int_equal(outbound_global_init(), 0);
	memset(&out, 0, sizeof(out));
	assert_int_not_equal(outbound_request(&p, &rq, &out), 0);
	outbound_response_free(&out);
	assert_int_equal(metrics_counter_value(METRIC_OUTBOUND_BLOCKED, "blocked_address"),
			 before + 1);
}

static void test_http_series_by_template_and_class(void **state)
{
	(void)state;
	static const char route[] = "/api/v1/things/:id";

	metrics_http_observe("GET", route, 200, 1500);
	metrics_http_observe("GET", route, 404, 20000);
	metrics_http_observe("BREW", route, 503, 20000000);
	char *text = metrics_render(NULL);
	assert_non_null(text);
	assert_non_null(strstr(text, "breeze_http_requests_total{method=\"GET\",route=\"/api/v1/"
				     "things/:id\",status=\"2xx\"} 1\n"));
	assert_non_null(
		strstr(text, "{method=\"GET\",route=\"/api/v1/things/:id\",status=\"4xx\"} 1\n"));
	assert_non_null(
		strstr(text, "{method=\"other\",route=\"/api/v1/things/:id\",status=\"5xx\"} 1\n"));
	/* 1.5 ms is in le=0.0025 but not le=0.001; 20 s only in +Inf. */
	assert_non_null(strstr(text, "breeze_http_request_duration_seconds_bucket{route=\"/api/v1/"
				     "things/:id\",le=\"0.001\"} 0\n"));
	assert_non_null(strstr(text, "breeze_http_request_duration_seconds_bucket{route=\"/api/v1/"
				     "things/:id\",le=\"0.0025\"} 1\n"));
	assert_non_null(strstr(text, "breeze_http_request_duration_seconds_bucket{route=\"/api/v1/"
				     "things/:id\",le=\"10\"} 2\n"));
	assert_non_null(strstr(text, "breeze_http_request_duration_seconds_bucket{route=\"/api/v1/"
				     "things/:id\",le=\"+Inf\"} 3\n"));
	assert_non_null(strstr(text, "breeze_http_request_duration_seconds_count{route=\"/api/v1/"
				     "things/:id\"} 3\n"));
	free(text);
}

/* Every family has its HELP and TYPE once, and every line is a comment or
 * "name[{labels}] value". */
static void test_exposition_lines(void **state)
{
	(void)state;
	char *text = metrics_render(NULL);
	size_t types = 0;

	assert_non_null(text);
	for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n")) {
		if (strncmp(line, "# TYPE ", 7) == 0) {
			types++;
			continue;
		}
		if (strncmp(line, "# HELP ", 7) == 0)
			continue;
		assert_true(line[0] == 'b' || line[0] == 'p'); /* breeze_*, process_* */
		char *sp = strrchr(line, ' ');
		assert_non_null(sp);
		char *end;
		strtod(sp + 1, &end);
		assert_true(*end == '\0');
	}
	assert_true(types >= METRIC_COUNTER_COUNT + 10);
	free(text);
}

static void test_gauges(void **state)
{
	(void)state;
	assert_int_equal(metrics_gauge_value(METRIC_AUDIT_VERIFY_OK), -1); /* never ran */
	metrics_gauge_add(METRIC_HTTP_IN_FLIGHT, 2);
	metrics_gauge_add(METRIC_HTTP_IN_FLIGHT, -1);
	assert_int_equal(metrics_gauge_value(METRIC_HTTP_IN_FLIGHT), 1);
	metrics_gauge_set(METRIC_RATELIMIT_LOCAL, 1);
	char *text = metrics_render(NULL);
	assert_non_null(strstr(text, "breeze_ratelimit_backend{backend=\"redis\"} 0\n"
				     "breeze_ratelimit_backend{backend=\"local\"} 1\n"));
	free(text);
	metrics_gauge_set(METRIC_RATELIMIT_LOCAL, 0);
	metrics_gauge_add(METRIC_HTTP_IN_FLIGHT, -1);
}

#define SUM                                                                                        \
	"aa"                                                                                       \
	"aa"                                                                                       \
	"aa"                                                                                       \
	"aa"                                                                                       \
	"aa"                                                                                       \
	"aa"                                                                                       \
	"aa"                                                                                       \
	"aa"                                                                                       \
	"aa"                                                                                       \
	"aa"                                                                                       \
	"aa"                                                                                       \
	"aa"                                                                                       \
	"aa"                                                                                       \
	"aa"                                                                                       \
	"aa"                                                                                       \
	"aa"                                                                                       \
	"aa"                                                                                       \
	"aa"                                                                                       \
	"aa"                                                                                       \
	"aa"                                                                                       \
	"aa"                                                                                       \
	"aa"                                                                                       \
	"aa"                                                                                       \
	"aa"                                                                                       \
	"aa"                                                                                       \
	"aa"                                                                                       \
	"aa"                                                                                       \
	"aa"                                                                                       \
	"aa"                                                                                       \
	"aa"                                                                                       \
	"aa"                                                                                       \
	"aa"
#define SIG SUM SUM

static void test_witness_reads_checkpoint_lines_only(void **state)
{
	(void)state;
	static const char log[] =
		"not json at all\n"
		"{\"ts\":\"2026-01-01T00:00:00Z\",\"level\":\"info\",\"msg\":\"http.request\"}\n"
		"2026-01-01T00:00:01Z stderr F {\"msg\":\"audit.checkpoint\",\"chainId\":"
		"\"5F0C6E7E-0000-4000-8000-000000000001\",\"seq\":7,\"checksum\":\"" SUM "\","
		"\"createdAt\":1767225601,\"publicKey\":\"" SUM "\",\"signature\":\"" SIG "\"}\n"
		"{\"msg\":\"audit.checkpoint\",\"chainId\":\"x\",\"seq\":7}\n"
		"{\"msg\":\"audit.checkpoint.done\",\"chains\":\"1\"}\n"
		"{\"msg\":\"audit.checkpoint\",\"chainId\":\"5f0c6e7e-0000-4000-8000-000000000002\","
		"\"seq\":0,\"checksum\":\"" SUM "\",\"createdAt\":1,\"publicKey\":\"" SUM "\","
		"\"signature\":\"" SIG "\"}\n";
	FILE *f = fmemopen((void *)log, sizeof(log) - 1, "r");
	struct audit_witness w;

	assert_non_null(f);
	assert_int_equal(audit_witness_read(f, &w), 0);
	fclose(f);
	assert_int_equal(w.n, 1);
	assert_int_equal(w.n_bad, 2); /* the chainId "x" line and the seq 0 line */
	assert_string_equal(w.cps[0].chain_id, "5f0c6e7e-0000-4000-8000-000000000001");
	assert_int_equal(w.cps[0].seq, 7);
	assert_int_equal(w.cps[0].created_at, 1767225601);
	assert_int_equal(w.cps[0].line, 3);
	assert_string_equal(w.cps[0].sig, SIG);
	audit_witness_free(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_label_sets_match_the_modules),
		cmocka_unit_test(test_unknown_values_count_as_other),
		cmocka_unit_test(test_blocked_outbound_request_is_counted),
		cmocka_unit_test(test_http_series_by_template_and_class),
		cmocka_unit_test(test_exposition_lines),
		cmocka_unit_test(test_gauges),
		cmocka_unit_test(test_witness_reads_checkpoint_lines_only),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
