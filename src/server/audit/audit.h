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

#endif
