/*
 * ratelimit.h — sliding-window rate limits shared through Redis, with an
 * in-process fallback while Redis is unreachable (issue 9; checklist R1–R6,
 * A4, G4). docs/rate-limiting.md gives the algorithm, its error bounds, the
 * key formats and the Redis-down policy.
 *
 * A check names one or more limiters (e.g. an agent's device and its
 * organization) and is admitted only if every one admits; then it counts
 * in all of them, and a refused check counts in none. Through Redis one
 * check is one EVALSHA round trip of one Lua script (an exact sliding log
 * per key). Time is the caller's, in milliseconds (bz_now_ms()), so tests
 * control it.
 *
 * Thread-safe: one struct ratelimit serves every request thread; the
 * checks of concurrent threads share its connections and are pipelined
 * (one write and one read for a batch of them).
 */
#ifndef BZ_RATELIMIT_H
#define BZ_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#include "server/ratelimit/rule.h"

/* The limiters of issue 9, each with its own setting and key format. */
enum ratelimit_limiter {
	RL_LOGIN, /* tag: client IP (ratelimit_norm_ip); subject: e-mail (ratelimit_norm_email) */
	RL_LOGIN_IP,	 /* tag: client IP; no subject */
	RL_API_USER,	 /* tag: user id (API keys: the key id); no subject */
	RL_AGENT_DEVICE, /* tag: organization id; subject: device id */
	RL_AGENT_ORG,	 /* tag: organization id; no subject */
	RL_ENROLL,	 /* tag: client IP; no subject */
	RL_MFA,		 /* tag: user id; no subject */
	RL_WEBHOOK_TEST, /* tag: organization id; no subject */
	RL_LIMITER_COUNT
};

/* Name of limiter L as it appears in keys, logs and metrics ("login",
 * "login_ip", "api_user", "agent_device", "agent_org", "enroll", "mfa", "webhook_test"). */
const char *ratelimit_limiter_name(enum ratelimit_limiter l);

#define RATELIMIT_MAX_ITEMS 4	 /* limiters in one check */
#define RATELIMIT_TAG_MAX 64	 /* bytes of a tag (UUID, folded IP) */
#define RATELIMIT_SUBJECT_MAX 64 /* bytes of a subject as stored (see below) */
#define RATELIMIT_KEY_MAX 192	 /* bytes of a built key, NUL included */

/* Default bound of the in-process fallback table (keys), and the Redis
 * budget: connect and each socket read or write, then the check falls back. */
#define RATELIMIT_LOCAL_MAX_KEYS_DEFAULT 100000
#define RATELIMIT_REDIS_TIMEOUT_MS_DEFAULT 100
#define RATELIMIT_RETRY_INTERVAL_MS_DEFAULT 1000
#define RATELIMIT_POOL_SIZE_DEFAULT 8

struct ratelimit_options {
	const char *redis_url; /* NULL: in-process only (tests, benchmarks); copied */
	enum ratelimit_on_failure on_failure;
	struct ratelimit_rule rules[RL_LIMITER_COUNT]; /* every one must be set */
	size_t local_max_keys;			       /* 0: RATELIMIT_LOCAL_MAX_KEYS_DEFAULT */
	int redis_timeout_ms;			       /* 0: RATELIMIT_REDIS_TIMEOUT_MS_DEFAULT */
	int retry_interval_ms;			       /* 0: RATELIMIT_RETRY_INTERVAL_MS_DEFAULT */
	unsigned redis_pool_size;		       /* 0: RATELIMIT_POOL_SIZE_DEFAULT; 1..64 */
};

/* One limiter of a check. TAG is the hash tag that keeps a check's keys in
 * one Redis Cluster slot ({TAG} in the key); SUBJECT is NULL for limiters
 * without one. Both are borrowed for the call. */
struct ratelimit_item {
	enum ratelimit_limiter limiter;
	const char *tag;
	const char *subject;
	/* 1: report in first_refusal whether this is the key's first refusal
	 * in its window (for "audited at most once per key per window"); costs
	 * one small Redis key per refused key and window (for every limiter at
	 * its limit in a check where any item asks). */
	int note_refusal;
};

/* The state of one limiter after a check. */
struct ratelimit_status {
	uint32_t limit;
	uint32_t remaining; /* admissions left in the window now (0 when refused) */
	int64_t reset_s;    /* epoch seconds (rounded up) when the next slot frees */
};

enum ratelimit_backend { RATELIMIT_BACKEND_REDIS = 0, RATELIMIT_BACKEND_LOCAL = 1 };

