/*
 * bench/ratelimit.c — rate-limit checks per second and the time each check
 * adds (issue 9). Prints figures; asserts nothing. Driven by
 * bench/ratelimit, which provides a throwaway Redis.
 *
 *   bench_ratelimit redis URL THREADS SECONDS K [POOL]
 *                                               checks through Redis; K = 2: an agent's
 *                                               device + organization in one call, 1: one key;
 *                                               POOL connections (default THREADS)
 *   bench_ratelimit local SECONDS KEYS          checks through the in-process fallback,
 *                                               rotating over KEYS (<= 10,000) keys
 *   bench_ratelimit memory URL DEVICES          Redis memory per tracked device
 *   bench_ratelimit many URL THREADS SECONDS BATCH
 *                                               agent two-key checks through Redis,
 *                                               BATCH (1..1000) per ratelimit_check_many()
 *                                               call (one pipeline); BATCH 0: one by one
 *                                               with ratelimit_check(); one connection per
 *                                               thread; prints Redis CPU per check too
 *
 * By default the pool has one connection per thread; with POOL < THREADS
 * the threads share connections as a server's request threads do (their
 * checks are pipelined together, see src/server/ratelimit/pipe.c). Checks
 * rotate over 10,000 devices in 2,000 organizations at a limit that
 * is never reached, so every check is admitted and written (the expensive
 * case: a refusal writes nothing).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "server/ratelimit/ratelimit.h"
#include "server/redis/redis.h"

#define DEVICES 10000
#define ORGS 2000      /* 5 devices each: organization keys stay near realistic sizes */
#define HIST_US 100000 /* latency histogram: 1 µs buckets up to 100 ms */

static char dev_ids[DEVICES][40], org_ids[ORGS][40];
static _Atomic int stop;

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* CPU time of the calling thread in ns: on a shared machine, checks per
 * CPU second say what the code costs, wall-clock rates what we got. */
static int64_t cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* CPU time of the whole process (every thread) in ns. */
static int64_t process_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void uuid_of(unsigned run, unsigned kind, unsigned i, char out[37]);

static void make_ids(unsigned run)
{
	for (unsigned i = 0; i < DEVICES; i++)
		uuid_of(run, 1, i, dev_ids[i]);
	for (unsigned i = 0; i < ORGS; i++)
		uuid_of(run, 2, i, org_ids[i]);
}

static struct ratelimit_options options(const char *url, unsigned pool)
{
	struct ratelimit_options o;

	memset(&o, 0, sizeof(o));
	o.redis_url = url;
	o.redis_pool_size = pool;
	o.redis_timeout_ms = 1000;
	for (int i = 0; i < RL_LIMITER_COUNT; i++)
		o.rules[i] = (struct ratelimit_rule){100000, 60};
	return o;
}

struct worker {
	struct ratelimit *rl;
	int id, items;
	uint64_t checks, refused, fallback;
	uint32_t *hist; /* HIST_US + 1 buckets */
};

static void *work(void *arg)
{
	struct worker *w = arg;
	struct ratelimit_result r;
	unsigned d = (unsigned)w->id * 7919u;

	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		unsigned i = d++ % DEVICES;
		struct ratelimit_item it[2] = {{RL_AGENT_DEVICE, org_ids[i % ORGS], dev_ids[i], 0},
					       {RL_AGENT_ORG, org_ids[i % ORGS], NULL, 0}};
		int64_t t = now_ns();
		if (w->items == 1) /* a one-key check: login per IP, API per user, … */
			it[0] = (struct ratelimit_item){RL_API_USER, dev_ids[i], NULL, 0};
		int rc = ratelimit_check(w->rl, it, (size_t)w->items, bz_now_ms(), &r);
		int64_t us = (now_ns() - t) / 1000;
		w->hist[us > HIST_US ? HIST_US : us]++;
		w->checks++;
		w->refused += rc != 0 || !r.admitted;
		w->fallback += r.backend != RATELIMIT_BACKEND_REDIS;
	}
	return NULL;
}

