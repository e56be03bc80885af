/*
 * breeze-server — the Breeze control plane.
 *
 *   breeze-server serve      [--env-file FILE] [--allow-root]
 *   breeze-server migrate    [--env-file FILE]
 *   breeze-server bootstrap  --email E --name N --partner P --org O --site S
 *                            [--password-stdin] [--env-file FILE]
 *   breeze-server gen-secrets [--compose]
 *   breeze-server audit      verify|export|checkpoint|public-key|prune|help …
 *   breeze-server version | help [COMMAND]
 *   breeze-server routes     the route table as JSON lines
 *
 * `breeze-server COMMAND --help` prints one command's usage on stdout.
 * Exit statuses: common/exitcode.h (README "Exit codes").
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <curl/curl.h>

#include "common/clock.h"
#include "common/envfile.h"
#include "common/err.h"
#include "common/exitcode.h"
#include "common/log.h"
#include "crypto/crypto.h"
#include "crypto/password.h"
#include "server/agents/agents.h"
#include "server/agents/agents_api.h"
#include "server/agents/agents_metrics.h"
#include "server/audit/audit_cli.h"
#include "server/audit/audit_retention.h"
#include "server/bootstrap.h"
#include "server/check/check.h"
#include "server/config.h"
#include "server/db/db.h"
#include "server/db/db_role_check.h"
#include "server/db/migrate.h"
#include "server/auth/auth.h"
#include "server/auth/auth_api.h"
#include "server/http/http.h"
#include "server/http/static.h"
#include "server/outbound/outbound.h"
#include "server/outbound/webhooks.h"
#include "server/routes.h"
#include "server/settings/settings.h"


static void usage(FILE *f)
{
	fputs("usage: breeze-server <command> [options]\n"
	      "\n"
	      "commands:\n"
	      "  serve        run the HTTP API (refuses to run as root unless --allow-root)\n"
	      "  migrate      apply database migrations (uses MIGRATION_DATABASE_URL)\n"
	      "  bootstrap    create the first partner, organization, site and admin user\n"
	      "               --email E --name N --partner P --org O --site S [--password-stdin]\n"
	      "  gen-secrets  print a fresh set of secrets in env-file form [--compose]\n"
	      "  audit        verify | export | checkpoint | public-key | prune (audit help)\n"
	      "  check        judge a deployment against the security checklist (check --help)\n"
	      "  rotate-encryption-key  re-encrypt stored values under APP_ENCRYPTION_KEY\n"
	      "               [--dry-run] [--batch N] [--max-batches N]\n"
	      "  maintain     metrics partition maintenance and the offline sweep, once\n"
	      "  routes       print the route table as JSON lines (method, path, flags, permission)\n"
	      "  version      print the version\n"
	      "  help         this text; help COMMAND or COMMAND --help for one command\n"
	      "\n"
	      "common options:\n"
	      "  --env-file FILE   load KEY=VALUE lines before reading the environment\n"
	      "\n"
	      "exit status: 0 ok, 1 failure, 2 usage, 3 configuration, 4 database or Redis\n"
	      "unavailable, 5 refused (root, pending migrations, already bootstrapped).\n",
	      f);
}

/* One command's usage, for COMMAND --help (stdout) and usage errors. */
static const char *command_usage(const char *cmd)
{
	static const struct {
		const char *cmd, *text;
	} tab[] = {
		{"serve", "usage: breeze-server serve [--env-file FILE] [--allow-root]\n"
			  "\n"
			  "Runs the HTTP API on LISTEN_ADDR until SIGTERM/SIGINT (drains within\n"
			  "HTTP_DRAIN_SECONDS, exits 0).\n"
			  "Refuses to start as root without --allow-root (exit 5), with pending\n"
			  "migrations (exit 5) or with a bad configuration (exit 3).\n"},
		{"migrate", "usage: breeze-server migrate [--env-file FILE]\n"
			    "\n"
			    "Applies the pending database migrations embedded in this binary, as\n"
			    "MIGRATION_DATABASE_URL (the schema owner; DATABASE_URL if unset).\n"},
		{"bootstrap",
		 "usage: breeze-server bootstrap --email E --name N --partner P --org O --site S\n"
		 "                           [--password-stdin] [--env-file FILE]\n"
		 "\n"
		 "Creates the first partner, organization, site and administrator. The\n"
		 "password is read from stdin (one line), or generated and printed once.\n"
		 "Refused (exit 5) once an administrator exists.\n"},
		{"gen-secrets",
		 "usage: breeze-server gen-secrets [--compose]\n"
		 "\n"
		 "Prints a fresh set of secrets (32 random bytes each) in env-file form.\n"
		 "--compose adds the passwords deploy/docker-compose.prod.yml needs\n"
		 "(PostgreSQL roles, Redis, Grafana, TURN): the whole .env.prod.\n"},
		{"audit", NULL},		 /* audit_cli_main has its own */
		{"rotate-encryption-key", NULL}, /* settings_cli_main has its own */
		{"check", NULL},		 /* check_cli_main has its own */
		{"maintain",
		 "usage: breeze-server maintain [--env-file FILE]\n"
		 "\n"
		 "Runs what the worker of serve runs periodically, once, as DATABASE_URL:\n"
		 "creates the device_metrics day partitions ahead, drops those older\n"
		 "than METRICS_RETENTION_DAYS, and marks devices that missed three\n"
		 "heartbeat intervals offline (device.offline audit rows).\n"},
		{"version", "usage: breeze-server version\n\nPrints the version.\n"},
		{"routes",
		 "usage: breeze-server routes\n"
		 "\n"
		 "Prints the route table, one JSON object per line: method, path template,\n"
		 "whether it is public, needs a user or a JSON body, its permission and\n"
		 "audit action. The API contract tests compare it with docs/openapi.yaml.\n"},
		{"help", "usage: breeze-server help [COMMAND]\n"
			 "\n"
			 "Prints the usage of breeze-server or of COMMAND.\n"},
	};

	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
		if (!strcmp(cmd, tab[i].cmd))
			return tab[i].text ? tab[i].text : "";
	return NULL;
}

