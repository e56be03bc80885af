/*
 * webhook_delivery.c — the delivery queue of webhooks (webhooks.h): test
 * deliveries, the delivery log, and one pass of the worker: claim due rows
 * fairly across organizations under a lease (FOR UPDATE SKIP LOCKED, so
 * instances never send the same row at once; a per-organization in-flight
 * cap), send each through the SSRF guard, record the outcome with
 * exponential backoff and full jitter.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/text.h"
#include "crypto/crypto.h"
#include "server/db/db.h"
#include "server/outbound/outbound.h"
#include "server/outbound/webhooks_internal.h"
#include "server/settings/settings.h"

#define LEASE_S 120	       /* a claimed row is another instance's again after this */
#define SEND_TIMEOUT_MS 10000  /* whole request; below LEASE_S */
#define MAX_ANSWER_BYTES 16384 /* of a receiver's answer: only its status matters */

#define DL_COLS                                                                                         \
	"d.id, d.webhook_id, d.org_id, d.event, d.status, d.attempts, coalesce(d.last_error, ''),"      \
	" coalesce(d.last_status, 0), " DB_TS("d.created_at") ", " DB_TS(                               \
		"d.next_attempt_at") ","                                                                \
				     " coalesce(" DB_TS(                                                \
					     "d.delivered_at") ", ''), coalesce(d.audit_id::text, '')," \
							       " (extract(epoch FROM d.created_at) * 1000000)::bigint"

static void delivery_from_row(const PGresult *r, int i, struct webhook_delivery *d)
{
	memset(d, 0, sizeof(*d));
	text_copy(d->id, sizeof(d->id), PQgetvalue(r, i, 0));
	text_copy(d->webhook_id, sizeof(d->webhook_id), PQgetvalue(r, i, 1));
	text_copy(d->org_id, sizeof(d->org_id), PQgetvalue(r, i, 2));
	text_copy(d->event, sizeof(d->event), PQgetvalue(r, i, 3));
	text_copy(d->status, sizeof(d->status), PQgetvalue(r, i, 4));
	d->attempts = atoi(PQgetvalue(r, i, 5));
	text_copy(d->last_error, sizeof(d->last_error), PQgetvalue(r, i, 6));
	d->last_status = atoi(PQgetvalue(r, i, 7));
	text_copy(d->created_at, sizeof(d->created_at), PQgetvalue(r, i, 8));
	text_copy(d->next_attempt_at, sizeof(d->next_attempt_at), PQgetvalue(r, i, 9));
	text_copy(d->delivered_at, sizeof(d->delivered_at), PQgetvalue(r, i, 10));
	text_copy(d->audit_id, sizeof(d->audit_id), PQgetvalue(r, i, 11));
	text_copy(d->created_us, sizeof(d->created_us), PQgetvalue(r, i, 12));
}

int webhook_test(PGconn *c, const struct tenancy_scope *sc, const char *id,
		 struct webhook_delivery *out, struct audit_event *ev, struct bz_errinfo *why)
{
	static const char *sql =
		"WITH d AS (INSERT INTO webhook_deliveries (webhook_id, org_id, event, payload)"
		" VALUES ($1::uuid, $2::uuid, 'webhook.test', jsonb_build_object('webhookId',"
		" $1::text, 'message', 'This is a test delivery from Breeze.')) RETURNING *)"
		" SELECT " DL_COLS " FROM d";
	struct webhook w;
	PGresult *r;
	int rc;

	*ev = (struct audit_event){0};
	if ((rc = webhook_scope_check(sc, why)) != 0)
		return rc;
	if ((rc = webhook_get(c, sc, id, &w)) != 0)
		return rc == BZ_ERR_NOT_FOUND ? bz_fail(why, rc, NULL, NULL, "webhook not found")
					      : rc;
	if (!w.enabled)
		return bz_fail(why, BZ_ERR_CONFLICT, "webhook_disabled", NULL,
			       "the webhook is disabled; enable it first");
	const char *p[2] = {w.id, w.org_id};
	if ((r = db_query(c, sql, 2, p, NULL)) == NULL)
		return BZ_ERR_DB;
	delivery_from_row(r, 0, out);
	PQclear(r);
	*ev = (struct audit_event){.org_id = out->org_id,
				   .action = "webhook.test",
				   .resource = "webhooks",
				   .resource_id = out->webhook_id,
				   .details = json_pack("{s:s}", "deliveryId", out->id)};
	return 0;
}

