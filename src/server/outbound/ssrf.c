/*
 * ssrf.c — the destination policy of outbound requests (see ssrf.h).
 *
 * The ranges are the IANA IPv4 and IPv6 Special-Purpose Address Registries
 * (https://www.iana.org/assignments/iana-ipv4-special-registry and
 * iana-ipv6-special-registry, as of 2024), all of them blocked whatever
 * their "globally reachable" column says: an integration webhook has no
 * business with anycast relays or AS112 either.
 */
#include "server/outbound/ssrf.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/err.h"
#include "common/text.h"

static const char *const kind_names[SSRF_KIND_COUNT] = {
	[SSRF_OK] = "ok",
	[SSRF_BLOCKED_ADDRESS] = "blocked_address",
	[SSRF_BLOCKED_HOST] = "blocked_host",
	[SSRF_BAD_SCHEME] = "bad_scheme",
	[SSRF_BAD_URL] = "bad_url",
	[SSRF_DNS_FAILURE] = "dns_failure",
	[SSRF_TOO_MANY_REDIRECTS] = "too_many_redirects",
	[SSRF_RESPONSE_TOO_LARGE] = "response_too_large",
	[SSRF_TIMEOUT] = "timeout",
	[SSRF_CONNECT_FAILED] = "connect_failed",
};

const char *ssrf_kind_name(enum ssrf_kind k)
{
	return (unsigned)k < SSRF_KIND_COUNT ? kind_names[k] : "unknown";
}

struct range {
	const char *cidr;
	const char *why;
};

/* IANA IPv4 Special-Purpose Address Registry, plus multicast (RFC 5771). */
static const struct range v4_ranges[] = {
	{"0.0.0.0/8", "this_network"},	      {"10.0.0.0/8", "private"},
	{"100.64.0.0/10", "shared"},	      {"127.0.0.0/8", "loopback"},
	{"169.254.0.0/16", "link_local"},     {"172.16.0.0/12", "private"},
	{"192.0.0.0/24", "ietf_protocol"},    {"192.0.2.0/24", "documentation"},
	{"192.31.196.0/24", "as112"},	      {"192.52.193.0/24", "amt"},
	{"192.88.99.0/24", "6to4_relay"},     {"192.168.0.0/16", "private"},
	{"192.175.48.0/24", "as112"},	      {"198.18.0.0/15", "benchmarking"},
	{"198.51.100.0/24", "documentation"}, {"203.0.113.0/24", "documentation"},
	{"224.0.0.0/4", "multicast"},	      {"240.0.0.0/4", "reserved"},
	{"255.255.255.255/32", "broadcast"},
};

/* IANA IPv6 Special-Purpose Address Registry, plus multicast and the
 * deprecated site-local prefix. The embedding prefixes (mapped,
 * compatible, NAT64, 6to4) are handled before this table. */
static const struct range v6_ranges[] = {
	{"::/128", "unspecified"},	    {"::1/128", "loopback"},
	{"64:ff9b:1::/48", "nat64_local"},  {"100::/64", "discard"},
	{"100:0:0:1::/64", "dummy"},	    {"2001::/23", "ietf_protocol"}, /* Teredo, ORCHID... */
	{"2001:db8::/32", "documentation"}, {"2620:4f:8000::/48", "as112"},
	{"3fff::/20", "documentation"},	    {"5f00::/16", "srv6"},
	{"fc00::/7", "unique_local"},	    {"fe80::/10", "link_local"},
	{"fec0::/10", "site_local"},	    {"ff00::/8", "multicast"},
};

/* Cloud metadata and platform endpoints: AWS (IMDS, ECS task metadata,
 * IMDS over IPv6), GCP and Azure (169.254.169.254; GCP over IPv6
 * fd20:ce::254), OpenStack over IPv6 (fe80::a9fe:a9fe), Azure WireServer,
 * Alibaba Cloud, Oracle Cloud (192.0.0.192), OpenStack/DigitalOcean
 * (169.254.169.254), AWS DNS (169.254.169.253). */
static const char *const metadata_addrs[] = {
	"169.254.169.254", "169.254.170.2", "169.254.169.253", "169.254.169.123",
	"100.100.100.200", "168.63.129.16", "192.0.0.192",     "fd00:ec2::254",
	"fd00:ec2::23",	   "fd20:ce::254",  "fe80::a9fe:a9fe",
};