static int is_help(const char *arg)
{
	return !strcmp(arg, "--help") || !strcmp(arg, "-h");
}

struct opts {
	const char *env_file;
	int allow_root;
	int password_stdin;
	const char *email, *name, *partner, *org, *site;
};

/* Parses the options after the command (ARGV[0]) and loads --env-file.
 * Returns BZ_EXIT_OK to go on, BZ_EXIT_USAGE or BZ_EXIT_CONFIG after
 * printing the problem; --help prints the command's usage and exits 0. */
static int parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{"env-file", required_argument, NULL, 'e'},
		{"allow-root", no_argument, NULL, 'R'},
		{"password-stdin", no_argument, NULL, 'P'},
		{"email", required_argument, NULL, 'm'},
		{"name", required_argument, NULL, 'n'},
		{"partner", required_argument, NULL, 'p'},
		{"org", required_argument, NULL, 'o'},
		{"site", required_argument, NULL, 's'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int ch;

	memset(o, 0, sizeof(*o));
	optind = 1;
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'e':
			o->env_file = optarg;
			break;
		case 'R':
			o->allow_root = 1;
			break;
		case 'P':
			o->password_stdin = 1;
			break;
		case 'm':
			o->email = optarg;
			break;
		case 'n':
			o->name = optarg;
			break;
		case 'p':
			o->partner = optarg;
			break;
		case 'o':
			o->org = optarg;
			break;
		case 's':
			o->site = optarg;
			break;
		case 'h':
			fputs(command_usage(argv[0]), stdout);
			exit(BZ_EXIT_OK);
		default:
			return BZ_EXIT_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "breeze-server: unexpected argument '%s'\n", argv[optind]);
		return BZ_EXIT_USAGE;
	}
	if (o->env_file != NULL && envfile_load_report(o->env_file, "breeze-server", stderr) != 0)
		return BZ_EXIT_CONFIG;
	return BZ_EXIT_OK;
}

/* Prints every configuration problem, one line each, then says whether to
 * go on. Values are never printed, only variable names. The test clock
 * (BREEZE_TEST_CLOCK_FILE, see bz_clock_use_file()) is honoured only when
 * BREEZE_ENV=test: production refuses it, development ignores it with a
 * warning. */
