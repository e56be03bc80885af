/*
 * password.h — argon2id password hashing (RFC 9106) via libargon2, with a
 * bound on how many hashes run at once so a login flood cannot exhaust
 * memory (each hash holds memory_kib of RAM while it runs).
 */
#ifndef BZ_PASSWORD_H
#define BZ_PASSWORD_H

#include <stddef.h>
#include <stdint.h>

struct password_params {
	uint32_t memory_kib;	 /* m: default 19456 (19 MiB, RFC 9106 / OWASP minimum) */
	uint32_t iterations;	 /* t: default 2 */
	uint32_t parallelism;	 /* p: default 1 */
	uint32_t max_concurrent; /* hashes allowed at once; others wait */
	/* Callers of password_hash()/password_check() that may wait for a
	 * slot; beyond them those refuse at once (BZ_ERR_UNAVAILABLE), so a
	 * flood of logins or registrations holds a bounded number of request
	 * threads. password_verify() always waits. */
	uint32_t max_waiting;
};

/* Longest encoded hash we produce or accept. */
#define PASSWORD_HASH_MAX 192

/* Sets the parameters used by later calls (call once at start-up, before
 * any thread hashes). Returns 0 or BZ_ERR_INVALID for out-of-range values
 * (memory_kib < 8192, iterations < 1, parallelism < 1, max_concurrent < 1). */
int password_init(const struct password_params *p);

/* Hashes PASSWORD (NUL-terminated, at most 1024 bytes) with a fresh 16-byte
 * salt into OUT (PASSWORD_HASH_MAX bytes) in the PHC string format
 * "$argon2id$v=19$m=…,t=…,p=…$salt$hash". Waits while max_concurrent hashes
 * are running, unless too many wait already. Returns 0, BZ_ERR_INVALID,
 * BZ_ERR_CRYPTO, or BZ_ERR_UNAVAILABLE (too many waiting: nothing done). */
int password_hash(const char *password, char *out, size_t outlen);

/* Verifies PASSWORD against ENCODED (a PHC argon2id string). If ENCODED is
 * NULL a fixed dummy hash with the current parameters is verified instead,
 * so unknown users cost the same time as known ones. Returns 1 on match,
 * 0 on mismatch or any error. Blocks like password_hash. */
int password_verify(const char *password, const char *encoded);

/* password_verify() that refuses to wait behind max_waiting others, for
 * request handlers: returns 1 on match, 0 on
 * mismatch or error, BZ_ERR_UNAVAILABLE when refused (nothing verified).
 * Callers must test for 1, never for "non-zero". */
int password_check(const char *password, const char *encoded);

#endif
