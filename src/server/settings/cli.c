/*
 * cli.c — `breeze-server rotate-encryption-key [--dry-run] [--batch N]
 * [--max-batches N] [--env-file FILE]` (settings.h, docs/encryption.md).
 * Reads the same configuration as serve (APP_ENCRYPTION_KEY, _KEY_ID,
 * _KEYRING, DATABASE_URL) and works as breeze_app, beside running servers.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/envfile.h"
#include "common/exitcode.h"
#include "server/db/db.h"
#include "server/settings/settings.h"

static const char usage_text[] =
	"usage: breeze-server rotate-encryption-key [--dry-run] [--batch N] [--max-batches N]\n"
	"                                           [--env-file FILE]\n"
	"\n"
	"Re-encrypts every encrypted value (partner and site settings, webhook secrets)\n"
	"that is not under the active key APP_ENCRYPTION_KEY (named APP_ENCRYPTION_KEY_ID),\n"
	"opening old values with the keys of APP_ENCRYPTION_KEYRING. Works in batches of N\n"
	"rows (default 100), one transaction each, while servers keep serving; a rerun\n"
	"continues where a stopped run ended. --max-batches stops after N batches.\n"
	"--dry-run counts the values per table, column and key and changes nothing.\n"
	"Also prints the encryptions counted per key (NIST SP 800-38D: at most 2^32\n"
	"per key; a warning from 2^31).\n"
	"\n"
	"exit status: 0 done, 1 values left (undecryptable or --max-batches reached),\n"
	"2 usage, 3 configuration, 4 database unavailable.\n";

struct rot_cli {
	const char *env_file;
	struct settings_rotate_opts o;
};

/* A decimal in [MIN, MAX] from S into OUT. */
static int parse_int(const char *s, int min, int max, int *out)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (*s == '\0' || *end != '\0' || v < min || v > max)
		return BZ_ERR_INVALID;
	*out = (int)v;
	return 0;
}

static int parse_args(int argc, char **argv, struct rot_cli *c)
{
	static const struct option longopts[] = {
		{"env-file", required_argument, NULL, 'e'},
		{"dry-run", no_argument, NULL, 'd'},
		{"batch", required_argument, NULL, 'b'},
		{"max-batches", required_argument, NULL, 'm'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int ch;

	memset(c, 0, sizeof(*c));
	c->o.batch = 100;
	c->o.out = stdout;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (ch == 'e')
			c->env_file = optarg;
		else if (ch == 'd')
			c->o.dry_run = 1;
		else if (ch == 'b' && parse_int(optarg, 1, 10000, &c->o.batch) == 0)
			continue;
		else if (ch == 'm' && parse_int(optarg, 1, 1000000, &c->o.max_batches) == 0)
			continue;
		else if (ch == 'h') {
			fputs(usage_text, stdout);
			exit(BZ_EXIT_OK);
		} else
			return BZ_EXIT_USAGE;
	}
	if (optind != argc) {
		fprintf(stderr, "breeze-server: unexpected argument '%s'\n", argv[optind]);
		return BZ_EXIT_USAGE;
	}
	return BZ_EXIT_OK;
}

/* Connects and runs the rotation (or the dry run) with KR. */
static int run(const struct config *cfg, const struct crypto_keyring *kr, struct rot_cli *c)
{
	PGconn *conn = db_connect(cfg->database_url);
	int rc;

	if (conn == NULL) {
		fprintf(stderr, "breeze-server: cannot connect to the database\n");
		return BZ_EXIT_UNAVAILABLE;
	}
	fprintf(c->o.out, "rotate-encryption-key: active key %s, %zu previous key(s)%s\n",
		kr->k[0].id, kr->n - 1, c->o.dry_run ? " (dry run: nothing is changed)" : "");
	rc = settings_rotate(conn, kr, &c->o);
	if (rc != BZ_ERR_DB && settings_key_usage_check(conn, c->o.out) < 0)
		rc = BZ_ERR_DB;
	PQfinish(conn);
	if (rc == BZ_ERR_DB) {
		fprintf(stderr, "breeze-server: database error (see log)\n");
		return BZ_EXIT_UNAVAILABLE;
	}
	return rc == 0 ? BZ_EXIT_OK : BZ_EXIT_FAILURE;
}

int settings_cli_main(int argc, char **argv)
{
	struct crypto_keyring kr;
	struct rot_cli c;
	struct config cfg;
	int rc;

	if ((rc = parse_args(argc, argv, &c)) != BZ_EXIT_OK) {
		fputs(usage_text, stderr);
		return rc;
	}
	if (c.env_file != NULL && envfile_load_report(c.env_file, "breeze-server", stderr) != 0)
		return BZ_EXIT_CONFIG;
	if (config_load_report(&cfg, CONFIG_FOR_SERVE, stderr) != 0)
		return BZ_EXIT_CONFIG;
	if (settings_keyring(&cfg, &kr, NULL) != 0) {
		fprintf(stderr, "breeze-server: config error: APP_ENCRYPTION_KEY: required\n");
		return BZ_EXIT_CONFIG;
	}
	rc = run(&cfg, &kr, &c);
	crypto_keyring_wipe(&kr);
	return rc;
}
