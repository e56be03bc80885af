/* Unit tests for src/server/ratelimit/ without Redis: the COUNT/SECONDS
 * parser, e-mail and client-IP normalization (IPv6 folded to its /64), key
 * building, and the in-process limiter with a controlled clock (exact
 * boundaries, sliding windows, Retry-After, several limiters in one check,
 * the LRU bound, threads hammering one key), plus the switch to the
 * fallback (or to 503 in deny mode) when Redis cannot be reached. The same
 * behaviour through a real Redis: test_ratelimit_redis.c. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/clock.h"
#include "common/err.h"
#include "server/ratelimit/ratelimit.h"

/* A fixed epoch-ms start, so every window boundary below is exact. */
#define T0 1800000000000LL

static const struct {
	const char *in;
	int ok;
	uint32_t limit, window_s;
} rules[] = {
	{"5/300", 1, 5, 300},	 {"1/1", 1, 1, 1},     {"100000/86400", 1, 100000, 86400},
	{"0010/060", 1, 10, 60}, {"0/300", 0, 0, 0},   {"5/0", 0, 0, 0},
	{"100001/60", 0, 0, 0},	 {"5/86401", 0, 0, 0}, {"5", 0, 0, 0},
	{"5/", 0, 0, 0},	 {"/300", 0, 0, 0},    {"", 0, 0, 0},
	{" 5/300", 0, 0, 0},	 {"5/300 ", 0, 0, 0},  {"5 /300", 0, 0, 0},
	{"-5/300", 0, 0, 0},	 {"+5/300", 0, 0, 0},  {"5/300/2", 0, 0, 0},
	{"5.0/300", 0, 0, 0},	 {"5/3e2", 0, 0, 0},   {"99999999999999999999/60", 0, 0, 0},
	{"unlimited", 0, 0, 0},
};

static void test_rule_parse(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(rules) / sizeof(*rules); i++) {
		struct ratelimit_rule r = {77, 77};
		const char *why = NULL;
		int rc = ratelimit_rule_parse(rules[i].in, &r, &why);
		if (rules[i].ok) {
			if (rc != 0 || r.limit != rules[i].limit || r.window_s != rules[i].window_s)
				fail_msg("\"%s\" -> rc=%d %u/%u", rules[i].in, rc, r.limit,
					 r.window_s);
		} else {
			if (rc != BZ_ERR_INVALID || why == NULL || why[0] == '\0')
				fail_msg("\"%s\" accepted (rc=%d)", rules[i].in, rc);
			if (r.limit != 77 || r.window_s != 77)
				fail_msg("\"%s\" changed the output on failure", rules[i].in);
		}
	}
	assert_int_equal(ratelimit_rule_parse(NULL, &(struct ratelimit_rule){0}, NULL),
			 BZ_ERR_INVALID);
}

static void test_on_failure_parse(void **state)
{
	enum ratelimit_on_failure f;

	(void)state;
	assert_int_equal(ratelimit_on_failure_parse("local", &f), 0);
	assert_int_equal(f, RATELIMIT_FAIL_LOCAL);
	assert_int_equal(ratelimit_on_failure_parse("deny", &f), 0);
	assert_int_equal(f, RATELIMIT_FAIL_DENY);
	assert_int_equal(ratelimit_on_failure_parse("allow", &f), BZ_ERR_INVALID);
	assert_int_equal(ratelimit_on_failure_parse("off", &f), BZ_ERR_INVALID);
	assert_int_equal(ratelimit_on_failure_parse("Local", &f), BZ_ERR_INVALID);
	assert_int_equal(ratelimit_on_failure_parse("", &f), BZ_ERR_INVALID);
}

static const struct {
	const char *in, *out; /* out NULL: refused */
} emails[] = {
	{"alice@example.com", "alice@example.com"},
	{"  Alice@Example.COM\t", "alice@example.com"},
	{"\r\nALICE@EXAMPLE.COM \n", "alice@example.com"},
	{"bob+tag@Example.org", "bob+tag@example.org"},
	{"J\xc3\x96RG@example.com", "j\xc3\x96rg@example.com"}, /* non-ASCII kept */
	{"", NULL},
	{"   \t ", NULL},
	{"a\x01@example.com", NULL},
	{"a\x7f@example.com", NULL},
	{"in side@example.com", "in side@example.com"},
};

