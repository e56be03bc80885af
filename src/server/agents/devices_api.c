/*
 * devices_api.c — the devices routes: listing with filters and an opaque
 * cursor, detail, PATCH (display name, site), decommissioning, and the
 * agent token's rotation request and emergency reset (G2). Scoped by
 * the caller's tenancy; another tenant's device answers 404.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/clock.h"
#include "crypto/crypto.h"
#include "server/agents/agents.h"
#include "server/agents/agents_api.h"

static const char *or_null(const char *s)
{
	return s[0] ? s : NULL;
}

/* G6: why the device was suspended, and what its review decided (null
 * when never suspended / not reviewed); no other tenant's id. */
static void suspension_json(json_t *j, const struct agents_device *d)
{
	json_object_set_new(j, "suspension",
			    d->suspended_at[0]
				    ? json_pack("{s:s,s:s}", "reason", d->suspension_reason, "at",
						d->suspended_at)
				    : json_null());
	json_object_set_new(j, "review",
			    d->reviewed_at[0]
				    ? json_pack("{s:s,s:s,s:s}", "decision", d->review_decision,
						"note", d->review_note, "at", d->reviewed_at)
				    : json_null());
	json_object_set_new(j, "reenrollmentBlocked", json_boolean(d->reenrollment_blocked));
}

static json_t *device_json(const struct agents_device *d)
{
	json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:s?,s:s,s:s,s:s,s:s?,s:s?,s:s?,s:b}", "id", d->id,
			      "orgId", d->org_id, "siteId", d->site_id, "hostname", d->hostname,
			      "displayName", or_null(d->display_name), "osType", d->os_type,
			      "osVersion", d->os_version, "status", d->status, "lastSeenAt",
			      or_null(d->last_seen_at), "lastIp", or_null(d->last_ip),
			      "decommissionedAt", or_null(d->decommissioned_at), "suspended",
			      d->suspended);

	suspension_json(j, d);
	return j;
}

/* The detail object of GET /devices/:id; takes D's JSON members. */
static json_t *device_detail_json(struct agents_device *d)
{
	json_t *j = device_json(d);

	json_object_set_new(j, "architecture", json_string(d->architecture));
	json_object_set_new(j, "agentVersion", json_string(d->agent_version));
	json_object_set_new(j, "enrolledAt", json_string(d->enrolled_at));
	json_object_set_new(j, "hardware", d->hardware ? d->hardware : json_object());
	json_object_set_new(j, "inventory", d->inventory ? d->inventory : json_object());
	json_object_set_new(j, "metrics", d->metrics ? d->metrics : json_object());
	json_object_set_new(j, "uptimeSeconds",
			    d->uptime_s >= 0 ? json_integer(d->uptime_s) : json_null());
	json_object_set_new(j, "heartbeatIntervalSeconds", json_integer(d->heartbeat_interval_s));
	json_object_set_new(j, "ipHistory", d->ip_history ? d->ip_history : json_array());
	d->hardware = d->inventory = d->metrics = d->ip_history = NULL;
	return j;
}

/* The cursor is opaque to clients: base64url of {"h":hostname,"i":id}. */
static char *cursor_encode(const char *hostname, const char *id)
{
	json_t *j = json_pack("{s:s,s:s}", "h", hostname, "i", id);
	char *s = json_dumps(j, JSON_COMPACT);
	char *out = s ? crypto_base64url_encode((const uint8_t *)s, strlen(s)) : NULL;

	free(s);
	json_decref(j);
	return out;
}

static int cursor_decode(const char *cur, char *host, size_t hostlen, char id[37])
{
	size_t len;
	uint8_t *raw = crypto_base64url_decode(cur, strlen(cur), &len);
	int rc = BZ_ERR_INVALID;

	if (raw == NULL)
		return BZ_ERR_INVALID;
	json_t *j = json_loadb((const char *)raw, len, 0, NULL);
	free(raw);
	json_t *h = json_object_get(j, "h"), *i = json_object_get(j, "i");
	if (json_is_string(h) && json_is_string(i) && is_uuid(json_string_value(i)) &&
	    json_string_length(h) < hostlen) {
		snprintf(host, hostlen, "%s", json_string_value(h));
		snprintf(id, 37, "%s", json_string_value(i));
		rc = 0;
	}
	json_decref(j);
	return rc;
}

/* 400 validation_error naming query parameter NAME. */
static int param_error(struct request *rq, const char *name, const char *what)
{
	http_fail(rq, 400, "validation_error", "parameter '%s' %s", name, what);
	return BZ_ERR_RESPONDED;
}

/* Reads the listing's query parameters into F (CUR_HOST/CUR_ID hold the
 * cursor position). */
