/*
 * audit.h — the audit log writer (checklist L1, M3).
 *
 * Every mutating operation calls audit_write() on the same connection and
 * inside the same transaction as its change, so a rolled-back change leaves
 * no audit row and no change commits without one. Security events that
 * change nothing (failed logins, denied probes) are written in their own
 * short transaction.
 */
#ifndef BZ_AUDIT_H
#define BZ_AUDIT_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stddef.h>


struct audit_event {
	const char *org_id;	 /* NULL: the system chain */
	const char *actor_type;	 /* "user", "api_key", "agent", "system" */
	const char *actor_id;	 /* user/device id, or NULL */
	const char *action;	 /* dotted, e.g. "device.enroll" */
	const char *resource;	 /* e.g. "devices" */
	const char *resource_id; /* may be NULL */
	json_t *details;	 /* borrowed; secrets are redacted before storing; NULL = {} */
	const char *ip_address;	 /* client IP or NULL */
	const char *result;	 /* "success" (default when NULL), "failure", "denied" */
};

/* Inserts EV into audit_log on CONN (inside the caller's transaction).
 * Returns 0 or BZ_ERR_DB; on error the caller must roll back. */
int audit_write(PGconn *conn, const struct audit_event *ev);

/* Like audit_write but in its own transaction: for security events that
 * accompany no change (e.g. auth.login.failed). Returns 0 or BZ_ERR_DB. */
int audit_write_standalone(PGconn *conn, const struct audit_event *ev);

/* Returns a deep copy of DETAILS (new reference) in which every member whose
 * key contains "password", "secret", "token" or "key" (case-insensitive;
 * except names ending in "Id"/"_id") has its value replaced by
 * "[REDACTED]", at any depth. NULL in → empty object out. */
json_t *audit_redact(const json_t *details);

/* ---- Reading the log (query.c) ---- */

struct tenancy_scope;

/* A cursor is base64url of {"t":epoch µs,"i":id}; about 60 characters. */
#define AUDIT_CURSOR_MAX 200

/* What GET /api/v1/audit asks for. Strings are borrowed. */
struct audit_filter {
	char org_id[37];     /* "" = every organization in scope */
	char partner_id[37]; /* "" = organizations; else this partner's chain */
	const char *resource, *action, *actor_type, *actor_id, *resource_id, *result;
	char from[32], to[32]; /* canonical timestamps, "" = open */
	char cur_ts[32];       /* keyset position, "" = first page */
	char cur_id[24];
	long limit;
};

/* Decodes cursor CUR (from a previous page's nextCursor) into F's keyset
 * position. Returns 0 or BZ_ERR_INVALID. */
int audit_cursor_decode(const char *cur, struct audit_filter *f);

/*
 * Reads one page of audit entries for F within SCOPE on C: *ENTRIES gets a
 * new JSON array of entry objects (the API's and export's row form), and
 * *NEXT_CURSOR a malloc'd cursor when there are more rows (else NULL); the
 * caller owns both. Returns 0, BZ_ERR_DB or BZ_ERR_NOMEM.
 */
int audit_query(PGconn *c, const struct tenancy_scope *scope, const struct audit_filter *f,
		json_t **entries, char **next_cursor);

#endif
