/*
 * breeze-agent — enroll this host with a Breeze server, then heartbeat.
 *
 * Subcommands: enroll, run, status, version, help. Logs are JSON lines on
 * stderr; only the human answers of `enroll`, `status` and `version` go to
 * stdout. The auth token is never printed or logged.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "agent/client.h"
#include "agent/config.h"
#include "agent/inventory.h"
#include "agent/loop.h"
#include "common/log.h"

#define EXIT_USAGE 64

static void usage(FILE *f)
{
	fputs("usage: breeze-agent enroll --server URL [--key KEY] [--secret SECRET] [--config-dir DIR]\n"
	      "       breeze-agent run [--config-dir DIR]\n"
	      "       breeze-agent status [--config-dir DIR]\n"
	      "       breeze-agent version | help\n"
	      "\n"
	      "  --key defaults to $BREEZE_ENROLLMENT_KEY, --secret to $BREEZE_ENROLLMENT_SECRET\n"
	      "  (prefer the environment: arguments are visible to other users in ps).\n"
	      "  --config-dir defaults to " AGENT_CONFIG_DEFAULT_DIR ".\n"
	      "\n"
	      "run exits 0 on SIGTERM/SIGINT, 1 on a start-up error, 2 when the server\n"
	      "rejects the token (re-enrol), 3 when the device is disabled or deleted.\n",
	      f);
}

struct opts {
	const char *server;
	const char *key;
	const char *secret;
	const char *dir;
};

/* Parses the options after the subcommand. ALLOW_ENROLL enables the
 * enrolment options. Returns 0 or -1 after printing the problem. */
static int parse_opts(int argc, char **argv, int allow_enroll, struct opts *o)
{
	static const struct option longopts[] = {
		{"server", required_argument, NULL, 's'},     {"key", required_argument, NULL, 'k'},
		{"secret", required_argument, NULL, 'S'},     {"config-dir", required_argument, NULL, 'c'},
		{"help", no_argument, NULL, 'h'},             {NULL, 0, NULL, 0},
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
			if (!allow_enroll) {
				fprintf(stderr, "breeze-agent %s: option not allowed here\n", argv[0]);
				return -1;
			}
			if (ch == 's')
				o->server = optarg;
			else if (ch == 'k')
				o->key = optarg;
			else
				o->secret = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "breeze-agent %s: unexpected argument '%s'\n", argv[0], argv[optind]);
		return -1;
	}
	if (o->dir[0] == '\0') {
		fprintf(stderr, "breeze-agent: --config-dir must not be empty\n");
		return -1;
	}
	return 0;
}

static void log_enroll_failure(const struct agent_http_result *res)
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
	case 429:
		why = "too many enrolment attempts; try again later";
		break;
	default:
		why = res->status >= 500 ? "server error; try again later" : "unexpected response from server";
	}
	if (res->status == 429 && res->retry_after_s >= 0) {
		json_t *f = json_pack("{s:s, s:s, s:I}", "error", why, "detail", desc, "retryAfterSeconds",
				      (json_int_t)res->retry_after_s);
		log_json(LOG_LEVEL_ERROR, "agent.enroll_failed", f);
		json_decref(f);
		return;
	}
	log_error("agent.enroll_failed", "error", why, "detail", desc, NULL);
}

static int cmd_enroll(int argc, char **argv)
{
	struct opts o;
	struct agent_host host;
	struct agent_http_result res = {0};
	struct agent_enroll_result er = {0};
	struct agent_config cfg = {0};
	char err[128] = "";
	char *base = NULL, *url = NULL;
	json_t *body = NULL;
	int rc, status = AGENT_EXIT_FAILURE;

	if (parse_opts(argc, argv, 1, &o) != 0)
		return EXIT_USAGE;
	if (o.key == NULL)
		o.key = getenv("BREEZE_ENROLLMENT_KEY");
	if (o.secret == NULL)
		o.secret = getenv("BREEZE_ENROLLMENT_SECRET");
	if (o.secret != NULL && o.secret[0] == '\0')
		o.secret = NULL;
	if (o.server == NULL || o.key == NULL || o.key[0] == '\0') {
		fprintf(stderr, "breeze-agent enroll: --server and --key (or $BREEZE_ENROLLMENT_KEY) are required\n");
		return EXIT_USAGE;
	}
	if (agent_http_normalize_url(o.server, &base, err, sizeof(err)) != 0) {
		log_error("agent.enroll_failed", "error", "invalid --server URL", "detail", err, NULL);
		return EXIT_USAGE;
	}
	if (strncmp(base, "http://", 7) == 0)
		log_warn("agent.insecure_transport", "serverUrl", base, "hint", "use https outside development",
			 NULL);
	if ((rc = agent_http_join(base, "/api/v1/agents/enroll", &url)) != 0) {
		log_error("agent.enroll_failed", "error", "cannot build enrolment URL", NULL);
		goto out;
	}
	/* Fail on an unusable config dir before spending the key. */
	if ((rc = agent_config_ensure_dir(o.dir)) != 0) {
		log_error("agent.enroll_failed", "error", "cannot create config directory", "configDir", o.dir,
			  "detail", strerror(-rc), NULL);
		goto out;
	}
	agent_inventory_collect_host(&host);
	body = agent_http_enroll_body(o.key, o.secret, &host);
	if (body == NULL) {
		log_error("agent.enroll_failed", "error", "cannot build request body", NULL);
		goto out;
	}
	rc = agent_http_post_json(url, NULL, body, NULL, &res);
	if (rc != 0) {
		log_error("agent.enroll_failed", "error", "cannot reach server", "serverUrl", base, "detail",
			  res.error, NULL);
		goto out;
	}
	if (res.status < 200 || res.status >= 300) {
		log_enroll_failure(&res);
		goto out;
	}
	if (agent_http_parse_enroll(res.body, &er) != 0) {
		log_error("agent.enroll_failed", "error", "server response lacks a valid agentId/authToken", NULL);
		goto out;
	}
	/* Token first: agent.yaml is what marks the agent as enrolled, so it
	 * must never exist without the secrets it refers to. */
	if ((rc = agent_config_save_token(o.dir, er.auth_token)) != 0) {
		log_error("agent.enroll_failed", "error", "cannot write " AGENT_SECRETS_FILE, "configDir", o.dir,
			  "detail", strerror(-rc), NULL);
		goto out;
	}
	cfg.server_url = base;
	cfg.agent_id = er.agent_id;
	cfg.org_id = er.org_id;
	cfg.site_id = er.site_id;
	cfg.heartbeat_interval_s = er.heartbeat_interval_s;
	rc = agent_config_save(o.dir, &cfg);
	if (rc != 0) {
		log_error("agent.enroll_failed", "error", "cannot write " AGENT_CONFIG_FILE, "configDir", o.dir,
			  "detail", strerror(-rc), NULL);
		goto out;
	}
	log_info("agent.enrolled", "agentId", er.agent_id, "orgId", er.org_id, "siteId", er.site_id, NULL);
	printf("enrolled: agentId=%s\n", er.agent_id);
	status = AGENT_EXIT_OK;
out:
	if (body != NULL) {
		/* The body holds the enrolment key and secret. */
		agent_http_json_cleanse(body);
		json_decref(body);
	}
	agent_http_result_free(&res);
	agent_http_enroll_result_free(&er);
	free(url);
	free(base);
	return status;
}

