/* Tests of src/server/ratelimit/ against a real Redis (REDIS_URL; `make
 * test` runs this file under tests/unit/with-redis, which starts a private
 * one). Skipped (exit 77) without REDIS_URL. Exact boundaries through the
 * Lua script, requests in the same millisecond, 50 checks released at once
 * from two limiter instances against a limit of 10, a refusal by one
 * limiter counting in none, NOSCRIPT after SCRIPT FLUSH, a paused Redis
 * not stalling checks, and Redis stopped (local fallback, one outage) and
 * started again (shared limits resume). Keys carry a random tag per run, so
 * a shared Redis is not disturbed beyond SCRIPT FLUSH. */
#include <pthread.h>
#include <setjmp.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/clock.h"
#include "common/err.h"
#include "crypto/crypto.h"
#include "server/ratelimit/ratelimit.h"
#include "server/redis/redis.h"

extern char **environ;

#define T0 1800000000000LL

static const char *url;
static char run[17]; /* random per run: keeps keys apart from earlier runs */

static struct ratelimit_options opts(uint32_t limit, uint32_t window_s)
{
	struct ratelimit_options o;

	memset(&o, 0, sizeof(o));
	o.redis_url = url;
	o.redis_timeout_ms = 2000; /* a busy test machine is not an outage */
	o.retry_interval_ms = 100;
	for (int i = 0; i < RL_LIMITER_COUNT; i++)
		o.rules[i] = (struct ratelimit_rule){limit, window_s};
	return o;
}

/* A tag unique to this run and NAME. */
static const char *tag(const char *name)
{
	static char buf[8][RATELIMIT_TAG_MAX];
	static int next;
	char *b = buf[next++ % 8];

	snprintf(b, RATELIMIT_TAG_MAX, "%s-%s", run, name);
	return b;
}

static redisReply *cmd(const char *fmt, const char *arg)
{
	redisContext *c = redis_connect_url(url, 2000);
	redisReply *r;

	assert_non_null(c);
	r = redisCommand(c, fmt, arg);
	redisFree(c);
	return r;
}

static long long zcard(const struct ratelimit_item *it)
{
	char key[RATELIMIT_KEY_MAX];
	redisReply *r;
	long long n;

	assert_int_equal(ratelimit_key(it, key, sizeof(key)), 0);
	r = cmd("ZCARD %s", key);
	assert_non_null(r);
	assert_int_equal(r->type, REDIS_REPLY_INTEGER);
	n = r->integer;
	freeReplyObject(r);
	return n;
}

static struct ratelimit_result check(struct ratelimit *rl, const struct ratelimit_item *it,
				     size_t n, int64_t now)
{
	struct ratelimit_result r;

	assert_int_equal(ratelimit_check(rl, it, n, now, &r), 0);
	assert_int_equal(r.backend, RATELIMIT_BACKEND_REDIS);
	return r;
}

/* Login 5 per 300 s through Redis: the 5th passes, the 6th is refused
 * until the first leaves the window, to the millisecond; Retry-After and
 * reset as the sliding log says; the key expires with its window. */
static void test_redis_exact_boundaries(void **state)
{
	struct ratelimit_options o = opts(5, 300);
	struct ratelimit *rl = ratelimit_open(&o);
	struct ratelimit_item it = {RL_LOGIN, tag("ip"), "alice@example.com", 0};
	struct ratelimit_result r;
	char key[RATELIMIT_KEY_MAX];

	(void)state;
	assert_non_null(rl);
	for (int i = 0; i < 5; i++) {
		r = check(rl, &it, 1, T0 + i * 1000);
		assert_true(r.admitted);
		assert_int_equal(r.remaining, 4 - i);
		assert_int_equal(r.reset_s, (T0 + 300000) / 1000);
	}
	r = check(rl, &it, 1, T0 + 5000);
	assert_false(r.admitted);
	assert_int_equal(r.retry_after_s, 295);
	r = check(rl, &it, 1, T0 + 299999);
	assert_false(r.admitted);
	assert_int_equal(r.retry_after_s, 1);
	assert_int_equal(zcard(&it), 5); /* refusals are not stored */
	r = check(rl, &it, 1, T0 + 300000);
	assert_true(r.admitted);
	assert_int_equal(r.remaining, 0);
	r = check(rl, &it, 1, T0 + 300001);
	assert_false(r.admitted);
	assert_int_equal(r.retry_after_s, 1);
	assert_int_equal(zcard(&it), 5);
	assert_int_equal(ratelimit_key(&it, key, sizeof(key)), 0);
	redisReply *ttl = cmd("PTTL %s", key);
	assert_int_equal(ttl->type, REDIS_REPLY_INTEGER);
	assert_true(ttl->integer > 0 && ttl->integer <= 300000);
	freeReplyObject(ttl);
	ratelimit_close(rl);
}

