/*
 * ratelimit.c — the limiter's front: key building, the choice between
 * Redis and the in-process fallback, and the outage state for metrics.
 *
 * While Redis answers every check goes there. The first failure (an error,
 * or no answer within redis_timeout_ms) marks an outage: one warning line,
 * outages + 1, and from then on checks skip Redis and go to the fallback,
 * except that at most one check per retry interval tries Redis again; when
 * it answers, shared limits resume at once, without a restart. A check that
 * finds every pooled connection busy queues on one instead (its command goes
 * out in the next pipelined batch): a busy pool is load, not an outage, and
 * falling back on it would let a flood switch every instance to its own
 * counts.
 */
#include "server/ratelimit/ratelimit.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "common/metrics.h"
#include "crypto/crypto.h"
#include "server/ratelimit/internal.h"

static const char *const names[RL_LIMITER_COUNT] = {
	[RL_LOGIN] = "login",
	[RL_LOGIN_IP] = "login_ip",
	[RL_API_USER] = "api_user",
	[RL_AGENT_DEVICE] = "agent_device",
	[RL_AGENT_ORG] = "agent_org",
	[RL_ENROLL] = "enroll",
	[RL_MFA] = "mfa",
	[RL_WEBHOOK_TEST] = "webhook_test",
};

/* The per-organization agent limiter always asks for a full minute
 * (checklist R6), so a fleet backs off together. */
#define AGENT_ORG_RETRY_AFTER_S 60

/* Appended to a limiter's key to make its "refusal reported" notice key. */
#define NOTICE_SUFFIX ":refused"

struct ratelimit {
	struct ratelimit_options o;
	struct rl_local *local;
	struct rl_redis *redis;	     /* NULL: in-process only */
	_Atomic int down;	     /* 1 from a Redis failure until Redis answers again */
	_Atomic int64_t next_try_ms; /* monotonic: when a check may try Redis again */
	_Atomic uint64_t outages, redis_checks, local_checks, denied;
};

const char *ratelimit_limiter_name(enum ratelimit_limiter l)
{
	return (unsigned)l < RL_LIMITER_COUNT ? names[l] : "unknown";
}

struct ratelimit *ratelimit_open(const struct ratelimit_options *opts)
{
	struct ratelimit *rl;

	for (int i = 0; i < RL_LIMITER_COUNT; i++) {
		const struct ratelimit_rule *r = &opts->rules[i];
		if (r->limit < 1 || r->limit > RATELIMIT_MAX_LIMIT || r->window_s < 1 ||
		    r->window_s > RATELIMIT_MAX_WINDOW_S)
			return NULL;
	}
	if (opts->redis_pool_size > 64 || opts->redis_timeout_ms < 0 || opts->retry_interval_ms < 0)
		return NULL;
	rl = calloc(1, sizeof(*rl));
	if (rl == NULL)
		return NULL;
	rl->o = *opts;
	rl->o.redis_url = NULL;
	if (rl->o.local_max_keys == 0)
		rl->o.local_max_keys = RATELIMIT_LOCAL_MAX_KEYS_DEFAULT;
	if (rl->o.redis_timeout_ms == 0)
		rl->o.redis_timeout_ms = RATELIMIT_REDIS_TIMEOUT_MS_DEFAULT;
	if (rl->o.retry_interval_ms == 0)
		rl->o.retry_interval_ms = RATELIMIT_RETRY_INTERVAL_MS_DEFAULT;
	if (rl->o.redis_pool_size == 0)
		rl->o.redis_pool_size = RATELIMIT_POOL_SIZE_DEFAULT;
	rl->local = rl_local_new(rl->o.local_max_keys);
	if (rl->local == NULL)
		goto fail;
	if (opts->redis_url != NULL) {
		rl->redis = rl_redis_new(opts->redis_url, rl->o.redis_pool_size,
					 rl->o.redis_timeout_ms);
		if (rl->redis == NULL)
			goto fail;
	}
	return rl;
fail:
	ratelimit_close(rl);
	return NULL;
}

void ratelimit_close(struct ratelimit *rl)
{
	if (rl == NULL)
		return;
	rl_local_free(rl->local);
	rl_redis_free(rl->redis);
	free(rl);
}

