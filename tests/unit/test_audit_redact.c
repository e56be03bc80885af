/* Unit tests for audit_redact (src/server/audit/audit.c): secrets are
 * replaced by "[REDACTED]" at any depth before an audit row is written,
 * identifiers that merely mention a key are kept, and the input is not
 * modified. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "server/audit/audit.h"

static json_t *parse(const char *text)
{
	json_error_t e;
	json_t *j = json_loads(text, JSON_DECODE_ANY, &e);

	if (j == NULL)
		fail_msg("test bug: bad JSON (%s): %s", e.text, text);
	return j;
}

/* Redacts IN and compares with WANT, both as JSON text. */
static void check(const char *in, const char *want)
{
	json_t *src = parse(in), *exp = parse(want);
	char *before = json_dumps(src, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY);
	json_t *got = audit_redact(src);

	assert_non_null(got);
	if (!json_equal(got, exp)) {
		char *g = json_dumps(got, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY);
		print_error("redact(%s)\n  got  %s\n  want %s\n", in, g ? g : "(null)", want);
		free(g);
		fail();
	}
	/* A deep copy: the caller's object is untouched and not shared. */
	char *after = json_dumps(src, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY);
	assert_non_null(before);
	assert_non_null(after);
	assert_string_equal(before, after);
	if (json_is_object(got) || json_is_array(got))
		assert_ptr_not_equal(got, src);
	free(before);
	free(after);
	json_decref(got);
	json_decref(exp);
	json_decref(src);
}

static const struct {
	const char *in, *want;
} cases[] = {
	/* The words of the rule, in the spellings the API uses. */
	{"{\"password\":\"hunter2\",\"name\":\"n\"}",
	 "{\"password\":\"[REDACTED]\",\"name\":\"n\"}"},
	{"{\"token\":\"t\",\"refresh_token\":\"r\",\"accessToken\":\"a\"}",
	 "{\"token\":\"[REDACTED]\",\"refresh_token\":\"[REDACTED]\",\"accessToken\":\"[REDACTED]\"}"},
	{"{\"secret\":\"s\",\"clientSecret\":\"c\",\"SECRET_VALUE\":\"v\"}",
	 "{\"secret\":\"[REDACTED]\",\"clientSecret\":\"[REDACTED]\",\"SECRET_VALUE\":\"[REDACTED]\"}"},
	{"{\"apiKey\":\"k\",\"api_key\":\"k\",\"key\":\"k\",\"enrollmentKey\":\"k\"}",
	 "{\"apiKey\":\"[REDACTED]\",\"api_key\":\"[REDACTED]\",\"key\":\"[REDACTED]\","
	 "\"enrollmentKey\":\"[REDACTED]\"}"},
	{"{\"newPassword\":\"p\",\"currentPassword\":\"p\",\"PassWord\":\"p\"}",
	 "{\"newPassword\":\"[REDACTED]\",\"currentPassword\":\"[REDACTED]\",\"PassWord\":\"[REDACTED]\"}"},

	/* Identifiers are not secrets. */
	{"{\"enrollmentKeyId\":\"e1\",\"api_key_id\":\"a1\",\"tokenId\":\"t1\"}",
	 "{\"enrollmentKeyId\":\"e1\",\"api_key_id\":\"a1\",\"tokenId\":\"t1\"}"},

	/* Non-string values under a secret key are replaced whole. */
	{"{\"secret\":{\"a\":1,\"b\":[1,2]},\"token\":null,\"password\":12345,\"apiKey\":[\"x\"]}",
	 "{\"secret\":\"[REDACTED]\",\"token\":\"[REDACTED]\",\"password\":\"[REDACTED]\","
	 "\"apiKey\":\"[REDACTED]\"}"},

	/* Any depth, through objects and arrays. */
	{"{\"user\":{\"email\":\"a@b\",\"password\":\"p\",\"profile\":{\"mfa\":{\"secret\":\"s\"}}}}",
	 "{\"user\":{\"email\":\"a@b\",\"password\":\"[REDACTED]\","
	 "\"profile\":{\"mfa\":{\"secret\":\"[REDACTED]\"}}}}"},
	{"{\"keys\":[{\"apiKey\":\"k1\",\"api_key_id\":\"id1\"},{\"token\":\"t2\",\"name\":\"x\"}]}",
	 "{\"keys\":\"[REDACTED]\"}"},
	{"{\"items\":[{\"apiKey\":\"k1\",\"api_key_id\":\"id1\"},[{\"token\":\"t2\"}],\"plain\",3]}",
	 "{\"items\":[{\"apiKey\":\"[REDACTED]\",\"api_key_id\":\"id1\"},[{\"token\":\"[REDACTED]\"}],"
	 "\"plain\",3]}"},
	{"[{\"password\":\"p\"},{\"ok\":true}]", "[{\"password\":\"[REDACTED]\"},{\"ok\":true}]"},
	/* An exempt identifier key still has its contents checked. */
	{"{\"enrollmentKeyId\":{\"secret\":\"s\",\"id\":\"e1\"}}",
	 "{\"enrollmentKeyId\":{\"secret\":\"[REDACTED]\",\"id\":\"e1\"}}"},

	/* Nothing to redact: an equal copy. */
	{"{\"deviceId\":\"d\",\"hostname\":\"h\",\"count\":3,\"ok\":false,\"none\":null,"
	 "\"tags\":[\"a\",\"b\"]}",
	 "{\"deviceId\":\"d\",\"hostname\":\"h\",\"count\":3,\"ok\":false,\"none\":null,"
	 "\"tags\":[\"a\",\"b\"]}"},
	{"{}", "{}"},
	{"\"password\"", "\"password\""}, /* a value, not a key */
};

static void test_redact_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++)
		check(cases[i].in, cases[i].want);
}

static void test_redact_null(void **state)
{
	json_t *got;

	(void)state;
	got = audit_redact(NULL);
	assert_non_null(got);
	assert_true(json_is_object(got));
	assert_int_equal(json_object_size(got), 0);
	json_decref(got);
}

/* The redacted text of a realistic event body must not contain any of the
 * secret values anywhere. */
static void test_no_secret_survives(void **state)
{
	json_t *src = parse("{\"org\":{\"settings\":{\"smtp\":{\"password\":\"SMTP-PW-1\"}}},"
			    "\"agents\":[{\"agentToken\":\"AGENT-TOK-2\",\"deviceId\":\"d1\"}],"
			    "\"webhook\":{\"signingSecret\":\"WH-SEC-3\",\"url\":\"https://x\"},"
			    "\"key\":{\"privateKey\":\"PRIV-4\"}}");
	static const char *secrets[] = {"SMTP-PW-1", "AGENT-TOK-2", "WH-SEC-3", "PRIV-4"};

	(void)state;
	json_t *got = audit_redact(src);
	char *text = json_dumps(got, JSON_COMPACT);
	assert_non_null(text);
	for (size_t i = 0; i < sizeof(secrets) / sizeof(*secrets); i++)
		if (strstr(text, secrets[i]) != NULL)
			fail_msg("secret %s survived: %s", secrets[i], text);
	assert_non_null(strstr(text, "\"deviceId\":\"d1\""));
	assert_non_null(strstr(text, "\"url\":\"https://x\""));
	free(text);
	json_decref(got);
	json_decref(src);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_redact_table),
		cmocka_unit_test(test_redact_null),
		cmocka_unit_test(test_no_secret_survives),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