/* A limit above the in-process fallback's exact size is exact in Redis:
 * a burst across a window boundary gets the limit once, and capacity comes
 * back exactly a window after the first admission. Requests in the same
 * millisecond are separate members. */
static void test_redis_burst_and_same_millisecond(void **state)
{
	struct ratelimit_options o = opts(600, 60);
	struct ratelimit *rl = ratelimit_open(&o);
	struct ratelimit_item org = {RL_AGENT_ORG, tag("org-burst"), NULL, 0};
	struct ratelimit_item same = {RL_API_USER, tag("same-ms"), NULL, 0};
	int admitted = 0;

	(void)state;
	assert_non_null(rl);
	for (int i = 0; i < 2400; i++)
		admitted += check(rl, &org, 1, T0 + 59000 + i * 2000 / 2400).admitted;
	assert_int_equal(admitted, 600);
	struct ratelimit_result r = check(rl, &org, 1, T0 + 59000 + 60000 - 1);
	assert_false(r.admitted);
	assert_int_equal(r.retry_after_s, 60); /* agent_org: always 60 (R6) */
	assert_true(check(rl, &org, 1, T0 + 59000 + 60000).admitted);
	for (int i = 0; i < 20; i++)
		assert_true(check(rl, &same, 1, T0).admitted);
	assert_int_equal(zcard(&same), 20);
	ratelimit_close(rl);
}

struct racer {
	struct ratelimit *rl;
	pthread_barrier_t *go;
	const struct ratelimit_item *it;
	int admitted, redis;
};

static void *race(void *arg)
{
	struct racer *x = arg;
	struct ratelimit_result r;

	pthread_barrier_wait(x->go);
	if (ratelimit_check(x->rl, x->it, 1, T0, &r) == 0) {
		x->admitted = r.admitted;
		x->redis = r.backend == RATELIMIT_BACKEND_REDIS;
	}
	return NULL;
}

/* 50 checks released together, 25 from each of two limiter instances (two
 * servers), against a limit of 10: exactly 10 admitted. */
static void test_redis_fifty_at_once(void **state)
{
	enum { N = 50 };
	struct ratelimit_options o = opts(10, 60);
	struct ratelimit *a = ratelimit_open(&o), *b = ratelimit_open(&o);
	struct ratelimit_item it = {RL_ENROLL, tag("race"), NULL, 0};
	pthread_t th[N];
	struct racer x[N];
	pthread_barrier_t go;
	int admitted = 0, redis = 0;

	(void)state;
	assert_non_null(a);
	assert_non_null(b);
	pthread_barrier_init(&go, NULL, N);
	for (int i = 0; i < N; i++) {
		x[i] = (struct racer){i % 2 ? a : b, &go, &it, 0, 0};
		assert_int_equal(pthread_create(&th[i], NULL, race, &x[i]), 0);
	}
	for (int i = 0; i < N; i++) {
		pthread_join(th[i], NULL);
		admitted += x[i].admitted;
		redis += x[i].redis;
	}
	pthread_barrier_destroy(&go);
	assert_int_equal(redis, N);
	assert_int_equal(admitted, 10);
	assert_int_equal(zcard(&it), 10);
	ratelimit_close(a);
	ratelimit_close(b);
}

