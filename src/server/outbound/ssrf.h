/*
 * ssrf.h — which destinations the server may connect to (checklist O1).
 *
 * The policy is judged on the address actually being connected to, after
 * DNS resolution, for every connection (outbound.c calls
 * ssrf_address_allowed() from libcurl's CURLOPT_OPENSOCKETFUNCTION), and on
 * the host name of the URL before any lookup (ssrf_host_allowed()).
 *
 * Blocked by default:
 *   - every range of the IANA IPv4 and IPv6 Special-Purpose Address
 *     Registries (RFC 6890 and its updates: unspecified, "this network",
 *     loopback, private, shared/CGNAT, link-local, IETF protocol
 *     assignments, documentation, benchmarking, AS112, 6to4 relay anycast,
 *     discard-only, Teredo, ORCHIDv2, SRv6 SIDs, unique-local, site-local),
 *     plus multicast, reserved (240/4) and broadcast;
 *   - IPv4 addresses embedded in IPv6 are judged as the IPv4 they carry:
 *     IPv4-mapped (::ffff:0:0/96), IPv4-compatible (::/96), NAT64
 *     (64:ff9b::/96, RFC 6052) and 6to4 (2002::/16, RFC 3056);
 *   - cloud metadata endpoints, by address (169.254.169.254,
 *     169.254.170.2, 100.100.100.200, 168.63.129.16, fd00:ec2::254, …) and
 *     by name (metadata.google.internal, metadata.azure.com, …), plus
 *     "localhost" and every name under ".localhost" (RFC 6761 §6.3).
 *
 * SSRF_ALLOWLIST (comma-separated) permits named internal destinations:
 * "host.example" (that exact name), ".corp.example" (every name under it)
 * and CIDRs ("10.20.0.0/16", "fd12::/64"). An allowed name lets the
 * addresses it resolves to through the special-purpose check. A metadata
 * address is unlocked only by listing it exactly (a /32 or /128 of it),
 * never by a broader CIDR or by a name; a metadata name only by that exact
 * name.
 */
#ifndef BZ_SSRF_H
#define BZ_SSRF_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define SSRF_ALLOWLIST_MAX 64 /* entries */
#define SSRF_HOST_MAX 253     /* bytes of a DNS name (RFC 1035 §2.3.4) */

/* Why a request was refused (also the `kind` of an outbound.blocked audit
 * row and a metrics label). */
enum ssrf_kind {
	SSRF_OK = 0,
	SSRF_BLOCKED_ADDRESS,
	SSRF_BLOCKED_HOST,
	SSRF_BAD_SCHEME,
	SSRF_BAD_URL,
	SSRF_DNS_FAILURE,
	SSRF_TOO_MANY_REDIRECTS,
	SSRF_RESPONSE_TOO_LARGE,
	SSRF_TIMEOUT,
	SSRF_CONNECT_FAILED,
	SSRF_KIND_COUNT
};

/* The kind's name: "blocked_address", "blocked_host", ... Static storage. */
const char *ssrf_kind_name(enum ssrf_kind k);

struct ssrf_cidr {
	int family;	  /* AF_INET or AF_INET6 */
	uint8_t addr[16]; /* network address, 4 or 16 bytes used */
	unsigned prefix;  /* 0–32 or 0–128 */
};

/* A parsed SSRF_ALLOWLIST. Plain data: copy freely. */
struct ssrf_policy {
	size_t n_names, n_suffixes, n_cidrs;
	char names[SSRF_ALLOWLIST_MAX][SSRF_HOST_MAX + 1];    /* lower case, no trailing dot */
	char suffixes[SSRF_ALLOWLIST_MAX][SSRF_HOST_MAX + 2]; /* ".corp.example" */
	struct ssrf_cidr cidrs[SSRF_ALLOWLIST_MAX];
};

/*
 * Parses LIST (comma-separated, spaces around entries ignored; NULL or ""
 * = empty) into OUT. Returns 0, or BZ_ERR_INVALID with a message naming the
 * bad entry in ERR (ERR_LEN bytes): a CIDR with host bits set or a prefix
 * out of range, a name that is not a valid DNS name, too many entries.
 */
int ssrf_policy_parse(const char *list, struct ssrf_policy *out, char *err, size_t err_len);

/*
 * Judges the host name HOST of a URL (as curl_url gives it: IPv6 literals
 * in brackets) before any lookup. Names are compared case-insensitively
 * with trailing dots removed. Returns SSRF_OK with *ALLOWLISTED (when not
 * NULL) set to 1 if P allow-lists the name; SSRF_BLOCKED_HOST for
 * localhost, *.localhost and metadata names (unless listed exactly) and for
 * names that are not valid host names. IP literals return SSRF_OK: they are
 * judged as addresses at connect time, like every other destination.
 */
enum ssrf_kind ssrf_host_allowed(const struct ssrf_policy *p, const char *host, int *allowlisted);

/*
 * Judges the address SA (AF_INET or AF_INET6; anything else is blocked)
 * about to be connected to. NAME_ALLOWLISTED says the URL's host name was
 * allow-listed by name. Returns SSRF_OK or SSRF_BLOCKED_ADDRESS, with a
 * short static reason in *WHY when not NULL ("loopback", "metadata", ...).
 */
enum ssrf_kind ssrf_address_allowed(const struct ssrf_policy *p, const struct sockaddr *sa,
				    int name_allowlisted, const char **why);

#endif
