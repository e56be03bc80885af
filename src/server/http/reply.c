/*
 * reply.c — how handlers answer: replies and error bodies, the one table
 * from bz_err to HTTP status, and the one tail of every mutation (audit
 * row, COMMIT, reply — or ROLLBACK and the error), so no handler repeats it.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "server/http/http.h"

void http_set_header(struct request *rq, const char *name, const char *value)
{
	u_map_put(rq->resp->map_header, name, value);
}

/* Seconds a client is asked to wait after a 503 (RFC 9110 §10.2.3): about
 * one lock or statement timeout, or a database restart's first moments. */
#define RETRY_AFTER_S "2"

void http_reply(struct request *rq, int status, json_t *body)
{
	rq->status = status;
	if (status == 503 && u_map_get(rq->resp->map_header, "Retry-After") == NULL)
		http_set_header(rq, "Retry-After", RETRY_AFTER_S);
	if (body != NULL) {
		char *s = json_dumps(body, JSON_COMPACT);
		json_decref(body);
		if (s == NULL) {
			rq->status = 500;
			ulfius_set_string_body_response(
				rq->resp, 500,
				"{\"error\":{\"code\":\"internal\",\"message\":\"internal error\"}}");
			return;
		}
		ulfius_set_string_body_response(rq->resp, (unsigned)status, s);
		free(s);
	} else {
		ulfius_set_empty_body_response(rq->resp, (unsigned)status);
	}
}

static void fail_v(struct request *rq, int status, const char *code, json_t *extra, const char *fmt,
		   va_list ap) __attribute__((format(printf, 5, 0)));

static void fail_v(struct request *rq, int status, const char *code, json_t *extra, const char *fmt,
		   va_list ap)
{
	char msg[512];
	json_t *body = json_object();

	vsnprintf(msg, sizeof(msg), fmt, ap);
	json_object_set_new(body, "error", json_pack("{s:s,s:s}", "code", code, "message", msg));
	if (extra != NULL) {
		json_object_update(body, extra);
		json_decref(extra);
	}
	http_reply(rq, status, body);
}

void http_fail(struct request *rq, int status, const char *code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fail_v(rq, status, code, NULL, fmt, ap);
	va_end(ap);
}

void http_fail_extra(struct request *rq, int status, const char *code, json_t *extra,
		     const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fail_v(rq, status, code, extra, fmt, ap);
	va_end(ap);
}

void http_audit_actor(struct audit_event *ev, const struct request *rq)
{
	if (rq->who.authenticated && rq->who.api_key_id[0]) {
		/* A request made with an API key is the key's act (L1). */
		ev->actor_type = "api_key";
		ev->actor_id = rq->who.api_key_id;
	} else if (rq->who.authenticated) {
		ev->actor_type = "user";
		ev->actor_id = rq->who.user_id;
	} else if (ev->actor_type == NULL) {
		ev->actor_type = "system";
	}
	ev->ip_address = rq->client_ip[0] ? rq->client_ip : NULL;
}

/* Status and default code of each bz_err (the one table, see err.h). */
static const struct {
	int err;
	int status;
	const char *code;
} err_map[] = {
	{BZ_ERR_INVALID, 400, "validation_error"},
	{BZ_ERR_UNAUTHORIZED, 401, "unauthorized"},
	{BZ_ERR_FORBIDDEN, 403, "forbidden"},
	{BZ_ERR_NOT_FOUND, 404, "not_found"},
	{BZ_ERR_CONFLICT, 409, "conflict"},
	{BZ_ERR_TOO_LARGE, 413, "payload_too_large"},
	{BZ_ERR_UNAVAILABLE, 503, "service_unavailable"},
};

void http_fail_why(struct request *rq, int rc, const struct bz_errinfo *why)
{
	const char *code = "internal", *msg = "internal error";
	int status = 500;

	if (rc == BZ_ERR_RESPONDED)
		return;
	/* The one convention (db.h): a domain call's BZ_ERR_DB is a 503 when
	 * the statement was cancelled by a deadline or its connection lost. */
	if (rc == BZ_ERR_DB)
		rc = db_error();
	for (size_t i = 0; i < sizeof(err_map) / sizeof(*err_map); i++) {
		if (err_map[i].err == rc) {
			status = err_map[i].status;
			code = err_map[i].code;
			msg = NULL;
			break;
		}
	}
	if (status == 500) {
		http_fail(rq, 500, code, "%s", msg);
		return;
	}
	if (why != NULL && why->code != NULL)
		code = why->code;
	if (why != NULL && why->msg != NULL)
		msg = why->msg;
	if (msg == NULL)
		msg = status == 404 ? "not found" : code;
	json_t *err = json_pack("{s:s,s:s}", "code", code, "message", msg);
	if (why != NULL && why->field != NULL)
		json_object_set_new(err, "field", json_string(why->field));
	http_reply(rq, status, json_pack("{s:o}", "error", err));
}

void http_fail_err(struct request *rq, int err, const char *msg)
{
	http_fail_why(rq, err,
		      &(struct bz_errinfo){.code = err == BZ_ERR_INVALID ? "invalid_request" : NULL,
					   .msg = msg});
}

void http_commit(struct request *rq, PGconn *c, int rc, const struct bz_errinfo *why,
		 struct audit_event *ev, int status, json_t *body)
{
	if (rc == 0 && ev != NULL && ev->action != NULL) {
		http_audit_actor(ev, rq);
		rc = audit_write(c, ev);
		if (rc != 0)
			log_error("audit.write.failed", "action", ev->action, NULL);
	}
	if (ev != NULL) {
		json_decref(ev->details);
		ev->details = NULL;
	}
	if (rc == 0)
		rc = http_idem_store(rq, c, status, body);
	if (rc == 0)
		rc = db_commit(c);
	if (rc != 0) {
		db_rollback(c);
		json_decref(body);
		http_fail_why(rq, rc, why);
		return;
	}
	http_reply(rq, status, body);
}

void http_commit_refusal(struct request *rq, PGconn *c, int rc, const struct bz_errinfo *why,
			 struct audit_event *ev)
{
	int wrc;

	http_audit_actor(ev, rq);
	if ((wrc = audit_write(c, ev)) != 0)
		log_error("audit.write.failed", "action", ev->action, NULL);
	json_decref(ev->details);
	ev->details = NULL;
	if (wrc == 0)
		wrc = db_commit(c);
	if (wrc != 0) {
		db_rollback(c);
		http_fail_why(rq, wrc, NULL);
		return;
	}
	http_fail_why(rq, rc, why);
}

int http_path_uuid(struct request *rq, const char *name, char out[37], const char *not_found_msg)
{
	char v[64];

	if (http_path_param(rq, name, v, sizeof(v)) != 0 || !is_uuid(v)) {
		http_fail(rq, 404, "not_found", "%s", not_found_msg);
		return BZ_ERR_RESPONDED;
	}
	/* RFC 4122 §3: UUIDs are written in lower case on output; the
	 * database, audit rows and the AAD of encrypted columns use that
	 * canonical spelling, whatever case the client sent. */
	for (size_t i = 0; i < 36; i++)
		out[i] = (char)tolower((unsigned char)v[i]);
	out[36] = '\0';
	return 0;
}
