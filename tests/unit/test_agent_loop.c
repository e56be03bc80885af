/* Unit tests for src/agent/loop.c: backoff and jitter bounds, Retry-After
 * never shortened (checklist R6), status classification, interruptible
 * sleep. The random source is pinned so every case is reproducible. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sys/resource.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/loop.h"

/* Returns *(uint64_t *)ctx every time. */
static uint64_t fixed_rand(void *ctx)
{
	return *(uint64_t *)ctx;
}

/* splitmix64: deterministic, well spread. */
static uint64_t seq_rand(void *ctx)
{
	uint64_t *s = ctx;
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t delay_fixed(enum agent_outcome o, unsigned failures, long interval_s, long long ra,
			    uint64_t r)
{
	struct agent_delay_input in = {o, failures, interval_s, ra};

	return agent_next_delay_ms(&in, fixed_rand, &r);
}

static void test_success_interval_jitter(void **state)
{
	struct agent_delay_input in = {AGENT_OUTCOME_OK, 0, 60, -1};
	uint64_t seed = 42, min = UINT64_MAX, max = 0;

	(void)state;
	/* ±10 % of 60 s, both ends reachable. */
	assert_true(delay_fixed(AGENT_OUTCOME_OK, 0, 60, -1, 0) == 54000);
	assert_true(delay_fixed(AGENT_OUTCOME_OK, 0, 60, -1, 12000) == 66000);
	assert_true(delay_fixed(AGENT_OUTCOME_OK, 0, 60, -1, 12001) == 54000);
	for (int i = 0; i < 100000; i++) {
		uint64_t d = agent_next_delay_ms(&in, seq_rand, &seed);
		if (d < min)
			min = d;
		if (d > max)
			max = d;
	}
	assert_true(min >= 54000 && min < 54100);
	assert_true(max <= 66000 && max > 65900);
	/* A server-provided interval is used as is. */
	assert_true(delay_fixed(AGENT_OUTCOME_OK, 0, 300, -1, 0) == 270000);
}

static void test_backoff_full_jitter_bounds(void **state)
{
	uint64_t seed = 7;

	(void)state;
	for (unsigned n = 0; n < 40; n++) {
		uint64_t cap = n < 9 ? 1000ULL << n : 300000;
		if (cap > 300000)
			cap = 300000;
		/* Top of the range is exactly min(cap, base·2^n); bottom is 0. */
		assert_true(delay_fixed(AGENT_OUTCOME_RETRY, n, 60, -1, cap) == cap);
		assert_true(delay_fixed(AGENT_OUTCOME_RETRY, n, 60, -1, 0) == 0);
		for (int i = 0; i < 2000; i++) {
			struct agent_delay_input in = {AGENT_OUTCOME_RETRY, n, 60, -1};
			uint64_t d = agent_next_delay_ms(&in, seq_rand, &seed);
			if (d > cap)
				fail_msg("failures=%u: delay %llu above cap %llu", n,
					 (unsigned long long)d, (unsigned long long)cap);
		}
	}
	assert_true(delay_fixed(AGENT_OUTCOME_RETRY, 0, 60, -1, UINT64_MAX) <= 1000);
	assert_true(delay_fixed(AGENT_OUTCOME_RETRY, 1, 60, -1, 2000) == 2000);
	assert_true(delay_fixed(AGENT_OUTCOME_RETRY, 8, 60, -1, 256000) == 256000);
	assert_true(delay_fixed(AGENT_OUTCOME_RETRY, 9, 60, -1, 300000) == 300000);
	assert_true(delay_fixed(AGENT_OUTCOME_RETRY, UINT_MAX, 60, -1, UINT64_MAX) <= 300000);
	/* The retry delay does not depend on Retry-After or the interval. */
	assert_true(delay_fixed(AGENT_OUTCOME_RETRY, 2, 86400, 999, 4000) == 4000);
}

static void test_retry_after_never_shortened(void **state)
{
	static const long long values[] = {0,	1,   2,	  5,	59,    60,	    61,
					   299, 300, 301, 3600, 86400, 1000000000LL};
	static const uint64_t rands[] = {0, 1, 999, 1000, 65535, UINT64_MAX / 2, UINT64_MAX};
	uint64_t seed = 99;

	(void)state;
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		uint64_t floor_ms = (uint64_t)values[i] * 1000;
		for (size_t r = 0; r < sizeof(rands) / sizeof(rands[0]); r++) {
			/* Whatever the failure count: a long run of 5xx before
			 * the 429 must not shorten it either. */
			for (unsigned n = 0; n < 12; n += 11) {
				uint64_t d = delay_fixed(AGENT_OUTCOME_RATE_LIMITED, n, 60,
							 values[i], rands[r]);
				if (d < floor_ms || d > floor_ms + floor_ms / 10)
					fail_msg("Retry-After %lld s gave %llu ms", values[i],
						 (unsigned long long)d);
			}
		}
		for (int k = 0; k < 1000; k++) {
			struct agent_delay_input in = {AGENT_OUTCOME_RATE_LIMITED, 0, 60,
						       values[i]};
			assert_true(agent_next_delay_ms(&in, seq_rand, &seed) >= floor_ms);
		}
	}
	/* Longer than the backoff cap: still honoured, not capped at 5 min. */
	assert_true(delay_fixed(AGENT_OUTCOME_RATE_LIMITED, 0, 60, 3600, 0) == 3600000);
	/* Without a header: 60 s. */
	assert_true(delay_fixed(AGENT_OUTCOME_RATE_LIMITED, 0, 60, -1, 0) == 60000);
	assert_true(delay_fixed(AGENT_OUTCOME_RATE_LIMITED, 0, 60, -1, UINT64_MAX) >= 60000);
}

