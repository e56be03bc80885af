/*
 * bulk_enroll — the bulk-enrolment fast path of the heartbeat benchmark
 * (issue 13 §1): enrols N simulated agents straight into a throwaway
 * benchmark database, 100,000 to 1,000,000 of them in minutes, with the
 * rows enrolment through POST /api/v1/agents/enroll writes. Never part of
 * the server's routes.
 *
 *   bench_bulk_enroll --database NAME --key-id UUID [--key-id UUID …]
 *                     --agents N --tokens FILE [--batch B] [--ip ADDR]
 *                     [--interval S] [--host-prefix P]
 *
 * Environment: BENCH_DATABASE_URL (the server's own role, DATABASE_URL, so
 * the grants are the API's) and BREEZE_ENV=test. It refuses to run unless
 * BREEZE_ENV is "test" and NAME is the database the URL connects to: the
 * caller names the throwaway database it means.
 *
 * Per batch of B agents (default 10,000), one transaction, as
 * agents_enroll() and http_commit() do per agent (src/server/agents/
 * enroll.c, tokens.c, ip_history.c; src/server/audit/audit.c):
 *   - the key's usage_count goes up by B in one guarded UPDATE (revoked,
 *     expired or not enough uses left: nothing is written);
 *   - ids, tokens and audit details are made here: device ids are random
 *     version-4 UUIDs (what gen_random_uuid() gives the API's), tokens
 *     "brz_" + 64 hex digits of 32 random bytes (agents_token_new()), kept
 *     in memory only until written out, and only their SHA-256 sent;
 *   - one INSERT … SELECT FROM unnest(arrays) each into devices (the API's
 *     columns, the rest from their defaults), agent_tokens (state current,
 *     activated at enrolment), device_ip_history (the enrolment address)
 *     and audit_log (action device.enroll, actor the agent, details
 *     redacted and serialized as audit_write() does), in enrolment order.
 *     (The server's role may not create temporary tables, so there is no
 *     COPY into a staging table.) Every audit row goes through the sealing
 *     trigger (migrations 0002, 0004), so each gets its place in the
 *     organization's hash chain exactly as an API enrolment's would, and
 *     the webhook trigger (0014) sees it;
 *   - after COMMIT, "device-id token hostname" lines are appended to FILE
 *     (mode 0600), the format bench_heartbeat --agents-file reads.
 * What differs from the API: in the rows, only that a batch shares one
 * enrolment time (bz_now(), whole seconds, as the API's); the process-local
 * enrolment counter (/metrics) does not move, and the re-enrolment block
 * (checklist G6) is not consulted, since every hostname is new.
 * The batch size B bounds how many times one transaction moves a chain's
 * head row (audit_chain_heads), whose row versions a transaction cannot
 * prune: larger batches make each audit row slower.
 *
 * Each key must have an audit chain already (creating the key through the
 * API starts one): a chain's first row is signed when it is written (L4),
 * which this tool does not do, so it refuses a key whose organization has
 * no audit row yet.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "common/clock.h"
#include "crypto/crypto.h"
#include "server/agents/agents.h"
#include "server/audit/audit.h"

#define MAX_KEYS 10000
#define HOST_LEN 64

/* What bench_heartbeat --enroll sends (bench/heartbeat.c). */
#define OS_TYPE "linux"
#define OS_VERSION "Debian GNU/Linux 12 (bookworm)"
#define ARCH "x86_64"
#define AGENT_VERSION "0.1.0"

struct opts {
	const char *database, *tokens, *ip, *host_prefix;
	const char *keys[MAX_KEYS];
	int nkeys;
	long n, batch, interval;
};

struct minted {
	char id[37];
	char token[AGENTS_TOKEN_LEN + 1];
	char host[HOST_LEN];
};

static void die(const char *msg, PGconn *c)
{
	fprintf(stderr, "bulk_enroll: %s%s%s\n", msg, c ? ": " : "", c ? PQerrorMessage(c) : "");
	exit(1);
}

