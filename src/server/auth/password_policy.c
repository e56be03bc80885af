/*
 * password_policy.c — what a self-chosen password must not be (A3
 * registration): shorter than 12 or longer than 128 characters, the
 * account's e-mail address (or containing it, or its local part), or one
 * of the common passwords of data/common-passwords.txt (sources in its
 * header; built in at compile time, parsed once at start), compared
 * case-insensitively — also with trailing digits and punctuation taken off,
 * so "Dragon2025!" counts as "dragon" (the commonest mangling rule).
 */
#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/text.h"
#include "crypto/crypto.h"
#include "server/auth/auth.h"

extern const char common_passwords_txt[]; /* common_passwords_embedded.c */
extern const size_t common_passwords_txt_len;

static char *list_text;	  /* lower-cased copy of the list; owned for the process */
static const char **list; /* sorted pointers into list_text */
static size_t list_n;
static int list_rc;
static pthread_once_t list_once = PTHREAD_ONCE_INIT;

static int cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void lower_ascii(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

static void load(void)
{
	size_t lines = 1, n = 0;
	char *save = NULL;

	if ((list_text = strdup(common_passwords_txt)) == NULL) {
		list_rc = BZ_ERR_NOMEM;
		return;
	}
	for (size_t i = 0; i < common_passwords_txt_len; i++)
		lines += common_passwords_txt[i] == '\n';
	if ((list = calloc(lines, sizeof(*list))) == NULL) {
		list_rc = BZ_ERR_NOMEM;
		return;
	}
	lower_ascii(list_text);
	for (char *ln = strtok_r(list_text, "\n", &save); ln != NULL;
	     ln = strtok_r(NULL, "\n", &save))
		if (ln[0] != '#' && ln[0] != '\0')
			list[n++] = ln;
	qsort(list, n, sizeof(*list), cmp);
	list_n = n;
	list_rc = n > 0 ? 0 : BZ_ERR_INVALID;
}

int auth_password_policy_init(size_t *count)
{
	pthread_once(&list_once, load);
	if (count != NULL)
		*count = list_n;
	return list_rc;
}

static int listed(const char *lower)
{
	return bsearch(&lower, list, list_n, sizeof(*list), cmp) != NULL;
}

/* LOWER without its trailing digits and ASCII punctuation, into OUT. */
static void strip_tail(const char *lower, char *out, size_t outlen)
{
	size_t n = strlen(lower);

	while (n > 0 &&
	       (isdigit((unsigned char)lower[n - 1]) || ispunct((unsigned char)lower[n - 1])))
		n--;
	if (n >= outlen)
		n = outlen - 1;
	memcpy(out, lower, n);
	out[n] = '\0';
}

/* Characters (UTF-8 code points) of S, a valid UTF-8 string. */
static size_t utf8_chars(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += ((unsigned char)*s & 0xC0) != 0x80;
	return n;
}

static int contains_email(const char *lower, const char *email)
{
	const char *at = strchr(email, '@');
	char local[AUTH_EMAIL_MAX + 1];
	size_t ll = at != NULL ? (size_t)(at - email) : 0;

	if (strstr(lower, email) != NULL)
		return 1;
	if (ll < AUTH_PASSWORD_LOCAL_PART_MIN || ll >= sizeof(local))
		return 0;
	memcpy(local, email, ll);
	local[ll] = '\0';
	return strstr(lower, local) != NULL;
}

int auth_password_check(const char *password, const char *email, struct bz_errinfo *why)
{
	char lower[AUTH_REGISTER_PASSWORD_MAX * 4 + 1], stripped[sizeof(lower)];
	size_t len = strlen(password), chars;
	int rc;

	if ((rc = auth_password_policy_init(NULL)) != 0)
		return rc;
	if (!text_utf8_valid(password, len) || len >= sizeof(lower) ||
	    (chars = utf8_chars(password)) < AUTH_PASSWORD_MIN ||
	    chars > AUTH_REGISTER_PASSWORD_MAX)
		return bz_fail(why, BZ_ERR_INVALID, "weak_password", "password",
			       "the password must be 12 to 128 characters long");
	/* Spaces and invisible characters neither count towards the length
	 * nor hide a listed password ("password1234 ", "pass\u200bword1234"). */
	if (text_strip_blanks(password, lower, sizeof(lower)) < AUTH_PASSWORD_MIN) {
		crypto_wipe(lower, sizeof(lower));
		return bz_fail(why, BZ_ERR_INVALID, "weak_password", "password",
			       "the password must be 12 to 128 characters long, not counting "
			       "spaces and invisible characters");
	}
	lower_ascii(lower);
	strip_tail(lower, stripped, sizeof(stripped));
	if (email != NULL && contains_email(lower, email))
		rc = bz_fail(why, BZ_ERR_INVALID, "weak_password", "password",
			     "the password must not contain the e-mail address");
	else if (listed(lower) || (strlen(stripped) >= 4 && listed(stripped)))
		rc = bz_fail(why, BZ_ERR_INVALID, "weak_password", "password",
			     "this password is too common: choose another one");
	crypto_wipe(lower, sizeof(lower));
	crypto_wipe(stripped, sizeof(stripped));
	return rc;
}