static void test_norm_email(void **state)
{
	char out[RATELIMIT_EMAIL_MAX + 1], longer[RATELIMIT_EMAIL_MAX + 3];

	(void)state;
	for (size_t i = 0; i < sizeof(emails) / sizeof(*emails); i++) {
		int rc = ratelimit_norm_email(emails[i].in, out, sizeof(out));
		if (emails[i].out == NULL) {
			if (rc != BZ_ERR_INVALID || out[0] != '\0')
				fail_msg("email %zu accepted as \"%s\"", i, out);
		} else if (rc != 0 || strcmp(out, emails[i].out) != 0) {
			fail_msg("email %zu -> rc=%d \"%s\"", i, rc, out);
		}
	}
	/* Exactly the limit is fine, one more byte is not; surrounding spaces
	 * do not count. */
	memset(longer, 'a', sizeof(longer));
	longer[0] = ' ';
	longer[RATELIMIT_EMAIL_MAX + 1] = ' ';
	longer[RATELIMIT_EMAIL_MAX + 2] = '\0';
	assert_int_equal(ratelimit_norm_email(longer, out, sizeof(out)), 0);
	assert_int_equal(strlen(out), RATELIMIT_EMAIL_MAX);
	longer[RATELIMIT_EMAIL_MAX + 1] = 'a';
	assert_int_equal(ratelimit_norm_email(longer, out, sizeof(out)), BZ_ERR_INVALID);
	assert_int_equal(ratelimit_norm_email(NULL, out, sizeof(out)), BZ_ERR_INVALID);
	/* A buffer too small for the value is refused, not overrun. */
	assert_int_equal(ratelimit_norm_email("alice@example.com", out, 5), BZ_ERR_INVALID);
}

