/*
 * test_agents_json.c — agents_json_check(), the check of the JSON objects
 * agents report (enrolment "hardware", heartbeat "metrics"), as a table of
 * inputs, flags and expected outcomes (with the member named at fault).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "server/agents/agents.h"

static const struct {
	const char *json;
	unsigned flags;
	int ok;
	const char *bad; /* member named at fault, or NULL */
} cases[] = {
	{"{}", 0, 1, NULL},
	{"{\"cpuCount\":2,\"kernel\":\"6.1.0-18-amd64\",\"cpuModel\":\"\"}", 0, 1, NULL},
	{"{\"mem\":9007199254740992}", 0, 1, NULL},
	{"{\"mem\":9007199254740993}", 0, 0, "mem"},
	{"{\"mem\":-9007199254740993}", 0, 0, "mem"},
	{"{\"x\":1e300}", 0, 0, "x"},
	{"{\"disks\":[{\"size\":1},{\"size\":1e20}]}", 0, 0, "disks"},
	{"{\"model\":\"a\\u001b[2Jb\"}", 0, 0, "model"},
	{"{\"model\":\"tab\\there\"}", 0, 0, "model"},
	{"{\"model\":\"rlo\\u202eevil\"}", 0, 0, "model"},
	{"{\"model\":\"nul\\u0000x\"}", 0, 0, "model"},
	{"{\"nested\":{\"deeper\":{\"s\":\"line\\nbreak\"}}}", 0, 0, "nested"},
	{"{\"model\":\"b\\u00fcro \\u03c0\"}", 0, 1, NULL},
	{"{\"ok\":true,\"none\":null}", 0, 1, NULL},
	/* metrics: numbers only */
	{"{\"cpuPercent\":12.5,\"load1\":0.5}", AGENTS_JSON_NUMBERS, 1, NULL},
	{"{\"cpuPercent\":\"high\"}", AGENTS_JSON_NUMBERS, 0, "cpuPercent"},
	{"{\"load\":{\"1\":0.5}}", AGENTS_JSON_NUMBERS, 0, "load"},
	{"{\"ok\":true}", AGENTS_JSON_NUMBERS, 0, "ok"},
};

static void test_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		json_error_t err;
		json_t *j = json_loads(cases[i].json, JSON_ALLOW_NUL, &err);
		const char *bad = "unset";

		if (j == NULL)
			fail_msg("case %zu does not parse: %s", i, err.text);
		int rc = agents_json_check(j, cases[i].flags, &bad);
		if ((rc == 0) != cases[i].ok)
			fail_msg("case %zu (%s): rc %d", i, cases[i].json, rc);
		if (!cases[i].ok && rc != BZ_ERR_INVALID)
			fail_msg("case %zu: want BZ_ERR_INVALID, got %d", i, rc);
		if (cases[i].bad == NULL ? bad != NULL : (bad == NULL || strcmp(bad, cases[i].bad)))
			fail_msg("case %zu: bad key %s, want %s", i, bad ? bad : "(null)",
				 cases[i].bad ? cases[i].bad : "(null)");
		json_decref(j);
	}
}

/* Nesting deeper than 32 levels is refused, whatever is inside. */
static void test_depth(void **state)
{
	(void)state;
	char buf[512];
	size_t o = 0;

	for (int depth = 30; depth <= 34; depth++) {
		o = 0;
		o += (size_t)snprintf(buf + o, sizeof(buf) - o, "{\"a\":");
		for (int i = 1; i < depth; i++)
			o += (size_t)snprintf(buf + o, sizeof(buf) - o, "[");
		o += (size_t)snprintf(buf + o, sizeof(buf) - o, "1");
		for (int i = 1; i < depth; i++)
			o += (size_t)snprintf(buf + o, sizeof(buf) - o, "]");
		snprintf(buf + o, sizeof(buf) - o, "}");
		json_t *j = json_loads(buf, 0, NULL);
		assert_non_null(j);
		int rc = agents_json_check(j, 0, NULL);
		if (depth <= 32)
			assert_int_equal(rc, 0);
		else
			assert_int_equal(rc, BZ_ERR_INVALID);
		json_decref(j);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_depth),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