/* Cursor "<created_at µs>.<id>" into US[24] and ID[37]. */
static int cursor_parse(const char *cur, char us[24], char id[37])
{
	const char *dot = strchr(cur, '.');
	size_t n = dot ? (size_t)(dot - cur) : 0;

	/* 16 digits of microseconds reach the year 2286; more would overflow
	 * bigint or timestamptz in the query. */
	if (n == 0 || n > 16 || strspn(cur, "0123456789") != n || !is_uuid(dot + 1))
		return BZ_ERR_INVALID;
	memcpy(us, cur, n);
	us[n] = '\0';
	text_copy(id, 37, dot + 1);
	return 0;
}

int webhook_delivery_list(PGconn *c, const struct tenancy_scope *sc, const char *id,
			  const char *cursor, long limit, struct webhook_delivery **out, size_t *n,
			  char next[WEBHOOK_CURSOR_MAX])
{
	static const char *sql =
		"SELECT " DL_COLS " FROM webhook_deliveries d WHERE d.webhook_id = $1::uuid"
		" AND ($2::bigint IS NULL OR (d.created_at, d.id) <"
		"      (timestamptz 'epoch' + $2::bigint * interval '1 microsecond', $3::uuid))"
		" ORDER BY d.created_at DESC, d.id DESC LIMIT $4::int";
	char us[24] = "", cid[37] = "", lim[24];
	struct webhook w;
	PGresult *r;
	int rc;

	*out = NULL;
	*n = 0;
	next[0] = '\0';
	if ((rc = webhook_get(c, sc, id, &w)) != 0)
		return rc;
	if (cursor != NULL && cursor_parse(cursor, us, cid) != 0)
		return BZ_ERR_INVALID;
	snprintf(lim, sizeof(lim), "%ld", limit + 1);
	const char *p[4] = {id, cursor ? us : NULL, cursor ? cid : NULL, lim};
	if ((r = db_query(c, sql, 4, p, NULL)) == NULL)
		return BZ_ERR_DB;
	int rows = PQntuples(r), shown = rows > limit ? (int)limit : rows;
	if (shown > 0 && (*out = calloc((size_t)shown, sizeof(**out))) == NULL) {
		PQclear(r);
		return BZ_ERR_NOMEM;
	}
	for (int i = 0; i < shown; i++)
		delivery_from_row(r, i, &(*out)[i]);
	if (rows > shown)
		snprintf(next, WEBHOOK_CURSOR_MAX, "%s.%s", (*out)[shown - 1].created_us,
			 (*out)[shown - 1].id);
	*n = (size_t)shown;
	PQclear(r);
	return 0;
}

long webhook_backoff_s(int attempts, double r)
{
	double ceil_s = WEBHOOK_BACKOFF_BASE_S;

	for (int i = 1; i < attempts && ceil_s < WEBHOOK_BACKOFF_CAP_S; i++)
		ceil_s *= 4;
	if (ceil_s > WEBHOOK_BACKOFF_CAP_S)
		ceil_s = WEBHOOK_BACKOFF_CAP_S;
	if (r < 0 || r >= 1)
		r = 0;
	return (long)(r * (ceil_s + 1)); /* r >= 0: truncation is floor */
}

/* ---- One pass of the worker ---- */

/* A claimed delivery: what sending it needs. */
struct claimed {
	char id[37], lease[37], webhook_id[37], org_id[37];
	char event[WEBHOOK_EVENT_LEN];
	int attempts;
	char url[WEBHOOK_URL_MAX + 1];
	const char *sealed; /* secret_enc, in the claim result */
	const char *body;   /* the JSON body, in the claim result */
};

/* Claims are serialized over all senders and instances by this
 * transaction-level advisory lock (a claim is one short statement), so the
 * in-flight count a claim reads cannot be raced past the cap by another
 * claim; sending happens after the commit, outside the lock. */
