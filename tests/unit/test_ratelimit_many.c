/* Unit tests of ratelimit_check_many() without Redis: the mixed set
 * (ratelimit_many_cases.h) gives through it exactly what ratelimit_check()
 * gives one by one in the in-process backend; 1000 checks of one key count
 * in order; the bounds (0 checks, more than RATELIMIT_MANY_MAX); and an
 * unreachable Redis: the whole batch falls back (local) or is denied (deny)
 * with one outage, invalid checks staying invalid. Through a real Redis and
 * a Redis failing mid-pipeline: test_ratelimit_many_redis.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "server/ratelimit/ratelimit.h"

#include "ratelimit_many_cases.h"

#define T0 1800000000000LL

static struct ratelimit_options opts(void)
{
	struct ratelimit_options o;

	memset(&o, 0, sizeof(o));
	mixed_rules(&o);
	return o;
}

/* Pipelined and one by one agree on every field of every check. */
static void test_many_local_same_as_one_by_one(void **state)
{
	struct ratelimit_options o = opts();
	struct ratelimit *a = ratelimit_open(&o), *b = ratelimit_open(&o);

	(void)state;
	assert_non_null(a);
	assert_non_null(b);
	mixed_compare(a, b, "local", T0, RATELIMIT_BACKEND_LOCAL, 1);
	/* Later, in the same windows: the state each built is the same too. */
	mixed_compare(a, b, "local", T0 + 30000, RATELIMIT_BACKEND_LOCAL, 0);
	ratelimit_close(a);
	ratelimit_close(b);
}

/* 1000 checks of one key with a limit of 600 (above the fallback's exact
 * size): the first 600 admitted, in order, the rest refused. */
static void test_many_local_one_key_in_order(void **state)
{
	struct ratelimit_options o = opts();
	struct ratelimit_item it = {RL_API_USER, "u-1000", NULL, 0};
	static struct ratelimit_check ch[RATELIMIT_MANY_MAX];
	static struct ratelimit_result out[RATELIMIT_MANY_MAX];
	static int rcs[RATELIMIT_MANY_MAX];
	struct ratelimit_stats st;

	(void)state;
	o.rules[RL_API_USER] = (struct ratelimit_rule){600, 60};
	struct ratelimit *rl = ratelimit_open(&o);
	assert_non_null(rl);
	for (int i = 0; i < RATELIMIT_MANY_MAX; i++)
		ch[i] = (struct ratelimit_check){&it, 1};
	assert_int_equal(ratelimit_check_many(rl, ch, RATELIMIT_MANY_MAX, T0, out, rcs), 0);
	for (int i = 0; i < RATELIMIT_MANY_MAX; i++) {
		assert_int_equal(rcs[i], 0);
		assert_int_equal(out[i].admitted, i < 600);
		assert_int_equal(out[i].remaining, i < 600 ? 599 - i : 0);
	}
	ratelimit_stats(rl, &st);
	assert_int_equal(st.local_checks, RATELIMIT_MANY_MAX);
	ratelimit_close(rl);
}

/* No checks: nothing to do. More than the maximum: refused whole, nothing
 * counted, nothing written. */
static void test_many_bounds(void **state)
{
	struct ratelimit_options o = opts();
	struct ratelimit_item it = {RL_MFA, "u-bounds", NULL, 0};
	static struct ratelimit_check ch[RATELIMIT_MANY_MAX + 1];
	static struct ratelimit_result out[RATELIMIT_MANY_MAX + 1];
	static int rcs[RATELIMIT_MANY_MAX + 1];
	struct ratelimit_result r;

	(void)state;
	struct ratelimit *rl = ratelimit_open(&o);
	assert_non_null(rl);
	for (int i = 0; i <= RATELIMIT_MANY_MAX; i++) {
		ch[i] = (struct ratelimit_check){&it, 1};
		rcs[i] = 12345;
	}
	assert_int_equal(ratelimit_check_many(rl, ch, 0, T0, out, rcs), 0);
	assert_int_equal(ratelimit_check_many(rl, ch, RATELIMIT_MANY_MAX + 1, T0, out, rcs),
			 BZ_ERR_INVALID);
	assert_int_equal(rcs[0], 12345);
	assert_int_equal(ratelimit_check_many(rl, NULL, 1, T0, out, rcs), BZ_ERR_INVALID);
	/* A time of 0 is invalid for every check, as for one. */
	assert_int_equal(ratelimit_check_many(rl, ch, 2, 0, out, rcs), 0);
	assert_int_equal(rcs[0], BZ_ERR_INVALID);
	assert_int_equal(rcs[1], BZ_ERR_INVALID);
	assert_int_equal(ratelimit_check(rl, &it, 1, T0, &r), 0);
	assert_int_equal(r.remaining, 9); /* none of the above counted */
	ratelimit_close(rl);
}

/* Redis unreachable: local mode, every valid check in process (one
 * outage for the batch); deny mode, every valid check BZ_ERR_UNAVAILABLE;
 * invalid checks BZ_ERR_INVALID either way. */
static void test_many_unreachable_redis(void **state)
{
	struct ratelimit_options o = opts();
	struct ratelimit_item it = {RL_ENROLL, "192.0.2.9", NULL, 0};
	struct ratelimit_item bad = {RL_ENROLL, "{x}", NULL, 0};
	struct ratelimit_check ch[4] = {{&it, 1}, {&bad, 1}, {&it, 1}, {&it, 1}};
	struct ratelimit_result out[4];
	struct ratelimit_stats st;
	int rcs[4];

	(void)state;
	o.rules[RL_ENROLL] = (struct ratelimit_rule){2, 60};
	o.redis_url = "redis://127.0.0.1:1/0";
	o.redis_timeout_ms = 50;
	o.retry_interval_ms = 60000;
	struct ratelimit *rl = ratelimit_open(&o);
	assert_non_null(rl);
	assert_int_equal(ratelimit_check_many(rl, ch, 4, T0, out, rcs), 0);
	assert_int_equal(rcs[1], BZ_ERR_INVALID);
	for (int i = 0; i < 4; i += 1 + (i == 0)) {
		assert_int_equal(rcs[i], 0);
		assert_int_equal(out[i].backend, RATELIMIT_BACKEND_LOCAL);
		assert_int_equal(out[i].admitted, i < 3);
	}
	ratelimit_stats(rl, &st);
	assert_int_equal(st.outages, 1);
	assert_int_equal(st.local_checks, 3);
	ratelimit_close(rl);

	o.on_failure = RATELIMIT_FAIL_DENY;
	rl = ratelimit_open(&o);
	assert_non_null(rl);
	assert_int_equal(ratelimit_check_many(rl, ch, 4, T0, out, rcs), 0);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(rcs[i], i == 1 ? BZ_ERR_INVALID : BZ_ERR_UNAVAILABLE);
		assert_false(out[i].admitted);
	}
	ratelimit_stats(rl, &st);
	assert_int_equal(st.outages, 1);
	assert_int_equal(st.denied_unavailable, 3);
	assert_int_equal(st.local_checks, 0);
	ratelimit_close(rl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_many_local_same_as_one_by_one),
		cmocka_unit_test(test_many_local_one_key_in_order),
		cmocka_unit_test(test_many_bounds),
		cmocka_unit_test(test_many_unreachable_redis),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
