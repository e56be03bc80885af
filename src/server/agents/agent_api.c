/*
 * agent_api.c — the endpoints agents call: enrolment, heartbeats and token
 * rotation (G2). The enrolment and heartbeat bodies are strict: every
 * member the agent sends (src/agent/client.c) is in a field table, anything
 * else is a 400 naming it, and every string that is stored is a checked
 * display string. Rotation takes no body (or {}).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/clock.h"
#include "common/log.h"
#include "crypto/crypto.h"
#include "server/agents/agents.h"
#include "server/agents/agents_api.h"
#include "server/agents/heartbeat_batch.h"

struct enroll_body {
	struct body_str key, secret, hostname, os_type, os_version, arch, agent_version;
	struct body_json hardware;
};

static const struct body_field enroll_fields[] = {
	BODY_FIELD("enrollmentKey", BODY_STRING, BODY_REQUIRED, struct enroll_body, key, 0, 256),
	BODY_FIELD("enrollmentSecret", BODY_STRING, BODY_REQUIRED, struct enroll_body, secret, 0,
		   512),
	BODY_FIELD("hostname", BODY_TEXT, BODY_REQUIRED, struct enroll_body, hostname, 1,
		   AGENTS_HOSTNAME_MAX),
	BODY_FIELD("osType", BODY_TEXT, BODY_REQUIRED, struct enroll_body, os_type, 1, 32),
	BODY_FIELD("osVersion", BODY_TEXT, 0, struct enroll_body, os_version, 1, 200),
	BODY_FIELD("architecture", BODY_TEXT, 0, struct enroll_body, arch, 1, 64),
	BODY_FIELD("agentVersion", BODY_TEXT, 0, struct enroll_body, agent_version, 1, 64),
	BODY_FIELD("hardware", BODY_OBJECT, 0, struct enroll_body, hardware, 0, 0),
	{NULL},
};

/* 400 naming FIELD.KEY when an agent-reported object fails agents_json_check(). */
static int json_member_error(struct request *rq, const char *field, const char *key,
			     const char *what)
{
	char msg[200];

	snprintf(msg, sizeof(msg), "field '%s.%.64s' %s", field, key ? key : "", what);
	http_fail_why(rq, BZ_ERR_INVALID,
		      &(struct bz_errinfo){.code = "validation_error", .field = field, .msg = msg});
	return BZ_ERR_RESPONDED;
}

/* Refuses an enrolment with 401 and the reason, and audits the attempt. */
static void enroll_refused(struct request *rq, PGconn *c, const char *key, const char *hostname)
{
	struct agents_refusal ref;
	struct audit_event ev;

	agents_enroll_refusal(c, rq->app->cfg->secrets[SECRET_ENROLLMENT_KEY_PEPPER], key, hostname,
			      &ref, &ev);
	http_audit_actor(&ev, rq);
	if (audit_write_standalone(c, &ev) != 0)
		log_error("audit.write.failed", "action", ev.action, NULL);
	json_decref(ev.details);
	http_fail_extra(rq, 401, "invalid_enrollment_key", json_pack("{s:s}", "reason", ref.reason),
			"enrollment key is %s", ref.reason);
}

/* G6: refuses an enrolment that a suspended (or review-decommissioned)
 * device of the key's organization blocks with 409, and audits it in that
 * organization's chain; the enrolment transaction is already rolled back,
 * so the key's use is not consumed. */
static void enroll_blocked(struct request *rq, PGconn *c, const struct agents_enrollment *e,
			   const char *hostname)
{
	const struct agents_enroll_block *b = &e->block;
	const char *reason = b->under_review ? "device_under_review" : "device_blocked";
	struct audit_event ev = {.org_id = e->org_id,
				 .actor_type = "agent",
				 .action = "agent.enroll.failed",
				 .resource = "devices",
				 .resource_id = b->device_id,
				 .result = "failure",
				 .details = json_pack("{s:s,s:s,s:s,s:s}", "reason", reason,
						      "hostname", hostname, "match", b->match,
						      "enrollmentKeyId", e->key_id)};

	http_audit_actor(&ev, rq);
	if (audit_write_standalone(c, &ev) != 0)
		log_error("audit.write.failed", "action", ev.action, NULL);
	json_decref(ev.details);
	if (b->under_review)
		http_fail(rq, 409, reason,
			  "a suspended device of this organization with the same %s awaits an "
			  "administrator's review",
			  b->match);
	else
		http_fail(rq, 409, reason,
			  "a device of this organization with the same %s was decommissioned by a "
			  "review; an administrator must allow its re-enrollment",
			  b->match);
}

