/*
 * test_heartbeat_batch.c — the pure decisions of the heartbeat group commit
 * (src/server/agents/heartbeat.c): which tokens the batched lookup may judge
 * without a connection (agents_agent_admit) and which heartbeats may be
 * group-committed (agents_heartbeat_plain); everything else takes the
 * synchronous path. The batches themselves are tested against PostgreSQL in
 * tests/api/test_heartbeat_batch.py.
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

static struct agents_agent agent(enum agents_token_state st, int live, const char *status)
{
	struct agents_agent a = {.device_id = DEV,
				 .org_id = OTHER,
				 .token_state = st,
				 .token_live = live,
				 .old_ip = "10.0.0.1",
				 .hostname = "host-1",
				 .online = 1};
	text_copy(a.device_status, sizeof(a.device_status), status);
	return a;
}

static void admit_table(void **state)
{
	static const struct {
		enum agents_token_state st;
		int live;
		const char *status, *path;
		int want;
	} t[] = {
		{AGENTS_TOKEN_CURRENT, 1, "active", DEV, 0},
		{AGENTS_TOKEN_CURRENT, 0, "active", DEV, 0}, /* a current token has no expiry */
		{AGENTS_TOKEN_PREVIOUS, 1, "active", DEV, 0},
		{AGENTS_TOKEN_PENDING, 1, "active", DEV, 0},
		/* Upper case path: compared as a UUID, like agents_agent_auth(). */
		{AGENTS_TOKEN_CURRENT, 1, "active", "6F1C2A3B-4D5E-4F60-8A7B-9C0D1E2F3A4B", 0},
		{AGENTS_TOKEN_CURRENT, 1, "suspended", DEV, BZ_ERR_FORBIDDEN},
		/* Only agents_agent_auth() decides these (retirement, probes). */
		{AGENTS_TOKEN_PREVIOUS, 0, "active", DEV, BZ_ERR_NOT_FOUND},
		{AGENTS_TOKEN_PENDING, 0, "active", DEV, BZ_ERR_NOT_FOUND},
		{AGENTS_TOKEN_RETIRED, 1, "active", DEV, BZ_ERR_NOT_FOUND},
		{AGENTS_TOKEN_SUSPENDED, 1, "active", DEV, BZ_ERR_NOT_FOUND},
		{AGENTS_TOKEN_CURRENT, 1, "decommissioned", DEV, BZ_ERR_NOT_FOUND},
		{AGENTS_TOKEN_CURRENT, 1, "active", OTHER, BZ_ERR_NOT_FOUND},
		{AGENTS_TOKEN_CURRENT, 1, "suspended", OTHER, BZ_ERR_NOT_FOUND},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(*t); i++) {
		struct agents_agent a = agent(t[i].st, t[i].live, t[i].status);
		struct bz_errinfo why = {0};
		int rc = agents_agent_admit(&a, t[i].path, &why);
		if (rc != t[i].want)
			fail_msg("row %zu: %d, want %d", i, rc, t[i].want);
		if (rc == BZ_ERR_FORBIDDEN)
			assert_string_equal(why.code, "device_suspended");
		else
			assert_null(why.code);
	}
}

static void plain_table(void **state)
{
	static const struct {
		const char *ip, *hostname;
		int want;
	} t[] = {
		{"10.0.0.1", "host-1", 1}, {NULL, NULL, 1}, /* nothing reported, nothing changes */
		{"10.0.0.1", NULL, 1},	   {NULL, "host-1", 1},
		{"10.0.0.2", "host-1", 0}, /* G7: audited address change */
		{"10.0.0.1", "host-2", 0}, /* device.renamed */
		{"10.0.0.1", "HOST-1", 0}, /* a rename, however small */
	};
	struct agents_agent a = agent(AGENTS_TOKEN_CURRENT, 1, "active");

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(*t); i++) {
		struct agents_heartbeat hb = {.client_ip = t[i].ip, .hostname = t[i].hostname};
		if (agents_heartbeat_plain(&a, &hb) != t[i].want)
			fail_msg("row %zu: want %d", i, t[i].want);
	}
	/* A device without a known address: its first one is a change. */
	a.old_ip[0] = '\0';
	struct agents_heartbeat first = {.client_ip = "10.0.0.1"};
	assert_int_equal(agents_heartbeat_plain(&a, &first), 0);
}

/* What is plain besides the body: the token's state and the device's
 * liveness (a device back from offline writes device.online). */
static void plain_state_table(void **state)
{
	static const struct {
		enum agents_token_state st;
		int online, want;
	} t[] = {
		{AGENTS_TOKEN_CURRENT, 1, 1},
		{AGENTS_TOKEN_CURRENT, -1, 1}, /* never seen: NULL → true, silently */
		{AGENTS_TOKEN_PREVIOUS, 1, 1}, /* inside its grace */
		{AGENTS_TOKEN_PENDING, 1, 0},  /* G2: its first heartbeat confirms it */
		{AGENTS_TOKEN_CURRENT, 0, 0},  /* back from offline: device.online */
	};
	struct agents_heartbeat hb = {.client_ip = "10.0.0.1", .hostname = "host-1"};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(*t); i++) {
		struct agents_agent a = agent(t[i].st, 1, "active");
		a.online = t[i].online;
		if (agents_heartbeat_plain(&a, &hb) != t[i].want)
			fail_msg("row %zu: want %d", i, t[i].want);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(admit_table),
		cmocka_unit_test(plain_table),
		cmocka_unit_test(plain_state_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
