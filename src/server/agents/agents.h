/*
 * agents.h — enrolment keys (G5), agent enrolment, heartbeats (G1, G7) and
 * devices: the SQL of enrollment_keys, devices and device_heartbeats. Plain
 * structs in and out, no HTTP types; every read and change is bound to a
 * tenancy scope, and another tenant's object is BZ_ERR_NOT_FOUND. The
 * routes are in agents_api.h.
 *
 * Mutations run inside the caller's transaction and describe themselves in
 * a struct audit_event (EV->action NULL = nothing changed, write no row);
 * the caller writes it and commits. Errors are negative bz_err codes with a
 * struct bz_errinfo explanation.
 */
#ifndef BZ_AGENTS_H
#define BZ_AGENTS_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "server/audit/audit.h"
#include "server/tenancy/tenancy.h"

/* Agent tokens are "brz_" + 32 random bytes in hex; only their SHA-256 is
 * stored (G1). */
/* How agent-reported JSON (metrics, inventory, hardware) is stored: compact,
 * numbers with 15 significant digits, so a reported 0.51 reads back as 0.51
 * rather than jansson's round-trip 0.51000000000000001. */
#define AGENTS_JSON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15))

#define AGENT_TOKEN_PREFIX "brz_"
#define AGENTS_TOKEN_LEN 68 /* bytes of a token, without the NUL */

/* Enrolment keys are "bek_" + 32 random bytes in hex (G5). */
#define AGENTS_KEY_LEN 68

#define AGENTS_NAME_MAX 200	/* bytes of a key name or a device display name */
#define AGENTS_HOSTNAME_MAX 255 /* bytes of a hostname (the column's CHECK) */
#define AGENTS_TEXT_MAX 255	/* bytes of an OS/inventory string */

/* ---- Enrolment keys (enrollment_keys.c) ---- */

struct agents_key {
	char id[37];
	char org_id[37];
	char site_id[37];
	char name[AGENTS_NAME_MAX + 1];
	char key_prefix[16];
	int max_usage;
	int usage_count;
	char expires_at[32]; /* ISO 8601 UTC */
	char revoked_at[32]; /* "" = not revoked */
	char created_at[32];
	char status[12]; /* active, expired, exhausted, revoked */
};

struct agents_key_input {
	const char *org_id;	/* NULL: the site's organization */
	const char *site_id;	/* required */
	const char *name;	/* a checked display string */
	int64_t max_usage;	/* 1..100000 */
	int64_t ttl_min;	/* 1..525600 minutes; used when EXPIRES_AT is NULL */
	const char *expires_at; /* ISO 8601 instant at most 365 days ahead, or NULL */
	const char *created_by; /* user id or NULL */
};

/* HMAC-SHA-256 of enrolment KEY under PEPPER as hex into OUT[65] (G5).
 * Returns 0 or BZ_ERR_CRYPTO. */
int agents_key_hash(const char *pepper, const char *key, char out[65]);

/*
 * Creates an enrolment key for IN's site (visible in SCOPE; when IN->org_id
 * is given it must be the site's organization) inside the caller's
 * transaction on C; only its HMAC under PEPPER is stored. The raw key is
 * written to RAW (caller wipes it with crypto_wipe after use). EV describes
 * the change (enrollment_key.create; its strings point into OUT). Returns
 * 0, BZ_ERR_INVALID (expiresAt), BZ_ERR_NOT_FOUND (organization or site),
 * BZ_ERR_CRYPTO or BZ_ERR_DB, with WHY set.
 */
int agents_key_create(PGconn *c, const struct tenancy_scope *scope, const char *pepper,
		      const struct agents_key_input *in, struct agents_key *out,
		      char raw[AGENTS_KEY_LEN + 1], struct audit_event *ev, struct bz_errinfo *why);

/* The keys visible in SCOPE (site-limited scopes: only their sites' keys),
 * optionally of organization ORG_ID only, newest first, at most 1000, into
 * a malloc'd array *OUT (caller frees). Returns 0, BZ_ERR_NOT_FOUND (ORG_ID
 * not visible), BZ_ERR_DB or BZ_ERR_NOMEM. */
int agents_key_list(PGconn *c, const struct tenancy_scope *scope, const char *org_id,
		    struct agents_key **out, size_t *n);

/* Key ID if visible in SCOPE. Returns 0, BZ_ERR_NOT_FOUND or BZ_ERR_DB. */
int agents_key_get(PGconn *c, const struct tenancy_scope *scope, const char *id,
		   struct agents_key *out);