/* R5: enrolment attempts per client address, before the secret or the
 * key is checked. Returns 0 or BZ_ERR_RESPONDED (429, audited once per
 * address per window). */
static int enroll_limit(struct request *rq)
{
	char ip[RATELIMIT_IP_LEN + 4];
	const struct ratelimit_item it = {.limiter = RL_ENROLL, .tag = ip};
	const struct audit_event refusal = {.actor_type = "system",
					    .action = "device.enroll.rate_limited",
					    .resource = "devices"};

	http_rate_ip(rq, ip, sizeof(ip));
	return http_rate_limit(rq, &it, 1, &refusal);
}

static void enroll(struct request *rq)
{
	const struct config *cfg = rq->app->cfg;
	struct enroll_body b = {0};
	struct agents_enrollment e;
	struct audit_event ev = {0};
	struct bz_errinfo why = {0};
	const char *bad;
	PGconn *c;

	if (http_body_parse(rq, enroll_fields, &b) != 0 || enroll_limit(rq) != 0)
		return;
	if (b.hardware.v != NULL && agents_json_check(b.hardware.v, 0, &bad) != 0) {
		json_member_error(rq, "hardware", bad,
				  "must hold numbers within ±2^53 and display strings, nested at "
				  "most 32 deep");
		return;
	}
	if (agents_enroll_check_secret(b.secret.v, cfg->secrets[SECRET_AGENT_ENROLLMENT_SECRET],
				       &why) != 0) {
		http_fail_why(rq, BZ_ERR_FORBIDDEN, &why);
		return;
	}
	/* An agent's Idempotency-Key belongs to its enrolment key. */
	if (http_idem_caller(rq, "enroll", b.key.v) != 0) {
		http_fail_err(rq, BZ_ERR_CRYPTO, NULL);
		return;
	}
	if ((c = http_db_begin(rq)) == NULL)
		return;
	struct agents_enroll_input in = {.key = b.key.v,
					 .hostname = b.hostname.v,
					 .os_type = b.os_type.v,
					 .os_version = b.os_version.v,
					 .architecture = b.arch.v,
					 .agent_version = b.agent_version.v,
					 .hardware = b.hardware.v,
					 .client_ip = rq->client_ip[0] ? rq->client_ip : NULL,
					 .heartbeat_interval_s = cfg->heartbeat_interval_s};
	int rc = agents_enroll(c, cfg->secrets[SECRET_ENROLLMENT_KEY_PEPPER], &in, &e, &ev);
	if (rc == BZ_ERR_UNAUTHORIZED || rc == BZ_ERR_CONFLICT) {
		db_rollback(c);
		if (rc == BZ_ERR_CONFLICT)
			enroll_blocked(rq, c, &e, b.hostname.v);
		else
			enroll_refused(rq, c, b.key.v, b.hostname.v);
		return;
	}
	json_t *out = rc != 0 ? NULL
			      : json_pack("{s:s,s:s,s:s,s:s,s:{s:i}}", "agentId", e.device_id,
					  "authToken", e.token, "orgId", e.org_id, "siteId",
					  e.site_id, "config", "heartbeatIntervalSeconds",
					  cfg->heartbeat_interval_s);
	crypto_wipe(e.token, sizeof(e.token));
	http_idem_withhold(rq, "authToken");
	http_commit(rq, c, rc, NULL, &ev, 201, out);
}

/* The heartbeat body. Besides status, versions, uptime and metrics, the
 * agent reports its inventory at the top level (src/agent/client.c:
 * hostname, osType, osVersion, kernel, architecture); cpuModel and cpuCount
 * are accepted for agents that report them. */
struct heartbeat_body {
	struct body_str status, agent_version;
	struct body_int uptime, cpu_count;
	struct body_json metrics;
	struct body_str hostname, os_type, os_version, kernel, arch, cpu_model;
};

