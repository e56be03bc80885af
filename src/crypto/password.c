#include "crypto/password.h"

#include <argon2.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "crypto/crypto.h"

#define SALT_LEN 16
#define HASH_LEN 32
#define PASSWORD_MAX 1024

static struct password_params params = {19456, 2, 1, 4, 8};
static pthread_mutex_t slot_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t slot_cv = PTHREAD_COND_INITIALIZER;
static uint32_t running, waiting;
/* Hash of a random password under the current parameters, verified for
 * unknown users so they cost what known users cost. Rebuilt whenever the
 * parameters change. */
static char dummy_hash[PASSWORD_HASH_MAX];
static struct password_params dummy_params;
static pthread_mutex_t dummy_mu = PTHREAD_MUTEX_INITIALIZER;

int password_init(const struct password_params *p)
{
	if (p->memory_kib < 8192 || p->iterations < 1 || p->parallelism < 1 ||
	    p->max_concurrent < 1)
		return BZ_ERR_INVALID;
	params = *p;
	return 0;
}

/* Takes a hashing slot. BOUNDED: refuses (BZ_ERR_UNAVAILABLE) instead of
 * waiting when max_waiting callers wait already; else waits. */
static int slot_acquire(int bounded)
{
	pthread_mutex_lock(&slot_mu);
	if (bounded && running >= params.max_concurrent && waiting >= params.max_waiting) {
		pthread_mutex_unlock(&slot_mu);
		return BZ_ERR_UNAVAILABLE;
	}
	waiting++;
	while (running >= params.max_concurrent)
		pthread_cond_wait(&slot_cv, &slot_mu);
	waiting--;
	running++;
	pthread_mutex_unlock(&slot_mu);
	return 0;
}

static void slot_release(void)
{
	pthread_mutex_lock(&slot_mu);
	running--;
	pthread_cond_signal(&slot_cv);
	pthread_mutex_unlock(&slot_mu);
}

static int hash_unbounded(const char *password, char *out, size_t outlen)
{
	uint8_t salt[SALT_LEN];
	size_t plen = strlen(password);

	if (plen > PASSWORD_MAX)
		return BZ_ERR_INVALID;
	if (crypto_random_bytes(salt, sizeof(salt)) != 0)
		return BZ_ERR_CRYPTO;
	int rc = argon2id_hash_encoded(params.iterations, params.memory_kib, params.parallelism,
				       password, plen, salt, sizeof(salt), HASH_LEN, out, outlen);
	return rc == ARGON2_OK ? 0 : BZ_ERR_CRYPTO;
}

int password_hash(const char *password, char *out, size_t outlen)
{
	if (slot_acquire(1) != 0)
		return BZ_ERR_UNAVAILABLE;
	int rc = hash_unbounded(password, out, outlen);
	slot_release();
	return rc;
}

/* Copies the current dummy hash into OUT, building it first if missing or
 * made with other parameters. Returns 0 or -1. */
static int current_dummy(char *out, size_t outlen)
{
	char pw[33];
	int rc = 0;

	pthread_mutex_lock(&dummy_mu);
	if (dummy_hash[0] == '\0' || memcmp(&dummy_params, &params, sizeof(params)) != 0) {
		if (crypto_random_hex(16, pw) != 0 ||
		    hash_unbounded(pw, dummy_hash, sizeof(dummy_hash)) != 0) {
			dummy_hash[0] = '\0';
			rc = -1;
		} else {
			dummy_params = params;
		}
		crypto_wipe(pw, sizeof(pw));
	}
	if (rc == 0)
		snprintf(out, outlen, "%s", dummy_hash);
	pthread_mutex_unlock(&dummy_mu);
	return rc;
}

/* password_verify() and password_check(): BOUNDED as for slot_acquire(). */
static int verify(const char *password, const char *encoded, int bounded)
{
	char dummy[PASSWORD_HASH_MAX];
	int ok, invalid = password == NULL || strlen(password) > PASSWORD_MAX;

	if (invalid)
		password = "";
	if (invalid || encoded == NULL || strncmp(encoded, "$argon2id$", 10) != 0) {
		/* Same work as a real verification, result discarded. */
		if (current_dummy(dummy, sizeof(dummy)) == 0) {
			if (slot_acquire(bounded) != 0)
				return BZ_ERR_UNAVAILABLE;
			(void)argon2id_verify(dummy, password, strlen(password));
			slot_release();
		}
		return 0;
	}
	if (slot_acquire(bounded) != 0)
		return BZ_ERR_UNAVAILABLE;
	ok = argon2id_verify(encoded, password, strlen(password)) == ARGON2_OK;
	slot_release();
	return ok;
}

int password_verify(const char *password, const char *encoded)
{
	return verify(password, encoded, 0);
}

int password_check(const char *password, const char *encoded)
{
	return verify(password, encoded, 1);
}
