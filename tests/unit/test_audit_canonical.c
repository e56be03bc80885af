/*
 * Unit tests for the audit chain's canonical form, checksum, timestamps,
 * signatures (src/server/audit/canonical.c, checkpoint.c) and the offline
 * verification of an export (verify_file.c).
 *
 * The vectors were computed by PostgreSQL — audit_canonical(...) and
 * encode(sha256(...), 'hex') of migrations/0002_audit_chain.sql, in a
 * session with TimeZone 'America/St_Johns' and DateStyle 'German, DMY' —
 * and are the ones published in docs/audit-chain.md.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "common/iso8601.h"
#include "server/audit/audit_chain.h"
#include "server/audit/audit_checkpoint.h"

struct vector {
	const char *name;
	struct audit_row row;
	const char *canonical;
	const char *checksum;
};

static const struct vector vectors[] = {
	{"system chain, genesis, NULL org/actor/ip",
	 {"1", NULL, "1", "2026-01-02T03:04:05.000006Z", "system", NULL, "system.bootstrap",
	  "partners", "93e64e13-8d22-4d5a-b0b0-26903f858137", "{\"partner\":\"P\"}", NULL,
	  "success", AUDIT_GENESIS, NULL, NULL, NULL},
	 "S15:breeze-audit-v1,S1:1,NS1:1,S27:2026-01-02T03:04:05.000006Z,S6:system,NS16:system."
	 "bootstrap,S8:partners,S36:93e64e13-8d22-4d5a-b0b0-26903f858137,S15:{\"partner\":\"P\"},NS7:"
	 "success,S64:0000000000000000000000000000000000000000000000000000000000000000,",
	 "e001afba23d2ff5e58287af4585d46dde42b060663d8eca1b7ac45029819c186"},
	{"organization, non-ASCII UTF-8 details, IPv4, ts given at +02:00",
	 {"42", "9f9a1404-46ca-445e-ba40-8e54650dfdac", "7", "2026-11-29T21:59:59.999999Z", "user",
	  "ccbda2f9-2140-48aa-aaac-e324b5f2712b", "device.delete", "devices",
	  "d3b07384-d113-4ec6-a3f6-1c2d3e4f5a6b", "{\"hostname\":\"Zürich-東京-🚀\",\"note\":\"ü\"}",
	  "192.0.2.10", "success",
	  "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881", NULL, NULL, NULL},
	 "S15:breeze-audit-v1,S2:42,S36:9f9a1404-46ca-445e-ba40-8e54650dfdac,S1:7,S27:2026-11-29T21:"
	 "59:59.999999Z,S4:user,S36:ccbda2f9-2140-48aa-aaac-e324b5f2712b,S13:device.delete,S7:"
	 "devices,S36:d3b07384-d113-4ec6-a3f6-1c2d3e4f5a6b,S46:{\"hostname\":\"Zürich-東京-🚀\","
	 "\"note\":\"ü\"},S10:192.0.2.10,S7:success,S64:"
	 "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881,",
	 "99f1404137708519d2ca5eca4d70c3826471b075c66b86ce8bbbe533739506f4"},
	{"IPv6, id above 2^53, before 2000, delimiters inside a value",
	 {"9007199254740993", "0b7e5c1a-3f2d-4c6b-9a8e-7d6c5b4a3921", "123456789",
	  "1999-12-31T23:59:59.000000Z", "api_key", "key_01", "auth.login.failed", "sessions", NULL,
	  "{\"a\":\"S3:x,N\",\"b\":[1,2,{\"c\":null}]}", "2001:db8::ff00:42:8329", "denied",
	  "a1fce4363854ff888cff4b8e7875d600c2682390412a8cf79b37d0b11148b0fa", NULL, NULL, NULL},
	 "S15:breeze-audit-v1,S16:9007199254740993,S36:0b7e5c1a-3f2d-4c6b-9a8e-7d6c5b4a3921,S9:"
	 "123456789,S27:1999-12-31T23:59:59.000000Z,S7:api_key,S6:key_01,S17:auth.login.failed,S8:"
	 "sessions,NS35:{\"a\":\"S3:x,N\",\"b\":[1,2,{\"c\":null}]},S22:2001:db8::ff00:42:8329,S6:"
	 "denied,S64:a1fce4363854ff888cff4b8e7875d600c2682390412a8cf79b37d0b11148b0fa,",
	 "4aba342e956be8283d6ad16154c9f2968fdaf03646935950cad54b66497394f0"},
	{"system chain seq 2 linked to vector 1, empty string vs NULL, leap day, ::1",
	 {"5", NULL, "2", "2024-02-29T12:00:00.000000Z", "agent", NULL, "agent.token.rotate",
	  "devices", "", "{}", "::1", "failure",
	  "e001afba23d2ff5e58287af4585d46dde42b060663d8eca1b7ac45029819c186", NULL, NULL, NULL},
	 "S15:breeze-audit-v1,S1:5,NS1:2,S27:2024-02-29T12:00:00.000000Z,S5:agent,NS18:agent.token."
	 "rotate,S7:devices,S0:,S2:{},S3:::1,S7:failure,S64:"
	 "e001afba23d2ff5e58287af4585d46dde42b060663d8eca1b7ac45029819c186,",
	 "c12fd4ff4fd6c484abc5576a3b75146627bc8913dfd7e000a5a9d3e7e01b65c3"},
	{"details byte-exact: whitespace, newline, escapes, 1.50",
	 {"77", "9f9a1404-46ca-445e-ba40-8e54650dfdac", "8", "2100-03-01T00:00:00.500000Z", "user",
	  "", "user.update", "users", "u",
	  "{\"msg\": \"line\\nbreak \\\"q\\\" \\\\ tab\\t\",\n \"n\": 1.50}", "fe80::1", "success",
	  "594e519ae499312b29433b7dd8a97ff068defcba9755b6d5d00e84c524d67b06", NULL, NULL, NULL},
	 "S15:breeze-audit-v1,S2:77,S36:9f9a1404-46ca-445e-ba40-8e54650dfdac,S1:8,S27:2100-03-01T00:"
	 "00:00.500000Z,S4:user,S0:,S11:user.update,S5:users,S1:u,S49:{\"msg\": \"line\\nbreak "
	 "\\\"q\\\" \\\\ tab\\t\",\n \"n\": 1.50},S7:fe80::1,S7:success,S64:"
	 "594e519ae499312b29433b7dd8a97ff068defcba9755b6d5d00e84c524d67b06,",
	 "3a2623b4807a2a29470789e1846e5e5fa5348e714ed16eabf1668db7c9a51f9a"},
	/* breeze-audit-v2 (migration 0004): partner_id and site_id after org_id. */
	{"v2: partner chain, genesis, NULL org and site",
	 {"43", NULL, "1", "2026-12-01T10:00:00.123456Z", "user",
	  "ccbda2f9-2140-48aa-aaac-e324b5f2712b", "auth.login", "sessions",
	  "5e55e55e-1111-4222-8333-444455556666", "{}", "198.51.100.4", "success", AUDIT_GENESIS,
	  NULL, "a1b2c3d4-0000-4000-8000-00000000beef", NULL},
	 "S15:breeze-audit-v2,S2:43,NS36:a1b2c3d4-0000-4000-8000-00000000beef,NS1:1,S27:2026-12-01T"
	 "10:00:00.123456Z,S4:user,S36:ccbda2f9-2140-48aa-aaac-e324b5f2712b,S10:auth.login,S8:"
	 "sessions,S36:5e55e55e-1111-4222-8333-444455556666,S2:{},S12:198.51.100.4,S7:success,S64:"
	 "0000000000000000000000000000000000000000000000000000000000000000,",
	 "eb0a605af1545437f5c08e1acfcedb5880791267f3a21afb60d92339af362ddc"},
	{"v2: organization row with a site, NULL partner and ip",
	 {"44", "9f9a1404-46ca-445e-ba40-8e54650dfdac", "9", "2026-12-01T10:00:01.000000Z", "agent",
	  "d3b07384-d113-4ec6-a3f6-1c2d3e4f5a6b", "device.enroll", "devices",
	  "d3b07384-d113-4ec6-a3f6-1c2d3e4f5a6b",
	  "{\"siteId\":\"0c0ffee0-aaaa-4bbb-8ccc-ddddeeeeffff\"}", NULL, "success",
	  "99f1404137708519d2ca5eca4d70c3826471b075c66b86ce8bbbe533739506f4", NULL, NULL,
	  "0c0ffee0-aaaa-4bbb-8ccc-ddddeeeeffff"},
	 "S15:breeze-audit-v2,S2:44,S36:9f9a1404-46ca-445e-ba40-8e54650dfdac,NS36:0c0ffee0-aaaa-4bbb-"
	 "8ccc-ddddeeeeffff,S1:9,S27:2026-12-01T10:00:01.000000Z,S5:agent,S36:d3b07384-d113-4ec6-a3f6-"
	 "1c2d3e4f5a6b,S13:device.enroll,S7:devices,S36:d3b07384-d113-4ec6-a3f6-1c2d3e4f5a6b,S49:{"
	 "\"siteId\":\"0c0ffee0-aaaa-4bbb-8ccc-ddddeeeeffff\"},NS7:success,S64:"
	 "99f1404137708519d2ca5eca4d70c3826471b075c66b86ce8bbbe533739506f4,",
	 "280ede2da05f9801f045bfdceca8eb1ad4e553dc34a082724713550aabee0ef3"},
};

