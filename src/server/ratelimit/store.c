/*
 * store.c — the Redis backend: one Lua script, an exact sliding log per
 * key, run with EVALSHA over a small pool of connections.
 *
 * Each key is a sorted set of the requests admitted in the last window
 * (score = the caller's time in ms, member = a value unique to that
 * request, so two requests in the same millisecond are two members). The
 * script first drops the expired members of every key and counts what is
 * left; only if every key is under its limit does it add the request to all
 * of them and set each key's expiry to its window. Redis runs a script
 * atomically, so there is no check-then-act race between instances, and a
 * refused request is counted nowhere.
 */
#include "server/ratelimit/internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "crypto/crypto.h"
#include "server/redis/redis.h"

/* KEYS: one sorted set per limiter, then optionally one notice key per
 * limiter. ARGV[1]: now (ms); ARGV[2]: the request's member; then limit and
 * window (ms) per limiter. Returns {refused (1-based index of the first
 * limiter at its limit, 0 = admitted), then count and free-at (ms) per
 * limiter, then per limiter 1 if its notice key was set now (refused, at
 * its limit, and no notice in the last window)}. A member stays counted
 * while now < score + window. */
static const char script[] =
	"local now = tonumber(ARGV[1])\n"
	"local n = (#ARGV - 2) / 2\n"
	"local out = {0}\n"
	"for i = 1, n do\n"
	"  local limit = tonumber(ARGV[1 + 2 * i])\n"
	"  local win = tonumber(ARGV[2 + 2 * i])\n"
	"  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - win)\n"
	"  local count = redis.call('ZCARD', KEYS[i])\n"
	"  local free = now + win\n"
	"  local note = 0\n"
	"  if count >= limit then\n"
	"    local e = redis.call('ZRANGE', KEYS[i], count - limit, count - limit, 'WITHSCORES')\n"
	"    free = tonumber(e[2]) + win\n"
	"    if out[1] == 0 then out[1] = i end\n"
	"    if #KEYS == 2 * n and redis.call('SET', KEYS[n + i], '1', 'NX', 'PX', win) then\n"
	"      note = 1\n"
	"    end\n"
	"  elseif count > 0 then\n"
	"    local e = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')\n"
	"    free = math.min(tonumber(e[2]), now) + win\n"
	"  end\n"
	"  out[2 * i] = count\n"
	"  out[2 * i + 1] = free\n"
	"  out[2 * n + 1 + i] = note\n"
	"end\n"
	"if out[1] == 0 then\n"
	"  for i = 1, n do\n"
	"    redis.call('ZADD', KEYS[i], now, ARGV[2])\n"
	"    redis.call('PEXPIRE', KEYS[i], ARGV[2 + 2 * i])\n"
	"    out[2 * i] = out[2 * i] + 1\n"
	"  end\n"
	"end\n"
	"return out\n";

struct conn {
	pthread_mutex_t mu;
	redisContext *c; /* NULL until connected, and after a failure */
	char sha[41];	 /* the script's SHA1 as SCRIPT LOAD answered it */
};

struct rl_redis {
	char *url;
	int timeout_ms;
	unsigned n;
	_Atomic unsigned next; /* where the next check starts looking for a free connection */
	_Atomic uint64_t seq;  /* per-process request counter, part of each member */
	char prefix[13];       /* 48 random bits: members differ between instances */
	struct conn *conns;
};

struct rl_redis *rl_redis_new(const char *url, unsigned pool, int timeout_ms)
{
	struct rl_redis *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	r->url = strdup(url);
	r->conns = calloc(pool, sizeof(*r->conns));
	r->n = pool;
	r->timeout_ms = timeout_ms;
	if (r->url == NULL || r->conns == NULL || crypto_random_hex(6, r->prefix) != 0) {
		free(r->url);
		free(r->conns);
		free(r);
		return NULL;
	}
	for (unsigned i = 0; i < pool; i++)
		pthread_mutex_init(&r->conns[i].mu, NULL);
	return r;
}

void rl_redis_free(struct rl_redis *r)
{
	if (r == NULL)
		return;
	for (unsigned i = 0; i < r->n; i++) {
		if (r->conns[i].c != NULL)
			redisFree(r->conns[i].c);
		pthread_mutex_destroy(&r->conns[i].mu);
	}
	crypto_wipe(r->url, strlen(r->url));
	free(r->url);
	free(r->conns);
	free(r);
}

/* A free connection, locked: the first one that is not busy, else the
 * next in turn once it frees within the budget. NULL when none does. */
static struct conn *acquire(struct rl_redis *r)
{
	unsigned start = atomic_fetch_add(&r->next, 1) % r->n;
	struct timespec until;

	for (unsigned i = 0; i < r->n; i++) {
		struct conn *c = &r->conns[(start + i) % r->n];
		if (pthread_mutex_trylock(&c->mu) == 0)
			return c;
	}
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_nsec += (long)r->timeout_ms * 1000000L;
	until.tv_sec += until.tv_nsec / 1000000000L;
	until.tv_nsec %= 1000000000L;
	if (pthread_mutex_timedlock(&r->conns[start].mu, &until) != 0)
		return NULL;
	return &r->conns[start];
}