/* Device and organization in one round trip: refused by either, stored in
 * neither. */
static void test_redis_multi_refusal_counts_nowhere(void **state)
{
	struct ratelimit_options o = opts(100, 60);
	const char *org = tag("org-multi");
	struct ratelimit_item d1[2] = {{RL_AGENT_DEVICE, org, "dev1", 0},
				       {RL_AGENT_ORG, org, NULL, 0}};
	struct ratelimit_item d2[2] = {{RL_AGENT_DEVICE, org, "dev2", 0},
				       {RL_AGENT_ORG, org, NULL, 0}};
	struct ratelimit_result r;

	(void)state;
	o.rules[RL_AGENT_DEVICE] = (struct ratelimit_rule){3, 60};
	o.rules[RL_AGENT_ORG] = (struct ratelimit_rule){5, 60};
	struct ratelimit *rl = ratelimit_open(&o);
	assert_non_null(rl);
	for (int i = 0; i < 3; i++)
		assert_true(check(rl, d1, 2, T0 + i).admitted);
	for (int i = 0; i < 5; i++) {
		r = check(rl, d1, 2, T0 + 3 + i);
		assert_false(r.admitted);
		assert_int_equal(r.refused_by, 0);
		assert_string_equal(r.limiter, "agent_device");
		assert_int_equal(r.retry_after_s, 60);
	}
	assert_int_equal(zcard(&d1[1]), 3); /* the organization saw only the admitted */
	assert_true(check(rl, d2, 2, T0 + 10).admitted);
	r = check(rl, d2, 2, T0 + 11);
	assert_true(r.admitted);
	assert_int_equal(r.items[1].remaining, 0);
	/* dev2 has room, the organization has none: dev2 is not charged. */
	r = check(rl, d2, 2, T0 + 12);
	assert_false(r.admitted);
	assert_int_equal(r.refused_by, 1);
	assert_string_equal(r.limiter, "agent_org");
	assert_int_equal(r.retry_after_s, 60);
	assert_int_equal(r.items[0].remaining, 1);
	assert_int_equal(zcard(&d2[0]), 2);
	assert_int_equal(zcard(&d2[1]), 5);
	ratelimit_close(rl);
}

/* SCRIPT FLUSH (or a Redis restart) between checks: the script is loaded
 * again and the check still goes through Redis, with no outage. */
static void test_redis_noscript_reload(void **state)
{
	struct ratelimit_options o = opts(3, 60);
	struct ratelimit *rl = ratelimit_open(&o);
	struct ratelimit_item it = {RL_MFA, tag("noscript"), NULL, 0};
	struct ratelimit_stats st;

	(void)state;
	assert_non_null(rl);
	assert_true(check(rl, &it, 1, T0).admitted);
	freeReplyObject(cmd("SCRIPT FLUSH", NULL));
	assert_true(check(rl, &it, 1, T0 + 1).admitted);
	assert_int_equal(check(rl, &it, 1, T0 + 2).remaining, 0);
	ratelimit_stats(rl, &st);
	assert_int_equal(st.outages, 0);
	assert_int_equal(st.redis_checks, 3);
	ratelimit_close(rl);
}

/* note_refusal through Redis: a login refused by login_ip reports its
 * first refusal once per window (the notice key expires with the window),
 * shared by every instance. */
