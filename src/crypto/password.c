#include "crypto/password.h"

#include <argon2.h>
#include <pthread.h>
#include <string.h>

#include "common/err.h"
#include "crypto/crypto.h"

#define SALT_LEN 16
#define HASH_LEN 32
#define PASSWORD_MAX 1024

static struct password_params params = {19456, 2, 1, 4};
static pthread_mutex_t slot_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t slot_cv = PTHREAD_COND_INITIALIZER;
static uint32_t running;
static char dummy_hash[PASSWORD_HASH_MAX];
static pthread_once_t dummy_once = PTHREAD_ONCE_INIT;

int password_init(const struct password_params *p)
{
	if (p->memory_kib < 8192 || p->iterations < 1 || p->parallelism < 1 ||
	    p->max_concurrent < 1)
		return BZ_ERR_INVALID;
	params = *p;
	dummy_hash[0] = '\0';
	return 0;
}

static void slot_acquire(void)
{
	pthread_mutex_lock(&slot_mu);
	while (running >= params.max_concurrent)
		pthread_cond_wait(&slot_cv, &slot_mu);
	running++;
	pthread_mutex_unlock(&slot_mu);
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
	slot_acquire();
	int rc = hash_unbounded(password, out, outlen);
	slot_release();
	return rc;
}

static void make_dummy(void)
{
	char pw[33];

	if (crypto_random_hex(16, pw) != 0 ||
	    hash_unbounded(pw, dummy_hash, sizeof(dummy_hash)) != 0)
		dummy_hash[0] = '\0';
}

int password_verify(const char *password, const char *encoded)
{
	int ok;

	if (password == NULL || strlen(password) > PASSWORD_MAX)
		password = "";
	if (encoded == NULL || strncmp(encoded, "$argon2id$", 10) != 0) {
		/* Same work as a real verification, result discarded. */
		pthread_once(&dummy_once, make_dummy);
		slot_acquire();
		if (dummy_hash[0] != '\0')
			(void)argon2id_verify(dummy_hash, password, strlen(password));
		slot_release();
		return 0;
	}
	slot_acquire();
	ok = argon2id_verify(encoded, password, strlen(password)) == ARGON2_OK;
	slot_release();
	return ok;
}
