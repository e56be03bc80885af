/*
 * breeze-agent — enroll this host with a Breeze server, then heartbeat.
 *
 * Subcommands: enroll, run, status, version, help; `COMMAND --help` for each.
 * Logs are JSON lines on stderr; only the human answers of `enroll`,
 * `status`, `version` and the help texts go to stdout. The auth token is
 * never printed or logged. Exit statuses: common/exitcode.h.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "agent/client.h"
#include "agent/config.h"
#include "agent/files.h"
#include "agent/inventory.h"
#include "agent/loop.h"
#include "common/clock.h"
#include "common/exitcode.h"
#include "common/log.h"

/* Per-command usage. Printed on stdout for --help (exit 0), on stderr
 * after a usage error (exit BZ_EXIT_USAGE). */
static const char usage_enroll[] =
	"usage: breeze-agent enroll --server URL [--key KEY] [--secret SECRET] [--force]\n"
	"                           [--config-dir DIR]\n"
	"\n"
	"Enrols this host with a Breeze server and writes DIR/agent.yaml and\n"
	"DIR/secrets.yaml.\n"
	"\n"
	"  --server URL      the server's base URL (https outside development)\n"
	"  --key KEY         enrolment key; default $BREEZE_ENROLLMENT_KEY\n"
	"  --secret SECRET   shared enrolment secret; default $BREEZE_ENROLLMENT_SECRET\n"
	"                    (prefer the environment: arguments are visible to other\n"
	"                    users in ps)\n"
	"  --force           enrol again although DIR is already enrolled, replacing\n"
	"                    that device's token (it says which device it replaces);\n"
	"                    stop a running `breeze-agent run` on DIR first\n"
	"  --config-dir DIR  default " AGENT_CONFIG_DEFAULT_DIR "\n"
	"\n"
	"exit status: 0 enrolled, 2 usage, 3 config dir unusable or unsafe, 4 server\n"
	"unreachable or busy, 5 already enrolled (no --force), 6 key or secret\n"
	"rejected, 1 other.\n";

static const char usage_run[] =
	"usage: breeze-agent run [--config-dir DIR]\n"
	"\n"
	"Sends heartbeats with this host's inventory and metrics until stopped;\n"
	"records the last accepted one in DIR/" AGENT_STATE_FILE ".\n"
	"\n"
	"  --config-dir DIR  default " AGENT_CONFIG_DEFAULT_DIR "\n"
	"\n"
	"Every command refuses (exit 3) a config directory or file that another user\n"
	"could change, a symlinked agent.yaml or secrets.yaml, and a secrets.yaml\n"
	"others can read, saying how to fix it.\n"
	"\n"
	"exit status: 0 on SIGTERM/SIGINT, 2 usage, 3 not enrolled or unsafe files,\n"
	"6 token rejected (re-enrol), 7 device disabled or deleted, 1 other.\n";

static const char usage_status[] =
	"usage: breeze-agent status [--config-dir DIR]\n"
	"\n"
	"Shows the enrolment, the permissions of the secrets file and the time of\n"
	"the last heartbeat the server accepted. Never shows the token.\n"
	"\n"
	"  --config-dir DIR  default " AGENT_CONFIG_DEFAULT_DIR "\n"
	"\n"
	"exit status: 0 enrolled and usable, 2 usage, 3 not enrolled or unsafe files.\n";

static const char usage_version[] = "usage: breeze-agent version\n\nPrints the version.\n";

static const char usage_help[] =
	"usage: breeze-agent help [COMMAND]\n\nPrints the usage of breeze-agent or of COMMAND.\n";

static void usage(FILE *f)
{
	fputs("usage: breeze-agent enroll --server URL [--key KEY] [--secret SECRET] [--force]\n"
	      "                           [--config-dir DIR]\n"
	      "       breeze-agent run [--config-dir DIR]\n"
	      "       breeze-agent status [--config-dir DIR]\n"
	      "       breeze-agent version | help [COMMAND]\n"
	      "\n"
	      "`breeze-agent COMMAND --help` describes one command. --config-dir defaults\n"
	      "to " AGENT_CONFIG_DEFAULT_DIR ".\n"
	      "\n"
	      "exit status: 0 ok, 1 failure, 2 usage, 3 configuration, 4 server unavailable,\n"
	      "5 refused (already enrolled), 6 credentials rejected, 7 device disabled.\n",
	      f);
}

