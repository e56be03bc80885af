/*
 * webhooks.h — webhooks per organization and their durable deliveries
 * (issue 12 §2; docs/webhooks.md).
 *
 * A webhook is {url, events[], enabled} of one organization with a signing
 * secret generated at creation ("whsec_" + 64 hex digits), returned once
 * and stored only sealed with AES-256-GCM under APP_ENCRYPTION_KEY as
 * "enc:v1:<key id>:…" (crypto/envelope.h, server/settings/settings.h) with
 * associated data "webhooks.secret_enc:<id>"; secrets sealed before
 * migration 0017 ("v1:…", AAD "webhooks.secret:<id>") still open.
 *
 * Deliveries are queued by a trigger on audit_log (migration 0014) in the
 * transaction of the event's audit row, and sent by the worker of
 * webhook_delivery.c through the SSRF guard (outbound.h), signed with
 * X-Breeze-Signature: t=<unix seconds>,v1=<hex HMAC-SHA-256(secret,
 * "<t>.<body>")>, retried with exponential backoff and full jitter for up to
 * WEBHOOK_MAX_ATTEMPTS attempts, at least once, with a stable
 * X-Breeze-Delivery-Id.
 *
 * Domain code: takes a PGconn and plain structs, no HTTP types. Webhooks
 * are organization-wide, so a site-limited scope may not use them.
 */
#ifndef BZ_WEBHOOKS_H
#define BZ_WEBHOOKS_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stddef.h>

#include "common/err.h"
#include "server/audit/audit.h"
#include "server/config.h"
#include "server/tenancy/tenancy.h"

#define WEBHOOK_URL_MAX 2048   /* bytes of a webhook URL */
#define WEBHOOK_EVENTS_MAX 32  /* events of one webhook */
#define WEBHOOK_EVENT_LEN 64   /* bytes of an event name, with the NUL */
#define WEBHOOK_SECRET_LEN 70  /* "whsec_" + 64 hex digits */
#define WEBHOOK_MAX_ATTEMPTS 8 /* then a delivery is failed */
#define WEBHOOK_ERROR_MAX 300  /* bytes of a delivery's last error */
#define WEBHOOK_LIST_MAX 200   /* rows of one page */
#define WEBHOOK_CURSOR_MAX 80  /* bytes of a deliveries cursor */

struct webhook {
	char id[37];
	char org_id[37];
	char url[WEBHOOK_URL_MAX + 1];
	char events[WEBHOOK_EVENTS_MAX][WEBHOOK_EVENT_LEN];
	size_t n_events;
	int enabled;
	char created_by[37]; /* "" when not made by a user */
	char created_at[32], updated_at[32];
};

/* What a create or update asks for. Strings and EVENTS are borrowed. */
struct webhook_input {
	const char *org_id;	/* create: NULL = the scope's only organization */
	const char *url;	/* NULL on update: unchanged */
	const json_t *events;	/* array of strings; NULL on update: unchanged */
	int enabled;		/* 0/1, or -1: unchanged (create: true) */
	const char *created_by; /* user id or NULL */
};

/* The events a webhook may subscribe to (NULL-terminated; "*" = all). */
extern const char *const webhook_events[];

/*
 * Checks URL for saving under policy P: libcurl's parser (curl_url), http
 * or https, no user-info, the host by ssrf_host_allowed() and, for an IP
 * literal, the address by ssrf_address_allowed(). Names are judged again
 * at every connection. Returns 0 or BZ_ERR_INVALID with WHY (field "url",
 * a static message naming the refusal kind).
 */
int webhook_url_check(const struct ssrf_policy *p, const char *url, struct bz_errinfo *why);

/*
 * The origin of stored URL URL followed by "/…" (e.g.
 * "https://hooks.example.com/…") into OUT (LEN bytes): what a caller who
 * may read but not change webhooks sees, since a receiver's URL path often
 * is its credential (Slack, Teams). "…" alone when URL does not parse.
 */
void webhook_url_redact(const char *url, char *out, size_t len);

/*
 * Creates a webhook from IN in the caller's transaction on C, in SCOPE,
 * with the URL checked under CFG->ssrf_allowlist and a new secret sealed
 * under CFG's APP_ENCRYPTION_KEY. The secret is copied into
 * SECRET[WEBHOOK_SECRET_LEN + 1] (the caller shows it once and wipes it);
 * EV is webhook.create (details url, events, enabled; never the secret).
 * Returns 0, BZ_ERR_INVALID, BZ_ERR_NOT_FOUND (orgId not in scope),
 * BZ_ERR_FORBIDDEN (site-limited scope), BZ_ERR_UNAVAILABLE (no
 * APP_ENCRYPTION_KEY), BZ_ERR_CRYPTO or BZ_ERR_DB, with WHY set.
 */
int webhook_create(PGconn *c, const struct config *cfg, const struct tenancy_scope *sc,
		   const struct webhook_input *in, struct webhook *out,
		   char secret[WEBHOOK_SECRET_LEN + 1], struct audit_event *ev,
		   struct bz_errinfo *why);

/* Webhooks of the scope (only ORG_ID's when non-NULL), newest first, at
 * most LIMIT, into a malloc'd array *OUT (caller frees). Returns 0,
 * BZ_ERR_NOT_FOUND (ORG_ID not in scope), BZ_ERR_FORBIDDEN, BZ_ERR_DB or
 * BZ_ERR_NOMEM. */
