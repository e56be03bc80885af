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

/* Formats the script call for the N limiters KEYS / NOTES / RULES at
 * NOW_MS with member number SEQ into *CMD (redisFreeCommand() it): EVALSHA
 * of the known SHA, or with EVAL (or the SHA unknown yet) EVAL of the
 * script's text. Returns its length, or -1 on no memory. */
static long long format_check(struct rl_redis *r, const char *const *keys, const char *const *notes,
			      const struct ratelimit_rule *rules, size_t n, int64_t now_ms,
			      uint64_t seq, int eval, char **cmd)
{
	enum { MAXARGS = 5 + 5 * RATELIMIT_MAX_ITEMS };
	const char *argv[MAXARGS];
	size_t argl[MAXARGS];
	char nkeys[4], now[24], member[48], num[RATELIMIT_MAX_ITEMS][3][24];
	size_t argc = 0;

	/* sha_known reads 1 only once remember_sha() has written all of SHA. */
	eval = eval || !atomic_load(&r->sha_known);
	snprintf(nkeys, sizeof(nkeys), "%zu", notes != NULL ? 2 * n : n);
	snprintf(now, sizeof(now), "%lld", (long long)now_ms);
	snprintf(member, sizeof(member), "%llx.%s", (unsigned long long)seq, r->prefix);
	argv[argc++] = eval ? "EVAL" : "EVALSHA";
	argv[argc++] = eval ? script : r->sha;
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
	argl[0] = eval ? 4 : 7;
	argl[1] = eval ? sizeof(script) - 1 : 40;
	for (size_t i = 2; i < argc; i++)
		argl[i] = strlen(argv[i]);
	return redisFormatCommandArgv(cmd, (int)argc, argv, argl);
}

/* Sends the check once (EVAL when EVAL or the SHA is unknown); 0 with
 * *REP set (the caller frees), or BZ_ERR_UNAVAILABLE. */
static int send_check(struct rl_redis *r, const char *const *keys, const char *const *notes,
		      const struct ratelimit_rule *rules, size_t n, int64_t now_ms, uint64_t seq,
		      int eval, redisReply **rep)
{
	struct rl_call call = {0};
	char *cmd = NULL;
	long long len = format_check(r, keys, notes, rules, n, now_ms, seq, eval, &cmd);
	int rc;

	*rep = NULL;
	if (len < 0)
		return BZ_ERR_UNAVAILABLE;
	call.cmd = cmd;
	call.len = (size_t)len;
	rc = rl_pipe_call(r->pipe, &call);
	redisFreeCommand(cmd);
	*rep = call.reply;
	return rc;
}

/* With the SHA unknown yet (no connection has loaded the script), and
 * after NOSCRIPT (SCRIPT FLUSH, a restarted Redis, a failover), the check
 * goes as EVAL with the script's text: it runs the script and caches it in
 * one command, so even a flush between two commands cannot fail the
 * check. */
int rl_redis_check(struct rl_redis *r, const char *const *keys, const char *const *notes,
		   const struct ratelimit_rule *rules, size_t n, int64_t now_ms, struct rl_raw *raw)
{
	uint64_t seq = atomic_fetch_add(&r->seq, 1);
	redisReply *rep = NULL;
	int rc = send_check(r, keys, notes, rules, n, now_ms, seq, 0, &rep);

	if (rc == 0 && is_noscript(rep)) {
		freeReplyObject(rep);
		rc = send_check(r, keys, notes, rules, n, now_ms, seq, 1, &rep);
	}
	if (rc == 0)
		rc = parse_reply(rep, n, raw);
	freeReplyObject(rep);
	return rc;
}

/* One pipeline of the checks of REQS at index IDX[0..K) (EVAL when EVAL),
 * with member numbers SEQ + IDX[j]. Each answered check gets its reply in
 * REPS[IDX[j]] (the caller frees); the rest NULL. Returns 0 or
 * BZ_ERR_NOMEM (nothing sent). */
