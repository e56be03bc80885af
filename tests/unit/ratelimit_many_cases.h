/* ratelimit_many_cases.h — the mixed set of checks that test_ratelimit_many.c
 * (in-process backend) and test_ratelimit_many_redis.c (through Redis) run
 * through ratelimit_check_many() on one limiter and one by one through
 * ratelimit_check() on another, under their own key prefixes, and compare:
 * repeated keys (a device over its limit, an organization over its limit,
 * a login over its limit with note_refusal), invalid checks of every kind
 * between valid ones, one-key and two-key checks. Header-only test code. */
#ifndef BZ_TEST_RATELIMIT_MANY_CASES_H
#define BZ_TEST_RATELIMIT_MANY_CASES_H

#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "server/ratelimit/ratelimit.h"

#define MIXED_ROUNDS 6
#define MIXED_MAX (MIXED_ROUNDS * 6)

struct mixed {
	char org0[RATELIMIT_TAG_MAX], org1[RATELIMIT_TAG_MAX], ip[RATELIMIT_TAG_MAX];
	char user[RATELIMIT_TAG_MAX], bad[RATELIMIT_TAG_MAX], dev[MIXED_ROUNDS][16];
	struct ratelimit_item items[MIXED_MAX][RATELIMIT_MAX_ITEMS + 1];
	struct ratelimit_check checks[MIXED_MAX];
	size_t n;
};

/* The rules of the mixed set: device 3/60, organization 5/60, login 2/300,
 * login per IP 4/300, the rest 10/60. */
static inline void mixed_rules(struct ratelimit_options *o)
{
	for (int i = 0; i < RL_LIMITER_COUNT; i++)
		o->rules[i] = (struct ratelimit_rule){10, 60};
	o->rules[RL_AGENT_DEVICE] = (struct ratelimit_rule){3, 60};
	o->rules[RL_AGENT_ORG] = (struct ratelimit_rule){5, 60};
	o->rules[RL_LOGIN] = (struct ratelimit_rule){2, 300};
	o->rules[RL_LOGIN_IP] = (struct ratelimit_rule){4, 300};
}

/* Appends a check of N items (NULL ITEMS: a check without items). */
static inline void mixed_add(struct mixed *m, const struct ratelimit_item *items, size_t n)
{
	size_t k = m->n++;

	if (items != NULL)
		memcpy(m->items[k], items, (n > RATELIMIT_MAX_ITEMS + 1 ? 1 : n) * sizeof(*items));
	m->checks[k] = (struct ratelimit_check){items != NULL ? m->items[k] : NULL, n};
}

/* The invalid check of round R. */
static inline void mixed_invalid(struct mixed *m, int r)
{
	struct ratelimit_item bad[RATELIMIT_MAX_ITEMS + 1];

	for (int i = 0; i <= RATELIMIT_MAX_ITEMS; i++)
		bad[i] = (struct ratelimit_item){RL_API_USER, m->user, NULL, 0};
	if (r == 0) /* a subject where the key has none */
		bad[0].subject = "x";
	else if (r == 1) /* a brace would move the hash tag */
		bad[0].tag = m->bad;
	else if (r == 4) /* the same key twice in one check */
		bad[1] = bad[0];
	if (r == 2)
		mixed_add(m, bad, 0);
	else if (r == 3)
		mixed_add(m, bad, RATELIMIT_MAX_ITEMS + 1);
	else if (r == 5)
		mixed_add(m, NULL, 1);
	else
		mixed_add(m, bad, r == 4 ? 2 : 1);
}

/* Builds the mixed set with tags made from PREFIX. */
static inline void mixed_build(struct mixed *m, const char *prefix)
{
	memset(m, 0, sizeof(*m));
	snprintf(m->org0, sizeof(m->org0), "%s-org0", prefix);
	snprintf(m->org1, sizeof(m->org1), "%s-org1", prefix);
	snprintf(m->ip, sizeof(m->ip), "%s-ip", prefix);
	snprintf(m->user, sizeof(m->user), "%s-user", prefix);
	snprintf(m->bad, sizeof(m->bad), "%s-{x}", prefix);
	for (int r = 0; r < MIXED_ROUNDS; r++) {
		snprintf(m->dev[r], sizeof(m->dev[r]), "dev%d", r + 2);
		struct ratelimit_item d1[2] = {{RL_AGENT_DEVICE, m->org0, "dev1", 0},
					       {RL_AGENT_ORG, m->org0, NULL, 0}};
		struct ratelimit_item dn[2] = {{RL_AGENT_DEVICE, m->org0, m->dev[r], 0},
					       {RL_AGENT_ORG, m->org0, NULL, 0}};
		struct ratelimit_item login[2] = {{RL_LOGIN, m->ip, "a@example.com", 1},
						  {RL_LOGIN_IP, m->ip, NULL, 1}};
		struct ratelimit_item api = {RL_API_USER, m->user, NULL, 0};
		struct ratelimit_item o1[2] = {{RL_AGENT_DEVICE, m->org1, "x", 0},
					       {RL_AGENT_ORG, m->org1, NULL, 0}};
		mixed_add(m, d1, 2);
		mixed_add(m, dn, 2);
		mixed_invalid(m, r);
		mixed_add(m, login, 2);
		mixed_add(m, &api, 1);
		mixed_add(m, o1, 2);
	}
}

