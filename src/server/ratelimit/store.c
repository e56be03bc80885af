/*
 * store.c — the Redis backend: one Lua script, an exact sliding log per
 * key, run with EVALSHA over a small pool of pipelined connections
 * (pipe.c: concurrent checks share a connection and one write).
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

#include "common/err.h"
#include "crypto/crypto.h"
#include "server/redis/redis.h"

/* KEYS: one sorted set per limiter, then optionally one notice key per
 * limiter. ARGV[1]: now (ms); ARGV[2]: the request's member; then limit,
 * window (ms) and now - window per limiter. Returns {refused (1-based
 * index of the first limiter at its limit, 0 = admitted), then count and
 * free-at (ms) per limiter, then per limiter 1 if its notice key was set
 * now (refused, at its limit, and no notice in the last window)}. A member stays counted
 * while now < score + window.
 *
 * Each call from a script costs Redis far more than the command itself, so
 * the script makes as few as the answer needs: the oldest member first
 * (ZRANGE 0 0), and the trim (ZREMRANGEBYSCORE) and a second look only when
 * that one has left the window; ZCARD only for a non-empty key; at the
 * limit, the member that must leave is the oldest itself when the key holds
 * exactly the limit. The state and the answer are those of trimming first
 * every time. Numbers go to Redis as the caller's strings: Redis turns a
 * Lua number argument into text with "%.17g", which costs more than the
 * command that gets it. */
static const char script[] =
	"local now = tonumber(ARGV[1])\n"
	"local n = (#ARGV - 2) / 3\n"
	"local out = {0}\n"
	"for i = 1, n do\n"
	"  local k = KEYS[i]\n"
	"  local limit = tonumber(ARGV[3 * i])\n"
	"  local win = tonumber(ARGV[1 + 3 * i])\n"
	"  local e = redis.call('ZRANGE', k, '0', '0', 'WITHSCORES')\n"
	"  if e[2] and tonumber(e[2]) <= now - win then\n"
	"    redis.call('ZREMRANGEBYSCORE', k, '-inf', ARGV[2 + 3 * i])\n"
	"    e = redis.call('ZRANGE', k, '0', '0', 'WITHSCORES')\n"
	"  end\n"
	"  local count = 0\n"
	"  if e[2] then count = redis.call('ZCARD', k) end\n"
	"  local free = now + win\n"
	"  local note = 0\n"
	"  if count >= limit then\n"
	"    if count > limit then\n"
	"      local r = tostring(count - limit)\n"
	"      e = redis.call('ZRANGE', k, r, r, 'WITHSCORES')\n"
	"    end\n"
	"    free = tonumber(e[2]) + win\n"
	"    if out[1] == 0 then out[1] = i end\n"
	"    if #KEYS == 2 * n and redis.call('SET', KEYS[n + i], '1', 'NX', 'PX', ARGV[1 + 3 * i]) then\n"
	"      note = 1\n"
	"    end\n"
	"  elseif count > 0 then\n"
	"    free = math.min(tonumber(e[2]), now) + win\n"
	"  end\n"
	"  out[2 * i] = count\n"
	"  out[2 * i + 1] = free\n"
	"  out[2 * n + 1 + i] = note\n"
	"end\n"
	"if out[1] == 0 then\n"
	"  for i = 1, n do\n"
	"    redis.call('ZADD', KEYS[i], ARGV[1], ARGV[2])\n"
	"    redis.call('PEXPIRE', KEYS[i], ARGV[1 + 3 * i])\n"
	"    out[2 * i] = out[2 * i] + 1\n"
	"  end\n"
	"end\n"
	"return out\n";

struct rl_redis {
	struct rl_pipe *pipe;
	pthread_mutex_t sha_mu; /* held while SHA is written */
	_Atomic int sha_known;	/* 1 once SHA is written (never changes after) */
	char sha[41];		/* the script's SHA1 as SCRIPT LOAD answered it */
	_Atomic uint64_t seq;	/* per-process request counter, part of each member */
	char prefix[13];	/* 48 random bits: members differ between instances */
};

/* Keeps the SHA of the first SCRIPT LOAD answer (the same for every
 * connection and every Redis: it is the SHA1 of the script). */
static void remember_sha(struct rl_redis *r, const redisReply *rep)
{
	pthread_mutex_lock(&r->sha_mu);
	if (!atomic_load(&r->sha_known)) {
		memcpy(r->sha, rep->str, 40);
		r->sha[40] = '\0';
		atomic_store(&r->sha_known, 1);
	}
	pthread_mutex_unlock(&r->sha_mu);
}

