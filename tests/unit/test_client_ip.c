/* Unit tests for src/server/http/client_ip.c: which address a request is
 * attributed to (X-Forwarded-For only from trusted proxies, right-most
 * untrusted hop), IPv4-mapped normalisation, CIDR matching and parsing. */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include <cmocka.h>

#include "common/client_ip.h"
#include "common/err.h"

/* Builds a sockaddr for textual address IP (v4 or v6) into SS. */
static const struct sockaddr *make_peer(const char *ip, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	struct sockaddr_in *in = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

	if (inet_pton(AF_INET, ip, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		in->sin_port = htons(40000);
	} else if (inet_pton(AF_INET6, ip, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(40000);
	} else {
		fail_msg("test bug: bad peer address %s", ip);
	}
	return (const struct sockaddr *)ss;
}

struct resolve_case {
	const char *name;
	const char *trusted; /* TRUSTED_PROXY_CIDRS, "" = none */
	const char *peer;
	const char *xff; /* NULL = no header */
	const char *want;
};

static const struct resolve_case resolve_cases[] = {
	{"untrusted peer ignores XFF", "10.0.0.0/8", "203.0.113.5", "1.2.3.4", "203.0.113.5"},
	{"no trusted proxies ignores XFF", "", "10.0.0.1", "1.2.3.4", "10.0.0.1"},
	{"trusted peer, no XFF", "10.0.0.0/8", "10.0.0.1", NULL, "10.0.0.1"},
	{"trusted peer uses XFF", "10.0.0.0/8", "10.0.0.1", "1.2.3.4", "1.2.3.4"},
	{"right-most untrusted hop wins", "10.0.0.0/8", "10.0.0.1", "evil, 1.2.3.4, 10.0.0.2",
	 "1.2.3.4"},
	{"spoofed left entries ignored", "10.0.0.0/8", "10.0.0.1", "6.6.6.6, 1.2.3.4", "1.2.3.4"},
	{"all hops trusted: left-most", "10.0.0.0/8", "10.0.0.1", "10.0.0.3, 10.0.0.2", "10.0.0.3"},
	{"whitespace around entries", "10.0.0.0/8", "10.0.0.1", " \t1.2.3.4 ,  10.0.0.2 ",
	 "1.2.3.4"},
	/* Garbage written by a trusted hop: stop there and never look further
	 * left (a client wrote everything left of it). */
	{"garbage right-most: peer", "10.0.0.0/8", "10.0.0.1", "1.2.3.4, garbage", "10.0.0.1"},
	{"garbage stops the walk", "10.0.0.0/8", "10.0.0.1", "5.6.7.8, garbage, 10.0.0.2",
	 "10.0.0.2"},
	{"address with port is garbage", "10.0.0.0/8", "10.0.0.1", "1.2.3.4:443", "10.0.0.1"},
	{"empty XFF", "10.0.0.0/8", "10.0.0.1", "", "10.0.0.1"},
	{"empty entry stops", "10.0.0.0/8", "10.0.0.1", "5.6.7.8,,10.0.0.2", "10.0.0.2"},
	{"mapped XFF entry normalised", "10.0.0.0/8", "10.0.0.1", "::ffff:1.2.3.4", "1.2.3.4"},
	{"mapped peer normalised", "10.0.0.0/8", "::ffff:203.0.113.9", "1.2.3.4", "203.0.113.9"},
	{"mapped peer matches v4 CIDR", "10.0.0.0/8", "::ffff:10.0.0.1", "1.2.3.4", "1.2.3.4"},
	{"IPv6 trusted peer", "2001:db8::/32", "2001:db8::1", "2001:db9::5", "2001:db9::5"},
	{"IPv6 untrusted peer", "2001:db8::/32", "2001:db9::1", "1.2.3.4", "2001:db9::1"},
	{"IPv6 hop inside range skipped", "2001:db8::/32, 10.0.0.0/8", "10.0.0.1",
	 "2001:db9::7, 2001:db8:ffff::1", "2001:db9::7"},
	{"IPv6 peer text canonical", "", "2001:0db8:0000::0001", NULL, "2001:db8::1"},
	{"loopback v6 trusted", "::1", "::1", "198.51.100.7", "198.51.100.7"},
	{"narrow prefix /31", "10.0.0.0/31", "10.0.0.1", "1.2.3.4", "1.2.3.4"},
	{"outside /31", "10.0.0.0/31", "10.0.0.2", "1.2.3.4", "10.0.0.2"},
};

static void test_resolve_table(void **state)
{
	unsigned failures = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(resolve_cases) / sizeof(*resolve_cases); i++) {
		const struct resolve_case *c = &resolve_cases[i];
		struct cidr_list trusted;
		struct sockaddr_storage ss;
		char out[CLIENT_IP_LEN];

		assert_int_equal(cidr_list_parse(c->trusted, &trusted), 0);
		memset(out, 'x', sizeof(out));
		int rc = client_ip_resolve(make_peer(c->peer, &ss), c->xff, &trusted, out);
		if (rc != 0 || strcmp(out, c->want) != 0) {
			print_error("case \"%s\": rc=%d got \"%s\" want \"%s\"\n", c->name, rc, out,
				    c->want);
			failures++;
		}
	}
	assert_int_equal(failures, 0);
}

static void test_resolve_overlong_xff(void **state)
{
	struct cidr_list trusted;
	struct sockaddr_storage ss;
	char out[CLIENT_IP_LEN];
	size_t n = 9000;
	char *xff = malloc(n + 1);

	(void)state;
	assert_non_null(xff);
	memset(xff, ' ', n);
	memcpy(xff + n - 7, "1.2.3.4", 7);
	xff[n] = '\0';
	assert_int_equal(cidr_list_parse("10.0.0.0/8", &trusted), 0);
	assert_int_equal(client_ip_resolve(make_peer("10.0.0.1", &ss), xff, &trusted, out), 0);
	free(xff);
	assert_string_equal(out, "10.0.0.1");
}

static void test_resolve_unusable_peer(void **state)
{
	struct cidr_list trusted;
	struct sockaddr_un un;
	char out[CLIENT_IP_LEN];

	(void)state;
	assert_int_equal(cidr_list_parse("10.0.0.0/8", &trusted), 0);
	memset(&un, 0, sizeof(un));
	un.sun_family = AF_UNIX;
	memset(out, 'x', sizeof(out));
	assert_int_equal(client_ip_resolve((struct sockaddr *)&un, "1.2.3.4", &trusted, out),
			 BZ_ERR_INVALID);
	assert_string_equal(out, "");
	memset(out, 'x', sizeof(out));
	assert_int_equal(client_ip_resolve(NULL, "1.2.3.4", &trusted, out), BZ_ERR_INVALID);
	assert_string_equal(out, "");
}

static const struct {
	const char *list, *ip;
	int want;
} contains_cases[] = {
	{"10.0.0.0/8", "10.255.255.255", 1},
	{"10.0.0.0/8", "11.0.0.0", 0},
	{"10.0.0.0/9", "10.127.0.1", 1},
	{"10.0.0.0/9", "10.128.0.1", 0},
	{"192.168.1.7", "192.168.1.7", 1},
	{"192.168.1.7", "192.168.1.8", 0},
	{"0.0.0.0/0", "8.8.8.8", 1},
	{"0.0.0.0/0", "2001:db8::1", 0}, /* a v4 range never matches v6 */
	{"::/0", "1.2.3.4", 0},
	{"::/0", "2001:db8::1", 1},
	{"2001:db8::/32", "2001:db8:ffff:ffff::1", 1},
	{"2001:db8::/32", "2001:db9::1", 0},
	{"2001:db8::/65", "2001:db8::7fff:ffff:ffff:ffff", 1},
	{"2001:db8::/65", "2001:db8::8000:0:0:0", 0},
	{"::1", "::1", 1},
	{"::1", "::2", 0},
	{"10.0.0.0/8", "::ffff:10.1.2.3", 1}, /* mapped address is the v4 one */
	{"10.0.0.0/8", "not-an-ip", 0},
	{"10.0.0.0/8", "", 0},
	{"1.2.3.4, 5.6.7.0/24", "5.6.7.200", 1},
};

static void test_contains_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(contains_cases) / sizeof(*contains_cases); i++) {
		struct cidr_list l;

		assert_int_equal(cidr_list_parse(contains_cases[i].list, &l), 0);
		if (cidr_list_contains(&l, contains_cases[i].ip) != contains_cases[i].want)
			fail_msg("contains(%s, %s) != %d", contains_cases[i].list,
				 contains_cases[i].ip, contains_cases[i].want);
	}
	assert_int_equal(cidr_list_contains(NULL, "1.2.3.4"), 0);
}

