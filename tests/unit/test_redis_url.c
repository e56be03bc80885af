/* Unit tests for redis_url_parse (src/server/redis/redis.c): host, port,
 * password and database from redis://[:password@]host[:port][/db], and the
 * URLs it must refuse. No Redis server is needed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "server/redis/redis.h"

static const struct {
	const char *url;
	const char *host;
	int port;
	const char *password;
	int db;
} good[] = {
	{"redis://:pw@127.0.0.1:6380/2", "127.0.0.1", 6380, "pw", 2},
	{"redis://127.0.0.1", "127.0.0.1", 6379, "", 0},
	{"redis://redis.internal:6379", "redis.internal", 6379, "", 0},
	{"redis://localhost/", "localhost", 6379, "", 0},
	{"redis://localhost/0", "localhost", 6379, "", 0},
	{"redis://localhost/15", "localhost", 6379, "", 15},
	{"redis://:p%40ss%3Aw%2Fd%20x@cache:7000/1", "cache", 7000, "p@ss:w/d x", 1},
	{"redis://:a%25b@cache", "cache", 6379, "a%b", 0},
	{"redis://[::1]:6379/3", "::1", 6379, "", 3},
	{"redis://:pw@[2001:db8::5]/4", "2001:db8::5", 6379, "pw", 4},
	{"redis://cache:1", "cache", 1, "", 0},
	{"redis://cache:65535", "cache", 65535, "", 0},
};

static void test_parse_good(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++) {
		struct redis_target t;

		memset(&t, 0x5a, sizeof(t));
		if (redis_url_parse(good[i].url, &t) != 0)
			fail_msg("refused %s", good[i].url);
		if (strcmp(t.host, good[i].host) != 0 || t.port != good[i].port ||
		    strcmp(t.password, good[i].password) != 0 || t.db != good[i].db)
			fail_msg("%s -> host=%s port=%d password=%s db=%d", good[i].url, t.host,
				 t.port, t.password, t.db);
	}
}

static const char *bad[] = {
	"",
	"http://127.0.0.1:6379",
	"https://:pw@127.0.0.1:6379/0",
	"rediss://127.0.0.1:6379", /* TLS is not implemented, so not accepted silently */
	"127.0.0.1:6379",
	"redis:127.0.0.1",
	"redis://127.0.0.1:6379/99",
	"redis://127.0.0.1:6379/16",
	"redis://127.0.0.1:6379/-1",
	"redis://127.0.0.1:6379/abc",
	"redis://127.0.0.1:6379/1/2",
	"redis://127.0.0.1:6379/1x",
	"redis://127.0.0.1:0",
	"redis://127.0.0.1:65536",
	"redis://127.0.0.1:port",
	"redis://",
	"redis:///",
	"redis://:pw@",
	"redis://:pw@/2",
	"redis://:pw@:6379/0",
	/* Missing host: the database number must not be taken for one. */
	"redis:///0",
	"redis:///2",
};

static void test_parse_bad(void **state)
{
	unsigned failures = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		struct redis_target t;

		if (redis_url_parse(bad[i], &t) != BZ_ERR_INVALID) {
			print_error("accepted \"%s\" as host=%s port=%d db=%d\n", bad[i], t.host,
				    t.port, t.db);
			failures++;
		}
	}
	assert_int_equal(failures, 0);
}

static void test_password_wiped_on_failure(void **state)
{
	struct redis_target t;
	char zero[sizeof(t.password)];

	(void)state;
	memset(zero, 0, sizeof(zero));
	assert_int_equal(redis_url_parse("redis://:hunter2@127.0.0.1:6379/99", &t), BZ_ERR_INVALID);
	assert_memory_equal(t.password, zero, sizeof(zero));
}

static void test_password_too_long(void **state)
{
	struct redis_target t;
	char url[600];
	char pw[300];

	(void)state;
	memset(pw, 'p', sizeof(pw) - 1);
	pw[sizeof(pw) - 1] = '\0';
	snprintf(url, sizeof(url), "redis://:%s@127.0.0.1:6379/0", pw);
	assert_int_equal(redis_url_parse(url, &t), BZ_ERR_INVALID);

	/* 255 characters still fit. */
	pw[255] = '\0';
	snprintf(url, sizeof(url), "redis://:%s@127.0.0.1:6379/0", pw);
	assert_int_equal(redis_url_parse(url, &t), 0);
	assert_int_equal(strlen(t.password), 255);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_good),
		cmocka_unit_test(test_parse_bad),
		cmocka_unit_test(test_password_wiped_on_failure),
		cmocka_unit_test(test_password_too_long),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
