#include "common/text.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"

int text_utf8_valid(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str, *end = s + len;

	while (s < end) {
		unsigned c = *s;
		size_t n;
		unsigned cp, min;

		if (c == 0)
			return 0;
		if (c < 0x80) {
			s++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1, cp = c & 0x1f, min = 0x80;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2, cp = c & 0x0f, min = 0x800;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3, cp = c & 0x07, min = 0x10000;
		} else {
			return 0; /* continuation byte, 0xc0/0xc1, or 0xf5+ */
		}
		if ((size_t)(end - s) <= n)
			return 0;
		for (size_t i = 1; i <= n; i++) {
			if ((s[i] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		s += n + 1;
	}
	return 1;
}

/* Code points refused in display strings besides C0/DEL (see text.h). */
static int refused_codepoint(unsigned cp)
{
	return (cp >= 0x80 && cp <= 0x9f) || cp == 0x061c || cp == 0x200e || cp == 0x200f ||
	       (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) || cp == 0x2028 ||
	       cp == 0x2029 || cp == 0xfeff;
}

/* Code points that show nothing on their own: spaces (Unicode White_Space),
 * the Default_Ignorable_Code_Point set (zero-width characters, joiners,
 * variation selectors, tags, soft hyphen…) and the Hangul and Braille
 * fillers that fonts draw as blanks. A display string made only of these
 * is blank (Unicode 15 DerivedCoreProperties.txt, PropList.txt). */
static int blank_codepoint(unsigned cp)
{
	static const struct {
		unsigned lo, hi;
	} ranges[] = {
		{0x0020, 0x0020},   {0x00a0, 0x00a0}, {0x00ad, 0x00ad},	  {0x034f, 0x034f},
		{0x115f, 0x1160},   {0x1680, 0x1680}, {0x17b4, 0x17b5},	  {0x180b, 0x180f},
		{0x2000, 0x200d},   {0x202f, 0x202f}, {0x205f, 0x2064},	  {0x206a, 0x206f},
		{0x2800, 0x2800},   {0x3000, 0x3000}, {0x3164, 0x3164},	  {0xfe00, 0xfe0f},
		{0xffa0, 0xffa0},   {0xfff9, 0xfffb}, {0x1bca0, 0x1bca3}, {0x1d173, 0x1d17a},
		{0xe0000, 0xe0fff},
	};

	for (size_t i = 0; i < sizeof(ranges) / sizeof(*ranges); i++)
		if (cp >= ranges[i].lo && cp <= ranges[i].hi)
			return 1;
	return 0;
}

/* Decodes the code point at S (well-formed UTF-8, checked before) into *CP
 * and returns its length in bytes. */
static size_t decode(const unsigned char *s, unsigned *cp)
{
	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if (s[0] < 0xe0) {
		*cp = ((unsigned)(s[0] & 0x1f) << 6) | (s[1] & 0x3f);
		return 2;
	}
	if (s[0] < 0xf0) {
		*cp = ((unsigned)(s[0] & 0x0f) << 12) | ((unsigned)(s[1] & 0x3f) << 6) |
		      (s[2] & 0x3f);
		return 3;
	}
	*cp = ((unsigned)(s[0] & 0x07) << 18) | ((unsigned)(s[1] & 0x3f) << 12) |
	      ((unsigned)(s[2] & 0x3f) << 6) | (s[3] & 0x3f);
	return 4;
}

size_t text_strip_blanks(const char *s, char *out, size_t outlen)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t o = 0, n = 0;

	while (*p) {
		unsigned cp;
		size_t len = decode(p, &cp);
		if (!blank_codepoint(cp) && !(cp < 0x80 && isspace((int)cp))) {
			if (o + len >= outlen)
				break;
			memcpy(out + o, p, len);
			o += len;
			n++;
		}
		p += len;
	}
	out[o] = '\0';
	return n;
}

int text_check(const char *str, size_t maxlen, unsigned flags, const char **why)
{
	const char *dummy;
	size_t len = strlen(str);
	int visible = 0;

	if (why == NULL)
		why = &dummy;
	if (len > maxlen) {
		*why = "is too long";
		return BZ_ERR_INVALID;
	}
	if (!text_utf8_valid(str, len)) {
		*why = "must be valid UTF-8";
		return BZ_ERR_INVALID;
	}
	for (const unsigned char *s = (const unsigned char *)str; *s;) {
		unsigned cp;
		s += decode(s, &cp);
		if (cp < 0x20 || cp == 0x7f) {
			*why = "must not contain control characters";
			return BZ_ERR_INVALID;
		}
		if (refused_codepoint(cp)) {
			*why = "must not contain control or bidirectional formatting characters";
			return BZ_ERR_INVALID;
		}
		if (!blank_codepoint(cp))
			visible = 1;
	}
	if (!visible && !(flags & TEXT_ALLOW_EMPTY)) {
		*why = "must not be empty or blank";
		return BZ_ERR_INVALID;
	}
	return 0;
}

int is_uuid(const char *s)
{
	if (s == NULL || strlen(s) != 36)
		return 0;
	for (int i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return 0;
		} else if (!isxdigit((unsigned char)s[i])) {
			return 0;
		}
	}
	return 1;
}

char *text_trim(char *s)
{
	size_t n;

	while (isspace((unsigned char)*s))
		s++;
	n = strlen(s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	return s;
}

void text_copy(char *dst, size_t n, const char *src)
{
	snprintf(dst, n, "%s", src != NULL ? src : "");
}