static const struct body_field heartbeat_fields[] = {
	BODY_FIELD("status", BODY_TEXT, 0, struct heartbeat_body, status, 1, 32),
	BODY_FIELD("agentVersion", BODY_TEXT, 0, struct heartbeat_body, agent_version, 1, 64),
	BODY_FIELD("uptimeSeconds", BODY_INT, 0, struct heartbeat_body, uptime, 0, INT64_MAX),
	BODY_FIELD("metrics", BODY_OBJECT, 0, struct heartbeat_body, metrics, 0, 0),
	BODY_FIELD("hostname", BODY_TEXT, 0, struct heartbeat_body, hostname, 1,
		   AGENTS_HOSTNAME_MAX),
	BODY_FIELD("osType", BODY_TEXT, 0, struct heartbeat_body, os_type, 1, AGENTS_TEXT_MAX),
	BODY_FIELD("osVersion", BODY_TEXT, 0, struct heartbeat_body, os_version, 1,
		   AGENTS_TEXT_MAX),
	BODY_FIELD("kernel", BODY_TEXT, 0, struct heartbeat_body, kernel, 1, AGENTS_TEXT_MAX),
	BODY_FIELD("architecture", BODY_TEXT, 0, struct heartbeat_body, arch, 1, AGENTS_TEXT_MAX),
	BODY_FIELD("cpuModel", BODY_TEXT, 0, struct heartbeat_body, cpu_model, 1, AGENTS_TEXT_MAX),
	BODY_FIELD("cpuCount", BODY_INT, 0, struct heartbeat_body, cpu_count, 0, 1 << 20),
	{NULL},
};

/* The inventory members of B, as stored in device_heartbeats.inventory. */
static json_t *inventory_json(const struct heartbeat_body *b)
{
	const struct {
		const char *name;
		const struct body_str *v;
	} s[] = {{"hostname", &b->hostname},	{"osType", &b->os_type},
		 {"osVersion", &b->os_version}, {"kernel", &b->kernel},
		 {"architecture", &b->arch},	{"cpuModel", &b->cpu_model}};
	json_t *inv = json_object();

	for (size_t i = 0; i < sizeof(s) / sizeof(*s); i++)
		if (s[i].v->v != NULL)
			json_object_set_new(inv, s[i].name, json_string(s[i].v->v));
	if (b->cpu_count.present)
		json_object_set_new(inv, "cpuCount", json_integer(b->cpu_count.v));
	return inv;
}

/* How agent_auth() treats a token agents_agent_auth() refuses. */
enum agent_auth_mode {
	AUTH_USABLE,  /* refused: 401 */
	AUTH_CONFIRM, /* an expired pending token of the device: 409 rotation_expired */
};

/* The checks of an agent request that need nothing but the request: path
 * agent ID (404) and the Authorization header's form (401), and the
 * token's SHA-256 into TOKEN_HASH. Returns 0 or BZ_ERR_RESPONDED. */
static int agent_token_hash(struct request *rq, char id[37], char token_hash[65])
{
	const char *h = http_header(rq, "Authorization");

	if (http_path_uuid(rq, "agentId", id, "agent not found") != 0)
		return BZ_ERR_RESPONDED;
	if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0 || strlen(h + 7) != AGENTS_TOKEN_LEN ||
	    strncmp(h + 7, AGENT_TOKEN_PREFIX, 4) != 0) {
		http_fail(rq, 401, "unauthorized", "missing or malformed agent token");
		return BZ_ERR_RESPONDED;
	}
	if (crypto_sha256_hex(h + 7, strlen(h + 7), token_hash) != 0) {
		http_fail_err(rq, BZ_ERR_CRYPTO, NULL);
		return BZ_ERR_RESPONDED;
	}
	return 0;
}

/* Authenticates the agent token of RQ for path agent ID into A, and its
 * SHA-256 into TOKEN_HASH. A retired token is a theft signal (G2): the
 * same 401 as a bad token, and audited. */
static int agent_auth(struct request *rq, PGconn **c, struct agents_agent *a, char token_hash[65],
		      enum agent_auth_mode mode)
{
	struct bz_errinfo why = {0};
	char id[37];