static const char *const metadata_names[] = {
	"metadata.google.internal",
	"metadata.goog",
	"metadata.azure.com",
	"metadata",
	"instance-data",
	"instance-data.ec2.internal",
	"metadata.tencentyun.com",
	"metadata.platformequinix.com",
};

/* Parses "ADDR/PREFIX" (or a bare address: a /32 or /128) into OUT.
 * Returns 0 or -1; host bits must be zero. */
static int cidr_parse(const char *s, struct ssrf_cidr *out)
{
	char buf[INET6_ADDRSTRLEN + 8];
	char *slash, *end;
	long prefix;

	if (strlen(s) >= sizeof(buf))
		return -1;
	text_copy(buf, sizeof(buf), s);
	slash = strchr(buf, '/');
	if (slash != NULL)
		*slash = '\0';
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, buf, out->addr) == 1)
		out->family = AF_INET;
	else if (inet_pton(AF_INET6, buf, out->addr) == 1)
		out->family = AF_INET6;
	else
		return -1;
	unsigned max = out->family == AF_INET ? 32 : 128;
	if (slash == NULL) {
		out->prefix = max;
		return 0;
	}
	if (!isdigit((unsigned char)slash[1]))
		return -1;
	prefix = strtol(slash + 1, &end, 10);
	if (*end != '\0' || prefix < 0 || prefix > (long)max)
		return -1;
	out->prefix = (unsigned)prefix;
	/* Host bits set means the operator meant something else. */
	for (unsigned bit = out->prefix; bit < max; bit++)
		if (out->addr[bit / 8] & (0x80 >> (bit % 8)))
			return -1;
	return 0;
}

/* 1 if the FAMILY address A (4 or 16 bytes) lies in C. */
static int cidr_contains(const struct ssrf_cidr *c, int family, const uint8_t *a)
{
	unsigned full = c->prefix / 8, rest = c->prefix % 8;

	if (c->family != family)
		return 0;
	if (memcmp(c->addr, a, full) != 0)
		return 0;
	return rest == 0 || ((c->addr[full] ^ a[full]) & (0xff << (8 - rest)) & 0xff) == 0;
}

/* REASON of the first range of TABLE (N entries) holding A, or NULL. */
static const char *in_table(const struct range *table, size_t n, int family, const uint8_t *a)
{
	struct ssrf_cidr c;

	for (size_t i = 0; i < n; i++)
		if (cidr_parse(table[i].cidr, &c) == 0 && cidr_contains(&c, family, a))
			return table[i].why;
	return NULL;
}

static int is_metadata_addr(int family, const uint8_t *a)
{
	uint8_t m[16];

	for (size_t i = 0; i < sizeof(metadata_addrs) / sizeof(*metadata_addrs); i++)
		if (inet_pton(family, metadata_addrs[i], m) == 1 &&
		    memcmp(m, a, family == AF_INET ? 4 : 16) == 0)
			return 1;
	return 0;
}

/* Lower-cases HOST into OUT (OUT_LEN bytes) without trailing dots. Returns
 * 0, or -1 if it is empty, too long or not a valid host name (letters,
 * digits, '-', '_' and dots; labels of 1–63 bytes). */
static int name_normalize(const char *host, char *out, size_t out_len)
{
	size_t n = strlen(host), label = 0;

	while (n > 0 && host[n - 1] == '.')
		n--;
	if (n == 0 || n > SSRF_HOST_MAX || n >= out_len)
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)host[i];
		if (ch == '.') {
			if (label == 0)
				return -1;
			label = 0;
		} else if (isalnum(ch) || ch == '-' || ch == '_') {
			if (++label > 63)
				return -1;
		} else {
			return -1;
		}
		out[i] = (char)tolower(ch);
	}
	out[n] = '\0';
	return 0;
}

/* Adds ENTRY (trimmed, non-empty) to P. Returns 0 or -1. */
static int policy_add(struct ssrf_policy *p, const char *entry)
{
	if (strchr(entry, '/') != NULL || strchr(entry, ':') != NULL ||
	    (isdigit((unsigned char)entry[strlen(entry) - 1]) &&
	     strspn(entry, "0123456789.") == strlen(entry))) {
		if (p->n_cidrs == SSRF_ALLOWLIST_MAX)
			return -1;
		return cidr_parse(entry, &p->cidrs[p->n_cidrs++]) == 0 ? 0 : -1;
	}
	if (entry[0] == '.') {
		if (p->n_suffixes == SSRF_ALLOWLIST_MAX)
			return -1;
		char *s = p->suffixes[p->n_suffixes];
		s[0] = '.';
		if (name_normalize(entry + 1, s + 1, SSRF_HOST_MAX + 1) != 0)
			return -1;
		p->n_suffixes++;
		return 0;
	}
	if (p->n_names == SSRF_ALLOWLIST_MAX)
		return -1;
	if (name_normalize(entry, p->names[p->n_names], SSRF_HOST_MAX + 1) != 0)
		return -1;
	p->n_names++;
	return 0;
}