/* Bytes allowed in a tag or subject, as a bitmap: printable ASCII
 * (0x21-0x7e) without braces, which would move the Redis Cluster hash tag. */
static const uint64_t key_bytes[4] = {0xFFFFFFFE00000000ULL, 0x57FFFFFFFFFFFFFFULL, 0, 0};

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* 1 if every byte of the word X is allowed. The usual exact "is there a
 * byte below / above / equal to" word tests: this runs over every byte of
 * every check, eight at a time. */
static int word_ok(uint64_t x)
{
	uint64_t below = (x - ONES * 0x21) & ~x;	/* a byte < 0x21 */
	uint64_t above = (x + ONES * (127 - 0x7e)) | x; /* a byte > 0x7e */
	uint64_t open = x ^ (ONES * '{'), close = x ^ (ONES * '}');

	open = (open - ONES) & ~open;
	close = (close - ONES) & ~close;
	return ((below | above | open | close) & HIGHS) == 0;
}

/* The length of S if it is non-empty, at most MAX bytes, all allowed;
 * else 0. */
static size_t key_part_len(const char *s, size_t max)
{
	size_t n = strlen(s), i = 0;
	uint64_t x;

	if (n == 0 || n > max)
		return 0;
	for (; i + 8 <= n; i += 8) {
		memcpy(&x, s + i, 8);
		if (!word_ok(x))
			return 0;
	}
	for (; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!((key_bytes[c >> 6] >> (c & 63)) & 1))
			return 0;
	}
	return n;
}

/* Appends the N bytes of S to *P (not past END, NUL kept); 0, or
 * BZ_ERR_INVALID when it does not fit. */
static int append(char **p, const char *end, const char *s, size_t n)
{
	if (n >= (size_t)(end - *p))
		return BZ_ERR_INVALID;
	memcpy(*p, s, n);
	*p += n;
	**p = '\0';
	return 0;
}

int ratelimit_key(const struct ratelimit_item *it, char *out, size_t len)
{
	char hashed[BZ_SHA256_HEX_LEN + 1];
	const char *subject = it->subject, *name;
	char *p = out;
	const char *end = out + len;
	size_t tl, sl = 0;

	if (len > 0)
		out[0] = '\0';
	if ((unsigned)it->limiter >= RL_LIMITER_COUNT || it->tag == NULL ||
	    (tl = key_part_len(it->tag, RATELIMIT_TAG_MAX)) == 0)
		return BZ_ERR_INVALID;
	if ((subject != NULL) != (it->limiter == RL_LOGIN || it->limiter == RL_AGENT_DEVICE))
		return BZ_ERR_INVALID; /* a subject exactly where the key format has one */
	if (it->limiter == RL_LOGIN) {
		/* E-mail addresses stay out of Redis; 128 bits keep buckets apart. */
		if (crypto_sha256_hex(subject, strlen(subject), hashed) != 0)
			return BZ_ERR_INVALID;
		hashed[32] = '\0';
		subject = hashed;
	}
	if (subject != NULL && (sl = key_part_len(subject, RATELIMIT_SUBJECT_MAX)) == 0)
		return BZ_ERR_INVALID;
	name = names[it->limiter];
	/* "rl:{TAG}:NAME[:SUBJECT]" (snprintf would cost more than the check). */
	if (append(&p, end, "rl:{", 4) || append(&p, end, it->tag, tl) ||
	    append(&p, end, "}:", 2) || append(&p, end, name, strlen(name)) ||
	    (subject != NULL && (append(&p, end, ":", 1) || append(&p, end, subject, sl)))) {
		out[0] = '\0';
		return BZ_ERR_INVALID;
	}
	return 0;
}

static int64_t ceil_div(int64_t a, int64_t b)
{
	return a <= 0 ? 0 : (a + b - 1) / b;
}

/* Milliseconds until limiter IT, free at FREE_MS, admits: at least 1 s,
 * and a full minute for agent_org. */