/* Asserts that A and B say the same (every field). */
static inline void same_result(const struct ratelimit_result *a, const struct ratelimit_result *b)
{
	assert_int_equal(a->admitted, b->admitted);
	assert_int_equal(a->refused_by, b->refused_by);
	assert_true((a->limiter == NULL) == (b->limiter == NULL));
	if (a->limiter != NULL)
		assert_string_equal(a->limiter, b->limiter);
	assert_int_equal(a->limit, b->limit);
	assert_int_equal(a->remaining, b->remaining);
	assert_int_equal(a->reset_s, b->reset_s);
	assert_int_equal(a->retry_after_s, b->retry_after_s);
	assert_int_equal(a->backend, b->backend);
	assert_int_equal(a->first_refusal, b->first_refusal);
	assert_int_equal(a->n, b->n);
	for (size_t i = 0; i < a->n && i < RATELIMIT_MAX_ITEMS; i++) {
		assert_int_equal(a->items[i].limit, b->items[i].limit);
		assert_int_equal(a->items[i].remaining, b->items[i].remaining);
		assert_int_equal(a->items[i].reset_s, b->items[i].reset_s);
	}
}

/* Runs the mixed set through ratelimit_check_many() on MANY (tags "A-…")
 * and one by one on ONE (tags "B-…") at NOW, asserts that every answer is
 * the same and that BACKEND decided the valid ones, then (FRESH: on keys
 * not used before) the answers the set is built for. PREFIX keeps runs
 * apart. */
static inline void mixed_compare(struct ratelimit *many, struct ratelimit *one, const char *prefix,
				 int64_t now, enum ratelimit_backend backend, int fresh)
{
	static struct mixed a, b;
	static struct ratelimit_result ra[MIXED_MAX], rb;
	int rcs[MIXED_MAX];
	char pa[48], pb[48];
	size_t k = 0;

	snprintf(pa, sizeof(pa), "A-%s", prefix);
	snprintf(pb, sizeof(pb), "B-%s", prefix);
	mixed_build(&a, pa);
	mixed_build(&b, pb);
	assert_int_equal(ratelimit_check_many(many, a.checks, a.n, now, ra, rcs), 0);
	for (size_t i = 0; i < b.n; i++) {
		int rc = ratelimit_check(one, b.checks[i].items, b.checks[i].n, now, &rb);
		assert_int_equal(rcs[i], rc);
		same_result(&ra[i], &rb);
		if (rc == 0)
			assert_int_equal(ra[i].backend, backend);
	}
	/* Round by round (six checks each): dev1 admitted three times, then
	 * refused by its device limit; org0 full after five admissions. */
	for (int r = 0; fresh && r < MIXED_ROUNDS; r++, k += 6) {
		assert_int_equal(ra[k].admitted, r < 3);
		if (r >= 3)
			assert_string_equal(ra[k].limiter, "agent_device");
		assert_int_equal(ra[k + 1].admitted, r < 2); /* org0: 5 = 3 (dev1) + 2 */
		if (r >= 2)
			assert_string_equal(ra[k + 1].limiter, "agent_org");
		assert_int_equal(rcs[k + 2], BZ_ERR_INVALID);
		assert_int_equal(ra[k + 2].refused_by, -1);
		assert_int_equal(ra[k + 3].admitted, r < 2); /* login 2/300 */
		assert_int_equal(ra[k + 3].first_refusal, r == 2);
		assert_true(ra[k + 4].admitted);
		assert_int_equal(ra[k + 4].remaining, 9 - r);
		assert_int_equal(ra[k + 5].admitted, r < 3);
	}
}

#endif
