/*
 * cli.c — `breeze-server check [--env-file FILE] [--compose FILE]
 * [--caddyfile FILE] [--repo DIR] [--live] [--tls-target HOST:PORT]
 * [--json]`: runs the parts that the options ask for and prints one row
 * per checklist item.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/envfile.h"
#include "common/exitcode.h"
#include "server/check/check.h"
#include "server/check/check_internal.h"

static void usage(FILE *f)
{
	fputs("usage: breeze-server check [--env-file FILE] [--compose FILE] [--caddyfile FILE]\n"
	      "                           [--repo DIR] [--live] [--tls-target HOST:PORT] [--json]\n"
	      "\n"
	      "Judges a deployment against the production security checklist\n"
	      "(docs/security-checklist.md): one row per item, PASS, FAIL, WARN or MANUAL\n"
	      "(what to check by hand), with a reason that names the file, variable or\n"
	      "setting and never a secret's value. The configuration (the environment,\n"
	      "after --env-file) is judged by production's rules whatever BREEZE_ENV says.\n"
	      "\n"
	      "  --env-file FILE    the production env file: also its mode, owner and git\n"
	      "                     status (S2, S3)\n"
	      "  --compose FILE     the compose file (K1-K5, N1-N5)\n"
	      "  --caddyfile FILE   the Caddyfile (N8-N10, M1, G8)\n"
	      "  --repo DIR         the source tree or install: shipped files (M2, M4) and\n"
	      "                     the work tree for S3\n"
	      "  --live             also the running services and this host: PostgreSQL,\n"
	      "                     Redis, the database's contents, listening sockets,\n"
	      "                     sshd, the firewall, the certificate on 443\n"
	      "  --tls-target H:P   where --live fetches the certificate (default\n"
	      "                     BREEZE_DOMAIN:443)\n"
	      "  --json             one JSON document instead of the table\n"
	      "\n"
	      "exit status: 0 no FAIL, 1 at least one FAIL (or a configuration error),\n"
	      "2 usage.\n",
	      f);
}

/* Parses ARGV into CTX. Returns BZ_EXIT_OK, or BZ_EXIT_USAGE after saying
 * why; --help prints the usage and returns -1. */
static int parse(int argc, char **argv, struct check_ctx *ctx)
{
	static const struct option longopts[] = {
		{"env-file", required_argument, NULL, 'e'},
		{"compose", required_argument, NULL, 'c'},
		{"caddyfile", required_argument, NULL, 'y'},
		{"repo", required_argument, NULL, 'r'},
		{"live", no_argument, NULL, 'l'},
		{"json", no_argument, NULL, 'j'},
		{"tls-target", required_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int ch;

	optind = 1;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'e':
			ctx->env_file = optarg;
			break;
		case 'c':
			ctx->compose = optarg;
			break;
		case 'y':
			ctx->caddyfile = optarg;
			break;
		case 'r':
			ctx->repo = optarg;
			break;
		case 'l':
			ctx->live = 1;
			break;
		case 'j':
			ctx->json = 1;
			break;
		case 't':
			ctx->tls_target = optarg;
			break;
		case 'h':
			usage(stdout);
			return -1;
		default:
			fprintf(stderr, "breeze-server check: unknown or incomplete option '%s'\n",
				argv[optind - 1]);
			usage(stderr);
			return BZ_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "breeze-server check: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return BZ_EXIT_USAGE;
	}
	return BZ_EXIT_OK;
}

int check_cli_main(int argc, char **argv)
{
	struct check_ctx *ctx = calloc(1, sizeof(*ctx));
	int rc;

	if (ctx == NULL)
		return BZ_EXIT_FAILURE;
	if ((rc = parse(argc, argv, ctx)) != BZ_EXIT_OK) {
		free(ctx);
		return rc < 0 ? BZ_EXIT_OK : rc;
	}
	check_report_init(&ctx->rep);
	if (ctx->env_file != NULL &&
	    envfile_load_report(ctx->env_file, "breeze-server check", stderr) != 0) {
		free(ctx);
		return BZ_EXIT_FAILURE;
	}
	int config_errors = check_env(ctx) != 0;
	check_env_file(ctx);
	check_compose(ctx);
	check_caddyfile(ctx);
	check_repo_files(ctx);
	if (ctx->live) {
		check_live_db(ctx);
		check_live_redis(ctx);
		check_live_host(ctx);
	}
	check_report_defaults(&ctx->rep);
	size_t fails = check_report_print(&ctx->rep, ctx->json, ctx->env_name);
	json_decref(ctx->compose_doc);
	free(ctx->caddy_text);
	free(ctx);
	return fails > 0 || config_errors ? BZ_EXIT_FAILURE : BZ_EXIT_OK;
}