static const struct {
	long status;
	enum agent_outcome want;
	int exit_code;
} status_cases[] = {
	{200, AGENT_OUTCOME_OK, -EAGAIN},
	{201, AGENT_OUTCOME_OK, -EAGAIN},
	{204, AGENT_OUTCOME_OK, -EAGAIN},
	{0, AGENT_OUTCOME_RETRY, -EAGAIN}, /* transport error */
	{500, AGENT_OUTCOME_RETRY, -EAGAIN},
	{502, AGENT_OUTCOME_RETRY, -EAGAIN},
	{503, AGENT_OUTCOME_RETRY, -EAGAIN},
	{504, AGENT_OUTCOME_RETRY, -EAGAIN},
	{302, AGENT_OUTCOME_RETRY, -EAGAIN},
	{400, AGENT_OUTCOME_RETRY, -EAGAIN},
	{429, AGENT_OUTCOME_RATE_LIMITED, -EAGAIN},
	{401, AGENT_OUTCOME_REENROLL, BZ_EXIT_REJECTED},
	{403, AGENT_OUTCOME_FORBIDDEN, BZ_EXIT_DISABLED},
	{404, AGENT_OUTCOME_FORBIDDEN, BZ_EXIT_DISABLED},
};

static void test_classify_and_exit_codes(void **state)
{
	(void)state;
	/* The values are a published interface (README "Exit codes"). */
	assert_int_equal(BZ_EXIT_REJECTED, 6);
	assert_int_equal(BZ_EXIT_DISABLED, 7);
	for (size_t i = 0; i < sizeof(status_cases) / sizeof(status_cases[0]); i++) {
		enum agent_outcome o = agent_loop_classify(status_cases[i].status);
		if (o != status_cases[i].want)
			fail_msg("status %ld classified %d", status_cases[i].status, (int)o);
		assert_int_equal(agent_loop_exit_code(o), status_cases[i].exit_code);
	}
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void *send_term(void *arg)
{
	(void)arg;
	usleep(100 * 1000);
	kill(getpid(), SIGTERM);
	return NULL;
}

static void test_sleep_interruptible(void **state)
{
	pthread_t t;
	uint64_t t0;

	(void)state;
	agent_loop_stop = 0;
	t0 = now_ms();
	assert_int_equal(agent_loop_sleep_ms(60), 0);
	assert_true(now_ms() - t0 >= 60);

	agent_loop_stop = 1;
	t0 = now_ms();
	assert_int_equal(agent_loop_sleep_ms(60000), 1);
	assert_true(now_ms() - t0 < 100);

	/* SIGTERM during a long sleep ends it promptly. */
	agent_loop_stop = 0;
	assert_int_equal(agent_loop_install_signals(), 0);
	assert_int_equal(pthread_create(&t, NULL, send_term, NULL), 0);
	t0 = now_ms();
	assert_int_equal(agent_loop_sleep_ms(60000), 1);
	assert_true(now_ms() - t0 < 2000);
	pthread_join(t, NULL);
	assert_true(agent_loop_stop != 0);
	agent_loop_stop = 0;
}

/* Once the handlers are installed, a long sleep is one wait, not a wake-up
 * every 500 ms (each cost the agent CPU per heartbeat): a 1.2 s sleep
 * switches out voluntarily once (the old slices: three times). */
static void test_sleep_wakes_once(void **state)
{
	struct rusage a, b;

	(void)state;
	agent_loop_stop = 0;
	assert_int_equal(agent_loop_install_signals(), 0);
	assert_int_equal(getrusage(RUSAGE_THREAD, &a), 0);
	assert_int_equal(agent_loop_sleep_ms(1200), 0);
	assert_int_equal(getrusage(RUSAGE_THREAD, &b), 0);
	assert_true(b.ru_nvcsw - a.ru_nvcsw <= 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_success_interval_jitter),
		cmocka_unit_test(test_backoff_full_jitter_bounds),
		cmocka_unit_test(test_retry_after_never_shortened),
		cmocka_unit_test(test_classify_and_exit_codes),
		cmocka_unit_test(test_sleep_interruptible),
		cmocka_unit_test(test_sleep_wakes_once),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
