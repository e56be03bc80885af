/*
 * idempotency.c — the Idempotency-Key header of create routes
 * (ROUTE_IDEMPOTENT), after the IETF draft "The Idempotency-Key HTTP Header
 * Field" (draft-ietf-httpapi-idempotency-key-header): a client that lost
 * the answer to a POST retries it with the same key and gets the first
 * answer (marked "Idempotent-Replayed: true") instead of a second object.
 *
 * - Keys are scoped to the caller and the route: a user's keys are theirs
 *   ("user:<id>"), an enrolling agent's belong to its enrolment key (a keyed
 *   hash of it, http_idem_caller()). Another caller sending the same key
 *   value meets nothing of ours, so a guessed or observed key never yields
 *   someone else's answer.
 * - The request's fingerprint is an HMAC-SHA-256 of method, path and the
 *   canonical body (sorted keys), keyed by a key derived from
 *   ENROLLMENT_KEY_PEPPER: a plain SHA-256 of a body holding a password or
 *   an enrolment secret would be an offline guessing oracle for whoever
 *   reads the table. The same key with another fingerprint is 422
 *   idempotency_key_reused (draft §2.7).
 * - The answer is remembered in the transaction of the change itself
 *   (http_commit), so a request that failed or crashed leaves nothing and
 *   its retry runs afresh; failures are not remembered. A retry while the
 *   first is still running finds the key's advisory lock taken: 409
 *   idempotency_key_in_progress with Retry-After (draft §2.7).
 * - Secrets shown once (a generated password, a raw enrolment key, an agent
 *   token) are never stored, not even encrypted: the project keeps secrets
 *   only as hashes, and a replayable token is one more way to steal it (a
 *   caller who shares an enrolment key could replay another agent's
 *   answer). A retry of such an answer gets 409
 *   idempotency_key_secret_withheld carrying the rest of the first answer
 *   (the new object's id), so the client knows the first request succeeded
 *   and what it created, and nothing is created twice.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "crypto/crypto.h"
#include "server/db/idempotency.h"
#include "server/http/http.h"

#define IDEM_KEY_MAX 255

static int key_char_ok(unsigned char ch)
{
	return ch >= 0x20 && ch <= 0x7e;
}

/* Unquotes an RFC 8941 §3.3.3 sf-string V ("..." with \" and \\) into OUT
 * (IDEM_KEY_MAX + 1 bytes). Returns 0 or BZ_ERR_INVALID. */
static int parse_quoted(const char *v, char *out)
{
	size_t n = 0;

	for (const char *p = v + 1;; p++) {
		unsigned char ch = (unsigned char)*p;
		if (ch == '"') {
			if (p[1] != '\0' || n == 0)
				return BZ_ERR_INVALID;
			out[n] = '\0';
			return 0;
		}
		if (ch == '\\') {
			ch = (unsigned char)*++p;
			if (ch != '"' && ch != '\\')
				return BZ_ERR_INVALID;
		}
		if (ch == '\0' || !key_char_ok(ch) || n >= IDEM_KEY_MAX)
			return BZ_ERR_INVALID;
		out[n++] = (char)ch;
	}
}

/* A bare key: printable ASCII without '"' or ',' (a ',' is how two header
 * lines arrive joined, RFC 9110 §5.3: one request has one key). */
static int parse_bare(const char *v, char *out)
{
	size_t n = strlen(v);

	if (n == 0 || n > IDEM_KEY_MAX)
		return BZ_ERR_INVALID;
	for (size_t i = 0; i < n; i++)
		if (!key_char_ok((unsigned char)v[i]) || v[i] == '"' || v[i] == ',')
			return BZ_ERR_INVALID;
	memcpy(out, v, n + 1);
	return 0;
}