static const char *claim_lock_sql =
	"SELECT pg_advisory_xact_lock(hashtext('breeze.webhook_claim'))";

/* Leases are written and judged by the database's clock (now(), shared by
 * every instance), never by an instance's bz_now(): an instance whose clock
 * runs ahead must not see the others' leases as run out. bz_now() ($1)
 * only says when a pending row's backoff is over (record()), so tests can
 * move it.
 *
 * Rows whose last attempt's lease ran out (the process died) end failed
 * (expire_sql: $1 is the maximum of attempts);
 * then up to $3 due rows of live, enabled webhooks are claimed, fairly:
 * at most one per organization per claim (its oldest due row), only from
 * organizations with fewer than $5 live leases (rows 'delivering' whose
 * lease has not run out), round-robin over organizations: the one the
 * claim served longest ago first (webhook_org_claims, migration 0021),
 * then the oldest row. Row locks (SKIP LOCKED) still keep a row another
 * transaction holds out. */
static const char *expire_sql =
	"UPDATE webhook_deliveries SET status = 'failed', lease_id = NULL,"
	" last_error = coalesce(last_error, 'interrupted') || ' (no answer to the last attempt)'"
	" WHERE status = 'delivering' AND attempts >= $1::int AND next_attempt_at <= now()";
/* orgs walks the organizations with queued rows one index probe each (a
 * loose index scan of webhook_deliveries_org_due_idx), live counts the
 * leases in flight (webhook_deliveries_inflight_idx), pick takes each
 * eligible organization's oldest due row (a pending row once its backoff
 * is over by $1, a leased one once its lease ran out by now()) and orders
 * them by the organization's last claim: the cost of a claim grows with
 * the organizations that have a queue, not with the queue's length. The
 * claimed organizations' last_claimed_at is clock_timestamp(): claims are
 * serialized by claim_lock_sql, so later claims stamp later times. */
static const char *claim_sql =
	"WITH RECURSIVE orgs AS ("
	"  (SELECT org_id FROM webhook_deliveries WHERE status IN ('pending', 'delivering')"
	"    ORDER BY org_id LIMIT 1)"
	"  UNION ALL"
	"  SELECT (SELECT n.org_id FROM webhook_deliveries n"
	"           WHERE n.status IN ('pending', 'delivering') AND n.org_id > o.org_id"
	"           ORDER BY n.org_id LIMIT 1)"
	"    FROM orgs o WHERE o.org_id IS NOT NULL"
	"), live AS ("
	"  SELECT org_id, count(*) AS n FROM webhook_deliveries WHERE status = 'delivering'"
	"     AND next_attempt_at > now() GROUP BY org_id"
	"), pick AS ("
	"  SELECT h.id, o.org_id FROM orgs o LEFT JOIN live ON live.org_id = o.org_id"
	"   LEFT JOIN webhook_org_claims s ON s.org_id = o.org_id"
	"   CROSS JOIN LATERAL (SELECT q.id, q.next_attempt_at"
	"     FROM webhook_deliveries q JOIN webhooks w ON w.id = q.webhook_id"
	"     WHERE q.org_id = o.org_id AND q.status IN ('pending', 'delivering')"
	"       AND q.attempts < $2::int AND q.next_attempt_at <= CASE q.status"
	"         WHEN 'delivering' THEN now() ELSE to_timestamp($1::double precision) END"
	"       AND w.enabled AND w.deleted_at IS NULL"
	"     ORDER BY q.org_id, q.next_attempt_at LIMIT 1) h"
	"   WHERE o.org_id IS NOT NULL AND coalesce(live.n, 0) < $5::int"
	"   ORDER BY s.last_claimed_at ASC NULLS FIRST, h.next_attempt_at LIMIT $3::int"
	"), c AS (UPDATE webhook_deliveries d SET status = 'delivering',"
	"   attempts = d.attempts + 1, lease_id = gen_random_uuid(),"
	"   next_attempt_at = now() + make_interval(secs => $4::int)"
	" WHERE d.id IN (SELECT l.id FROM webhook_deliveries l"
	"   WHERE l.id IN (SELECT id FROM pick) FOR UPDATE OF l SKIP LOCKED)"
	" RETURNING d.*"
	"), served AS (INSERT INTO webhook_org_claims (org_id, last_claimed_at)"
	"   SELECT org_id, clock_timestamp() FROM c GROUP BY org_id"
	"   ON CONFLICT (org_id) DO UPDATE SET last_claimed_at = EXCLUDED.last_claimed_at)"
	" SELECT c.id, c.lease_id, c.webhook_id, c.org_id, c.event, c.attempts, w.url, w.secret_enc,"
	"   jsonb_build_object('id', c.id, 'event', c.event, 'orgId', c.org_id, 'createdAt',"
	"     to_char(c.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
	"     'data', c.payload)::text"
	" FROM c JOIN webhooks w ON w.id = c.webhook_id";
