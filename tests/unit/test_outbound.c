/* Outbound requests through the SSRF guard (server/outbound/outbound.c,
 * checklist O1), over real sockets: a canary listener on 127.0.0.1 that no
 * refused URL may ever reach, and a small HTTP server on 127.0.0.2 that an
 * allow-list entry lets through (standing in for a public host). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/err.h"
#include "server/outbound/outbound.h"

/* A listener on ADDR with a thread answering each connection with the
 * response chosen by the request path. */
struct server {
	int fd;
	int port;
	pthread_t thread;
	_Atomic int connections;
	_Atomic int stop;
	char last_request[4096];
	char redirect_to[512]; /* Location for /redirect */
};

static struct server canary, receiver;

static void answer(struct server *s, int c)
{
	char req[4096] = "", resp[8192];
	ssize_t n = 0, got;
	struct pollfd pfd = {.fd = c, .events = POLLIN};

	/* Read until the end of the headers (bodies here are small and sent
	 * with them). */
	while (n < (ssize_t)sizeof(req) - 1 && poll(&pfd, 1, 2000) == 1 &&
	       (got = read(c, req + n, sizeof(req) - 1 - (size_t)n)) > 0) {
		n += got;
		req[n] = '\0';
		if (strstr(req, "\r\n\r\n") != NULL &&
		    (strncmp(req, "POST", 4) != 0 || strstr(req, "}") != NULL))
			break;
	}
	memcpy(s->last_request, req, sizeof(req));
	if (strncmp(req + 4, "/redirect", 9) == 0 || strncmp(req + 5, "/redirect", 9) == 0)
		snprintf(resp, sizeof(resp),
			 "HTTP/1.1 302 Found\r\nLocation: %s\r\nContent-Length: 0\r\n"
			 "Connection: close\r\n\r\n",
			 s->redirect_to);
	else if (strstr(req, " /big ") != NULL) {
		snprintf(resp, sizeof(resp),
			 "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\nConnection: close\r\n\r\n");
		if (write(c, resp, strlen(resp)) < 0)
			return;
		memset(resp, 'x', 5000);
		if (write(c, resp, 5000) < 0)
			return;
		return;
	} else if (strstr(req, " /slow ") != NULL) {
		usleep(1500 * 1000);
		return;
	} else
		snprintf(resp, sizeof(resp),
			 "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n"
			 "Connection: close\r\n\r\nok");
	if (write(c, resp, strlen(resp)) < 0)
		return;
}

static void *serve(void *arg)
{
	struct server *s = arg;
	struct pollfd pfd = {.fd = s->fd, .events = POLLIN};

	while (!atomic_load(&s->stop)) {
		if (poll(&pfd, 1, 50) != 1)
			continue;
		int c = accept(s->fd, NULL, NULL);
		if (c < 0)
			continue;
		atomic_fetch_add(&s->connections, 1);
		answer(s, c);
		close(c);
	}
	return NULL;
}

static void server_start(struct server *s, const char *addr)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	int one = 1;

	memset(s, 0, sizeof(*s));
	s->fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(s->fd >= 0);
	setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	assert_int_equal(inet_pton(AF_INET, addr, &sa.sin_addr), 1);
	assert_int_equal(bind(s->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(s->fd, 64), 0);
	assert_int_equal(getsockname(s->fd, (struct sockaddr *)&sa, &len), 0);
	s->port = ntohs(sa.sin_port);
	assert_int_equal(pthread_create(&s->thread, NULL, serve, s), 0);
}

static void server_stop(struct server *s)
{
	atomic_store(&s->stop, 1);
	pthread_join(s->thread, NULL);
	close(s->fd);
}

static int setup(void **state)
{
	(void)state;
	assert_int_equal(outbound_global_init(), 0);
	server_start(&canary, "127.0.0.1");
	server_start(&receiver, "127.0.0.2");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	server_stop(&canary);
	server_stop(&receiver);
	return 0;
}

/* The receiver stands in for a public host: allow-listed by address. */
static struct ssrf_policy receiver_policy(void)
{
	struct ssrf_policy p;
	char err[128];

	assert_int_equal(ssrf_policy_parse("127.0.0.2/32", &p, err, sizeof(err)), 0);
	return p;
}

/* TMPL with its "%d" replaced by PORT, into OUT (LEN bytes). */
static void expand(char *out, size_t len, const char *tmpl, int port)
{
	const char *at = strstr(tmpl, "%d");

	if (at == NULL) {
		snprintf(out, len, "%s", tmpl);
		return;
	}
	snprintf(out, len, "%.*s%d%s", (int)(at - tmpl), tmpl, port, at + 2);
}

