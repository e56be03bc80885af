/*
 * webhooks_api.c — the webhook routes (docs/webhooks.md). Each handler is
 * parse → one webhooks call → render. The signing secret is in the
 * creation answer only: never in a listing, a detail, an audit row, a log
 * line or a remembered idempotent answer.
 */
#include <stdlib.h>
#include <string.h>

#include "common/text.h"
#include "crypto/crypto.h"
#include "server/outbound/webhooks.h"
#include "server/outbound/webhooks_api.h"

#define LIMIT_DEFAULT 50

/* W as JSON; FULL_URL 0 shows only its origin (webhook_url_redact). */
static json_t *webhook_json(const struct webhook *w, int full_url)
{
	json_t *ev = json_array();
	char shown[WEBHOOK_URL_MAX + 8];

	if (full_url)
		text_copy(shown, sizeof(shown), w->url);
	else
		webhook_url_redact(w->url, shown, sizeof(shown));
	for (size_t i = 0; i < w->n_events; i++)
		json_array_append_new(ev, json_string(w->events[i]));
	return json_pack("{s:s,s:s,s:s,s:o,s:b,s:s?,s:s,s:s}", "id", w->id, "orgId", w->org_id,
			 "url", shown, "events", ev, "enabled", w->enabled, "createdBy",
			 w->created_by[0] ? w->created_by : NULL, "createdAt", w->created_at,
			 "updatedAt", w->updated_at);
}

static json_t *delivery_json(const struct webhook_delivery *d)
{
	return json_pack("{s:s,s:s,s:s,s:s,s:i,s:s?,s:o?,s:s,s:s?,s:s?,s:s?}", "id", d->id,
			 "webhookId", d->webhook_id, "event", d->event, "status", d->status,
			 "attempts", d->attempts, "lastError",
			 d->last_error[0] ? d->last_error : NULL, "lastStatus",
			 d->last_status ? json_integer(d->last_status) : NULL, "createdAt",
			 d->created_at, "nextAttemptAt",
			 (!strcmp(d->status, "pending") || !strcmp(d->status, "delivering"))
				 ? d->next_attempt_at
				 : NULL,
			 "deliveredAt", d->delivered_at[0] ? d->delivered_at : NULL, "auditId",
			 d->audit_id[0] ? d->audit_id : NULL);
}

struct webhook_body {
	struct body_str org_id, url;
	struct body_json events;
	struct body_bool enabled;
};

static const struct body_field create_fields[] = {
	BODY_FIELD("orgId", BODY_UUID, 0, struct webhook_body, org_id, 0, 0),
	BODY_FIELD("url", BODY_STRING, BODY_REQUIRED, struct webhook_body, url, 1, WEBHOOK_URL_MAX),
	BODY_FIELD("events", BODY_STRING_ARRAY, BODY_REQUIRED, struct webhook_body, events, 0,
		   WEBHOOK_EVENTS_MAX),
	BODY_FIELD("enabled", BODY_BOOL, 0, struct webhook_body, enabled, 0, 0),
	BODY_FIELDS_END,
};

static const struct body_field patch_fields[] = {
	BODY_FIELD("url", BODY_STRING, 0, struct webhook_body, url, 1, WEBHOOK_URL_MAX),
	BODY_FIELD("events", BODY_STRING_ARRAY, 0, struct webhook_body, events, 0,
		   WEBHOOK_EVENTS_MAX),
	BODY_FIELD("enabled", BODY_BOOL, 0, struct webhook_body, enabled, 0, 0),
	BODY_FIELDS_END,
};

static struct webhook_input input_of(const struct request *rq, const struct webhook_body *b)
{
	return (struct webhook_input){.org_id = b->org_id.v,
				      .url = b->url.v,
				      .events = b->events.present ? b->events.v : NULL,
				      .enabled = b->enabled.present ? b->enabled.v : -1,
				      .created_by = rq->who.user_id[0] ? rq->who.user_id : NULL};
}