static int64_t retry_ms(const struct ratelimit_item *it, int64_t free_ms, int64_t now_ms)
{
	int64_t ms = free_ms - now_ms;

	if (ms < 1000)
		ms = 1000;
	if (it->limiter == RL_AGENT_ORG && ms < AGENT_ORG_RETRY_AFTER_S * 1000)
		ms = AGENT_ORG_RETRY_AFTER_S * 1000;
	return ms;
}

/* Turns a backend's RAW answer for ITEMS at NOW_MS into OUT. */
static void fill_result(const struct ratelimit_item *items, const struct ratelimit_rule *rules,
			size_t n, const struct rl_raw *raw, int64_t now_ms,
			struct ratelimit_result *out)
{
	size_t pick = 0;

	out->n = n;
	out->admitted = raw->refused < 0;
	out->refused_by = -1;
	for (size_t i = 0; i < n; i++) {
		struct ratelimit_status *st = &out->items[i];
		st->limit = rules[i].limit;
		st->remaining = raw->count[i] >= rules[i].limit ? 0
								: rules[i].limit - raw->count[i];
		if ((int)i == raw->refused)
			st->remaining = 0;
		st->reset_s = ceil_div(raw->free_ms[i], 1000);
		if (out->items[i].remaining < out->items[pick].remaining)
			pick = i;
	}
	if (raw->refused >= 0) {
		/* Of the limiters at their limit, the one that admits last decides
		 * Retry-After: a request retried earlier would be refused again. */
		pick = (size_t)raw->refused;
		for (size_t i = 0; i < n; i++)
			if (raw->count[i] >= rules[i].limit &&
			    (retry_ms(&items[i], raw->free_ms[i], now_ms) >
			     retry_ms(&items[pick], raw->free_ms[pick], now_ms)))
				pick = i;
		out->refused_by = (int)pick;
	}
	out->limiter = names[items[pick].limiter];
	out->limit = out->items[pick].limit;
	out->remaining = out->items[pick].remaining;
	out->reset_s = out->items[pick].reset_s;
	out->retry_after_s = 0;
	out->first_refusal = 0;
	if (raw->refused >= 0) {
		metrics_inc(METRIC_RATELIMIT_REJECTIONS, names[items[pick].limiter]);
		out->first_refusal = items[pick].note_refusal && raw->first[pick];
		int64_t s = ceil_div(retry_ms(&items[pick], raw->free_ms[pick], now_ms), 1000);
		out->retry_after_s = s > UINT32_MAX ? UINT32_MAX : (uint32_t)s;
	}
}

/* 1 if this check should try Redis: always while it answers; during an
 * outage, only the one check that claims the next retry slot. */
static int should_try_redis(struct ratelimit *rl)
{
	if (rl->redis == NULL)
		return 0;
	if (!atomic_load(&rl->down))
		return 1;
	int64_t now = bz_monotonic_ms(), due = atomic_load(&rl->next_try_ms);
	return now >= due && atomic_compare_exchange_strong(&rl->next_try_ms, &due,
							    now + rl->o.retry_interval_ms);
}

static void mark_down(struct ratelimit *rl)
{
	atomic_store(&rl->next_try_ms, bz_monotonic_ms() + rl->o.retry_interval_ms);
	if (atomic_exchange(&rl->down, 1) == 0) {
		atomic_fetch_add(&rl->outages, 1);
		log_warn("ratelimit.redis_unavailable", "fallback",
			 rl->o.on_failure == RATELIMIT_FAIL_DENY ? "deny" : "local", NULL);
	}
}

static void mark_up(struct ratelimit *rl)
{
	if (atomic_load(&rl->down) && atomic_exchange(&rl->down, 0) == 1)
		log_info("ratelimit.redis_resumed", NULL);
}

/* A check's keys and rules, built and validated (room for the largest). */
struct prepared {
	char keybuf[RATELIMIT_MAX_ITEMS][RATELIMIT_KEY_MAX];
	char notebuf[RATELIMIT_MAX_ITEMS][RATELIMIT_KEY_MAX + sizeof(NOTICE_SUFFIX)];
	const char *keys[RATELIMIT_MAX_ITEMS], *notes[RATELIMIT_MAX_ITEMS];
	int note[RATELIMIT_MAX_ITEMS], any_note;
	struct ratelimit_rule rules[RATELIMIT_MAX_ITEMS];
};