static double pct(const uint32_t *hist, uint64_t n, double p)
{
	uint64_t want = (uint64_t)(p * (double)n), seen = 0;

	for (int i = 0; i <= HIST_US; i++) {
		seen += hist[i];
		if (seen > want)
			return i;
	}
	return HIST_US;
}

static int bench_redis(const char *url, int threads, int seconds, int items, int pool)
{
	struct ratelimit_options o = options(url, (unsigned)pool);
	struct ratelimit *rl = ratelimit_open(&o);
	pthread_t th[64];
	struct worker w[64];
	uint32_t *hist = calloc(HIST_US + 1, sizeof(*hist));
	uint64_t checks = 0, refused = 0, fallback = 0;

	if (rl == NULL || hist == NULL || threads < 1 || threads > 64)
		return 1;
	atomic_store(&stop, 0);
	for (int i = 0; i < threads; i++) {
		w[i] = (struct worker){
			rl, i, items, 0, 0, 0, calloc(HIST_US + 1, sizeof(uint32_t))};
		pthread_create(&th[i], NULL, work, &w[i]);
	}
	int64_t t0 = now_ns(), c0 = process_cpu_ns();
	struct timespec d = {seconds, 0};
	nanosleep(&d, NULL);
	atomic_store(&stop, 1);
	for (int i = 0; i < threads; i++) {
		pthread_join(th[i], NULL);
		checks += w[i].checks;
		refused += w[i].refused;
		fallback += w[i].fallback;
		for (int k = 0; k <= HIST_US; k++)
			hist[k] += w[i].hist[k];
		free(w[i].hist);
	}
	double secs = (double)(now_ns() - t0) / 1e9;
	double client_us = (double)(process_cpu_ns() - c0) / 1e3 / (double)(checks ? checks : 1);
	printf("redis  %2d thread(s), %2d connection(s), %d key(s) per check: %7.0f checks/s   latency "
	       "p50 %4.0f us  p99 %5.0f us   client CPU %.1f us/check   (%llu checks, %llu refused, "
	       "%llu fell back)\n",
	       threads, pool, items, (double)checks / secs, pct(hist, checks, 0.50),
	       pct(hist, checks, 0.99), client_us, (unsigned long long)checks,
	       (unsigned long long)refused, (unsigned long long)fallback);
	free(hist);
	ratelimit_close(rl);
	return 0;
}

/* In-process fallback, one thread: one-key checks (login-like) and
 * two-key agent checks, over 10,000 keys; every 64th check is timed. */
static int bench_local(int seconds, unsigned keys)
{
	struct ratelimit_options o = options(NULL, 0);
	struct ratelimit *rl = ratelimit_open(&o);
	uint32_t *hist = calloc(HIST_US * 10 + 1, sizeof(*hist)); /* 100 ns buckets */
	struct ratelimit_result r;

	if (rl == NULL || hist == NULL || keys < 1 || keys > DEVICES)
		return 1;
	for (int items = 1; items <= 2; items++) {
		uint64_t checks = 0, timed = 0, admitted = 0;
		int64_t t0 = now_ns(), end = t0 + (int64_t)seconds * 1000000000, c0 = cpu_ns();
		int64_t now_ms = bz_now_ms();
		memset(hist, 0, (HIST_US * 10 + 1) * sizeof(*hist));
		while (now_ns() < end) {
			for (int k = 0; k < 4096; k++, checks++) {
				unsigned i = (unsigned)checks % keys;
				struct ratelimit_item it[2] = {
					{items == 1 ? RL_API_USER : RL_AGENT_DEVICE,
					 items == 1 ? dev_ids[i] : org_ids[i % ORGS],
					 items == 1 ? NULL : dev_ids[i], 0},
					{RL_AGENT_ORG, org_ids[i % ORGS], NULL, 0}};
				if ((checks & 63) == 0) {
					int64_t s = now_ns();
					ratelimit_check(rl, it, (size_t)items, now_ms, &r);
					int64_t b = (now_ns() - s) / 100;
					hist[b > HIST_US * 10 ? HIST_US * 10 : b]++;
					timed++;
				} else {
					ratelimit_check(rl, it, (size_t)items, now_ms, &r);
				}
				admitted += r.admitted;
				if ((checks & 63) == 0)
					now_ms++; /* time moves on: windows slide, slots advance */
			}
		}
		double secs = (double)(now_ns() - t0) / 1e9, cpu = (double)(cpu_ns() - c0) / 1e9;
		printf("local  1 thread, %5u keys, %d per check: %9.0f checks/s wall, %10.0f per CPU "
		       "second   latency p50 %5.2f us p99 %5.2f us   (%llu checks, %llu admitted)\n",
		       keys, items, (double)checks / secs, (double)checks / cpu,
		       pct(hist, timed, 0.50) / 10, pct(hist, timed, 0.99) / 10,
		       (unsigned long long)checks, (unsigned long long)admitted);
	}
	free(hist);
	ratelimit_close(rl);
	return 0;
}