static int send_many(struct rl_redis *r, const struct rl_redis_req *reqs, const size_t *idx,
		     size_t k, int64_t now_ms, uint64_t seq, int eval, redisReply **reps)
{
	char **cmds = calloc(k, sizeof(*cmds));
	size_t *lens = calloc(k, sizeof(*lens));
	redisReply **got = calloc(k, sizeof(*got));
	struct rl_call call = {0};
	int rc = BZ_ERR_NOMEM;

	for (size_t j = 0; cmds != NULL && lens != NULL && got != NULL && j < k; j++) {
		const struct rl_redis_req *q = &reqs[idx[j]];
		long long len = format_check(r, q->keys, q->notes, q->rules, q->n, now_ms,
					     seq + idx[j], eval, &cmds[j]);
		if (len < 0)
			goto out;
		lens[j] = (size_t)len;
	}
	if (cmds == NULL || lens == NULL || got == NULL)
		goto out;
	call.n = k;
	call.cmds = (const char *const *)cmds;
	call.lens = lens;
	call.replies = got;
	rl_pipe_call_many(r->pipe, &call); /* the replies say which ran */
	for (size_t j = 0; j < k; j++)
		reps[idx[j]] = got[j];
	rc = 0;
out:
	for (size_t j = 0; cmds != NULL && j < k; j++)
		redisFreeCommand(cmds[j]);
	free(cmds);
	free(lens);
	free(got);
	return rc;
}

/* Without the SHA (no connection has loaded the script yet), sends the
 * first check alone: connecting loads the script, so the rest go as
 * EVALSHA rather than as as many copies of its text. Returns 1 if it was
 * sent (REPS[0] set when answered), 0 if not needed, -1 when Redis failed
 * (then nothing more is sent: the batch's one try). */
static int send_first(struct rl_redis *r, const struct rl_redis_req *reqs, size_t n_reqs,
		      int64_t now_ms, uint64_t seq, redisReply **reps)
{
	if (n_reqs < 2 || atomic_load(&r->sha_known))
		return 0;
	if (send_check(r, reqs[0].keys, reqs[0].notes, reqs[0].rules, reqs[0].n, now_ms, seq, 0,
		       &reps[0]) != 0) {
		reps[0] = NULL;
		return -1;
	}
	return 1;
}

int rl_redis_check_many(struct rl_redis *r, struct rl_redis_req *reqs, size_t n_reqs,
			int64_t now_ms)
{
	redisReply **reps = calloc(n_reqs ? n_reqs : 1, sizeof(*reps));
	size_t *idx = calloc(n_reqs ? n_reqs : 1, sizeof(*idx)), k = 0;
	int first, rc = 0;
	uint64_t seq;

	if (reps == NULL || idx == NULL || n_reqs > RL_PIPE_MANY_MAX) {
		rc = BZ_ERR_NOMEM;
		goto out;
	}
	for (size_t i = 0; i < n_reqs; i++) {
		reqs[i].rc = BZ_ERR_UNAVAILABLE;
		idx[i] = i;
	}
	/* Consecutive member numbers, one per check (kept for an EVAL resend). */
	seq = atomic_fetch_add(&r->seq, n_reqs);
	first = send_first(r, reqs, n_reqs, now_ms, seq, reps);
	if (first >= 0 && n_reqs > (size_t)first &&
	    send_many(r, reqs, idx + first, n_reqs - (size_t)first, now_ms, seq, 0, reps) != 0 &&
	    first == 0) {
		rc = BZ_ERR_NOMEM; /* nothing sent */
		goto out;
	}
	for (size_t i = 0; i < n_reqs; i++)
		if (is_noscript(reps[i])) {
			freeReplyObject(reps[i]);
			reps[i] = NULL;
			idx[k++] = i;
		}
	/* Out of memory for the resend: those checks did not run, and fall
	 * back as an unanswered check does. */
	if (k > 0)
		send_many(r, reqs, idx, k, now_ms, seq, 1, reps);
	for (size_t i = 0; i < n_reqs; i++)
		if (reps[i] != NULL)
			reqs[i].rc = parse_reply(reps[i], reqs[i].n, reqs[i].raw);
out:
	for (size_t i = 0; reps != NULL && i < n_reqs; i++)
		freeReplyObject(reps[i]);
	free(reps);
	free(idx);
	return rc;
}