static PGresult *query(PGconn *c, const char *sql, int n, const char *const *p, ExecStatusType want)
{
	PGresult *r = PQexecParams(c, sql, n, NULL, p, NULL, NULL, 0);

	if (PQresultStatus(r) != want) {
		fprintf(stderr, "bulk_enroll: %s\n  in: %.120s\n", PQerrorMessage(c), sql);
		exit(1);
	}
	return r;
}

static void exec(PGconn *c, const char *sql, int n, const char *const *p)
{
	PQclear(query(c, sql, n, p, PGRES_COMMAND_OK));
}

/* ---------------------------------------------------------------- arrays */

/* A growing string: a PostgreSQL array literal being built. */
struct sbuf {
	char *p;
	size_t len, cap;
};

static void sb_put(struct sbuf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 1 << 16;
		while (cap < b->len + n + 1)
			cap *= 2;
		if ((b->p = realloc(b->p, cap)) == NULL)
			die("out of memory", NULL);
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

/* Appends S as the next element of the array literal in B (double-quoted,
 * backslash and quote escaped: PostgreSQL's array input syntax). */
static void sb_elem(struct sbuf *b, const char *s)
{
	sb_put(b, b->len == 0 ? "{\"" : ",\"", 2);
	for (const char *q = s; *q; q++) {
		if (*q == '"' || *q == '\\')
			sb_put(b, "\\", 1);
		sb_put(b, q, 1);
	}
	sb_put(b, "\"", 1);
}

static void sb_close(struct sbuf *b)
{
	sb_put(b, b->len == 0 ? "{}" : "}", b->len == 0 ? 2 : 1);
}

/* The columns of one batch, as text[] literals. */
struct batch {
	struct sbuf ids, hosts, hashes, details;
};

/* The audit details of one enrolment, as audit_write() stores them
 * (agents_enroll()'s event, redacted, compact with sorted keys). Caller
 * frees. */
static char *enroll_details(const char *host, const char *site_id, const char *key_id)
{
	json_t *d = json_pack("{s:s,s:s,s:s,s:s}", "hostname", host, "siteId", site_id,
			      "enrollmentKeyId", key_id, "osType", OS_TYPE);
	json_t *clean = audit_redact(d);
	char *s = json_dumps(clean, JSON_COMPACT | JSON_SORT_KEYS);

	json_decref(clean);
	json_decref(d);
	if (s == NULL)
		die("out of memory", NULL);
	return s;
}

/* Mints ids and tokens for agents FIRST … FIRST+N-1 into M and the
 * batch's columns into B (emptied first). */
static void stage_batch(const struct opts *o, struct minted *m, long first, long n,
			const char *site_id, const char *key_id, struct batch *b)
{
	char hash[BZ_SHA256_HEX_LEN + 1];

	b->ids.len = b->hosts.len = b->hashes.len = b->details.len = 0;
	for (long i = 0; i < n; i++) {
		/* RFC 9562 §5.4, as gen_random_uuid() makes the API's ids. */
		if (crypto_random_uuid(m[i].id) != 0)
			die("no random bytes", NULL);
		snprintf(m[i].host, sizeof(m[i].host), "%s-%07ld.fleet.example", o->host_prefix,
			 first + i);
		if (agents_token_new(m[i].token, hash) != 0)
			die("cannot make a token", NULL);
		char *details = enroll_details(m[i].host, site_id, key_id);
		sb_elem(&b->ids, m[i].id);
		sb_elem(&b->hosts, m[i].host);
		sb_elem(&b->hashes, hash);
		sb_elem(&b->details, details);
		free(details);
		crypto_wipe(hash, sizeof(hash));
	}
	sb_close(&b->ids);
	sb_close(&b->hosts);
	sb_close(&b->hashes);
	sb_close(&b->details);
}

/* ---------------------------------------------------------------- the rows */

static const char *consume_sql =
	"UPDATE enrollment_keys SET usage_count = usage_count + $2::int"
	" WHERE id = $1::uuid AND revoked_at IS NULL AND expires_at > now()"
	"   AND usage_count + $2::int <= max_usage"
	" RETURNING org_id, site_id";

/* The batch's rows in enrolment order: $1 ids, $2 hostnames, $3 token
 * hashes, $4 audit details. */
#define STAGE                                                                                      \
	" FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY"             \
	"      AS s(device_id, hostname, token_hash, details, ord) ORDER BY s.ord"

/* agents_enroll()'s device insert. */
static const char *devices_sql =
	"INSERT INTO devices (id, org_id, site_id, hostname, os_type, os_version, architecture,"
	"       agent_version, heartbeat_interval_s, enrollment_key_id, hardware, last_ip,"
	"       enrolled_at)"
	" SELECT s.device_id, $5::uuid, $6::uuid, s.hostname, $7, $8, $9, $10, $11::int,"
	"        $12::uuid, $13::jsonb, $14::inet, to_timestamp($15::bigint)" STAGE;

/* agents_token_insert() with AGENTS_TOKEN_CURRENT and no expiry. */
static const char *tokens_sql =
	"INSERT INTO agent_tokens (token_hash, device_id, org_id, state, created_at, activated_at,"
	"       expires_at)"
	" SELECT s.token_hash, s.device_id, $5::uuid, 'current', to_timestamp($6::bigint),"
	"        to_timestamp($6::bigint), NULL" STAGE;

/* agents_ip_history_seed(). */
static const char *ip_sql =
	"INSERT INTO device_ip_history (device_id, org_id, ip, first_seen_at, last_seen_at)"
	" SELECT s.device_id, $5::uuid, $6::inet, to_timestamp($7::bigint),"
	"        to_timestamp($7::bigint)" STAGE " ON CONFLICT (device_id, ip) DO NOTHING";

/* audit_write()'s insert with http_audit_actor()'s address, one row per
 * device in enrolment order; the sealing trigger chains each. */
static const char *audit_sql =
	"INSERT INTO audit_log (org_id, partner_id, site_id, actor_type, actor_id, action, resource,"
	"       resource_id, details, ip_address, result)"
	" SELECT $5::uuid, audit_event_partner($5::uuid, 'agent', s.device_id::text),"
	"        audit_event_site($5::uuid, 'devices', s.device_id::text, s.details), 'agent',"
	"        s.device_id::text, 'device.enroll', 'devices', s.device_id::text, s.details,"
	"        host($6::inet), 'success'" STAGE;

/* Consumes N uses of KEY_ID (in the open transaction); fills ORG, SITE. */
static void consume_key(PGconn *c, const char *key_id, long n, char org[37], char site[37])
{
	char n_s[24];

	snprintf(n_s, sizeof(n_s), "%ld", n);
	const char *p[] = {key_id, n_s};
	PGresult *r = query(c, consume_sql, 2, p, PGRES_TUPLES_OK);
	if (PQntuples(r) != 1)
		die("the enrolment key is revoked, expired or has too few uses left", NULL);
	snprintf(org, 37, "%s", PQgetvalue(r, 0, 0));
	snprintf(site, 37, "%s", PQgetvalue(r, 0, 1));
	PQclear(r);
}

static double mono(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Seconds spent per step, printed at the end: mint, devices, tokens,
 * addresses, audit, commit. */
static double spent[6];

/* Runs SQL with the batch's four arrays as $1…$4 and EXTRA as $5…;
 * checks that it wrote N rows. */
static void insert_rows(PGconn *c, const char *sql, const struct batch *b, long n,
			const char *const *extra, int nextra)
{
	const char *p[16] = {b->ids.p, b->hosts.p, b->hashes.p, b->details.p};

	memcpy(p + 4, extra, (size_t)nextra * sizeof(*extra));
	PGresult *r = query(c, sql, 4 + nextra, p, PGRES_COMMAND_OK);
	if (atol(PQcmdTuples(r)) != n)
		die("a batch insert wrote fewer rows than the batch holds", NULL);
	PQclear(r);
}

/* Enrols N agents (numbered from FIRST) with key KEY_ID in one transaction
 * and appends them to OUT. */
static void enroll_batch(PGconn *c, const struct opts *o, const char *key_id, long first, long n,
			 struct minted *m, struct batch *b, FILE *out)
{
	char now_s[24], interval_s[16], org[37], site[37];
	const char *hw = "{\"cpuCount\": 4, \"memoryTotalBytes\": 8589934592,"
			 " \"diskTotalBytes\": 107374182400, \"kernel\": \"6.1.0-28-amd64\","
			 " \"cpuModel\": \"Intel(R) Xeon(R) Gold 6248R CPU @ 3.00GHz\"}";

	snprintf(now_s, sizeof(now_s), "%lld", (long long)bz_now());
	snprintf(interval_s, sizeof(interval_s), "%ld", o->interval);
	exec(c, "BEGIN", 0, NULL);
	consume_key(c, key_id, n, org, site);
	double t = mono(), t1;
	stage_batch(o, m, first, n, site, key_id, b);
	spent[0] += (t1 = mono()) - t;
	const char *pd[] = {org,	site,	OS_TYPE, OS_VERSION, ARCH, AGENT_VERSION,
			    interval_s, key_id, hw,	 o->ip,	     now_s};
	insert_rows(c, devices_sql, b, n, pd, 11);
	spent[1] += (t = mono()) - t1;
	const char *pt[] = {org, now_s};
	insert_rows(c, tokens_sql, b, n, pt, 2);
	spent[2] += (t1 = mono()) - t;
	if (o->ip != NULL) {
		const char *pi[] = {org, o->ip, now_s};
		insert_rows(c, ip_sql, b, n, pi, 3);
	}
	spent[3] += (t = mono()) - t1;
	const char *pa[] = {org, o->ip};
	insert_rows(c, audit_sql, b, n, pa, 2);
	spent[4] += (t1 = mono()) - t;
	exec(c, "COMMIT", 0, NULL);
	spent[5] += mono() - t1;
	for (long i = 0; i < n; i++) {
		fprintf(out, "%s %s %s\n", m[i].id, m[i].token, m[i].host);
		crypto_wipe(m[i].token, sizeof(m[i].token));
	}
	crypto_wipe(b->hashes.p, b->hashes.len);
	if (fflush(out) != 0)
		die("cannot write the tokens file", NULL);
}

/* Uses left on KEY_ID (0 when revoked or expired); dies when the key is
 * unknown or its organization has no audit chain yet. */
static long key_room(PGconn *c, const char *key_id)
{
	const char *p[] = {key_id};
	PGresult *r = query(c,
			    "SELECT CASE WHEN revoked_at IS NULL AND expires_at > now()"
			    "            THEN max_usage - usage_count ELSE 0 END,"
			    "       EXISTS (SELECT 1 FROM audit_log a WHERE a.org_id = k.org_id)"
			    "  FROM enrollment_keys k WHERE id = $1::uuid",
			    1, p, PGRES_TUPLES_OK);
	if (PQntuples(r) != 1)
		die("unknown enrolment key", NULL);
	long room = atol(PQgetvalue(r, 0, 0));
	int chained = strcmp(PQgetvalue(r, 0, 1), "t") == 0;
	PQclear(r);
	if (!chained)
		die("the key's organization has no audit chain yet (create the key through the API)",
		    NULL);
	return room;
}

/* ---------------------------------------------------------------- main */

static void usage_exit(void)
{
	fprintf(stderr, "usage: bench_bulk_enroll --database NAME --key-id UUID [--key-id UUID …]\n"
			"         --agents N --tokens FILE [--batch B] [--ip ADDR] [--interval S]\n"
			"         [--host-prefix P]\n"
			"  environment: BENCH_DATABASE_URL (the server's role), BREEZE_ENV=test\n");
	exit(2);
}

static void parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{"database", 1, NULL, 'D'}, {"key-id", 1, NULL, 'K'},	   {"agents", 1, NULL, 'n'},
		{"tokens", 1, NULL, 't'},   {"batch", 1, NULL, 'b'},	   {"ip", 1, NULL, 'i'},
		{"interval", 1, NULL, 'I'}, {"host-prefix", 1, NULL, 'p'}, {NULL, 0, NULL, 0}};
	const char *iv = getenv("HEARTBEAT_INTERVAL_SECONDS");
	int c;

	*o = (struct opts){.batch = 10000, .ip = "127.0.0.1", .interval = iv ? atol(iv) : 60};
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (c == 'D')
			o->database = optarg;
		else if (c == 'K' && o->nkeys < MAX_KEYS)
			o->keys[o->nkeys++] = optarg;
		else if (c == 'n')
			o->n = atol(optarg);
		else if (c == 't')
			o->tokens = optarg;
		else if (c == 'b')
			o->batch = atol(optarg);
		else if (c == 'i')
			o->ip = *optarg ? optarg : NULL;
		else if (c == 'I')
			o->interval = atol(optarg);
		else if (c == 'p')
			o->host_prefix = optarg;
		else
			usage_exit();
	}
	if (o->database == NULL || o->nkeys == 0 || o->tokens == NULL || optind != argc ||
	    o->n < 1 || o->n > 10000000 || o->batch < 1 || o->batch > 100000 || o->interval < 5 ||
	    o->interval > 3600)
		usage_exit();
}