struct batcher {
	struct ratelimit *rl;
	int id, batch;
	uint64_t checks, refused, fallback, calls;
	uint32_t *hist; /* per call, HIST_US + 1 buckets of 10 µs (1 µs one by one) */
};

/* BATCH agent checks (device + organization) per call, rotating over the
 * devices; BATCH 0: one ratelimit_check() per call. */
static void *work_many(void *arg)
{
	struct batcher *w = arg;
	static _Thread_local struct ratelimit_item it[RATELIMIT_MANY_MAX][2];
	static _Thread_local struct ratelimit_check ch[RATELIMIT_MANY_MAX];
	static _Thread_local struct ratelimit_result out[RATELIMIT_MANY_MAX];
	static _Thread_local int rcs[RATELIMIT_MANY_MAX];
	unsigned d = (unsigned)w->id * 7919u;
	size_t n = w->batch > 0 ? (size_t)w->batch : 1;

	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		for (size_t k = 0; k < n; k++) {
			unsigned i = d++ % DEVICES;
			it[k][0] = (struct ratelimit_item){RL_AGENT_DEVICE, org_ids[i % ORGS],
							   dev_ids[i], 0};
			it[k][1] =
				(struct ratelimit_item){RL_AGENT_ORG, org_ids[i % ORGS], NULL, 0};
			ch[k] = (struct ratelimit_check){it[k], 2};
		}
		int64_t t = now_ns();
		if (w->batch > 0) {
			if (ratelimit_check_many(w->rl, ch, n, bz_now_ms(), out, rcs) != 0)
				for (size_t k = 0; k < n; k++)
					rcs[k] = -1;
		} else {
			rcs[0] = ratelimit_check(w->rl, it[0], 2, bz_now_ms(), &out[0]);
		}
		int64_t us = (now_ns() - t) / (w->batch > 0 ? 10000 : 1000);
		w->hist[us > HIST_US ? HIST_US : us]++;
		w->calls++;
		for (size_t k = 0; k < n; k++) {
			w->checks++;
			w->refused += rcs[k] != 0 || !out[k].admitted;
			w->fallback += rcs[k] == 0 && out[k].backend != RATELIMIT_BACKEND_REDIS;
		}
	}
	return NULL;
}

/* Redis's own CPU seconds so far (used_cpu_user + used_cpu_sys of INFO
 * cpu), or -1. */
static double redis_cpu(const char *url)
{
	redisContext *c = redis_connect_url(url, 2000);
	redisReply *r = c ? redisCommand(c, "INFO cpu") : NULL;
	double v = -1;

	if (r != NULL && r->type == REDIS_REPLY_STRING) {
		const char *u = strstr(r->str, "used_cpu_user:"),
			   *s = strstr(r->str, "used_cpu_sys:");
		if (u != NULL && s != NULL)
			v = atof(u + 14) + atof(s + 13);
	}
	freeReplyObject(r);
	if (c != NULL)
		redisFree(c);
	return v;
}