static int cmd_run(int argc, char **argv)
{
	struct opts o;

	if (parse_opts(argc, argv, 0, &o) != 0)
		return EXIT_USAGE;
	return agent_loop_run(o.dir);
}

/* Prints LABEL and VALUE on one line. VALUE came from the server, so control
 * characters are shown as \xNN instead of reaching the terminal. */
static void print_field(const char *label, const char *value)
{
	fputs(label, stdout);
	for (const unsigned char *p = (const unsigned char *)(value ? value : "-"); *p != '\0'; p++) {
		if (*p < 0x20 || *p == 0x7f)
			printf("\\x%02x", *p);
		else
			putchar(*p);
	}
	putchar('\n');
}

static int cmd_status(int argc, char **argv)
{
	struct opts o;
	struct agent_config cfg;
	char path[PATH_MAX];
	char *token = NULL;
	int rc, perm;

	if (parse_opts(argc, argv, 0, &o) != 0)
		return EXIT_USAGE;
	rc = agent_config_load(o.dir, &cfg);
	if (rc == -ENOENT) {
		printf("enrolled:   no (%s/%s not found)\n", o.dir, AGENT_CONFIG_FILE);
		return AGENT_EXIT_FAILURE;
	}
	if (rc != 0) {
		printf("enrolled:   unknown (%s/%s unreadable: %s)\n", o.dir, AGENT_CONFIG_FILE,
		       rc == -EBADMSG ? "malformed" : strerror(-rc));
		return AGENT_EXIT_FAILURE;
	}
	if (agent_config_path(o.dir, AGENT_SECRETS_FILE, path, sizeof(path)) != 0) {
		agent_config_free(&cfg);
		return AGENT_EXIT_FAILURE;
	}
	perm = agent_config_check_secrets(path);
	if (perm == AGENT_PERM_OK && agent_config_load_token(o.dir, &token) != 0)
		perm = AGENT_PERM_ERROR;
	agent_config_free_token(token);
	print_field("enrolled:   ", "yes");
	print_field("agentId:    ", cfg.agent_id);
	print_field("serverUrl:  ", cfg.server_url);
	print_field("orgId:      ", cfg.org_id);
	print_field("siteId:     ", cfg.site_id);
	printf("interval:   %lds\n", cfg.heartbeat_interval_s);
	printf("secrets:    %s (%s)\n", perm == AGENT_PERM_OK ? "ok" : "NOT OK",
	       perm == AGENT_PERM_ERROR ? "authToken missing or unreadable" : agent_config_perm_str(perm));
	agent_config_free(&cfg);
	return perm == AGENT_PERM_OK ? AGENT_EXIT_OK : AGENT_EXIT_FAILURE;
}

int main(int argc, char **argv)
{
	int status;

	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	const char *cmd = argv[1];
	if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
		printf("breeze-agent %s\n", AGENT_VERSION);
		return 0;
	}
	if (agent_http_global_init() != 0) {
		log_error("agent.start_failed", "error", "libcurl initialisation failed", NULL);
		return AGENT_EXIT_FAILURE;
	}
	if (strcmp(cmd, "enroll") == 0) {
		status = cmd_enroll(argc - 1, argv + 1);
	} else if (strcmp(cmd, "run") == 0) {
		status = cmd_run(argc - 1, argv + 1);
	} else if (strcmp(cmd, "status") == 0) {
		status = cmd_status(argc - 1, argv + 1);
	} else {
		fprintf(stderr, "breeze-agent: unknown command '%s'\n", cmd);
		usage(stderr);
		status = EXIT_USAGE;
	}
	agent_http_global_cleanup();
	return status;
}
