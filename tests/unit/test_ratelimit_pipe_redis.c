/* Tests of the pipelined Redis path of src/server/ratelimit/ (pipe.c and
 * the script's short paths in store.c) against a real Redis (REDIS_URL;
 * `make test` runs this file under tests/unit/with-redis). Skipped (exit
 * 77) without REDIS_URL. Many threads sharing two connections against one
 * key admit exactly the limit; SCRIPT FLUSH while batches are in flight is
 * reloaded without an outage; a paused Redis fails a whole queue over to
 * the fallback, once; Redis stopped under load falls back and comes back;
 * a key holding more than the limit (a lowered setting) and a key whose
 * oldest member has left the window answer as a full trim would. No
 * assertion on time: a slow machine only makes them slower. */
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

static struct ratelimit_options opts(uint32_t limit, uint32_t window_s, unsigned pool)
{
	struct ratelimit_options o;

	memset(&o, 0, sizeof(o));
	o.redis_url = url;
	o.redis_pool_size = pool;
	o.redis_timeout_ms = 2000; /* a busy test machine is not an outage */
	o.retry_interval_ms = 100;
	for (int i = 0; i < RL_LIMITER_COUNT; i++)
		o.rules[i] = (struct ratelimit_rule){limit, window_s};
	return o;
}

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

/* One hammering thread: M checks of ITEMS (N of them) released by a
 * barrier, or checks until *STOP when M is 0. Counts what it saw. */
struct hammer {
	struct ratelimit *rl;
	pthread_barrier_t *go;
	const struct ratelimit_item *it;
	size_t n;
	int m;
	_Atomic int *stop;
	int admitted, redis, local, errors;
};

static void *hammer(void *arg)
{
	struct hammer *h = arg;
	struct ratelimit_result r;

	pthread_barrier_wait(h->go);
	for (int i = 0; h->m > 0 ? i < h->m : !atomic_load(h->stop); i++) {
		if (ratelimit_check(h->rl, h->it, h->n, T0 + i, &r) != 0) {
			h->errors++;
			continue;
		}
		h->admitted += r.admitted;
		h->redis += r.backend == RATELIMIT_BACKEND_REDIS;
		h->local += r.backend == RATELIMIT_BACKEND_LOCAL;
	}
	return NULL;
}

/* Starts N hammers on RL (threads TH, state H) behind a barrier the
 * caller also waits on (GO, N + 1). */
static void start_hammers(pthread_t *th, struct hammer *h, int n, struct ratelimit *rl,
			  pthread_barrier_t *go, const struct ratelimit_item *it, size_t items,
			  int m, _Atomic int *stop)
{
	pthread_barrier_init(go, NULL, (unsigned)n + 1);
	for (int i = 0; i < n; i++) {
		h[i] = (struct hammer){rl, go, it, items, m, stop, 0, 0, 0, 0};
		assert_int_equal(pthread_create(&th[i], NULL, hammer, &h[i]), 0);
	}
}

static struct hammer join_hammers(pthread_t *th, struct hammer *h, int n, pthread_barrier_t *go)
{
	struct hammer sum = {0};

	for (int i = 0; i < n; i++) {
		pthread_join(th[i], NULL);
		sum.admitted += h[i].admitted;
		sum.redis += h[i].redis;
		sum.local += h[i].local;
		sum.errors += h[i].errors;
	}
	pthread_barrier_destroy(go);
	return sum;
}

/* 32 threads × 20 checks of an agent's device + organization on two
 * pipelined connections, limit 100: exactly 100 admitted, each counted in
 * both keys, all through Redis. */
static void test_pipe_exact_under_contention(void **state)
{
	enum { N = 32, M = 20, L = 100 };
	struct ratelimit_options o = opts(L, 60, 2);
	struct ratelimit *rl = ratelimit_open(&o);
	const char *org = tag("contention");
	struct ratelimit_item it[2] = {{RL_AGENT_DEVICE, org, "device-1", 0},
				       {RL_AGENT_ORG, org, NULL, 0}};
	pthread_t th[N];
	struct hammer h[N];
	pthread_barrier_t go;
	struct ratelimit_stats st;

	(void)state;
	assert_non_null(rl);
	start_hammers(th, h, N, rl, &go, it, 2, M, NULL);
	pthread_barrier_wait(&go);
	struct hammer sum = join_hammers(th, h, N, &go);
	assert_int_equal(sum.errors, 0);
	assert_int_equal(sum.redis, N * M);
	assert_int_equal(sum.admitted, L);
	assert_int_equal(zcard(&it[0]), L);
	assert_int_equal(zcard(&it[1]), L);
	ratelimit_stats(rl, &st);
	assert_int_equal(st.outages, 0);
	assert_int_equal(st.local_checks, 0);
	ratelimit_close(rl);
}

