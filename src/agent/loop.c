#include "agent/loop.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "agent/client.h"
#include "agent/config.h"
#include "agent/inventory.h"
#include "agent/rotate.h"
#include "common/clock.h"
#include "common/log.h"

volatile sig_atomic_t agent_loop_stop = 0;

enum agent_outcome agent_loop_classify(long status)
{
	if (status >= 200 && status < 300)
		return AGENT_OUTCOME_OK;
	if (status == 401)
		return AGENT_OUTCOME_REENROLL;
	if (status == 403 || status == 404)
		return AGENT_OUTCOME_FORBIDDEN;
	if (status == 429)
		return AGENT_OUTCOME_RATE_LIMITED;
	/* Transport errors, 5xx, and anything unexpected (3xx, 400, 413…):
	 * retrying with backoff is safe and bounded. */
	return AGENT_OUTCOME_RETRY;
}

int agent_loop_exit_code(enum agent_outcome outcome)
{
	switch (outcome) {
	case AGENT_OUTCOME_REENROLL:
		return BZ_EXIT_REJECTED;
	case AGENT_OUTCOME_FORBIDDEN:
		return BZ_EXIT_DISABLED;
	default:
		return -EAGAIN;
	}
}

/* Uniform value in [lo, hi] (hi >= lo). Modulo bias is below 2^-40 for the
 * ranges used here. */
static uint64_t uniform(uint64_t lo, uint64_t hi, agent_rand_fn rnd, void *ctx)
{
	uint64_t span = hi - lo;

	if (span == UINT64_MAX)
		return rnd(ctx);
	return lo + rnd(ctx) % (span + 1);
}

uint64_t agent_next_delay_ms(const struct agent_delay_input *in, agent_rand_fn rnd, void *ctx)
{
	switch (in->outcome) {
	case AGENT_OUTCOME_OK: {
		uint64_t base =
			(uint64_t)(in->interval_s > 0 ? in->interval_s : AGENT_INTERVAL_DEFAULT_S) *
			1000;
		return uniform(base - base / 10, base + base / 10, rnd, ctx);
	}
	case AGENT_OUTCOME_RATE_LIMITED: {
		/* R6: the server's Retry-After is a floor, never shortened. */
		long long ra = in->retry_after_s >= 0 ? in->retry_after_s
						      : AGENT_RETRY_AFTER_DEFAULT_S;
		uint64_t ms = (uint64_t)ra * 1000;
		return uniform(ms, ms + ms / 10, rnd, ctx);
	}
	default: {
		uint64_t cap = AGENT_BACKOFF_CAP_MS;
		/* 2^9 s already exceeds the cap; stop shifting before overflow. */
		if (in->failures < 9 && (AGENT_BACKOFF_BASE_MS << in->failures) < cap)
			cap = AGENT_BACKOFF_BASE_MS << in->failures;
		return uniform(0, cap, rnd, ctx);
	}
	}
}

uint64_t agent_loop_random(void *ctx)
{
	uint64_t v = 0;

	(void)ctx;
	/* getrandom on a small buffer does not fail once the pool is ready;
	 * if it ever did, a zero delay is still a valid choice. */
	if (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v))
		v = (uint64_t)bz_monotonic_ms();
	return v;
}

/* Self-pipe: the signal handler writes a byte so that a sleep in poll(2)
 * wakes at once, whichever thread took the signal; -1 until
 * agent_loop_install_signals() made it. */
static int wake_fd[2] = {-1, -1};

static void on_signal(int sig)
{
	int saved = errno;

	(void)sig;
	agent_loop_stop = 1;
	/* Async-signal-safe; a full pipe (EAGAIN) already wakes the sleeper. */
	if (wake_fd[1] >= 0) {
		ssize_t w = write(wake_fd[1], "", 1);
		(void)w;
	}
	errno = saved;
}

int agent_loop_install_signals(void)
{
	struct sigaction sa;

	if (wake_fd[0] < 0 && pipe2(wake_fd, O_NONBLOCK | O_CLOEXEC) != 0)
		return -errno;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: a signal must cut a sleep short. */
	if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0)
		return -errno;
	/* CURLOPT_NOSIGNAL leaves SIGPIPE to us. */
	sa.sa_handler = SIG_IGN;
	if (sigaction(SIGPIPE, &sa, NULL) != 0)
		return -errno;
	return 0;
}