static void test_redis_first_refusal(void **state)
{
	struct ratelimit_options o = opts(1, 1);
	const char *ip = tag("notice");
	struct ratelimit_item it[2] = {{RL_LOGIN_IP, ip, NULL, 1},
				       {RL_LOGIN, ip, "alice@example.com", 1}};
	struct ratelimit_result r;
	char key[RATELIMIT_KEY_MAX], notice[RATELIMIT_KEY_MAX + 16];

	(void)state;
	o.rules[RL_LOGIN] = (struct ratelimit_rule){5, 1};
	struct ratelimit *a = ratelimit_open(&o), *b = ratelimit_open(&o);
	assert_non_null(a);
	assert_non_null(b);
	int64_t now = bz_now_ms();
	assert_true(check(a, it, 2, now).admitted);
	r = check(a, it, 2, now + 1);
	assert_false(r.admitted);
	assert_string_equal(r.limiter, "login_ip");
	assert_true(r.first_refusal);
	r = check(b, it, 2, now + 2); /* another instance: already reported */
	assert_false(r.admitted);
	assert_false(r.first_refusal);
	assert_int_equal(ratelimit_key(&it[0], key, sizeof(key)), 0);
	snprintf(notice, sizeof(notice), "%s:refused", key);
	redisReply *ttl = cmd("PTTL %s", notice);
	assert_true(ttl->integer > 0 && ttl->integer <= 1000);
	freeReplyObject(ttl);
	usleep(1100 * 1000); /* the notice expires with the 1 s window */
	now = bz_now_ms();
	assert_true(check(b, it, 2, now).admitted);
	r = check(b, it, 2, now + 1);
	assert_false(r.admitted);
	assert_true(r.first_refusal);
	ratelimit_close(a);
	ratelimit_close(b);
}

/* A Redis that does not answer (CLIENT PAUSE) costs a check its budget,
 * not the pause: it falls back, and Redis is used again once it answers. */
static void test_redis_paused_does_not_stall(void **state)
{
	struct ratelimit_options o = opts(3, 60);
	struct ratelimit_item it = {RL_API_USER, tag("paused"), NULL, 0};
	struct ratelimit_result r;
	struct ratelimit_stats st;

	(void)state;
	o.redis_timeout_ms = 100;
	struct ratelimit *rl = ratelimit_open(&o);
	assert_non_null(rl);
	assert_int_equal(check(rl, &it, 1, T0).backend, RATELIMIT_BACKEND_REDIS);
	freeReplyObject(cmd("CLIENT PAUSE %s ALL", "1500"));
	int64_t t = bz_monotonic_ms();
	assert_int_equal(ratelimit_check(rl, &it, 1, T0 + 1, &r), 0);
	/* Well under the pause (the budget is 100 ms; slack for a busy machine). */
	assert_true(bz_monotonic_ms() - t < 1000);
	assert_int_equal(r.backend, RATELIMIT_BACKEND_LOCAL);
	assert_true(r.admitted);
	ratelimit_stats(rl, &st);
	assert_int_equal(st.outages, 1);
	usleep(1700 * 1000);
	assert_int_equal(ratelimit_check(rl, &it, 1, T0 + 2, &r), 0);
	assert_int_equal(r.backend, RATELIMIT_BACKEND_REDIS);
	ratelimit_stats(rl, &st);
	assert_int_equal(st.backend, RATELIMIT_BACKEND_REDIS);
	ratelimit_close(rl);
}

/* Keeps Redis busy with back-to-back 30 ms scripts until *STATE is 2
 * (1 once the first one ran): every
 * command still answers within about two of them, far inside the budget. */
static void *hog(void *arg)
{
	static const char busy[] =
		"local t = redis.call('TIME') local s = t[1] * 1000000 + t[2] "
		"repeat local n = redis.call('TIME') until n[1] * 1000000 + n[2] - s > 30000 "
		"return 1";
	_Atomic int *state = arg; /* 0 starting, 1 running, 2 stop */
	redisContext *c = redis_connect_url(url, 5000);
	redisReply *r;

	while (c != NULL && atomic_load(state) != 2) {
		r = redisCommand(c, "EVAL %s 0", busy);
		int starting = 0;
		if (r != NULL && r->type == REDIS_REPLY_INTEGER)
			atomic_compare_exchange_strong(state, &starting, 1);
		freeReplyObject(r);
	}
	if (c != NULL)
		redisFree(c);
	return NULL;
}