struct ratelimit_result {
	int admitted; /* 1: go on; 0: answer 429 */
	/* Index into the items of the limiter that refused (of several at
	 * their limit, the one that admits last), or -1. */
	int refused_by;
	const char *limiter;	   /* name of that limiter, or of the one with the fewest
				remaining when admitted (for X-RateLimit-*) */
	uint32_t limit, remaining; /* of that limiter */
	int64_t reset_s;	   /* of that limiter */
	/* Seconds until a request would be admitted, rounded up, at least 1
	 * when refused (agent_org: always 60, checklist R6); 0 when admitted. */
	uint32_t retry_after_s;
	enum ratelimit_backend backend; /* which backend decided */
	/* 1 when refused by a limiter whose item asked for note_refusal and
	 * that refused nothing else in the last window: audit this one. */
	int first_refusal;
	size_t n;
	struct ratelimit_status items[RATELIMIT_MAX_ITEMS];
};

/* Counters for metrics and health (ratelimit_stats). */
struct ratelimit_stats {
	enum ratelimit_backend backend; /* what the next check will try first */
	uint64_t outages;		/* times Redis went from answering to failing */
	uint64_t redis_checks, local_checks, denied_unavailable;
	size_t local_keys, local_max_keys;
	uint64_t local_evictions;
};

struct ratelimit;

/*
 * Makes a limiter from OPTS (copied). Each rule must be valid (see
 * ratelimit_rule_parse). With a Redis URL the script is loaded at once when
 * Redis answers; an unreachable Redis at start is not an error (checks fall
 * back until it answers). The in-process table is allocated here
 * (local_max_keys entries of ~200 bytes, touched lazily). Returns the
 * limiter (ratelimit_close() it) or NULL on bad options or no memory.
 */
struct ratelimit *ratelimit_open(const struct ratelimit_options *opts);

/* Frees RL and its connections. NULL is fine. No check may be running. */
void ratelimit_close(struct ratelimit *rl);

/*
 * Checks the N limiters of ITEMS (1..RATELIMIT_MAX_ITEMS, distinct keys)
 * at NOW_MS (epoch ms, bz_now_ms()) and fills OUT. Through Redis when it
 * answers within the budget; else, per RATE_LIMIT_ON_REDIS_FAILURE, in
 * process (OUT->backend says which), or not at all. Returns 0 (OUT says
 * admitted or refused), BZ_ERR_UNAVAILABLE in deny mode while Redis is
 * unreachable (answer 503; nothing counted), or BZ_ERR_INVALID for bad
 * items (a missing, too long or brace-holding tag, a too long subject).
 */
int ratelimit_check(struct ratelimit *rl, const struct ratelimit_item *items, size_t n,
		    int64_t now_ms, struct ratelimit_result *out);

/* One check of ratelimit_check_many(): N items (1..RATELIMIT_MAX_ITEMS), as for ratelimit_check. */
struct ratelimit_check {
	const struct ratelimit_item *items;
	size_t n;
};

#define RATELIMIT_MANY_MAX 1000 /* checks in one ratelimit_check_many() */

/*
 * N_CHECKS independent ratelimit_check()s at NOW_MS with ONE Redis round trip (a pipeline of
 * the same script calls; each check keeps its own atomicity and hash-tagged slot), filling
 * OUT[i] and RCS[i] (0, BZ_ERR_UNAVAILABLE, BZ_ERR_INVALID — exactly what ratelimit_check()
 * would return for checks[i] alone, including the in-process fallback and deny mode when Redis
 * fails mid-pipeline). Checks of the same key count in order. Returns 0, or BZ_ERR_NOMEM
 * (nothing counted). N_CHECKS 0..RATELIMIT_MANY_MAX (1000).
 *
 * OUT and RCS have N_CHECKS entries. Checks Redis answered before it broke keep their Redis
 * result (they ran); the rest go to the fallback (or deny) in order, as one check whose
 * EVALSHA failed would. The pipeline is one try of Redis: one outage at most, and during an
 * outage the whole batch takes the one retry slot. Allocates about 2 KB per check for the
 * call. A second round trip only for checks answered NOSCRIPT (sent again as EVAL). Returns
 * BZ_ERR_INVALID (nothing counted, OUT and RCS untouched) for N_CHECKS over the maximum or
 * CHECKS NULL.
 */
int ratelimit_check_many(struct ratelimit *rl, const struct ratelimit_check *checks,
			 size_t n_checks, int64_t now_ms, struct ratelimit_result *out, int *rcs);

/* Copies RL's counters into OUT. */
void ratelimit_stats(struct ratelimit *rl, struct ratelimit_stats *out);

/*
 * Builds the Redis key of ITEM into OUT (LEN bytes, RATELIMIT_KEY_MAX is
 * enough): "rl:{TAG}:NAME" or "rl:{TAG}:NAME:SUBJECT". RL_LOGIN's subject
 * (an e-mail address) is stored as the first 32 hex digits of its SHA-256,
 * so Redis holds no addresses. Returns 0 or BZ_ERR_INVALID (see
 * ratelimit_check).
 */
int ratelimit_key(const struct ratelimit_item *item, char *out, size_t len);

#endif