/* Connects and checks that this is the throwaway database the caller
 * named, under BREEZE_ENV=test. */
static PGconn *connect_bench(const struct opts *o)
{
	const char *url = getenv("BENCH_DATABASE_URL"), *env = getenv("BREEZE_ENV");

	if (env == NULL || strcmp(env, "test") != 0)
		die("refusing to run: BREEZE_ENV is not \"test\" (a throwaway benchmark stack only)",
		    NULL);
	if (url == NULL)
		die("BENCH_DATABASE_URL is not set", NULL);
	PGconn *c = PQconnectdb(url);
	if (PQstatus(c) != CONNECTION_OK)
		die("cannot connect", c);
	PGresult *r = query(c, "SELECT current_database()", 0, NULL, PGRES_TUPLES_OK);
	int same = strcmp(PQgetvalue(r, 0, 0), o->database) == 0;
	PQclear(r);
	if (!same)
		die("refusing to run: --database does not name the database BENCH_DATABASE_URL "
		    "connects to",
		    NULL);
	return c;
}

int main(int argc, char **argv)
{
	struct opts o;
	char tag[24];

	parse_opts(argc, argv, &o);
	PGconn *c = connect_bench(&o);
	snprintf(tag, sizeof(tag), "hb-%06lx", (unsigned long)(time(NULL) ^ getpid()) & 0xffffff);
	if (o.host_prefix == NULL)
		o.host_prefix = tag;
	/* The file holds agent tokens. */
	int fd = open(o.tokens, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	FILE *out;
	if (fd < 0 || fchmod(fd, 0600) != 0 || (out = fdopen(fd, "w")) == NULL)
		die("cannot write the tokens file", NULL);
	struct minted *m = calloc((size_t)o.batch, sizeof(*m));
	struct batch b = {0};
	if (m == NULL)
		die("out of memory", NULL);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* Enough uses on the keys together, or nothing is written. */
	long done = 0, total = 0, *rooms = calloc((size_t)o.nkeys, sizeof(*rooms));
	if (rooms == NULL)
		die("out of memory", NULL);
	for (int k = 0; k < o.nkeys; k++)
		total += rooms[k] = key_room(c, o.keys[k]);
	if (total < o.n)
		die("the keys have too few uses left for --agents", NULL);
	for (int k = 0; k < o.nkeys && done < o.n; k++) {
		long room = rooms[k];
		while (room > 0 && done < o.n) {
			long nb = o.n - done < o.batch ? o.n - done : o.batch;
			nb = nb < room ? nb : room;
			enroll_batch(c, &o, o.keys[k], done, nb, m, &b, out);
			done += nb;
			room -= nb;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	free(rooms);
	free(m);
	free(b.ids.p);
	free(b.hosts.p);
	free(b.hashes.p);
	free(b.details.p);
	PQfinish(c);
	if (fclose(out) != 0)
		die("cannot write the tokens file", NULL);
	double el = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("enrolled: %ld agents in %.1f s (%.0f/s); seconds in: mint %.1f, devices %.1f,"
	       " tokens %.1f, addresses %.1f, audit %.1f, commit %.1f\n",
	       done, el, (double)done / el, spent[0], spent[1], spent[2], spent[3], spent[4],
	       spent[5]);
	if (done < o.n)
		die("the keys have too few uses left for --agents", NULL);
	return 0;
}