int webhook_list(PGconn *c, const struct tenancy_scope *sc, const char *org_id, long limit,
		 struct webhook **out, size_t *n);

/* Webhook ID if it is live and in SCOPE. Returns 0, BZ_ERR_NOT_FOUND,
 * BZ_ERR_FORBIDDEN or BZ_ERR_DB. */
int webhook_get(PGconn *c, const struct tenancy_scope *sc, const char *id, struct webhook *out);

/* Changes webhook ID as IN says (in the caller's transaction), into OUT;
 * EV is webhook.update with the changed fields, or action NULL when
 * nothing changed. Returns webhook_create()'s errors. */
int webhook_update(PGconn *c, const struct config *cfg, const struct tenancy_scope *sc,
		   const char *id, const struct webhook_input *in, struct webhook *out,
		   struct audit_event *ev, struct bz_errinfo *why);

/* Deletes webhook ID (soft: deleted_at) and fails its undelivered
 * deliveries, in the caller's transaction; OUT is the webhook as it was,
 * EV webhook.delete (its strings point into OUT). Returns 0,
 * BZ_ERR_NOT_FOUND, BZ_ERR_FORBIDDEN or BZ_ERR_DB. */
int webhook_delete(PGconn *c, const struct tenancy_scope *sc, const char *id, struct webhook *out,
		   struct audit_event *ev, struct bz_errinfo *why);

/* ---- Deliveries (webhook_delivery.c) ---- */

struct webhook_delivery {
	char id[37];
	char webhook_id[37];
	char org_id[37];
	char event[WEBHOOK_EVENT_LEN];
	char status[16]; /* pending, delivering, delivered, failed */
	int attempts;
	char last_error[WEBHOOK_ERROR_MAX + 1]; /* "" when none */
	int last_status;			/* HTTP status of the last answer; 0 = none */
	char created_at[32], next_attempt_at[32];
	char delivered_at[32]; /* "" until delivered */
	char audit_id[24];     /* "" for webhook.test */
	char created_us[24];   /* created_at in epoch microseconds (the cursor's key) */
};

/* Queues a webhook.test delivery for webhook ID (in the caller's
 * transaction) into OUT; EV is webhook.test. Returns 0, BZ_ERR_NOT_FOUND,
 * BZ_ERR_FORBIDDEN, BZ_ERR_CONFLICT (the webhook is disabled) or BZ_ERR_DB. */
int webhook_test(PGconn *c, const struct tenancy_scope *sc, const char *id,
		 struct webhook_delivery *out, struct audit_event *ev, struct bz_errinfo *why);

/* Deliveries of webhook ID, newest first, at most LIMIT (1..WEBHOOK_LIST_MAX),
 * after CURSOR (a previous page's *NEXT, or NULL), into a malloc'd array
 * *OUT (caller frees); *NEXT[WEBHOOK_CURSOR_MAX] gets the cursor of the
 * next page or "". Returns 0, BZ_ERR_NOT_FOUND, BZ_ERR_FORBIDDEN,
 * BZ_ERR_INVALID (bad cursor), BZ_ERR_DB or BZ_ERR_NOMEM. */
int webhook_delivery_list(PGconn *c, const struct tenancy_scope *sc, const char *id,
			  const char *cursor, long limit, struct webhook_delivery **out, size_t *n,
			  char next[WEBHOOK_CURSOR_MAX]);

/* Seconds to wait before the attempt after ATTEMPTS (1..) failed ones:
 * uniformly random in [0, min(WEBHOOK_BACKOFF_CAP_S, WEBHOOK_BACKOFF_BASE_S
 * · 4^(ATTEMPTS-1))] ("full jitter"), with R a random value in [0, 1). */
#define WEBHOOK_BACKOFF_BASE_S 120
#define WEBHOOK_BACKOFF_CAP_S (8 * 3600)
long webhook_backoff_s(int attempts, double r);

/*
 * Starts the delivery worker of `serve`: CFG->webhook_worker_threads
 * senders, each with its own database connection, each claiming one due
 * delivery at a time (at most CFG->webhook_org_max_in_flight per
 * organization over all instances) and claiming again at once after a
 * send; with nothing due a sender sleeps CFG->webhook_worker_interval_ms
 * (0: no worker). CFG must outlive the worker. Returns 0 or
 * BZ_ERR_INTERNAL.
 */
int webhook_worker_start(const struct config *cfg);

/* Stops the worker: wakes every sender and joins them (a request in
 * flight ends within the attempt's timeout; its lease lets another
 * instance redo it if the process dies first). Safe if never started. */
void webhook_worker_stop(void);

/*
 * One pass of the worker on C (exposed for the CLI and tests): claims up to
 * BATCH due deliveries at bz_now() with a lease — at most one per
 * organization, only of organizations under CFG->webhook_org_max_in_flight
 * live leases, oldest first — sends each and records the outcome. *SENT gets the number of deliveries attempted. Returns 0 or
 * BZ_ERR_DB.
 */
int webhook_deliver_due(PGconn *c, const struct config *cfg, int batch, int *sent);

#endif
