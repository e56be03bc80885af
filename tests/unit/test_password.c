/* Unit tests for src/crypto/password.c: argon2id hashing and verification,
 * the PHC string with the default (RFC 9106 / OWASP) parameters, parameter
 * bounds, the dummy verify for unknown users, and the concurrency bound.
 *
 * The default-parameters test must run first: password_init changes the
 * process-wide parameters and nothing restores the built-in defaults. The
 * other tests use memory_kib = 8192 to stay fast. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "common/clock.h"
#include "common/err.h"
#include "crypto/password.h"

static const struct password_params fast = {8192, 1, 1, 4, 8};

static void test_default_params_phc_prefix(void **state)
{
	char h[PASSWORD_HASH_MAX];

	(void)state;
	assert_int_equal(password_hash("correct horse battery staple", h, sizeof(h)), 0);
	assert_true(strncmp(h, "$argon2id$v=19$m=19456,t=2,p=1$", 31) == 0);
	assert_int_equal(password_verify("correct horse battery staple", h), 1);
}

static void test_round_trip(void **state)
{
	char h1[PASSWORD_HASH_MAX], h2[PASSWORD_HASH_MAX];

	(void)state;
	assert_int_equal(password_init(&fast), 0);
	assert_int_equal(password_hash("s3cret-Passw0rd!", h1, sizeof(h1)), 0);
	assert_true(strncmp(h1, "$argon2id$v=19$m=8192,t=1,p=1$", 30) == 0);
	assert_int_equal(password_verify("s3cret-Passw0rd!", h1), 1);

	/* A fresh salt each time: same password, different encodings. */
	assert_int_equal(password_hash("s3cret-Passw0rd!", h2, sizeof(h2)), 0);
	assert_string_not_equal(h1, h2);
	assert_int_equal(password_verify("s3cret-Passw0rd!", h2), 1);
}

static void test_wrong_password(void **state)
{
	char h[PASSWORD_HASH_MAX];

	(void)state;
	assert_int_equal(password_init(&fast), 0);
	assert_int_equal(password_hash("s3cret-Passw0rd!", h, sizeof(h)), 0);
	assert_int_equal(password_verify("s3cret-Passw0rd?", h), 0);
	assert_int_equal(password_verify("s3cret-Passw0rd", h), 0);
	assert_int_equal(password_verify("", h), 0);
	assert_int_equal(password_verify(NULL, h), 0);
}

static void test_verify_null_encoded(void **state)
{
	char h[PASSWORD_HASH_MAX];

	(void)state;
	assert_int_equal(password_init(&fast), 0);
	assert_int_equal(password_hash("s3cret-Passw0rd!", h, sizeof(h)), 0);

	int64_t t0 = bz_monotonic_ms();
	assert_int_equal(password_verify("s3cret-Passw0rd!", h), 1);
	int64_t t1 = bz_monotonic_ms();
	/* An unknown user: no hash, but the same work is done and 0 returned. */
	assert_int_equal(password_verify("s3cret-Passw0rd!", NULL), 0);
	assert_int_equal(password_verify("s3cret-Passw0rd!", NULL), 0);
	int64_t t2 = bz_monotonic_ms();
	/* Timing is reported, not asserted: CI machines are too noisy. */
	print_message("verify(real)=%lld ms, verify(NULL) x2=%lld ms\n", (long long)(t1 - t0),
		      (long long)(t2 - t1));
}