/* SCRIPT LOAD over C; 0 or BZ_ERR_UNAVAILABLE. */
static int load_script(struct conn *c)
{
	redisReply *rep = redisCommand(c->c, "SCRIPT LOAD %s", script);
	int ok = rep != NULL && rep->type == REDIS_REPLY_STRING && rep->len == 40;

	if (ok)
		memcpy(c->sha, rep->str, 41);
	freeReplyObject(rep);
	return ok ? 0 : BZ_ERR_UNAVAILABLE;
}

/* Connects C if needed and makes sure its script SHA is known. */
static int ensure(struct rl_redis *r, struct conn *c)
{
	if (c->c != NULL)
		return 0;
	c->c = redis_connect_url(r->url, r->timeout_ms);
	if (c->c == NULL)
		return BZ_ERR_UNAVAILABLE;
	if (load_script(c) != 0) {
		redisFree(c->c);
		c->c = NULL;
		return BZ_ERR_UNAVAILABLE;
	}
	return 0;
}

/* Reads the script's answer for N keys into RAW. */
static int parse_reply(const redisReply *rep, size_t n, struct rl_raw *raw)
{
	if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != 1 + 3 * n)
		return BZ_ERR_UNAVAILABLE;
	for (size_t i = 0; i < rep->elements; i++)
		if (rep->element[i]->type != REDIS_REPLY_INTEGER || rep->element[i]->integer < 0)
			return BZ_ERR_UNAVAILABLE;
	if ((size_t)rep->element[0]->integer > n)
		return BZ_ERR_UNAVAILABLE;
	raw->refused = (int)rep->element[0]->integer - 1;
	for (size_t i = 0; i < n; i++) {
		long long count = rep->element[1 + 2 * i]->integer;
		raw->count[i] = count > UINT32_MAX ? UINT32_MAX : (uint32_t)count;
		raw->free_ms[i] = rep->element[2 + 2 * i]->integer;
		raw->first[i] = rep->element[1 + 2 * n + i]->integer == 1;
	}
	return 0;
}

static int is_noscript(const redisReply *rep)
{
	return rep != NULL && rep->type == REDIS_REPLY_ERROR &&
	       strncmp(rep->str, "NOSCRIPT", 8) == 0;
}

int rl_redis_check(struct rl_redis *r, const char *const *keys, const char *const *notes,
		   const struct ratelimit_rule *rules, size_t n, int64_t now_ms, struct rl_raw *raw)
{
	enum { MAXARGS = 5 + 4 * RATELIMIT_MAX_ITEMS };
	const char *argv[MAXARGS];
	size_t argl[MAXARGS];
	char nkeys[4], now[24], member[48], num[RATELIMIT_MAX_ITEMS][2][16];
	size_t argc = 0;
	int rc = BZ_ERR_UNAVAILABLE;
	struct conn *c;
	redisReply *rep = NULL;

	snprintf(nkeys, sizeof(nkeys), "%zu", notes != NULL ? 2 * n : n);
	snprintf(now, sizeof(now), "%lld", (long long)now_ms);
	snprintf(member, sizeof(member), "%llx.%s",
		 (unsigned long long)atomic_fetch_add(&r->seq, 1), r->prefix);
	argv[argc++] = "EVALSHA";
	argv[argc++] = NULL; /* the SHA, filled once a connection is held */
	argv[argc++] = nkeys;
	for (size_t i = 0; i < n; i++)
		argv[argc++] = keys[i];
	for (size_t i = 0; notes != NULL && i < n; i++)
		argv[argc++] = notes[i];
	argv[argc++] = now;
	argv[argc++] = member;
	for (size_t i = 0; i < n; i++) {
		snprintf(num[i][0], sizeof(num[i][0]), "%u", rules[i].limit);
		snprintf(num[i][1], sizeof(num[i][1]), "%u", rules[i].window_s * 1000u);
		argv[argc++] = num[i][0];
		argv[argc++] = num[i][1];
	}
	for (size_t i = 0; i < argc; i++)
		argl[i] = i == 1 ? 40 : strlen(argv[i]);
	c = acquire(r);
	if (c == NULL)
		return RL_REDIS_BUSY;
	if (ensure(r, c) != 0)
		goto out;
	argv[1] = c->sha;
	rep = redisCommandArgv(c->c, (int)argc, argv, argl);
	if (is_noscript(rep)) {
		/* SCRIPT FLUSH or a restarted Redis: load it again, retry once. */
		freeReplyObject(rep);
		rep = NULL;
		if (load_script(c) != 0)
			goto out;
		rep = redisCommandArgv(c->c, (int)argc, argv, argl);
	}
	rc = parse_reply(rep, n, raw);
out:
	freeReplyObject(rep);
	if (rc != 0 && c->c != NULL) {
		/* Broken, timed out or answering nonsense: start afresh next time. */
		redisFree(c->c);
		c->c = NULL;
	}
	pthread_mutex_unlock(&c->mu);
	return rc;
}
