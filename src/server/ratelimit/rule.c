#include "server/ratelimit/rule.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"

/* Reads an unsigned decimal of at most 9 digits from *P, advancing it. */
static int read_count(const char **p, unsigned long *out)
{
	const char *s = *p;
	unsigned long v = 0;
	size_t n = 0;

	while (s[n] >= '0' && s[n] <= '9') {
		if (n == 9)
			return BZ_ERR_INVALID;
		v = v * 10 + (unsigned long)(s[n] - '0');
		n++;
	}
	if (n == 0)
		return BZ_ERR_INVALID;
	*p = s + n;
	*out = v;
	return 0;
}

int ratelimit_rule_parse(const char *s, struct ratelimit_rule *out, const char **why)
{
	const char *p = s, *w = NULL;
	unsigned long count, secs;

	if (s == NULL || read_count(&p, &count) != 0 || *p != '/') {
		w = "must be COUNT/SECONDS, e.g. 5/300";
		goto bad;
	}
	p++;
	if (read_count(&p, &secs) != 0 || *p != '\0') {
		w = "must be COUNT/SECONDS, e.g. 5/300";
		goto bad;
	}
	if (count < 1 || count > RATELIMIT_MAX_LIMIT) {
		w = "COUNT must be between 1 and 100000 (a limit cannot be switched off)";
		goto bad;
	}
	if (secs < 1 || secs > RATELIMIT_MAX_WINDOW_S) {
		w = "SECONDS must be between 1 and 86400";
		goto bad;
	}
	out->limit = (uint32_t)count;
	out->window_s = (uint32_t)secs;
	return 0;
bad:
	if (why != NULL)
		*why = w;
	return BZ_ERR_INVALID;
}

int ratelimit_on_failure_parse(const char *s, enum ratelimit_on_failure *out)
{
	if (s != NULL && strcmp(s, "local") == 0) {
		*out = RATELIMIT_FAIL_LOCAL;
		return 0;
	}
	if (s != NULL && strcmp(s, "deny") == 0) {
		*out = RATELIMIT_FAIL_DENY;
		return 0;
	}
	return BZ_ERR_INVALID;
}

static int is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

int ratelimit_norm_email(const char *in, char *out, size_t len)
{
	size_t a = 0, b;

	if (len > 0)
		out[0] = '\0';
	if (in == NULL)
		return BZ_ERR_INVALID;
	b = strlen(in);
	while (a < b && is_space((unsigned char)in[a]))
		a++;
	while (b > a && is_space((unsigned char)in[b - 1]))
		b--;
	if (b == a || b - a > RATELIMIT_EMAIL_MAX || b - a >= len)
		return BZ_ERR_INVALID;
	for (size_t i = a; i < b; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c < 0x20 || c == 0x7f) {
			out[0] = '\0';
			return BZ_ERR_INVALID;
		}
		out[i - a] = (char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
	}
	out[b - a] = '\0';
	return 0;
}

int ratelimit_norm_ip(const char *ip, char *out, size_t len)
{
	struct in_addr v4;
	struct in6_addr v6;
	char buf[INET6_ADDRSTRLEN];

	if (len > 0)
		out[0] = '\0';
	if (ip == NULL || len < RATELIMIT_IP_LEN + 4)
		return BZ_ERR_INVALID;
	if (inet_pton(AF_INET, ip, &v4) == 1) {
		if (inet_ntop(AF_INET, &v4, out, (socklen_t)len) == NULL)
			return BZ_ERR_INVALID;
		return 0;
	}
	if (inet_pton(AF_INET6, ip, &v6) != 1)
		return BZ_ERR_INVALID;
	if (IN6_IS_ADDR_V4MAPPED(&v6)) {
		memcpy(&v4, &v6.s6_addr[12], sizeof(v4));
		if (inet_ntop(AF_INET, &v4, out, (socklen_t)len) == NULL)
			return BZ_ERR_INVALID;
		return 0;
	}
	memset(&v6.s6_addr[8], 0, 8); /* keep the /64 network */
	if (inet_ntop(AF_INET6, &v6, buf, sizeof(buf)) == NULL)
		return BZ_ERR_INVALID;
	int n = snprintf(out, len, "%s/64", buf);
	if (n < 0 || (size_t)n >= len) {
		out[0] = '\0';
		return BZ_ERR_INVALID;
	}
	return 0;
}