static int list_filter(struct request *rq, struct agents_device_filter *f, char *cur_host,
		       size_t hostlen, char cur_id[37])
{
	const char *limit_s = http_query(rq, "limit"), *cursor = http_query(rq, "cursor");
	static const char *const statuses[] = {"online", "offline", "never", "suspended",
					       "decommissioned"};
	const size_t n_statuses = sizeof(statuses) / sizeof(*statuses);

	*f = (struct agents_device_filter){.org_id = http_query(rq, "orgId"),
					   .site_id = http_query(rq, "siteId"),
					   .status = http_query(rq, "status"),
					   .hostname = http_query(rq, "hostname"),
					   .limit = 50};
	if (f->org_id && !is_uuid(f->org_id))
		return param_error(rq, "orgId", "must be a UUID");
	if (f->site_id && !is_uuid(f->site_id))
		return param_error(rq, "siteId", "must be a UUID");
	if (f->status) {
		size_t i = 0;
		while (i < n_statuses && strcmp(f->status, statuses[i]) != 0)
			i++;
		if (i == n_statuses)
			return param_error(rq, "status",
					   "must be online, offline, never, suspended or "
					   "decommissioned");
	}
	if (f->hostname && strlen(f->hostname) > AGENTS_HOSTNAME_MAX)
		return param_error(rq, "hostname", "is too long");
	if (limit_s) {
		char *end;
		long v = strtol(limit_s, &end, 10);
		if (*limit_s == '\0' || *end != '\0' || v < 1 || v > 500)
			return param_error(rq, "limit", "must be an integer between 1 and 500");
		f->limit = (int)v;
	}
	if (cursor) {
		if (cursor_decode(cursor, cur_host, hostlen, cur_id) != 0)
			return param_error(rq, "cursor", "is not a valid cursor");
		f->after_host = cur_host;
		f->after_id = cur_id;
	}
	return 0;
}

static void list_devices(struct request *rq)
{
	struct agents_device_filter f;
	struct agents_device *devs;
	struct bz_errinfo why = {0};
	char cur_host[AGENTS_HOSTNAME_MAX + 1], cur_id[37];
	size_t n;
	int more;
	PGconn *c;

	if (list_filter(rq, &f, cur_host, sizeof(cur_host), cur_id) != 0 ||
	    (c = http_db(rq)) == NULL)
		return;
	int rc = agents_device_list(c, &rq->scope, &f, &devs, &n, &more, &why);
	if (rc != 0) {
		http_fail_why(rq, rc, &why);
		return;
	}
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, device_json(&devs[i]));
	char *next = more ? cursor_encode(devs[n - 1].hostname, devs[n - 1].id) : NULL;
	free(devs);
	http_reply(rq, 200, json_pack("{s:o,s:s?}", "devices", arr, "nextCursor", next));
	free(next);
}

static void get_device(struct request *rq)
{
	struct agents_device d;
	char id[37];
	PGconn *c;

	if (http_path_uuid(rq, "id", id, "device not found") != 0 || (c = http_db(rq)) == NULL)
		return;
	int rc = agents_device_get(c, &rq->scope, id, &d);
	if (rc != 0) {
		http_fail_why(rq, rc, &(struct bz_errinfo){.msg = "device not found"});
		return;
	}
	http_reply(rq, 200, device_detail_json(&d));
}

struct patch_body {
	struct body_str display_name, site_id;
};

static const struct body_field patch_fields[] = {
	BODY_FIELD("displayName", BODY_TEXT, BODY_NULLABLE, struct patch_body, display_name, 1,
		   AGENTS_NAME_MAX),
	BODY_FIELD("siteId", BODY_UUID, BODY_NULLABLE, struct patch_body, site_id, 0, 0),
	{NULL},
};

static int patch_input(struct request *rq, struct agents_device_patch *p)
{
	struct patch_body b = {0};
	const char *msg = NULL, *field = NULL;

	if (http_body_parse(rq, patch_fields, &b) != 0)
		return BZ_ERR_RESPONDED;
	if (b.site_id.present && b.site_id.v == NULL)
		msg = "field 'siteId' must be a UUID", field = "siteId";
	else if (!b.site_id.present && !b.display_name.present)
		msg = "give at least one of 'displayName' and 'siteId'";
	if (msg != NULL) {
		http_fail_why(rq, BZ_ERR_INVALID,
			      &(struct bz_errinfo){.code = "validation_error",
						   .field = field,
						   .msg = msg});
		return BZ_ERR_RESPONDED;
	}
	*p = (struct agents_device_patch){.set_display_name = b.display_name.present,
					  .display_name = b.display_name.v,
					  .site_id = b.site_id.v};
	return 0;
}