static const char *done_sql =
	"UPDATE webhook_deliveries SET status = $3, last_error = $4, last_status = $5::int,"
	" lease_id = NULL, delivered_at = CASE WHEN $3 = 'delivered' THEN now() END,"
	" next_attempt_at = CASE WHEN $3 = 'pending'"
	"   THEN to_timestamp($6::double precision) ELSE next_attempt_at END"
	" WHERE id = $1::uuid AND lease_id = $2::uuid";
static const char *release_sql =
	"UPDATE webhook_deliveries SET status = 'pending', attempts = attempts - 1,"
	" lease_id = NULL, next_attempt_at = now() WHERE id = $1::uuid AND lease_id = $2::uuid";

/* Records the outcome of claimed delivery D: delivered (ERR NULL), or a
 * failed attempt with ERR (and the HTTP status, 0 for none). */
static void record(PGconn *c, const struct claimed *d, const char *err, long status)
{
	char st[16], next[32];
	const char *state = err == NULL				  ? "delivered"
			    : d->attempts >= WEBHOOK_MAX_ATTEMPTS ? "failed"
								  : "pending";
	uint32_t rnd = 0;

	crypto_random_bytes(&rnd, sizeof(rnd));
	snprintf(st, sizeof(st), "%ld", status);
	snprintf(next, sizeof(next), "%lld",
		 (long long)(bz_now() + webhook_backoff_s(d->attempts, rnd / 4294967296.0)));
	const char *p[6] = {d->id, d->lease, state, err, status > 0 ? st : NULL, next};
	if (db_exec(c, done_sql, 6, p) != 0)
		log_warn("webhook.delivery.record_failed", "deliveryId", d->id, NULL);
	log_info("webhook.delivery", "deliveryId", d->id, "webhookId", d->webhook_id, "event",
		 d->event, "status", state, NULL);
}

/* Audits a refusal of the SSRF guard as outbound.blocked in D's
 * organization's chain (its own transaction). */
/* outbound.blocked in two chains: the organization's says what was
 * refused and why, but not where its host name pointed — its admins must
 * not learn the operator's internal DNS answers; the system chain
 * (platform operators) also has the address and the organization. */
static void audit_blocked(PGconn *c, const struct claimed *d, const struct outbound_response *o)
{
	const char *reason = o->blocked_reason ? o->blocked_reason : "";
	json_t *det = json_pack("{s:s,s:s,s:s,s:s}", "kind", ssrf_kind_name(o->kind), "reason",
				reason, "webhookId", d->webhook_id, "deliveryId", d->id);
	json_t *sys = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "kind", ssrf_kind_name(o->kind),
				"address", o->blocked_address, "reason", reason, "orgId", d->org_id,
				"webhookId", d->webhook_id, "deliveryId", d->id);
	struct audit_event ev = {.org_id = d->org_id,
				 .actor_type = "system",
				 .action = "outbound.blocked",
				 .resource = "webhooks",
				 .resource_id = d->webhook_id,
				 .details = det,
				 .result = "denied"};

	if (det == NULL || sys == NULL || audit_write_standalone(c, &ev) != 0)
		log_warn("webhook.delivery.audit_failed", "deliveryId", d->id, NULL);
	ev.org_id = NULL;
	ev.details = sys;
	if (sys != NULL && audit_write_standalone(c, &ev) != 0)
		log_warn("webhook.delivery.audit_failed", "deliveryId", d->id, NULL);
	json_decref(det);
	json_decref(sys);
}