static const struct {
	const char *in, *out;
} ips[] = {
	{"192.0.2.7", "192.0.2.7"},
	{"10.0.0.1", "10.0.0.1"},
	{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
	{"2001:db8:1:2::1", "2001:db8:1:2::/64"},
	{"2001:DB8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"},
	{"2001:0db8:0001:0002:0000:0000:0000:0009", "2001:db8:1:2::/64"},
	{"2001:db8::", "2001:db8::/64"},
	{"2001:db8:0:0:1::", "2001:db8::/64"},
	{"fe80::1", "fe80::/64"},
	{"::1", "::/64"},
	{"::ffff:192.0.2.7", "192.0.2.7"},
	{"2001:db8:1:3::1", "2001:db8:1:3::/64"}, /* the next /64 is another bucket */
	{"", NULL},
	{"example.com", NULL},
	{"192.0.2", NULL},
	{"192.0.2.256", NULL},
	{"192.0.2.7/32", NULL},
	{" 192.0.2.7", NULL},
	{"2001:db8::1%eth0", NULL},
	{"[2001:db8::1]", NULL},
	{"2001:db8:::1", NULL},
};

static void test_norm_ip(void **state)
{
	char out[RATELIMIT_IP_LEN + 4];

	(void)state;
	for (size_t i = 0; i < sizeof(ips) / sizeof(*ips); i++) {
		int rc = ratelimit_norm_ip(ips[i].in, out, sizeof(out));
		if (ips[i].out == NULL) {
			if (rc != BZ_ERR_INVALID || out[0] != '\0')
				fail_msg("\"%s\" accepted as \"%s\"", ips[i].in, out);
		} else if (rc != 0 || strcmp(out, ips[i].out) != 0) {
			fail_msg("\"%s\" -> rc=%d \"%s\"", ips[i].in, rc, out);
		}
	}
	assert_int_equal(ratelimit_norm_ip("192.0.2.7", out, RATELIMIT_IP_LEN), BZ_ERR_INVALID);
	assert_int_equal(ratelimit_norm_ip(NULL, out, sizeof(out)), BZ_ERR_INVALID);
}

static void test_keys(void **state)
{
	char k[RATELIMIT_KEY_MAX], k2[RATELIMIT_KEY_MAX];
	const char *org = "0b6a3c1e-7d2f-4c1a-9e57-3f4d2b8a9c10";
	const char *dev = "5f1d7c2a-8b3e-4f6a-a1d2-9c8b7e6f5a4d";

	(void)state;
	assert_int_equal(ratelimit_key(&(struct ratelimit_item){RL_AGENT_DEVICE, org, dev, 0}, k,
				       sizeof(k)),
			 0);
	assert_string_equal(k, "rl:{0b6a3c1e-7d2f-4c1a-9e57-3f4d2b8a9c10}:agent_device:"
			       "5f1d7c2a-8b3e-4f6a-a1d2-9c8b7e6f5a4d");
	assert_int_equal(ratelimit_key(&(struct ratelimit_item){RL_AGENT_ORG, org, NULL, 0}, k,
				       sizeof(k)),
			 0);
	assert_string_equal(k, "rl:{0b6a3c1e-7d2f-4c1a-9e57-3f4d2b8a9c10}:agent_org");
	assert_int_equal(ratelimit_key(&(struct ratelimit_item){RL_LOGIN_IP, "2001:db8::/64", NULL,
								0},
				       k, sizeof(k)),
			 0);
	assert_string_equal(k, "rl:{2001:db8::/64}:login_ip");
	/* The login subject is an e-mail address: stored hashed. */
	assert_int_equal(ratelimit_key(&(struct ratelimit_item){RL_LOGIN, "192.0.2.7",
								"alice@example.com", 0},
				       k, sizeof(k)),
			 0);
	assert_int_equal(strncmp(k, "rl:{192.0.2.7}:login:", 21), 0);
	assert_int_equal(strlen(k), 21 + 32);
	assert_null(strstr(k, "alice"));
	assert_int_equal(ratelimit_key(&(struct ratelimit_item){RL_LOGIN, "192.0.2.7",
								"bob@example.com", 0},
				       k2, sizeof(k2)),
			 0);
	assert_string_not_equal(k, k2);
	for (int l = 0; l < RL_LIMITER_COUNT; l++)
		assert_string_not_equal(ratelimit_limiter_name(l), "unknown");

	/* Refused: no tag, an empty or braced tag (it would move the hash tag),
	 * spaces, a subject where the format has none and none where it has one. */
	static const struct ratelimit_item bad[] = {
		{RL_API_USER, NULL, NULL, 0},	   {RL_API_USER, "", NULL, 0},
		{RL_API_USER, "a}b", NULL, 0},	   {RL_API_USER, "{x}", NULL, 0},
		{RL_API_USER, "a b", NULL, 0},	   {RL_API_USER, "u1", "extra", 0},
		{RL_AGENT_DEVICE, "org", NULL, 0}, {RL_AGENT_DEVICE, "org", "dev}", 0},
		{RL_AGENT_DEVICE, "org", "", 0},   {RL_LOGIN, "192.0.2.7", NULL, 0},
		{RL_LIMITER_COUNT, "x", NULL, 0},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		if (ratelimit_key(&bad[i], k, sizeof(k)) != BZ_ERR_INVALID || k[0] != '\0')
			fail_msg("bad item %zu accepted as %s", i, k);
	/* Every byte value at every position of a tag (the check runs eight
	 * bytes at a time, then byte by byte): allowed exactly when printable
	 * ASCII other than a brace. */
	for (int pos = 0; pos < 17; pos++)
		for (int c = 1; c < 256; c++) {
			char t[18];
			memset(t, 'a', 17);
			t[17] = '\0';
			t[pos] = (char)c;
			int want = c > 0x20 && c < 0x7f && c != '{' && c != '}';
			int got = ratelimit_key(&(struct ratelimit_item){RL_MFA, t, NULL, 0}, k,
						sizeof(k)) == 0;
			if (got != want)
				fail_msg("byte 0x%02x at %d: accepted=%d", c, pos, got);
		}
	char tag[RATELIMIT_TAG_MAX + 2];
	memset(tag, 'a', sizeof(tag));
	tag[RATELIMIT_TAG_MAX] = '\0';
	assert_int_equal(ratelimit_key(&(struct ratelimit_item){RL_MFA, tag, NULL, 0}, k,
				       sizeof(k)),
			 0);
	tag[RATELIMIT_TAG_MAX] = 'a';
	tag[RATELIMIT_TAG_MAX + 1] = '\0';
	assert_int_equal(ratelimit_key(&(struct ratelimit_item){RL_MFA, tag, NULL, 0}, k,
				       sizeof(k)),
			 BZ_ERR_INVALID);
}

/* Options with every limiter at RULE (tests change single ones). */
static struct ratelimit_options opts_all(uint32_t limit, uint32_t window_s)
{
	struct ratelimit_options o;

	memset(&o, 0, sizeof(o));
	for (int i = 0; i < RL_LIMITER_COUNT; i++)
		o.rules[i] = (struct ratelimit_rule){limit, window_s};
	return o;
}

static struct ratelimit_result check1(struct ratelimit *rl, enum ratelimit_limiter l,
				      const char *tag, const char *subject, int64_t now)
{
	struct ratelimit_result r;
	struct ratelimit_item it = {l, tag, subject, 0};

	assert_int_equal(ratelimit_check(rl, &it, 1, now, &r), 0);
	assert_int_equal(r.backend, RATELIMIT_BACKEND_LOCAL);
	return r;
}

/* Login, 5 per 300 s (checklist R1), exact: the 5th passes, the 6th is
 * refused until the first leaves the window, to the millisecond. */
static void test_local_exact_boundaries(void **state)
{
	struct ratelimit_options o = opts_all(5, 300);
	struct ratelimit *rl = ratelimit_open(&o);
	struct ratelimit_result r;

	(void)state;
	assert_non_null(rl);
	for (int i = 0; i < 5; i++) {
		r = check1(rl, RL_LOGIN, "192.0.2.7", "alice@example.com", T0 + i * 1000);
		assert_true(r.admitted);
		assert_int_equal(r.limit, 5);
		assert_int_equal(r.remaining, 4 - i);
		assert_int_equal(r.reset_s, (T0 + 300000) / 1000); /* the first frees then */
		assert_int_equal(r.retry_after_s, 0);
		assert_string_equal(r.limiter, "login");
	}
	r = check1(rl, RL_LOGIN, "192.0.2.7", "alice@example.com", T0 + 5000);
	assert_false(r.admitted);
	assert_int_equal(r.refused_by, 0);
	assert_int_equal(r.remaining, 0);
	assert_int_equal(r.retry_after_s, 295);
	assert_int_equal(r.reset_s, (T0 + 300000) / 1000);
	/* 1 ms before the first request leaves: still refused, Retry-After 1. */
	r = check1(rl, RL_LOGIN, "192.0.2.7", "alice@example.com", T0 + 299999);
	assert_false(r.admitted);
	assert_int_equal(r.retry_after_s, 1);
	/* A refused request counted nowhere: at the boundary one slot is free. */
	r = check1(rl, RL_LOGIN, "192.0.2.7", "alice@example.com", T0 + 300000);
	assert_true(r.admitted);
	assert_int_equal(r.remaining, 0);
	r = check1(rl, RL_LOGIN, "192.0.2.7", "alice@example.com", T0 + 300001);
	assert_false(r.admitted);
	assert_int_equal(r.retry_after_s, 1); /* the second leaves at T0 + 301000 */
	r = check1(rl, RL_LOGIN, "192.0.2.7", "alice@example.com", T0 + 300500);
	assert_int_equal(r.retry_after_s, 1);
	r = check1(rl, RL_LOGIN, "192.0.2.7", "alice@example.com", T0 + 301000 - 1001);
	assert_int_equal(r.retry_after_s, 2); /* ceil(1.001 s) */
	/* Another address, another IP: their own buckets. */
	assert_true(check1(rl, RL_LOGIN, "192.0.2.7", "bob@example.com", T0 + 5000).admitted);
	assert_true(check1(rl, RL_LOGIN, "192.0.2.8", "alice@example.com", T0 + 5000).admitted);
	ratelimit_close(rl);
}

/* Sliding, not fixed: a full burst at the end of one window and another
 * at the start of the next never gives more than the limit in any window
 * length, for exact (limit <= 32) and slotted (larger) entries. */
static void test_local_burst_across_windows(void **state)
{
	static const uint32_t limits[] = {5, 32, 33, 120, 600};

	(void)state;
	for (size_t li = 0; li < sizeof(limits) / sizeof(*limits); li++) {
		uint32_t limit = limits[li];
		struct ratelimit_options o = opts_all(limit, 60);
		struct ratelimit *rl = ratelimit_open(&o);
		uint32_t admitted = 0;

		assert_non_null(rl);
		/* 2 x limit requests in the last second of window 1 and the first
		 * second of window 2 (fixed windows would admit 2 x limit). */
		for (uint32_t i = 0; i < 4 * limit; i++) {
			int64_t t = T0 + 59000 + (int64_t)i * 2000 / (4 * limit);
			admitted += check1(rl, RL_API_USER, "u1", NULL, t).admitted;
		}
		if (admitted != limit)
			fail_msg("limit %u: %u admitted across the boundary", limit, admitted);
		/* Nothing more until the first admitted request is a window old
		 * (slotted entries: up to one slot later). */
		for (int64_t t = T0 + 61000; t < T0 + 59000 + 60000; t += 500)
			if (check1(rl, RL_API_USER, "u1", NULL, t).admitted)
				fail_msg("limit %u: admitted at +%lld ms", limit,
					 (long long)(t - T0));
		int64_t back = T0 + 59000 + 60000 + (limit > 32 ? 60000 / 31 + 1 : 0);
		assert_true(check1(rl, RL_API_USER, "u1", NULL, back).admitted);
		ratelimit_close(rl);
	}
}

/* A sliding-log oracle: admitted times, for the in-any-window bound. */
static int window_ok(const int64_t *t, size_t n, int64_t w, uint32_t limit)
{
	for (size_t i = 0, j = 0; i < n; i++) {
		while (t[j] <= t[i] - w)
			j++;
		if (i - j + 1 > limit)
			return 0;
	}
	return 1;
}

/* Random traffic over several windows: never more than the limit in any
 * window; exact entries match the oracle, Retry-After included; slotted
 * ones refuse only when the window stretched by one slot (W/31) already
 * holds the limit. */
static void test_local_random_traffic(void **state)
{
	static const uint32_t limits[] = {3, 20, 64, 120};
	enum { N = 20000 };
	static int64_t adm[N];

	(void)state;
	srand(12345);
	for (size_t li = 0; li < sizeof(limits) / sizeof(*limits); li++) {
		uint32_t limit = limits[li];
		int64_t w = 10000, slot = (w + 30) / 31, t = T0;
		struct ratelimit_options o = opts_all(limit, 10);
		struct ratelimit *rl = ratelimit_open(&o);
		size_t na = 0, lo = 0;

		assert_non_null(rl);
		for (int i = 0; i < N; i++) {
			/* Phases of light and of twice the allowed rate. */
			int heavy = (i / 500) % 2;
			t += rand() % (int)((heavy ? 1 : 3) * w / limit);
			struct ratelimit_result r = check1(rl, RL_API_USER, "u", NULL, t);
			size_t in_window = 0, in_stretched = 0, first = na;
			while (lo < na && adm[lo] <= t - w - slot)
				lo++;
			for (size_t k = lo; k < na; k++) {
				if (adm[k] > t - w && first == na)
					first = k;
				in_window += adm[k] > t - w;
				in_stretched++;
			}
			if (limit <= 32 && r.admitted != (in_window < limit))
				fail_msg("exact limit %u at %d: admitted=%d in window %zu", limit,
					 i, r.admitted, in_window);
			if (!r.admitted && in_stretched < limit)
				fail_msg("limit %u at %d: refused with %zu in the stretched window",
					 limit, i, in_stretched);
			if (r.admitted) {
				if (limit <= 32 && r.remaining != limit - in_window - 1)
					fail_msg("limit %u: remaining %u, in window %zu", limit,
						 r.remaining, in_window);
				/* Reset: when a slot frees, after now, within a window
				 * (slotted: plus a slot; rounded up to a second). */
				int64_t reset_ms = r.reset_s * 1000;
				if (reset_ms < t || reset_ms > t + w + slot + 1000)
					fail_msg("limit %u: reset %lld ms after now", limit,
						 (long long)(reset_ms - t));
				if (limit <= 32 && first < na &&
				    r.reset_s != (adm[first] + w + 999) / 1000)
					fail_msg("exact limit %u: reset %lld", limit,
						 (long long)r.reset_s);
				adm[na++] = t;
			} else {
				int64_t exact = (adm[first] + w - t + 999) / 1000;
				if (r.retry_after_s < 1 ||
				    (limit <= 32 && r.retry_after_s != (exact < 1 ? 1 : exact)))
					fail_msg("limit %u: Retry-After %u, exact %lld", limit,
						 r.retry_after_s, (long long)exact);
			}
		}
		if (!window_ok(adm, na, w, limit))
			fail_msg("limit %u: more than the limit in some window", limit);
		ratelimit_close(rl);
	}
}

/* Retry-After for each limiter at its checklist default: the time until a
 * request would be admitted, rounded up; agent_org always 60 (R6). */
static void test_local_retry_after_each_limiter(void **state)
{
	struct ratelimit_options o = opts_all(1, 1);
	static const struct {
		enum ratelimit_limiter l;
		const char *tag, *subject;
		uint32_t limit, window_s, retry_s;
	} cases[] = {
		{RL_LOGIN, "192.0.2.7", "a@example.com", 5, 300, 300 - 7},
		{RL_LOGIN_IP, "192.0.2.7", NULL, 20, 300, 300 - 7},
		{RL_API_USER, "u1", NULL, 100, 60, 60 - 7},
		{RL_AGENT_DEVICE, "org1", "dev1", 120, 60, 60 - 7},
		{RL_AGENT_ORG, "org1", NULL, 600, 60, 60},
		{RL_ENROLL, "192.0.2.7", NULL, 10, 60, 60 - 7},
		{RL_MFA, "u1", NULL, 10, 300, 300 - 7},
		{RL_WEBHOOK_TEST, "org1", NULL, 20, 600, 600 - 7},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++)
		o.rules[cases[i].l] = (struct ratelimit_rule){cases[i].limit, cases[i].window_s};
	struct ratelimit *rl = ratelimit_open(&o);
	assert_non_null(rl);
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		/* The limit at T0 (slotted limiters count a slot from its start),
		 * then one more 7.5 s later. */
		for (uint32_t k = 0; k < cases[i].limit; k++)
			assert_true(check1(rl, cases[i].l, cases[i].tag, cases[i].subject, T0)
					    .admitted);
		struct ratelimit_result r =
			check1(rl, cases[i].l, cases[i].tag, cases[i].subject, T0 + 7500);
		assert_false(r.admitted);
		assert_string_equal(r.limiter, ratelimit_limiter_name(cases[i].l));
		assert_int_equal(r.limit, cases[i].limit);
		uint32_t want = cases[i].retry_s, got = r.retry_after_s;
		/* Slotted limiters may answer up to one slot (W/31) later. */
		uint32_t slack = cases[i].limit > 32 ? (cases[i].window_s + 30) / 31 : 0;
		if (cases[i].l == RL_AGENT_ORG)
			slack = 0;
		if (got < want || got > want + slack)
			fail_msg("%s: Retry-After %u, want %u (+%u)", r.limiter, got, want, slack);
	}
	ratelimit_close(rl);
}

/* An agent checks its device and its organization in one call: refused by
 * one, counted in neither. */
static void test_local_multi_refusal_counts_nowhere(void **state)
{
	struct ratelimit_options o = opts_all(100, 60);
	struct ratelimit_item both[2] = {{RL_AGENT_DEVICE, "org1", "dev1", 0},
					 {RL_AGENT_ORG, "org1", NULL, 0}};
	struct ratelimit_item dev2[2] = {{RL_AGENT_DEVICE, "org1", "dev2", 0},
					 {RL_AGENT_ORG, "org1", NULL, 0}};
	struct ratelimit_result r;

	(void)state;
	o.rules[RL_AGENT_DEVICE] = (struct ratelimit_rule){3, 60};
	o.rules[RL_AGENT_ORG] = (struct ratelimit_rule){5, 60};
	struct ratelimit *rl = ratelimit_open(&o);
	assert_non_null(rl);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(ratelimit_check(rl, both, 2, T0 + i, &r), 0);
		assert_true(r.admitted);
		assert_int_equal(r.n, 2);
		assert_int_equal(r.items[0].remaining, 2 - i);
		assert_int_equal(r.items[1].remaining, 4 - i);
		assert_string_equal(r.limiter, "agent_device"); /* fewest remaining */
	}
	/* dev1 is over its limit 10 times: the organization does not notice. */
	for (int i = 0; i < 10; i++) {
		assert_int_equal(ratelimit_check(rl, both, 2, T0 + 10 + i, &r), 0);
		assert_false(r.admitted);
		assert_int_equal(r.refused_by, 0);
		assert_string_equal(r.limiter, "agent_device");
	}
	assert_int_equal(ratelimit_check(rl, dev2, 2, T0 + 30, &r), 0);
	assert_true(r.admitted);
	assert_int_equal(r.items[1].remaining, 1);
	assert_int_equal(ratelimit_check(rl, dev2, 2, T0 + 31, &r), 0);
	assert_true(r.admitted);
	assert_int_equal(r.items[1].remaining, 0);
	/* The organization is full: dev2 is refused by it and not charged. */
	assert_int_equal(ratelimit_check(rl, dev2, 2, T0 + 32, &r), 0);
	assert_false(r.admitted);
	assert_int_equal(r.refused_by, 1);
	assert_string_equal(r.limiter, "agent_org");
	assert_int_equal(r.retry_after_s, 60);
	assert_int_equal(r.items[0].remaining, 1); /* dev2 still has one */
	/* The same key twice in one check is a caller bug. */
	struct ratelimit_item twice[2] = {{RL_AGENT_ORG, "org1", NULL, 0},
					  {RL_AGENT_ORG, "org1", NULL, 0}};
	assert_int_equal(ratelimit_check(rl, twice, 2, T0, &r), BZ_ERR_INVALID);
	assert_int_equal(ratelimit_check(rl, both, 0, T0, &r), BZ_ERR_INVALID);
	assert_int_equal(ratelimit_check(rl, both, RATELIMIT_MAX_ITEMS + 1, T0, &r),
			 BZ_ERR_INVALID);
	ratelimit_close(rl);
}

