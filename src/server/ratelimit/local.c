/*
 * local.c — the in-process fallback: the same limits, per instance, while
 * Redis is unreachable (RATE_LIMIT_ON_REDIS_FAILURE=local).
 *
 * A fixed array of entries, a chained hash index over them and a
 * least-recently-used list, all by 32-bit index, under one mutex: no
 * allocation after start, memory bounded by max_keys. A key is held as a
 * 64-bit seeded hash, not as text; two keys that collide share one entry,
 * which can only refuse more, never admit more.
 *
 * Per entry, limits of up to EXACT_MAX requests keep the admitted times
 * themselves (an exact sliding log: login, login per IP, enrolment, MFA);
 * larger limits keep NSLOT counters of W/(NSLOT-1) ms each and count every
 * slot that overlaps the window, so a request is remembered at most one
 * slot width too long: capacity returns up to W/31 late, and more than the
 * limit is never admitted in any window (docs/rate-limiting.md).
 */
#include "server/ratelimit/internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"

#define EXACT_MAX 32
#define NSLOT 32

struct entry {
	uint64_t h;		   /* key hash; never 0 while in use */
	uint32_t chain;		   /* next entry in the hash chain, index + 1; 0 = end */
	uint32_t prev, next;	   /* LRU neighbours, index + 1; 0 = none */
	uint32_t limit, window_ms; /* the rule the entry was made for */
	uint32_t fill;		   /* exact: times held; slots: 0 until first used */
	uint32_t width;		   /* slots: ms per slot, ceil(window / (NSLOT - 1)) */
	uint32_t total;		   /* slots: the sum of v[] */
	int64_t base;		   /* exact: ms the offsets count from; slots: newest slot */
	int64_t first;		   /* slots: oldest slot with a count, while total > 0 */
	int64_t noticed_until;	   /* ms: a refusal was reported (note_refusal) until then */
	uint32_t v[NSLOT];	   /* exact: ms since base; slots: counts */
};

struct rl_local {
	pthread_mutex_t mu;
	uint64_t seed;
	size_t max, used;
	uint64_t evictions;
	uint32_t mask;	   /* hash index size - 1 */
	uint32_t *index;   /* chain heads, index + 1 */
	uint32_t lru_head; /* most recently used, index + 1 */
	uint32_t lru_tail; /* least recently used */
	struct entry *e;
};

struct rl_local *rl_local_new(size_t max_keys)
{
	struct rl_local *t;
	size_t cap = 1;

	/* A check of n keys must never evict one of its own. */
	if (max_keys < RATELIMIT_MAX_ITEMS || max_keys > (1u << 30))
		return NULL;
	while (cap < max_keys)
		cap <<= 1;
	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return NULL;
	t->index = calloc(cap, sizeof(*t->index));
	t->e = calloc(max_keys, sizeof(*t->e));
	if (t->index == NULL || t->e == NULL || crypto_random_bytes(&t->seed, sizeof(t->seed))) {
		rl_local_free(t);
		return NULL;
	}
	pthread_mutex_init(&t->mu, NULL);
	t->max = max_keys;
	t->mask = (uint32_t)(cap - 1);
	return t;
}

void rl_local_free(struct rl_local *t)
{
	if (t == NULL)
		return;
	if (t->e != NULL)
		pthread_mutex_destroy(&t->mu);
	free(t->index);
	free(t->e);
	free(t);
}

/* A seeded multiply-rotate hash, eight bytes at a time, then the murmur3
 * finalizer so the low bits used by the index are well mixed. Not a
 * cryptographic hash, and it need not be: a collision only makes two keys
 * share one (stricter) counter. */
static uint64_t key_hash(uint64_t seed, const char *k)
{
	size_t n = strlen(k);
	uint64_t h = seed ^ ((uint64_t)n * 0x9e3779b97f4a7c15ULL), w;

	for (; n >= 8; k += 8, n -= 8) {
		memcpy(&w, k, 8);
		h ^= w * 0xff51afd7ed558ccdULL;
		h = ((h << 27) | (h >> 37)) * 0x9e3779b97f4a7c15ULL;
	}
	w = 0;
	memcpy(&w, k, n);
	h ^= w * 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h ? h : 1;
}

static void lru_unlink(struct rl_local *t, uint32_t i)
{
	struct entry *x = &t->e[i - 1];

	if (x->prev)
		t->e[x->prev - 1].next = x->next;
	else
		t->lru_head = x->next;
	if (x->next)
		t->e[x->next - 1].prev = x->prev;
	else
		t->lru_tail = x->prev;
	x->prev = x->next = 0;
}

static void lru_push_front(struct rl_local *t, uint32_t i)
{
	struct entry *x = &t->e[i - 1];

	x->prev = 0;
	x->next = t->lru_head;
	if (t->lru_head)
		t->e[t->lru_head - 1].prev = i;
	t->lru_head = i;
	if (t->lru_tail == 0)
		t->lru_tail = i;
}