/* Opens D's secret into SECRET (WEBHOOK_SECRET_LEN + 1 bytes). */
static int open_secret(const struct config *cfg, const struct claimed *d,
		       char secret[WEBHOOK_SECRET_LEN + 1])
{
	struct crypto_keyring kr;
	uint8_t *plain = NULL;
	size_t len = 0;
	char legacy[64];

	if (settings_keyring(cfg, &kr, NULL) != 0)
		return BZ_ERR_UNAVAILABLE;
	/* Secrets sealed before migration 0017 are in crypto/aead.h's form. */
	snprintf(legacy, sizeof(legacy), "webhooks.secret:%s", d->webhook_id);
	int rc = settings_open(&kr, "webhooks", "secret_enc", d->webhook_id, d->sealed, legacy,
			       &plain, &len, NULL, NULL);
	crypto_keyring_wipe(&kr);
	if (rc == 0 && len > WEBHOOK_SECRET_LEN)
		rc = BZ_ERR_INVALID;
	if (rc == 0) {
		memcpy(secret, plain, len);
		secret[len] = '\0';
	}
	if (plain != NULL) {
		crypto_wipe(plain, len);
		free(plain);
	}
	return rc;
}

/* The X-Breeze-Signature header (scheme v2, docs/webhooks.md) of EVENT
 * (the X-Breeze-Event value) and BODY signed with SECRET at time T into
 * OUT (LEN bytes, 128 are enough): HMAC-SHA-256 over "<T>.<EVENT>.<BODY>".
 * Unambiguous: T is digits, an event name has no '{' and BODY is a JSON
 * object. Returns 0, BZ_ERR_NOMEM or the HMAC's error. */
static int sign(const char *secret, const char *event, const char *body, long long t, char *out,
		size_t len)
{
	char hex[65];
	size_t n = strlen(body) + strlen(event) + 32;
	char *msg = malloc(n);

	if (msg == NULL)
		return BZ_ERR_NOMEM;
	int m = snprintf(msg, n, "%lld.%s.%s", t, event, body);
	int rc = m > 0 && (size_t)m < n
			 ? crypto_hmac_sha256_hex(secret, strlen(secret), msg, (size_t)m, hex)
			 : BZ_ERR_INTERNAL;
	free(msg);
	if (rc == 0)
		snprintf(out, len, "X-Breeze-Signature: t=%lld,v2=%s", t, hex);
	return rc;
}

/* Sends claimed delivery D and records the outcome. */
static void send_one(PGconn *c, const struct config *cfg, const struct claimed *d)
{
	char secret[WEBHOOK_SECRET_LEN + 1], sig[128], idh[80], evh[96], err[WEBHOOK_ERROR_MAX];
	struct outbound_response o;

	if (open_secret(cfg, d, secret) != 0) {
		record(c, d,
		       "cannot decrypt the webhook secret (wrong APP_ENCRYPTION_KEY, or the stored "
		       "value was moved or altered); nothing was sent",
		       0);
		return;
	}
	int rc = sign(secret, d->event, d->body, (long long)bz_now(), sig, sizeof(sig));
	crypto_wipe(secret, sizeof(secret));
	if (rc != 0) {
		record(c, d, "cannot sign the request", 0);
		return;
	}
	snprintf(idh, sizeof(idh), "X-Breeze-Delivery-Id: %s", d->id);
	snprintf(evh, sizeof(evh), "X-Breeze-Event: %s", d->event);
	const char *headers[] = {"Content-Type: application/json",
				 "User-Agent: Breeze-Webhooks",
				 idh,
				 evh,
				 sig,
				 NULL};
	struct outbound_request rq = {.method = "POST",
				      .url = d->url,
				      .headers = headers,
				      .body = d->body,
				      .body_len = strlen(d->body),
				      .total_timeout_ms = SEND_TIMEOUT_MS,
				      .max_response_bytes = MAX_ANSWER_BYTES};
	rc = outbound_request(&cfg->ssrf_allowlist, &rq, &o);
	if (rc == 0 && o.status >= 200 && o.status < 300) {
		record(c, d, NULL, o.status);
	} else if (rc == 0) {
		snprintf(err, sizeof(err), "the receiver answered HTTP %ld", o.status);
		record(c, d, err, o.status);
	} else {
		if (rc == BZ_ERR_FORBIDDEN)
			audit_blocked(c, d, &o);
		/* The refused address stays in the audit row: a webhooks:read
		 * user must not learn internal DNS answers from the log. */
		snprintf(err, sizeof(err), "%s: %.200s%s%.40s", ssrf_kind_name(o.kind), o.error,
			 o.blocked_reason ? " (" : "", o.blocked_reason ? o.blocked_reason : "");
		if (o.blocked_reason)
			text_copy(err + strlen(err), sizeof(err) - strlen(err), ")");
		record(c, d, err, 0);
	}
	outbound_response_free(&o);
}

