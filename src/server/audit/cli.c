/*
 * cli.c — `breeze-server audit …`: verify (database or export file),
 * export, checkpoint, public-key, prune. Verification, export and
 * checkpoints use DATABASE_URL (breeze_app); pruning alone connects as
 * breeze_audit_admin (AUDIT_ADMIN_DATABASE_URL).
 */
#include "server/audit/audit_cli.h"

#include <getopt.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/envfile.h"
#include "common/err.h"
#include "common/iso8601.h"
#include "common/exitcode.h"
#include "common/text.h"
#include "crypto/crypto.h"
#include "server/audit/audit_chain.h"
#include "server/audit/audit_checkpoint.h"
#include "server/audit/audit_internal.h"
#include "server/audit/audit_retention.h"
#include "server/audit/audit_witness.h"
#include "server/config.h"
#include "server/db/db.h"

#define MAX_KEYS 8

struct cli {
	const char *env_file, *org, *partner, *file, *from, *to, *witness;
	const char *keys[MAX_KEYS + 1]; /* + the key derived from AUDIT_SIGNING_KEY */
	size_t n_keys;
	char derived_key[65]; /* public key of AUDIT_SIGNING_KEY, when trusted */
	int all, json, dry_run;
	int older_than_days; /* -1: each chain's configured retention */
	struct config cfg;
};

static void usage(FILE *f)
{
	fputs("usage: breeze-server audit <command> [options]\n"
	      "\n"
	      "  verify [--org ID | --partner ID | --all] [--from T] [--to T] [--json]\n"
	      "         [--public-key HEX]\n"
	      "         [--witness LOGFILE]\n"
	      "         recompute every checksum and link; exit 1 on any break; with\n"
	      "         --witness, also compare with the audit.checkpoint lines of a\n"
	      "         server log (JSON lines; other lines are ignored)\n"
	      "  verify --file EXPORT.jsonl [--public-key HEX] [--json]\n"
	      "         verify an export offline, without a database\n"
	      "  export --org ID | --partner ID\n"
	      "                          the chain as JSON lines on stdout\n"
	      "  checkpoint              sign the head of every chain that moved\n"
	      "  public-key              print the Ed25519 public key of AUDIT_SIGNING_KEY\n"
	      "  prune [--org ID | --partner ID] [--dry-run] [--older-than-days N]\n"
	      "                          retention pruning (AUDIT_ADMIN_DATABASE_URL); N\n"
	      "                          replaces each chain's retention for this run\n"
	      "  help                    this text\n"
	      "\n"
	      "--org ID is an organization id, or \"system\" for the system chain; --partner\n"
	      "ID a partner id (the partner's chain). T is ISO 8601\n"
	      "(2026-01-02, 2026-01-02T03:04:05Z, …): from ≤ ts < to. Every command\n"
	      "accepts --env-file FILE.\n",
	      f);
}

/* Validates --org / --partner (leaving the chain id in c->org) and
 * --public-key. Returns 0 or BZ_ERR_INVALID (said on stderr). */
static int check_chain_and_keys(struct cli *c)
{
	if (c->org != NULL && c->partner != NULL) {
		fprintf(stderr, "breeze-server audit: --org and --partner exclude each other\n");
		return BZ_ERR_INVALID;
	}
	if (c->partner != NULL && !is_uuid(c->partner)) {
		fprintf(stderr, "breeze-server audit: --partner must be a partner id\n");
		return BZ_ERR_INVALID;
	}
	/* A partner chain's id is the partner id: from here on it is a chain
	 * like any other. */
	if (c->partner != NULL)
		c->org = c->partner;
	if (c->org != NULL && !strcmp(c->org, "system"))
		c->org = AUDIT_SYSTEM_CHAIN;
	if (c->org != NULL && !is_uuid(c->org)) {
		fprintf(stderr,
			"breeze-server audit: --org must be an organization id or 'system'\n");
		return BZ_ERR_INVALID;
	}
	for (size_t i = 0; i < c->n_keys; i++) {
		size_t n = strlen(c->keys[i]);
		if (n != 64 || strspn(c->keys[i], "0123456789abcdef") != n) {
			fprintf(stderr,
				"breeze-server audit: --public-key must be 64 lower-case hex "
				"characters\n");
			return BZ_ERR_INVALID;
		}
	}
	return 0;
}