int agent_loop_sleep_ms(uint64_t ms)
{
	uint64_t end = (uint64_t)bz_monotonic_ms() + ms;
	char drain[64];

	/* With the self-pipe, one poll(2) for the whole wait: a signal that
	 * arrives before it left a byte in the pipe, so none goes unnoticed,
	 * and the agent wakes once per heartbeat instead of twice a second
	 * (each wake-up cost CPU: docs/performance.md, bench/agent.sh).
	 * Without it (no handlers installed), 500 ms slices. */
	while (!agent_loop_stop) {
		uint64_t now = (uint64_t)bz_monotonic_ms();
		if (now >= end)
			return 0;
		uint64_t left = end - now;
		if (wake_fd[0] < 0) {
			struct timespec ts = {.tv_sec = 0,
					      .tv_nsec =
						      (long)(left < 500 ? left : 500) * 1000000L};
			nanosleep(&ts, NULL);
			continue;
		}
		struct pollfd p = {.fd = wake_fd[0], .events = POLLIN};
		if (poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left) > 0)
			while (read(wake_fd[0], drain, sizeof(drain)) > 0)
				;
	}
	return 1;
}

static void log_num(enum log_level level, const char *msg, const char *k1, json_t *v1,
		    const char *k2, json_t *v2)
{
	json_t *f = json_object();

	if (f == NULL)
		return;
	if (k1 != NULL)
		json_object_set_new(f, k1, v1);
	if (k2 != NULL)
		json_object_set_new(f, k2, v2);
	log_json(level, msg, f);
	json_decref(f);
}

/* State of a running agent. The tokens live only here and in secrets.yaml. */
struct agent_state {
	const char *dir;
	struct agent_config cfg;
	struct agent_tokens tokens;
	char *heartbeat_url;
	char *rotate_url;  /* POST …/rotate-token */
	char *confirm_url; /* POST …/rotate-token/confirm */
	struct agent_cpu_sample cpu;
	unsigned failures;
	int state_unsaved; /* the last state.yaml write failed (logged once) */
};

/* *OUT = BASE + "/api/v1/agents/" + ID + "/" + WHAT (malloc'd). Returns 0,
 * -EINVAL or -ENOMEM. */
static int join_agent_url(const char *base, const char *id, const char *what, char **out)
{
	char path[256];

	if (snprintf(path, sizeof(path), "/api/v1/agents/%s/%s", id, what) >= (int)sizeof(path))
		return -EINVAL;
	return agent_http_join(base, path, out);
}

/* Loads the config and the token and builds the heartbeat URL, logging one
 * clear line on failure. Returns 0; -ENOENT if not enrolled (agent.yaml or
 * secrets.yaml missing); -EPERM if secrets.yaml fails the checks of
 * agent_config_check_secrets(); -EBADMSG for a malformed file; -EINVAL for
 * an unusable serverUrl; -ENAMETOOLONG, -ENOMEM or another -errno from
 * reading the files. */