static void test_verify_garbage(void **state)
{
	static const char *bad[] = {
		"",
		"garbage",
		"$argon2id$",
		"$argon2id$v=19$m=8192,t=1,p=1$",
		"$argon2id$v=19$m=8192,t=1,p=1$!!!!$????",
		"$argon2i$v=19$m=8192,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
		"$2b$12$abcdefghijklmnopqrstuuQ8hX7kP1bq8w7mJrOa6sQ0XgEo1o8mS",
	};

	(void)state;
	assert_int_equal(password_init(&fast), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		if (password_verify("whatever", bad[i]) != 0)
			fail_msg("verify accepted encoded hash [%s]", bad[i]);
}

/* The contract says 0 on "any error": a password the hasher refuses (over
 * 1024 bytes) or a NULL password must not match any stored hash, not even
 * the hash of the empty string. */
static void test_overlong_or_null_password_never_matches(void **state)
{
	char h[PASSWORD_HASH_MAX], *longpw;

	(void)state;
	assert_int_equal(password_init(&fast), 0);
	longpw = malloc(2001);
	assert_non_null(longpw);
	memset(longpw, 'x', 2000);
	longpw[2000] = '\0';
	assert_int_equal(password_hash(longpw, h, sizeof(h)), BZ_ERR_INVALID);

	assert_int_equal(password_hash("", h, sizeof(h)), 0);
	assert_int_equal(password_verify("", h), 1);
	int long_ok = password_verify(longpw, h);
	int null_ok = password_verify(NULL, h);
	free(longpw);
	if (long_ok != 0)
		print_error("a 2000-byte password matched the hash of \"\"\n");
	if (null_ok != 0)
		print_error("a NULL password matched the hash of \"\"\n");
	assert_int_equal(long_ok, 0);
	assert_int_equal(null_ok, 0);
}

static void test_init_bounds(void **state)
{
	struct password_params p;

	(void)state;
	p = fast;
	p.memory_kib = 8191;
	assert_int_equal(password_init(&p), BZ_ERR_INVALID);
	p.memory_kib = 0;
	assert_int_equal(password_init(&p), BZ_ERR_INVALID);
	p = fast;
	p.iterations = 0;
	assert_int_equal(password_init(&p), BZ_ERR_INVALID);
	p = fast;
	p.parallelism = 0;
	assert_int_equal(password_init(&p), BZ_ERR_INVALID);
	p = fast;
	p.max_concurrent = 0;
	assert_int_equal(password_init(&p), BZ_ERR_INVALID);
	p = fast;
	p.memory_kib = 8192;
	assert_int_equal(password_init(&p), 0);
}

#define N_THREADS 4

struct worker {
	pthread_t tid;
	char password[32];
	char hash[PASSWORD_HASH_MAX];
	int hash_rc, verify_ok;
};

static void *worker_run(void *arg)
{
	struct worker *w = arg;

	w->hash_rc = password_hash(w->password, w->hash, sizeof(w->hash));
	if (w->hash_rc == 0)
		w->verify_ok = password_verify(w->password, w->hash);
	return NULL;
}

/* With one slot, four concurrent callers must queue, not fail. */
static void test_concurrency_bound(void **state)
{
	struct password_params p = fast;
	struct worker w[N_THREADS];

	(void)state;
	p.max_concurrent = 1;
	assert_int_equal(password_init(&p), 0);
	memset(w, 0, sizeof(w));
	for (int i = 0; i < N_THREADS; i++) {
		snprintf(w[i].password, sizeof(w[i].password), "thread-%d-password", i);
		w[i].hash_rc = -99;
		assert_int_equal(pthread_create(&w[i].tid, NULL, worker_run, &w[i]), 0);
	}
	for (int i = 0; i < N_THREADS; i++)
		assert_int_equal(pthread_join(w[i].tid, NULL), 0);
	for (int i = 0; i < N_THREADS; i++) {
		assert_int_equal(w[i].hash_rc, 0);
		assert_int_equal(w[i].verify_ok, 1);
		/* Each hash belongs to its own thread's password only. */
		assert_int_equal(password_verify(w[(i + 1) % N_THREADS].password, w[i].hash), 0);
	}
}

static void *hash_slowly(void *arg)
{
	int *rc = arg;
	char out[PASSWORD_HASH_MAX];

	*rc = password_hash("a-password-to-hash", out, sizeof(out));
	return NULL;
}

/* Beyond max_waiting callers waiting for a slot, password_hash() and
 * password_check() refuse at once (BZ_ERR_UNAVAILABLE) instead of holding
 * one more request thread; password_verify() still waits. */
static void test_waiting_is_bounded(void **state)
{
	struct password_params p = fast;
	pthread_t t;
	int slow_rc = -99;
	char out[PASSWORD_HASH_MAX];

	(void)state;
	p.max_concurrent = 1;
	p.max_waiting = 0;
	p.iterations = 60; /* the slot stays taken for a good while */
	assert_int_equal(password_init(&p), 0);
	assert_int_equal(pthread_create(&t, NULL, hash_slowly, &slow_rc), 0);
	struct timespec ts = {0, 150 * 1000000L};
	nanosleep(&ts, NULL); /* the thread holds the only slot now */
	assert_int_equal(password_hash("pw", out, sizeof(out)), BZ_ERR_UNAVAILABLE);
	assert_int_equal(password_check("pw", "$argon2id$v=19$m=8192,t=1,p=1$c2FsdHNhbHQ$aGFzaA"),
			 BZ_ERR_UNAVAILABLE);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(slow_rc, 0);
	/* Alone, nothing is refused. */
	assert_int_equal(password_hash("pw", out, sizeof(out)), 0);
	assert_int_equal(password_check("pw", out), 1);
	assert_int_equal(password_check("other", out), 0);
	assert_int_equal(password_init(&fast), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		/* Must stay first: it checks the built-in defaults. */
		cmocka_unit_test(test_default_params_phc_prefix),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_wrong_password),
		cmocka_unit_test(test_verify_null_encoded),
		cmocka_unit_test(test_verify_garbage),
		cmocka_unit_test(test_overlong_or_null_password_never_matches),
		cmocka_unit_test(test_init_bounds),
		cmocka_unit_test(test_concurrency_bound),
		cmocka_unit_test(test_waiting_is_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
