/*
 * rotate.c — agent token rotation, the agent's half; the protocol and the
 * crash-safety argument are in rotate.h.
 */
#include "agent/rotate.h"

#include <errno.h>
#include <string.h>

#include <jansson.h>

#include "agent/client.h"
#include "agent/config.h"
#include "common/log.h"

/* POSTs {} to URL with BEARER into RES. Returns agent_http_post_json's. */
static int post_empty(const char *url, const char *bearer, volatile sig_atomic_t *cancel,
		      struct agent_http_result *res)
{
	json_t *body = json_object();
	int rc;

	if (body == NULL) {
		memset(res, 0, sizeof(*res));
		return -ENOMEM;
	}
	rc = agent_http_post_json(url, bearer, body, cancel, res);
	json_decref(body);
	return rc;
}

/* Maps a failed exchange to RETRY (worth another try later) or DECLINED,
 * logging it as STEP. */
static enum agent_rotate_result failed(const char *step, int rc, struct agent_http_result *res)
{
	char desc[512];

	if (rc != 0) {
		if (rc != -ECANCELED)
			log_warn("agent.token_rotation_failed", "step", step, "error",
				 res->error[0] ? res->error : strerror(-rc), NULL);
		return AGENT_ROTATE_RETRY;
	}
	agent_http_describe_error(res, desc, sizeof(desc));
	if (res->status >= 500 || res->status == 429) {
		log_warn("agent.token_rotation_failed", "step", step, "error", desc, NULL);
		return AGENT_ROTATE_RETRY;
	}
	log_warn("agent.token_rotation_declined", "step", step, "error", desc, NULL);
	return AGENT_ROTATE_DECLINED;
}

enum agent_rotate_result agent_rotate_start(const char *dir, const char *url,
					    struct agent_tokens *t, volatile sig_atomic_t *cancel)
{
	struct agent_http_result res;
	enum agent_rotate_result out;
	char *fresh = NULL;
	int rc;

	if (t->pending != NULL)
		return AGENT_ROTATE_DONE;
	rc = post_empty(url, t->token, cancel, &res);
	if (rc != 0 || res.status != 200) {
		out = failed("rotate", rc, &res);
		agent_http_result_free(&res);
		return out;
	}
	rc = agent_http_parse_rotation(res.body, &fresh);
	agent_http_result_free(&res);
	if (rc != 0) {
		log_warn("agent.token_rotation_declined", "step", "rotate", "error",
			 "response has no valid authToken", NULL);
		return AGENT_ROTATE_DECLINED;
	}
	/* The new token goes to disk before it is used: a token the server
	 * switches to must never exist only in memory. */
	if ((rc = agent_config_save_tokens(dir, t->token, fresh)) != 0) {
		log_error("agent.token_save_failed", "step", "rotate", "error", strerror(-rc),
			  "hint", "rotation abandoned; the current token stays in use", NULL);
		agent_config_free_token(fresh);
		return AGENT_ROTATE_DECLINED;
	}
	t->pending = fresh;
	log_info("agent.token_rotation_started", NULL);
	return AGENT_ROTATE_DONE;
}

/* Makes the pending token current (KEEP) or drops it, and saves. */
static void settle(const char *dir, struct agent_tokens *t, int keep)
{
	if (keep) {
		agent_config_free_token(t->token);
		t->token = t->pending;
	} else {
		agent_config_free_token(t->pending);
	}
	t->pending = NULL;
	t->unsaved = 1;
	agent_rotate_save(dir, t);
}

enum agent_rotate_result agent_rotate_confirm(const char *dir, const char *url,
					      struct agent_tokens *t, volatile sig_atomic_t *cancel)
{
	struct agent_http_result res;
	enum agent_rotate_result out = AGENT_ROTATE_DONE;
	int rc;

	if (t->pending == NULL)
		return AGENT_ROTATE_DONE;
	rc = post_empty(url, t->pending, cancel, &res);
	const char *code = rc == 0 ? agent_http_error_code(&res) : "";
	if (rc == 0 &&
	    (res.status == 200 || (res.status == 409 && strcmp(code, "already_confirmed") == 0))) {
		settle(dir, t, 1);
		log_info("agent.token_rotated", NULL);
	} else if (rc == 0 && (res.status == 401 ||
			       (res.status == 409 && strcmp(code, "rotation_expired") == 0))) {
		/* The server no longer takes the pending token; the current
		 * one still works (rotation never locks an agent out). */
		out = failed("confirm", rc, &res);
		settle(dir, t, 0);
	} else {
		out = failed("confirm", rc, &res);
	}
	agent_http_result_free(&res);
	return out;
}

int agent_rotate_fall_back(const char *dir, struct agent_tokens *t)
{
	if (t->pending == NULL)
		return 0;
	log_warn("agent.token_fallback", "hint",
		 "the server refused the current token; trying the rotated one", NULL);
	settle(dir, t, 1);
	return 1;
}

void agent_rotate_save(const char *dir, struct agent_tokens *t)
{
	int rc;

	if (!t->unsaved)
		return;
	if ((rc = agent_config_save_tokens(dir, t->token, t->pending)) != 0) {
		/* The server may already have switched: keep the token in
		 * memory and retry at every heartbeat. */
		log_error("agent.token_save_failed", "error", strerror(-rc), NULL);
		return;
	}
	t->unsaved = 0;
}

void agent_rotate_tokens_free(struct agent_tokens *t)
{
	if (t == NULL)
		return;
	agent_config_free_token(t->token);
	agent_config_free_token(t->pending);
	memset(t, 0, sizeof(*t));
}