struct opts {
	const char *server;
	const char *key;
	const char *secret;
	const char *dir;
	int force;
};

/* Parses the options after the subcommand (ARGV[0]). ALLOW_ENROLL enables
 * the enrolment options; USAGE is the command's own text. Returns 0 to go
 * on, 1 when --help was answered on stdout, or -EINVAL after printing the
 * problem on stderr. */
static int parse_opts(int argc, char **argv, int allow_enroll, const char *usage_text,
		      struct opts *o)
{
	static const struct option longopts[] = {
		{"server", required_argument, NULL, 's'},
		{"key", required_argument, NULL, 'k'},
		{"secret", required_argument, NULL, 'S'},
		{"force", no_argument, NULL, 'f'},
		{"config-dir", required_argument, NULL, 'c'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int ch;

	memset(o, 0, sizeof(*o));
	o->dir = AGENT_CONFIG_DEFAULT_DIR;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			o->dir = optarg;
			break;
		case 's':
		case 'k':
		case 'S':
		case 'f':
			if (!allow_enroll) {
				fprintf(stderr, "breeze-agent %s: option not allowed here\n",
					argv[0]);
				fputs(usage_text, stderr);
				return -EINVAL;
			}
			if (ch == 's')
				o->server = optarg;
			else if (ch == 'k')
				o->key = optarg;
			else if (ch == 'S')
				o->secret = optarg;
			else
				o->force = 1;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 1;
		default:
			fputs(usage_text, stderr);
			return -EINVAL;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "breeze-agent %s: unexpected argument '%s'\n", argv[0],
			argv[optind]);
		return -EINVAL;
	}
	if (o->dir[0] == '\0') {
		fprintf(stderr, "breeze-agent: --config-dir must not be empty\n");
		return -EINVAL;
	}
	return 0;
}

/* Writes VALUE to F. VALUE may come from the server or a file, so control
 * characters are shown as \xNN instead of reaching the terminal. */
static void put_escaped(FILE *f, const char *value)
{
	for (const unsigned char *p = (const unsigned char *)(value ? value : "-"); *p != '\0';
	     p++) {
		if (*p < 0x20 || *p == 0x7f)
			fprintf(f, "\\x%02x", *p);
		else
			putc(*p, f);
	}
}

/*
 * The start-up check of every command that reads the config directory
 * (files.h, checklist G3): refuses a DIR or file someone else could have
 * changed, logging what is wrong and the command that fixes it, one line per
 * problem (and on HUMAN too when not NULL: `status`). A DIR the agent owns
 * whose mode only lets others read or search it is tightened to 0750 and
 * that is logged. A missing DIR is left to the command (enroll creates it;
 * run and status say the agent is not enrolled). Returns BZ_EXIT_OK to go on
 * or BZ_EXIT_CONFIG.
 */
static int check_files(const char *dir, FILE *human)
{
	struct agent_files_report r;
	char what[PATH_MAX + 256], fix[4 * PATH_MAX + 256], from[8], to[8];
	int rc = agent_files_check(dir, &r);

	if (r.tightened) {
		snprintf(from, sizeof(from), "%04o", (unsigned)r.old_mode);
		snprintf(to, sizeof(to), "%04o", (unsigned)r.new_mode);
		log_warn("agent.config_dir_tightened", "configDir", dir, "from", from, "to", to,
			 "reason", "others could read or search the agent's config directory",
			 NULL);
	}
	if (rc != -EPERM)
		return BZ_EXIT_OK;
	for (size_t i = 0; i < r.n; i++) {
		agent_files_describe(&r.problems[i], what, sizeof(what));
		agent_files_fix(&r.problems[i], fix, sizeof(fix));
		log_error("agent.files_refused", "path", r.problems[i].path, "error", what, "fix",
			  fix, NULL);
		if (human != NULL) {
			fputs("files:      NOT OK: ", human);
			put_escaped(human, what);
			fputs("\n            fix: ", human);
			put_escaped(human, fix);
			putc('\n', human);
		}
	}
	return BZ_EXIT_CONFIG;
}

