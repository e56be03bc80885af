/*
 * rotate.h — agent token rotation, the agent's half (server routes
 * POST /api/v1/agents/:agentId/rotate-token and …/rotate-token/confirm).
 *
 * Two phases, so that secrets.yaml always holds a token the server accepts:
 *   1. rotate-token with the current token → a new, pending token. It is
 *      written to secrets.yaml as pendingToken next to authToken (one atomic
 *      replacement) before it is used.
 *   2. confirm with the pending token → it becomes current (the server
 *      keeps the old one valid for a 5-minute grace period), and
 *      secrets.yaml is rewritten with it alone.
 * A crash between the two leaves both tokens on disk; the next start
 * confirms the pending one (or drops it if the server no longer knows it)
 * and carries on with whichever works. An unsaved rotation is never
 * confirmed: if pendingToken cannot be written, the rotation is abandoned
 * and the current token stays in use.
 */
#ifndef BZ_AGENT_ROTATE_H
#define BZ_AGENT_ROTATE_H

#include <signal.h>

/* The agent's tokens. Both strings are owned (free with
 * agent_rotate_tokens_free) and never logged. */
struct agent_tokens {
	char *token;   /* the token requests are made with */
	char *pending; /* a rotated token not yet confirmed, or NULL */
	int unsaved;   /* token was confirmed but secrets.yaml still has the old pair */
};

enum agent_rotate_result {
	AGENT_ROTATE_DONE,     /* the step finished (or there was nothing to do) */
	AGENT_ROTATE_RETRY,    /* no answer, 5xx, 429: try again at a later heartbeat */
	AGENT_ROTATE_DECLINED, /* the server refused (409, 401, bad response); logged */
};

/*
 * Phase 1: asks URL (the rotate-token endpoint) for a new token with
 * T->token and stores it as T->pending, saving both to DIR/secrets.yaml.
 * CANCEL is polled during the request. Does nothing when T->pending is
 * already set. Returns an enum agent_rotate_result.
 */
enum agent_rotate_result agent_rotate_start(const char *dir, const char *url,
					    struct agent_tokens *t, volatile sig_atomic_t *cancel);

/*
 * Phase 2: confirms T->pending at URL (the confirm endpoint). On 200, or
 * 409 already_confirmed, the pending token becomes T->token; on 409
 * rotation_expired or 401 it is dropped and T->token stays. secrets.yaml in
 * DIR is rewritten either way (T->unsaved when that fails; retried by
 * agent_rotate_save). Does nothing without T->pending. Returns an enum
 * agent_rotate_result.
 */
enum agent_rotate_result agent_rotate_confirm(const char *dir, const char *url,
					      struct agent_tokens *t,
					      volatile sig_atomic_t *cancel);

/* After the server refused T->token (401): when a pending token is held,
 * makes it the token and saves, so the caller can try again with it — the
 * server may have made it current by a confirm whose answer was lost, or
 * still hold it pending (a heartbeat with it confirms it). Returns 1 if it
 * switched, 0 if there was no pending token. */
int agent_rotate_fall_back(const char *dir, struct agent_tokens *t);

/* Writes T->token alone to DIR/secrets.yaml if T->unsaved, clearing it on
 * success (a failure is logged). */
void agent_rotate_save(const char *dir, struct agent_tokens *t);

/* Zeroes and frees T's tokens. NULL-safe. */
void agent_rotate_tokens_free(struct agent_tokens *t);

#endif