int ssrf_policy_parse(const char *list, struct ssrf_policy *out, char *err, size_t err_len)
{
	const char *s = list ? list : "";

	memset(out, 0, sizeof(*out));
	while (*s) {
		const char *end = strchr(s, ',');
		size_t len = end ? (size_t)(end - s) : strlen(s);
		char entry[SSRF_HOST_MAX + 2];

		while (len > 0 && isspace((unsigned char)*s)) {
			s++;
			len--;
		}
		while (len > 0 && isspace((unsigned char)s[len - 1]))
			len--;
		if (len >= sizeof(entry)) {
			snprintf(err, err_len, "entry '%.40s…' is too long", s);
			return BZ_ERR_INVALID;
		}
		memcpy(entry, s, len);
		entry[len] = '\0';
		if (len > 0 && policy_add(out, entry) != 0) {
			snprintf(err, err_len,
				 "entry '%s' is not a host name, a .suffix or a CIDR without host "
				 "bits (or the list has more than %d of its kind)",
				 entry, SSRF_ALLOWLIST_MAX);
			return BZ_ERR_INVALID;
		}
		s += (end ? (size_t)(end - s) + 1 : strlen(s));
	}
	return 0;
}

static int name_listed(const struct ssrf_policy *p, const char *name)
{
	size_t n = strlen(name);

	for (size_t i = 0; i < p->n_names; i++)
		if (strcmp(p->names[i], name) == 0)
			return 1;
	for (size_t i = 0; i < p->n_suffixes; i++) {
		size_t k = strlen(p->suffixes[i]);
		if (n > k && strcmp(name + n - k, p->suffixes[i]) == 0)
			return 1;
	}
	return 0;
}

static int name_exactly_listed(const struct ssrf_policy *p, const char *name)
{
	for (size_t i = 0; i < p->n_names; i++)
		if (strcmp(p->names[i], name) == 0)
			return 1;
	return 0;
}

enum ssrf_kind ssrf_host_allowed(const struct ssrf_policy *p, const char *host, int *allowlisted)
{
	char name[SSRF_HOST_MAX + 1];
	uint8_t a[16];

	if (allowlisted != NULL)
		*allowlisted = 0;
	if (host == NULL || host[0] == '\0')
		return SSRF_BLOCKED_HOST;
	if (host[0] == '[')
		return SSRF_OK; /* an IPv6 literal: judged at connect time */
	if (inet_pton(AF_INET, host, a) == 1)
		return SSRF_OK;
	if (name_normalize(host, name, sizeof(name)) != 0)
		return SSRF_BLOCKED_HOST;
	/* A numeric last label makes the host an IPv4 address in some form
	 * (WHATWG URL "ends in a number"), e.g. "127.0.0.1." or "0x7f.1.",
	 * which libcurl left as it was: not a name, and not judged as one. No
	 * top-level domain is numeric. */
	const char *last = strrchr(name, '.');
	last = last ? last + 1 : name;
	if (strspn(last, "0123456789") == strlen(last) ||
	    ((last[0] == '0') && (last[1] == 'x' || last[1] == 'X') &&
	     strspn(last + 2, "0123456789abcdefABCDEF") == strlen(last + 2)))
		return SSRF_BLOCKED_HOST;
	for (size_t i = 0; i < sizeof(metadata_names) / sizeof(*metadata_names); i++)
		if (strcmp(name, metadata_names[i]) == 0) {
			if (!name_exactly_listed(p, name))
				return SSRF_BLOCKED_HOST;
			if (allowlisted != NULL)
				*allowlisted = 1;
			return SSRF_OK;
		}
	size_t n = strlen(name);
	if (strcmp(name, "localhost") == 0 || (n > 10 && strcmp(name + n - 10, ".localhost") == 0))
		return SSRF_BLOCKED_HOST;
	if (allowlisted != NULL)
		*allowlisted = name_listed(p, name);
	return SSRF_OK;
}