struct queued {
	struct ratelimit *rl;
	const struct ratelimit_item *it;
	int redis;
};

static void *queue_checks(void *arg)
{
	struct queued *q = arg;
	struct ratelimit_result r;

	for (int i = 0; i < 4; i++)
		if (ratelimit_check(q->rl, q->it, 1, T0 + i, &r) == 0 && r.admitted &&
		    r.backend == RATELIMIT_BACKEND_REDIS)
			q->redis++;
	return NULL;
}

/* A busy pool is not an outage: 12 checks queue for one connection while
 * each command takes ~30 ms, so most wait longer than the budget for the
 * connection, yet Redis answers every command well within it. They must
 * wait their turn and count in Redis, not declare Redis down and fall back
 * to per-instance counting (which admits up to the limit again on every
 * instance). */
static void test_redis_busy_pool_is_not_an_outage(void **state)
{
	enum { N = 12 };
	struct ratelimit_options o = opts(1000, 60);
	struct ratelimit_item it = {RL_API_USER, tag("busy"), NULL, 0};
	struct ratelimit_stats st;
	struct queued q[N];
	pthread_t th[N], h;
	_Atomic int hogging = 0;
	int redis = 0;

	(void)state;
	o.redis_pool_size = 1;
	o.redis_timeout_ms = 250;
	struct ratelimit *rl = ratelimit_open(&o);
	assert_non_null(rl);
	assert_int_equal(check(rl, &it, 1, T0).backend, RATELIMIT_BACKEND_REDIS);
	assert_int_equal(pthread_create(&h, NULL, hog, &hogging), 0);
	while (atomic_load(&hogging) == 0)
		usleep(1000);
	for (int i = 0; i < N; i++) {
		q[i] = (struct queued){rl, &it, 0};
		assert_int_equal(pthread_create(&th[i], NULL, queue_checks, &q[i]), 0);
	}
	for (int i = 0; i < N; i++) {
		pthread_join(th[i], NULL);
		redis += q[i].redis;
	}
	atomic_store(&hogging, 2);
	pthread_join(h, NULL);
	ratelimit_stats(rl, &st);
	assert_int_equal(st.outages, 0);
	assert_int_equal(st.local_checks, 0);
	assert_int_equal(redis, 4 * N);
	assert_int_equal(zcard(&it), 4 * N + 1);
	ratelimit_close(rl);
}

/* Runs redis-server with the wrapper's config (daemonizes) and waits for
 * PING. */