/* The fallback holds at most local_max_keys keys and evicts the least
 * recently used; a key in use keeps its count. */
static void test_local_lru_bound(void **state)
{
	struct ratelimit_options o = opts_all(2, 60);
	struct ratelimit_stats st;
	char tag[32];

	(void)state;
	o.local_max_keys = 100;
	struct ratelimit *rl = ratelimit_open(&o);
	assert_non_null(rl);
	assert_true(check1(rl, RL_API_USER, "keep", NULL, T0).admitted);
	assert_true(check1(rl, RL_API_USER, "keep", NULL, T0).admitted);
	for (int i = 0; i < 1000; i++) {
		snprintf(tag, sizeof(tag), "user-%d", i);
		assert_true(check1(rl, RL_API_USER, tag, NULL, T0 + 1).admitted);
		/* "keep" is used all along, so it is never the one evicted. */
		assert_false(check1(rl, RL_API_USER, "keep", NULL, T0 + 2).admitted);
	}
	ratelimit_stats(rl, &st);
	assert_int_equal(st.local_keys, 100);
	assert_int_equal(st.local_max_keys, 100);
	assert_int_equal(st.local_evictions, 1000 + 1 - 100);
	assert_int_equal(st.backend, RATELIMIT_BACKEND_LOCAL);
	/* user-0 was evicted long ago: it starts afresh (the documented cost of
	 * a bounded table); the newest ones are still remembered. */
	assert_int_equal(check1(rl, RL_API_USER, "user-0", NULL, T0 + 3).remaining, 1);
	assert_int_equal(check1(rl, RL_API_USER, "user-999", NULL, T0 + 3).remaining, 0);
	ratelimit_close(rl);
	o.local_max_keys = RATELIMIT_MAX_ITEMS - 1; /* could evict a check's own keys */
	assert_null(ratelimit_open(&o));
}

