/*
 * settings.h — values encrypted at rest (checklist O2; docs/encryption.md):
 * the keyring of the configuration, sealing with a persisted count of
 * encryptions per key, opening with a clear error, the partner and site
 * settings (a JSON object per partner and per site, merge-patched, RFC
 * 7396), and re-encryption under the active key (rotate.c). No HTTP: the
 * routes are settings_api.c, the command `breeze-server
 * rotate-encryption-key` is cli.c.
 *
 * Every encrypted column holds "enc:v1:<key id>:<base64url>" (crypto/
 * envelope.h) sealed with associated data "<table>.<column>:<row id>".
 */
#ifndef BZ_SETTINGS_H
#define BZ_SETTINGS_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdint.h>
#include <stdio.h>

#include "common/err.h"
#include "crypto/envelope.h"
#include "server/audit/audit.h"
#include "server/config.h"
#include "server/tenancy/tenancy.h"

/* Encryptions under one key after which settings_seal() and the checks
 * warn: 2^31, half the NIST SP 800-38D §8.3 bound of 2^32 invocations of
 * GCM with random 96-bit nonces per key. */
#define SETTINGS_KEY_WARN_ENCRYPTIONS (1LL << 31)
#define SETTINGS_KEY_MAX_ENCRYPTIONS (1LL << 32)

/* Bytes of a settings object, serialized compactly (413 above). */
#define SETTINGS_MAX_BYTES 16384

/* The error code of a value that does not open (500). */
#define SETTINGS_UNDECRYPTABLE "settings_undecryptable"

/* The keyring of CFG (APP_ENCRYPTION_KEY, _KEY_ID, _KEYRING) into KR (wipe
 * with crypto_keyring_wipe()). Returns 0, or BZ_ERR_UNAVAILABLE with code
 * "encryption_key_missing" when APP_ENCRYPTION_KEY is unset (or the keyring
 * invalid, which config_load() refuses before). */
int settings_keyring(const struct config *cfg, struct crypto_keyring *kr, struct bz_errinfo *why);

/* "<table>.<column>:<row id>" into OUT (LEN bytes, at least 128). */
void settings_aad(char *out, size_t len, const char *table, const char *column, const char *row_id);

/*
 * Adds N encryptions under key KEY_ID to encryption_key_usage on C, inside
 * the caller's transaction (the one that stores the values), and logs
 * encryption.key.usage_high when the count passes
 * SETTINGS_KEY_WARN_ENCRYPTIONS. *TOTAL (may be NULL) gets the new count.
 * Returns 0 or BZ_ERR_DB.
 */
int settings_count_encryptions(PGconn *c, const char *key_id, long long n, long long *total);

/*
 * Seals PLAIN (LEN bytes) for TABLE.COLUMN of row ROW_ID under KR's active
 * key into *OUT (malloc'd; caller frees) and counts the encryption on C in
 * the caller's transaction. Returns 0, BZ_ERR_TOO_LARGE, BZ_ERR_CRYPTO or
 * BZ_ERR_DB.
 */
int settings_seal(PGconn *c, const struct crypto_keyring *kr, const char *table, const char *column,
		  const char *row_id, const void *plain, size_t len, char **out);

/*
 * Opens SEALED, the value of TABLE.COLUMN of row ROW_ID, with KR. A value
 * in the older "v1:" format of crypto/aead.h (webhook secrets written
 * before migration 0017) opens with LEGACY_AAD (NULL: not accepted) under
 * any key of KR. On success *PLAIN (LEN bytes and a NUL; caller wipes and
 * frees) and *USED (may be NULL: the key index, or -1 for the old format).
 * A value that does not open is logged as encryption.undecryptable naming
 * table, column, row, key id and reason (never the value) and answered
 * BZ_ERR_INTERNAL with code SETTINGS_UNDECRYPTABLE in WHY.
 */
int settings_open(const struct crypto_keyring *kr, const char *table, const char *column,
		  const char *row_id, const char *sealed, const char *legacy_aad, uint8_t **plain,
		  size_t *len, int *used, struct bz_errinfo *why);

/* Whose settings. */
enum settings_owner { SETTINGS_PARTNER, SETTINGS_SITE };