static int load_config(struct config *cfg, enum config_purpose purpose)
{
	const char *clock_file = getenv("BREEZE_TEST_CLOCK_FILE");
	int rc = config_load_report(cfg, purpose, stderr) != 0 ? BZ_ERR_INVALID : 0;

	if (clock_file == NULL || clock_file[0] == '\0')
		return rc;
	if (cfg->env == BREEZE_ENV_TEST)
		return rc != 0 ? rc : bz_clock_use_file(clock_file);
	if (cfg->env == BREEZE_ENV_PRODUCTION) {
		fprintf(stderr, "breeze-server: config error: BREEZE_TEST_CLOCK_FILE: only "
				"allowed with BREEZE_ENV=test\n");
		return BZ_ERR_INVALID;
	}
	fprintf(stderr, "breeze-server: warning: BREEZE_TEST_CLOCK_FILE ignored (only honoured "
			"with BREEZE_ENV=test)\n");
	return rc;
}

/* Logins and registrations hashing or waiting to hash may hold at most
 * half the HTTP workers (the rest serve everything else under a login
 * flood): ARGON2_MAX_CONCURRENT hashing, and up to twice as many waiting,
 * within that half. */
static void init_passwords(const struct config *cfg)
{
	uint32_t half = cfg->http_worker_threads / 2 > 0 ? cfg->http_worker_threads / 2 : 1;
	uint32_t running = cfg->argon2_max_concurrent < half ? cfg->argon2_max_concurrent : half;
	uint32_t waiting = 2 * running < half - running ? 2 * running : half - running;
	struct password_params pp = {cfg->argon2_memory_kib, cfg->argon2_iterations,
				     cfg->argon2_parallelism, running, waiting};
	if (password_init(&pp) != 0) {
		fprintf(stderr, "breeze-server: invalid argon2 parameters\n");
		exit(BZ_EXIT_CONFIG);
	}
}

/*
 * Refuses (production) or warns about (elsewhere) a DATABASE_URL role that
 * could switch off or get round the audit log's append-only protection:
 * superuser, BYPASSRLS, CREATEROLE, owner of the schema or its tables (or a member of
 * the owner), UPDATE/DELETE/TRUNCATE on an audit table. One
 * "db.role.unsafe" log line per problem; in production also one stderr line
 * each. Returns 0 to go on, BZ_ERR_FORBIDDEN to refuse, BZ_ERR_DB if the
 * check itself failed.
 */
static int check_db_role(struct db_pool *pool, const struct config *cfg)
{
	struct db_role_findings f;
	char msg[6][384];
	int n = 0, rc;
	PGconn *c = db_acquire(pool, 5000);

	if (c == NULL)
		return BZ_ERR_DB;
	rc = db_role_check(c, "public", &f);
	db_release(pool, c);
	if (rc != 0)
		return BZ_ERR_DB;
	if (f.superuser)
		snprintf(msg[n++], sizeof(msg[0]),
			 "is a superuser (or a member of one) and could disable the audit "
			 "log's append-only triggers");
	if (f.bypass_rls)
		snprintf(msg[n++], sizeof(msg[0]),
			 "has BYPASSRLS (itself or through a role it is a member of)");
	if (f.createrole)
		snprintf(msg[n++], sizeof(msg[0]),
			 "has CREATEROLE (itself or through a role it is a member of) and could "
			 "grant itself membership in the migration owner");
	if (f.owns_schema)
		snprintf(msg[n++], sizeof(msg[0]),
			 "owns schema public (or is a member of its owner); serve must run as "
			 "the application role, not the migration owner");
	if (f.owned_table[0] != '\0')
		snprintf(msg[n++], sizeof(msg[0]),
			 "owns table %s (or is a member of its owner); serve must run as the "
			 "application role, not the migration owner",
			 f.owned_table);
	if (f.audit_grants[0] != '\0')
		snprintf(msg[n++], sizeof(msg[0]),
			 "may change or remove audit rows (%s); the application role needs only "
			 "SELECT and INSERT on the audit tables",
			 f.audit_grants);
	int prod = cfg->env == BREEZE_ENV_PRODUCTION;
	for (int i = 0; i < n; i++) {
		if (prod)
			log_error("db.role.unsafe", "variable", "DATABASE_URL", "role", f.role,
				  "problem", msg[i], NULL);
		else
			log_warn("db.role.unsafe", "variable", "DATABASE_URL", "role", f.role,
				 "problem", msg[i], NULL);
		if (prod)
			fprintf(stderr, "breeze-server: DATABASE_URL: role %s %s\n", f.role,
				msg[i]);
	}
	if (prod && n > 0) {
		fprintf(stderr, "breeze-server: refusing to start in production with an unsafe "
				"database role\n");
		return BZ_ERR_FORBIDDEN;
	}
	return 0;
}