int http_idem_parse(struct request *rq)
{
	const char *v;
	int rc;

	if (!(rq->route->flags & ROUTE_IDEMPOTENT))
		return 0;
	v = http_header(rq, "Idempotency-Key");
	if (v == NULL) {
		/* An empty field line is no list element (RFC 9110 §5.6.1), but
		 * it is no key either. */
		if (u_map_has_key_case(rq->u->map_header, "Idempotency-Key"))
			v = "";
		else
			return 0;
	}
	rc = v[0] == '"' ? parse_quoted(v, rq->idem.key) : parse_bare(v, rq->idem.key);
	if (rc != 0) {
		http_fail(rq, 400, "invalid_idempotency_key",
			  "Idempotency-Key must be one key of 1 to %d printable ASCII characters",
			  IDEM_KEY_MAX);
		return BZ_ERR_RESPONDED;
	}
	rq->idem.has_key = 1;
	return 0;
}

/* The HMAC key of fingerprints and caller names, derived from the pepper
 * (domain-separated, so it is not the enrolment key hash itself) into OUT. */
static int derived_key(const struct request *rq, char out[BZ_SHA256_HEX_LEN + 1])
{
	static const char label[] = "breeze idempotency-key v1";
	const char *pepper = rq->app->cfg->secrets[SECRET_ENROLLMENT_KEY_PEPPER];

	if (pepper == NULL)
		return BZ_ERR_INTERNAL;
	return crypto_hmac_sha256_hex(pepper, strlen(pepper), label, sizeof(label) - 1, out);
}

int http_idem_caller(struct request *rq, const char *kind, const char *credential)
{
	char dk[BZ_SHA256_HEX_LEN + 1], mac[BZ_SHA256_HEX_LEN + 1];
	int rc;

	if (!rq->idem.has_key)
		return 0;
	if ((rc = derived_key(rq, dk)) != 0 ||
	    (rc = crypto_hmac_sha256_hex(dk, strlen(dk), credential, strlen(credential), mac)) != 0)
		goto out;
	snprintf(rq->idem.caller, sizeof(rq->idem.caller), "%.16s:%s", kind, mac);
out:
	crypto_wipe(dk, sizeof(dk));
	return rc;
}

void http_idem_withhold(struct request *rq, const char *name)
{
	if (rq->idem.n_withhold < sizeof(rq->idem.withhold) / sizeof(*rq->idem.withhold))
		rq->idem.withhold[rq->idem.n_withhold++] = name;
}