/* Clears OUT, then builds P from the N ITEMS of a check at NOW_MS; 0 or
 * BZ_ERR_INVALID (see ratelimit_check). P's pointers point into P. */
static int prepare(struct ratelimit *rl, const struct ratelimit_item *items, size_t n,
		   int64_t now_ms, struct prepared *p, struct ratelimit_result *out)
{
	memset(out, 0, sizeof(*out));
	out->refused_by = -1;
	p->any_note = 0;
	if (items == NULL || n < 1 || n > RATELIMIT_MAX_ITEMS || now_ms <= 0)
		return BZ_ERR_INVALID;
	for (size_t i = 0; i < n; i++) {
		if (ratelimit_key(&items[i], p->keybuf[i], sizeof(p->keybuf[i])) != 0)
			return BZ_ERR_INVALID;
		p->keys[i] = p->keybuf[i];
		p->rules[i] = rl->o.rules[items[i].limiter];
		p->note[i] = items[i].note_refusal != 0;
		p->any_note |= p->note[i];
		for (size_t j = 0; j < i; j++)
			if (strcmp(p->keys[i], p->keys[j]) == 0)
				return BZ_ERR_INVALID;
	}
	for (size_t i = 0; p->any_note && i < n; i++) {
		/* The notice key shares the limiter key's hash tag (one slot). */
		size_t kl = strlen(p->keys[i]);
		memcpy(p->notebuf[i], p->keys[i], kl);
		memcpy(p->notebuf[i] + kl, NOTICE_SUFFIX, sizeof(NOTICE_SUFFIX));
		p->notes[i] = p->notebuf[i];
	}
	return 0;
}

/* The answer of a check that Redis decided (RAW). */
static void from_redis(struct ratelimit *rl, const struct ratelimit_item *items, size_t n,
		       const struct prepared *p, const struct rl_raw *raw, int64_t now_ms,
		       struct ratelimit_result *out)
{
	atomic_fetch_add(&rl->redis_checks, 1);
	out->backend = RATELIMIT_BACKEND_REDIS;
	fill_result(items, p->rules, n, raw, now_ms, out);
}

/* The answer of a check without Redis: BZ_ERR_UNAVAILABLE in deny mode
 * (nothing counted), else the in-process table's. */
static int without_redis(struct ratelimit *rl, const struct ratelimit_item *items, size_t n,
			 const struct prepared *p, int64_t now_ms, struct ratelimit_result *out)
{
	struct rl_raw raw;

	if (rl->redis != NULL && rl->o.on_failure == RATELIMIT_FAIL_DENY) {
		atomic_fetch_add(&rl->denied, 1);
		return BZ_ERR_UNAVAILABLE;
	}
	rl_local_check(rl->local, p->keys, p->rules, p->note, n, now_ms, &raw);
	atomic_fetch_add(&rl->local_checks, 1);
	out->backend = RATELIMIT_BACKEND_LOCAL;
	fill_result(items, p->rules, n, &raw, now_ms, out);
	return 0;
}

int ratelimit_check(struct ratelimit *rl, const struct ratelimit_item *items, size_t n,
		    int64_t now_ms, struct ratelimit_result *out)
{
	struct prepared p;
	struct rl_raw raw;

	if (prepare(rl, items, n, now_ms, &p, out) != 0)
		return BZ_ERR_INVALID;
	if (should_try_redis(rl)) {
		/* Concurrent checks queue on shared connections (pipe.c) rather
		 * than fall back: a busy pool says nothing about Redis. */
		int rc = rl_redis_check(rl->redis, p.keys, p.any_note ? p.notes : NULL, p.rules, n,
					now_ms, &raw);
		if (rc == 0) {
			mark_up(rl);
			from_redis(rl, items, n, &p, &raw, now_ms, out);
			return 0;
		}
		mark_down(rl);
	}
	return without_redis(rl, items, n, &p, now_ms, out);
}