	if (agent_token_hash(rq, id, token_hash) != 0)
		return BZ_ERR_RESPONDED;
	if ((*c = http_db(rq)) == NULL)
		return BZ_ERR_RESPONDED;
	int rc = agents_agent_auth(*c, token_hash, id, a, &why);
	if (rc == BZ_ERR_UNAUTHORIZED && mode == AUTH_CONFIRM)
		rc = agents_token_confirm_expired(a, id, &why);
	/* R3, R4: the token's device and its organization in one check,
	 * before the request writes anything. */
	const struct ratelimit_item it[2] = {
		{.limiter = RL_AGENT_DEVICE, .tag = a->org_id, .subject = a->device_id},
		{.limiter = RL_AGENT_ORG, .tag = a->org_id},
	};
	if (rc == 0)
		return http_rate_limit(rq, it, 2, NULL);
	const char *ip = rq->client_ip[0] ? rq->client_ip : NULL;
	/* A retired token is answered like an unknown one, over the limit
	 * too; the limit only decides whether its use is audited again. */
	if (rc == BZ_ERR_UNAUTHORIZED && a->device_id[0] && http_rate_admits(rq, it, 2) &&
	    agents_token_retired_use(*c, token_hash, a, ip, bz_now()) != 0)
		log_error("audit.write.failed", "action", "agent.token.retired_use", NULL);
	/* G6: another device's path. A cross-tenant probe is suspended
	 * whatever the limits say (once: the token is dead afterwards); a
	 * failed suspension still refuses, with the same answer, and the next
	 * attempt tries again. A token on another device of its own
	 * organization is a valid token: over the limit it gets the 429 its
	 * own requests would. */
	if (a->probe == AGENTS_PROBE_SAME_ORG || a->probe == AGENTS_PROBE_UNKNOWN_DEVICE) {
		if (http_rate_limit(rq, it, 2, NULL) != 0)
			return BZ_ERR_RESPONDED;
	}
	if (a->probe != AGENTS_PROBE_NONE &&
	    agents_probe_record(*c, token_hash, a, ip, bz_now()) != 0)
		log_error("agent.probe.record_failed", "deviceId", a->device_id, NULL);
	http_fail_why(rq, rc, &why);
	return BZ_ERR_RESPONDED;
}

/* Checks B's metrics (numbers only). Returns 0 or BZ_ERR_RESPONDED (400). */
static int heartbeat_check(struct request *rq, const struct heartbeat_body *b)
{
	const char *bad;

	if (b->metrics.v != NULL && agents_json_check(b->metrics.v, AGENTS_JSON_NUMBERS, &bad) != 0)
		return json_member_error(rq, "metrics", bad, "must be a number within ±2^53");
	return 0;
}

/* The heartbeat's HB of body B from RQ (INV: its inventory object). */
static struct agents_heartbeat heartbeat_of(const struct request *rq,
					    const struct heartbeat_body *b, json_t *inv)
{
	return (struct agents_heartbeat){.status = b->status.v,
					 .agent_version = b->agent_version.v,
					 .uptime_s = b->uptime.present ? b->uptime.v : -1,
					 .metrics = b->metrics.v,
					 .inventory = inv,
					 .hostname = b->hostname.v,
					 .os_version = b->os_version.v,
					 .client_ip = rq->client_ip[0] ? rq->client_ip : NULL,
					 .ip_dedup_s = rq->app->cfg->agent_ip_change_dedup_s};
}

/* The 200 of a written heartbeat of A. */
static void heartbeat_ok(struct request *rq, const struct agents_agent *a)
{
	int rotate =
		agents_token_rotate_due(a, bz_now(),
					(int64_t)rq->app->cfg->agent_token_max_age_days * 86400);
	http_reply(rq, 200,
		   json_pack("{s:{s:i},s:[],s:b}", "config", "heartbeatIntervalSeconds",
			     a->heartbeat_interval_s, "commands", "rotateToken", rotate));
}

/* The synchronous heartbeat: every check and write on the request's own
 * connection, audited changes in their transaction. */