static void test_vectors(void **state)
{
	char *buf = NULL;
	size_t cap = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(vectors) / sizeof(*vectors); i++) {
		const struct vector *v = &vectors[i];
		size_t len = 0;
		char sum[65];

		assert_int_equal(audit_canonical_encode(&v->row, &buf, &cap, &len), 0);
		if (len != strlen(v->canonical) || memcmp(buf, v->canonical, len) != 0)
			fail_msg("vector '%s': canonical form differs:\n got  %.*s\n want %s",
				 v->name, (int)len, buf, v->canonical);
		assert_int_equal(audit_row_checksum(&v->row, sum), 0);
		if (strcmp(sum, v->checksum) != 0)
			fail_msg("vector '%s': checksum %s, want %s", v->name, sum, v->checksum);
	}
	free(buf);
}

/* Each field is inside the hash: changing any one changes the checksum,
 * and NULL differs from the empty string. */
static void test_every_field_counts(void **state)
{
	(void)state;
	const struct audit_row base = vectors[1].row;
	char ref[65], sum[65];

	assert_int_equal(audit_row_checksum(&base, ref), 0);
	for (int f = 0; f < 13; f++) {
		struct audit_row r = base;
		const char **fp[13] = {&r.id,		&r.org_id,   &r.seq,	    &r.ts,
				       &r.actor_type,	&r.actor_id, &r.action,	    &r.resource,
				       &r.resource_id,	&r.details,  &r.ip_address, &r.result,
				       &r.prev_checksum};
		*fp[f] = *fp[f] && **fp[f] ? "" : "x";
		assert_int_equal(audit_row_checksum(&r, sum), 0);
		if (strcmp(sum, ref) == 0)
			fail_msg("field %d is not covered by the checksum", f);
		*fp[f] = NULL;
		assert_int_equal(audit_row_checksum(&r, sum), 0);
		if (strcmp(sum, ref) == 0)
			fail_msg("field %d: NULL not distinguished", f);
	}
	/* The checksum column itself is not part of the form. */
	struct audit_row r = base;
	r.checksum = "ffff";
	assert_int_equal(audit_row_checksum(&r, sum), 0);
	assert_string_equal(sum, ref);
}