/* Revokes key ID (visible in SCOPE) inside the caller's transaction; a key
 * already revoked keeps its first revocation time and EV->action stays
 * NULL (no second audit row). Returns 0, BZ_ERR_NOT_FOUND or BZ_ERR_DB. */
int agents_key_revoke(PGconn *c, const struct tenancy_scope *scope, const char *id,
		      struct agents_key *out, struct audit_event *ev, struct bz_errinfo *why);

/* ---- Enrolment (enroll.c) ---- */

struct agents_enroll_input {
	const char *key;      /* the raw enrolment key */
	const char *hostname; /* checked display strings ... */
	const char *os_type;
	const char *os_version;	   /* NULL = "" */
	const char *architecture;  /* NULL = "" */
	const char *agent_version; /* NULL = "" */
	const json_t *hardware;	   /* checked with agents_json_check(), or NULL */
	const char *client_ip;	   /* or NULL */
	int heartbeat_interval_s;
};

/* Why an enrolment was refused by a blocked device. */
struct agents_enroll_block {
	char device_id[37]; /* the blocking device, of the enrolling key's organization */
	const char *match;  /* "hostname" or "fingerprint" (static) */
	int under_review;   /* 1: suspended, awaiting review; 0: decommissioned by a review */
};

struct agents_enrollment {
	char device_id[37];
	char org_id[37];
	char site_id[37];
	char key_id[37];
	char token[AGENTS_TOKEN_LEN + 1]; /* returned once; caller wipes it */
	struct agents_enroll_block block; /* filled on BZ_ERR_CONFLICT */
};

/* Why an enrolment key was not accepted, for the refusal answer and its
 * audit row. */
struct agents_refusal {
	char reason[16]; /* unknown, revoked, expired, exhausted */
	char key_id[37]; /* "" when unknown */
	char org_id[37]; /* "" when unknown (the system chain) */
};

/* Compares the enrolment secret GIVEN with the configured EXPECTED in
 * constant time. Returns 0 or BZ_ERR_FORBIDDEN (code
 * invalid_enrollment_secret) with WHY set. */
int agents_enroll_check_secret(const char *given, const char *expected, struct bz_errinfo *why);

/*
 * Enrols a device inside the caller's transaction on C: consumes one use of
 * the key whose HMAC under PEPPER matches IN->key (a guarded UPDATE, so
 * parallel enrolments never exceed the use limit) and inserts the device
 * with a fresh token, of which only the SHA-256 is stored. EV describes the
 * change (device.enroll, actor the new device; strings point into OUT).
 * Returns 0, BZ_ERR_UNAUTHORIZED (key not usable: roll back, then see
 * agents_enroll_refusal()), BZ_ERR_CONFLICT (a suspended or review-
 * decommissioned device of the key's organization blocks this hostname or
 * hardware fingerprint, G6: OUT->block and OUT's key, org and site are
 * filled; roll back, which also returns the key's use), BZ_ERR_CRYPTO,
 * BZ_ERR_NOMEM or BZ_ERR_DB.
 */
int agents_enroll(PGconn *c, const char *pepper, const struct agents_enroll_input *in,
		  struct agents_enrollment *out, struct audit_event *ev);

/* Works out on C (outside the rolled-back enrolment transaction) why
 * enrolment key KEY (HMAC under PEPPER) was refused, and describes the
 * security event in EV (agent.enroll.failed, result failure, HOSTNAME in
 * the details; EV->details owned by the caller; strings point into OUT),
 * to be written with audit_write_standalone(). Returns 0; OUT->reason is
 * "unknown" also when the lookup fails. */
int agents_enroll_refusal(PGconn *c, const char *pepper, const char *key, const char *hostname,
			  struct agents_refusal *out, struct audit_event *ev);

/* ---- Heartbeats (heartbeat.c) ---- */

enum agents_json_flags {
	AGENTS_JSON_NUMBERS = 1 << 0, /* every member must be a number */
};

/*
 * Checks a JSON object an agent reports (enrolment "hardware", heartbeat
 * "metrics"): at most 32 levels deep, every number finite and within ±2^53
 * (so any JSON consumer reads it back exactly), every string a display
 * string of at most 1024 bytes (empty allowed), and with
 * AGENTS_JSON_NUMBERS every top-level member a number. Returns 0 or
 * BZ_ERR_INVALID with *BAD_KEY (when non-NULL) the top-level member at
 * fault (borrowed from OBJ) or NULL.
 */
int agents_json_check(const json_t *obj, unsigned flags, const char **bad_key);

/* ---- Agent tokens (tokens.c, table agent_tokens) ---- */