static void heartbeat_sync(struct request *rq)
{
	struct heartbeat_body b = {0};
	struct agents_agent a;
	struct bz_errinfo why = {0};
	char token_hash[65];
	PGconn *c;

	/* The token first: an unauthenticated caller learns nothing about
	 * what a valid body looks like. */
	if (agent_auth(rq, &c, &a, token_hash, AUTH_USABLE) != 0 ||
	    http_body_parse(rq, heartbeat_fields, &b) != 0 || heartbeat_check(rq, &b) != 0)
		return;
	json_t *inv = inventory_json(&b);
	struct agents_heartbeat hb = heartbeat_of(rq, &b, inv);
	/* G2: a heartbeat made with a live pending token confirms it. */
	int rc = a.token_state == AGENTS_TOKEN_PENDING
			 ? agents_token_confirm_heartbeat(c, token_hash, &a, hb.client_ip, bz_now(),
							  &why)
			 : 0;
	if (rc == 0)
		rc = agents_heartbeat_record(c, &a, &hb);
	json_decref(inv);
	if (rc == BZ_ERR_UNAUTHORIZED) /* reset while it was in flight */
		bz_fail(&why, rc, "unauthorized", NULL, "invalid agent token");
	if (rc != 0) {
		http_fail_why(rq, rc, &why);
		return;
	}
	heartbeat_ok(rq, &a);
}

/* heartbeat_sync() of a deferred heartbeat (http_defer_run). */
static void heartbeat_sync_deferred(struct request *d)
{
	heartbeat_sync(d);
	http_resume(d);
}

/* The group committer (HEARTBEAT_GROUP_COMMIT), or NULL: every heartbeat
 * then takes heartbeat_sync(). */
static struct agents_hb_batch *hb_batch;

/* A heartbeat waiting for its batch: the job and what its pointers borrow. */
struct hb_wait {
	struct agents_hb_job job;
	struct request *d;
	struct heartbeat_body b; /* points into d's body */
	json_t *inv;
};

/* The batch's outcome O of waiting heartbeat CTX (on the committer
 * thread: renders and resumes, never blocks). */
static void heartbeat_done(void *ctx, const struct agents_hb_outcome *o)
{
	struct hb_wait *w = ctx;
	struct request *d = w->d;

	switch (o->verdict) {
	case AGENTS_HB_SLOW:
		break;
	case AGENTS_HB_LIMITED:
		http_rate_render(d, o->rl_rc, o->rl, NULL);
		break;
	case AGENTS_HB_FAILED:
		if (o->rc == BZ_ERR_UNAVAILABLE)
			http_set_header(d, "Retry-After", "1");
		http_fail_why(d, o->rc, o->why);
		break;
	case AGENTS_HB_WRITTEN:
		if (http_rate_render(d, 0, o->rl, NULL) == 0)
			heartbeat_ok(d, o->agent);
		break;
	}
	/* O points into W's job: freed only once rendered. */
	json_decref(w->inv);
	free(w);
	if (o->verdict == AGENTS_HB_SLOW)
		http_defer_run(d, heartbeat_sync_deferred);
	else
		http_resume(d);
}

/*
 * POST /agents/:agentId/heartbeat. With the group committer, only what
 * needs nothing but the request runs here (path, token form and hash, the
 * body); the answer is deferred until the heartbeat's batch committed
 * (heartbeat_batch.h), and no thread waits for it. An invalid body takes
 * the synchronous path, so a bad token is still a 401 whatever the body.
 */
static void heartbeat(struct request *rq)
{
	struct hb_wait *w;
	struct request *d;

	if (hb_batch == NULL) {
		heartbeat_sync(rq);
		return;
	}
	if ((w = calloc(1, sizeof(*w))) == NULL) {
		http_fail_err(rq, BZ_ERR_NOMEM, NULL);
		return;
	}
	if (agent_token_hash(rq, w->job.path_id, w->job.token_hash) != 0) {
		free(w);
		return;
	}
	if (http_body_parse(rq, heartbeat_fields, &w->b) != 0 || heartbeat_check(rq, &w->b) != 0) {
		free(w);
		heartbeat_sync(rq); /* answers in the order it always did */
		return;
	}
	if ((d = http_defer(rq)) == NULL) {
		free(w);
		return;
	}
	w->d = d;
	w->inv = inventory_json(&w->b);
	w->job.hb = heartbeat_of(d, &w->b, w->inv);
	w->job.done = heartbeat_done;
	w->job.ctx = w;
	if (agents_hb_batch_submit(hb_batch, &w->job) != 0) {
		json_decref(w->inv);
		free(w);
		http_set_header(d, "Retry-After", "1");
		http_fail(d, 503, "heartbeat_queue_full",
			  "too many heartbeats waiting to be written; retry later");
		http_resume(d);
	}
}