/* What serve checks on the database before it listens: the role is fit
 * for serving (first, before anything reads a table), and no migration is
 * pending. Returns an exit code (BZ_EXIT_OK to go on). */
static int check_database(struct db_pool *pool, const struct config *cfg)
{
	int role_rc = check_db_role(pool, cfg);
	if (role_rc != 0) {
		if (role_rc == BZ_ERR_DB)
			fprintf(stderr,
				"breeze-server: cannot check the database role's privileges\n");
		return role_rc == BZ_ERR_FORBIDDEN ? BZ_EXIT_REFUSED : BZ_EXIT_UNAVAILABLE;
	}
	PGconn *c = db_acquire(pool, 5000);
	int pending = 0;
	int rc = c == NULL ? BZ_ERR_UNAVAILABLE : migrate_pending(c, &pending);
	db_release(pool, c);
	if (rc != 0) {
		fprintf(stderr, "breeze-server: cannot read schema_migrations\n");
		return BZ_EXIT_UNAVAILABLE;
	}
	if (pending > 0) {
		fprintf(stderr,
			"breeze-server: %d migration(s) not applied; run `breeze-server migrate` first\n",
			pending);
		return BZ_EXIT_REFUSED;
	}
	return BZ_EXIT_OK;
}

/*
 * Raises the soft RLIMIT_NOFILE to what serve can need: every HTTP
 * connection, every pool connection, and a margin for the listen socket,
 * MHD's wake-up descriptors, Redis, the audit workers' own database
 * connections and files. Below it accept() fails with EMFILE
 * while connections are still allowed. The soft limit is raised up to the
 * hard one; when even the hard limit is too low, serve refuses with a
 * message saying what to change. Returns BZ_EXIT_OK or BZ_EXIT_REFUSED.
 */
static int raise_fd_limit(const struct config *cfg)
{
	struct rlimit rl;
	rlim_t need = (rlim_t)cfg->http_max_connections + cfg->database_pool_size + 64;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
		fprintf(stderr, "breeze-server: cannot read RLIMIT_NOFILE: %s\n", strerror(errno));
		return BZ_EXIT_REFUSED;
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
		if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
			fprintf(stderr,
				"breeze-server: refusing to start: the open-file limit (RLIMIT_NOFILE "
				"hard %llu) is below the %llu descriptors HTTP_MAX_CONNECTIONS=%u and "
				"DATABASE_POOL_SIZE=%u need; raise it (ulimit -Hn, systemd "
				"LimitNOFILE=) or lower HTTP_MAX_CONNECTIONS\n",
				(unsigned long long)rl.rlim_max, (unsigned long long)need,
				cfg->http_max_connections, cfg->database_pool_size);
			return BZ_EXIT_REFUSED;
		}
		char from[24], to[24];
		snprintf(from, sizeof(from), "%llu", (unsigned long long)rl.rlim_cur);
		snprintf(to, sizeof(to), "%llu", (unsigned long long)need);
		rl.rlim_cur = need;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
			fprintf(stderr, "breeze-server: cannot raise RLIMIT_NOFILE to %s: %s\n", to,
				strerror(errno));
			return BZ_EXIT_REFUSED;
		}
		log_info("server.fd_limit.raised", "from", from, "to", to, NULL);
	}
	return BZ_EXIT_OK;
}

/* The rate limiter of issue 9 from CFG's RATE_LIMIT_* settings and
 * REDIS_URL (docs/rate-limiting.md). An unreachable Redis is no error
 * here: checks fall back until it answers. Returns NULL on no memory. */
static struct ratelimit *open_ratelimit(const struct config *cfg)
{
	struct ratelimit_options o = {
		.redis_url = (cfg->redis_url && cfg->redis_url[0]) ? cfg->redis_url : NULL,
		.on_failure = cfg->rate_limit_on_redis_failure,
		.redis_timeout_ms = cfg->rate_limit_redis_timeout_ms,
	};