static void patch_device(struct request *rq)
{
	struct agents_device_patch p;
	struct agents_device d = {0};
	struct audit_event ev = {0};
	struct bz_errinfo why = {0};
	char id[37];
	PGconn *c;

	if (http_path_uuid(rq, "id", id, "device not found") != 0 || patch_input(rq, &p) != 0 ||
	    (c = http_db_begin(rq)) == NULL)
		return;
	int rc = agents_device_update(c, &rq->scope, id, &p, &d, &ev, &why);
	http_commit(rq, c, rc, &why, &ev, 200, rc == 0 ? device_detail_json(&d) : NULL);
	agents_device_free(&d);
}

/* A device action without a body: path id → one domain call OP → the
 * device, answered with STATUS. */
typedef int (*device_op)(PGconn *c, const struct tenancy_scope *sc, const char *id,
			 struct agents_device *out, struct audit_event *ev, struct bz_errinfo *why);

static void device_action(struct request *rq, device_op op, int status)
{
	struct agents_device d = {0};
	struct audit_event ev = {0};
	struct bz_errinfo why = {0};
	char id[37];
	PGconn *c;

	if (http_path_uuid(rq, "id", id, "device not found") != 0 ||
	    (c = http_db_begin(rq)) == NULL)
		return;
	int rc = op(c, &rq->scope, id, &d, &ev, &why);
	http_commit(rq, c, rc, &why, &ev, status, rc == 0 ? device_detail_json(&d) : NULL);
	agents_device_free(&d);
}

static void decommission_device(struct request *rq)
{
	device_action(rq, agents_device_decommission, 200);
}

/* Asks the device's agent to rotate its token on its next heartbeat (G2). */
static void rotate_agent_token(struct request *rq)
{
	device_action(rq, agents_token_request_rotation, 202);
}

static int reset_now(PGconn *c, const struct tenancy_scope *sc, const char *id,
		     struct agents_device *out, struct audit_event *ev, struct bz_errinfo *why)
{
	return agents_token_reset(c, sc, id, bz_now(), out, ev, why);
}

/* Emergency reset: every agent token of the device dies at once (G2). */
static void reset_agent_token(struct request *rq)
{
	device_action(rq, reset_now, 200);
}

struct review_body {
	struct body_str decision, note;
};

static const char *const review_decisions[] = {"allow_reenrollment", "decommission", NULL};

static const struct body_field review_fields[] = {
	BODY_ENUM_FIELD("decision", BODY_REQUIRED, struct review_body, decision, review_decisions),
	BODY_FIELD("note", BODY_TEXT, BODY_REQUIRED, struct review_body, note, 1, 1000),
	BODY_FIELDS_END,
};

/* G6: an administrator decides what becomes of a suspended device. */
static void review_device(struct request *rq)
{
	struct review_body b = {0};
	struct agents_device d = {0};
	struct audit_event ev = {0};
	struct bz_errinfo why = {0};
	char id[37];
	PGconn *c;

	if (http_path_uuid(rq, "id", id, "device not found") != 0 ||
	    http_body_parse(rq, review_fields, &b) != 0 || (c = http_db_begin(rq)) == NULL)
		return;
	enum agents_review_decision dec = strcmp(b.decision.v, "decommission") == 0
						  ? AGENTS_REVIEW_DECOMMISSION
						  : AGENTS_REVIEW_ALLOW_REENROLLMENT;
	int rc = agents_device_review(c, &rq->scope, id, dec, b.note.v, &d, &ev, &why);
	http_commit(rq, c, rc, &why, &ev, 200, rc == 0 ? device_detail_json(&d) : NULL);
	agents_device_free(&d);
}

/* Query parameters the list routes read (struct route.query). */
static const char *const device_list_query[] = {"orgId", "siteId", "status", "hostname",
						"limit", "cursor", NULL};

const struct route device_routes[] = {
	{"GET", "/api/v1/devices", list_devices, ROUTE_USER, "devices:read", NULL,
	 device_list_query},
	{"GET", "/api/v1/devices/:id", get_device, ROUTE_USER, "devices:read", NULL, NULL},
	{"PATCH", "/api/v1/devices/:id", patch_device, ROUTE_USER | ROUTE_JSON_BODY,
	 "devices:write", "device.update", NULL},
	{"POST", "/api/v1/devices/:id/decommission", decommission_device, ROUTE_USER,
	 "devices:write", "device.decommission", NULL},
	{"POST", "/api/v1/devices/:id/rotate-agent-token", rotate_agent_token, ROUTE_USER,
	 "devices:write", "device.agent_token.rotation_requested", NULL},
	{"POST", "/api/v1/devices/:id/reset-agent-token", reset_agent_token, ROUTE_USER,
	 "devices:write", "device.agent_token.reset", NULL},
	{"POST", "/api/v1/devices/:id/review", review_device, ROUTE_USER | ROUTE_JSON_BODY,
	 "devices:write", "device.review", NULL},
};
const size_t device_routes_count = sizeof(device_routes) / sizeof(*device_routes);
