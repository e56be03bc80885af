/*
 * cookie.c — one cookie out of a Cookie header (RFC 6265 §4.2.1, §5.4).
 * Small on purpose: the server reads exactly two cookies of its own
 * (breeze_refresh_token, breeze_csrf_token) and needs an ambiguous header
 * refused, which a name → value map cannot tell.
 */
#include "server/http/cookie.h"

#include <string.h>

#include "common/err.h"

/* cookie-octet (RFC 6265 §4.1.1): visible ASCII except DQUOTE, comma,
 * semicolon and backslash. */
static int cookie_octet(unsigned char c)
{
	return c == 0x21 || (c >= 0x23 && c <= 0x2B) || (c >= 0x2D && c <= 0x3A) ||
	       (c >= 0x3C && c <= 0x5B) || (c >= 0x5D && c <= 0x7E);
}

/* Checks the value V (LEN bytes) and strips its quotes into *START and *VLEN. */
static int value_bounds(const char *v, size_t len, const char **start, size_t *vlen)
{
	if (len >= 2 && v[0] == '"' && v[len - 1] == '"') {
		v++;
		len -= 2;
	}
	for (size_t i = 0; i < len; i++)
		if (!cookie_octet((unsigned char)v[i]))
			return BZ_ERR_INVALID;
	*start = v;
	*vlen = len;
	return 0;
}

int http_cookie_get(const char *header, const char *name, char *out, size_t outlen)
{
	size_t nlen = strlen(name);
	int found = 0;

	if (outlen > 0)
		out[0] = '\0';
	if (header == NULL)
		return BZ_ERR_NOT_FOUND;
	for (const char *p = header; *p;) {
		while (*p == ' ' || *p == '\t' || *p == ';')
			p++;
		if (*p == '\0')
			break;
		size_t plen = strcspn(p, ";");
		const char *eq = memchr(p, '=', plen);
		if (eq == NULL) { /* a nameless cookie (RFC 6265bis §5.6): not ours */
			p += plen;
			continue;
		}
		size_t klen = (size_t)(eq - p), vraw = plen - klen - 1;
		while (vraw > 0 && (eq[vraw] == ' ' || eq[vraw] == '\t'))
			vraw--; /* trailing blanks before the ';' */
		if (klen == nlen && memcmp(p, name, nlen) == 0) {
			const char *v;
			size_t vlen;
			if (found++) {
				out[0] = '\0';
				return BZ_ERR_CONFLICT;
			}
			if (value_bounds(eq + 1, vraw, &v, &vlen) != 0)
				return BZ_ERR_INVALID;
			if (vlen >= outlen)
				return BZ_ERR_TOO_LARGE;
			memcpy(out, v, vlen);
			out[vlen] = '\0';
		}
		p += plen;
	}
	if (!found && outlen > 0)
		out[0] = '\0';
	return found ? 0 : BZ_ERR_NOT_FOUND;
}