/* Is DIR already enrolled (secrets.yaml holds a token)? Returns 0 if not, 1
 * if it is (a file with unsafe permissions counts: it still holds a token),
 * or a negative errno when secrets.yaml exists but cannot be read. */
static int already_enrolled(const char *dir)
{
	char *token = NULL;
	int rc = agent_config_load_token(dir, &token);

	agent_config_free_token(token);
	if (rc == 0 || rc == -EPERM)
		return 1;
	if (rc == -ENOENT || rc == -ENOTDIR || rc == -EBADMSG)
		return 0;
	return rc;
}

/* Refuses to overwrite an enrolled DIR unless FORCE, naming the device on
 * stderr (refused) or stdout (replaced). Returns BZ_EXIT_OK to go on, or the
 * exit status. */
static int check_reenroll(const char *dir, int force)
{
	struct agent_config old;
	int rc = already_enrolled(dir);
	int have_old;

	if (rc == 0)
		return BZ_EXIT_OK;
	if (rc < 0) {
		log_error("agent.enroll_failed", "error", "cannot read " AGENT_SECRETS_FILE,
			  "configDir", dir, "detail", strerror(-rc), NULL);
		return BZ_EXIT_CONFIG;
	}
	have_old = agent_config_load(dir, &old) == 0;
	FILE *f = force ? stdout : stderr;
	fputs(force ? "replacing device: agentId="
		    : "breeze-agent enroll: already enrolled: agentId=",
	      f);
	put_escaped(f, have_old ? old.agent_id : "unknown");
	fputs(" hostname=", f);
	put_escaped(f, have_old && old.hostname ? old.hostname : "unknown");
	fputs(" configDir=", f);
	put_escaped(f, dir);
	putc('\n', f);
	if (!force)
		fputs("breeze-agent enroll: refusing to replace its token; pass --force to enrol this "
		      "host again as a new device\n",
		      stderr);
	else
		log_info("agent.reenrolling", "configDir", dir, "previousAgentId",
			 have_old ? old.agent_id : "unknown", NULL);
	if (have_old)
		agent_config_free(&old);
	return force ? BZ_EXIT_OK : BZ_EXIT_REFUSED;
}

/* Logs a refused enrolment. Returns the exit status for it: the server
 * rejected the key or secret, is busy or failing, or answered nonsense. */
static int log_enroll_failure(const struct agent_http_result *res)
{
	char desc[512];
	const char *why;

	agent_http_describe_error(res, desc, sizeof(desc));
	switch (res->status) {
	case 401:
		why = "enrolment key rejected: invalid, expired, exhausted or revoked";
		break;
	case 403:
		why = "enrolment secret rejected";
		break;
	case 409: {
		const char *code = agent_http_error_code(res);
		if (strcmp(code, "device_under_review") == 0)
			why = "a suspended device of this organization with this hostname or "
			      "machine id awaits an administrator's review; enrolment is possible "
			      "once the review allows it";
		else if (strcmp(code, "device_blocked") == 0)
			why = "an administrator's review decommissioned a device with this "
			      "hostname or machine id and blocked its re-enrolment; only a later "
			      "review (allow_reenrollment) lifts it";
		else
			why = "this host was enrolled by an earlier attempt whose answer was lost, "
			      "and its token is shown only once: remove that device (agentId) and "
			      "enrol again";
		break;
	}
	case 429:
		why = "too many enrolment attempts; try again later";
		break;
	default:
		why = res->status >= 500 ? "server error; try again later"
					 : "unexpected response from server";
	}
	if (res->status == 429 && res->retry_after_s >= 0) {
		json_t *f = json_pack("{s:s, s:s, s:I}", "error", why, "detail", desc,
				      "retryAfterSeconds", (json_int_t)res->retry_after_s);
		log_json(LOG_LEVEL_ERROR, "agent.enroll_failed", f);
		json_decref(f);
		return BZ_EXIT_UNAVAILABLE;
	}
	json_t *done = res->status == 409 && json_is_object(res->body)
			       ? json_object_get(json_object_get(res->body, "resource"), "agentId")
			       : NULL;
	/* "agentId" only when known: a NULL key ends the list. */
	log_error("agent.enroll_failed", "error", why, "detail", desc,
		  json_is_string(done) ? "agentId" : NULL, json_string_value(done), NULL);
	if (res->status == 401 || res->status == 403)
		return BZ_EXIT_REJECTED;
	if (res->status == 429 || res->status >= 500)
		return BZ_EXIT_UNAVAILABLE;
	return BZ_EXIT_FAILURE;
}

