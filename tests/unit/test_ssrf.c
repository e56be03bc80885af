/* The SSRF guard's destination policy (server/outbound/ssrf.c, checklist O1):
 * the special-purpose ranges, embedded IPv4, metadata endpoints, host names
 * and the allow-list. */
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
static enum ssrf_kind addr(const struct ssrf_policy *p, const char *s, int name_allowlisted,
			   const char **why)
{
	struct sockaddr_in in4 = {.sin_family = AF_INET};
	struct sockaddr_in6 in6 = {.sin6_family = AF_INET6};

	if (inet_pton(AF_INET, s, &in4.sin_addr) == 1)
		return ssrf_address_allowed(p, (struct sockaddr *)&in4, name_allowlisted, why);
	if (inet_pton(AF_INET6, s, &in6.sin6_addr) == 1)
		return ssrf_address_allowed(p, (struct sockaddr *)&in6, name_allowlisted, why);
	fail_msg("bad test address %s", s);
	return SSRF_OK;
}

static struct ssrf_policy empty;

static void test_special_purpose_addresses_are_blocked(void **state)
{
	static const char *const blocked[] = {
		/* IPv4 registry */
		"0.0.0.0",
		"0.1.2.3",
		"10.0.0.1",
		"10.255.255.255",
		"100.64.0.1",
		"100.127.255.254",
		"127.0.0.1",
		"127.255.255.254",
		"169.254.0.1",
		"169.254.169.254",
		"172.16.0.1",
		"172.31.255.255",
		"192.0.0.1",
		"192.0.0.9",
		"192.0.2.1",
		"192.31.196.1",
		"192.52.193.1",
		"192.88.99.1",
		"192.168.0.1",
		"192.175.48.1",
		"198.18.0.1",
		"198.19.255.255",
		"198.51.100.7",
		"203.0.113.9",
		"224.0.0.1",
		"239.255.255.255",
		"240.0.0.1",
		"255.255.255.254",
		"255.255.255.255",
		"100.100.100.200",
		"168.63.129.16",
		/* IPv6 registry */
		"::",
		"::1",
		"64:ff9b:1::1",
		"100::1",
		"2001::1",
		"2001:0:4136:e378::1",
		"2001:10::1",
		"2001:db8::1",
		"2620:4f:8000::1",
		"3fff::1",
		"5f00::1",
		"fc00::1",
		"fd00:ec2::254",
		"fd12:3456::1",
		"fe80::1",
		"febf::1",
		"fec0::1",
		"ff02::1",
		"ff05::2",
		/* IPv4 embedded in IPv6, judged as the IPv4 it carries */
		"::ffff:127.0.0.1",
		"::ffff:7f00:1",
		"::ffff:169.254.169.254",
		"::ffff:10.0.0.1",
		"::127.0.0.1",
		"::10.1.2.3",
		"64:ff9b::127.0.0.1",
		"64:ff9b::a9fe:a9fe",
		"2002:7f00:1::",
		"2002:a9fe:a9fe::1",
		"2002:c0a8:101::",
	};
	(void)state;
	for (size_t i = 0; i < sizeof(blocked) / sizeof(*blocked); i++) {
		const char *why = NULL;
		if (addr(&empty, blocked[i], 0, &why) != SSRF_BLOCKED_ADDRESS)
			fail_msg("%s was allowed", blocked[i]);
		assert_non_null(why);
	}
}

static void test_public_addresses_are_allowed(void **state)
{
	static const char *const allowed[] = {
		"1.1.1.1",	  "8.8.8.8",	      "93.184.216.34",	 "9.255.255.255",
		"11.0.0.1",	  "100.63.255.255",   "100.128.0.1",	 "172.15.255.255",
		"172.32.0.1",	  "192.167.255.255",  "192.169.0.1",	 "198.17.255.255",
		"198.20.0.1",	  "223.255.255.255",  "2606:4700::1111", "2a00:1450:4001::200e",
		"::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1",
	};
	(void)state;
	for (size_t i = 0; i < sizeof(allowed) / sizeof(*allowed); i++)
		if (addr(&empty, allowed[i], 0, NULL) != SSRF_OK)
			fail_msg("%s was refused", allowed[i]);
}