/* Where a token is in its life (migration 0011 explains each state). */
enum agents_token_state {
	AGENTS_TOKEN_PENDING,	/* issued by a rotation, not yet confirmed */
	AGENTS_TOKEN_CURRENT,	/* the device's token */
	AGENTS_TOKEN_PREVIOUS,	/* replaced; accepted during the grace period */
	AGENTS_TOKEN_RETIRED,	/* never accepted again */
	AGENTS_TOKEN_SUSPENDED, /* taken out of service by a security event */
};

/* What a token used on another device's path was aimed at (G6; probe.c). */
enum agents_probe {
	AGENTS_PROBE_NONE,	     /* the token's own device */
	AGENTS_PROBE_CROSS_TENANT,   /* a device of another organization: suspend */
	AGENTS_PROBE_SAME_ORG,	     /* another device of the token's organization */
	AGENTS_PROBE_UNKNOWN_DEVICE, /* no such device */
};

/* The device an agent token speaks for, and the token's state. */
struct agents_agent {
	char device_id[37];
	char org_id[37];
	char device_status[16]; /* active, suspended, decommissioned */
	char old_ip[64];	/* last source address or "" */
	char hostname[AGENTS_HOSTNAME_MAX + 1];
	int heartbeat_interval_s;
	enum agents_token_state token_state;
	int token_live;		    /* 1 when before the token's expires_at, or it has none */
	int64_t token_activated_at; /* epoch seconds it became current; 0 = never */
	int rotation_requested;	    /* current token: an administrator asked for rotation */
	int pending_live;	    /* current token: the device has a live pending token */
	int credential_version;	    /* devices.credential_version at the lookup (0015) */
	int online; /* devices.online at the lookup (0019): 1, 0 (offline), -1 never seen */
	/* Set by agents_agent_auth() when the path names another device. */
	enum agents_probe probe;
	char probe_device_id[37]; /* the path device */
	char probe_org_id[37];	  /* its organization ("" when unknown) */
};

/* The state's name as stored ("pending", "current", ...). Static storage. */
const char *agents_token_state_name(enum agents_token_state s);

/*
 * Generates a new agent token into TOKEN ("brz_" + 64 hex digits of 32
 * random bytes, NUL-terminated; the caller wipes it with crypto_wipe()) and
 * its SHA-256 as 64 hex digits into HASH. Returns 0 or BZ_ERR_CRYPTO (TOKEN
 * wiped).
 */
int agents_token_new(char token[AGENTS_TOKEN_LEN + 1], char hash[65]);

/*
 * Stores token hash HASH of device DEVICE_ID (organization ORG_ID) in STATE,
 * created at NOW (epoch seconds; a current token is also activated then)
 * and expiring at EXPIRES_AT (epoch seconds; 0 = none, which pending and
 * previous tokens may not have). The partial unique indexes allow one
 * current, one pending and one previous token per device. Returns 0 or
 * BZ_ERR_DB (also on a unique violation).
 */
int agents_token_insert(PGconn *c, const char *device_id, const char *org_id, const char *hash,
			enum agents_token_state state, int64_t now, int64_t expires_at);

/*
 * Finds the token with SHA-256 TOKEN_HASH (64 hex digits) and its device,
 * whatever the token's state, judging expiry against NOW (epoch seconds).
 * Returns 0 with OUT filled, BZ_ERR_NOT_FOUND (no such token; OUT zeroed)
 * or BZ_ERR_DB. Whether the token may be used is agents_token_usable().
 */
int agents_token_lookup(PGconn *c, const char *token_hash, int64_t now, struct agents_agent *out);

/*
 * agents_token_lookup() of N token hashes HASHES with ONE statement (the
 * heartbeat group commit): for each i, *OUT[i] is filled and RCS[i] set to
 * 0, or RCS[i] = BZ_ERR_NOT_FOUND. Exact: nothing is cached. Returns 0,
 * BZ_ERR_DB (RCS not meaningful) or BZ_ERR_NOMEM.
 */
int agents_token_lookup_many(PGconn *c, const char *const *hashes, size_t n, int64_t now,
			     struct agents_agent *const *out, int *rcs);

/*
 * 1 if the token A was looked up by authenticates: current; pending before
 * its expiry (unconfirmed rotation); previous inside its grace period (G2);
 * and the device not decommissioned. 0 otherwise.
 */
int agents_token_usable(const struct agents_agent *a);

/*
 * Retires every pending, current and previous token of DEVICE_ID at NOW
 * (epoch seconds) with REASON (at most 64 bytes, e.g. "decommissioned"), so
 * none of them authenticates after the commit; suspended tokens keep their
 * state. Returns 0 or BZ_ERR_DB.
 */