/* Requests URL (a template with %d for the port) under P. */
static int fetch(const struct ssrf_policy *p, const char *tmpl, int port,
		 const char *const *resolve, struct outbound_response *out)
{
	char url[512];

	expand(url, sizeof(url), tmpl, port);
	const struct outbound_request rq = {.url = url,
					    .connect_timeout_ms = 1000,
					    .total_timeout_ms = 3000,
					    .test_resolve = resolve};
	return outbound_request(p, &rq, out);
}

static void test_refused_urls_never_reach_the_canary(void **state)
{
	static const struct {
		const char *url;
		enum ssrf_kind kind;
	} table[] = {
		{"http://127.0.0.1:%d/", SSRF_BLOCKED_ADDRESS},
		{"http://127.1:%d/", SSRF_BLOCKED_ADDRESS},
		{"http://127.0.1:%d/", SSRF_BLOCKED_ADDRESS},
		{"http://2130706433:%d/", SSRF_BLOCKED_ADDRESS},
		{"http://017700000001:%d/", SSRF_BLOCKED_ADDRESS},
		{"http://0x7f000001:%d/", SSRF_BLOCKED_ADDRESS},
		{"http://0x7f.1:%d/", SSRF_BLOCKED_ADDRESS},
		{"http://0x7f.0.0.1:%d/", SSRF_BLOCKED_ADDRESS},
		{"http://0177.0.0.1:%d/", SSRF_BLOCKED_ADDRESS},
		{"http://127.000.000.001:%d/", SSRF_BLOCKED_ADDRESS},
		{"http://[::1]:%d/", SSRF_BLOCKED_ADDRESS},
		{"http://[0:0:0:0:0:0:0:1]:%d/", SSRF_BLOCKED_ADDRESS},
		{"http://[::ffff:127.0.0.1]:%d/", SSRF_BLOCKED_ADDRESS},
		{"http://[::ffff:7f00:1]:%d/", SSRF_BLOCKED_ADDRESS},
		{"http://[0:0:0:0:0:ffff:127.0.0.1]:%d/", SSRF_BLOCKED_ADDRESS},
		{"http://[::127.0.0.1]:%d/", SSRF_BLOCKED_ADDRESS},
		{"http://[64:ff9b::127.0.0.1]:%d/", SSRF_BLOCKED_ADDRESS},
		{"http://[64:ff9b::7f00:1]:%d/", SSRF_BLOCKED_ADDRESS},
		{"http://[2002:7f00:1::1]:%d/", SSRF_BLOCKED_ADDRESS},
		{"http://0.0.0.0:%d/", SSRF_BLOCKED_ADDRESS},
		{"http://0:%d/", SSRF_BLOCKED_ADDRESS},
		{"http://[::]:%d/", SSRF_BLOCKED_ADDRESS},
		{"http://localhost:%d/", SSRF_BLOCKED_HOST},
		{"http://LOCALHOST:%d/", SSRF_BLOCKED_HOST},
		{"http://localhost.:%d/", SSRF_BLOCKED_HOST},
		{"http://LocalHost.:%d/x?y#z", SSRF_BLOCKED_HOST},
		{"http://api.localhost:%d/", SSRF_BLOCKED_HOST},
		{"http://good.example@127.0.0.1:%d/", SSRF_BAD_URL},
		{"http://user:pass@127.0.0.1:%d/", SSRF_BAD_URL},
		{"http://127.0.0.1:%d@good.example/", SSRF_BAD_URL},
		{"https://127.0.0.1:%d/", SSRF_BLOCKED_ADDRESS},
		{"HTTP://127.0.0.1:%d/", SSRF_BLOCKED_ADDRESS},
		{"file:///etc/passwd#%d", SSRF_BAD_SCHEME},
		{"gopher://127.0.0.1:%d/_x", SSRF_BAD_SCHEME},
		{"dict://127.0.0.1:%d/info", SSRF_BAD_SCHEME},
		{"ftp://127.0.0.1:%d/", SSRF_BAD_SCHEME},
		{"ldap://127.0.0.1:%d/", SSRF_BAD_SCHEME},
		{"telnet://127.0.0.1:%d/", SSRF_BAD_SCHEME},
		{"tftp://127.0.0.1:%d/", SSRF_BAD_SCHEME},
		{"smtp://127.0.0.1:%d/", SSRF_BAD_SCHEME},
		{"javascript:alert(%d)", SSRF_BAD_SCHEME},
		{"//127.0.0.1:%d/", SSRF_BAD_SCHEME}, /* no scheme */
		{"http://169.254.169.254/latest/meta-data/?%d", SSRF_BLOCKED_ADDRESS},
		{"http://[fd00:ec2::254]/latest/?%d", SSRF_BLOCKED_ADDRESS},
		{"http://[::ffff:169.254.169.254]/?%d", SSRF_BLOCKED_ADDRESS},
		{"http://[::ffff:a9fe:a9fe]/?%d", SSRF_BLOCKED_ADDRESS},
		{"http://2852039166/?%d", SSRF_BLOCKED_ADDRESS},
		{"http://0xa9.0xfe.0xa9.0xfe/?%d", SSRF_BLOCKED_ADDRESS},
		{"http://100.100.100.200/?%d", SSRF_BLOCKED_ADDRESS},
		{"http://metadata.google.internal/?%d", SSRF_BLOCKED_HOST},
		{"http://METADATA.google.internal./?%d", SSRF_BLOCKED_HOST},
		{"http://metadata.azure.com/?%d", SSRF_BLOCKED_HOST},
		{"http://10.0.0.1:%d/", SSRF_BLOCKED_ADDRESS},
		{"http://172.16.0.1:%d/", SSRF_BLOCKED_ADDRESS},
		{"http://192.168.0.1:%d/", SSRF_BLOCKED_ADDRESS},
		{"http://100.64.0.1:%d/", SSRF_BLOCKED_ADDRESS},
		{"http://198.18.0.1:%d/", SSRF_BLOCKED_ADDRESS},
		{"http://192.0.2.1:%d/", SSRF_BLOCKED_ADDRESS},
		{"http://224.0.0.1:%d/", SSRF_BLOCKED_ADDRESS},
		{"http://255.255.255.255:%d/", SSRF_BLOCKED_ADDRESS},
		{"http://240.0.0.1:%d/", SSRF_BLOCKED_ADDRESS},
		{"http://[fe80::1]:%d/", SSRF_BLOCKED_ADDRESS},
		{"http://[fc00::1]:%d/", SSRF_BLOCKED_ADDRESS},
		{"http://[ff02::1]:%d/", SSRF_BLOCKED_ADDRESS},
		{"http://[2001:db8::1]:%d/", SSRF_BLOCKED_ADDRESS},
		{"not a url %d", SSRF_BAD_SCHEME},
		{"http://exa mple.com:%d/", SSRF_BAD_URL},
	};
	(void)state;
	const struct ssrf_policy p = {0};
	assert_true(sizeof(table) / sizeof(*table) >= 60);
	for (size_t i = 0; i < sizeof(table) / sizeof(*table); i++) {
		struct outbound_response out;
		int rc = fetch(&p, table[i].url, canary.port, NULL, &out);
		if (rc == 0 || out.kind != table[i].kind)
			fail_msg("%s: rc %d, kind %s (want %s): %s", table[i].url, rc,
				 ssrf_kind_name(out.kind), ssrf_kind_name(table[i].kind),
				 out.error);
		outbound_response_free(&out);
	}
	assert_int_equal(atomic_load(&canary.connections), 0);
	assert_true(outbound_blocked_total(SSRF_BLOCKED_ADDRESS) > 0);
}

