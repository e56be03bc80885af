/*
 * test_agent_tokens.c — the pure decisions of agent token rotation (G2,
 * src/server/agents/tokens.c) as tables: when a heartbeat asks for a
 * rotation, which refused tokens are a theft signal, and when a refused
 * confirm is "rotation_expired" rather than a bad token.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/text.h"
#include "server/agents/agents.h"

#define DEV "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b"
#define OTHER "0a1b2c3d-4e5f-4061-8273-94a5b6c7d8e9"
#define DAY 86400
#define NOW 1900000000

static struct agents_agent agent(enum agents_token_state st, int live, int64_t activated,
				 int requested, int pending)
{
	struct agents_agent a = {.device_id = DEV,
				 .org_id = OTHER,
				 .device_status = "active",
				 .token_state = st,
				 .token_live = live,
				 .token_activated_at = activated,
				 .rotation_requested = requested,
				 .pending_live = pending};
	return a;
}

static void rotate_due_table(void **state)
{
	static const struct {
		enum agents_token_state st;
		int64_t age_s; /* -1: activated_at unknown */
		int requested, pending, due;
	} cases[] = {
		{AGENTS_TOKEN_CURRENT, 0, 0, 0, 0},
		{AGENTS_TOKEN_CURRENT, 30 * DAY, 0, 0, 0}, /* exactly the max age: not older */
		{AGENTS_TOKEN_CURRENT, 30 * DAY + 1, 0, 0, 1},
		{AGENTS_TOKEN_CURRENT, 400 * DAY, 0, 0, 1},
		{AGENTS_TOKEN_CURRENT, -1, 0, 0, 1}, /* unknown age counts as old */
		{AGENTS_TOKEN_CURRENT, 0, 1, 0, 1},  /* an administrator asked */
		/* a rotation is in progress: never ask twice */
		{AGENTS_TOKEN_CURRENT, 0, 1, 1, 0},
		{AGENTS_TOKEN_CURRENT, 400 * DAY, 0, 1, 0},
		/* only the current token is asked */
		{AGENTS_TOKEN_PREVIOUS, 400 * DAY, 1, 0, 0},
		{AGENTS_TOKEN_PENDING, -1, 0, 0, 0},
		{AGENTS_TOKEN_RETIRED, 400 * DAY, 1, 0, 0},
		{AGENTS_TOKEN_SUSPENDED, 400 * DAY, 1, 0, 0},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		int64_t act = cases[i].age_s < 0 ? 0 : NOW - cases[i].age_s;
		struct agents_agent a =
			agent(cases[i].st, 1, act, cases[i].requested, cases[i].pending);
		int got = agents_token_rotate_due(&a, NOW, 30 * DAY);
		if (got != cases[i].due)
			fail_msg("case %zu: rotate_due %d, want %d", i, got, cases[i].due);
	}
}

static void retired_table(void **state)
{
	static const struct {
		enum agents_token_state st;
		int live, retired;
	} cases[] = {
		{AGENTS_TOKEN_RETIRED, 0, 1},  {AGENTS_TOKEN_PREVIOUS, 0, 1},
		{AGENTS_TOKEN_PREVIOUS, 1, 0}, {AGENTS_TOKEN_CURRENT, 1, 0},
		{AGENTS_TOKEN_PENDING, 0, 0}, /* an unconfirmed token that expired */
		{AGENTS_TOKEN_PENDING, 1, 0},  {AGENTS_TOKEN_SUSPENDED, 0, 1},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		struct agents_agent a = agent(cases[i].st, cases[i].live, NOW, 0, 0);
		if (agents_token_is_retired(&a) != cases[i].retired)
			fail_msg("case %zu: is_retired %d", i, !cases[i].retired);
	}
	/* An unknown token (the lookup zeroes the struct) is no signal. */
	struct agents_agent unknown;
	memset(&unknown, 0, sizeof(unknown));
	assert_int_equal(agents_token_is_retired(&unknown), 0);
}

static void confirm_expired(void **state)
{
	struct bz_errinfo why = {0};
	struct agents_agent a = agent(AGENTS_TOKEN_PENDING, 0, 0, 0, 0);

	(void)state;
	assert_int_equal(agents_token_confirm_expired(&a, DEV, &why), BZ_ERR_CONFLICT);
	assert_string_equal(why.code, "rotation_expired");
	/* The path id is compared as a UUID, case-insensitively. */
	why = (struct bz_errinfo){0};
	assert_int_equal(agents_token_confirm_expired(&a, "6F1C2A3B-4D5E-4F60-8A7B-9C0D1E2F3A4B",
						      &why),
			 BZ_ERR_CONFLICT);

	/* Everything else stays a bad token, WHY untouched. */
	struct agents_agent no[4] = {
		agent(AGENTS_TOKEN_PENDING, 1, 0, 0, 0),
		agent(AGENTS_TOKEN_PREVIOUS, 0, NOW, 0, 0),
		agent(AGENTS_TOKEN_RETIRED, 0, NOW, 0, 0),
		a,
	};
	text_copy(no[3].device_status, sizeof(no[3].device_status), "decommissioned");
	for (size_t i = 0; i < 4; i++) {
		why = (struct bz_errinfo){0};
		assert_int_equal(agents_token_confirm_expired(&no[i], DEV, &why),
				 BZ_ERR_UNAUTHORIZED);
		assert_null(why.code);
	}
	why = (struct bz_errinfo){0};
	assert_int_equal(agents_token_confirm_expired(&a, OTHER, &why), BZ_ERR_UNAUTHORIZED);
	struct agents_agent unknown;
	memset(&unknown, 0, sizeof(unknown));
	assert_int_equal(agents_token_confirm_expired(&unknown, DEV, &why), BZ_ERR_UNAUTHORIZED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(rotate_due_table),
		cmocka_unit_test(retired_table),
		cmocka_unit_test(confirm_expired),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