int agents_tokens_retire_all(PGconn *c, const char *device_id, const char *reason, int64_t now);

/*
 * Retires token TOKEN_HASH if it is still in STATE (pending or previous;
 * any other state: nothing to do) with its expires_at at or before NOW
 * (epoch seconds): reason "grace_over" for a previous token,
 * "expired" for a pending one (which agents_token_lookup() goes on showing
 * as an expired pending token). One guarded UPDATE of the token row
 * alone (no device lock: it waits for nothing a token change holds while
 * waiting for it). Returns 0 (also when nothing matched) or BZ_ERR_DB.
 */
int agents_token_retire_expired(PGconn *c, const char *token_hash, enum agents_token_state state,
				int64_t now);

/* ---- Token rotation (tokens.c; checklist G2, docs/agent-tokens.md) ---- */

#define AGENTS_PENDING_TTL_S 3600 /* life of an unconfirmed rotated token */
#define AGENTS_TOKEN_GRACE_S 300  /* the previous token's grace after a confirm */

/* The outcome of a rotation step. */
struct agents_rotation {
	char device_id[37];
	char org_id[37];
	char token[AGENTS_TOKEN_LEN + 1]; /* rotate start: the new token; caller wipes */
	/* Epoch seconds: rotate start, the end of the pending token's hour;
	 * confirm, the end of the previous token's grace. */
	int64_t expires_at;
};

/*
 * Starts a rotation for the agent A authenticated by TOKEN_HASH, at NOW
 * (epoch seconds), inside the caller's transaction on C: issues a new token
 * (OUT->token, "brz_" + 64 hex digits; the caller wipes it) and stores its
 * SHA-256 as pending until NOW + AGENTS_PENDING_TTL_S. An expired pending
 * token of the device is retired first (reason "expired"). The device row
 * is locked first, so two rotations of one device never interleave. EV
 * describes the change (agent.token.rotation_started, actor the agent;
 * strings point into OUT). Returns 0; BZ_ERR_CONFLICT with code
 * token_superseded (TOKEN_HASH is the pending or the previous token) or
 * rotation_in_progress (a live pending token exists); BZ_ERR_UNAUTHORIZED
 * (the token left service meanwhile); BZ_ERR_FORBIDDEN (device_suspended);
 * BZ_ERR_CRYPTO or BZ_ERR_DB. WHY is set on refusals.
 */
int agents_token_rotate_start(PGconn *c, const char *token_hash, const struct agents_agent *a,
			      int64_t now, struct agents_rotation *out, struct audit_event *ev,
			      struct bz_errinfo *why);

/*
 * Confirms the rotation whose new token has SHA-256 TOKEN_HASH (agent A),
 * at NOW, inside the caller's transaction on C, under the device row lock:
 * the pending token becomes current (activated NOW), the current one
 * previous until NOW + AGENTS_TOKEN_GRACE_S, and an older previous token is
 * retired (reason "rotated"). VIA ("confirm" or "heartbeat") goes into the
 * audit details. EV describes the change (agent.token.rotated; strings
 * point into OUT). Returns 0; BZ_ERR_CONFLICT with code already_confirmed
 * (TOKEN_HASH is current), rotation_expired (the pending token's hour is
 * over) or token_superseded (TOKEN_HASH is the previous token);
 * BZ_ERR_UNAUTHORIZED (any other state); or BZ_ERR_DB. WHY is set on
 * refusals.
 */
int agents_token_confirm(PGconn *c, const char *token_hash, const struct agents_agent *a,
			 int64_t now, const char *via, struct agents_rotation *out,
			 struct audit_event *ev, struct bz_errinfo *why);

/*
 * The heartbeat's confirmation (G2: a heartbeat made with a live pending
 * token confirms it): agents_token_confirm() and its audit row (source
 * address IP, may be NULL) in one transaction of its own on C, which must
 * be outside one. A confirm that raced it and won is no failure. On return
 * 0, A's token fields describe the token as it now is (current, or
 * previous inside its grace). Returns 0, BZ_ERR_UNAUTHORIZED (the pending
 * token expired meanwhile; WHY set) or BZ_ERR_DB.
 */
int agents_token_confirm_heartbeat(PGconn *c, const char *token_hash, struct agents_agent *a,
				   const char *ip, int64_t now, struct bz_errinfo *why);

/*
 * For a confirm refused by agents_agent_auth(): BZ_ERR_CONFLICT (code
 * rotation_expired, WHY set) when A is a pending token of device PATH_ID
 * whose hour is over, so the agent learns to keep its current token;
 * BZ_ERR_UNAUTHORIZED (WHY untouched) otherwise. Pure.
 */