	o.rules[RL_LOGIN] = cfg->rate_login;
	o.rules[RL_LOGIN_IP] = cfg->rate_login_ip;
	o.rules[RL_API_USER] = cfg->rate_api_user;
	o.rules[RL_AGENT_DEVICE] = cfg->rate_agent_device;
	o.rules[RL_AGENT_ORG] = cfg->rate_agent_org;
	o.rules[RL_ENROLL] = cfg->rate_enroll;
	o.rules[RL_MFA] = cfg->rate_mfa;
	o.rules[RL_WEBHOOK_TEST] = cfg->rate_webhook_test;
	return ratelimit_open(&o);
}

/* The database pool of serve, with the deadlines of CFG (statement, lock
 * and idle-in-transaction timeouts, keepalives, the request deadline),
 * into *POOL after the role and schema checks (check_database()). Returns
 * BZ_EXIT_OK, BZ_EXIT_UNAVAILABLE (no database) or check_database()'s
 * refusal; on error nothing is left open. */
static int open_pool(const struct config *cfg, struct db_pool **pool)
{
	const char *err = NULL;
	struct db_options dbo = {
		.statement_timeout_ms = cfg->database_statement_timeout_ms,
		.lock_timeout_ms = cfg->database_lock_timeout_ms,
		.idle_in_transaction_timeout_ms = cfg->database_idle_in_transaction_timeout_ms,
		.keepalive_idle_s = cfg->database_keepalive_idle_s,
		.keepalive_interval_s = cfg->database_keepalive_interval_s,
		.keepalive_count = cfg->database_keepalive_count,
		.tcp_user_timeout_ms = cfg->database_tcp_user_timeout_ms,
		.request_deadline_ms = cfg->database_request_deadline_ms,
	};

	*pool = db_pool_open(cfg->database_url, cfg->database_pool_size, &dbo, &err);
	if (*pool == NULL) {
		fprintf(stderr, "breeze-server: %s\n", err);
		return BZ_EXIT_UNAVAILABLE;
	}
	int rc = check_database(*pool, cfg);
	if (rc != BZ_EXIT_OK) {
		db_pool_close(*pool);
		*pool = NULL;
		return rc;
	}
	/* S6: since when this AGENT_ENROLLMENT_SECRET is in use (for check). */
	PGconn *c = db_acquire(*pool, 5000);
	if (c == NULL ||
	    agents_enrollment_secret_seen(c, cfg->secrets[SECRET_AGENT_ENROLLMENT_SECRET],
					  bz_now()) != 0)
		log_warn("enrollment_secret.not_recorded", NULL);
	if (c != NULL)
		db_release(*pool, c);
	return rc;
}

/* What serve checks and sets up before any thread or connection: not
 * root (K5), the configuration into CFG, the log level, the fd limit, the
 * password hasher, libcurl's global state. Returns BZ_EXIT_OK or the exit
 * status to end with (the reason printed). */
static int serve_prepare(const struct opts *o, struct config *cfg)
{
	if (geteuid() == 0 && !o->allow_root) {
		fprintf(stderr,
			"breeze-server: refusing to run as root (K5); run as an unprivileged "
			"user, or pass --allow-root for local development\n");
		return BZ_EXIT_REFUSED;
	}
	if (load_config(cfg, CONFIG_FOR_SERVE) != 0)
		return BZ_EXIT_CONFIG;
	if (cfg->env == BREEZE_ENV_DEVELOPMENT)
		log_set_level(LOG_LEVEL_DEBUG);
	if (raise_fd_limit(cfg) != BZ_EXIT_OK)
		return BZ_EXIT_REFUSED;
	init_passwords(cfg);
	/* libcurl's global state, once, before any thread starts. */
	if (outbound_global_init() != 0) {
		fprintf(stderr, "breeze-server: cannot initialise the HTTP client\n");
		return BZ_EXIT_FAILURE;
	}
	return BZ_EXIT_OK;
}

