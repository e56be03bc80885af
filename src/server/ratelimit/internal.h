/*
 * internal.h — what ratelimit.c shares with its two backends (local.c,
 * store.c). Not part of the module's public face: include ratelimit.h.
 */
#ifndef BZ_RATELIMIT_INTERNAL_H
#define BZ_RATELIMIT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

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

/* The Redis backend (store.c): a pool of POOL connections to URL with
 * TIMEOUT_MS for connect, pool wait and each command. */
struct rl_redis;
struct rl_redis *rl_redis_new(const char *url, unsigned pool, int timeout_ms);
void rl_redis_free(struct rl_redis *r);
/* Returned by rl_redis_check when every connection stayed busy for the
 * pool wait: Redis was not asked, so nothing is known about it (a busy
 * pool is not an outage). */
#define RL_REDIS_BUSY BZ_ERR_CONFLICT
/* One EVALSHA (script reloaded after NOSCRIPT). NOTES: NULL, or N notice
 * keys (one per limiter, same hash tag) for rl_raw.first. Returns 0 with
 * RAW filled, RL_REDIS_BUSY when no connection freed within TIMEOUT_MS, or
 * BZ_ERR_UNAVAILABLE on any failure of Redis itself (nothing is then known
 * to have counted). */
int rl_redis_check(struct rl_redis *r, const char *const *keys, const char *const *notes,
		   const struct ratelimit_rule *rules, size_t n, int64_t now_ms,
		   struct rl_raw *raw);

#endif