/* Removes DIR/NAME; a missing file is fine. Returns 0 or -errno. */
static int remove_file(const char *dir, const char *name)
{
	char path[PATH_MAX];
	int rc = agent_config_path(dir, name, path, sizeof(path));

	if (rc != 0)
		return rc;
	if (unlink(path) != 0 && errno != ENOENT)
		return -errno;
	return 0;
}

/* Takes the enrolment key and secret from the environment when they are not
 * on the command line (an empty secret means none). Returns 0, or -EINVAL
 * after printing the usage on stderr when --server or the key is missing. */
static int complete_enroll_opts(struct opts *o)
{
	if (o->key == NULL)
		o->key = getenv("BREEZE_ENROLLMENT_KEY");
	if (o->secret == NULL)
		o->secret = getenv("BREEZE_ENROLLMENT_SECRET");
	if (o->secret != NULL && o->secret[0] == '\0')
		o->secret = NULL;
	if (o->server == NULL || o->key == NULL || o->key[0] == '\0' || o->secret == NULL) {
		fprintf(stderr,
			"breeze-agent enroll: --server, --key (or $BREEZE_ENROLLMENT_KEY) and "
			"--secret (or $BREEZE_ENROLLMENT_SECRET) are required\n");
		fputs(usage_enroll, stderr);
		return -EINVAL;
	}
	return 0;
}

/* Builds the enrolment URL from BASE into *URL (malloc'd, caller frees) and
 * makes sure DIR is usable, both before the key is spent. Returns
 * BZ_EXIT_OK, or the exit status after logging why not. */
static int prepare_enroll(const char *base, const char *dir, char **url)
{
	int rc;

	if (strncmp(base, "http://", 7) == 0)
		log_warn("agent.insecure_transport", "serverUrl", base, "hint",
			 "use https outside development", NULL);
	if (agent_http_join(base, "/api/v1/agents/enroll", url) != 0) {
		log_error("agent.enroll_failed", "error", "cannot build enrolment URL", NULL);
		return BZ_EXIT_FAILURE;
	}
	if ((rc = agent_config_ensure_dir(dir)) != 0) {
		log_error("agent.enroll_failed", "error", "cannot create config directory",
			  "configDir", dir, "detail", strerror(-rc), NULL);
		return BZ_EXIT_CONFIG;
	}
	return BZ_EXIT_OK;
}

/*
 * POSTs the enrolment BODY to URL with an Idempotency-Key made for this
 * attempt, and when no answer came back (the connection dropped, perhaps
 * after the server enrolled us) sends it once more, a second later, with
 * the same key: the server then enrols nothing twice, and if the first
 * attempt did enrol answers 409 idempotency_key_secret_withheld naming the
 * device (the token is shown only once). Returns agent_http_post_json's.
 */
