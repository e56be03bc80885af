/* Attack tests on the SSRF guard's destination policy (server/outbound/
 * ssrf.c): embedded IPv4 forms and metadata addresses the policy misses.
 * Each test demonstrates a finding of the security review; they fail until
 * the policy is fixed. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "common/err.h"
#include "server/outbound/ssrf.h"

/* Judges the literal address S under P. */
static enum ssrf_kind addr(const struct ssrf_policy *p, const char *s, int name_allowlisted)
{
	struct sockaddr_in in4 = {.sin_family = AF_INET};
	struct sockaddr_in6 in6 = {.sin6_family = AF_INET6};

	if (inet_pton(AF_INET, s, &in4.sin_addr) == 1)
		return ssrf_address_allowed(p, (struct sockaddr *)&in4, name_allowlisted, NULL);
	if (inet_pton(AF_INET6, s, &in6.sin6_addr) == 1)
		return ssrf_address_allowed(p, (struct sockaddr *)&in6, name_allowlisted, NULL);
	fail_msg("bad test address %s", s);
	return SSRF_OK;
}

static struct ssrf_policy empty;

/* Teredo (2001:0::/32, RFC 4380 §4): the client's IPv4 address is the last
 * 32 bits inverted. Issue 12 wants Teredo judged as the IPv4 it carries;
 * ssrf.c only sees 2001::/23 "ietf_protocol", which any allow-listed name
 * (or a broad CIDR) unlocks — so a name that resolves to a Teredo address
 * carrying 169.254.169.254 reaches metadata through a Teredo relay. */
static void test_teredo_is_judged_as_the_ipv4_it_carries(void **state)
{
	/* server 65.54.227.120, client ~5601:5601 = 169.254.169.254 */
	const char *teredo_metadata = "2001:0:4136:e378:8000:63bf:5601:5601";
	/* client ~80ff:fffe = 127.0.0.1 */
	const char *teredo_loopback = "2001:0:4136:e378:8000:63bf:80ff:fffe";
	struct ssrf_policy p;
	char err[200];

	(void)state;
	assert_int_equal(addr(&empty, teredo_metadata, 1), SSRF_BLOCKED_ADDRESS);
	assert_int_equal(ssrf_policy_parse("2001::/16", &p, err, sizeof(err)), 0);
	assert_int_equal(addr(&p, teredo_metadata, 0), SSRF_BLOCKED_ADDRESS);
	assert_int_equal(addr(&p, teredo_loopback, 0), SSRF_BLOCKED_ADDRESS);
}

/* Google Compute Engine's metadata server on IPv6 is fd20:ce::254
 * (IPv6-only and dual-stack VMs); OpenStack's is fe80::a9fe:a9fe. Neither
 * is in metadata_addrs, so a broad CIDR over unique-local / link-local
 * space, or an allow-listed name resolving to them, unlocks them — "a
 * broad CIDR never unlocks the metadata addresses". */
static void test_ipv6_metadata_addresses_need_an_exact_entry(void **state)
{
	struct ssrf_policy p;
	char err[200];

	(void)state;
	assert_int_equal(ssrf_policy_parse("fc00::/7,fe80::/10", &p, err, sizeof(err)), 0);
	assert_int_equal(addr(&p, "fd20:ce::254", 0), SSRF_BLOCKED_ADDRESS);
	assert_int_equal(addr(&p, "fe80::a9fe:a9fe", 0), SSRF_BLOCKED_ADDRESS);
	assert_int_equal(addr(&empty, "fd20:ce::254", 1), SSRF_BLOCKED_ADDRESS);
}

/* The NAT64 local-use prefix 64:ff9b:1::/48 (RFC 8215) carries IPv4 the
 * same way as 64:ff9b::/96 when used with a /96; ssrf.c judges it as
 * "nat64_local" only, which an allow-listed name unlocks, so metadata
 * behind a local NAT64 translator is reachable. */
static void test_local_nat64_is_judged_as_the_ipv4_it_carries(void **state)
{
	(void)state;
	assert_int_equal(addr(&empty, "64:ff9b:1::a9fe:a9fe", 1), SSRF_BLOCKED_ADDRESS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_teredo_is_judged_as_the_ipv4_it_carries),
		cmocka_unit_test(test_ipv6_metadata_addresses_need_an_exact_entry),
		cmocka_unit_test(test_local_nat64_is_judged_as_the_ipv4_it_carries),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
