/*
 * check_internal.h — shared by the parts of `breeze-server check`: the
 * report (report.c), the env file and configuration (env.c), the
 * deployment files (files.c, compose.c, caddy.c) and the live services
 * (live.c, live_db.c).
 */
#ifndef BZ_CHECK_INTERNAL_H
#define BZ_CHECK_INTERNAL_H

#include <jansson.h>
#include <stddef.h>

#include "server/config.h"

/* Worst first when rows are merged: a row's result is the worst of what
 * every part said about the item. */
enum check_result {
	CHECK_PASS,
	CHECK_MANUAL, /* not decidable from here: the reason says what to check */
	CHECK_WARN,
	CHECK_FAIL,
};

#define CHECK_ID_LEN 4
#define CHECK_REASON_LEN 1024

struct check_row {
	char id[CHECK_ID_LEN];
	enum check_result result;
	int judged; /* 0 until a part said something */
	char reason[CHECK_REASON_LEN];
};

/* One row per checklist item, in the checklist's order. */
#define CHECK_MAX_ROWS 64

struct check_report {
	struct check_row rows[CHECK_MAX_ROWS];
	size_t n;
};

struct check_ctx {
	const char *env_file;	/* --env-file, or NULL */
	const char *compose;	/* --compose, or NULL */
	const char *caddyfile;	/* --caddyfile, or NULL */
	const char *repo;	/* --repo, or NULL */
	const char *tls_target; /* --tls-target HOST:PORT, or NULL (BREEZE_DOMAIN:443) */
	int live, json;
	struct config cfg;
	struct config_problems probs;
	int cfg_loaded;	     /* config_load() ran (the rows from it are valid) */
	char env_name[16];   /* BREEZE_ENV as given ("development" when unset) */
	json_t *compose_doc; /* the parsed compose file, or NULL */
	char *caddy_text;    /* the Caddyfile, NUL-terminated, or NULL */
	struct check_report rep;
};

/* Fills REP with every checklist item, unjudged. */
void check_report_init(struct check_report *rep);

/*
 * Records what one part found about item ID: the row's result becomes the
 * worse of its current one and RES, and the printf-style reason is
 * appended ("; " between parts; truncated at CHECK_REASON_LEN). A reason
 * names files, variables and settings, never a secret's value. Unknown
 * IDs are a programming error (abort in debug builds, ignored otherwise).
 */
void check_add(struct check_report *rep, const char *id, enum check_result res, const char *fmt,
	       ...) __attribute__((format(printf, 4, 5)));

/* Gives every row no part judged its default: PASS with the way this
 * version enforces the item, or MANUAL with what to check by hand. */
void check_report_defaults(struct check_report *rep);

/* Prints REP to stdout as a table or (JSON) one JSON document. Returns the
 * number of FAIL rows. */
size_t check_report_print(const struct check_report *rep, int json, const char *env_name);

/* The parts. Each adds rows to CTX->rep and returns 0, or a negative
 * bz_err after saying why on stderr when it could not run at all. */
int check_env(struct check_ctx *ctx);
int check_env_file(struct check_ctx *ctx);
int check_compose(struct check_ctx *ctx);
int check_caddyfile(struct check_ctx *ctx);
int check_repo_files(struct check_ctx *ctx);
int check_live_host(struct check_ctx *ctx);
int check_live_db(struct check_ctx *ctx);
int check_live_redis(struct check_ctx *ctx);

/* Parses the YAML file PATH (its first document) into a JSON value (new
 * reference in *OUT): mappings become objects, sequences arrays, scalars
 * strings (tags and anchors are not resolved; an alias is refused).
 * Returns 0, BZ_ERR_IO or BZ_ERR_INVALID (ERR, ERRLEN bytes, says where). */
int check_yaml_load(const char *path, json_t **out, char *err, size_t errlen);

/* A scalar member KEY of OBJ as a string ("" if absent or not a scalar). */
const char *check_json_str(json_t *obj, const char *key);

/*
 * Compose's interpolation of IN into OUT (OUTLEN bytes): "$$" is "$",
 * ${V:-D} and ${V-D} become their default D (what compose uses when V is
 * unset), every other reference (${V}, ${V:?…}, ${V?…}, ${V:+…}, $V)
 * becomes PLACEHOLDER. Returns -1 when unreadable or too long, else flags:
 * CHECK_INTERP_VAR when a placeholder was put in, CHECK_INTERP_MAYBE_EMPTY
 * when such a variable may be empty (anything but ${V:?…}).
 */
#define CHECK_INTERP_VAR 1
#define CHECK_INTERP_MAYBE_EMPTY 2
int check_interp(const char *in, char *out, size_t outlen, const char *placeholder);

/* Compose service NAME's items K1–K5 (services.NAME = SVC): each finding
 * is a row and sets BAD[k] (BAD has 6 entries, K1 = BAD[1]). */
void check_compose_service(struct check_ctx *ctx, const char *name, json_t *svc, int *bad);

/* K2's host access of service NAME: pid/ipc/uts/cgroup/userns_mode host,
 * devices, binds of the Docker socket or host system directories. Adds a
 * FAIL row per finding; returns 1 when there was one, else 0. */
int check_compose_host_access(struct check_ctx *ctx, const char *name, json_t *svc);

/* Runs ARGV (argv[0] looked up in PATH; no shell) with stdin from
 * /dev/null, stdout into OUT (OUTLEN bytes, NUL-terminated, truncated)
 * and stderr discarded, for at most TIMEOUT_S seconds. Returns the exit
 * status (0..255), or -1 when it could not run, was killed or timed out. */
int check_run(const char *const argv[], char *out, size_t outlen, int timeout_s);

/* check_run() with the environment ENVP (NULL-terminated "K=V" strings)
 * instead of this process's. */
int check_run_env(const char *const argv[], const char *const envp[], char *out, size_t outlen,
		  int timeout_s);

/* N8, N9, N10 and M1 from the JSON `caddy adapt` makes of the Caddyfile
 * (with BREEZE_DOMAIN and ACME_EMAIL set to markers, so the site and the
 * e-mail are known to come from {$BREEZE_DOMAIN} and {$ACME_EMAIL}).
 * Returns 0 when it judged them, 1 when no caddy binary could be run (the
 * caller judges the text only). */
int check_caddy_adapt(struct check_ctx *ctx);

#endif