static int post_enroll(const char *url, const json_t *body, struct agent_http_result *res)
{
	char key[AGENT_IDEMPOTENCY_KEY_LEN + 1];
	int rc;

	if (agent_http_idempotency_key(key) != 0)
		return agent_http_post_json(url, NULL, body, NULL, res);
	rc = agent_http_post_json_keyed(url, NULL, key, body, NULL, res);
	if (rc != -EIO)
		return rc;
	log_warn("agent.enroll_retry", "detail", res->error, NULL);
	agent_http_result_free(res);
	sleep(1);
	return agent_http_post_json_keyed(url, NULL, key, body, NULL, res);
}

/* Sends the enrolment request for HOST with O's key and secret to URL (on
 * the server BASE) and reads the answer into ER (free with
 * agent_http_enroll_result_free, whatever the return). The request body,
 * which holds the key and secret, is zeroed before it is freed. Returns
 * BZ_EXIT_OK, or the exit status after logging why the server was not
 * reached, refused or answered nonsense. */
static int send_enroll(const char *url, const char *base, const struct opts *o,
		       const struct agent_host *host, struct agent_enroll_result *er)
{
	struct agent_http_result res = {0};
	json_t *body = agent_http_enroll_body(o->key, o->secret, host);
	int status = BZ_EXIT_FAILURE;

	if (body == NULL) {
		log_error("agent.enroll_failed", "error", "cannot build request body", NULL);
		return BZ_EXIT_FAILURE;
	}
	if (post_enroll(url, body, &res) != 0) {
		log_error("agent.enroll_failed", "error", "cannot reach server", "serverUrl", base,
			  "detail", res.error, NULL);
		status = BZ_EXIT_UNAVAILABLE;
		goto out;
	}
	if (res.status < 200 || res.status >= 300) {
		status = log_enroll_failure(&res);
		goto out;
	}
	if (agent_http_parse_enroll(res.body, er) != 0) {
		log_error("agent.enroll_failed", "error",
			  "server response lacks a valid agentId/authToken", NULL);
		goto out;
	}
	status = BZ_EXIT_OK;
out:
	agent_http_json_cleanse(body);
	json_decref(body);
	agent_http_result_free(&res);
	return status;
}

/* Writes the enrolment ER (server BASE, host name HOSTNAME or NULL) to
 * O->dir, replacing an old enrolment when O->force. Returns BZ_EXIT_OK, or
 * BZ_EXIT_FAILURE after logging which file could not be written. */
static int store_enroll(const struct opts *o, char *base, char *hostname,
			const struct agent_enroll_result *er)
{
	struct agent_config cfg = {0};
	int rc;

	/* Token first: agent.yaml is what marks the agent as enrolled, so it
	 * must never exist without the secrets it refers to. A replaced
	 * device's agent.yaml goes first, so the new token is never paired
	 * with the old agentId; its heartbeat history goes too. */
	if (o->force && (rc = remove_file(o->dir, AGENT_CONFIG_FILE)) != 0) {
		log_error("agent.enroll_failed", "error",
			  "cannot remove the old " AGENT_CONFIG_FILE, "configDir", o->dir, "detail",
			  strerror(-rc), NULL);
		return BZ_EXIT_FAILURE;
	}
	if ((rc = agent_config_remove_state(o->dir)) != 0)
		log_warn("agent.state_remove_failed", "file", AGENT_STATE_FILE, "error",
			 strerror(-rc), NULL);
	if ((rc = agent_config_save_token(o->dir, er->auth_token)) != 0) {
		log_error("agent.enroll_failed", "error", "cannot write " AGENT_SECRETS_FILE,
			  "configDir", o->dir, "detail", strerror(-rc), NULL);
		return BZ_EXIT_FAILURE;
	}
	cfg.server_url = base;
	cfg.agent_id = er->agent_id;
	cfg.org_id = er->org_id;
	cfg.site_id = er->site_id;
	cfg.hostname = hostname;
	cfg.heartbeat_interval_s = er->heartbeat_interval_s;
	if ((rc = agent_config_save(o->dir, &cfg)) != 0) {
		log_error("agent.enroll_failed", "error", "cannot write " AGENT_CONFIG_FILE,
			  "configDir", o->dir, "detail", strerror(-rc), NULL);
		return BZ_EXIT_FAILURE;
	}
	return BZ_EXIT_OK;
}

