/* Unit tests for src/agent/client.c: URL validation and joining, request
 * bodies, response parsing, Retry-After, and one real POST against an
 * in-process one-shot HTTP server on 127.0.0.1. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "agent/client.h"
#include "agent/config.h"

/* --- URLs ------------------------------------------------------------------ */

static const struct {
	const char *in;
	const char *want; /* NULL: must be rejected */
} url_cases[] = {
	{"https://rmm.example.com", "https://rmm.example.com"},
	{"https://rmm.example.com/", "https://rmm.example.com"},
	{"https://rmm.example.com:8443/base/", "https://rmm.example.com:8443/base"},
	{"http://127.0.0.1:3001", "http://127.0.0.1:3001"},
	{"HTTPS://RMM.example.com", "https://RMM.example.com"},
	{"ftp://rmm.example.com", NULL},
	{"file:///etc/passwd", NULL},
	{"gopher://rmm.example.com", NULL},
	{"javascript:alert(1)", NULL},
	{"rmm.example.com", NULL},
	{"", NULL},
	{"https://", NULL},
	{"https://user:pass@rmm.example.com", NULL},
	{"https://rmm.example.com/?x=1", NULL},
	{"https://rmm.example.com/#frag", NULL},
	{"https://rmm.example.com\r\nHost: evil", NULL},
};

static void test_normalize_url(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(url_cases) / sizeof(url_cases[0]); i++) {
		char *out = NULL, err[128] = "";
		int rc = agent_http_normalize_url(url_cases[i].in, &out, err, sizeof(err));

		if (url_cases[i].want == NULL) {
			if (rc == 0)
				fail_msg("accepted %s as %s", url_cases[i].in, out);
			assert_int_equal(rc, -EINVAL);
			assert_true(err[0] != '\0');
			assert_null(out);
		} else {
			if (rc != 0 || strcmp(out, url_cases[i].want) != 0)
				fail_msg("%s: rc %d, got %s, want %s (%s)", url_cases[i].in, rc,
					 out ? out : "-", url_cases[i].want, err);
		}
		free(out);
	}
}

static void test_join(void **state)
{
	char *out = NULL;

	(void)state;
	assert_int_equal(agent_http_join("https://h.example", "/api/v1/agents/enroll", &out), 0);
	assert_string_equal(out, "https://h.example/api/v1/agents/enroll");
	free(out);
	/* A path prefix (reverse proxy sub-path) is kept. */
	assert_int_equal(agent_http_join("https://h.example:8443/rmm",
					 "/api/v1/agents/a-1/heartbeat", &out),
			 0);
	assert_string_equal(out, "https://h.example:8443/rmm/api/v1/agents/a-1/heartbeat");
	free(out);
	assert_int_equal(agent_http_join("https://h.example/", "no-slash", &out), -EINVAL);
	assert_null(out);
}

/* --- Retry-After ------------------------------------------------------------ */