/* Login on the fallback: address A, at its per-address limit, sends refused
 * logins with fresh e-mails. A refused request must create no entry (as in
 * Redis, where a refused request writes nothing): else each one pushes out
 * a live entry, here B's address, which then starts afresh, and two
 * addresses taking turns get unlimited password guesses for the price of
 * cheap 429s. */
static void test_local_refusal_evicts_nothing(void **state)
{
	struct ratelimit_options o = opts_all(2, 300);
	struct ratelimit_item it[2] = {{RL_LOGIN_IP, "198.51.100.7", NULL, 0},
				       {RL_LOGIN, "198.51.100.7", NULL, 0}};
	struct ratelimit_result r;
	struct ratelimit_stats st;
	char email[64];

	(void)state;
	o.local_max_keys = 100;
	struct ratelimit *rl = ratelimit_open(&o);
	assert_non_null(rl);
	assert_true(check1(rl, RL_LOGIN_IP, "203.0.113.9", NULL, T0).admitted);
	assert_true(check1(rl, RL_LOGIN_IP, "203.0.113.9", NULL, T0).admitted);
	assert_false(check1(rl, RL_LOGIN_IP, "203.0.113.9", NULL, T0).admitted);
	for (int i = 0; i < 1000; i++) {
		snprintf(email, sizeof(email), "victim%d@example.com", i);
		it[1].subject = email;
		assert_int_equal(ratelimit_check(rl, it, 2, T0 + 1, &r), 0);
		assert_int_equal(r.admitted, i < 2);
	}
	ratelimit_stats(rl, &st);
	assert_int_equal(st.local_evictions, 0);
	assert_int_equal(st.local_keys, 4); /* two addresses, two admitted e-mails */
	assert_false(check1(rl, RL_LOGIN_IP, "203.0.113.9", NULL, T0 + 2).admitted);
	ratelimit_close(rl);
}

