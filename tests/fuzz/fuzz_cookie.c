/*
 * fuzz_cookie.c — one cookie out of a Cookie header (http_cookie_get in
 * src/server/http/cookie.c), and web-origin normalization of an Origin
 * header (config_origin_normalize in src/server/config.c, on libcurl's URL
 * parser): both see request headers verbatim.
 *
 * A value that is found must fit its buffer, be NUL-terminated and hold only
 * cookie-octets; anything else leaves the buffer empty. A normalized origin
 * must normalize to itself.
 */
#include "fuzz.h"
#include "common/err.h"
#include "server/config.h"
#include "server/http/cookie.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstr(data, size);
	char out[44], norm[CONFIG_ORIGIN_LEN], again[CONFIG_ORIGIN_LEN];

	if (s == NULL)
		return 0;
	int rc = http_cookie_get(s, "breeze_refresh_token", out, sizeof(out));
	FUZZ_ASSERT(memchr(out, '\0', sizeof(out)) != NULL);
	if (rc == 0) {
		for (const char *p = out; *p; p++)
			FUZZ_ASSERT(*p > 0x20 && *p < 0x7f && *p != '"' && *p != ',' && *p != ';' &&
				    *p != '\\');
	} else {
		FUZZ_ASSERT(out[0] == '\0');
		FUZZ_ASSERT(rc == BZ_ERR_NOT_FOUND || rc == BZ_ERR_CONFLICT ||
			    rc == BZ_ERR_TOO_LARGE || rc == BZ_ERR_INVALID);
	}
	if (config_origin_normalize(s, norm, sizeof(norm)) == 0) {
		FUZZ_ASSERT(config_origin_normalize(norm, again, sizeof(again)) == 0);
		FUZZ_ASSERT(strcmp(norm, again) == 0);
	}
	free(s);
	return 0;
}