static int cmd_serve(struct opts *o)
{
	struct config cfg;
	struct app app;
	sigset_t set;
	int sig = 0;
	int rc = serve_prepare(o, &cfg);

	if (rc != BZ_EXIT_OK)
		return rc;
	memset(&app, 0, sizeof(app));
	app.cfg = &cfg;
	app.authenticate = auth_api_authenticate;
	rc = open_pool(&cfg, &app.pool);
	if (rc != BZ_EXIT_OK)
		return rc;

	/* Threads started below inherit this mask; only sigwait sees signals. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* The registration password policy's list is parsed once, here, so a
	 * broken build fails at start rather than at the first sign-up. */
	size_t n = 0;
	if (auth_password_policy_init(&n) != 0) {
		fprintf(stderr, "breeze-server: cannot load the common-password list\n");
		db_pool_close(app.pool);
		return BZ_EXIT_FAILURE;
	}
	if ((app.rl = open_ratelimit(&cfg)) == NULL) {
		fprintf(stderr, "breeze-server: cannot set up rate limiting\n");
		db_pool_close(app.pool);
		return BZ_EXIT_FAILURE;
	}
	struct route *routes = routes_serve(&cfg, &n);
	if (routes == NULL || agents_api_start(&cfg, app.pool, app.rl) != 0 ||
	    http_server_start(&app, routes, n) != 0) {
		fprintf(stderr, "breeze-server: cannot listen on %s:%u\n", cfg.listen_host,
			cfg.listen_port);
		agents_api_stop();
		free(routes);
		ratelimit_close(app.rl);
		db_pool_close(app.pool);
		return BZ_EXIT_FAILURE;
	}
	char port[8];
	snprintf(port, sizeof(port), "%u", cfg.listen_port);
	log_info("server.started", "listen", cfg.listen_host, "port", port, "version",
		 BREEZE_VERSION, NULL);
	http_static_check_root(&cfg);
	audit_worker_start(&cfg);
	webhook_worker_start(&cfg);
	agents_liveness_worker_start(&cfg);
	sigwait(&set, &sig);
	log_info("server.stopping", "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT", NULL);
	if (http_server_stop(&app, (int)cfg.http_drain_s * 1000) != 0) {
		/* Requests still hold pool connections: nothing can be freed
		 * safely, and the drain bound is a promise to the supervisor. */
		log_error("server.stopped", "forced", "true", NULL);
		_exit(BZ_EXIT_FAILURE);
	}
	agents_api_stop(); /* the drain answered every deferred heartbeat */
	agents_liveness_worker_stop();
	webhook_worker_stop();
	audit_worker_stop();
	free(routes);
	ratelimit_close(app.rl);
	db_pool_close(app.pool);
	log_info("server.stopped", NULL);
	return BZ_EXIT_OK;
}

static int cmd_migrate(struct opts *o)
{
	struct config cfg;
	int applied = 0;

	(void)o;
	if (load_config(&cfg, CONFIG_FOR_DATABASE) != 0)
		return BZ_EXIT_CONFIG;
	const char *url = cfg.migration_database_url;
	if (url == NULL || *url == '\0') {
		fprintf(stderr,
			"breeze-server: MIGRATION_DATABASE_URL not set; using DATABASE_URL\n");
		url = cfg.database_url;
	}
	PGconn *c = db_connect(url);
	if (c == NULL) {
		fprintf(stderr, "breeze-server: cannot connect to the database\n");
		return BZ_EXIT_UNAVAILABLE;
	}
	int rc = migrate_apply(c, &applied);
	PQfinish(c);
	if (rc != 0) {
		fprintf(stderr, "breeze-server: migration failed (see log)\n");
		return BZ_EXIT_FAILURE;
	}
	printf("migrations applied: %d\n", applied);
	return BZ_EXIT_OK;
}

static int cmd_maintain(struct opts *o)
{
	struct config cfg;

	(void)o;
	if (load_config(&cfg, CONFIG_FOR_DATABASE) != 0)
		return BZ_EXIT_CONFIG;
	PGconn *c = db_connect(cfg.database_url);
	if (c == NULL) {
		fprintf(stderr, "breeze-server: cannot connect to the database\n");
		return BZ_EXIT_UNAVAILABLE;
	}
	int rc = agents_maintain_once(c, &cfg, stdout);
	PQfinish(c);
	if (rc != 0) {
		fprintf(stderr, "breeze-server: maintenance failed (see log)\n");
		return BZ_EXIT_FAILURE;
	}
	return BZ_EXIT_OK;
}

static int read_password_stdin(char *buf, size_t len)
{
	if (fgets(buf, (int)len, stdin) == NULL)
		return BZ_ERR_IO;
	buf[strcspn(buf, "\r\n")] = '\0';
	return buf[0] ? 0 : BZ_ERR_INVALID;
}