static int is_sha(const redisReply *rep)
{
	return rep != NULL && rep->type == REDIS_REPLY_STRING && rep->len == 40;
}

/* The pipe's setup hook: every new connection loads the script first, so
 * it is there from start and after a reconnect. */
static int setup(redisContext *c, void *arg)
{
	redisReply *rep = redisCommand(c, "SCRIPT LOAD %s", script);
	int ok = is_sha(rep);

	if (ok)
		remember_sha(arg, rep);
	freeReplyObject(rep);
	return ok ? 0 : BZ_ERR_UNAVAILABLE;
}

struct rl_redis *rl_redis_new(const char *url, unsigned pool, int timeout_ms)
{
	struct rl_redis *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	pthread_mutex_init(&r->sha_mu, NULL);
	r->pipe = rl_pipe_new(url, pool, timeout_ms, setup, r);
	if (r->pipe == NULL || crypto_random_hex(6, r->prefix) != 0) {
		rl_pipe_free(r->pipe);
		pthread_mutex_destroy(&r->sha_mu);
		free(r);
		return NULL;
	}
	return r;
}

void rl_redis_free(struct rl_redis *r)
{
	if (r == NULL)
		return;
	rl_pipe_free(r->pipe);
	pthread_mutex_destroy(&r->sha_mu);
	free(r);
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

/* Sends ARGV (ARGC words: "EVALSHA", the SHA, then the script's own) and
 * parses its reply. With the SHA unknown yet (no connection has loaded the
 * script), and after NOSCRIPT (SCRIPT FLUSH, a restarted Redis, a
 * failover), sends EVAL with the script's text instead: it runs the script
 * and caches it in one command, so even a flush between two commands cannot
 * fail the check. */
static int evalsha(struct rl_redis *r, int argc, const char **argv, size_t *argl, size_t n,
		   struct rl_raw *raw)
{
	struct rl_call call = {0};
	char *cmd = NULL;
	int rc = BZ_ERR_UNAVAILABLE;

	/* sha_known reads 1 only once remember_sha() has written all of SHA. */
	for (int eval = !atomic_load(&r->sha_known); eval < 2; eval++) {
		argv[0] = eval ? "EVAL" : "EVALSHA";
		argv[1] = eval ? script : r->sha;
		argl[0] = eval ? 4 : 7;
		argl[1] = eval ? sizeof(script) - 1 : 40;
		long long len = redisFormatCommandArgv(&cmd, argc, argv, argl);
		if (len < 0)
			return BZ_ERR_UNAVAILABLE;
		call.cmd = cmd;
		call.len = (size_t)len;
		rc = rl_pipe_call(r->pipe, &call);
		redisFreeCommand(cmd);
		if (rc != 0)
			return rc;
		if (eval || !is_noscript(call.reply))
			break;
		freeReplyObject(call.reply);
		call.reply = NULL;
	}
	rc = parse_reply(call.reply, n, raw);
	freeReplyObject(call.reply);
	return rc;
}

int rl_redis_check(struct rl_redis *r, const char *const *keys, const char *const *notes,
		   const struct ratelimit_rule *rules, size_t n, int64_t now_ms, struct rl_raw *raw)
{
	enum { MAXARGS = 5 + 5 * RATELIMIT_MAX_ITEMS };
	const char *argv[MAXARGS];
	size_t argl[MAXARGS];
	char nkeys[4], now[24], member[48], num[RATELIMIT_MAX_ITEMS][3][24];
	size_t argc = 0;

	snprintf(nkeys, sizeof(nkeys), "%zu", notes != NULL ? 2 * n : n);
	snprintf(now, sizeof(now), "%lld", (long long)now_ms);
	snprintf(member, sizeof(member), "%llx.%s",
		 (unsigned long long)atomic_fetch_add(&r->seq, 1), r->prefix);
	argv[argc++] = "EVALSHA"; /* the command and the SHA: set by evalsha() */
	argv[argc++] = NULL;
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
		snprintf(num[i][2], sizeof(num[i][2]), "%lld",
			 (long long)now_ms - (long long)rules[i].window_s * 1000);
		argv[argc++] = num[i][0];
		argv[argc++] = num[i][1];
		argv[argc++] = num[i][2];
	}
	for (size_t i = 2; i < argc; i++)
		argl[i] = strlen(argv[i]);
	return evalsha(r, (int)argc, argv, argl, n, raw);
}