/* THREADS threads, each with a connection of its own, making agent checks
 * BATCH at a time (0: one by one) for SECONDS. */
static int bench_many(const char *url, int threads, int seconds, int batch)
{
	struct ratelimit_options o = options(url, (unsigned)threads);
	struct ratelimit *rl = ratelimit_open(&o);
	pthread_t th[64];
	struct batcher w[64];
	uint32_t *hist = calloc(HIST_US + 1, sizeof(*hist));
	uint64_t checks = 0, refused = 0, fallback = 0, ncalls = 0;

	if (rl == NULL || hist == NULL || threads < 1 || threads > 64 || batch < 0 ||
	    batch > RATELIMIT_MANY_MAX)
		return 1;
	atomic_store(&stop, 0);
	double r0 = redis_cpu(url);
	for (int i = 0; i < threads; i++) {
		w[i] = (struct batcher){rl, i, batch, 0,
					0,  0, 0,     calloc(HIST_US + 1, sizeof(uint32_t))};
		pthread_create(&th[i], NULL, work_many, &w[i]);
	}
	int64_t t0 = now_ns(), c0 = process_cpu_ns();
	struct timespec d = {seconds, 0};
	nanosleep(&d, NULL);
	atomic_store(&stop, 1);
	for (int i = 0; i < threads; i++) {
		pthread_join(th[i], NULL);
		checks += w[i].checks;
		refused += w[i].refused;
		fallback += w[i].fallback;
		ncalls += w[i].calls;
		for (int k = 0; k <= HIST_US; k++)
			hist[k] += w[i].hist[k];
		free(w[i].hist);
	}
	double secs = (double)(now_ns() - t0) / 1e9, r1 = redis_cpu(url);
	double client_us = (double)(process_cpu_ns() - c0) / 1e3 / (double)(checks ? checks : 1);
	double redis_us = r0 >= 0 && r1 >= 0 ? (r1 - r0) * 1e6 / (double)(checks ? checks : 1) : -1;
	double unit = batch > 0 ? 10 : 1;
	printf("many   %2d thread(s), %4d check(s) per call%s: %7.0f checks/s   per call p50 %5.0f us "
	       "p99 %6.0f us   client CPU %.1f us/check   Redis CPU %.1f us/check   (%llu checks, "
	       "%llu refused, %llu fell back)\n",
	       threads, batch > 0 ? batch : 1, batch > 0 ? " (pipelined)" : " (one by one)",
	       (double)checks / secs, pct(hist, ncalls, 0.50) * unit,
	       pct(hist, ncalls, 0.99) * unit, client_us, redis_us, (unsigned long long)checks,
	       (unsigned long long)refused, (unsigned long long)fallback);
	free(hist);
	ratelimit_close(rl);
	return 0;
}

static long long used_memory(const char *url)
{
	redisContext *c = redis_connect_url(url, 2000);
	redisReply *r = c ? redisCommand(c, "INFO memory") : NULL;
	long long v = -1;

	if (r != NULL && r->type == REDIS_REPLY_STRING) {
		const char *p = strstr(r->str, "used_memory:");
		if (p != NULL)
			v = atoll(p + 12);
	}
	freeReplyObject(r);
	if (c != NULL)
		redisFree(c);
	return v;
}

struct filler {
	struct ratelimit *rl;
	enum ratelimit_limiter l;
	int from, to, n, per_org;
	unsigned run;
	int64_t base_ms;
};

/* UUID-shaped ids, as the server's devices and organizations have. */
static void uuid_of(unsigned run, unsigned kind, unsigned i, char out[37])
{
	snprintf(out, 37, "%08x-%04x-4%03x-8%03x-%012x", run, kind & 0xffffu, (i >> 24) & 0xfffu,
		 (i >> 12) & 0xfffu, i & 0xfffffu);
}