static void claimed_from_row(const PGresult *r, int i, struct claimed *d)
{
	text_copy(d->id, sizeof(d->id), PQgetvalue(r, i, 0));
	text_copy(d->lease, sizeof(d->lease), PQgetvalue(r, i, 1));
	text_copy(d->webhook_id, sizeof(d->webhook_id), PQgetvalue(r, i, 2));
	text_copy(d->org_id, sizeof(d->org_id), PQgetvalue(r, i, 3));
	text_copy(d->event, sizeof(d->event), PQgetvalue(r, i, 4));
	d->attempts = atoi(PQgetvalue(r, i, 5));
	text_copy(d->url, sizeof(d->url), PQgetvalue(r, i, 6));
	d->sealed = PQgetvalue(r, i, 7);
	d->body = PQgetvalue(r, i, 8);
}

/* Expires run-out leases and claims up to BATCH rows (see claim_sql) in
 * one transaction under the claim lock, committed before anything is sent.
 * Returns the claimed rows (PQclear them) or NULL on a database error. */
static PGresult *claim(PGconn *c, const struct config *cfg, int batch)
{
	char now[24], max[16], lim[16], lease[16], cap[16];
	PGresult *r = NULL;

	snprintf(now, sizeof(now), "%lld", (long long)bz_now());
	snprintf(max, sizeof(max), "%d", WEBHOOK_MAX_ATTEMPTS);
	snprintf(lim, sizeof(lim), "%d", batch);
	snprintf(lease, sizeof(lease), "%d", LEASE_S);
	snprintf(cap, sizeof(cap), "%d",
		 cfg->webhook_org_max_in_flight > 0 ? cfg->webhook_org_max_in_flight : 1);
	const char *p[5] = {now, max, lim, lease, cap};
	if (db_begin(c) != 0)
		return NULL;
	if (db_exec(c, claim_lock_sql, 0, NULL) == 0 && db_exec(c, expire_sql, 1, p + 1) == 0 &&
	    (r = db_query(c, claim_sql, 5, p, NULL)) != NULL && db_commit(c) == 0)
		return r;
	PQclear(r);
	if (PQtransactionStatus(c) != PQTRANS_IDLE)
		db_rollback(c);
	return NULL;
}

int webhook_deliver_pass(PGconn *c, const struct config *cfg, int batch, const atomic_int *stop,
			 int *sent)
{
	struct claimed d;
	PGresult *r;

	*sent = 0;
	if ((r = claim(c, cfg, batch)) == NULL)
		return BZ_ERR_DB;
	for (int i = 0; i < PQntuples(r); i++) {
		claimed_from_row(r, i, &d);
		if (stop != NULL && atomic_load(stop)) {
			/* Stopping: hand the row back rather than leave it leased. */
			const char *q[2] = {d.id, d.lease};
			db_exec(c, release_sql, 2, q);
			continue;
		}
		send_one(c, cfg, &d);
		(*sent)++;
	}
	PQclear(r);
	return 0;
}

int webhook_deliver_due(PGconn *c, const struct config *cfg, int batch, int *sent)
{
	return webhook_deliver_pass(c, cfg, batch, NULL, sent);
}
