/* Unit tests for the pure helpers of the session routes: reading one cookie
 * out of a Cookie header (http_cookie_get, src/server/http/cookie.c), the
 * refresh/CSRF token format (auth_token_random, auth_token_well_formed,
 * auth_refresh_token_hash, src/server/auth/refresh.c) and web-origin
 * normalization (config_origin_normalize, src/server/config.c). No
 * database is needed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "crypto/crypto.h"
#include "server/auth/auth.h"
#include "server/config.h"
#include "server/http/cookie.h"

/* ---- Cookie header ---- */

static const struct {
	const char *header, *name;
	int rc;
	const char *value;
} cookies[] = {
	{"a=1", "a", 0, "1"},
	{"a=1; b=2", "b", 0, "2"},
	{"a=1;b=2", "b", 0, "2"},
	{"  a=1 ;  b=two  ", "b", 0, "two"},
	{"a=\"quoted\"", "a", 0, "quoted"},
	{"a=", "a", 0, ""},
	{"ab=1; a=2", "a", 0, "2"},  /* a prefix of another name is another name */
	{"a=1; ab=2", "ab", 0, "2"}, /* and the other way round */
	{"b=1", "a", BZ_ERR_NOT_FOUND, ""},
	{"", "a", BZ_ERR_NOT_FOUND, ""},
	{NULL, "a", BZ_ERR_NOT_FOUND, ""},
	{"A=1", "a", BZ_ERR_NOT_FOUND, ""},	     /* names are case-sensitive */
	{"nameless; a=1", "a", 0, "1"},		     /* a pair without '=' is skipped */
	{"a=1; a=2", "a", BZ_ERR_CONFLICT, ""},	     /* ambiguous: refused */
	{"a=1; b=2; a=1", "a", BZ_ERR_CONFLICT, ""}, /* even with the same value */
	{"a=x y", "a", BZ_ERR_INVALID, ""},	     /* no space inside a value */
	{"a=x,y", "a", BZ_ERR_INVALID, ""},
	{"a=x\\y", "a", BZ_ERR_INVALID, ""},
	{"a=\"x", "a", BZ_ERR_INVALID, ""},
	{"a=\x01", "a", BZ_ERR_INVALID, ""},
	{"a=\xc3\xa9", "a", BZ_ERR_INVALID, ""},
	{"b=x y; a=1", "a", 0, "1"}, /* another cookie's value is not ours to judge */
	{"a=0123456789", "a", BZ_ERR_TOO_LARGE, ""},
	{"a=012345678", "a", 0, "012345678"}, /* 9 bytes + NUL fit in 10 */
};

static void test_cookie_table(void **state)
{
	(void)state;
	char out[10];

	for (size_t i = 0; i < sizeof(cookies) / sizeof(*cookies); i++) {
		memset(out, 'Z', sizeof(out));
		int rc = http_cookie_get(cookies[i].header, cookies[i].name, out, sizeof(out));
		if (rc != cookies[i].rc || strcmp(out, cookies[i].value) != 0)
			fail_msg("case %zu (%s): rc %d value '%s', want %d '%s'", i,
				 cookies[i].header ? cookies[i].header : "(null)", rc, out,
				 cookies[i].rc, cookies[i].value);
	}
}

static void test_cookie_real_token(void **state)
{
	(void)state;
	char tok[AUTH_REFRESH_TOKEN_LEN + 1], header[256], out[AUTH_REFRESH_TOKEN_LEN + 1];

	assert_int_equal(auth_token_random(tok), 0);
	snprintf(header, sizeof(header), "theme=dark; breeze_refresh_token=%s; breeze_csrf_token=x",
		 tok);
	assert_int_equal(http_cookie_get(header, "breeze_refresh_token", out, sizeof(out)), 0);
	assert_string_equal(out, tok);
	/* A buffer one byte short refuses rather than truncates. */
	assert_int_equal(http_cookie_get(header, "breeze_refresh_token", out, sizeof(out) - 1),
			 BZ_ERR_TOO_LARGE);
}

/* ---- Token format ---- */

static void test_token_random_format(void **state)
{
	(void)state;
	char a[AUTH_REFRESH_TOKEN_LEN + 1], b[AUTH_REFRESH_TOKEN_LEN + 1];

	assert_int_equal(auth_token_random(a), 0);
	assert_int_equal(auth_token_random(b), 0);
	assert_int_equal(strlen(a), 43); /* 32 bytes, unpadded base64url */
	assert_true(auth_token_well_formed(a));
	assert_string_not_equal(a, b);
	size_t n = 0;
	uint8_t *raw = crypto_base64url_decode(a, strlen(a), &n);
	assert_non_null(raw);
	assert_int_equal(n, AUTH_REFRESH_TOKEN_BYTES);
	free(raw);
}