/* Names that resolve to blocked addresses: DNS answers are judged at
 * connect time like literals. */
static void test_names_resolving_to_blocked_addresses(void **state)
{
	char r1[64], r2[64], r3[64];
	const struct ssrf_policy p = {0};
	struct outbound_response out;

	(void)state;
	snprintf(r1, sizeof(r1), "internal.example:%d:127.0.0.1", canary.port);
	snprintf(r2, sizeof(r2), "v6.example:%d:::1", canary.port);
	snprintf(r3, sizeof(r3), "mixed.example:%d:10.0.0.1,127.0.0.1", canary.port);
	const char *const resolve[] = {r1, r2, r3, NULL};
	const char *const urls[] = {"http://internal.example:%d/", "http://v6.example:%d/",
				    "http://mixed.example:%d/", "http://INTERNAL.Example:%d/"};
	for (size_t i = 0; i < sizeof(urls) / sizeof(*urls); i++) {
		int rc = fetch(&p, urls[i], canary.port, resolve, &out);
		if (rc != BZ_ERR_FORBIDDEN)
			fail_msg("%s: rc %d kind %s: %s", urls[i], rc, ssrf_kind_name(out.kind),
				 out.error);
		assert_int_equal(out.kind, SSRF_BLOCKED_ADDRESS);
		assert_true(out.blocked_address[0] != '\0');
		outbound_response_free(&out);
	}
	/* The system resolver too: this machine's own name is a loopback
	 * address in /etc/hosts on Debian. */
	char host[256], url[300];
	if (gethostname(host, sizeof(host)) == 0 && strchr(host, '.') == NULL) {
		snprintf(url, sizeof(url), "http://%s:%s/", host, "%d");
		int rc = fetch(&p, url, canary.port, NULL, &out);
		assert_int_not_equal(rc, 0);
		outbound_response_free(&out);
	}
	assert_int_equal(atomic_load(&canary.connections), 0);
}