static int cmd_enroll(int argc, char **argv)
{
	struct opts o;
	struct agent_host host;
	struct agent_enroll_result er = {0};
	char err[128] = "";
	char *base = NULL, *url = NULL;
	int rc, status;

	if ((rc = parse_opts(argc, argv, 1, usage_enroll, &o)) != 0)
		return rc > 0 ? BZ_EXIT_OK : BZ_EXIT_USAGE;
	if (complete_enroll_opts(&o) != 0)
		return BZ_EXIT_USAGE;
	if (agent_http_normalize_url(o.server, &base, err, sizeof(err)) != 0) {
		log_error("agent.enroll_failed", "error", "invalid --server URL", "detail", err,
			  NULL);
		return BZ_EXIT_USAGE;
	}
	/* Before the key is spent: a second enrolment would orphan the device
	 * this directory belongs to. */
	if ((status = check_files(o.dir, NULL)) != BZ_EXIT_OK ||
	    (status = check_reenroll(o.dir, o.force)) != BZ_EXIT_OK)
		goto out;
	if ((status = prepare_enroll(base, o.dir, &url)) != BZ_EXIT_OK)
		goto out;
	agent_inventory_collect_host(&host);
	if ((status = send_enroll(url, base, &o, &host, &er)) != BZ_EXIT_OK)
		goto out;
	status = store_enroll(&o, base, host.hostname[0] ? host.hostname : NULL, &er);
	if (status != BZ_EXIT_OK)
		goto out;
	log_info("agent.enrolled", "agentId", er.agent_id, "orgId", er.org_id, "siteId", er.site_id,
		 NULL);
	printf("enrolled: agentId=%s\n", er.agent_id);
out:
	agent_http_enroll_result_free(&er);
	free(url);
	free(base);
	return status;
}

static int cmd_run(int argc, char **argv)
{
	struct opts o;
	int rc;

	if ((rc = parse_opts(argc, argv, 0, usage_run, &o)) != 0)
		return rc > 0 ? BZ_EXIT_OK : BZ_EXIT_USAGE;
	if (check_files(o.dir, NULL) != BZ_EXIT_OK)
		return BZ_EXIT_CONFIG;
	return agent_loop_run(o.dir);
}

/* Prints LABEL and VALUE on one line. VALUE came from the server, so control
 * characters are shown as \xNN instead of reaching the terminal. */
static void print_field(const char *label, const char *value)
{
	fputs(label, stdout);
	put_escaped(stdout, value);
	putchar('\n');
}

/* Prints the last accepted heartbeat from DIR/state.yaml. */
static void print_last_heartbeat(const char *dir)
{
	char iso[32];
	int64_t t = 0;
	int rc = agent_config_load_last_heartbeat(dir, &t);

	if (rc == -ENOENT)
		printf("heartbeat:  never\n");
	else if (rc != 0 || bz_format_iso8601(t, iso, sizeof(iso)) != 0)
		printf("heartbeat:  unknown (%s/%s %s)\n", dir, AGENT_STATE_FILE,
		       rc == -EBADMSG || rc == 0 ? "malformed" : strerror(-rc));
	else
		printf("heartbeat:  %s (last accepted)\n", iso);
}