int agents_token_confirm_expired(const struct agents_agent *a, const char *path_id,
				 struct bz_errinfo *why);

/*
 * 1 when the heartbeat of A, at NOW, asks the agent to rotate
 * ("rotateToken": true): A is the current token, the device has no live
 * pending token, and the token is older than MAX_AGE_S seconds
 * (AGENT_TOKEN_MAX_AGE_DAYS; an unknown age counts as old) or an
 * administrator asked. 0 otherwise. Pure.
 */
int agents_token_rotate_due(const struct agents_agent *a, int64_t now, int64_t max_age_s);

/* 1 when A (filled by a refused agents_agent_auth()) is a token that left
 * service: retired, suspended (a cross-tenant probe, G6), or previous after
 * its grace. Seeing one is a theft signal (G2). 0 for an unknown token (A
 * zeroed) and every other state. */
int agents_token_is_retired(const struct agents_agent *a);

/*
 * Audits the use of retired token TOKEN_HASH (A as agents_token_is_retired()
 * judged it) from source address IP (may be NULL) at NOW: one
 * agent.token.retired_use row (result denied; the state, why it left
 * service and the address, never the token) in a transaction of its own on
 * C, at most one per token per 60 s on every server instance (a guarded
 * UPDATE of retired_use_audited_at decides). Does nothing for a token that
 * is not retired. Returns 0 or BZ_ERR_DB.
 */
int agents_token_retired_use(PGconn *c, const char *token_hash, const struct agents_agent *a,
			     const char *ip, int64_t now);

struct agents_device;

/*
 * An administrator asks for the rotation of device ID's token (visible in
 * SCOPE), inside the caller's transaction: its next heartbeat answers
 * "rotateToken": true until a rotation is confirmed. Asking again while a
 * request stands changes nothing (EV->action NULL). EV describes the change
 * (device.agent_token.rotation_requested; strings point into OUT). OUT is
 * the device (agents_device_free()). Returns 0, BZ_ERR_NOT_FOUND,
 * BZ_ERR_CONFLICT (code device_decommissioned, or no_agent_token after a
 * reset) or BZ_ERR_DB, with WHY set.
 */
int agents_token_request_rotation(PGconn *c, const struct tenancy_scope *scope, const char *id,
				  struct agents_device *out, struct audit_event *ev,
				  struct bz_errinfo *why);

/*
 * Emergency reset of device ID's credentials (visible in SCOPE) at NOW,
 * inside the caller's transaction: every pending, current and previous
 * token is retired at once (reason "reset"), no grace; the device stays
 * active but must re-enrol (a new enrolment is a new device). EV describes
 * it (device.agent_token.reset, with how many tokens were retired; strings
 * point into OUT). OUT is the device (agents_device_free()). Returns 0,
 * BZ_ERR_NOT_FOUND, BZ_ERR_CONFLICT (code device_decommissioned) or
 * BZ_ERR_DB, with WHY set.
 */
int agents_token_reset(PGconn *c, const struct tenancy_scope *scope, const char *id, int64_t now,
		       struct agents_device *out, struct audit_event *ev, struct bz_errinfo *why);

/*
 * Authenticates agent token TOKEN_HASH (SHA-256, hex) for path agent
 * PATH_ID at the server's clock: the token must be usable
 * (agents_token_usable()) and be PATH_ID's own. Returns 0 with OUT filled;
 * BZ_ERR_UNAUTHORIZED (unknown or unusable token: OUT is filled when the
 * token is known, so the caller can tell a retired token from a random
 * string); BZ_ERR_FORBIDDEN (another device's token; or code
 * device_suspended); or BZ_ERR_DB. WHY is set on refusals.
 */
int agents_agent_auth(PGconn *c, const char *token_hash, const char *path_id,
		      struct agents_agent *out, struct bz_errinfo *why);

/*
 * The part of agents_agent_auth() that needs no database, for token A
 * already looked up: 0 when A is usable and speaks for PATH_ID, an active
 * device; BZ_ERR_FORBIDDEN (device_suspended, in WHY) when usable for
 * PATH_ID but the device is not active; BZ_ERR_NOT_FOUND when only
 * agents_agent_auth() can decide (an unusable token, another device's
 * path: retirement, probes and their audit rows). Pure.
 */
int agents_agent_admit(const struct agents_agent *a, const char *path_id, struct bz_errinfo *why);

/* ---- Cross-tenant probes (probe.c; G6, docs/probes-and-addresses.md) ---- */