int agents_api_start(const struct config *cfg, struct db_pool *pool, struct ratelimit *rl)
{
	if (!cfg->heartbeat_group_commit)
		return 0;
	return agents_hb_batch_start(&hb_batch, pool, rl, cfg->heartbeat_queue_max);
}

void agents_api_stop(void)
{
	agents_hb_batch_stop(hb_batch);
	hb_batch = NULL;
}

/* POST /agents/:agentId/rotate-token, with the current token: a new token,
 * pending until confirmed (G2). No body, or {}. */
static void rotate_token(struct request *rq)
{
	struct agents_agent a;
	struct agents_rotation r = {0};
	struct audit_event ev = {0};
	struct bz_errinfo why = {0};
	char token_hash[65], exp[32];
	json_t *out = NULL;
	PGconn *c;

	if (agent_auth(rq, &c, &a, token_hash, AUTH_USABLE) != 0 || (c = http_db_begin(rq)) == NULL)
		return;
	int rc = agents_token_rotate_start(c, token_hash, &a, bz_now(), &r, &ev, &why);
	if (rc == 0 && bz_format_iso8601(r.expires_at, exp, sizeof(exp)) == 0)
		out = json_pack("{s:s,s:s}", "authToken", r.token, "expiresAt", exp);
	crypto_wipe(r.token, sizeof(r.token));
	if (rc == 0 && out == NULL)
		rc = BZ_ERR_NOMEM; /* never commit a token the agent does not get */
	http_commit(rq, c, rc, &why, &ev, 200, out);
}

/* POST /agents/:agentId/rotate-token/confirm, with the new token. */
static void confirm_rotation(struct request *rq)
{
	struct agents_agent a;
	struct agents_rotation r = {0};
	struct audit_event ev = {0};
	struct bz_errinfo why = {0};
	char token_hash[65], exp[32];
	json_t *out = NULL;
	PGconn *c;

	if (agent_auth(rq, &c, &a, token_hash, AUTH_CONFIRM) != 0 ||
	    (c = http_db_begin(rq)) == NULL)
		return;
	int rc = agents_token_confirm(c, token_hash, &a, bz_now(), "confirm", &r, &ev, &why);
	if (rc == 0 && bz_format_iso8601(r.expires_at, exp, sizeof(exp)) == 0)
		out = json_pack("{s:b,s:s}", "confirmed", 1, "previousTokenExpiresAt", exp);
	if (rc == 0 && out == NULL)
		rc = BZ_ERR_NOMEM;
	http_commit(rq, c, rc, &why, &ev, 200, out);
}

const struct route agent_routes[] = {
	{"POST", "/api/v1/agents/enroll", enroll, ROUTE_PUBLIC | ROUTE_JSON_BODY | ROUTE_IDEMPOTENT,
	 NULL, "device.enroll", NULL},
	/* Telemetry: audited only for what it changes (G7), see heartbeat.c. */
	{"POST", "/api/v1/agents/:agentId/heartbeat", heartbeat,
	 ROUTE_PUBLIC | ROUTE_JSON_BODY | ROUTE_AUDIT_EXEMPT, NULL, NULL, NULL},
	/* G2: no body (or {}); authenticated by the agent token. */
	{"POST", "/api/v1/agents/:agentId/rotate-token", rotate_token, ROUTE_PUBLIC, NULL,
	 "agent.token.rotation_started", NULL},
	{"POST", "/api/v1/agents/:agentId/rotate-token/confirm", confirm_rotation, ROUTE_PUBLIC,
	 NULL, "agent.token.rotated", NULL},
};
const size_t agent_routes_count = sizeof(agent_routes) / sizeof(*agent_routes);
