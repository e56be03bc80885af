/*
 * internal.h — what ratelimit.c shares with its two backends (local.c,
 * store.c), and what store.c uses for its connections (pipe.c). Not part
 * of the module's public face: include ratelimit.h.
 */
#ifndef BZ_RATELIMIT_INTERNAL_H
#define BZ_RATELIMIT_INTERNAL_H

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "server/ratelimit/ratelimit.h"

/* A backend's answer for N limiters, before it becomes a ratelimit_result. */
struct rl_raw {
	int refused; /* index of the first limiter that refused, -1 if admitted */
	/* Requests in the window after the check (the admitted one included). */
	uint32_t count[RATELIMIT_MAX_ITEMS];
	/* Epoch ms: for a limiter at its limit, when it would admit a request;
	 * for the others, when the oldest request counted leaves the window. */
	int64_t free_ms[RATELIMIT_MAX_ITEMS];
	/* 1 for a limiter at its limit that was asked to note refusals and had
	 * noted none in the last window (now it has). */
	int first[RATELIMIT_MAX_ITEMS];
};

/* The in-process table (local.c): at most MAX_KEYS keys, least recently
 * used evicted first. Thread-safe. */
struct rl_local;
struct rl_local *rl_local_new(size_t max_keys);
void rl_local_free(struct rl_local *t);
/* Checks the N keys KEYS (NUL-terminated) against RULES at NOW_MS. */
/* NOTE[i]: note refusals of key i (see rl_raw.first). */
void rl_local_check(struct rl_local *t, const char *const *keys, const struct ratelimit_rule *rules,
		    const int *note, size_t n, int64_t now_ms, struct rl_raw *raw);
/* Keys held now, and evictions so far. */
void rl_local_counts(struct rl_local *t, size_t *keys, uint64_t *evictions);

/* Automatic pipelining (pipe.c): POOL connections to URL with TIMEOUT_MS
 * for connect and each socket read or write. Concurrent calls share a
 * connection and go out in one write, their replies read back in order.
 * SETUP, if not NULL, runs on every new connection before its first batch
 * (e.g. SCRIPT LOAD); non-zero drops the connection. */
typedef int rl_pipe_setup_fn(redisContext *c, void *arg);
struct rl_pipe;
struct rl_pipe *rl_pipe_new(const char *url, unsigned pool, int timeout_ms, rl_pipe_setup_fn *setup,
			    void *setup_arg);
/* No call may be running. */
void rl_pipe_free(struct rl_pipe *p);
/* One command (rl_pipe_call) or several (rl_pipe_call_many), on the
 * caller's stack for the duration of the call. */
struct rl_call {
	const char *cmd;   /* the command in RESP (redisFormatCommandArgv), borrowed */
	size_t len;	   /* its bytes */
	redisReply *reply; /* out: the reply (also an error reply); the caller frees */
	int rc;		   /* out: 0, or BZ_ERR_UNAVAILABLE (no reply, or not every reply) */
	/* The commands the call sends: set by rl_pipe_call to the one above;
	 * for rl_pipe_call_many, N commands CMDS of LENS bytes (borrowed) and
	 * REPLIES (out: N replies, NULL where none was read; the caller frees). */
	size_t n;
	const char *const *cmds;
	const size_t *lens;
	redisReply **replies;
	_Atomic int done;     /* internal */
	sem_t wake;	      /* internal: posted once with the result, or to lead */
	struct rl_call *next; /* internal */
};
/* Sends CALL's command through P and waits for its reply: 0 with
 * CALL->reply set, or BZ_ERR_UNAVAILABLE when Redis could not be reached,
 * broke or gave no reply within the budget (the command may or may not have
 * run). Blocks for the batch in flight on its connection plus its own, each
 * socket step bounded by TIMEOUT_MS. Thread-safe. */
int rl_pipe_call(struct rl_pipe *p, struct rl_call *call);
/* Sends CALL's N commands (CALL->n, ->cmds, ->lens; 1..RL_PIPE_MANY_MAX)
 * through P on ONE connection, in one write (one batch of their own, or
 * with others' commands when it fits) and in order, and reads their
 * replies in order into CALL->replies. Returns 0 when every command
 * answered, else BZ_ERR_UNAVAILABLE: commands with a reply ran, the ones
 * with NULL may or may not have. As rl_pipe_call otherwise. */
int rl_pipe_call_many(struct rl_pipe *p, struct rl_call *call);
#define RL_PIPE_MANY_MAX 4096

/* The Redis backend (store.c): the script over a pipelined pool of POOL
 * connections to URL with TIMEOUT_MS for connect and each socket step. */
struct rl_redis;
struct rl_redis *rl_redis_new(const char *url, unsigned pool, int timeout_ms);
void rl_redis_free(struct rl_redis *r);
/* One EVALSHA (EVAL of the script after NOSCRIPT). NOTES: NULL, or N notice
 * keys (one per limiter, same hash tag) for rl_raw.first. Returns 0 with
 * RAW filled, or BZ_ERR_UNAVAILABLE on any failure of Redis itself
 * (nothing is then known to have counted). Concurrent checks share
 * connections (pipe.c), so there is no "pool busy" answer: a check waits
 * for its turn on a connection, each socket step bounded by TIMEOUT_MS. */
int rl_redis_check(struct rl_redis *r, const char *const *keys, const char *const *notes,
		   const struct ratelimit_rule *rules, size_t n, int64_t now_ms,
		   struct rl_raw *raw);
/* One check of rl_redis_check_many(): rl_redis_check's arguments, and its
 * answer in RAW and RC (0, or BZ_ERR_UNAVAILABLE). */
struct rl_redis_req {
	const char *const *keys;
	const char *const *notes;
	const struct ratelimit_rule *rules;
	size_t n;
	struct rl_raw *raw;
	int rc;
};
/* The N_REQS (1..RL_PIPE_MANY_MAX) checks REQS at NOW_MS as N_REQS script
 * calls in one pipeline on one connection (rl_pipe_call_many): one round
 * trip, plus one more for the checks answered NOSCRIPT (sent again as
 * EVAL). Each call is its own script run, so each check keeps its
 * atomicity and its slot, and checks of the same key count in REQS order.
 * Fills every REQS[i].rc (and .raw when 0). Returns 0, or BZ_ERR_NOMEM
 * before anything was sent. */
int rl_redis_check_many(struct rl_redis *r, struct rl_redis_req *reqs, size_t n_reqs,
			int64_t now_ms);

#endif