/* Removes entry I (index + 1) from its hash chain. */
static void index_remove(struct rl_local *t, uint32_t i)
{
	uint32_t *p = &t->index[t->e[i - 1].h & t->mask];

	while (*p && *p != i)
		p = &t->e[*p - 1].chain;
	if (*p == i)
		*p = t->e[i - 1].chain;
}

static void entry_reset(struct entry *x, const struct ratelimit_rule *r, int64_t now_ms)
{
	memset(x->v, 0, sizeof(x->v));
	x->limit = r->limit;
	x->window_ms = r->window_s * 1000u;
	x->fill = 0;
	x->total = 0;
	x->noticed_until = 0;
	x->width = (x->window_ms + NSLOT - 2) / (NSLOT - 1);
	x->base = x->limit <= EXACT_MAX ? now_ms : 0;
}

/* The entry for hash H, marked most recently used (and reset if it was
 * made for another rule), as index + 1; 0 when there is none. */
static uint32_t find(struct rl_local *t, uint64_t h, const struct ratelimit_rule *r, int64_t now_ms)
{
	uint32_t i;

	for (i = t->index[h & t->mask]; i; i = t->e[i - 1].chain)
		if (t->e[i - 1].h == h)
			break;
	if (i == 0)
		return 0;
	lru_unlink(t, i);
	if (t->e[i - 1].limit != r->limit || t->e[i - 1].window_ms != r->window_s * 1000u)
		entry_reset(&t->e[i - 1], r, now_ms);
	lru_push_front(t, i);
	return i;
}

/* A new entry for hash H (evicting the least recently used entry when
 * full), marked most recently used. Returns index + 1. */
static uint32_t insert(struct rl_local *t, uint64_t h, const struct ratelimit_rule *r,
		       int64_t now_ms)
{
	uint32_t *head = &t->index[h & t->mask], i;

	if (t->used < t->max) {
		i = (uint32_t)++t->used;
	} else {
		i = t->lru_tail;
		lru_unlink(t, i);
		index_remove(t, i);
		t->evictions++;
	}
	t->e[i - 1].h = h;
	t->e[i - 1].chain = *head;
	*head = i;
	entry_reset(&t->e[i - 1], r, now_ms);
	lru_push_front(t, i);
	return i;
}

/* What one entry says at NOW: requests counted in the window, when a
 * request would be admitted if refused (FREE_REFUSED), and when the oldest
 * counted request leaves the window if this one is admitted (FREE_ADMIT). */
struct eval {
	uint32_t count;
	int64_t free_refused, free_admit;
	uint32_t slot;	  /* slots: where this request is counted */
	uint32_t replace; /* exact: where this request's time goes */
};

static void exact_eval(struct entry *x, int64_t now, struct eval *ev)
{
	int64_t w = x->window_ms, cut = now - w, min_in = now, min_all = INT64_MAX;

	/* Offsets are 32 bits: move the base up long before they overflow.
	 * Times before the new base are outside the window anyway. */
	if (now - x->base > (int64_t)1 << 31) {
		int64_t nb = now - w;
		for (uint32_t i = 0; i < x->fill; i++) {
			int64_t t = x->base + x->v[i];
			x->v[i] = t > nb ? (uint32_t)(t - nb) : 0;
		}
		x->base = nb;
	}
	ev->count = 0;
	ev->replace = x->fill;
	for (uint32_t i = 0; i < x->fill; i++) {
		int64_t t = x->base + x->v[i];
		if (t > cut) {
			ev->count++;
			if (t < min_in)
				min_in = t;
		}
		if (t < min_all) {
			min_all = t;
			if (x->fill == x->limit)
				ev->replace = i; /* the oldest; expired whenever count < limit */
		}
	}
	ev->free_refused = min_in + w;
	ev->free_admit = min_in + w;
}

static void exact_commit(struct entry *x, int64_t now, const struct eval *ev)
{
	int64_t off = now - x->base;

	x->v[ev->replace] = off < 0 ? 0 : (uint32_t)off;
	if (ev->replace == x->fill)
		x->fill++;
}