static int cmd_bootstrap(struct opts *o)
{
	struct config cfg;
	struct bootstrap_result res;
	char password[1100] = "";
	int generated = 0, rc = BZ_EXIT_FAILURE;

	if (!o->email || !o->name || !o->partner || !o->org || !o->site) {
		fprintf(stderr,
			"breeze-server: bootstrap needs --email --name --partner --org --site\n");
		return BZ_EXIT_USAGE;
	}
	if (load_config(&cfg, CONFIG_FOR_DATABASE) != 0)
		return BZ_EXIT_CONFIG;
	init_passwords(&cfg);
	if (o->password_stdin || !isatty(STDIN_FILENO)) {
		if (read_password_stdin(password, sizeof(password)) != 0 && o->password_stdin) {
			fprintf(stderr, "breeze-server: no password on stdin\n");
			return BZ_EXIT_USAGE;
		}
	}
	if (password[0] == '\0') {
		if (crypto_random_hex(16, password) != 0)
			return BZ_EXIT_FAILURE;
		generated = 1;
	}
	PGconn *c = db_connect(cfg.database_url);
	if (c == NULL) {
		fprintf(stderr, "breeze-server: cannot connect to the database\n");
		rc = BZ_EXIT_UNAVAILABLE;
		goto out;
	}
	struct bootstrap_input in = {o->email, o->name, o->partner, o->org, o->site, password};
	int err = bootstrap_run(c, &in, &res);
	PQfinish(c);
	if (err == BZ_ERR_CONFLICT) {
		fprintf(stderr, "breeze-server: refused: an administrator already exists\n");
		rc = BZ_EXIT_REFUSED;
		goto out;
	}
	if (err == BZ_ERR_INVALID) {
		fprintf(stderr, "breeze-server: invalid input (e-mail address, non-empty names, "
				"password of at least 12 characters)\n");
		rc = BZ_EXIT_USAGE;
		goto out;
	}
	if (err != 0) {
		fprintf(stderr, "breeze-server: bootstrap failed (see log)\n");
		goto out;
	}
	printf("admin e-mail: %s\n", o->email);
	if (generated)
		printf("admin password (shown once): %s\n", password);
	printf("{\"partnerId\":\"%s\",\"orgId\":\"%s\",\"siteId\":\"%s\",\"userId\":\"%s\"}\n",
	       res.partner_id, res.org_id, res.site_id, res.user_id);
	rc = BZ_EXIT_OK;
out:
	crypto_wipe(password, sizeof(password));
	return rc;
}

/* Passwords of the container deployment (deploy/docker-compose.prod.yml)
 * that the server itself never reads: the compose file builds
 * DATABASE_URL, AUDIT_ADMIN_DATABASE_URL and REDIS_URL from them. */
static const char *const compose_secrets[] = {
	"POSTGRES_PASSWORD",
	"BREEZE_OWNER_DB_PASSWORD",
	"BREEZE_APP_DB_PASSWORD",
	"BREEZE_AUDIT_DB_PASSWORD",
	"REDIS_PASSWORD",
	"GRAFANA_ADMIN_PASSWORD",
	"TURN_SECRET",
};

/* gen-secrets: every server secret of config.c (S1: 32 bytes from
 * RAND_bytes, hex), and with COMPOSE also the deployment's passwords, one
 * KEY=VALUE line each on stdout. Returns an exit status. */
static int cmd_gen_secrets(int compose)
{
	char hex[65];

	printf("# Generated by breeze-server gen-secrets: 32 random bytes each (S1).\n"
	       "# Keep this file mode 0600 and out of version control (S2, S3).\n");
	for (int s = 0; s < SECRET_COUNT; s++) {
		/* Set only while rotating: it names the key being replaced. */
		if (s == SECRET_MFA_ENCRYPTION_KEY_PREVIOUS)
			continue;
		if (crypto_random_hex(32, hex) != 0)
			return BZ_EXIT_FAILURE;
		printf("%s=%s\n", config_secret_name((enum config_secret)s), hex);
	}
	for (size_t i = 0; compose && i < sizeof(compose_secrets) / sizeof(compose_secrets[0]);
	     i++) {
		if (crypto_random_hex(32, hex) != 0)
			return BZ_EXIT_FAILURE;
		printf("%s=%s\n", compose_secrets[i], hex);
	}
	if (compose)
		printf("# Set these two before `docker compose up` (docs/deploy.md):\n"
		       "# BREEZE_DOMAIN=rmm.example.com\n"
		       "# ACME_EMAIL=ops@example.com\n");
	crypto_wipe(hex, sizeof(hex));
	return BZ_EXIT_OK;
}