static int startup(struct agent_state *s)
{
	char path[PATH_MAX], err[128] = "";
	char *base = NULL;
	int rc;

	rc = agent_config_load(s->dir, &s->cfg);
	if (rc == -ENOENT) {
		log_error("agent.not_enrolled", "configDir", s->dir, "hint",
			  "run `breeze-agent enroll` first", NULL);
		return rc;
	}
	if (rc != 0) {
		log_error("agent.config_invalid", "configDir", s->dir, "file", AGENT_CONFIG_FILE,
			  "error",
			  rc == -EBADMSG ? "malformed or missing serverUrl/agentId" : strerror(-rc),
			  NULL);
		return rc;
	}
	if ((rc = agent_config_path(s->dir, AGENT_SECRETS_FILE, path, sizeof(path))) != 0)
		return rc;
	rc = agent_config_check_secrets(path);
	if (rc != AGENT_PERM_OK) {
		log_error("agent.secrets_refused", "path", path, "error", agent_config_perm_str(rc),
			  NULL);
		return rc == AGENT_PERM_MISSING ? -ENOENT : -EPERM;
	}
	rc = agent_config_load_tokens(s->dir, &s->tokens.token, &s->tokens.pending);
	if (rc != 0) {
		log_error("agent.secrets_invalid", "path", path, "error",
			  rc == -EBADMSG ? "missing or malformed authToken" : strerror(-rc), NULL);
		return rc;
	}
	if ((rc = agent_http_normalize_url(s->cfg.server_url, &base, err, sizeof(err))) != 0) {
		log_error("agent.config_invalid", "file", AGENT_CONFIG_FILE, "field", "serverUrl",
			  "error", err, NULL);
		return rc;
	}
	if (strncmp(base, "http://", 7) == 0)
		log_warn("agent.insecure_transport", "serverUrl", base, "hint",
			 "use https outside development", NULL);
	rc = join_agent_url(base, s->cfg.agent_id, "heartbeat", &s->heartbeat_url);
	if (rc == 0)
		rc = join_agent_url(base, s->cfg.agent_id, "rotate-token", &s->rotate_url);
	if (rc == 0)
		rc = join_agent_url(base, s->cfg.agent_id, "rotate-token/confirm", &s->confirm_url);
	free(base);
	if (rc != 0) {
		log_error("agent.config_invalid", "field", "serverUrl", "error",
			  "cannot build the agent URLs", NULL);
		return rc;
	}
	return 0;
}

/* Rotation work after an accepted heartbeat: retry a save that failed,
 * confirm a pending token (left by a crash or a failed confirm), or start a
 * rotation the server asked for (ROTATE) and confirm it at once. */
static void rotate_if_asked(struct agent_state *s, int rotate)
{
	agent_rotate_save(s->dir, &s->tokens);
	if (rotate && s->tokens.pending == NULL &&
	    agent_rotate_start(s->dir, s->rotate_url, &s->tokens, &agent_loop_stop) !=
		    AGENT_ROTATE_DONE)
		return;
	agent_rotate_confirm(s->dir, s->confirm_url, &s->tokens, &agent_loop_stop);
}

static void apply_response(struct agent_state *s, const json_t *body)
{
	long iv = 0;
	int rotate = 0;
	int rc = agent_http_parse_heartbeat(body, &iv, &rotate);

	rotate_if_asked(s, rotate);
	if (iv > 0 && iv != s->cfg.heartbeat_interval_s) {
		long old = s->cfg.heartbeat_interval_s;
		s->cfg.heartbeat_interval_s = iv;
		rc = agent_config_save(s->dir, &s->cfg);
		log_num(LOG_LEVEL_INFO, "agent.interval_changed", "from", json_integer(old), "to",
			json_integer(iv));
		if (rc != 0)
			log_error("agent.config_save_failed", "error", strerror(-rc), NULL);
	}
}

/* Writes the time of this accepted heartbeat to state.yaml. A failure does
 * not stop the agent (the server has the heartbeat); it is logged once per
 * run of failures, not every interval. */
static void record_heartbeat(struct agent_state *s)
{
	int rc = agent_config_save_last_heartbeat(s->dir, bz_now());

	if (rc == 0) {
		s->state_unsaved = 0;
		return;
	}
	if (!s->state_unsaved)
		log_warn("agent.state_save_failed", "file", AGENT_STATE_FILE, "error",
			 strerror(-rc), NULL);
	s->state_unsaved = 1;
}

/* One heartbeat. Returns the outcome and the server's Retry-After. */
static enum agent_outcome heartbeat(struct agent_state *s, long long *retry_after_s)
{
	struct agent_host host;
	struct agent_metrics m;
	struct agent_http_result res;
	enum agent_outcome o;
	char desc[512];
	json_t *body;
	int rc;