struct hammer {
	struct ratelimit *rl;
	pthread_barrier_t *go;
	enum ratelimit_limiter l;
	int rounds;
	int admitted;
};

static void *hammer_run(void *arg)
{
	struct hammer *h = arg;
	struct ratelimit_item it[2] = {{h->l, "org1", h->l == RL_AGENT_DEVICE ? "dev1" : NULL, 0},
				       {RL_AGENT_ORG, "org1", NULL, 0}};
	struct ratelimit_result r;

	pthread_barrier_wait(h->go);
	for (int i = 0; i < h->rounds; i++)
		if (ratelimit_check(h->rl, it, 2, T0 + i % 1000, &r) == 0 && r.admitted)
			h->admitted++;
	return NULL;
}

/* Eight threads on one key at once: exactly the limit is admitted, for an
 * exact entry (10) and a slotted one (500). */
static void test_local_threads_one_key(void **state)
{
	enum { THREADS = 8 };
	static const uint32_t limits[] = {10, 500};

	(void)state;
	for (size_t li = 0; li < 2; li++) {
		struct ratelimit_options o = opts_all(100000, 60);
		pthread_t th[THREADS];
		struct hammer h[THREADS];
		pthread_barrier_t go;
		int total = 0;

		o.rules[RL_AGENT_DEVICE] = (struct ratelimit_rule){limits[li], 60};
		struct ratelimit *rl = ratelimit_open(&o);
		assert_non_null(rl);
		pthread_barrier_init(&go, NULL, THREADS);
		for (int i = 0; i < THREADS; i++) {
			h[i] = (struct hammer){rl, &go, RL_AGENT_DEVICE, 20000, 0};
			assert_int_equal(pthread_create(&th[i], NULL, hammer_run, &h[i]), 0);
		}
		for (int i = 0; i < THREADS; i++) {
			pthread_join(th[i], NULL);
			total += h[i].admitted;
		}
		pthread_barrier_destroy(&go);
		assert_int_equal(total, limits[li]);
		/* The organization counted exactly the admitted ones. */
		struct ratelimit_result r = check1(rl, RL_AGENT_ORG, "org1", NULL, T0 + 1000);
		assert_int_equal(r.remaining, 100000 - limits[li] - 1);
		ratelimit_close(rl);
	}
}