int main(int argc, char **argv)
{
	struct opts o;
	int rc;

	if (argc < 2) {
		usage(stderr);
		return BZ_EXIT_USAGE;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "help") || is_help(cmd)) {
		const char *text = argc == 3 ? command_usage(is_help(argv[2]) ? "help" : argv[2])
					     : NULL;
		if (argc > 3 || (argc == 3 && text == NULL)) {
			fputs(command_usage("help"), stderr);
			return BZ_EXIT_USAGE;
		}
		if (text != NULL && !strcmp(argv[2], "audit")) {
			static char a0[] = "audit", a1[] = "help";
			char *hv[] = {a0, a1, NULL};
			return audit_cli_main(2, hv);
		}
		if (text != NULL && !strcmp(argv[2], "check")) {
			static char c0[] = "check", c1[] = "--help";
			char *hv[] = {c0, c1, NULL};
			return check_cli_main(2, hv);
		}
		if (text != NULL && !strcmp(argv[2], "rotate-encryption-key")) {
			static char r0[] = "rotate-encryption-key", r1[] = "--help";
			char *hv[] = {r0, r1, NULL};
			return settings_cli_main(2, hv);
		}
		if (text != NULL)
			fputs(text, stdout);
		else
			usage(stdout);
		return BZ_EXIT_OK;
	}
	/* version, gen-secrets and routes take no option but --help
	 * (gen-secrets: and --compose). */
	if (!strcmp(cmd, "version") || !strcmp(cmd, "--version") || !strcmp(cmd, "gen-secrets") ||
	    !strcmp(cmd, "routes")) {
		const char *text = command_usage(cmd[0] == '-' ? "version" : cmd);
		if (argc == 3 && is_help(argv[2])) {
			fputs(text, stdout);
			return BZ_EXIT_OK;
		}
		int compose = !strcmp(cmd, "gen-secrets") && argc >= 3 &&
			      !strcmp(argv[2], "--compose");
		if (argc > 2 + compose) {
			fprintf(stderr, "breeze-server: unexpected argument '%s'\n",
				argv[2 + compose]);
			fputs(text, stderr);
			return BZ_EXIT_USAGE;
		}
		if (!strcmp(cmd, "gen-secrets"))
			return cmd_gen_secrets(compose);
		if (!strcmp(cmd, "routes"))
			return routes_print_json(stdout) == 0 ? BZ_EXIT_OK : BZ_EXIT_FAILURE;
		printf("breeze-server %s\n", BREEZE_VERSION);
		return BZ_EXIT_OK;
	}
	if (!strcmp(cmd, "check")) {
		curl_global_init(CURL_GLOBAL_DEFAULT);
		rc = check_cli_main(argc - 1, argv + 1);
		curl_global_cleanup();
		return rc;
	}
	if (!strcmp(cmd, "audit")) {
		curl_global_init(CURL_GLOBAL_DEFAULT);
		rc = audit_cli_main(argc - 1, argv + 1);
		curl_global_cleanup();
		return rc;
	}
	if (!strcmp(cmd, "rotate-encryption-key"))
		return settings_cli_main(argc - 1, argv + 1);
	if (command_usage(cmd) == NULL) {
		fprintf(stderr, "breeze-server: unknown command '%s'\n", cmd);
		usage(stderr);
		return BZ_EXIT_USAGE;
	}
	if ((rc = parse_opts(argc - 1, argv + 1, &o)) != BZ_EXIT_OK) {
		if (rc == BZ_EXIT_USAGE)
			fputs(command_usage(cmd), stderr);
		return rc;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (!strcmp(cmd, "serve"))
		rc = cmd_serve(&o);
	else if (!strcmp(cmd, "migrate"))
		rc = cmd_migrate(&o);
	else if (!strcmp(cmd, "maintain"))
		rc = cmd_maintain(&o);
	else
		rc = cmd_bootstrap(&o);
	curl_global_cleanup();
	return rc;
}