static void test_reasons(void **state)
{
	const char *why;

	(void)state;
	assert_int_equal(addr(&empty, "127.0.0.1", 0, &why), SSRF_BLOCKED_ADDRESS);
	assert_string_equal(why, "loopback");
	assert_int_equal(addr(&empty, "169.254.169.254", 0, &why), SSRF_BLOCKED_ADDRESS);
	assert_string_equal(why, "metadata");
	assert_int_equal(addr(&empty, "::ffff:10.0.0.1", 0, &why), SSRF_BLOCKED_ADDRESS);
	assert_string_equal(why, "private");
	assert_int_equal(addr(&empty, "fd00:ec2::254", 0, &why), SSRF_BLOCKED_ADDRESS);
	assert_string_equal(why, "metadata");
}

static void test_other_families_are_blocked(void **state)
{
	struct sockaddr sa = {.sa_family = AF_UNIX};
	const char *why;

	(void)state;
	assert_int_equal(ssrf_address_allowed(&empty, &sa, 1, &why), SSRF_BLOCKED_ADDRESS);
	assert_int_equal(ssrf_address_allowed(&empty, NULL, 1, &why), SSRF_BLOCKED_ADDRESS);
}

static void test_policy_parse(void **state)
{
	struct ssrf_policy p;
	char err[200];

	(void)state;
	assert_int_equal(ssrf_policy_parse(NULL, &p, err, sizeof(err)), 0);
	assert_int_equal(p.n_names + p.n_suffixes + p.n_cidrs, 0);
	assert_int_equal(ssrf_policy_parse(" hooks.Corp.Example. , .svc.internal,10.20.0.0/16,"
					   "fd12::/64, 192.168.7.7 ,,",
					   &p, err, sizeof(err)),
			 0);
	assert_int_equal(p.n_names, 1);
	assert_string_equal(p.names[0], "hooks.corp.example");
	assert_int_equal(p.n_suffixes, 1);
	assert_string_equal(p.suffixes[0], ".svc.internal");
	assert_int_equal(p.n_cidrs, 3);
	assert_int_equal(p.cidrs[2].prefix, 32);

	static const char *const bad[] = {"10.0.0.1/8", "10.0.0.0/33", "fd12::1/64", "exa mple.com",
					  "a..b",	".",	       "10.0.0.0/",  "10.0.0.0/x",
					  "::1/129",	"bad_host$"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		err[0] = '\0';
		if (ssrf_policy_parse(bad[i], &p, err, sizeof(err)) != BZ_ERR_INVALID)
			fail_msg("accepted allow-list %s", bad[i]);
		assert_non_null(strstr(err, "entry"));
	}
}

static void test_allowlist(void **state)
{
	struct ssrf_policy p;
	char err[200];

	(void)state;
	assert_int_equal(ssrf_policy_parse("10.20.0.0/16,169.254.0.0/16,::/0,0.0.0.0/0", &p, err,
					   sizeof(err)),
			 0);
	assert_int_equal(addr(&p, "10.20.1.2", 0, NULL), SSRF_OK);
	assert_int_equal(addr(&p, "::ffff:10.20.1.2", 0, NULL), SSRF_OK);
	assert_int_equal(addr(&p, "127.0.0.1", 0, NULL), SSRF_OK); /* 0.0.0.0/0 says so */
	/* A broad CIDR never unlocks a metadata address... */
	assert_int_equal(addr(&p, "169.254.169.254", 0, NULL), SSRF_BLOCKED_ADDRESS);
	assert_int_equal(addr(&p, "fd00:ec2::254", 0, NULL), SSRF_BLOCKED_ADDRESS);
	assert_int_equal(addr(&p, "100.100.100.200", 0, NULL), SSRF_BLOCKED_ADDRESS);
	/* ...nor "this network" and the unspecified address (the local host). */
	assert_int_equal(addr(&p, "0.0.0.0", 0, NULL), SSRF_BLOCKED_ADDRESS);
	assert_int_equal(addr(&p, "::", 0, NULL), SSRF_BLOCKED_ADDRESS);
	/* Listing it exactly does. */
	assert_int_equal(ssrf_policy_parse("169.254.169.254/32", &p, err, sizeof(err)), 0);
	assert_int_equal(addr(&p, "169.254.169.254", 0, NULL), SSRF_OK);
	assert_int_equal(addr(&p, "169.254.1.1", 0, NULL), SSRF_BLOCKED_ADDRESS);
	/* An allow-listed name lets its addresses through, but not metadata. */
	assert_int_equal(addr(&empty, "10.1.2.3", 1, NULL), SSRF_OK);
	assert_int_equal(addr(&empty, "169.254.169.254", 1, NULL), SSRF_BLOCKED_ADDRESS);
	assert_int_equal(addr(&empty, "0.0.0.0", 1, NULL), SSRF_BLOCKED_ADDRESS);
}