static void start_redis(const char *conf)
{
	char *argv[] = {"redis-server", (char *)conf, NULL};
	pid_t pid;
	int status;

	assert_int_equal(posix_spawnp(&pid, "redis-server", NULL, NULL, argv, environ), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	for (int i = 0; i < 100 && redis_ping(url, 200) != 0; i++)
		usleep(50 * 1000);
	assert_int_equal(redis_ping(url, 200), 0);
}

/* Redis stopped mid-test: checks fall back to the in-process limits (one
 * outage, the same limits enforced); Redis started again: shared limits
 * resume without a new limiter. In deny mode the same outage is a 503. */
static void test_redis_stopped_and_back(void **state)
{
	const char *conf = getenv("REDIS_TEST_CONF");
	struct ratelimit_options o = opts(2, 60);
	struct ratelimit_item it = {RL_ENROLL, tag("stop"), NULL, 0};
	struct ratelimit_result r;
	struct ratelimit_stats st;

	(void)state;
	if (conf == NULL)
		skip(); /* REDIS_URL without a way to restart it */
	o.redis_timeout_ms = 200;
	struct ratelimit *rl = ratelimit_open(&o);
	o.on_failure = RATELIMIT_FAIL_DENY;
	struct ratelimit *deny = ratelimit_open(&o);
	assert_non_null(rl);
	assert_non_null(deny);
	assert_true(check(rl, &it, 1, T0).admitted);
	assert_true(check(deny, &it, 1, T0).admitted);
	assert_false(check(rl, &it, 1, T0).admitted); /* shared: both counted */

	freeReplyObject(cmd("SHUTDOWN NOSAVE", NULL));
	for (int i = 0; i < 100 && redis_ping(url, 200) == 0; i++)
		usleep(20 * 1000);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(ratelimit_check(rl, &it, 1, T0 + 10 + i, &r), 0);
		assert_int_equal(r.backend, RATELIMIT_BACKEND_LOCAL);
		assert_int_equal(r.admitted, i < 2); /* the same limit, in process */
		assert_int_equal(ratelimit_check(deny, &it, 1, T0 + 10 + i, &r),
				 BZ_ERR_UNAVAILABLE);
	}
	usleep(150 * 1000); /* past the retry interval: still down */
	assert_int_equal(ratelimit_check(rl, &it, 1, T0 + 20, &r), 0);
	assert_int_equal(r.backend, RATELIMIT_BACKEND_LOCAL);
	ratelimit_stats(rl, &st);
	assert_int_equal(st.outages, 1); /* one outage, however many failed tries */
	assert_int_equal(st.backend, RATELIMIT_BACKEND_LOCAL);

	start_redis(conf);
	usleep(150 * 1000);
	/* Redis lost its keys with the restart (no persistence): a fresh window. */
	r = check(rl, &it, 1, T0 + 30);
	assert_true(r.admitted);
	assert_int_equal(r.remaining, 1);
	r = check(deny, &it, 1, T0 + 31);
	assert_true(r.admitted);
	assert_false(check(rl, &it, 1, T0 + 32).admitted);
	ratelimit_stats(rl, &st);
	assert_int_equal(st.backend, RATELIMIT_BACKEND_REDIS);
	assert_int_equal(st.outages, 1);
	ratelimit_close(rl);
	ratelimit_close(deny);
}

/* Two limiters at their limit: Retry-After is the later of the two, since
 * a request retried at the earlier would still be refused. */
static void test_redis_retry_after_is_the_latest(void **state)
{
	struct ratelimit_options o = opts(1, 1);
	const char *ip = tag("latest");
	struct ratelimit_item it[2] = {{RL_LOGIN_IP, ip, NULL, 0},
				       {RL_LOGIN, ip, "alice@example.com", 0}};
	struct ratelimit_result r;

	(void)state;
	o.rules[RL_LOGIN_IP] = (struct ratelimit_rule){2, 60};
	o.rules[RL_LOGIN] = (struct ratelimit_rule){2, 300};
	struct ratelimit *rl = ratelimit_open(&o);
	assert_non_null(rl);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(ratelimit_check(rl, it, 2, T0 + i * 1000, &r), 0);
		assert_true(r.admitted);
	}
	assert_int_equal(ratelimit_check(rl, it, 2, T0 + 2000, &r), 0);
	assert_false(r.admitted);
	assert_int_equal(r.refused_by, 1);
	assert_string_equal(r.limiter, "login");
	assert_int_equal(r.retry_after_s, 298);
	assert_int_equal(r.items[0].remaining, 0);
	ratelimit_close(rl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_redis_exact_boundaries),
		cmocka_unit_test(test_redis_burst_and_same_millisecond),
		cmocka_unit_test(test_redis_fifty_at_once),
		cmocka_unit_test(test_redis_multi_refusal_counts_nowhere),
		cmocka_unit_test(test_redis_retry_after_is_the_latest),
		cmocka_unit_test(test_redis_noscript_reload),
		cmocka_unit_test(test_redis_first_refusal),
		cmocka_unit_test(test_redis_paused_does_not_stall),
		cmocka_unit_test(test_redis_busy_pool_is_not_an_outage),
		cmocka_unit_test(test_redis_stopped_and_back),
	};

	url = getenv("REDIS_URL");
	if (url == NULL || url[0] == '\0') {
		printf("test_ratelimit_redis: REDIS_URL not set; skipped\n");
		return 77;
	}
	if (crypto_random_hex(8, run) != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