/* DNS rebinding: the same name first answers an allowed address, then a
 * blocked one. Each request resolves again and each connection is judged. */
static void test_dns_rebinding(void **state)
{
	char first[64], second[64];
	const struct ssrf_policy p = receiver_policy();
	struct outbound_response out;

	(void)state;
	snprintf(first, sizeof(first), "rebind.example:%d:127.0.0.2", receiver.port);
	snprintf(second, sizeof(second), "rebind.example:%d:127.0.0.1", receiver.port);
	const char *const r1[] = {first, NULL}, *const r2[] = {second, NULL};
	int before = atomic_load(&receiver.connections);
	assert_int_equal(fetch(&p, "http://rebind.example:%d/", receiver.port, r1, &out), 0);
	assert_int_equal(out.status, 200);
	assert_string_equal(out.body, "ok");
	outbound_response_free(&out);
	assert_int_equal(atomic_load(&receiver.connections), before + 1);
	/* The canary does not listen on the receiver's port, but a connection
	 * attempt there would still be a connection to 127.0.0.1. */
	assert_int_equal(fetch(&p, "http://rebind.example:%d/", receiver.port, r2, &out),
			 BZ_ERR_FORBIDDEN);
	assert_int_equal(out.kind, SSRF_BLOCKED_ADDRESS);
	assert_string_equal(out.blocked_address, "127.0.0.1");
	assert_string_equal(out.blocked_reason, "loopback");
	outbound_response_free(&out);
}

static void test_redirects(void **state)
{
	const struct ssrf_policy p = receiver_policy();
	struct outbound_response out;
	char url[128];

	(void)state;
	snprintf(receiver.redirect_to, sizeof(receiver.redirect_to), "http://127.0.0.1:%d/",
		 canary.port);
	snprintf(url, sizeof(url), "http://127.0.0.2:%d/redirect", receiver.port);
	/* Not followed unless asked: the 302 is the answer. */
	struct outbound_request rq = {.url = url, .total_timeout_ms = 3000};
	assert_int_equal(outbound_request(&p, &rq, &out), 0);
	assert_int_equal(out.status, 302);
	assert_int_equal(out.redirects, 0);
	outbound_response_free(&out);
	/* Followed: the hop to a blocked address is refused. */
	rq.follow_redirects = 1;
	assert_int_equal(outbound_request(&p, &rq, &out), BZ_ERR_FORBIDDEN);
	assert_int_equal(out.kind, SSRF_BLOCKED_ADDRESS);
	assert_int_equal(out.redirects, 1);
	outbound_response_free(&out);
	/* ...and to a blocked name, and to another scheme. */
	snprintf(receiver.redirect_to, sizeof(receiver.redirect_to), "http://localhost:%d/",
		 canary.port);
	assert_int_equal(outbound_request(&p, &rq, &out), BZ_ERR_FORBIDDEN);
	assert_int_equal(out.kind, SSRF_BLOCKED_HOST);
	outbound_response_free(&out);
	snprintf(receiver.redirect_to, sizeof(receiver.redirect_to), "file:///etc/passwd");
	assert_int_equal(outbound_request(&p, &rq, &out), BZ_ERR_FORBIDDEN);
	assert_int_equal(out.kind, SSRF_BAD_SCHEME);
	outbound_response_free(&out);
	/* A loop of redirects ends after five hops. */
	snprintf(receiver.redirect_to, sizeof(receiver.redirect_to), "/redirect");
	assert_int_equal(outbound_request(&p, &rq, &out), BZ_ERR_FORBIDDEN);
	assert_int_equal(out.kind, SSRF_TOO_MANY_REDIRECTS);
	assert_int_equal(out.redirects, OUTBOUND_MAX_REDIRECTS);
	outbound_response_free(&out);
	assert_int_equal(atomic_load(&canary.connections), 0);
}