static void test_host_names(void **state)
{
	static const char *const blocked[] = {
		"localhost",
		"LOCALHOST",
		"localhost.",
		"localhost..",
		"api.localhost",
		"a.b.LocalHost.",
		"metadata.google.internal",
		"METADATA.GOOGLE.INTERNAL.",
		"metadata.azure.com",
		"metadata",
		"instance-data",
		"",
		"exa mple.com",
		"a..b",
		"bad\\host",
		"host\r\nx",
		"127.0.0.1.",
		"0x7f.1.",
		"10.0.0.1..",
		"example.123",
		"a.0x7f",
	};
	struct ssrf_policy p;
	char err[200];
	int listed;

	(void)state;
	for (size_t i = 0; i < sizeof(blocked) / sizeof(*blocked); i++)
		if (ssrf_host_allowed(&empty, blocked[i], &listed) != SSRF_BLOCKED_HOST)
			fail_msg("host '%s' was allowed", blocked[i]);
	assert_int_equal(ssrf_host_allowed(&empty, NULL, &listed), SSRF_BLOCKED_HOST);
	assert_int_equal(ssrf_host_allowed(&empty, "hooks.example.com", &listed), SSRF_OK);
	assert_int_equal(listed, 0);
	assert_int_equal(ssrf_host_allowed(&empty, "127.0.0.1", &listed), SSRF_OK); /* at connect */
	assert_int_equal(ssrf_host_allowed(&empty, "[::1]", &listed), SSRF_OK);

	assert_int_equal(
		ssrf_policy_parse("hooks.corp.example,.svc.example,metadata.google.internal,"
				  ".localhost",
				  &p, err, sizeof(err)),
		0);
	assert_int_equal(ssrf_host_allowed(&p, "Hooks.Corp.Example.", &listed), SSRF_OK);
	assert_int_equal(listed, 1);
	assert_int_equal(ssrf_host_allowed(&p, "x.hooks.corp.example", &listed), SSRF_OK);
	assert_int_equal(listed, 0);
	assert_int_equal(ssrf_host_allowed(&p, "a.b.svc.example", &listed), SSRF_OK);
	assert_int_equal(listed, 1);
	assert_int_equal(ssrf_host_allowed(&p, "svc.example", &listed), SSRF_OK);
	assert_int_equal(listed, 0); /* ".svc.example" is what is under it */
	assert_int_equal(ssrf_host_allowed(&p, "evilsvc.example", &listed), SSRF_OK);
	assert_int_equal(listed, 0);
	/* A metadata name only by that exact name; localhost never. */
	assert_int_equal(ssrf_host_allowed(&p, "metadata.google.internal", &listed), SSRF_OK);
	assert_int_equal(listed, 1);
	assert_int_equal(ssrf_host_allowed(&p, "metadata.azure.com", &listed), SSRF_BLOCKED_HOST);
	assert_int_equal(ssrf_host_allowed(&p, "api.localhost", &listed), SSRF_BLOCKED_HOST);
}

static void test_kind_names(void **state)
{
	(void)state;
	assert_string_equal(ssrf_kind_name(SSRF_BLOCKED_ADDRESS), "blocked_address");
	assert_string_equal(ssrf_kind_name(SSRF_TOO_MANY_REDIRECTS), "too_many_redirects");
	assert_string_equal(ssrf_kind_name(SSRF_KIND_COUNT), "unknown");
	for (int k = 0; k < SSRF_KIND_COUNT; k++)
		assert_non_null(ssrf_kind_name((enum ssrf_kind)k));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_special_purpose_addresses_are_blocked),
		cmocka_unit_test(test_public_addresses_are_allowed),
		cmocka_unit_test(test_reasons),
		cmocka_unit_test(test_other_families_are_blocked),
		cmocka_unit_test(test_policy_parse),
		cmocka_unit_test(test_allowlist),
		cmocka_unit_test(test_host_names),
		cmocka_unit_test(test_kind_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