static const char *parse_bad[] = {
	"10.0.0.0/33", "::/129",	   "abc",   "1.2.3.4/",	   "1.2.3.4/-1",  "1.2.3.4/8x",
	"1.2.3.4/ 8",  "10.0.0.0/8, nope", "1.2.3", "256.0.0.0/8", "10.0.0.0//8", "localhost",
};

static void test_parse_rejects(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(parse_bad) / sizeof(*parse_bad); i++) {
		struct cidr_list l;

		if (cidr_list_parse(parse_bad[i], &l) != BZ_ERR_INVALID)
			fail_msg("cidr_list_parse accepted \"%s\"", parse_bad[i]);
	}
}

static void test_parse_accepts(void **state)
{
	struct cidr_list l;

	(void)state;
	assert_int_equal(cidr_list_parse("", &l), 0);
	assert_int_equal(l.n, 0);

	assert_int_equal(cidr_list_parse("  10.0.0.0/8 ,\t::1 , 192.168.0.1  ", &l), 0);
	assert_int_equal(l.n, 3);
	assert_int_equal(l.items[0].family, AF_INET);
	assert_int_equal(l.items[0].prefix, 8);
	assert_int_equal(l.items[1].family, AF_INET6);
	assert_int_equal(l.items[1].prefix, 128); /* bare address: one host */
	assert_int_equal(l.items[2].family, AF_INET);
	assert_int_equal(l.items[2].prefix, 32);

	assert_int_equal(cidr_list_parse("0.0.0.0/0,::/0", &l), 0);
	assert_int_equal(l.n, 2);
	assert_int_equal(l.items[0].prefix, 0);
}