static int cmd_status(int argc, char **argv)
{
	struct opts o;
	struct agent_config cfg;
	char path[PATH_MAX];
	char *token = NULL;
	int rc, perm;

	if ((rc = parse_opts(argc, argv, 0, usage_status, &o)) != 0)
		return rc > 0 ? BZ_EXIT_OK : BZ_EXIT_USAGE;
	if (check_files(o.dir, stdout) != BZ_EXIT_OK)
		return BZ_EXIT_CONFIG;
	rc = agent_config_load(o.dir, &cfg);
	if (rc == -ENOENT) {
		printf("enrolled:   no (%s/%s not found)\n", o.dir, AGENT_CONFIG_FILE);
		return BZ_EXIT_CONFIG;
	}
	if (rc != 0) {
		printf("enrolled:   unknown (%s/%s unreadable: %s)\n", o.dir, AGENT_CONFIG_FILE,
		       rc == -EBADMSG ? "malformed" : strerror(-rc));
		return BZ_EXIT_CONFIG;
	}
	if (agent_config_path(o.dir, AGENT_SECRETS_FILE, path, sizeof(path)) != 0) {
		agent_config_free(&cfg);
		return BZ_EXIT_CONFIG;
	}
	perm = agent_config_check_secrets(path);
	if (perm == AGENT_PERM_OK && agent_config_load_token(o.dir, &token) != 0)
		perm = AGENT_PERM_ERROR;
	agent_config_free_token(token);
	print_field("enrolled:   ", "yes");
	print_field("agentId:    ", cfg.agent_id);
	print_field("hostname:   ", cfg.hostname);
	print_field("serverUrl:  ", cfg.server_url);
	print_field("orgId:      ", cfg.org_id);
	print_field("siteId:     ", cfg.site_id);
	printf("interval:   %lds\n", cfg.heartbeat_interval_s);
	printf("secrets:    %s (%s)\n", perm == AGENT_PERM_OK ? "ok" : "NOT OK",
	       perm == AGENT_PERM_ERROR ? "authToken missing or unreadable"
					: agent_config_perm_str(perm));
	print_last_heartbeat(o.dir);
	agent_config_free(&cfg);
	return perm == AGENT_PERM_OK ? BZ_EXIT_OK : BZ_EXIT_CONFIG;
}

/* `version` and `help` take no options but --help (and help a COMMAND). */
static const char *command_usage(const char *cmd)
{
	if (!strcmp(cmd, "enroll"))
		return usage_enroll;
	if (!strcmp(cmd, "run"))
		return usage_run;
	if (!strcmp(cmd, "status"))
		return usage_status;
	if (!strcmp(cmd, "version"))
		return usage_version;
	if (!strcmp(cmd, "help"))
		return usage_help;
	return NULL;
}

static int is_help(const char *arg)
{
	return !strcmp(arg, "--help") || !strcmp(arg, "-h");
}

int main(int argc, char **argv)
{
	int status;

	if (argc < 2) {
		usage(stderr);
		return BZ_EXIT_USAGE;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "help") || is_help(cmd)) {
		const char *text = argc == 3 ? command_usage(is_help(argv[2]) ? "help" : argv[2])
					     : NULL;
		if (argc > 3 || (argc == 3 && text == NULL)) {
			fputs(usage_help, stderr);
			return BZ_EXIT_USAGE;
		}
		if (text != NULL)
			fputs(text, stdout);
		else
			usage(stdout);
		return BZ_EXIT_OK;
	}
	if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
		if (argc == 3 && is_help(argv[2])) {
			fputs(usage_version, stdout);
			return BZ_EXIT_OK;
		}
		if (argc > 2) {
			fputs(usage_version, stderr);
			return BZ_EXIT_USAGE;
		}
		printf("breeze-agent %s\n", AGENT_VERSION);
		return BZ_EXIT_OK;
	}
	if (command_usage(cmd) == NULL) {
		fprintf(stderr, "breeze-agent: unknown command '%s'\n", cmd);
		usage(stderr);
		return BZ_EXIT_USAGE;
	}
	if (agent_http_global_init() != 0) {
		log_error("agent.start_failed", "error", "libcurl initialisation failed", NULL);
		return BZ_EXIT_FAILURE;
	}
	if (!strcmp(cmd, "enroll"))
		status = cmd_enroll(argc - 1, argv + 1);
	else if (!strcmp(cmd, "run"))
		status = cmd_run(argc - 1, argv + 1);
	else
		status = cmd_status(argc - 1, argv + 1);
	agent_http_global_cleanup();
	return status;
}
