/*
 * client_ip.h — which address a request came from.
 *
 * The client is the socket peer, unless the peer is one of the operator's
 * trusted proxies (TRUSTED_PROXY_CIDRS); only then is X-Forwarded-For
 * consulted, and the client is its right-most address that is not itself a
 * trusted proxy. Addresses further left were written by the client and
 * cannot be trusted.
 */
#ifndef BZ_CLIENT_IP_H
#define BZ_CLIENT_IP_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define CIDR_LIST_MAX 32
#define CLIENT_IP_LEN 46 /* INET6_ADDRSTRLEN */

struct cidr {
	int family; /* AF_INET or AF_INET6 */
	uint8_t addr[16];
	unsigned prefix;
};

struct cidr_list {
	unsigned n;
	struct cidr items[CIDR_LIST_MAX];
};

/* Parses a comma-separated list of CIDRs ("10.0.0.0/8, ::1/128"; a bare
 * address means a single host) into OUT. Returns 0, or BZ_ERR_INVALID on any malformed
 * entry or more than CIDR_LIST_MAX entries. */
int cidr_list_parse(const char *s, struct cidr_list *out);

/* 1 if the textual IP address IP (v4 or v6) is inside one of LIST's ranges. */
int cidr_list_contains(const struct cidr_list *list, const char *ip);

/* 1 if the ranges of LIST together cover every address of FAMILY (AF_INET
 * or AF_INET6), e.g. 0.0.0.0/0, ::/0, or 0.0.0.0/1 plus 128.0.0.0/1: a
 * trusted-proxy list like that lets any client choose its own address. */
int cidr_list_covers_all(const struct cidr_list *list, int family);

/* 1 if S is a literal IPv4 or IPv6 address. */
int client_ip_is_literal(const char *s);

/*
 * Resolves the client address into OUT (CLIENT_IP_LEN bytes) from the peer
 * socket address PEER and the X-Forwarded-For header value XFF (may be
 * NULL), per the rule at the top of this file. IPv4-mapped IPv6 peers are
 * reported as IPv4. Returns 0, or BZ_ERR_INVALID if PEER is unusable (OUT is then "").
 */
int client_ip_resolve(const struct sockaddr *peer, const char *xff, const struct cidr_list *trusted,
		      char *out);

#endif