static void test_parse_retry_after(void **state)
{
	/* Wed, 21 Oct 2015 07:28:00 GMT */
	const long long t = 1445412480LL;

	(void)state;
	assert_true(agent_http_parse_retry_after("120", 0) == 120);
	assert_true(agent_http_parse_retry_after(" 5 ", 0) == 5);
	assert_true(agent_http_parse_retry_after("0", 0) == 0);
	assert_true(agent_http_parse_retry_after("99999999999999999999999", 0) == 1000000000LL);
	assert_true(agent_http_parse_retry_after("-5", 0) == -1);
	assert_true(agent_http_parse_retry_after("1.5", 0) == -1);
	assert_true(agent_http_parse_retry_after("12abc", 0) == -1);
	assert_true(agent_http_parse_retry_after("soon", 0) == -1);
	assert_true(agent_http_parse_retry_after("", 0) == -1);
	assert_true(agent_http_parse_retry_after(NULL, 0) == -1);
	assert_true(agent_http_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", t - 90) == 90);
	assert_true(agent_http_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", t + 90) == 0);
}

/* --- bodies ------------------------------------------------------------------- */

static struct agent_host sample_host(void)
{
	struct agent_host h;

	memset(&h, 0, sizeof(h));
	snprintf(h.hostname, sizeof(h.hostname), "web-01");
	snprintf(h.os_type, sizeof(h.os_type), "linux");
	snprintf(h.os_version, sizeof(h.os_version), "Debian GNU/Linux 12 (bookworm)");
	snprintf(h.kernel, sizeof(h.kernel), "6.1.0-18-amd64");
	snprintf(h.arch, sizeof(h.arch), "x86_64");
	snprintf(h.cpu_model, sizeof(h.cpu_model), "AMD EPYC");
	h.cpu_count = 4;
	h.mem_total_bytes = 8ULL << 30;
	h.disk_total_bytes = 100ULL << 30;
	return h;
}

/* Asserts that OBJ has exactly the keys in KEYS (NULL-terminated). */
static void assert_keys(const json_t *obj, const char *const *keys)
{
	size_t n = 0;

	assert_true(json_is_object(obj));
	for (; keys[n] != NULL; n++)
		if (json_object_get(obj, keys[n]) == NULL)
			fail_msg("missing key %s", keys[n]);
	assert_int_equal(json_object_size(obj), n);
}

static void test_enroll_body(void **state)
{
	static const char *const top[] = {"enrollmentKey", "enrollmentSecret", "hostname",
					  "osType",	   "osVersion",	       "architecture",
					  "agentVersion",  "hardware",	       NULL};
	static const char *const hw[] = {"cpuCount", "memoryTotalBytes", "diskTotalBytes",
					 "kernel",   "cpuModel",	 NULL};
	struct agent_host h = sample_host();
	json_t *b;

	(void)state;
	b = agent_http_enroll_body("ek_123", "sec", &h);
	assert_non_null(b);
	assert_keys(b, top);
	assert_keys(json_object_get(b, "hardware"), hw);
	assert_string_equal(json_string_value(json_object_get(b, "enrollmentKey")), "ek_123");
	assert_string_equal(json_string_value(json_object_get(b, "enrollmentSecret")), "sec");
	assert_string_equal(json_string_value(json_object_get(b, "osType")), "linux");
	assert_string_equal(json_string_value(json_object_get(b, "agentVersion")), AGENT_VERSION);
	assert_true(json_integer_value(
			    json_object_get(json_object_get(b, "hardware"), "memoryTotalBytes")) ==
		    (json_int_t)(8ULL << 30));
	agent_http_json_cleanse(b);
	assert_string_equal(json_string_value(json_object_get(b, "enrollmentKey")), "");
	json_decref(b);

	/* Without a secret the field is left out. */
	b = agent_http_enroll_body("ek_123", NULL, &h);
	assert_null(json_object_get(b, "enrollmentSecret"));
	json_decref(b);
}

static void test_heartbeat_body(void **state)
{
	static const char *const top[] = {"status",   "agentVersion", "uptimeSeconds",
					  "hostname", "osType",	      "osVersion",
					  "kernel",   "architecture", "metrics",
					  NULL};
	static const char *const mx[] = {"cpuPercent",
					 "memoryUsedBytes",
					 "memoryTotalBytes",
					 "diskUsedBytes",
					 "diskTotalBytes",
					 "load1",
					 "load5",
					 "load15",
					 "cpuCount",
					 NULL};
	struct agent_host h = sample_host();
	struct agent_metrics m = {12.5, 1000, 2000, 3000, 4000, 0.5, 0.25, 0.125, 4, 3600};
	json_t *b = agent_http_heartbeat_body(&h, &m);

	(void)state;
	assert_non_null(b);
	assert_keys(b, top);
	assert_keys(json_object_get(b, "metrics"), mx);
	assert_string_equal(json_string_value(json_object_get(b, "status")), "online");
	assert_int_equal(json_integer_value(json_object_get(b, "uptimeSeconds")), 3600);
	assert_true(json_real_value(json_object_get(json_object_get(b, "metrics"), "cpuPercent")) ==
		    12.5);
	assert_int_equal(json_integer_value(
				 json_object_get(json_object_get(b, "metrics"), "diskTotalBytes")),
			 4000);
	json_decref(b);
}

/* --- responses ---------------------------------------------------------------- */

static json_t *parse(const char *s)
{
	json_t *j = json_loads(s, 0, NULL);

	assert_non_null(j);
	return j;
}

static void test_parse_enroll(void **state)
{
	static const char *bad[] = {
		"{}",
		"[]",
		"{\"agentId\":\"a1\"}",
		"{\"authToken\":\"brz_x\"}",
		"{\"agentId\":\"../x\",\"authToken\":\"brz_x\"}",
		"{\"agentId\":\"a1\",\"authToken\":\"brz x\"}",
		"{\"agentId\":\"a1\",\"authToken\":\"brz_x\\r\\nX: y\"}",
		"{\"agentId\":5,\"authToken\":\"brz_x\"}",
		"{\"agentId\":\"a1\",\"authToken\":\"brz_x\",\"orgId\":7}",
	};
	struct agent_enroll_result r;
	json_t *j;

	(void)state;
	j = parse(
		"{\"agentId\":\"a1\",\"authToken\":\"brz_tok\",\"orgId\":\"o1\",\"siteId\":\"s1\","
		"\"config\":{\"heartbeatIntervalSeconds\":30}}");
	assert_int_equal(agent_http_parse_enroll(j, &r), 0);
	assert_string_equal(r.agent_id, "a1");
	assert_string_equal(r.auth_token, "brz_tok");
	assert_string_equal(r.org_id, "o1");
	assert_string_equal(r.site_id, "s1");
	assert_int_equal(r.heartbeat_interval_s, 30);
	agent_http_enroll_result_free(&r);
	assert_null(r.auth_token);
	json_decref(j);

	j = parse(
		"{\"agentId\":\"a1\",\"authToken\":\"brz_tok\",\"config\":{\"heartbeatIntervalSeconds\":1}}");
	assert_int_equal(agent_http_parse_enroll(j, &r), 0);
	assert_int_equal(r.heartbeat_interval_s, AGENT_INTERVAL_MIN_S);
	assert_null(r.org_id);
	agent_http_enroll_result_free(&r);
	json_decref(j);

	j = parse("{\"agentId\":\"a1\",\"authToken\":\"brz_tok\"}");
	assert_int_equal(agent_http_parse_enroll(j, &r), 0);
	assert_int_equal(r.heartbeat_interval_s, AGENT_INTERVAL_DEFAULT_S);
	agent_http_enroll_result_free(&r);
	json_decref(j);

	assert_int_equal(agent_http_parse_enroll(NULL, &r), -EBADMSG);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		j = parse(bad[i]);
		if (agent_http_parse_enroll(j, &r) != -EBADMSG)
			fail_msg("accepted enrolment response %s", bad[i]);
		assert_null(r.agent_id);
		assert_null(r.auth_token);
		json_decref(j);
	}
}

static void test_parse_heartbeat(void **state)
{
	long iv;
	int rot;
	json_t *j;

	(void)state;
	j = parse("{\"config\":{\"heartbeatIntervalSeconds\":120},\"commands\":[]}");
	assert_int_equal(agent_http_parse_heartbeat(j, &iv, &rot), 0);
	assert_int_equal(iv, 120);
	assert_int_equal(rot, 0);
	json_decref(j);

	j = parse("{\"config\":{\"heartbeatIntervalSeconds\":60},\"commands\":[],"
		  "\"rotateToken\":true}");
	assert_int_equal(agent_http_parse_heartbeat(j, &iv, &rot), 0);
	assert_int_equal(rot, 1);
	assert_int_equal(iv, 60);
	json_decref(j);

	/* Only a JSON true asks for a rotation. */
	j = parse("{\"config\":{\"heartbeatIntervalSeconds\":45},\"rotateToken\":\"true\"}");
	assert_int_equal(agent_http_parse_heartbeat(j, &iv, &rot), 0);
	assert_int_equal(rot, 0);
	assert_int_equal(iv, 45);
	json_decref(j);

	j = parse("{\"commands\":[],\"rotateToken\":false}");
	assert_int_equal(agent_http_parse_heartbeat(j, &iv, &rot), 0);
	assert_int_equal(iv, 0);
	assert_int_equal(rot, 0);
	json_decref(j);

	j = parse("{\"config\":{\"heartbeatIntervalSeconds\":\"60\"}}");
	assert_int_equal(agent_http_parse_heartbeat(j, &iv, &rot), 0);
	assert_int_equal(iv, 0);
	json_decref(j);
}

static void test_parse_rotation(void **state)
{
	const char *bad[] = {"[]",
			     "{}",
			     "{\"authToken\":null}",
			     "{\"authToken\":5}",
			     "{\"authToken\":\"brz\\nbad\"}",
			     "{\"authToken\":\"\"}"};
	char *tok;
	json_t *j;

	(void)state;
	j = parse("{\"authToken\":\"brz_new\",\"expiresAt\":\"2026-12-01T16:00:00Z\"}");
	assert_int_equal(agent_http_parse_rotation(j, &tok), 0);
	assert_string_equal(tok, "brz_new");
	agent_config_free_token(tok);
	json_decref(j);
	assert_int_equal(agent_http_parse_rotation(NULL, &tok), -EBADMSG);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		j = parse(bad[i]);
		if (agent_http_parse_rotation(j, &tok) != -EBADMSG)
			fail_msg("accepted rotation response %s", bad[i]);
		assert_null(tok);
		json_decref(j);
	}
}