/* ?limit= (1..WEBHOOK_LIST_MAX, default LIMIT_DEFAULT) into *OUT. */
static int limit_of(struct request *rq, long *out)
{
	const char *s = http_query(rq, "limit");
	char *end;

	*out = LIMIT_DEFAULT;
	if (s == NULL)
		return 0;
	*out = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || *out < 1 || *out > WEBHOOK_LIST_MAX) {
		http_fail(rq, 400, "validation_error",
			  "parameter 'limit' must be an integer between 1 and %d",
			  WEBHOOK_LIST_MAX);
		return BZ_ERR_RESPONDED;
	}
	return 0;
}

static void create_webhook(struct request *rq)
{
	struct webhook_body b = {0};
	struct webhook w;
	struct audit_event ev = {0};
	struct bz_errinfo why = {0};
	char secret[WEBHOOK_SECRET_LEN + 1];
	json_t *out = NULL;
	PGconn *c;

	if (http_body_parse(rq, create_fields, &b) != 0 || (c = http_db_begin(rq)) == NULL)
		return;
	struct webhook_input in = input_of(rq, &b);
	int rc = webhook_create(c, rq->app->cfg, &rq->scope, &in, &w, secret, &ev, &why);
	if (rc == 0) {
		/* The secret leaves the server exactly once, here. */
		out = webhook_json(&w, http_has_permission(rq, "webhooks:write"));
		json_object_set_new(out, "secret", json_string(secret));
		http_idem_withhold(rq, "secret");
	}
	crypto_wipe(secret, sizeof(secret));
	http_commit(rq, c, rc, &why, &ev, 201, out);
}

static void list_webhooks(struct request *rq)
{
	const char *org = http_query(rq, "orgId");
	struct webhook *ws;
	size_t n;
	long limit;
	PGconn *c;

	if (org != NULL && !is_uuid(org)) {
		http_fail(rq, 400, "validation_error", "parameter 'orgId' must be a UUID");
		return;
	}
	if (limit_of(rq, &limit) != 0 || (c = http_db(rq)) == NULL)
		return;
	int rc = webhook_list(c, &rq->scope, org, limit, &ws, &n);
	if (rc != 0) {
		http_fail_why(rq, rc, &(struct bz_errinfo){.msg = "organization not found"});
		return;
	}
	json_t *arr = json_array();
	int full = http_has_permission(rq, "webhooks:write");
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, webhook_json(&ws[i], full));
	free(ws);
	http_reply(rq, 200, json_pack("{s:o}", "webhooks", arr));
}

static void get_webhook(struct request *rq)
{
	struct webhook w;
	char id[37];
	PGconn *c;

	if (http_path_uuid(rq, "id", id, "webhook not found") != 0 || (c = http_db(rq)) == NULL)
		return;
	int rc = webhook_get(c, &rq->scope, id, &w);
	if (rc != 0) {
		http_fail_why(rq, rc, &(struct bz_errinfo){.msg = "webhook not found"});
		return;
	}
	http_reply(rq, 200, webhook_json(&w, http_has_permission(rq, "webhooks:write")));
}

static void patch_webhook(struct request *rq)
{
	struct webhook_body b = {0};
	struct webhook w;
	struct audit_event ev = {0};
	struct bz_errinfo why = {0};
	char id[37];
	PGconn *c;

	if (http_path_uuid(rq, "id", id, "webhook not found") != 0 ||
	    http_body_parse(rq, patch_fields, &b) != 0 || (c = http_db_begin(rq)) == NULL)
		return;
	struct webhook_input in = input_of(rq, &b);
	int rc = webhook_update(c, rq->app->cfg, &rq->scope, id, &in, &w, &ev, &why);
	http_commit(rq, c, rc, &why, &ev, 200,
		    rc == 0 ? webhook_json(&w, http_has_permission(rq, "webhooks:write")) : NULL);
}

static void delete_webhook(struct request *rq)
{
	struct webhook w;
	struct audit_event ev = {0};
	struct bz_errinfo why = {0};
	char id[37];
	PGconn *c;

	if (http_path_uuid(rq, "id", id, "webhook not found") != 0 ||
	    (c = http_db_begin(rq)) == NULL)
		return;
	int rc = webhook_delete(c, &rq->scope, id, &w, &ev, &why);
	http_commit(rq, c, rc, &why, &ev, 204, NULL);
}

