/*
 * fuzz_client_ip.c — X-Forwarded-For and TRUSTED_PROXY_CIDRS parsing
 * (src/server/http/client_ip.c).
 *
 * The input is used as an X-Forwarded-For value from a trusted proxy (IPv4,
 * IPv6 and IPv4-mapped peers) against a fixed trusted list, then as a CIDR
 * list; when it parses, it also becomes the trusted list, and a list said
 * to cover every IPv4/IPv6 address must contain sample addresses of it.
 * Whatever the input, a resolved address must be a printable IP literal.
 */
#include <arpa/inet.h>

#include "fuzz.h"
#include "common/client_ip.h"

static struct cidr_list trusted;
static struct sockaddr_in peer4;
static struct sockaddr_in6 peer6, peer_mapped;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (cidr_list_parse("10.0.0.0/8, 192.168.1.7, fd00::/8, ::1/128, 172.16.0.0/12",
			    &trusted) != 0)
		abort();
	peer4.sin_family = AF_INET;
	inet_pton(AF_INET, "10.1.2.3", &peer4.sin_addr);
	peer6.sin6_family = AF_INET6;
	inet_pton(AF_INET6, "fd00::17", &peer6.sin6_addr);
	peer_mapped.sin6_family = AF_INET6;
	inet_pton(AF_INET6, "::ffff:192.168.1.7", &peer_mapped.sin6_addr);
	return 0;
}

/* Resolves XFF from PEER against LIST and checks the result's shape. */
static void resolve(const void *peer, const char *xff, const struct cidr_list *list)
{
	char out[CLIENT_IP_LEN];

	memset(out, 'x', sizeof(out));
	int rc = client_ip_resolve((const struct sockaddr *)peer, xff, list, out);
	FUZZ_ASSERT(memchr(out, '\0', sizeof(out)) != NULL);
	if (rc == 0)
		FUZZ_ASSERT(client_ip_is_literal(out));
	else
		FUZZ_ASSERT(out[0] == '\0');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstr(data, size);
	struct cidr_list list;

	if (s == NULL)
		return 0;
	resolve(&peer4, s, &trusted);
	resolve(&peer6, s, &trusted);
	resolve(&peer_mapped, s, &trusted);
	(void)client_ip_is_literal(s);
	if (cidr_list_parse(s, &list) == 0) {
		FUZZ_ASSERT(list.n <= CIDR_LIST_MAX);
		for (unsigned i = 0; i < list.n; i++)
			FUZZ_ASSERT(list.items[i].prefix <=
				    (list.items[i].family == AF_INET ? 32u : 128u));
		resolve(&peer4, s, &list);
		resolve(&peer6, "203.0.113.9, 10.0.0.1", &list);
		(void)cidr_list_contains(&list, "10.1.2.3");
		(void)cidr_list_contains(&list, "2001:db8::1");
		/* A list that covers a family contains its extremes and a middle. */
		if (cidr_list_covers_all(&list, AF_INET))
			FUZZ_ASSERT(cidr_list_contains(&list, "0.0.0.0") &&
				    cidr_list_contains(&list, "255.255.255.255") &&
				    cidr_list_contains(&list, "100.64.1.2"));
		if (cidr_list_covers_all(&list, AF_INET6))
			FUZZ_ASSERT(cidr_list_contains(&list, "::") &&
				    cidr_list_contains(&list,
						       "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff") &&
				    cidr_list_contains(&list, "2001:db8::1"));
		if (!cidr_list_covers_all(&list, AF_INET) && cidr_list_contains(&list, "0.0.0.0") &&
		    list.n == 1)
			FUZZ_ASSERT(list.items[0].prefix > 0);
	}
	free(s);
	return 0;
}