/* Credentials never travel to another host: the caller's headers go only
 * to the host of the URL it gave. */
static void test_headers_dropped_on_cross_host_redirect(void **state)
{
	char url[128], r[64];
	struct ssrf_policy p;
	char err[64];
	struct outbound_response out;

	(void)state;
	assert_int_equal(ssrf_policy_parse("127.0.0.2/32,other.example", &p, err, sizeof(err)), 0);
	snprintf(r, sizeof(r), "other.example:%d:127.0.0.2", receiver.port);
	const char *const resolve[] = {r, NULL};
	const char *const headers[] = {"Authorization: Bearer s3cret", "X-Breeze-Signature: v1=ab",
				       NULL};
	snprintf(receiver.redirect_to, sizeof(receiver.redirect_to), "http://other.example:%d/ok",
		 receiver.port);
	snprintf(url, sizeof(url), "http://127.0.0.2:%d/redirect", receiver.port);
	struct outbound_request rq = {.url = url,
				      .headers = headers,
				      .follow_redirects = 1,
				      .total_timeout_ms = 3000,
				      .test_resolve = resolve};
	assert_int_equal(outbound_request(&p, &rq, &out), 0);
	assert_int_equal(out.status, 200);
	assert_int_equal(out.redirects, 1);
	assert_null(strstr(receiver.last_request, "s3cret"));
	assert_null(strstr(receiver.last_request, "X-Breeze-Signature"));
	assert_non_null(strstr(receiver.last_request, "Host: other.example"));
	outbound_response_free(&out);
	/* Same host: they are sent. */
	snprintf(url, sizeof(url), "http://127.0.0.2:%d/ok", receiver.port);
	rq.follow_redirects = 0;
	assert_int_equal(outbound_request(&p, &rq, &out), 0);
	assert_non_null(strstr(receiver.last_request, "Authorization: Bearer s3cret"));
	outbound_response_free(&out);
}

static void test_post_size_cap_and_timeout(void **state)
{
	const struct ssrf_policy p = receiver_policy();
	struct outbound_response out;
	char url[128];

	(void)state;
	snprintf(url, sizeof(url), "http://127.0.0.2:%d/hook", receiver.port);
	const char *const headers[] = {"Content-Type: application/json", NULL};
	struct outbound_request rq = {.method = "POST",
				      .url = url,
				      .headers = headers,
				      .body = "{\"a\":1}",
				      .body_len = 7,
				      .total_timeout_ms = 3000};
	assert_int_equal(outbound_request(&p, &rq, &out), 0);
	assert_int_equal(out.status, 200);
	assert_non_null(strstr(receiver.last_request, "POST /hook HTTP/1.1"));
	assert_non_null(strstr(receiver.last_request, "{\"a\":1}"));
	outbound_response_free(&out);

	snprintf(url, sizeof(url), "http://127.0.0.2:%d/big", receiver.port);
	struct outbound_request big = {.url = url, .max_response_bytes = 1000};
	assert_int_equal(outbound_request(&p, &big, &out), BZ_ERR_UNAVAILABLE);
	assert_int_equal(out.kind, SSRF_RESPONSE_TOO_LARGE);
	assert_null(out.body);
	outbound_response_free(&out);

	snprintf(url, sizeof(url), "http://127.0.0.2:%d/slow", receiver.port);
	struct outbound_request slow = {.url = url, .total_timeout_ms = 300};
	assert_int_equal(outbound_request(&p, &slow, &out), BZ_ERR_UNAVAILABLE);
	assert_int_equal(out.kind, SSRF_TIMEOUT);
	outbound_response_free(&out);

	/* A name that does not resolve. */
	assert_int_equal(fetch(&p, "http://does-not-exist.invalid:%d/", 80, NULL, &out),
			 BZ_ERR_UNAVAILABLE);
	assert_int_equal(out.kind, SSRF_DNS_FAILURE);
	outbound_response_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_refused_urls_never_reach_the_canary),
		cmocka_unit_test(test_names_resolving_to_blocked_addresses),
		cmocka_unit_test(test_dns_rebinding),
		cmocka_unit_test(test_redirects),
		cmocka_unit_test(test_headers_dropped_on_cross_host_redirect),
		cmocka_unit_test(test_post_size_cap_and_timeout),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