/* v2 rows: partner_id and site_id are hashed (a value, another value, NULL
 * all differ), and a row that loses both falls back to v1 — which hashes
 * differently, so dropping them is seen too. */
static void test_v2_fields_count(void **state)
{
	(void)state;
	const struct audit_row base = vectors[6].row; /* site row */
	char ref[65], sum[65], v1[65];

	assert_non_null(base.site_id);
	assert_int_equal(audit_row_checksum(&base, ref), 0);
	struct audit_row r = base;
	r.site_id = "0c0ffee0-aaaa-4bbb-8ccc-ddddeeeeff00";
	assert_int_equal(audit_row_checksum(&r, sum), 0);
	assert_string_not_equal(sum, ref);
	r = base;
	r.partner_id = "a1b2c3d4-0000-4000-8000-00000000beef";
	assert_int_equal(audit_row_checksum(&r, sum), 0);
	assert_string_not_equal(sum, ref);
	r = base;
	r.site_id = NULL;
	assert_int_equal(audit_row_checksum(&r, v1), 0);
	assert_string_not_equal(v1, ref);
	/* With both NULL the row is exactly v1: the v1 vectors still hold. */
	struct audit_row old = vectors[1].row;
	assert_null(old.partner_id);
	assert_int_equal(audit_row_checksum(&old, sum), 0);
	assert_string_equal(sum, vectors[1].checksum);
}

struct ts_case {
	int64_t us;
	const char *text;
};

static const struct ts_case ts_cases[] = {
	{0, "1970-01-01T00:00:00.000000Z"},
	{1, "1970-01-01T00:00:00.000001Z"},
	{-1, "1969-12-31T23:59:59.999999Z"},
	{946684799000000LL, "1999-12-31T23:59:59.000000Z"},
	{1709208000000000LL, "2024-02-29T12:00:00.000000Z"},
	{1767323045000006LL, "2026-01-02T03:04:05.000006Z"},
	{4107542400500000LL, "2100-03-01T00:00:00.500000Z"},
	{-62135596800000000LL, "0001-01-01T00:00:00.000000Z"},
	{-30636384832999992LL, "0999-03-04T05:06:07.000008Z"}, /* as audit_ts_text() */
	{253402300799999999LL, "9999-12-31T23:59:59.999999Z"},
};