/* Redis unreachable (nothing listens on the port): local mode enforces the
 * same limits in process, marks one outage; deny mode answers "503". */
static void test_unreachable_redis(void **state)
{
	struct ratelimit_options o = opts_all(2, 60);
	struct ratelimit_item it = {RL_ENROLL, "192.0.2.7", NULL, 0};
	struct ratelimit_result r;
	struct ratelimit_stats st;

	(void)state;
	o.redis_url = "redis://127.0.0.1:1/0";
	o.redis_timeout_ms = 50;
	o.retry_interval_ms = 60000;
	struct ratelimit *rl = ratelimit_open(&o);
	assert_non_null(rl);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(ratelimit_check(rl, &it, 1, T0 + i, &r), 0);
		assert_int_equal(r.backend, RATELIMIT_BACKEND_LOCAL);
		assert_int_equal(r.admitted, i < 2);
	}
	ratelimit_stats(rl, &st);
	assert_int_equal(st.backend, RATELIMIT_BACKEND_LOCAL);
	assert_int_equal(st.outages, 1);
	assert_int_equal(st.local_checks, 3);
	assert_int_equal(st.redis_checks, 0);
	ratelimit_close(rl);

	o.on_failure = RATELIMIT_FAIL_DENY;
	rl = ratelimit_open(&o);
	assert_non_null(rl);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(ratelimit_check(rl, &it, 1, T0 + i, &r), BZ_ERR_UNAVAILABLE);
		assert_false(r.admitted);
	}
	ratelimit_stats(rl, &st);
	assert_int_equal(st.outages, 1);
	assert_int_equal(st.denied_unavailable, 3);
	assert_int_equal(st.local_checks, 0);
	ratelimit_close(rl);

	/* Bad options are refused, never read as "no limit". */
	o = opts_all(2, 60);
	o.rules[RL_MFA].limit = 0;
	assert_null(ratelimit_open(&o));
	o = opts_all(2, 60);
	o.rules[RL_LOGIN].window_s = 0;
	assert_null(ratelimit_open(&o));
}