/* --older-than-days: 0–36500 days into *DAYS. Returns 0 or BZ_ERR_INVALID
 * (said on stderr). */
static int parse_days(const char *arg, int *days)
{
	size_t n = strlen(arg);

	if (n == 0 || n > 5 || strspn(arg, "0123456789") != n || atoi(arg) > 36500) {
		fprintf(stderr, "breeze-server audit: --older-than-days must be a number of days, "
				"0-36500\n");
		return BZ_ERR_INVALID;
	}
	*days = atoi(arg);
	return 0;
}

/* One more --public-key (at most MAX_KEYS). Returns 0 or BZ_ERR_INVALID. */
static int add_key(struct cli *c, const char *key)
{
	if (c->n_keys == MAX_KEYS) {
		fprintf(stderr, "breeze-server audit: at most %d --public-key\n", MAX_KEYS);
		return BZ_ERR_INVALID;
	}
	c->keys[c->n_keys++] = key;
	return 0;
}

static int parse(int argc, char **argv, struct cli *c)
{
	static const struct option longopts[] = {
		{"env-file", required_argument, NULL, 'e'},
		{"org", required_argument, NULL, 'o'},
		{"partner", required_argument, NULL, 'p'},
		{"all", no_argument, NULL, 'a'},
		{"from", required_argument, NULL, 'f'},
		{"to", required_argument, NULL, 't'},
		{"json", no_argument, NULL, 'j'},
		{"file", required_argument, NULL, 'F'},
		{"public-key", required_argument, NULL, 'k'},
		{"witness", required_argument, NULL, 'W'},
		{"dry-run", no_argument, NULL, 'n'},
		{"older-than-days", required_argument, NULL, 'd'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int ch;

	optind = 1;
	c->older_than_days = -1;
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'e':
			c->env_file = optarg;
			break;
		case 'o':
			c->org = optarg;
			break;
		case 'p':
			c->partner = optarg;
			break;
		case 'a':
			c->all = 1;
			break;
		case 'f':
			c->from = optarg;
			break;
		case 't':
			c->to = optarg;
			break;
		case 'j':
			c->json = 1;
			break;
		case 'F':
			c->file = optarg;
			break;
		case 'W':
			c->witness = optarg;
			break;
		case 'n':
			c->dry_run = 1;
			break;
		case 'd':
			if (parse_days(optarg, &c->older_than_days) != 0)
				return BZ_ERR_INVALID;
			break;
		case 'k':
			if (add_key(c, optarg) != 0)
				return BZ_ERR_INVALID;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			return BZ_ERR_INVALID;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "breeze-server audit: unexpected argument '%s'\n", argv[optind]);
		return BZ_ERR_INVALID;
	}
	if (check_chain_and_keys(c) != 0)
		return BZ_ERR_INVALID;
	if (c->env_file != NULL &&
	    envfile_load_report(c->env_file, "breeze-server audit", stderr) != 0)
		return BZ_ERR_INVALID;
	return 0;
}

/* Database URLs and retention days; prints each problem (names, never
 * values). */
static int load_config(struct cli *c)
{
	return config_load_report(&c->cfg, CONFIG_FOR_DATABASE, stderr);
}

/* AUDIT_SIGNING_KEY, or NULL when unset or malformed (said on stderr). */
static const char *signing_key(int required)
{
	const char *name = config_secret_name(SECRET_AUDIT_SIGNING_KEY);
	const char *k = getenv(name);

	if (k != NULL && *k == '\0')
		k = NULL;
	if (k != NULL && (strlen(k) != 64 || strspn(k, "0123456789abcdefABCDEF") != 64)) {
		fprintf(stderr, "breeze-server audit: %s must be 64 hex characters\n", name);
		return NULL;
	}
	if (k == NULL && required)
		fprintf(stderr, "breeze-server audit: %s is not set\n", name);
	return k;
}

