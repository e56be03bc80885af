#include "common/client_ip.h"
#include "common/err.h"
#include "common/text.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static int parse_addr(const char *s, int *family, uint8_t addr[16])
{
	memset(addr, 0, 16);
	if (inet_pton(AF_INET, s, addr) == 1) {
		*family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, s, addr) == 1) {
		/* Treat ::ffff:a.b.c.d as the IPv4 address it carries. */
		static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
		if (memcmp(addr, mapped, 12) == 0) {
			memmove(addr, addr + 12, 4);
			memset(addr + 4, 0, 12);
			*family = AF_INET;
		} else {
			*family = AF_INET6;
		}
		return 0;
	}
	return BZ_ERR_INVALID;
}

int client_ip_is_literal(const char *s)
{
	int f;
	uint8_t a[16];

	return parse_addr(s, &f, a) == 0;
}

int cidr_list_parse(const char *s, struct cidr_list *out)
{
	char *copy = strdup(s), *save = NULL, *tok;
	int rc = BZ_ERR_INVALID;

	memset(out, 0, sizeof(*out));
	if (copy == NULL)
		return BZ_ERR_NOMEM;
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *t = text_trim(tok), *slash, *end;
		struct cidr c;
		if (*t == '\0')
			continue;
		if (out->n >= CIDR_LIST_MAX)
			goto out;
		slash = strchr(t, '/');
		if (slash)
			*slash = '\0';
		if (parse_addr(t, &c.family, c.addr) != 0)
			goto out;
		unsigned max = c.family == AF_INET ? 32 : 128;
		c.prefix = max;
		if (slash) {
			if (slash[1] == '\0' || !isdigit((unsigned char)slash[1]))
				goto out;
			unsigned long p = strtoul(slash + 1, &end, 10);
			if (*end != '\0' || p > max)
				goto out;
			c.prefix = (unsigned)p;
		}
		out->items[out->n++] = c;
	}
	rc = 0;
out:
	free(copy);
	return rc;
}

static int cidr_match(const struct cidr *c, int family, const uint8_t addr[16])
{
	unsigned full = c->prefix / 8, rest = c->prefix % 8;

	if (c->family != family)
		return 0;
	if (memcmp(c->addr, addr, full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return (c->addr[full] & mask) == (addr[full] & mask);
}

/* 1 if some range of LIST covers the whole block ADDR/LEN of FAMILY. */
static int block_covered(const struct cidr_list *list, int family, uint8_t addr[16], unsigned len)
{
	unsigned max = family == AF_INET ? 32 : 128;
	int inside = 0;

	for (unsigned i = 0; i < list->n; i++) {
		const struct cidr *c = &list->items[i];
		if (c->family != family)
			continue;
		struct cidr block = {.family = family, .prefix = c->prefix < len ? c->prefix : len};
		memcpy(block.addr, addr, 16);
		if (!cidr_match(&block, family, c->addr))
			continue;
		if (c->prefix <= len)
			return 1; /* C contains the whole block */
		inside = 1;	  /* C lies inside the block: look at both halves */
	}
	if (!inside || len >= max)
		return 0;
	uint8_t bit = (uint8_t)(0x80 >> (len % 8));
	uint8_t lo[16], hi[16];
	memcpy(lo, addr, 16);
	memcpy(hi, addr, 16);
	lo[len / 8] &= (uint8_t)~bit;
	hi[len / 8] |= bit;
	return block_covered(list, family, lo, len + 1) && block_covered(list, family, hi, len + 1);
}

int cidr_list_covers_all(const struct cidr_list *list, int family)
{
	uint8_t zero[16] = {0};

	if (list == NULL || (family != AF_INET && family != AF_INET6))
		return 0;
	return block_covered(list, family, zero, 0);
}

int cidr_list_contains(const struct cidr_list *list, const char *ip)
{
	int family;
	uint8_t addr[16];

	if (list == NULL || parse_addr(ip, &family, addr) != 0)
		return 0;
	for (unsigned i = 0; i < list->n; i++)
		if (cidr_match(&list->items[i], family, addr))
			return 1;
	return 0;
}

static int peer_to_string(const struct sockaddr *peer, char *out)
{
	char buf[CLIENT_IP_LEN];
	int family;
	uint8_t addr[16];

	if (peer == NULL)
		return BZ_ERR_INVALID;
	if (peer->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)peer;
		if (inet_ntop(AF_INET, &in->sin_addr, buf, sizeof(buf)) == NULL)
			return BZ_ERR_INVALID;
	} else if (peer->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)peer;
		if (inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof(buf)) == NULL)
			return BZ_ERR_INVALID;
	} else {
		return BZ_ERR_INVALID;
	}
	/* Normalise (drops the IPv4-mapped prefix). */
	if (parse_addr(buf, &family, addr) != 0 ||
	    inet_ntop(family, addr, out, CLIENT_IP_LEN) == NULL)
		return BZ_ERR_INVALID;
	return 0;
}

int client_ip_resolve(const struct sockaddr *peer, const char *xff, const struct cidr_list *trusted,
		      char *out)
{
	out[0] = '\0';
	if (peer_to_string(peer, out) != 0)
		return BZ_ERR_INVALID;
	if (xff == NULL || trusted == NULL || trusted->n == 0 || !cidr_list_contains(trusted, out))
		return 0;
	if (strlen(xff) > 8192)
		return 0;

	char *copy = strdup(xff);
	if (copy == NULL)
		return 0;
	/* Walk right to left: each trusted hop appended the address it saw. */
	char *p = copy + strlen(copy);
	for (;;) {
		char *start = p;
		while (start > copy && start[-1] != ',')
			start--;
		char saved = *p;
		*p = '\0';
		char *tok = text_trim(start);
		int family;
		uint8_t addr[16];
		if (parse_addr(tok, &family, addr) != 0) {
			/* Garbage from a hop we trust: stop at the last good one. */
			*p = saved;
			break;
		}
		inet_ntop(family, addr, out, CLIENT_IP_LEN);
		if (!cidr_list_contains(trusted, out))
			break;
		if (start == copy)
			break;
		p = start - 1;
	}
	free(copy);
	return 0;
}