static void test_describe_error(void **state)
{
	struct agent_http_result res = {0};
	char buf[256];

	(void)state;
	res.status = 401;
	res.body = parse(
		"{\"error\":{\"code\":\"invalid_key\",\"message\":\"Key expired\"},\"reason\":\"expired\"}");
	agent_http_describe_error(&res, buf, sizeof(buf));
	assert_string_equal(buf, "HTTP 401 invalid_key: Key expired (reason: expired)");
	agent_http_result_free(&res);
	res.status = 502;
	agent_http_describe_error(&res, buf, sizeof(buf));
	assert_string_equal(buf, "HTTP 502");
}

/* --- one real request --------------------------------------------------------- */

struct one_shot {
	int lfd;
	const char *response;
	char request[8192];
	size_t request_len;
};

static void *serve_one(void *arg)
{
	struct one_shot *s = arg;
	int fd = accept(s->lfd, NULL, NULL);

	if (fd < 0)
		return NULL;
	/* Read headers, then Content-Length bytes of body. */
	for (;;) {
		ssize_t n = read(fd, s->request + s->request_len,
				 sizeof(s->request) - 1 - s->request_len);
		if (n <= 0)
			break;
		s->request_len += (size_t)n;
		s->request[s->request_len] = '\0';
		char *hdr_end = strstr(s->request, "\r\n\r\n");
		char *cl = strcasestr(s->request, "Content-Length:");
		if (hdr_end != NULL && cl != NULL &&
		    s->request_len >=
			    (size_t)(hdr_end + 4 - s->request) + strtoul(cl + 15, NULL, 10))
			break;
	}
	if (write(fd, s->response, strlen(s->response)) < 0)
		s->request_len = 0;
	close(fd);
	return NULL;
}