/* RATE_LIMIT_WEBHOOK_TEST per organization (docs/rate-limiting.md), once
 * webhook ID is known to be in the caller's scope, so nobody spends
 * another organization's budget; a webhook not found (or not allowed) is
 * left to webhook_test() to answer. Returns 0 or BZ_ERR_RESPONDED (429,
 * audited once per organization and window; 503 without a database). */
static int test_limit(struct request *rq, const char *id)
{
	struct webhook w;
	PGconn *c;

	if ((c = http_db(rq)) == NULL)
		return BZ_ERR_RESPONDED;
	if (webhook_get(c, &rq->scope, id, &w) != 0)
		return 0;
	const struct ratelimit_item it = {.limiter = RL_WEBHOOK_TEST, .tag = w.org_id};
	struct audit_event refusal = {.org_id = w.org_id,
				      .action = "webhook.test.rate_limited",
				      .resource = "webhooks",
				      .resource_id = w.id};
	http_audit_actor(&refusal, rq);
	return http_rate_limit(rq, &it, 1, &refusal);
}

static void test_webhook(struct request *rq)
{
	struct webhook_delivery d;
	struct audit_event ev = {0};
	struct bz_errinfo why = {0};
	char id[37];
	PGconn *c;

	if (http_path_uuid(rq, "id", id, "webhook not found") != 0 || test_limit(rq, id) != 0 ||
	    (c = http_db_begin(rq)) == NULL)
		return;
	int rc = webhook_test(c, &rq->scope, id, &d, &ev, &why);
	http_commit(rq, c, rc, &why, &ev, 202, rc == 0 ? delivery_json(&d) : NULL);
}

static void list_deliveries(struct request *rq)
{
	const char *cursor = http_query(rq, "cursor");
	struct webhook_delivery *ds;
	char id[37], next[WEBHOOK_CURSOR_MAX];
	size_t n;
	long limit;
	PGconn *c;

	if (http_path_uuid(rq, "id", id, "webhook not found") != 0 || limit_of(rq, &limit) != 0 ||
	    (c = http_db(rq)) == NULL)
		return;
	int rc = webhook_delivery_list(c, &rq->scope, id, cursor, limit, &ds, &n, next);
	if (rc != 0) {
		http_fail_why(rq, rc,
			      &(struct bz_errinfo){
				      .field = rc == BZ_ERR_INVALID ? "cursor" : NULL,
				      .msg = rc == BZ_ERR_INVALID
						     ? "parameter 'cursor' is not a valid cursor"
						     : "webhook not found"});
		return;
	}
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, delivery_json(&ds[i]));
	free(ds);
	http_reply(rq, 200,
		   json_pack("{s:o,s:s?}", "deliveries", arr, "nextCursor", next[0] ? next : NULL));
}

static const char *const list_query[] = {"orgId", "limit", NULL};
static const char *const deliveries_query[] = {"limit", "cursor", NULL};

const struct route webhook_routes[] = {
	{"POST", "/api/v1/webhooks", create_webhook,
	 ROUTE_USER | ROUTE_JSON_BODY | ROUTE_IDEMPOTENT, "webhooks:write", "webhook.create", NULL},
	{"GET", "/api/v1/webhooks", list_webhooks, ROUTE_USER, "webhooks:read", NULL, list_query},
	{"GET", "/api/v1/webhooks/:id", get_webhook, ROUTE_USER, "webhooks:read", NULL, NULL},
	{"PATCH", "/api/v1/webhooks/:id", patch_webhook, ROUTE_USER | ROUTE_JSON_BODY,
	 "webhooks:write", "webhook.update", NULL},
	{"DELETE", "/api/v1/webhooks/:id", delete_webhook, ROUTE_USER, "webhooks:write",
	 "webhook.delete", NULL},
	{"GET", "/api/v1/webhooks/:id/deliveries", list_deliveries, ROUTE_USER, "webhooks:read",
	 NULL, deliveries_query},
	{"POST", "/api/v1/webhooks/:id/test", test_webhook, ROUTE_USER, "webhooks:write",
	 "webhook.test", NULL},
};
const size_t webhook_routes_count = sizeof(webhook_routes) / sizeof(*webhook_routes);