/* SCRIPT FLUSH again and again while 16 threads keep batches in flight:
 * every check still goes through Redis (NOSCRIPT reloads and retries),
 * none is lost or counted twice, and no outage is declared. */
static void test_pipe_noscript_under_load(void **state)
{
	enum { N = 16, M = 40 };
	struct ratelimit_options o = opts(100000, 60, 2);
	struct ratelimit *rl = ratelimit_open(&o);
	struct ratelimit_item it = {RL_API_USER, tag("flush"), NULL, 0};
	pthread_t th[N];
	struct hammer h[N];
	pthread_barrier_t go;
	struct ratelimit_stats st;

	(void)state;
	assert_non_null(rl);
	start_hammers(th, h, N, rl, &go, &it, 1, M, NULL);
	pthread_barrier_wait(&go);
	for (int i = 0; i < 20; i++) {
		freeReplyObject(cmd("SCRIPT FLUSH", NULL));
		usleep(2000);
	}
	struct hammer sum = join_hammers(th, h, N, &go);
	assert_int_equal(sum.errors, 0);
	assert_int_equal(sum.redis, N * M);
	assert_int_equal(sum.admitted, N * M);
	assert_int_equal(zcard(&it), N * M);
	ratelimit_stats(rl, &st);
	assert_int_equal(st.outages, 0);
	ratelimit_close(rl);
}

/* A Redis that stops answering (CLIENT PAUSE, far longer than the 100 ms
 * budget) while 12 checks queue on one connection: the batch in flight
 * times out, the queue behind it fails with it, every check falls back
 * (none hangs for the pause), one outage; once Redis answers, checks go
 * there again. */
static void test_pipe_timeout_fails_the_queue(void **state)
{
	enum { N = 12 };
	struct ratelimit_options o = opts(1000, 60, 1);
	struct ratelimit_item it = {RL_API_USER, tag("pause"), NULL, 0};
	pthread_t th[N];
	struct hammer h[N];
	pthread_barrier_t go;
	struct ratelimit_stats st;
	struct ratelimit_result r;

	(void)state;
	o.redis_timeout_ms = 100;
	o.retry_interval_ms = 60000; /* no retry during the pause */
	struct ratelimit *rl = ratelimit_open(&o);
	assert_non_null(rl);
	check(rl, &it, 1, T0);
	int64_t paused = bz_monotonic_ms();
	freeReplyObject(cmd("CLIENT PAUSE %s ALL", "1500"));
	start_hammers(th, h, N, rl, &go, &it, 1, 1, NULL);
	pthread_barrier_wait(&go);
	struct hammer sum = join_hammers(th, h, N, &go);
	assert_int_equal(sum.errors, 0);
	assert_int_equal(sum.local, N);
	assert_int_equal(sum.admitted, N);
	ratelimit_stats(rl, &st);
	assert_int_equal(st.outages, 1);
	while (bz_monotonic_ms() - paused < 1600)
		usleep(20 * 1000); /* until Redis answers again */
	ratelimit_close(rl);
	o.retry_interval_ms = 100;
	rl = ratelimit_open(&o);
	assert_non_null(rl);
	assert_int_equal(ratelimit_check(rl, &it, 1, T0 + 1, &r), 0);
	assert_int_equal(r.backend, RATELIMIT_BACKEND_REDIS);
	ratelimit_close(rl);
}

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

/* 1 once RL has made AT_LEAST checks through Redis (LOCAL 0) or in
 * process (LOCAL 1); 0 if that takes more than a minute (a hang). */
static int wait_for(struct ratelimit *rl, int local, uint64_t at_least)
{
	struct ratelimit_stats st;

	for (int i = 0; i < 3000; i++) {
		ratelimit_stats(rl, &st);
		if ((local ? st.local_checks : st.redis_checks) >= at_least)
			return 1;
		usleep(20 * 1000);
	}
	return 0;
}

/* Redis stopped while 16 threads check through two shared connections:
 * nothing hangs or errs, checks fall back to the in-process limits with one
 * outage; Redis started again under the same load: checks go through Redis
 * once more, without a new limiter. */