	*retry_after_s = AGENT_RETRY_AFTER_NONE;
	agent_inventory_collect_host(&host);
	agent_inventory_collect_metrics(&m, &s->cpu);
	body = agent_http_heartbeat_body(&host, &m);
	if (body == NULL) {
		log_error("agent.heartbeat_failed", "error", "cannot build request body", NULL);
		return AGENT_OUTCOME_RETRY;
	}
	rc = agent_http_post_json(s->heartbeat_url, s->tokens.token, body, &agent_loop_stop, &res);
	json_decref(body);
	if (rc != 0) {
		if (rc != -ECANCELED)
			log_warn("agent.heartbeat_failed", "error",
				 res.error[0] ? res.error : strerror(-rc), NULL);
		agent_http_result_free(&res);
		return AGENT_OUTCOME_RETRY;
	}
	o = agent_loop_classify(res.status);
	*retry_after_s = res.retry_after_s;
	if (o == AGENT_OUTCOME_OK) {
		if (s->failures > 0)
			log_info("agent.heartbeat_recovered", NULL);
		log_debug("agent.heartbeat_ok", NULL);
		apply_response(s, res.body);
		record_heartbeat(s);
	} else {
		agent_http_describe_error(&res, desc, sizeof(desc));
		switch (o) {
		case AGENT_OUTCOME_REENROLL:
			if (s->tokens.pending != NULL) {
				log_warn("agent.token_refused", "agentId", s->cfg.agent_id, "error",
					 desc, NULL);
				break;
			}
			log_error(
				"agent.reenroll_required", "agentId", s->cfg.agent_id, "error",
				desc, "hint",
				"the server no longer accepts this agent's token; enrol again with `breeze-agent enroll --force` (a new device)",
				NULL);
			break;
		case AGENT_OUTCOME_FORBIDDEN:
			log_error("agent.refused", "agentId", s->cfg.agent_id, "error", desc,
				  "hint", "the device is disabled or deleted on the server", NULL);
			break;
		default:
			log_warn("agent.heartbeat_failed", "error", desc, NULL);
		}
	}
	agent_http_result_free(&res);
	return o;
}

int agent_loop_run(const char *config_dir)
{
	struct agent_state s;
	int status = BZ_EXIT_OK;

	memset(&s, 0, sizeof(s));
	s.dir = config_dir;
	if (startup(&s) != 0) {
		status = BZ_EXIT_CONFIG;
		goto out;
	}
	if (agent_loop_install_signals() != 0) {
		log_error("agent.start_failed", "error", "cannot install signal handlers", NULL);
		status = BZ_EXIT_FAILURE;
		goto out;
	}
	log_info("agent.started", "agentId", s.cfg.agent_id, "serverUrl", s.cfg.server_url,
		 "version", AGENT_VERSION, NULL);
	/* A rotation interrupted by a crash or a stop: settle it first. */
	agent_rotate_confirm(s.dir, s.confirm_url, &s.tokens, &agent_loop_stop);

	while (!agent_loop_stop) {
		struct agent_delay_input in = {0};
		long long ra;
		enum agent_outcome o = heartbeat(&s, &ra);
		int code = agent_loop_exit_code(o);

		if (agent_loop_stop)
			break;
		/* A confirm whose answer was lost leaves the server on the
		 * pending token: try it before giving up (never locked out). */
		if (o == AGENT_OUTCOME_REENROLL && agent_rotate_fall_back(s.dir, &s.tokens))
			continue;
		if (code >= 0) {
			status = code;
			goto out;
		}
		in.outcome = o;
		in.failures = s.failures;
		in.interval_s = s.cfg.heartbeat_interval_s;
		in.retry_after_s = ra;
		uint64_t delay = agent_next_delay_ms(&in, agent_loop_random, NULL);
		if (o == AGENT_OUTCOME_OK)
			s.failures = 0;
		else if (o == AGENT_OUTCOME_RETRY && s.failures < UINT_MAX)
			s.failures++;
		if (o != AGENT_OUTCOME_OK)
			log_num(LOG_LEVEL_INFO, "agent.retry_scheduled", "delayMs",
				json_integer((json_int_t)delay), "failures",
				json_integer((json_int_t)s.failures));
		if (agent_loop_sleep_ms(delay))
			break;
	}
	log_info("agent.stopped", "reason", "signal", NULL);
out:
	agent_rotate_tokens_free(&s.tokens);
	free(s.heartbeat_url);
	free(s.rotate_url);
	free(s.confirm_url);
	agent_config_free(&s.cfg);
	return status;
}