/* HMAC of "METHOD\nPATH\n" and the canonical body into RQ->idem.fingerprint. */
static int fingerprint(struct request *rq)
{
	char dk[BZ_SHA256_HEX_LEN + 1];
	char *body = rq->body != NULL ? json_dumps(rq->body, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	const char *m = rq->u->http_verb, *p = rq->u->url_path;
	size_t ml = strlen(m), pl = strlen(p), bl = body != NULL ? strlen(body) : 0;
	char *buf = malloc(ml + pl + bl + 3);
	int rc = BZ_ERR_NOMEM;

	if (buf == NULL || (rq->body != NULL && body == NULL))
		goto out;
	memcpy(buf, m, ml);
	buf[ml] = '\n';
	memcpy(buf + ml + 1, p, pl);
	buf[ml + 1 + pl] = '\n';
	if (bl > 0)
		memcpy(buf + ml + pl + 2, body, bl);
	if ((rc = derived_key(rq, dk)) == 0)
		rc = crypto_hmac_sha256_hex(dk, strlen(dk), buf, ml + pl + bl + 2,
					    rq->idem.fingerprint);
	crypto_wipe(dk, sizeof(dk));
out:
	/* The body may hold a password or an enrolment secret. */
	if (buf != NULL) {
		crypto_wipe(buf, ml + pl + bl + 2);
		free(buf);
	}
	if (body != NULL) {
		crypto_wipe(body, bl);
		free(body);
	}
	return rc;
}

/* The row id of RQ: route "METHOD /template" into ROUTE[256] and the key's
 * SHA-256 into KEY_HASH. */
static int row_id(const struct request *rq, struct idem_id *id, char route[256],
		  char key_hash[BZ_SHA256_HEX_LEN + 1])
{
	snprintf(route, 256, "%s %s", rq->route->method, rq->route->path);
	*id = (struct idem_id){.caller = rq->idem.caller, .route = route, .key_hash = key_hash};
	return crypto_sha256_hex(rq->idem.key, strlen(rq->idem.key), key_hash);
}

/* Answers RQ from the remembered REC (the fingerprints matched). */
static void replay(struct request *rq, const struct idem_record *rec)
{
	json_t *body = rec->response != NULL ? json_loads(rec->response, 0, NULL) : NULL;

	http_set_header(rq, "Idempotent-Replayed", "true");
	if (!rec->withheld) {
		http_reply(rq, rec->status, body);
		return;
	}
	if (body == NULL)
		body = json_object();
	http_fail_extra(rq, 409, "idempotency_key_secret_withheld",
			json_pack("{s:o}", "resource", body),
			"the first request with this Idempotency-Key succeeded (status %d), but "
			"its answer held a secret that is shown only once; 'resource' is the "
			"rest of it",
			rec->status);
}

int http_idem_begin(struct request *rq, PGconn *c)
{
	struct idem_record rec = {0};
	struct idem_id id;
	char route[256], key_hash[BZ_SHA256_HEX_LEN + 1];
	int rc;

	if (!rq->idem.has_key)
		return 0;
	if (rq->who.authenticated)
		snprintf(rq->idem.caller, sizeof(rq->idem.caller), "%s:%s",
			 rq->who.api_key_id[0] ? "api_key" : "user",
			 rq->who.api_key_id[0] ? rq->who.api_key_id : rq->who.user_id);
	if (rq->idem.caller[0] == '\0') {
		log_error("idempotency.no_caller", "route", rq->route->path, NULL);
		http_fail_err(rq, BZ_ERR_INTERNAL, NULL);
		return BZ_ERR_RESPONDED;
	}
	if ((rc = row_id(rq, &id, route, key_hash)) != 0 || (rc = fingerprint(rq)) != 0 ||
	    (rc = idem_lock(c, &id)) != 0)
		goto fail;
	rc = idem_lookup(c, &id, &rec);
	if (rc == BZ_ERR_NOT_FOUND) {
		rq->idem.armed = 1;
		return 0;
	}
	if (rc != 0)
		goto fail;
	if (!crypto_ct_streq(rec.fingerprint, rq->idem.fingerprint))
		http_fail(rq, 422, "idempotency_key_reused",
			  "this Idempotency-Key was used for a different request");
	else
		replay(rq, &rec);
	idem_record_free(&rec);
	return BZ_ERR_RESPONDED;
fail:
	if (rc == BZ_ERR_CONFLICT) {
		http_set_header(rq, "Retry-After", "1");
		http_fail(rq, 409, "idempotency_key_in_progress",
			  "a request with this Idempotency-Key is still running; retry later");
	} else {
		http_fail_err(rq, rc, NULL);
	}
	return BZ_ERR_RESPONDED;
}

/* A copy of BODY without the withheld members; *WITHHELD says if any was
 * there. The copies of secrets are zeroed before they are freed. */
static json_t *stored_body(const struct request *rq, const json_t *body, int *withheld)
{
	json_t *copy = json_deep_copy(body);

	*withheld = 0;
	for (size_t i = 0; copy != NULL && i < rq->idem.n_withhold; i++) {
		json_t *v = json_object_get(copy, rq->idem.withhold[i]);
		if (v == NULL)
			continue;
		if (json_is_string(v))
			crypto_wipe((void *)json_string_value(v), json_string_length(v));
		json_object_del(copy, rq->idem.withhold[i]);
		*withheld = 1;
	}
	return copy;
}

int http_idem_store(struct request *rq, PGconn *c, int status, const json_t *body)
{
	struct idem_record rec = {.status = status};
	struct idem_id id;
	char route[256], key_hash[BZ_SHA256_HEX_LEN + 1];
	int rc;

	if (!rq->idem.armed)
		return 0;
	rq->idem.armed = 0;
	if ((rc = row_id(rq, &id, route, key_hash)) != 0)
		return rc;
	if (body != NULL) {
		json_t *copy = stored_body(rq, body, &rec.withheld);
		rec.response = copy != NULL ? json_dumps(copy, JSON_COMPACT) : NULL;
		json_decref(copy);
		if (rec.response == NULL)
			return BZ_ERR_NOMEM;
	}
	memcpy(rec.fingerprint, rq->idem.fingerprint, sizeof(rec.fingerprint));
	rc = idem_store(c, &id, &rec);
	idem_record_free(&rec);
	return rc;
}