static int listen_local(int *port)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 1), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

/* Serves HEAD (status line and headers, each ending in CRLF) followed by
 * Content-Length and BODY to one POST made with BEARER. */
static void post_once(const char *head, const char *rbody, const char *bearer, struct one_shot *s,
		      struct agent_http_result *res, int *rc)
{
	static char response[4096];
	pthread_t t;
	char url[128];
	int port;
	json_t *body = json_pack("{s:s}", "status", "online");

	memset(s, 0, sizeof(*s));
	snprintf(response, sizeof(response), "%sContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
		 head, strlen(rbody), rbody);
	s->response = response;
	s->lfd = listen_local(&port);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/v1/agents/a1/heartbeat", port);
	assert_int_equal(pthread_create(&t, NULL, serve_one, s), 0);
	*rc = agent_http_post_json(url, bearer, body, NULL, res);
	pthread_join(t, NULL);
	close(s->lfd);
	json_decref(body);
}

static void test_post_429_retry_after(void **state)
{
	struct one_shot s;
	struct agent_http_result res;
	int rc;

	(void)state;
	post_once(
		"HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nRetry-After: 17\r\n",
		"{\"error\":{\"code\":\"rate_limited\",\"message\":\"slow\"}}\n",
		"brz_secret_token", &s, &res, &rc);
	assert_int_equal(rc, 0);
	assert_int_equal(res.status, 429);
	assert_true(res.retry_after_s == 17);
	assert_non_null(res.body);
	/* What went over the wire. */
	assert_non_null(strstr(s.request, "POST /api/v1/agents/a1/heartbeat HTTP/1.1\r\n"));
	assert_non_null(strcasestr(s.request, "\r\nContent-Type: application/json\r\n"));
	assert_non_null(strstr(s.request, "\r\nAuthorization: Bearer brz_secret_token\r\n"));
	assert_non_null(strstr(s.request, "\r\n\r\n{\"status\":\"online\"}"));
	agent_http_result_free(&res);
}