/*
 * Called by agents_agent_auth() when token A (looked up and usable) was
 * sent for path device PATH_ID, which is not its own: finds PATH_ID's
 * organization and records the answer in A->probe, A->probe_device_id and
 * A->probe_org_id. Returns BZ_ERR_UNAUTHORIZED with exactly the WHY of an
 * unknown token for a device of another organization (the caller must then
 * call agents_probe_record(), which suspends the token), BZ_ERR_FORBIDDEN
 * (code forbidden) for another device of the same organization or a device
 * that does not exist, or BZ_ERR_DB.
 */
int agents_probe_classify(PGconn *c, struct agents_agent *a, const char *path_id,
			  struct bz_errinfo *why);

/*
 * Acts on the probe agents_probe_classify() recorded in A (token TOKEN_HASH,
 * from source address IP or NULL) at NOW (epoch seconds), each in its own
 * transaction on C (the request itself fails):
 * - AGENTS_PROBE_CROSS_TENANT: every live token of A's device (current,
 *   pending, previous in its grace) becomes suspended (reason
 *   cross_tenant_probe), the device is suspended and blocks re-enrolment,
 *   and three audit rows are written: agent.token.suspended in the token's
 *   organization (without the other organization's id), agent.probe.detected
 *   in the probed device's organization (without the prober's ids), and
 *   agent.token.suspended with every id in the system chain. A token
 *   already suspended by a concurrent request changes nothing, writes no
 *   row.
 * - AGENTS_PROBE_SAME_ORG, AGENTS_PROBE_UNKNOWN_DEVICE: audit
 *   agent.token.mismatch (result denied) in the token's organization, at
 *   most once per token per 60 s (agent_tokens.mismatch_audited_at).
 * Returns 0 or BZ_ERR_DB / BZ_ERR_NOMEM (nothing committed).
 */
int agents_probe_record(PGconn *c, const char *token_hash, const struct agents_agent *a,
			const char *ip, int64_t now);

struct agents_heartbeat {
	const char *status;	   /* checked display string; NULL = "online" */
	const char *agent_version; /* NULL = unchanged */
	int64_t uptime_s;	   /* -1 = not reported */
	const json_t *metrics;	   /* checked object or NULL */
	const json_t *inventory;   /* object of the checked inventory members; borrowed */
	const char *hostname;	   /* NULL = unchanged */
	const char *os_version;	   /* NULL = unchanged */
	const char *client_ip;	   /* or NULL */
	int ip_dedup_s; /* AGENT_IP_CHANGE_DEDUP_SECONDS: one event per address per this */
};

/*
 * Records heartbeat HB of device A on C: last seen time and address, the
 * reported versions, and the latest metrics and inventory. A new source
 * address (G7: recorded in the address history, and audited
 * agent.source.ip.changed at most once per device and new address per
 * HB->ip_dedup_s seconds) and a changed hostname (device.renamed) are
 * written in the same transaction as the change; a heartbeat that changes
 * neither runs as one statement without a transaction (this is the hot
 * path, ~1/min/device). Returns 0; BZ_ERR_UNAUTHORIZED when the device row
 * no longer matches what the token lookup read (reset, suspended or
 * decommissioned meanwhile: nothing is written); BZ_ERR_DB / BZ_ERR_NOMEM.
 */
int agents_heartbeat_record(PGconn *c, const struct agents_agent *a,
			    const struct agents_heartbeat *hb);

/*
 * 1 when heartbeat HB of device A (token usable, looked up) is plain: it
 * changes nothing audited and confirms nothing — a current or previous
 * token (a pending one is confirmed by its first heartbeat, G2), the same
 * source address (G7), the same hostname, and a device that is not back
 * from offline (device.online, liveness.c). What agents_heartbeat_record()
 * writes for it is then one statement's rows, which the group commit
 * (heartbeat_batch.c) writes for many heartbeats at once. Pure.
 */
int agents_heartbeat_plain(const struct agents_agent *a, const struct agents_heartbeat *hb);

/* ---- Source-address history (ip_history.c; G7) ---- */

/* Records IP (or nothing when NULL) as the first address of device
 * DEVICE_ID of ORG_ID, first and last seen at NOW (epoch seconds), inside
 * the caller's transaction (enrolment). Returns 0 or BZ_ERR_DB. */
int agents_ip_history_seed(PGconn *c, const char *device_id, const char *org_id, const char *ip,
			   int64_t now);