/*
 * The settings of partner or site ID (a UUID in any letter case; its
 * lower-case spelling names the row and builds the associated data) as a
 * new JSON object into *OUT ({} when none). Partner settings: partner staff of that partner with access to
 * every organization (another partner: BZ_ERR_NOT_FOUND; limited staff:
 * BZ_ERR_FORBIDDEN). Site settings: a site visible in SC
 * (tenancy_site_visible; else BZ_ERR_NOT_FOUND). Returns 0 or those,
 * BZ_ERR_INTERNAL (undecryptable, WHY set), BZ_ERR_UNAVAILABLE (no key)
 * or BZ_ERR_DB.
 */
int settings_get(PGconn *c, const struct config *cfg, const struct tenancy_scope *sc,
		 enum settings_owner owner, const char *id, json_t **out, struct bz_errinfo *why);

/*
 * Applies the JSON merge patch PATCH (an object; RFC 7396: a member set to
 * null is removed, objects merge recursively, anything else replaces) to
 * the settings of ID inside the caller's transaction on C (the row locked
 * FOR UPDATE), re-seals them under the active key and describes the change
 * in EV (partner.settings.update or site.settings.update; details: the
 * changed top-level members and the patch with secret values redacted, see
 * settings_redact(); no row when nothing changed). *OUT gets the new
 * settings. ID (37 bytes, kept by the caller as long as EV: it is EV's
 * resource id) is rewritten in place in its canonical lower-case spelling,
 * the one the associated data of the sealed value uses. ORG (37 bytes,
 * kept as long as EV) gets the site's organization, the chain of EV.
 * Access as settings_get(). Returns 0 or those, BZ_ERR_TOO_LARGE (PATCH
 * or the result over SETTINGS_MAX_BYTES of compact JSON; PATCH is checked
 * before anything is read or written), BZ_ERR_CRYPTO.
 */
int settings_patch(PGconn *c, const struct config *cfg, const struct tenancy_scope *sc,
		   enum settings_owner owner, char id[37], const json_t *patch, json_t **out,
		   char org[37], struct audit_event *ev, struct bz_errinfo *why);

/* RFC 7396 MergePatch(TARGET, PATCH) as a new value (TARGET and PATCH are
 * only read). NULL on allocation failure. */
json_t *settings_merge_patch(const json_t *target, const json_t *patch);

/* 1 if member name NAME is a secret's: it contains "secret", "password",
 * "token", "key", "pass", "pwd", "auth", "dsn", "private", "cert" or
 * "credential" anywhere, case-insensitively (docs/encryption.md "Audit"). */
int settings_name_is_secret(const char *name);

/* A deep copy of V in which the value of every member whose name is a
 * secret's (settings_name_is_secret), at any depth, is "[REDACTED]" (null
 * stays null: a deletion shows as such). NULL on allocation failure. */
json_t *settings_redact(const json_t *v);

/* ---- Keys and rotation (rotate.c) ---- */

/* Options of settings_rotate(). */
struct settings_rotate_opts {
	int dry_run;	 /* count per table/column/key; change nothing */
	int batch;	 /* rows per transaction, 1..10000 */
	int max_batches; /* stop after this many batches (0: until done) */
	FILE *out;	 /* progress and report lines */
};

/*
 * Re-encrypts, on C (autocommit, breeze_app), every encrypted value not
 * under KR's active key: partners.settings_enc, sites.settings_enc and
 * webhooks.secret_enc (also their pre-0017 "v1:" values). Batches of
 * OPTS->batch rows, SELECT … FOR UPDATE SKIP LOCKED, one transaction each
 * with the count of encryptions; rows locked by a writer are taken by a
 * later pass. Resumable: a rerun finds only what is left. Writes one
 * progress line per batch to OPTS->out. Returns 0 (all done, or the dry
 * run), BZ_ERR_CONFLICT (values left that do not open, or not done within
 * max_batches) or BZ_ERR_DB.
 */
int settings_rotate(PGconn *c, const struct crypto_keyring *kr,
		    const struct settings_rotate_opts *opts);

/*
 * Writes the encryption count of every key in encryption_key_usage to OUT
 * (one line each) and returns the number of keys at or past
 * SETTINGS_KEY_WARN_ENCRYPTIONS (0 = fine), or BZ_ERR_DB. For checks and
 * `rotate-encryption-key --dry-run`.
 */
int settings_key_usage_check(PGconn *c, FILE *out);

/* `breeze-server rotate-encryption-key …` (ARGV[0] is the command name).
 * Returns a process exit status (common/exitcode.h). */
int settings_cli_main(int argc, char **argv);

#endif