static void test_ts_format_and_parse(void **state)
{
	char out[32];
	int64_t us;

	(void)state;
	for (size_t i = 0; i < sizeof(ts_cases) / sizeof(*ts_cases); i++) {
		assert_int_equal(iso8601_format_us(ts_cases[i].us, out), 0);
		assert_string_equal(out, ts_cases[i].text);
		assert_int_equal(iso8601_parse_us(ts_cases[i].text, &us), 0);
		assert_true(us == ts_cases[i].us);
	}
	assert_int_equal(iso8601_format_us(253402300800000000LL, out), BZ_ERR_INVALID);
	assert_int_equal(iso8601_format_us(INT64_MIN, out), BZ_ERR_INVALID);

	assert_int_equal(iso8601_parse_us("2026-11-29T23:59:59.999999+02:00", &us), 0);
	assert_int_equal(iso8601_format_us(us, out), 0);
	assert_string_equal(out, "2026-11-29T21:59:59.999999Z");
	assert_int_equal(iso8601_parse_us("2026-11-29", &us), 0);
	assert_int_equal(iso8601_format_us(us, out), 0);
	assert_string_equal(out, "2026-11-29T00:00:00.000000Z");
	assert_int_equal(iso8601_parse_us("2026-11-29T10:00-0330", &us), 0);
	assert_int_equal(iso8601_format_us(us, out), 0);
	assert_string_equal(out, "2026-11-29T13:30:00.000000Z");
	assert_int_equal(iso8601_parse_us("2026-11-29T10:00:00.1234567Z", &us), 0);
	assert_int_equal(iso8601_format_us(us, out), 0);
	assert_string_equal(out, "2026-11-29T10:00:00.123456Z");

	static const char *bad[] = {"",
				    "yesterday",
				    "2026-13-01",
				    "2026-02-30",
				    "2025-02-29",
				    "2026-11-29T24:00:00Z",
				    "2026-11-29T10:00:00ZZ",
				    "2026-11-29T10:00:00.Z",
				    "2026-11-29T10:00:00+5",
				    "2026-11-29 10:00:00 UTC",
				    "26-11-29",
				    "2026-11-29T10"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		if (iso8601_parse_us(bad[i], &us) != BZ_ERR_INVALID)
			fail_msg("'%s' should be rejected", bad[i]);
	assert_int_equal(iso8601_parse_us(NULL, &us), BZ_ERR_INVALID);
}

/* RFC 8032 §7.1, test 1. */
#define RFC8032_SEED "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
#define RFC8032_PUB "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"

static void test_signatures(void **state)
{
	char pub[65], pub2[65], sig[129];
	const char *sum = vectors[0].checksum;

	(void)state;
	assert_int_equal(audit_public_key_hex(RFC8032_SEED, pub), 0);
	assert_string_equal(pub, RFC8032_PUB);
	assert_int_equal(audit_public_key_hex("00", pub), BZ_ERR_INVALID);
	assert_int_equal(audit_public_key_hex(
				 "zz61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
				 pub),
			 BZ_ERR_INVALID);

	assert_int_equal(audit_checkpoint_sign(RFC8032_SEED, AUDIT_SYSTEM_CHAIN, 1, sum, 1767323045,
					       sig, pub2),
			 0);
	assert_string_equal(pub2, RFC8032_PUB);
	/* Ed25519 is deterministic: the vectors published in docs/audit-chain.md,
	 * also produced by Python's `cryptography` from the documented payload. */
	assert_string_equal(sig,
			    "3a00377fc738949f0e7e46c4b699e7d5d3352be875dc1f33d7e72bb22aacee90"
			    "bb2996a31e9bed6531d1339ab6f023a625c42b8ddce57c43588af0730c9dca0a");
	assert_true(audit_checkpoint_sig_ok(pub, AUDIT_SYSTEM_CHAIN, 1, sum, 1767323045, sig));
	/* Any signed field changed: invalid. */
	assert_false(audit_checkpoint_sig_ok(pub, AUDIT_SYSTEM_CHAIN, 2, sum, 1767323045, sig));
	assert_false(audit_checkpoint_sig_ok(pub, AUDIT_SYSTEM_CHAIN, 1, vectors[1].checksum,
					     1767323045, sig));
	assert_false(audit_checkpoint_sig_ok(pub, AUDIT_SYSTEM_CHAIN, 1, sum, 1767323046, sig));
	assert_false(audit_checkpoint_sig_ok(pub, vectors[1].row.org_id, 1, sum, 1767323045, sig));
	assert_false(audit_checkpoint_sig_ok(pub, AUDIT_SYSTEM_CHAIN, 1, sum, 1767323045, "00"));
	/* A checkpoint signature is not an anchor signature. */
	assert_false(audit_anchor_sig_ok(pub, AUDIT_SYSTEM_CHAIN, 1, sum, sig));

	assert_int_equal(audit_anchor_sign(RFC8032_SEED, AUDIT_SYSTEM_CHAIN, 5, sum, sig, NULL), 0);
	assert_string_equal(sig,
			    "8980a1fef5c56aeaef042e91315cb27eef4420081b4d0738174676e51c192d43"
			    "ee5e1c4d41e696c9f0ce6938cc2b0f21cab7532c47d68e2b9870845bb7c45b06");
	assert_true(audit_anchor_sig_ok(pub, AUDIT_SYSTEM_CHAIN, 5, sum, sig));
	assert_false(audit_anchor_sig_ok(pub, AUDIT_SYSTEM_CHAIN, 6, sum, sig));
}

/* ------------------------------------------------- offline verification */

#define ORG "9f9a1404-46ca-445e-ba40-8e54650dfdac"
#define NROWS 10

struct chain_row {
	char id[24], seq[24], ts[32], details[64], prev[65], sum[65];
	const char *org;
};

/* Seals row C (computes its checksum over its current fields). */
static void seal(struct chain_row *c)
{
	struct audit_row r = {c->id,	       c->org,	  c->seq, c->ts,      "user", NULL,
			      "device.update", "devices", NULL,	  c->details, "::1",  "success",
			      c->prev,	       NULL,	  NULL,	  NULL};
	assert_int_equal(audit_row_checksum(&r, c->sum), 0);
}

/* Sets row I's seq and links it to row I-1 (or genesis), then seals it. */
static void chain_at(struct chain_row *rows, int i, int seq)
{
	snprintf(rows[i].seq, sizeof(rows[i].seq), "%d", seq);
	snprintf(rows[i].prev, sizeof(rows[i].prev), "%s", i ? rows[i - 1].sum : AUDIT_GENESIS);
	seal(&rows[i]);
}

/* A correct chain of N rows of organization ORG. */
static void build_chain(struct chain_row *rows, int n)
{
	for (int i = 0; i < n; i++) {
		struct chain_row *c = &rows[i];
		snprintf(c->id, sizeof(c->id), "%d", 100 + i);
		assert_int_equal(iso8601_format_us(1767323045000000LL + i * 1000, c->ts), 0);
		snprintf(c->details, sizeof(c->details), "{\"n\":%d}", i);
		c->org = ORG;
		chain_at(rows, i, i + 1);
	}
}

/* The export of N rows (those with SKIP[i] set left out) and checkpoint
 * JSON objects CPS, ending with an export seal signed with SEAL_SEED over
 * the rows written (none when NULL). details only holds quotes that need
 * escaping. */
static FILE *write_export_sealed(const struct chain_row *rows, int n, const int *skip,
				 const char *cps, const char *seal_seed)
{
	long long nrows = 0, last_seq = 0;
	const char *last_sum = AUDIT_GENESIS;

	FILE *f = tmpfile();

	assert_non_null(f);
	fprintf(f,
		"{\"format\":\"breeze-audit-export-v1\",\"orgId\":\"" ORG "\",\"chainId\":\"" ORG
		"\",\"anchor\":null,\"checkpoints\":[%s]}\n",
		cps ? cps : "");
	for (int i = 0; i < n; i++) {
		const struct chain_row *c = &rows[i];
		char details[128], *o = details;
		if (skip && skip[i])
			continue;
		for (const char *p = c->details; *p; p++) {
			if (*p == '"')
				*o++ = '\\';
			*o++ = *p;
		}
		*o = '\0';
		fprintf(f,
			"{\"id\":\"%s\",\"orgId\":\"%s\",\"seq\":\"%s\",\"ts\":\"%s\","
			"\"actorType\":\"user\",\"actorId\":null,\"action\":\"device.update\","
			"\"resource\":\"devices\",\"resourceId\":null,\"details\":\"%s\","
			"\"ipAddress\":\"::1\",\"result\":\"success\",\"prevChecksum\":\"%s\","
			"\"checksum\":\"%s\"}\n",
			c->id, c->org, c->seq, c->ts, details, c->prev, c->sum);
		nrows++;
		last_seq = atoll(c->seq);
		last_sum = c->sum;
	}
	if (seal_seed != NULL) {
		char sig[129], pub[65];
		assert_int_equal(audit_export_seal_sign(seal_seed, ORG, last_seq, last_sum, nrows,
							1767323200, sig, pub),
				 0);
		fprintf(f,
			"{\"exportSeal\":{\"chainId\":\"" ORG "\",\"lastSeq\":%lld,"
			"\"lastChecksum\":\"%s\",\"rows\":%lld,\"exportedAt\":1767323200,"
			"\"publicKey\":\"%s\",\"signature\":\"%s\"}}\n",
			last_seq, last_sum, nrows, pub, sig);
	}
	rewind(f);
	return f;
}

/* Sealed with the trusted test key, as `audit export` does. */
static FILE *write_export(const struct chain_row *rows, int n, const int *skip, const char *cps)
{
	return write_export_sealed(rows, n, skip, cps, RFC8032_SEED);
}

static int has_kinds(const struct audit_report *rep, const char *want, char *got, size_t gotlen)
{
	size_t o = 0;

	got[0] = '\0';
	for (size_t i = 0; i < rep->n_kept && o < gotlen; i++)
		o += (size_t)snprintf(got + o, gotlen - o, "%s%s", i ? "," : "",
				      audit_break_kind_name(rep->breaks[i].kind));
	return strcmp(got, want) == 0;
}

/* A signed checkpoint of row C as it appears in an export header. */
static void checkpoint_json(const struct chain_row *c, char *buf, size_t len, const char *seed)
{
	char sig[129], pub[65];

	assert_int_equal(audit_checkpoint_sign(seed, ORG, atoll(c->seq), c->sum, 1767323100, sig,
					       pub),
			 0);
	snprintf(buf, len,
		 "{\"seq\":%s,\"checksum\":\"%s\",\"createdAt\":\"2026-01-02T03:05:00Z\","
		 "\"publicKey\":\"%s\",\"signature\":\"%s\"}",
		 c->seq, c->sum, pub, sig);
}

/* Verifies F (closed here), with the RFC 8032 key trusted when KEYED, and
 * checks the kinds of breaks, in order, and the seq of the first. */
static void run_case(const char *name, int keyed, FILE *f, const char *want, long long first_seq)
{
	const char *keys[1] = {RFC8032_PUB};
	struct audit_verify_opts o = {.public_keys = keys, .n_public_keys = keyed ? 1 : 0};
	struct audit_report rep;
	char err[200] = "", got[512];

	int rc = audit_verify_file(f, &o, &rep, err, sizeof(err));
	fclose(f);
	if (rc != 0)
		fail_msg("%s: audit_verify_file failed: %d %s", name, rc, err);
	if (!has_kinds(&rep, want, got, sizeof(got)))
		fail_msg("%s: breaks [%s], want [%s]", name, got, want);
	assert_int_equal(rep.ok, want[0] == '\0');
	if (want[0] != '\0' && rep.breaks[0].seq != first_seq)
		fail_msg("%s: first break at seq %lld, want %lld (%s)", name, rep.breaks[0].seq,
			 first_seq, rep.breaks[0].detail);
	audit_report_free(&rep);
}

static void test_offline_tampering(void **state)
{
	struct chain_row rows[NROWS], t[NROWS + 1];
	int skip[NROWS];
	char cp[512];

	(void)state;
	build_chain(rows, NROWS);

	run_case("intact", 0, write_export(rows, NROWS, NULL, NULL), "", 0);
	/* With a key, an export must hold a checkpoint that key signed. */
	run_case("no checkpoint, key given", 1, write_export(rows, NROWS, NULL, NULL),
		 "checkpoint_mismatch", -1);

	memcpy(t, rows, sizeof(rows));
	snprintf(t[4].details, sizeof(t[4].details), "{\"n\":44}");
	run_case("altered field", 0, write_export(t, NROWS, NULL, NULL), "altered_row", 5);

	memset(skip, 0, sizeof(skip));
	skip[4] = 1;
	run_case("deleted middle row", 0, write_export(rows, NROWS, skip, NULL), "missing_row", 6);

	/* A forged row at seq 5, the rest renumbered and resealed by a careful
	 * forger; the old seq 5 (now 6) still links to seq 4: it skips it. */
	memcpy(t, rows, 4 * sizeof(*rows));
	memcpy(t + 5, rows + 4, (NROWS - 4) * sizeof(*rows));
	t[4] = rows[4];
	snprintf(t[4].id, sizeof(t[4].id), "999");
	snprintf(t[4].details, sizeof(t[4].details), "{\"forged\":true}");
	snprintf(t[4].prev, sizeof(t[4].prev), "%064d", 7);
	seal(&t[4]);
	snprintf(t[5].seq, sizeof(t[5].seq), "6");
	seal(&t[5]); /* prev stays: seq 4's checksum */
	for (int i = 6; i <= NROWS; i++)
		chain_at(t, i, i + 1);
	run_case("inserted row", 0, write_export(t, NROWS + 1, NULL, NULL), "inserted_row", 5);

	/* The same row twice. */
	memcpy(t, rows, 3 * sizeof(*rows));
	memcpy(t + 3, rows + 2, (NROWS - 2) * sizeof(*rows));
	run_case("duplicated row", 0, write_export(t, NROWS + 1, NULL, NULL), "inserted_row", 3);

	memcpy(t, rows, sizeof(rows));
	snprintf(t[6].prev, sizeof(t[6].prev), "%s", rows[0].sum);
	run_case("re-linked row", 0, write_export(t, NROWS, NULL, NULL), "altered_row,broken_link",
		 7);
	seal(&t[6]); /* and resealed: the successor's link breaks too */
	run_case("re-linked, resealed", 0, write_export(t, NROWS, NULL, NULL),
		 "broken_link,broken_link", 7);

	/* Newest rows deleted after a checkpoint at seq 10. */
	memset(skip, 0, sizeof(skip));
	skip[8] = skip[9] = 1;
	checkpoint_json(&rows[9], cp, sizeof(cp), RFC8032_SEED);
	run_case("checkpoint, intact", 1, write_export(rows, NROWS, NULL, cp), "", 0);
	run_case("newest rows deleted", 1, write_export(rows, NROWS, skip, cp),
		 "checkpoint_mismatch", 10);

	/* A checkpoint signed by another key, and one edited: neither counts
	 * (each is a warning, not a break of its own), so nothing vouches for
	 * the export — that is its one break. */
	checkpoint_json(&rows[9], cp, sizeof(cp),
			"0000000000000000000000000000000000000000000000000000000000000001");
	run_case("untrusted checkpoint key", 1, write_export(rows, NROWS, NULL, cp),
		 "checkpoint_mismatch", -1);
	{
		const char *keys[1] = {RFC8032_PUB};
		struct audit_verify_opts o = {.public_keys = keys, .n_public_keys = 1};
		struct audit_report rep;
		char err[200] = "";
		FILE *f = write_export(rows, NROWS, NULL, cp);
		assert_int_equal(audit_verify_file(f, &o, &rep, err, sizeof(err)), 0);
		fclose(f);
		assert_int_equal(rep.n_warnings, 1);
		assert_string_equal(rep.warnings[0].kind, "untrusted_checkpoint");
		assert_int_equal(rep.warnings[0].seq, 10);
		audit_report_free(&rep);
	}
	checkpoint_json(&rows[8], cp, sizeof(cp), RFC8032_SEED);
	assert_memory_equal(cp, "{\"seq\":9,", 9);
	cp[7] = '5';
	run_case("edited checkpoint", 1, write_export(rows, NROWS, NULL, cp), "checkpoint_mismatch",
		 -1);

	/* The export seal (§8): a keyed verification needs it, and it must
	 * match the rows and be signed by a trusted key. */
	checkpoint_json(&rows[9], cp, sizeof(cp), RFC8032_SEED);
	run_case("no seal", 1, write_export_sealed(rows, NROWS, NULL, cp, NULL), "missing_row", -1);
	memset(skip, 0, sizeof(skip));
	skip[NROWS - 1] = skip[NROWS - 2] = 1;
	/* Cut short after an older checkpoint (the newest one removed from
	 * the header): only the seal notices. */
	checkpoint_json(&rows[4], cp, sizeof(cp), RFC8032_SEED);
	FILE *cut = write_export(rows, NROWS, NULL, cp);
	FILE *shortf = tmpfile();
	char ln[4096];
	/* Cut short: every line but the last row and the seal. */
	int total = 0;
	while (fgets(ln, sizeof(ln), cut) != NULL)
		total++;
	rewind(cut);
	for (int i = 0; i < total - 2 && fgets(ln, sizeof(ln), cut) != NULL; i++)
		fputs(ln, shortf);
	fclose(cut);
	rewind(shortf);
	run_case("cut short", 1, shortf, "missing_row", -1);
	run_case("resealed by another key", 1,
		 write_export_sealed(
			 rows, NROWS, skip, NULL,
			 "0000000000000000000000000000000000000000000000000000000000000002"),
		 "checkpoint_mismatch,checkpoint_mismatch", -1);

	/* A row of another chain spliced in. */
	memcpy(t, rows, sizeof(rows));
	t[2].org = "0b7e5c1a-3f2d-4c6b-9a8e-7d6c5b4a3921";
	run_case("row of another chain", 0, write_export(t, NROWS, NULL, NULL),
		 "inserted_row,missing_row", 3);
}

static void test_offline_bad_header(void **state)
{
	struct audit_verify_opts o = {0};
	struct audit_report rep;
	char err[200];
	FILE *f = tmpfile();

	(void)state;
	fputs("{\"format\":\"something-else\"}\n", f);
	rewind(f);
	assert_int_equal(audit_verify_file(f, &o, &rep, err, sizeof(err)), BZ_ERR_INVALID);
	assert_non_null(strstr(err, "line 1"));
	audit_report_free(&rep);
	fclose(f);
}

#define PARTNER "a1b2c3d4-0000-4000-8000-00000000beef"

/* A v2 export of a partner chain of 3 rows, checkpointed and sealed with
 * the RFC 8032 key. FORMAT is the header's format tag; row 2's partnerId
 * is OTHER_PARTNER when non-NULL (a row of another chain). */
static FILE *write_partner_export(const char *format, const char *other_partner)
{
	char ids[3][8], seqs[3][8], ts[3][32], prev[65] = AUDIT_GENESIS, sums[3][65];
	char sig[129], pub[65], cp_sig[129];
	FILE *f = tmpfile();

	assert_non_null(f);
	for (int i = 0; i < 3; i++) {
		snprintf(ids[i], sizeof(ids[i]), "%d", 500 + i);
		snprintf(seqs[i], sizeof(seqs[i]), "%d", i + 1);
		assert_int_equal(iso8601_format_us(1767323045000000LL + i, ts[i]), 0);
		struct audit_row r = {ids[i],	    NULL,	seqs[i], ts[i], "user", "u1",
				      "auth.login", "sessions", NULL,	 "{}",	NULL,	"success",
				      prev,	    NULL,	PARTNER, NULL};
		assert_int_equal(audit_row_checksum(&r, sums[i]), 0);
		memcpy(prev, sums[i], sizeof(prev));
	}
	assert_int_equal(audit_checkpoint_sign(RFC8032_SEED, PARTNER, 3, sums[2], 1767323100,
					       cp_sig, NULL),
			 0);
	fprintf(f,
		"{\"format\":\"%s\",\"orgId\":null,\"partnerId\":\"" PARTNER
		"\",\"chainId\":\"" PARTNER
		"\",\"anchor\":null,\"checkpoints\":[{\"seq\":3,\"checksum\":\"%s\","
		"\"createdAt\":\"2026-01-02T03:05:00Z\",\"publicKey\":\"" RFC8032_PUB "\","
		"\"signature\":\"%s\"}]}\n",
		format, sums[2], cp_sig);
	for (int i = 0; i < 3; i++)
		fprintf(f,
			"{\"id\":\"%s\",\"orgId\":null,\"partnerId\":\"%s\",\"siteId\":null,"
			"\"seq\":\"%s\",\"ts\":\"%s\",\"actorType\":\"user\",\"actorId\":\"u1\","
			"\"action\":\"auth.login\",\"resource\":\"sessions\",\"resourceId\":null,"
			"\"details\":\"{}\",\"ipAddress\":null,\"result\":\"success\","
			"\"prevChecksum\":\"%s\",\"checksum\":\"%s\"}\n",
			ids[i], i == 1 && other_partner ? other_partner : PARTNER, seqs[i], ts[i],
			i ? sums[i - 1] : AUDIT_GENESIS, sums[i]);
	assert_int_equal(audit_export_seal_sign(RFC8032_SEED, PARTNER, 3, sums[2], 3, 1767323200,
						sig, pub),
			 0);
	fprintf(f,
		"{\"exportSeal\":{\"chainId\":\"" PARTNER
		"\",\"lastSeq\":3,\"lastChecksum\":\"%s\","
		"\"rows\":3,\"exportedAt\":1767323200,\"publicKey\":\"%s\",\"signature\":\"%s\"}}\n",
		sums[2], pub, sig);
	rewind(f);
	return f;
}

/* Offline verification of a v2 export: a partner chain verifies; a row of
 * another partner is an inserted row; the same rows under a v1 header (whose
 * rows have no partnerId) do not hash. */
static void test_offline_v2_partner_chain(void **state)
{
	const char *keys[1] = {RFC8032_PUB};
	struct audit_verify_opts o = {.public_keys = keys, .n_public_keys = 1};
	struct audit_report rep;
	char err[200] = "", got[512];
	FILE *f;

	(void)state;
	f = write_partner_export("breeze-audit-export-v2", NULL);
	assert_int_equal(audit_verify_file(f, &o, &rep, err, sizeof(err)), 0);
	fclose(f);
	if (!rep.ok || rep.rows_checked != 3 || !rep.partner || rep.system) {
		has_kinds(&rep, "", got, sizeof(got));
		fail_msg("partner export: ok %d, %lld rows, breaks [%s]", rep.ok, rep.rows_checked,
			 got);
	}
	assert_string_equal(rep.chain_id, PARTNER);
	json_t *j = audit_report_json(&rep);
	assert_string_equal(json_string_value(json_object_get(j, "partnerId")), PARTNER);
	assert_true(json_is_null(json_object_get(j, "orgId")));
	json_decref(j);
	audit_report_free(&rep);

	f = write_partner_export("breeze-audit-export-v2", "a1b2c3d4-0000-4000-8000-00000000dead");
	assert_int_equal(audit_verify_file(f, &o, &rep, err, sizeof(err)), 0);
	fclose(f);
	assert_false(rep.ok);
	assert_int_equal(rep.breaks[0].kind, AUDIT_BREAK_INSERTED_ROW);
	assert_int_equal(rep.breaks[0].seq, 2);
	audit_report_free(&rep);

	f = write_partner_export("breeze-audit-export-v1", NULL);
	assert_int_equal(audit_verify_file(f, &o, &rep, err, sizeof(err)), 0);
	fclose(f);
	assert_false(rep.ok);
	audit_report_free(&rep);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_every_field_counts),
		cmocka_unit_test(test_v2_fields_count),
		cmocka_unit_test(test_ts_format_and_parse),
		cmocka_unit_test(test_signatures),
		cmocka_unit_test(test_offline_tampering),
		cmocka_unit_test(test_offline_bad_header),
		cmocka_unit_test(test_offline_v2_partner_chain),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