/*
 * Inside the caller's transaction, before the heartbeat overwrites the
 * device's last_seen_at: device A (previous address A->old_ip, "" = none)
 * is now seen at IP. The old address's row gets the device's last
 * sighting, IP's row is inserted or refreshed, and rows beyond the 20 most
 * recently seen are pruned. *AUDIT is 1 when agent.source.ip.changed is to
 * be written: A had an address and no event for IP was written within
 * DEDUP_S seconds before NOW (epoch seconds, bz_now()); the event's time
 * is then recorded. Returns 0 or BZ_ERR_DB.
 */
int agents_ip_history_move(PGconn *c, const struct agents_agent *a, const char *ip, int dedup_s,
			   int64_t now, int *audit);

/* Device DEVICE_ID's addresses as a new JSON array of {"ip", "firstSeenAt",
 * "lastSeenAt"}, the most recently seen first, at most 20, into *OUT (the
 * current address is last seen at the device's last_seen_at). The caller
 * has checked the device is visible. Returns 0, BZ_ERR_DB or BZ_ERR_NOMEM. */
int agents_ip_history_json(PGconn *c, const char *device_id, json_t **out);

/* ---- Devices (devices.c) ---- */

/* A device as the API shows it. The detail members (from ARCHITECTURE on)
 * are filled by agents_device_get() only. */
struct agents_device {
	char id[37];
	char org_id[37];
	char site_id[37];
	char hostname[AGENTS_HOSTNAME_MAX + 1];
	char display_name[AGENTS_NAME_MAX + 1]; /* "" = none (NULL in the API) */
	char os_type[AGENTS_TEXT_MAX + 1];
	char os_version[AGENTS_TEXT_MAX + 1];
	char status[16];	    /* online, offline, never, suspended, decommissioned */
	char last_seen_at[32];	    /* "" = never */
	char last_ip[64];	    /* "" = unknown */
	char decommissioned_at[32]; /* "" = not decommissioned */
	int suspended;		    /* awaiting review (G6) */
	/* Suspension and review (migration 0013; review.c). */
	char suspended_at[32];	    /* "" = never suspended */
	char suspension_reason[65]; /* e.g. cross_tenant_probe */
	int reenrollment_blocked;   /* its hostname/fingerprint may not enrol */
	char review_decision[24];   /* "" = not reviewed */
	char reviewed_at[32];	    /* "" = not reviewed */
	char review_note[1001];	    /* the reviewer's note */
	/* detail */
	char architecture[AGENTS_TEXT_MAX + 1];
	char agent_version[AGENTS_TEXT_MAX + 1];
	char enrolled_at[32];
	json_t *hardware;   /* owned; agents_device_free() */
	json_t *inventory;  /* owned */
	json_t *metrics;    /* owned */
	json_t *ip_history; /* owned; array of {ip, firstSeenAt, lastSeenAt}, newest first */
	int64_t uptime_s;   /* -1 = unknown */
	int heartbeat_interval_s;
};

/* Releases the JSON members of D (safe on a zeroed or list-filled device). */
void agents_device_free(struct agents_device *d);

struct agents_device_filter {
	const char *org_id;	/* or NULL */
	const char *site_id;	/* or NULL */
	const char *status;	/* online, offline, never, suspended, decommissioned, or
				  * NULL = every device that is not decommissioned */
	const char *hostname;	/* prefix (LIKE metacharacters literal) or NULL */
	const char *after_host; /* keyset cursor: continue after (host, id), or NULL */
	const char *after_id;
	int limit; /* 1..500 */
};

/* The devices visible in SCOPE matching F, by hostname then id, into a
 * malloc'd array *OUT of at most F->limit (caller frees); *MORE is 1 when
 * more follow. Returns 0, BZ_ERR_NOT_FOUND (organization or site filter not
 * visible, WHY set), BZ_ERR_DB or BZ_ERR_NOMEM. */
int agents_device_list(PGconn *c, const struct tenancy_scope *scope,
		       const struct agents_device_filter *f, struct agents_device **out, size_t *n,
		       int *more, struct bz_errinfo *why);

/* Device ID with its details if visible in SCOPE (release with
 * agents_device_free()). Returns 0, BZ_ERR_NOT_FOUND or BZ_ERR_DB. */
int agents_device_get(PGconn *c, const struct tenancy_scope *scope, const char *id,
		      struct agents_device *out);

struct agents_device_patch {
	int set_display_name;	  /* 1: DISPLAY_NAME is the new value */
	const char *display_name; /* checked display string, or NULL = clear */
	const char *site_id;	  /* new site, or NULL = unchanged */
};