static void test_token_well_formed(void **state)
{
	(void)state;
	static const char *bad[] = {
		"",
		"abc",
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",	/* 42 */
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", /* 44 */
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",	/* padding */
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA+",	/* base64, not base64url */
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/",
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA ",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		if (auth_token_well_formed(bad[i]))
			fail_msg("'%s' taken as well formed", bad[i]);
	assert_false(auth_token_well_formed(NULL));
	assert_true(auth_token_well_formed("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA-_"));
}

static void test_token_hash(void **state)
{
	(void)state;
	const char *tok = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA-_";
	char h[BZ_SHA256_HEX_LEN + 1], want[BZ_SHA256_HEX_LEN + 1];

	assert_int_equal(auth_refresh_token_hash(tok, h), 0);
	assert_int_equal(crypto_sha256_hex(tok, strlen(tok), want), 0);
	assert_string_equal(h, want); /* the stored form is SHA-256 hex of the token text */
	assert_int_equal(strlen(h), 64);
	assert_int_equal(auth_refresh_token_hash("short", h), BZ_ERR_INVALID);
	assert_string_equal(h, "");
}

/* ---- Origins ---- */

static const struct {
	const char *in, *out; /* out NULL: refused */
} origins[] = {
	{"https://rmm.example.com", "https://rmm.example.com"},
	{"HTTPS://RMM.Example.COM", "https://rmm.example.com"},
	{"https://rmm.example.com:443", "https://rmm.example.com"},
	{"http://rmm.example.com:80", "http://rmm.example.com"},
	{"https://rmm.example.com:8443", "https://rmm.example.com:8443"},
	{"http://127.0.0.1:8080", "http://127.0.0.1:8080"},
	{"http://[::1]:8080", "http://[::1]:8080"},
	{"null", NULL},
	{"", NULL},
	{"rmm.example.com", NULL},
	{"ftp://rmm.example.com", NULL},
	{"https://rmm.example.com/", NULL},
	{"https://rmm.example.com/app", NULL},
	{"https://rmm.example.com?x=1", NULL},
	{"https://rmm.example.com#f", NULL},
	{"https://user@rmm.example.com", NULL},
	{"https://user:pw@rmm.example.com", NULL},
	{"https://", NULL},
	{"https://rmm.example.com:99999", NULL},
	{"https://rmm.example.com, https://evil.example", NULL},
};

static void test_origin_normalize(void **state)
{
	(void)state;
	char out[CONFIG_ORIGIN_LEN];

	for (size_t i = 0; i < sizeof(origins) / sizeof(*origins); i++) {
		int rc = config_origin_normalize(origins[i].in, out, sizeof(out));
		if (origins[i].out == NULL ? rc == 0 : (rc != 0 || strcmp(out, origins[i].out)))
			fail_msg("'%s': rc %d '%s', want %s", origins[i].in, rc, out,
				 origins[i].out ? origins[i].out : "refused");
	}
	assert_int_equal(config_origin_normalize(NULL, out, sizeof(out)), BZ_ERR_INVALID);
	/* Too small an output buffer refuses rather than truncates. */
	assert_int_equal(config_origin_normalize("https://rmm.example.com", out, 10),
			 BZ_ERR_INVALID);
}

/* ALLOWED_ORIGINS is stored normalized, item by item. */
static void test_allowed_origins_config(void **state)
{
	(void)state;
	static const char *secrets[] = {"JWT_SECRET", "ENROLLMENT_KEY_PEPPER",
					"AGENT_ENROLLMENT_SECRET"};
	struct config cfg;
	struct config_problems p;
	char hex[65];

	setenv("BREEZE_ENV", "development", 1);
	setenv("DATABASE_URL", "postgresql://app:pw@127.0.0.1:5432/breeze", 1);
	setenv("REDIS_URL", "redis://:pw@127.0.0.1:6379/0", 1);
	for (size_t i = 0; i < sizeof(secrets) / sizeof(*secrets); i++) {
		assert_int_equal(crypto_random_hex(32, hex), 0);
		setenv(secrets[i], hex, 1);
	}
	setenv("ALLOWED_ORIGINS", "HTTPS://Rmm.Example.test:443,http://127.0.0.1:8080", 1);
	assert_int_equal(config_load(&cfg, CONFIG_FOR_SERVE, &p), 0);
	assert_int_equal(cfg.allowed_origins.n, 2);
	assert_string_equal(cfg.allowed_origins.v[0], "https://rmm.example.test");
	assert_string_equal(cfg.allowed_origins.v[1], "http://127.0.0.1:8080");
	setenv("ALLOWED_ORIGINS", "https://a.test,", 1); /* a trailing comma is an empty item */
	assert_int_equal(config_load(&cfg, CONFIG_FOR_SERVE, &p), BZ_ERR_INVALID);
	setenv("ALLOWED_ORIGINS",
	       "http://a1.test,http://a2.test,http://a3.test,http://a4.test,http://a5.test,"
	       "http://a6.test,http://a7.test,http://a8.test,http://a9.test",
	       1);
	assert_int_equal(config_load(&cfg, CONFIG_FOR_SERVE, &p), BZ_ERR_INVALID);
	unsetenv("ALLOWED_ORIGINS");
	assert_int_equal(config_load(&cfg, CONFIG_FOR_SERVE, &p), 0);
	assert_int_equal(cfg.allowed_origins.n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cookie_table),
		cmocka_unit_test(test_cookie_real_token),
		cmocka_unit_test(test_token_random_format),
		cmocka_unit_test(test_token_well_formed),
		cmocka_unit_test(test_token_hash),
		cmocka_unit_test(test_origin_normalize),
		cmocka_unit_test(test_allowed_origins_config),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
