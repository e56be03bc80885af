/*
 * test_password_policy.c — the registration password rules
 * (auth/password_policy.c): length in characters, the e-mail address, and
 * the built-in common-password list, case-insensitively.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "server/auth/auth.h"

static void check(const char *pw, const char *email, int want, const char *msg_part)
{
	struct bz_errinfo why = {0};
	int rc = auth_password_check(pw, email, &why);

	if (rc != want)
		fprintf(stderr, "password %s: want %d, got %d (%s)\n", pw, want, rc,
			why.msg ? why.msg : "");
	assert_int_equal(rc, want);
	if (msg_part != NULL) {
		assert_string_equal(why.code, "weak_password");
		assert_string_equal(why.field, "password");
		assert_non_null(strstr(why.msg, msg_part));
	}
}

static void list_is_loaded(void **state)
{
	(void)state;
	size_t n = 0;

	assert_int_equal(auth_password_policy_init(&n), 0);
	assert_true(n >= 3000);
}

static void rules(void **state)
{
	(void)state;
	char long_pw[200];

	check("vXq3-tRm8-Lp2z", "a@b.test", 0, NULL);
	check("short-9xQ", "a@b.test", BZ_ERR_INVALID, "12 to 128");
	memset(long_pw, 'k', 129);
	long_pw[129] = '\0';
	check(long_pw, "a@b.test", BZ_ERR_INVALID, "12 to 128");
	long_pw[128] = '\0';
	long_pw[0] = 'Q';
	check(long_pw, "a@b.test", 0, NULL);
	/* Characters, not bytes: twelve two-byte letters are long enough. */
	check("\xc3\xa9\xc3\xa8\xc3\xa0\xc3\xb9\xc3\xa2\xc3\xaa\xc3\xae\xc3\xb4\xc3\xbb\xc3\xa7"
	      "\xc3\xab\xc3\xaf",
	      "a@b.test", 0, NULL);
	check("\xff\xfe-not-utf8-at-all", "a@b.test", BZ_ERR_INVALID, "12 to 128");
	check("alice.smith@example.test", "alice.smith@example.test", BZ_ERR_INVALID, "e-mail");
	check("xx-ALICE.SMITH@EXAMPLE.TEST-xx", "alice.smith@example.test", BZ_ERR_INVALID,
	      "e-mail");
	check("my-alicesmith-pass", "alicesmith@example.test", BZ_ERR_INVALID, "e-mail");
	check("winniethepooh", "a@b.test", BZ_ERR_INVALID, "common");
	check("WinnieThePooh", "a@b.test", BZ_ERR_INVALID, "common");
	check("qwertyuiop123", "a@b.test", BZ_ERR_INVALID, "common");
	check("PASSWORD123456", "a@b.test", BZ_ERR_INVALID, "common");
	check("Dragon2025!!!!", "a@b.test", BZ_ERR_INVALID, "common");
	check("Iloveyou12345678", "a@b.test", BZ_ERR_INVALID, "common");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(list_is_loaded),
		cmocka_unit_test(rules),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