static void test_post_200_and_errors(void **state)
{
	struct one_shot s;
	struct agent_http_result res;
	int rc;
	json_t *body = json_object();

	(void)state;
	post_once("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n",
		  "{\"config\":{\"heartbeatIntervalSeconds\":60},\"commands\":[]}\n", NULL, &s,
		  &res, &rc);
	assert_int_equal(rc, 0);
	assert_int_equal(res.status, 200);
	assert_true(res.retry_after_s == -1);
	assert_null(strcasestr(s.request, "Authorization:"));
	assert_non_null(json_object_get(res.body, "config"));
	agent_http_result_free(&res);

	/* Nothing listening: a transport error, not a status. */
	int port, fd = listen_local(&port);
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
	close(fd);
	assert_int_equal(agent_http_post_json(url, NULL, body, NULL, &res), -EIO);
	assert_int_equal(res.status, 0);
	assert_true(res.error[0] != '\0');
	agent_http_result_free(&res);

	/* A token that would inject a header is refused before sending. */
	assert_int_equal(agent_http_post_json(url, "brz\r\nX-Evil: 1", body, NULL, &res), -EINVAL);
	agent_http_result_free(&res);
	json_decref(body);
}

/* Enrolment sends one fresh Idempotency-Key per attempt (agent/main.c
 * reuses it for its retry); a malformed one is refused before sending. */
static void test_post_idempotency_key(void **state)
{
	static const char response[] = "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
				       "Content-Length: 2\r\nConnection: close\r\n\r\n{}";
	char k1[AGENT_IDEMPOTENCY_KEY_LEN + 1], k2[AGENT_IDEMPOTENCY_KEY_LEN + 1], want[80],
		url[128];
	struct agent_http_result res;
	struct one_shot s = {.response = response};
	json_t *body = json_object();
	pthread_t t;
	int port;

	(void)state;
	assert_int_equal(agent_http_idempotency_key(k1), 0);
	assert_int_equal(agent_http_idempotency_key(k2), 0);
	assert_int_equal(strlen(k1), AGENT_IDEMPOTENCY_KEY_LEN);
	assert_int_equal(strspn(k1, "0123456789abcdef"), AGENT_IDEMPOTENCY_KEY_LEN);
	assert_string_not_equal(k1, k2);

	s.lfd = listen_local(&port);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/v1/agents/enroll", port);
	assert_int_equal(pthread_create(&t, NULL, serve_one, &s), 0);
	assert_int_equal(agent_http_post_json_keyed(url, NULL, k1, body, NULL, &res), 0);
	pthread_join(t, NULL);
	close(s.lfd);
	assert_int_equal(res.status, 201);
	snprintf(want, sizeof(want), "\r\nIdempotency-Key: %s\r\n", k1);
	assert_non_null(strstr(s.request, want));
	agent_http_result_free(&res);

	assert_int_equal(agent_http_post_json_keyed(url, NULL, "k\r\nX-Evil: 1", body, NULL, &res),
			 -EINVAL);
	agent_http_result_free(&res);
	json_decref(body);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_normalize_url),
		cmocka_unit_test(test_join),
		cmocka_unit_test(test_parse_retry_after),
		cmocka_unit_test(test_enroll_body),
		cmocka_unit_test(test_heartbeat_body),
		cmocka_unit_test(test_parse_enroll),
		cmocka_unit_test(test_parse_heartbeat),
		cmocka_unit_test(test_parse_rotation),
		cmocka_unit_test(test_describe_error),
		cmocka_unit_test(test_post_429_retry_after),
		cmocka_unit_test(test_post_200_and_errors),
		cmocka_unit_test(test_post_idempotency_key),
	};
	int rc;

	agent_http_global_init();
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	agent_http_global_cleanup();
	return rc;
}