static PGconn *connect_url(const char *url, const char *name)
{
	PGconn *conn;

	if (url == NULL || *url == '\0') {
		fprintf(stderr, "breeze-server audit: %s is not set\n", name);
		return NULL;
	}
	if ((conn = db_connect(url)) == NULL)
		fprintf(stderr, "breeze-server audit: cannot connect to the database (%s)\n", name);
	return conn;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void print_report(const struct audit_report *rep)
{
	printf("%s%s: %s, %lld rows checked",
	       rep->system    ? "system chain"
	       : rep->partner ? "partner "
			      : "organization ",
	       rep->system ? "" : rep->chain_id, rep->ok ? "ok" : "BROKEN", rep->rows_checked);
	if (!rep->ok)
		printf(", %lld break%s", rep->n_breaks, rep->n_breaks == 1 ? "" : "s");
	if (rep->n_warnings > 0)
		printf(", %lld warning%s", rep->n_warnings, rep->n_warnings == 1 ? "" : "s");
	putchar('\n');
	for (size_t i = 0; i < rep->n_warn_kept; i++) {
		const struct audit_warning *w = &rep->warnings[i];
		printf("  warning %-21s", w->kind);
		if (w->seq >= 0)
			printf(" seq %lld", w->seq);
		printf(": %s\n", w->detail);
	}
	for (size_t i = 0; i < rep->n_kept; i++) {
		const struct audit_break *b = &rep->breaks[i];
		printf("  %-19s", audit_break_kind_name(b->kind));
		if (b->seq >= 0)
			printf(" seq %lld", b->seq);
		if (b->id >= 0)
			printf(" (id %lld)", b->id);
		printf(": %s\n", b->detail);
	}
	if ((long long)rep->n_kept < rep->n_breaks)
		printf("  … %lld more breaks not shown\n", rep->n_breaks - (long long)rep->n_kept);
}

/* Fills OPTS' trusted keys: the --public-key values given (an auditor's
 * own copies, e.g. keys used before a rotation) and AUDIT_SIGNING_KEY's.
 * Only checkpoints signed by one of these count. */
static int trusted_keys(struct cli *c, struct audit_verify_opts *o)
{
	const char *seed = signing_key(0);

	if (seed != NULL) {
		if (audit_public_key_hex(seed, c->derived_key) != 0) {
			fprintf(stderr, "breeze-server audit: cannot derive the public key\n");
			return BZ_ERR_CRYPTO;
		}
		c->keys[c->n_keys++] = c->derived_key;
	}
	if (c->n_keys == 0)
		fprintf(stderr, "breeze-server audit: warning: no public key (--public-key or "
				"AUDIT_SIGNING_KEY): signatures of checkpoints and anchors are not "
				"checked\n");
	o->public_keys = c->keys;
	o->n_public_keys = c->n_keys;
	return 0;
}

static int verify_file(struct cli *c, struct audit_verify_opts *o)
{
	struct audit_report rep;
	char err[200] = "";
	FILE *f = strcmp(c->file, "-") ? fopen(c->file, "r") : stdin;

	if (c->from || c->to || c->org || c->all) {
		fprintf(stderr,
			"breeze-server audit: --file takes no --org/--partner/--all/--from/--to\n");
		if (f != NULL && f != stdin)
			fclose(f);
		return 2;
	}
	if (f == NULL) {
		fprintf(stderr, "breeze-server audit: cannot open %s\n", c->file);
		return 1;
	}
	/* Without a trusted key anyone could have re-sealed the rows: an
	 * export is only verified against a public key. */
	if (o->n_public_keys == 0) {
		fprintf(stderr, "breeze-server audit: verifying an export needs --public-key HEX "
				"(or AUDIT_SIGNING_KEY through --env-file)\n");
		if (f != stdin)
			fclose(f);
		return 2;
	}
	int rc = audit_verify_file(f, o, &rep, err, sizeof(err));
	if (f != stdin)
		fclose(f);
	if (rc != 0) {
		fprintf(stderr, "breeze-server audit: %s: %s\n", c->file,
			err[0] ? err : "verification failed");
		audit_report_free(&rep);
		return 1;
	}
	if (c->json) {
		json_t *chains = json_array();
		json_array_append_new(chains, audit_report_json(&rep));
		json_t *out = json_pack("{s:b,s:o}", "ok", rep.ok, "chains", chains);
		json_dumpf(out, stdout, JSON_COMPACT);
		putchar('\n');
		json_decref(out);
	} else {
		print_report(&rep);
	}
	int ok = rep.ok;
	audit_report_free(&rep);
	return ok ? 0 : 1;
}

/* The chains `verify` checks: the one of --org/--partner (which must be
 * known: a mistyped id is no intact empty chain), or every chain. *IDS is
 * malloc'd (the caller frees it, also on error). Returns 0, BZ_ERR_NOMEM,
 * BZ_ERR_DB or BZ_ERR_NOT_FOUND (said on stderr). */
static int chains_to_verify(const struct cli *c, PGconn *conn, char (**ids)[37], size_t *n)
{
	if (c->org != NULL) {
		int known = 0;
		if ((*ids = calloc(1, sizeof(**ids))) == NULL)
			return BZ_ERR_NOMEM;
		snprintf((*ids)[0], 37, "%s", c->org);
		audit_id_lower((*ids)[0], (*ids)[0]);
		*n = 1;
		if (audit_chain_known(conn, (*ids)[0], &known) != 0)
			return BZ_ERR_DB;
		if (!known) {
			fprintf(stderr,
				"breeze-server audit: %s is no organization, partner or audit "
				"chain\n",
				(*ids)[0]);
			return BZ_ERR_NOT_FOUND;
		}
	} else if (audit_chain_list(conn, ids, n) != 0) {
		fprintf(stderr, "breeze-server audit: cannot list the chains\n");
		return BZ_ERR_DB;
	}
	return 0;
}

/* Reads --witness into W. Returns 0, or an exit status (said on stderr). */
static int load_witness(const struct cli *c, const struct audit_verify_opts *o,
			struct audit_witness *w)
{
	FILE *f;
	int rc;

	memset(w, 0, sizeof(*w));
	if (c->witness == NULL)
		return 0;
	/* A witness line is believed only when a trusted key signed it: the
	 * log is no more trustworthy than the database without one. */
	if (o->n_public_keys == 0) {
		fprintf(stderr, "breeze-server audit: --witness needs --public-key HEX (or "
				"AUDIT_SIGNING_KEY through --env-file)\n");
		return 2;
	}
	if ((f = fopen(c->witness, "r")) == NULL) {
		fprintf(stderr, "breeze-server audit: cannot open %s\n", c->witness);
		return 1;
	}
	rc = audit_witness_read(f, w);
	fclose(f);
	if (rc != 0) {
		fprintf(stderr, "breeze-server audit: cannot read %s\n", c->witness);
		return 1;
	}
	if (w->n_bad > 0)
		fprintf(stderr,
			"breeze-server audit: warning: %s: %zu malformed audit.checkpoint "
			"line%s ignored\n",
			c->witness, w->n_bad, w->n_bad == 1 ? "" : "s");
	if (w->n == 0)
		fprintf(stderr, "breeze-server audit: warning: %s holds no audit.checkpoint line\n",
			c->witness);
	return 0;
}

/* With every chain to check (no --org), the chains the witness names are
 * checked too, even when the database no longer knows them at all. */
static int add_witness_chains(const struct audit_witness *w, char (**ids)[37], size_t *n)
{
	for (size_t i = 0; i < w->n; i++) {
		size_t j;
		for (j = 0; j < *n && strcmp((*ids)[j], w->cps[i].chain_id) != 0; j++)
			;
		if (j < *n)
			continue;
		char(*more)[37] = realloc(*ids, (*n + 1) * sizeof(**ids));
		if (more == NULL)
			return BZ_ERR_NOMEM;
		*ids = more;
		memcpy((*ids)[(*n)++], w->cps[i].chain_id, 37);
	}
	return 0;
}

static int cmd_verify(struct cli *c)
{
	struct audit_verify_opts o = {0};
	char(*ids)[37] = NULL;
	size_t n = 0;
	int rc = 1, all_ok = 1;
	long long rows = 0;

	struct audit_witness w;

	if (trusted_keys(c, &o) != 0)
		return 1;
	if (c->file != NULL && c->witness != NULL) {
		fprintf(stderr, "breeze-server audit: --file and --witness exclude each other\n");
		return 2;
	}
	if (c->file != NULL)
		return verify_file(c, &o);
	if (c->org && c->all) {
		fprintf(stderr,
			"breeze-server audit: --org/--partner and --all exclude each other\n");
		return 2;
	}
	if ((c->from && iso8601_parse_us(c->from, &o.from_us) != 0) ||
	    (c->to && iso8601_parse_us(c->to, &o.to_us) != 0)) {
		fprintf(stderr, "breeze-server audit: --%s must be an ISO 8601 time\n",
			c->from && iso8601_parse_us(c->from, &o.from_us) != 0 ? "from" : "to");
		return 2;
	}
	o.has_from = c->from != NULL;
	o.has_to = c->to != NULL;
	if ((rc = load_witness(c, &o, &w)) != 0)
		return rc;
	rc = 1;
	o.witness = c->witness != NULL ? &w : NULL;
	if (load_config(c) != 0) {
		audit_witness_free(&w);
		return BZ_EXIT_CONFIG;
	}
	PGconn *conn = connect_url(c->cfg.database_url, "DATABASE_URL");
	if (conn == NULL) {
		audit_witness_free(&w);
		return BZ_EXIT_UNAVAILABLE;
	}
	if (chains_to_verify(c, conn, &ids, &n) != 0 ||
	    (c->org == NULL && add_witness_chains(&w, &ids, &n) != 0))
		goto out;
	json_t *chains = json_array();
	double t0 = now_s();
	for (size_t i = 0; i < n; i++) {
		struct audit_report rep;
		audit_id_lower(ids[i], ids[i]);
		int err = audit_verify_chain(conn, ids[i], &o, &rep);
		if (err != 0) {
			fprintf(stderr,
				"breeze-server audit: verification of chain %s failed (%s)\n",
				ids[i], err == BZ_ERR_DB ? "database error" : "internal error");
			audit_report_free(&rep);
			json_decref(chains);
			goto out;
		}
		rows += rep.rows_checked;
		all_ok &= rep.ok;
		if (c->json)
			json_array_append_new(chains, audit_report_json(&rep));
		else
			print_report(&rep);
		audit_report_free(&rep);
	}
	double dt = now_s() - t0;
	if (c->json) {
		json_t *out = json_pack("{s:b,s:o}", "ok", all_ok, "chains", chains);
		json_dumpf(out, stdout, JSON_COMPACT);
		putchar('\n');
		json_decref(out);
	} else {
		json_decref(chains);
		printf("audit verify: %s — %zu chain%s, %lld rows in %.3f s (%.0f rows/s)\n",
		       all_ok ? "ok" : "BREAKS FOUND", n, n == 1 ? "" : "s", rows, dt,
		       dt > 0 ? (double)rows / dt : 0.0);
	}
	rc = all_ok ? 0 : 1;
out:
	free(ids);
	audit_witness_free(&w);
	PQfinish(conn);
	return rc;
}

static int cmd_export(struct cli *c)
{
	if (c->org == NULL) {
		fprintf(stderr, "breeze-server audit: export needs --org ID, --org system or "
				"--partner ID\n");
		return 2;
	}
	if (load_config(c) != 0)
		return BZ_EXIT_CONFIG;
	PGconn *conn = connect_url(c->cfg.database_url, "DATABASE_URL");
	if (conn == NULL)
		return BZ_EXIT_UNAVAILABLE;
	char org[37];
	audit_id_lower(org, c->org);
	const char *seed = signing_key(0);
	if (seed == NULL)
		fprintf(stderr, "breeze-server audit: warning: no AUDIT_SIGNING_KEY: the export is "
				"not sealed and will not verify offline\n");
	int rc = audit_export(conn, org, seed, stdout);
	PQfinish(conn);
	if (rc != 0) {
		fprintf(stderr, "breeze-server audit: export failed (%s)\n",
			rc == BZ_ERR_IO ? "write error" : "database error");
		return 1;
	}
	return 0;
}

static int cmd_checkpoint(struct cli *c)
{
	int written = 0;

	if (load_config(c) != 0)
		return BZ_EXIT_CONFIG;
	const char *seed = signing_key(1);
	if (seed == NULL)
		return 1;
	PGconn *conn = connect_url(c->cfg.database_url, "DATABASE_URL");
	if (conn == NULL)
		return BZ_EXIT_UNAVAILABLE;
	int rc = audit_checkpoint_all(conn, seed, &written);
	PQfinish(conn);
	if (rc != 0) {
		fprintf(stderr, "breeze-server audit: checkpoint failed\n");
		return 1;
	}
	printf("checkpoints written: %d\n", written);
	return 0;
}

static int cmd_public_key(void)
{
	char pub[65];
	const char *seed = signing_key(1);

	if (seed == NULL)
		return 1;
	if (audit_public_key_hex(seed, pub) != 0) {
		fprintf(stderr, "breeze-server audit: cannot derive the public key\n");
		return 1;
	}
	printf("%s\n", pub);
	return 0;
}

static int cmd_prune(struct cli *c)
{
	long long pruned = 0;

	if (load_config(c) != 0)
		return BZ_EXIT_CONFIG;
	/* Pruning everything but the heads is for tests, never production. */
	if (c->older_than_days == 0 && c->cfg.env == BREEZE_ENV_PRODUCTION) {
		fprintf(stderr,
			"breeze-server audit: --older-than-days 0 is refused in production\n");
		return 2;
	}
	PGconn *conn = connect_url(c->cfg.audit_admin_database_url, "AUDIT_ADMIN_DATABASE_URL");
	if (conn == NULL)
		return BZ_EXIT_UNAVAILABLE;
	const char *seed = signing_key(0);
	const char *set = getenv(config_secret_name(SECRET_AUDIT_SIGNING_KEY));
	if (seed == NULL && set != NULL && *set != '\0') {
		PQfinish(conn);
		return 1; /* malformed key: said above; never write unsigned anchors by mistake */
	}
	int rc = c->older_than_days >= 0
			 ? audit_retention_run_older_than(conn, c->org, c->older_than_days, seed,
							  c->dry_run, stdout, &pruned)
			 : audit_retention_run(conn, c->org, c->cfg.audit_retention_days, seed,
					       c->dry_run, stdout, &pruned);
	PQfinish(conn);
	if (rc != 0) {
		fprintf(stderr, "breeze-server audit: prune failed\n");
		return 1;
	}
	printf("%s: %lld\n", c->dry_run ? "rows that would be pruned" : "rows pruned", pruned);
	return 0;
}

int audit_cli_main(int argc, char **argv)
{
	struct cli c;

	memset(&c, 0, sizeof(c));
	if (argc < 2) {
		usage(stderr);
		return BZ_EXIT_USAGE;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
		usage(stdout);
		return BZ_EXIT_OK;
	}
	if (parse(argc - 1, argv + 1, &c) != 0) {
		usage(stderr);
		return BZ_EXIT_USAGE;
	}
	/* Verification and export stream large result batches: keep freed
	 * memory in the process instead of handing it back to the kernel after
	 * every batch (a third of the CPU time otherwise goes to page faults). */
	mallopt(M_TRIM_THRESHOLD, 256 << 20);
	mallopt(M_MMAP_THRESHOLD, 64 << 20);
	if (!strcmp(cmd, "verify"))
		return cmd_verify(&c);
	if (!strcmp(cmd, "export"))
		return cmd_export(&c);
	if (!strcmp(cmd, "checkpoint"))
		return cmd_checkpoint(&c);
	if (!strcmp(cmd, "public-key"))
		return cmd_public_key();
	if (!strcmp(cmd, "prune"))
		return cmd_prune(&c);
	fprintf(stderr, "breeze-server audit: unknown command '%s'\n", cmd);
	usage(stderr);
	return BZ_EXIT_USAGE;
}
