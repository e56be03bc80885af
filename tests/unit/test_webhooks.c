/* Webhooks (server/outbound/webhooks.c, webhook_delivery.c): the URL check
 * when saving, and the retry schedule. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "server/outbound/webhooks.h"

static struct ssrf_policy empty;

static void test_url_check(void **state)
{
	static const struct {
		const char *url;
		const char *kind; /* NULL: allowed */
	} cases[] = {
		{"https://hooks.example.com/x", NULL},
		{"http://203.0.114.7:8080/hook", NULL},
		{"http://[2606:4700::1111]/", NULL},
		{"http://localhost/", "blocked_host"},
		{"http://metadata.google.internal./", "blocked_host"},
		{"http://127.0.0.1/", "blocked_address"},
		{"http://0x7f.1/", "blocked_address"},
		{"http://017700000001/", "blocked_address"},
		{"http://[::ffff:7f00:1]/", "blocked_address"},
		{"http://[64:ff9b::a9fe:a9fe]/", "blocked_address"},
		{"http://[fe80::1%25eth0]/", "blocked_address"},
		{"http://100.100.100.200/", "blocked_address"},
		{"gopher://example.com/", "bad_scheme"},
		{"http://u@example.com/", "bad_url"},
		{"http://:pw@example.com/", "bad_url"},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		struct bz_errinfo why = {0};
		int rc = webhook_url_check(&empty, cases[i].url, &why);
		if (cases[i].kind == NULL) {
			if (rc != 0)
				fail_msg("%s refused: %s", cases[i].url, why.msg);
			continue;
		}
		if (rc != BZ_ERR_INVALID || why.msg == NULL || strcmp(why.field, "url") != 0)
			fail_msg("%s not refused", cases[i].url);
		char want[32];
		snprintf(want, sizeof(want), "(%s)", cases[i].kind);
		if (strstr(why.msg, want) == NULL)
			fail_msg("%s: want %s, got %s", cases[i].url, want, why.msg);
	}
}

static void test_url_check_allowlist(void **state)
{
	struct ssrf_policy p;
	struct bz_errinfo why = {0};
	char err[128];

	(void)state;
	assert_int_equal(ssrf_policy_parse("127.0.0.1/32,10.0.0.0/8", &p, err, sizeof(err)), 0);
	assert_int_equal(webhook_url_check(&p, "http://127.0.0.1:9000/h", &why), 0);
	assert_int_equal(webhook_url_check(&p, "http://10.2.3.4/h", &why), 0);
	/* Listing an address never unlocks the name localhost. */
	assert_int_equal(webhook_url_check(&p, "http://localhost:9000/h", &why), BZ_ERR_INVALID);
	assert_int_equal(webhook_url_check(&p, "http://127.0.0.2/h", &why), BZ_ERR_INVALID);
}

static void test_backoff_schedule(void **state)
{
	static const long ceil_s[] = {120, 480, 1920, 7680, 28800, 28800, 28800, 28800};

	(void)state;
	for (int n = 1; n <= 8; n++) {
		assert_int_equal(webhook_backoff_s(n, 0.0), 0);
		long top = webhook_backoff_s(n, 0.999999999);
		assert_true(top <= ceil_s[n - 1] && top >= ceil_s[n - 1] - 1);
		long mid = webhook_backoff_s(n, 0.5);
		assert_true(mid >= ceil_s[n - 1] / 2 - 1 && mid <= ceil_s[n - 1] / 2 + 1);
	}
	/* Out-of-range randomness is treated as 0, never as a longer wait. */
	assert_int_equal(webhook_backoff_s(3, 1.0), 0);
	assert_int_equal(webhook_backoff_s(3, -0.5), 0);
	assert_int_equal(webhook_backoff_s(100, 0.999999999) <= 28800, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_url_check),
		cmocka_unit_test(test_url_check_allowlist),
		cmocka_unit_test(test_backoff_schedule),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
