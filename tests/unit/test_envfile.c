/* Unit tests for src/common/envfile.c: KEY=VALUE parsing (comments, blank
 * lines, "export ", quotes), the environment winning over the file, and
 * error messages that give a line number but never a value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/envfile.h"
#include "common/err.h"

/* Every variable the tests set, cleared before and after each test. */
static const char *vars[] = {
	"BZT_PLAIN", "BZT_EXPORTED", "BZT_DQ",	   "BZT_SQ",	"BZT_SPACED", "BZT_EMPTY",
	"BZT_EQ",    "BZT_HASH",     "BZT_PRESET", "BZT_AFTER", "BZT_BEFORE", "BZT_MISMATCH",
	"BZT_LAST",  "_BZT_U1",	     "BZT_CRLF",   "BZT_ONEQ",
};

struct fixture {
	char path[64];
};

static void clear_vars(void)
{
	for (size_t i = 0; i < sizeof(vars) / sizeof(*vars); i++)
		unsetenv(vars[i]);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	snprintf(f->path, sizeof(f->path), "/tmp/bz-envfile-XXXXXX");
	int fd = mkstemp(f->path);
	if (fd < 0) {
		free(f);
		return -1;
	}
	close(fd);
	clear_vars();
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	unlink(f->path);
	free(f);
	clear_vars();
	return 0;
}

static void write_file(const struct fixture *f, const char *text)
{
	FILE *fp = fopen(f->path, "w");

	assert_non_null(fp);
	assert_int_equal(fputs(text, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
}

static void assert_env(const char *name, const char *want)
{
	const char *v = getenv(name);

	if (want == NULL) {
		if (v != NULL)
			fail_msg("%s should be unset, is [%s]", name, v);
		return;
	}
	if (v == NULL)
		fail_msg("%s unset, want [%s]", name, want);
	if (strcmp(v, want) != 0)
		fail_msg("%s = [%s], want [%s]", name, v, want);
}

static void test_syntax(void **state)
{
	struct fixture *f = *state;
	char err[256] = "";

	write_file(f, "# a comment\n"
		      "\n"
		      "   \n"
		      "  # an indented comment\n"
		      "BZT_PLAIN=plain-value\n"
		      "export BZT_EXPORTED=exported\n"
		      "BZT_DQ=\"double quoted # not a comment\"\n"
		      "BZT_SQ='single quoted'\n"
		      "  BZT_SPACED  =  spaced out  \n"
		      "BZT_EMPTY=\n"
		      "BZT_EQ=a=b=c\n"
		      "BZT_HASH=abc#def\n"
		      "BZT_MISMATCH=\"unterminated\n"
		      "BZT_ONEQ=\"\n"
		      "_BZT_U1=underscore\n"
		      "BZT_CRLF=crlf\r\n"
		      "BZT_LAST=no-newline");
	assert_int_equal(envfile_load(f->path, err, sizeof(err)), 0);
	assert_env("BZT_PLAIN", "plain-value");
	assert_env("BZT_EXPORTED", "exported");
	assert_env("BZT_DQ", "double quoted # not a comment");
	assert_env("BZT_SQ", "single quoted");
	assert_env("BZT_SPACED", "spaced out");
	assert_env("BZT_EMPTY", "");
	assert_env("BZT_EQ", "a=b=c");
	assert_env("BZT_HASH", "abc#def");
	assert_env("BZT_MISMATCH", "\"unterminated"); /* quotes only strip in pairs */
	assert_env("BZT_ONEQ", "\"");
	assert_env("_BZT_U1", "underscore");
	assert_env("BZT_CRLF", "crlf");
	assert_env("BZT_LAST", "no-newline");
}

static void test_environment_wins(void **state)
{
	struct fixture *f = *state;
	char err[256] = "";

	assert_int_equal(setenv("BZT_PRESET", "from-environment", 1), 0);
	write_file(f, "BZT_PRESET=from-file\nBZT_AFTER=set\n");
	assert_int_equal(envfile_load(f->path, err, sizeof(err)), 0);
	assert_env("BZT_PRESET", "from-environment");
	assert_env("BZT_AFTER", "set");
}

struct bad_case {
	const char *name;
	const char *text;
	int line;	   /* expected line number in the message */
	const char *value; /* a value in the file that must not appear in the message */
};

static const struct bad_case bad_cases[] = {
	{"no equals sign", "BZT_BEFORE=ok\n# fine\nHUNTER2-SECRET-VALUE\n", 3,
	 "HUNTER2-SECRET-VALUE"},
	{"key with a space", "BZT_BEFORE=ok\nBAD KEY=s3cr3t-value-xyz\n", 2, "s3cr3t-value-xyz"},
	{"key starts with a digit", "1BZT=s3cr3t-value-xyz\n", 1, "s3cr3t-value-xyz"},
	{"key with a dash", "\n\n\n\nBZT-DASH=s3cr3t-value-xyz\n", 5, "s3cr3t-value-xyz"},
	{"empty key", "BZT_BEFORE=ok\n=s3cr3t-value-xyz\n", 2, "s3cr3t-value-xyz"},
	{"export without assignment", "export BZT_BEFORE\n", 1, "BZT_BEFORE"},
	{"key with a quote", "\"BZT_Q\"=s3cr3t-value-xyz\n", 1, "s3cr3t-value-xyz"},
};

static void test_malformed(void **state)
{
	struct fixture *f = *state;

	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(*bad_cases); i++) {
		const struct bad_case *c = &bad_cases[i];
		char err[256], want[32];

		memset(err, 0, sizeof(err));
		write_file(f, c->text);
		if (envfile_load(f->path, err, sizeof(err)) != BZ_ERR_INVALID)
			fail_msg("case \"%s\": accepted", c->name);
		snprintf(want, sizeof(want), ":%d:", c->line);
		if (strstr(err, want) == NULL)
			fail_msg("case \"%s\": message [%s] lacks line %d", c->name, err, c->line);
		if (strstr(err, c->value) != NULL)
			fail_msg("case \"%s\": message [%s] leaks the value", c->name, err);
		clear_vars();
	}
}

static void test_missing_file(void **state)
{
	char err[256] = "";

	(void)state;
	assert_int_equal(envfile_load("/nonexistent/bz-envfile-test", err, sizeof(err)), BZ_ERR_IO);
	assert_true(strlen(err) > 0);
}

static void test_small_error_buffer(void **state)
{
	struct fixture *f = *state;
	char err[8];

	memset(err, 'x', sizeof(err));
	write_file(f, "no equals sign here\n");
	assert_int_equal(envfile_load(f->path, err, sizeof(err)), BZ_ERR_INVALID);
	assert_int_equal(strlen(err), sizeof(err) - 1); /* truncated, still terminated */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_syntax, setup, teardown),
		cmocka_unit_test_setup_teardown(test_environment_wins, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test_setup_teardown(test_small_error_buffer, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