/*
 * Changes device ID (visible in SCOPE) inside the caller's transaction: its
 * display name and/or its site, which must be a site visible in SCOPE of
 * the device's own organization. EV describes the change (device.update,
 * details {"changes": {member: {"from", "to"}}}); a patch that changes
 * nothing leaves EV->action NULL. OUT is the device afterwards (release
 * with agents_device_free()). Returns 0, BZ_ERR_NOT_FOUND (device, or the
 * site), BZ_ERR_INVALID (site of another organization), BZ_ERR_CONFLICT
 * (code device_decommissioned) or BZ_ERR_DB, with WHY set.
 */
int agents_device_update(PGconn *c, const struct tenancy_scope *scope, const char *id,
			 const struct agents_device_patch *p, struct agents_device *out,
			 struct audit_event *ev, struct bz_errinfo *why);

/*
 * Decommissions device ID (visible in SCOPE) inside the caller's
 * transaction: status decommissioned, decommissioned_at now, and its token
 * hashes (current and previous) cleared, so the agent is refused at once
 * (G1); its heartbeats and audit history stay. EV describes the change
 * (device.decommission); a device already decommissioned is left as it is
 * and EV->action stays NULL. OUT is the device afterwards. Returns 0,
 * BZ_ERR_NOT_FOUND, BZ_ERR_CONFLICT (code device_under_review: a suspended
 * device is ended by agents_device_review()) or BZ_ERR_DB, with WHY set.
 */
int agents_device_decommission(PGconn *c, const struct tenancy_scope *scope, const char *id,
			       struct agents_device *out, struct audit_event *ev,
			       struct bz_errinfo *why);

/* ---- Review of suspended devices, re-enrolment block (review.c; G6) ---- */

enum agents_review_decision {
	AGENTS_REVIEW_ALLOW_REENROLLMENT, /* end the device, lift the block */
	AGENTS_REVIEW_DECOMMISSION,	  /* end the device, keep the block */
};

/*
 * Records an administrator's review of device ID (visible in SCOPE) inside
 * the caller's transaction: DECISION with NOTE (a checked display string of
 * 1..1000 bytes). Either decision ends the device (status decommissioned,
 * decommissioned_at now; its suspended tokens stay suspended for good).
 * AGENTS_REVIEW_ALLOW_REENROLLMENT lifts the re-enrolment block; it is also
 * accepted for a device a previous review decommissioned, to lift the block
 * it kept. AGENTS_REVIEW_DECOMMISSION keeps the block (its hostname and
 * hardware fingerprint may not enrol in the organization again until a
 * later allow_reenrollment). EV describes the change (device.review). OUT
 * is the device afterwards (release with agents_device_free()). Returns 0,
 * BZ_ERR_NOT_FOUND, BZ_ERR_CONFLICT (code not_under_review) or BZ_ERR_DB,
 * with WHY set.
 */
int agents_device_review(PGconn *c, const struct tenancy_scope *scope, const char *id,
			 enum agents_review_decision decision, const char *note,
			 struct agents_device *out, struct audit_event *ev, struct bz_errinfo *why);


/*
 * Checks whether a device of organization ORG_ID blocks the enrolment of
 * HOSTNAME (compared case-insensitively) or of hardware HARDWARE (its
 * "machineId" string, case-insensitively, is the hardware fingerprint;
 * HARDWARE may be NULL). Returns 0 (not blocked), BZ_ERR_CONFLICT with OUT
 * filled, or BZ_ERR_DB.
 */
int agents_enroll_blocked(PGconn *c, const char *org_id, const char *hostname,
			  const json_t *hardware, struct agents_enroll_block *out);

/*
 * Records that SECRET (the value of AGENT_ENROLLMENT_SECRET) is in use at
 * NOW (epoch seconds), unless it was recorded before: its fingerprint (the
 * first 128 bits of HMAC-SHA-256 keyed with the secret, so the row says
 * nothing about it) goes into secret_fingerprints. serve calls it at
 * start; checklist S6. Returns 0, BZ_ERR_INVALID (no secret) or
 * db_error().
 */
int agents_enrollment_secret_seen(PGconn *c, const char *secret, int64_t now);

/*
 * Since when SECRET is in use and when the first device enrolled, as epoch
 * seconds in *FIRST_SEEN and *FIRST_ENROLMENT (-1: never recorded / no
 * device yet), for `breeze-server check` (S6: the secret must have been
 * rotated after the first enrolment batch). Returns 0, BZ_ERR_INVALID or
 * db_error().
 */
int agents_enrollment_secret_age(PGconn *c, const char *secret, int64_t *first_seen,
				 int64_t *first_enrolment);

#endif