static void slots_eval(struct entry *x, int64_t now, struct eval *ev)
{
	int64_t W = x->window_ms, w = x->width, s, lo;

	if (x->fill == 0) { /* fresh entry */
		x->fill = 1;
		x->base = now / w;
	}
	/* Still in the newest slot (the usual case): no 64-bit division. */
	if (now >= x->base * w && now < (x->base + 1) * w)
		s = x->base;
	else
		s = now / w;
	if (s > x->base) {
		for (int64_t k = x->base + 1; k <= s && k <= x->base + NSLOT; k++) {
			x->total -= x->v[(uint64_t)k % NSLOT];
			x->v[(uint64_t)k % NSLOT] = 0;
		}
		x->base = s;
		if (x->total > 0 && x->first < s - (NSLOT - 1)) { /* it was cleared */
			x->first = s - (NSLOT - 1);
			while (x->v[(uint64_t)x->first % NSLOT] == 0)
				x->first++;
		}
	} else if (s < x->base) { /* the caller's clock went back: count from the newest slot */
		s = x->base;
		now = s * w;
	}
	/* lo = floor((now - W + 1) / w): with 31(w - 1) < W <= 31w and w >= 33
	 * (windows of at least 1 s), that is s - 31 or s - 30. */
	lo = s - (NSLOT - 1) + ((s - (NSLOT - 2)) * w <= now - W + 1);
	if (now - W + 1 <= 0)
		lo = 0;
	/* The ring holds slots s-31..s; the window all of them but s-31 when
	 * lo = s-30 (or fewer right after a fresh start, lo = 0). */
	ev->count = x->total;
	for (int64_t k = s - (NSLOT - 1); k < lo; k++)
		ev->count -= x->v[(uint64_t)k % NSLOT];
	ev->free_admit = (s + 1) * w + W - 1;
	if (x->total > 0 && x->first >= lo) {
		ev->free_admit = (x->first + 1) * w + W - 1;
	} else if (x->total > 0) { /* the oldest count is just outside the window */
		for (int64_t k = lo; k < s; k++)
			if (x->v[(uint64_t)k % NSLOT] > 0) {
				ev->free_admit = (k + 1) * w + W - 1;
				break;
			}
	}
	ev->free_refused = ev->free_admit;
	if (ev->count >= x->limit) {
		uint32_t left = ev->count;
		for (int64_t k = lo; k <= s; k++) {
			left -= x->v[(uint64_t)k % NSLOT];
			if (left < x->limit) {
				ev->free_refused = (k + 1) * w + W - 1;
				break;
			}
		}
	}
	ev->slot = (uint32_t)((uint64_t)s % NSLOT);
}

static void eval(struct entry *x, int64_t now_ms, struct eval *ev)
{
	if (x->limit <= EXACT_MAX)
		exact_eval(x, now_ms, ev);
	else
		slots_eval(x, now_ms, ev);
}

void rl_local_check(struct rl_local *t, const char *const *keys, const struct ratelimit_rule *rules,
		    const int *note, size_t n, int64_t now_ms, struct rl_raw *raw)
{
	uint32_t idx[RATELIMIT_MAX_ITEMS];
	struct eval ev[RATELIMIT_MAX_ITEMS];
	uint64_t h[RATELIMIT_MAX_ITEMS];

	for (size_t i = 0; i < n; i++) {
		h[i] = key_hash(t->seed, keys[i]);
		/* The index is read under the lock: fetch its line before. */
		__builtin_prefetch(&t->index[h[i] & t->mask]);
	}
	raw->refused = -1;
	pthread_mutex_lock(&t->mu);
	for (size_t i = 0; i < n; i++) {
		/* A key not held yet is evaluated as a fresh entry on the side:
		 * only an admitted request makes entries, so refused requests
		 * (cheap, and as many as a client likes) cannot push live
		 * entries out, and a refused request writes nothing (as in Redis). */
		struct entry fresh;
		idx[i] = find(t, h[i], &rules[i], now_ms);
		if (idx[i] == 0)
			entry_reset(&fresh, &rules[i], now_ms);
		eval(idx[i] ? &t->e[idx[i] - 1] : &fresh, now_ms, &ev[i]);
		if (ev[i].count >= rules[i].limit && raw->refused < 0)
			raw->refused = (int)i;
	}
	for (size_t i = 0; raw->refused < 0 && i < n; i++) {
		if (idx[i] == 0) {
			idx[i] = insert(t, h[i], &rules[i], now_ms);
			eval(&t->e[idx[i] - 1], now_ms, &ev[i]);
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (idx[i] == 0) { /* refused elsewhere, never held: count 0 */
			raw->count[i] = ev[i].count;
			raw->free_ms[i] = ev[i].free_admit;
			raw->first[i] = 0;
			continue;
		}
		struct entry *x = &t->e[idx[i] - 1];
		raw->count[i] = ev[i].count;
		raw->free_ms[i] = ev[i].free_admit;
		raw->first[i] = 0;
		if (raw->refused >= 0) {
			if (ev[i].count >= x->limit) {
				raw->free_ms[i] = ev[i].free_refused;
				if (note[i] && now_ms >= x->noticed_until) {
					raw->first[i] = 1;
					x->noticed_until = now_ms + x->window_ms;
				}
			}
			continue;
		}
		raw->count[i]++;
		if (x->limit <= EXACT_MAX)
			exact_commit(x, now_ms, &ev[i]);
		else {
			if (x->total++ == 0)
				x->first = x->base;
			x->v[ev[i].slot]++;
		}
	}
	pthread_mutex_unlock(&t->mu);
}

void rl_local_counts(struct rl_local *t, size_t *keys, uint64_t *evictions)
{
	pthread_mutex_lock(&t->mu);
	*keys = t->used;
	*evictions = t->evictions;
	pthread_mutex_unlock(&t->mu);
}