static void test_pipe_redis_killed_under_load(void **state)
{
	enum { N = 16 };
	const char *conf = getenv("REDIS_TEST_CONF");
	struct ratelimit_options o = opts(100000, 60, 2);
	struct ratelimit_item it = {RL_API_USER, tag("killed"), NULL, 0};
	pthread_t th[N];
	struct hammer h[N];
	pthread_barrier_t go;
	struct ratelimit_stats st, st2;
	_Atomic int stop = 0;

	(void)state;
	if (conf == NULL)
		skip(); /* REDIS_URL without a way to restart it */
	o.redis_timeout_ms = 200;
	struct ratelimit *rl = ratelimit_open(&o);
	assert_non_null(rl);
	start_hammers(th, h, N, rl, &go, &it, 1, 0, &stop);
	pthread_barrier_wait(&go);
	assert_true(wait_for(rl, 0, 200));
	freeReplyObject(cmd("SHUTDOWN NOSAVE", NULL));
	assert_true(wait_for(rl, 1, 200));
	ratelimit_stats(rl, &st);
	assert_int_equal(st.outages, 1);
	start_redis(conf);
	assert_true(wait_for(rl, 0, st.redis_checks + 200));
	ratelimit_stats(rl, &st2);
	atomic_store(&stop, 1);
	struct hammer sum = join_hammers(th, h, N, &go);
	assert_int_equal(sum.errors, 0);
	assert_true(sum.local > 0);
	assert_true(sum.redis > 0);
	ratelimit_stats(rl, &st);
	assert_int_equal(st.backend, RATELIMIT_BACKEND_REDIS);
	assert_int_equal(st.outages, 1);
	ratelimit_close(rl);
}

/* The script's short paths answer as a full trim would. A key holding more
 * than the limit (the setting was lowered: another instance with limit 5
 * filled it): refused, and free when the member at rank count - limit
 * leaves. A key whose oldest member has left the window: that one is
 * dropped, the rest counted, the reset from the oldest that remains. */
static void test_pipe_script_short_paths(void **state)
{
	struct ratelimit_options o5 = opts(5, 1, 1), o3 = opts(3, 1, 1);
	struct ratelimit *a = ratelimit_open(&o5), *b = ratelimit_open(&o3);
	struct ratelimit_item it = {RL_MFA, tag("over"), NULL, 0};
	struct ratelimit_item old = {RL_MFA, tag("stale"), NULL, 0};
	struct ratelimit_result r;

	(void)state;
	assert_non_null(a);
	assert_non_null(b);
	for (int i = 0; i < 5; i++)
		assert_true(check(a, &it, 1, T0 + i * 100).admitted);
	r = check(b, &it, 1, T0 + 500);
	assert_false(r.admitted);
	/* 5 members, limit 3: the third of the five must leave (T0 + 200). */
	assert_int_equal(r.retry_after_s, 1);
	assert_int_equal(r.reset_s, (T0 + 200 + 1000 + 999) / 1000);
	r = check(b, &it, 1, T0 + 1200); /* T0 and T0 + 100, T0 + 200 gone: 2 left */
	assert_true(r.admitted);
	assert_int_equal(r.remaining, 0);
	assert_int_equal(zcard(&it), 3);

	for (int i = 0; i < 3; i++)
		assert_true(check(b, &old, 1, T0 + i).admitted);
	assert_false(check(b, &old, 1, T0 + 999).admitted);
	r = check(b, &old, 1, T0 + 1000); /* T0 left the window */
	assert_true(r.admitted);
	assert_int_equal(r.remaining, 0);
	assert_int_equal(r.reset_s, (T0 + 1 + 1000 + 999) / 1000);
	assert_int_equal(zcard(&old), 3);
	r = check(b, &old, 1, T0 + 1000);
	assert_false(r.admitted);
	assert_int_equal(zcard(&old), 3);
	ratelimit_close(a);
	ratelimit_close(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pipe_exact_under_contention),
		cmocka_unit_test(test_pipe_noscript_under_load),
		cmocka_unit_test(test_pipe_script_short_paths),
		cmocka_unit_test(test_pipe_timeout_fails_the_queue),
		cmocka_unit_test(test_pipe_redis_killed_under_load),
	};

	url = getenv("REDIS_URL");
	if (url == NULL || url[0] == '\0') {
		printf("test_ratelimit_pipe_redis: REDIS_URL not set; skipped\n");
		return 77;
	}
	if (crypto_random_hex(8, run) != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
