/* Attack tests on outbound requests (server/outbound/outbound.c): where a
 * followed redirect sends the caller's credentials. Demonstrates a finding
 * of the security review; fails until outbound.c is fixed. */
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

/* A listener on 127.0.0.2: /redirect answers 302 to REDIRECT_TO, anything
 * else 200; remembers the last request. */
struct server {
	int fd, port;
	pthread_t thread;
	_Atomic int stop;
	char last_request[4096];
	char redirect_to[256];
};

static struct server first, second;

static void answer(struct server *s, int c)
{
	char req[4096] = "", resp[512];
	ssize_t n = 0, got;
	struct pollfd pfd = {.fd = c, .events = POLLIN};

	while (n < (ssize_t)sizeof(req) - 1 && poll(&pfd, 1, 2000) == 1 &&
	       (got = read(c, req + n, sizeof(req) - 1 - (size_t)n)) > 0) {
		n += got;
		req[n] = '\0';
		if (strstr(req, "\r\n\r\n") != NULL)
			break;
	}
	memcpy(s->last_request, req, sizeof(req));
	if (strstr(req, " /redirect ") != NULL)
		snprintf(resp, sizeof(resp),
			 "HTTP/1.1 302 Found\r\nLocation: %s\r\nContent-Length: 0\r\n"
			 "Connection: close\r\n\r\n",
			 s->redirect_to);
	else
		snprintf(resp, sizeof(resp),
			 "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
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
		answer(s, c);
		close(c);
	}
	return NULL;
}

static void server_start(struct server *s)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);

	memset(s, 0, sizeof(*s));
	s->fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(s->fd >= 0);
	assert_int_equal(inet_pton(AF_INET, "127.0.0.2", &sa.sin_addr), 1);
	assert_int_equal(bind(s->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(s->fd, 16), 0);
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
	server_start(&first);
	server_start(&second);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	server_stop(&first);
	server_stop(&second);
	return 0;
}

/* run_hops() compares only the host name of each hop with the first one
 * ("credentials never travel to another host"), so a redirect to the same
 * host on another port — another origin (RFC 6454), often another service,
 * and with https → http a downgrade to clear text — receives the caller's
 * Authorization and signature headers. libcurl's own rule
 * (CURLOPT_UNRESTRICTED_AUTH off) drops them on a host, port or scheme
 * change. */
static void test_credentials_not_sent_to_another_port(void **state)
{
	struct ssrf_policy p;
	char err[64], url[128];
	struct outbound_response out;

	(void)state;
	assert_int_equal(ssrf_policy_parse("127.0.0.2/32", &p, err, sizeof(err)), 0);
	snprintf(first.redirect_to, sizeof(first.redirect_to), "http://127.0.0.2:%d/ok",
		 second.port);
	snprintf(url, sizeof(url), "http://127.0.0.2:%d/redirect", first.port);
	const char *const headers[] = {"Authorization: Bearer s3cret", "X-Breeze-Signature: v1=ab",
				       NULL};
	struct outbound_request rq = {.url = url,
				      .headers = headers,
				      .follow_redirects = 1,
				      .total_timeout_ms = 3000};
	assert_int_equal(outbound_request(&p, &rq, &out), 0);
	assert_int_equal(out.status, 200);
	assert_int_equal(out.redirects, 1);
	assert_non_null(strstr(second.last_request, "GET /ok"));
	assert_null(strstr(second.last_request, "s3cret"));
	assert_null(strstr(second.last_request, "X-Breeze-Signature"));
	outbound_response_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_credentials_not_sent_to_another_port),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