/* The Redis half of ratelimit_check_many: the valid checks (RCS[i] 0)
 * in one pipeline; each answered one gets its result, the others keep
 * RCS[i] BZ_ERR_UNAVAILABLE. Returns 0 or BZ_ERR_NOMEM (nothing sent). */
static int many_redis(struct ratelimit *rl, const struct ratelimit_check *checks, size_t n_checks,
		      const struct prepared *p, int64_t now_ms, struct ratelimit_result *out,
		      int *rcs)
{
	struct rl_redis_req *reqs = calloc(n_checks, sizeof(*reqs));
	struct rl_raw *raws = calloc(n_checks, sizeof(*raws));
	size_t *at = calloc(n_checks, sizeof(*at)), k = 0, failed = 0;
	int rc = BZ_ERR_NOMEM;

	if (reqs == NULL || raws == NULL || at == NULL)
		goto out;
	for (size_t i = 0; i < n_checks; i++) {
		if (rcs[i] != 0)
			continue;
		reqs[k] = (struct rl_redis_req){p[i].keys,  p[i].any_note ? p[i].notes : NULL,
						p[i].rules, checks[i].n,
						&raws[k],   0};
		at[k++] = i;
	}
	if (k > 0 && (rc = rl_redis_check_many(rl->redis, reqs, k, now_ms)) != 0)
		goto out;
	for (size_t j = 0; j < k; j++) {
		size_t i = at[j];
		if (reqs[j].rc == 0)
			from_redis(rl, checks[i].items, checks[i].n, &p[i], &raws[j], now_ms,
				   &out[i]);
		else
			failed++;
		rcs[i] = reqs[j].rc;
	}
	if (failed > 0)
		mark_down(rl); /* a check failed: what ratelimit_check would do */
	else if (k > 0)
		mark_up(rl);
	rc = 0;
out:
	free(reqs);
	free(raws);
	free(at);
	return rc;
}

int ratelimit_check_many(struct ratelimit *rl, const struct ratelimit_check *checks,
			 size_t n_checks, int64_t now_ms, struct ratelimit_result *out, int *rcs)
{
	struct prepared *p;
	int redis = 0;

	if (n_checks == 0)
		return 0;
	if (n_checks > RATELIMIT_MANY_MAX || checks == NULL)
		return BZ_ERR_INVALID;
	/* ~1.7 KB a check: the heap, not the caller's stack. */
	if ((p = malloc(n_checks * sizeof(*p))) == NULL)
		return BZ_ERR_NOMEM;
	for (size_t i = 0; i < n_checks; i++) {
		rcs[i] = prepare(rl, checks[i].items, checks[i].n, now_ms, &p[i], &out[i]);
		redis |= rcs[i] == 0;
	}
	/* The whole pipeline is one try of Redis, as one check would be (also
	 * during an outage: it claims the one retry slot). */
	if (redis && should_try_redis(rl)) {
		if (many_redis(rl, checks, n_checks, p, now_ms, out, rcs) != 0) {
			free(p);
			return BZ_ERR_NOMEM;
		}
	} else {
		for (size_t i = 0; i < n_checks; i++)
			if (rcs[i] == 0)
				rcs[i] = BZ_ERR_UNAVAILABLE;
	}
	/* The checks Redis did not answer, in order, as each alone would. */
	for (size_t i = 0; i < n_checks; i++)
		if (rcs[i] == BZ_ERR_UNAVAILABLE)
			rcs[i] = without_redis(rl, checks[i].items, checks[i].n, &p[i], now_ms,
					       &out[i]);
	free(p);
	return 0;
}

void ratelimit_stats(struct ratelimit *rl, struct ratelimit_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->backend = rl->redis != NULL && !atomic_load(&rl->down) ? RATELIMIT_BACKEND_REDIS
								    : RATELIMIT_BACKEND_LOCAL;
	out->outages = atomic_load(&rl->outages);
	out->redis_checks = atomic_load(&rl->redis_checks);
	out->local_checks = atomic_load(&rl->local_checks);
	out->denied_unavailable = atomic_load(&rl->denied);
	out->local_max_keys = rl->o.local_max_keys;
	rl_local_counts(rl->local, &out->local_keys, &out->local_evictions);
}