/* Builds "10.0.0.1,10.0.0.2,…" with N entries into BUF. */
static void make_list(unsigned n, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (unsigned i = 1; i <= n; i++) {
		int w = snprintf(buf + off, len - off, "%s10.0.%u.%u", i > 1 ? "," : "", i / 256,
				 i % 256);
		assert_true(w > 0 && (size_t)w < len - off);
		off += (size_t)w;
	}
}

static void test_parse_max_entries(void **state)
{
	struct cidr_list l;
	char buf[1024];

	(void)state;
	make_list(CIDR_LIST_MAX, buf, sizeof(buf));
	assert_int_equal(cidr_list_parse(buf, &l), 0);
	assert_int_equal(l.n, CIDR_LIST_MAX);
	make_list(CIDR_LIST_MAX + 1, buf, sizeof(buf));
	assert_int_equal(cidr_list_parse(buf, &l), BZ_ERR_INVALID);
}

static const struct {
	const char *list;
	int v4, v6; /* covers every IPv4 / IPv6 address */
} covers_cases[] = {
	{"", 0, 0},
	{"0.0.0.0/0", 1, 0},
	{"1.2.3.4/0", 1, 0}, /* host bits beyond the prefix do not matter */
	{"::/0", 0, 1},
	{"0.0.0.0/0, ::/0", 1, 1},
	{"0.0.0.0/1, 128.0.0.0/1", 1, 0},
	{"0.0.0.0/1, 128.0.0.0/2, 192.0.0.0/2", 1, 0},
	{"0.0.0.0/1, 128.0.0.0/2", 0, 0},
	{"0.0.0.0/1, 0.0.0.0/1", 0, 0},
	{"::/1, 8000::/1", 0, 1},
	{"::/1, 8000::/2, c000::/3", 0, 0},
	{"10.0.0.0/8, 127.0.0.1/32, ::1", 0, 0},
	{"0.0.0.0/1, 127.0.0.1, 128.0.0.0/1", 1, 0},
	{"255.255.255.255/32, 0.0.0.0/1, 128.0.0.0/2, 192.0.0.0/3, 224.0.0.0/3", 1, 0},
	{"255.255.255.254/32, 0.0.0.0/1, 128.0.0.0/2, 192.0.0.0/3, 224.0.0.0/4, "
	 "240.0.0.0/5, 248.0.0.0/6, 252.0.0.0/7, 254.0.0.0/8, 255.0.0.0/9, 255.128.0.0/10, "
	 "255.192.0.0/11, 255.224.0.0/12, 255.240.0.0/13, 255.248.0.0/14, 255.252.0.0/15, "
	 "255.254.0.0/16, 255.255.0.0/17, 255.255.128.0/18, 255.255.192.0/19, 255.255.224.0/20, "
	 "255.255.240.0/21, 255.255.248.0/22, 255.255.252.0/23, 255.255.254.0/24, "
	 "255.255.255.0/25, 255.255.255.128/26, 255.255.255.192/27, 255.255.255.224/28, "
	 "255.255.255.240/29, 255.255.255.248/30, 255.255.255.252/31",
	 0, 0}, /* all but 255.255.255.255 */
};

static void test_covers_all(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(covers_cases) / sizeof(*covers_cases); i++) {
		struct cidr_list l;

		assert_int_equal(cidr_list_parse(covers_cases[i].list, &l), 0);
		if (cidr_list_covers_all(&l, AF_INET) != covers_cases[i].v4 ||
		    cidr_list_covers_all(&l, AF_INET6) != covers_cases[i].v6)
			fail_msg("covers_all(%s) wrong", covers_cases[i].list);
	}
	assert_int_equal(cidr_list_covers_all(NULL, AF_INET), 0);
}

static void test_is_literal(void **state)
{
	(void)state;
	assert_int_equal(client_ip_is_literal("1.2.3.4"), 1);
	assert_int_equal(client_ip_is_literal("::1"), 1);
	assert_int_equal(client_ip_is_literal("::ffff:1.2.3.4"), 1);
	assert_int_equal(client_ip_is_literal("localhost"), 0);
	assert_int_equal(client_ip_is_literal("1.2.3"), 0);
	assert_int_equal(client_ip_is_literal("1.2.3.4 "), 0);
	assert_int_equal(client_ip_is_literal(""), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_resolve_table),
		cmocka_unit_test(test_resolve_overlong_xff),
		cmocka_unit_test(test_resolve_unusable_peer),
		cmocka_unit_test(test_contains_table),
		cmocka_unit_test(test_parse_rejects),
		cmocka_unit_test(test_parse_accepts),
		cmocka_unit_test(test_parse_max_entries),
		cmocka_unit_test(test_covers_all),
		cmocka_unit_test(test_is_literal),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