/* The IPv4 address carried by the IPv6 address A, into V4; 1 if there is
 * one: mapped, compatible, NAT64 (the well-known prefix, RFC 6052, and the
 * local-use 64:ff9b:1::/48 of RFC 8215 in its /96 form), 6to4 (RFC 3056),
 * Teredo (RFC 4380 §4: the client's address, bit-inverted, in the last 32
 * bits). */
static int embedded_v4(const uint8_t *a, uint8_t v4[4])
{
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	static const uint8_t zero[12] = {0};
	static const uint8_t nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
	static const uint8_t nat64_local[6] = {0, 0x64, 0xff, 0x9b, 0, 1};
	static const uint8_t teredo[4] = {0x20, 0x01, 0, 0};

	if (memcmp(a, teredo, 4) == 0) {
		for (int i = 0; i < 4; i++)
			v4[i] = (uint8_t)~a[12 + i];
		return 1;
	}
	if (memcmp(a, mapped, 12) == 0 || memcmp(a, nat64, 12) == 0 ||
	    memcmp(a, nat64_local, 6) == 0 ||
	    /* IPv4-compatible, but not :: and ::1 themselves */
	    (memcmp(a, zero, 12) == 0 && (a[12] | a[13] | a[14]) != 0)) {
		memcpy(v4, a + 12, 4);
		return 1;
	}
	if (a[0] == 0x20 && a[1] == 0x02) { /* 2002:V4ADDR::/48 */
		memcpy(v4, a + 2, 4);
		return 1;
	}
	return 0;
}

/* 1 if P lists FAMILY address A; *EXACT = 1 when by a host-sized CIDR. */
static int cidr_listed(const struct ssrf_policy *p, int family, const uint8_t *a, int *exact)
{
	int hit = 0;

	*exact = 0;
	for (size_t i = 0; i < p->n_cidrs; i++)
		if (cidr_contains(&p->cidrs[i], family, a)) {
			hit = 1;
			if (p->cidrs[i].prefix == (family == AF_INET ? 32u : 128u))
				*exact = 1;
		}
	return hit;
}

/* Judges FAMILY address A: the metadata rule, then the allow-list, then the
 * special-purpose ranges. */
static enum ssrf_kind judge(const struct ssrf_policy *p, int family, const uint8_t *a,
			    int name_allowlisted, const char **why)
{
	int exact;
	int listed = cidr_listed(p, family, a, &exact);
	const char *reason;

	if (is_metadata_addr(family, a)) {
		*why = "metadata";
		return exact ? SSRF_OK : SSRF_BLOCKED_ADDRESS;
	}
	reason = family == AF_INET
			 ? in_table(v4_ranges, sizeof(v4_ranges) / sizeof(*v4_ranges), family, a)
			 : in_table(v6_ranges, sizeof(v6_ranges) / sizeof(*v6_ranges), family, a);
	if (reason == NULL)
		return SSRF_OK;
	/* "This network" and the unspecified address reach the local host on
	 * Linux; no allow-list entry makes them a destination. */
	if (strcmp(reason, "this_network") != 0 && strcmp(reason, "unspecified") != 0 &&
	    (listed || name_allowlisted))
		return SSRF_OK;
	*why = reason;
	return SSRF_BLOCKED_ADDRESS;
}

enum ssrf_kind ssrf_address_allowed(const struct ssrf_policy *p, const struct sockaddr *sa,
				    int name_allowlisted, const char **why)
{
	const char *dummy;
	uint8_t v4[4];

	if (why == NULL)
		why = &dummy;
	*why = NULL;
	if (sa == NULL) {
		*why = "no_address";
		return SSRF_BLOCKED_ADDRESS;
	}
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		return judge(p, AF_INET, (const uint8_t *)&in->sin_addr, name_allowlisted, why);
	}
	if (sa->sa_family == AF_INET6) {
		const uint8_t *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
		/* An embedded IPv4 address is judged as itself: ::ffff:127.0.0.1
		 * is loopback whatever an allow-listed name said. */
		if (embedded_v4(a, v4))
			return judge(p, AF_INET, v4, name_allowlisted, why);
		return judge(p, AF_INET6, a, name_allowlisted, why);
	}
	*why = "address_family";
	return SSRF_BLOCKED_ADDRESS;
}
