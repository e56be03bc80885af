/*
 * loop.h — `breeze-agent run`: heartbeat, obey the server, back off.
 *
 * The timing decisions are one pure function, agent_next_delay_ms(), with
 * the random source passed in so tests can pin it:
 *   success       interval ±10 % (spreads a fleet that started together)
 *   network / 5xx full jitter: uniform in [0, min(cap, base·2^n)], base 1 s,
 *                 cap 5 min, n = consecutive failures before this one
 *   429           Retry-After (or 60 s without one), never less (R6), plus
 *                 up to 10 % so rate-limited agents do not return together
 * 401 ends the process with BZ_EXIT_REJECTED (6: re-enrolment needed),
 * 403/404 with BZ_EXIT_DISABLED (7) (common/exitcode.h).
 *
 * A heartbeat answer with "rotateToken": true starts a token rotation
 * (agent/rotate.h) right after it; a pending token left by a crash is
 * confirmed at start.
 *
 * Every accepted heartbeat is recorded in DIR/state.yaml
 * (agent_config_save_last_heartbeat) for `breeze-agent status`.
 */
#ifndef BZ_AGENT_LOOP_H
#define BZ_AGENT_LOOP_H

#include <signal.h>
#include <stdint.h>

#include "common/exitcode.h"

#define AGENT_BACKOFF_BASE_MS 1000ULL
#define AGENT_BACKOFF_CAP_MS 300000ULL
#define AGENT_RETRY_AFTER_DEFAULT_S 60

enum agent_outcome {
	AGENT_OUTCOME_OK,	    /* 2xx */
	AGENT_OUTCOME_RETRY,	    /* transport error, 5xx, other unexpected status */
	AGENT_OUTCOME_RATE_LIMITED, /* 429 */
	AGENT_OUTCOME_REENROLL,	    /* 401 */
	AGENT_OUTCOME_FORBIDDEN,    /* 403, 404 */
};

/* A uniform random 64-bit value; CTX is the caller's. */
typedef uint64_t (*agent_rand_fn)(void *ctx);

struct agent_delay_input {
	enum agent_outcome outcome;
	unsigned failures;	 /* consecutive RETRY outcomes before this one */
	long interval_s;	 /* current heartbeat interval, > 0 */
	long long retry_after_s; /* from the 429 response; < 0 (AGENT_RETRY_AFTER_NONE) if
				  * absent */
};

/* Maps an HTTP status (0 = no response) to an outcome. */
enum agent_outcome agent_loop_classify(long status);

/* Process exit status (enum bz_exit, >= 0) for a terminal outcome: REENROLL
 * gives BZ_EXIT_REJECTED, FORBIDDEN BZ_EXIT_DISABLED. Returns -EAGAIN for
 * every other outcome: the loop goes on. */
int agent_loop_exit_code(enum agent_outcome outcome);

/* Milliseconds to wait before the next request after IN (rules above).
 * Pure apart from calling RND(CTX) at most once. Only meaningful for OK,
 * RETRY and RATE_LIMITED. */
uint64_t agent_next_delay_ms(const struct agent_delay_input *in, agent_rand_fn rnd, void *ctx);

/* Random source for production: getrandom(2). CTX is unused. */
uint64_t agent_loop_random(void *ctx);

/* Set by SIGTERM/SIGINT once agent_loop_install_signals() ran; the loop
 * and in-flight HTTP requests stop when it becomes non-zero. */
extern volatile sig_atomic_t agent_loop_stop;

/* Installs SIGTERM/SIGINT handlers that set agent_loop_stop, and ignores
 * SIGPIPE. Returns 0 or -errno. */
int agent_loop_install_signals(void);

/* Sleeps MS milliseconds on the monotonic clock, waking early when
 * agent_loop_stop is set: after agent_loop_install_signals() in one poll(2)
 * on the handlers' self-pipe (a signal taken by any thread wakes it),
 * before it in 500 ms slices. Returns 1 if stopped, 0 if the time elapsed. */
int agent_loop_sleep_ms(uint64_t ms);

/* Runs the agent from CONFIG_DIR until stopped or told to exit. Refuses to
 * start (BZ_EXIT_CONFIG, one clear log line) if not enrolled, if the config
 * is invalid or if secrets.yaml fails agent_config_check_secrets(). Returns
 * the process exit status (enum bz_exit): BZ_EXIT_OK after SIGTERM/SIGINT. */
int agent_loop_run(const char *config_dir);

#endif