/* note_refusal: the first refusal of a key in a window says so (audit it),
 * the next ones in that window do not, and a new window reports again. */
static void test_local_first_refusal(void **state)
{
	struct ratelimit_options o = opts_all(1, 10);
	struct ratelimit_item it = {RL_ENROLL, "192.0.2.7", NULL, 1};
	struct ratelimit_item quiet = {RL_ENROLL, "192.0.2.8", NULL, 0};
	struct ratelimit_result r;

	(void)state;
	struct ratelimit *rl = ratelimit_open(&o);
	assert_non_null(rl);
	assert_int_equal(ratelimit_check(rl, &it, 1, T0, &r), 0);
	assert_true(r.admitted);
	assert_false(r.first_refusal);
	assert_int_equal(ratelimit_check(rl, &it, 1, T0 + 1, &r), 0);
	assert_false(r.admitted);
	assert_true(r.first_refusal);
	for (int i = 2; i < 10; i++) {
		assert_int_equal(ratelimit_check(rl, &it, 1, T0 + i * 1000, &r), 0);
		assert_false(r.admitted);
		assert_false(r.first_refusal);
	}
	assert_int_equal(ratelimit_check(rl, &it, 1, T0 + 10000, &r), 0);
	assert_true(r.admitted);
	assert_int_equal(ratelimit_check(rl, &it, 1, T0 + 10001, &r), 0);
	assert_false(r.admitted);
	assert_true(r.first_refusal); /* a window after the last report */
	/* Without note_refusal nothing is reported. */
	assert_int_equal(ratelimit_check(rl, &quiet, 1, T0, &r), 0);
	assert_int_equal(ratelimit_check(rl, &quiet, 1, T0 + 1, &r), 0);
	assert_false(r.admitted);
	assert_false(r.first_refusal);
	ratelimit_close(rl);
}

/* bz_now_ms() follows bz_now()'s test adjustments: a pinned second, and
 * the offset file of the API tests' clock fixture. */
static void test_now_ms(void **state)
{
	char path[] = "/tmp/test_ratelimit_clock.XXXXXX";
	int64_t before, ms;

	(void)state;
	bz_clock_set_for_test(1800000000);
	assert_int_equal(bz_now_ms(), 1800000000000LL);
	bz_clock_set_for_test(0);
	before = bz_now();
	ms = bz_now_ms();
	assert_true(ms / 1000 >= before && ms / 1000 <= bz_now());
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "3600\n", 5), 5);
	close(fd);
	assert_int_equal(bz_clock_use_file(path), 0);
	ms = bz_now_ms();
	assert_true(ms / 1000 >= before + 3600 && ms / 1000 <= bz_now());
	unlink(path);
	ms = bz_now_ms(); /* no file: offset 0 again */
	assert_true(ms / 1000 >= before && ms / 1000 <= before + 60);
}

/* Two limiters at their limit: Retry-After is the later of the two, since
 * a request retried at the earlier would still be refused. */
static void test_local_retry_after_is_the_latest(void **state)
{
	struct ratelimit_options o = opts_all(1, 1);
	struct ratelimit_item it[2] = {{RL_LOGIN_IP, "192.0.2.9", NULL, 0},
				       {RL_LOGIN, "192.0.2.9", "alice@example.com", 0}};
	struct ratelimit_result r;

	(void)state;
	o.rules[RL_LOGIN_IP] = (struct ratelimit_rule){2, 60};
	o.rules[RL_LOGIN] = (struct ratelimit_rule){2, 300};
	struct ratelimit *rl = ratelimit_open(&o);
	assert_non_null(rl);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(ratelimit_check(rl, it, 2, T0 + i * 1000, &r), 0);
		assert_true(r.admitted);
	}
	assert_int_equal(ratelimit_check(rl, it, 2, T0 + 2000, &r), 0);
	assert_false(r.admitted);
	assert_int_equal(r.refused_by, 1);
	assert_string_equal(r.limiter, "login");
	assert_int_equal(r.retry_after_s, 298);
	assert_int_equal(r.items[0].remaining, 0);
	ratelimit_close(rl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_now_ms),
		cmocka_unit_test(test_rule_parse),
		cmocka_unit_test(test_on_failure_parse),
		cmocka_unit_test(test_norm_email),
		cmocka_unit_test(test_norm_ip),
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_local_exact_boundaries),
		cmocka_unit_test(test_local_burst_across_windows),
		cmocka_unit_test(test_local_random_traffic),
		cmocka_unit_test(test_local_retry_after_each_limiter),
		cmocka_unit_test(test_local_multi_refusal_counts_nowhere),
		cmocka_unit_test(test_local_retry_after_is_the_latest),
		cmocka_unit_test(test_local_first_refusal),
		cmocka_unit_test(test_local_lru_bound),
		cmocka_unit_test(test_local_refusal_evicts_nothing),
		cmocka_unit_test(test_local_threads_one_key),
		cmocka_unit_test(test_unreachable_redis),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