static void *fill(void *arg)
{
	struct filler *f = arg;
	struct ratelimit_result r;
	char dev[37], org[37];

	for (int i = f->from; i < f->to; i++) {
		uuid_of(f->run, 2, (unsigned)(i / f->per_org), org);
		uuid_of(f->run, 1, (unsigned)i, dev);
		struct ratelimit_item it = {f->l, org, f->l == RL_AGENT_DEVICE ? dev : NULL, 0};
		/* One heartbeat per device per minute, spread over the minute. */
		ratelimit_check(f->rl, &it, 1, f->base_ms + (int64_t)i * 60000 / f->n, &r);
	}
	return NULL;
}

static void populate(struct ratelimit *rl, enum ratelimit_limiter l, int n, int per_org,
		     unsigned run, int64_t base_ms)
{
	enum { T = 8 };
	pthread_t th[T];
	struct filler f[T];

	for (int i = 0; i < T; i++) {
		f[i] = (struct filler){rl, l, n * i / T, n * (i + 1) / T, n, per_org, run, base_ms};
		pthread_create(&th[i], NULL, fill, &f[i]);
	}
	for (int i = 0; i < T; i++)
		pthread_join(th[i], NULL);
}

/* Redis memory for N devices at one heartbeat a minute: device keys (one
 * member each), then organization keys of 500 devices (500 members each). */
static int bench_memory(const char *url, int n)
{
	struct ratelimit_options o = options(url, 8);
	struct ratelimit *rl = ratelimit_open(&o);
	struct ratelimit_stats st;
	unsigned run = (unsigned)time(NULL);
	const int per_org = 500;

	if (rl == NULL || n < 1000)
		return 1;
	int64_t base = bz_now_ms() - 60000 + 1000;
	long long m0 = used_memory(url);
	populate(rl, RL_AGENT_DEVICE, n, per_org, run, base);
	long long m1 = used_memory(url);
	populate(rl, RL_AGENT_ORG, n, per_org, run, base);
	long long m2 = used_memory(url);
	ratelimit_stats(rl, &st);
	double dev = (double)(m1 - m0) / n, org = (double)(m2 - m1) / (n / per_org);
	double per_device = (double)(m2 - m0) / n;
	printf("memory %d device keys (1 member each): %.0f bytes per device key\n", n, dev);
	printf("memory %d organization keys (%d members each): %.0f bytes per organization key\n",
	       n / per_org, per_org, org);
	printf("memory both limiters: %.0f bytes per device; 1,000,000 devices: %.0f MiB (%s 1 GiB)\n",
	       per_device, per_device * 1e6 / 1048576.0,
	       per_device * 1e6 < 1073741824.0 ? "fits in" : "does NOT fit in");
	printf("memory (checks through Redis %llu, fell back %llu)\n",
	       (unsigned long long)st.redis_checks, (unsigned long long)st.local_checks);
	ratelimit_close(rl);
	return 0;
}

int main(int argc, char **argv)
{
	make_ids((unsigned)time(NULL));
	if ((argc == 6 || argc == 7) && strcmp(argv[1], "redis") == 0)
		return bench_redis(argv[2], atoi(argv[3]), atoi(argv[4]),
				   atoi(argv[5]) == 1 ? 1 : 2, atoi(argv[argc == 7 ? 6 : 3]));
	if (argc == 4 && strcmp(argv[1], "local") == 0)
		return bench_local(atoi(argv[2]), (unsigned)atoi(argv[3]));
	if (argc == 4 && strcmp(argv[1], "memory") == 0)
		return bench_memory(argv[2], atoi(argv[3]));
	if (argc == 6 && strcmp(argv[1], "many") == 0)
		return bench_many(argv[2], atoi(argv[3]), atoi(argv[4]), atoi(argv[5]));
	fprintf(stderr,
		"usage: bench_ratelimit redis URL THREADS SECONDS KEYS(1|2) [POOL] | local SECONDS KEYS | "
		"memory URL DEVICES | many URL THREADS SECONDS BATCH\n");
	return 2;
}
