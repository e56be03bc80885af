/* Unit tests for src/common/periodic.c: N threads start and each runs,
 * a sleep until a far deadline ends at once when stopped, on_stop runs
 * under the lock before the join, a bad thread count is refused, and
 * stop/start can repeat. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/periodic.h"

static struct bz_periodic P = BZ_PERIODIC_INIT;
static atomic_int runs, exited, stops_seen;

/* Runs once at once, then sleeps an hour (until stopped). */
static void *body(void *arg)
{
	(void)arg;
	int64_t next = bz_monotonic_ms();

	while (!bz_periodic_wait_until(&P, next)) {
		atomic_fetch_add(&runs, 1);
		next = bz_monotonic_ms() + 3600 * 1000;
	}
	atomic_fetch_add(&exited, 1);
	return NULL;
}

/* on_stop: the stop flag is already set, no thread has been joined. */
static void on_stop(void *arg)
{
	assert_ptr_equal(arg, &P);
	assert_true(bz_periodic_stopping(&P));
	atomic_fetch_add(&stops_seen, 1);
}

static void test_start_run_stop(void **state)
{
	(void)state;
	P.on_stop = on_stop;
	P.arg = &P;
	for (int round = 0; round < 2; round++) {
		atomic_store(&runs, 0);
		atomic_store(&exited, 0);
		assert_int_equal(bz_periodic_start(&P, 3, body), 0);
		assert_int_equal(bz_periodic_start(&P, 3, body), 0); /* already started */
		assert_false(bz_periodic_stopping(&P));
		int64_t until = bz_monotonic_ms() + 10000;
		while (atomic_load(&runs) < 3 && bz_monotonic_ms() < until)
			nanosleep(&(struct timespec){0, 1000000}, NULL);
		assert_int_equal(atomic_load(&runs), 3);
		bz_periodic_stop(&P); /* wakes the hour-long sleeps */
		assert_int_equal(atomic_load(&exited), 3);
		assert_int_equal(atomic_load(&stops_seen), round + 1);
		assert_true(*bz_periodic_stop_flag(&P));
	}
	bz_periodic_stop(&P); /* not started: nothing */
	assert_int_equal(atomic_load(&stops_seen), 2);
}

static void test_bad_thread_count(void **state)
{
	static struct bz_periodic q = BZ_PERIODIC_INIT;

	(void)state;
	assert_int_equal(bz_periodic_start(&q, 0, body), BZ_ERR_INVALID);
	assert_int_equal(bz_periodic_start(&q, BZ_PERIODIC_MAX_THREADS + 1, body), BZ_ERR_INVALID);
	bz_periodic_stop(&q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_start_run_stop),
		cmocka_unit_test(test_bad_thread_count),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
