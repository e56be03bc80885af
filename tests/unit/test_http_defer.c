/*
 * test_http_defer.c — deferred answers on the real HTTP server (ulfius on
 * libmicrohttpd's event loop, the worker pool, suspend/resume): a deferred
 * request holds no worker, its answer (status, headers, body) reaches the
 * client from another thread, http_defer_run() finishes one on a worker,
 * and the drain waits for deferred requests.
 */
#include <arpa/inet.h>
#include <curl/curl.h>
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
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "server/http/http.h"

#define N_DEFERRED 24 /* more than the workers (2) and than curl's per-host default */

static struct {
	pthread_mutex_t mu;
	struct request *held[N_DEFERRED + 4];
	size_t n;
} parked = {.mu = PTHREAD_MUTEX_INITIALIZER};

static size_t parked_count(void)
{
	pthread_mutex_lock(&parked.mu);
	size_t n = parked.n;
	pthread_mutex_unlock(&parked.mu);
	return n;
}

static struct request *parked_take(void)
{
	struct request *d = NULL;

	pthread_mutex_lock(&parked.mu);
	if (parked.n > 0)
		d = parked.held[--parked.n];
	pthread_mutex_unlock(&parked.mu);
	return d;
}

/* GET /defer: parks the request, answered later by the test. */
static void defer_handler(struct request *rq)
{
	struct request *d = http_defer(rq);

	if (d == NULL)
		return;
	pthread_mutex_lock(&parked.mu);
	parked.held[parked.n++] = d;
	pthread_mutex_unlock(&parked.mu);
}

static void sync_handler(struct request *rq)
{
	http_reply(rq, 200, json_pack("{s:s}", "answer", "sync"));
}

static void finish_on_worker(struct request *d)
{
	http_set_header(d, "X-Finished", "worker");
	http_reply(d, 201, json_pack("{s:s}", "answer", "worker"));
	http_resume(d);
}

/* GET /defer-run: deferred, then finished by http_defer_run(). */
static void defer_run_handler(struct request *rq)
{
	struct request *d = http_defer(rq);

	if (d != NULL)
		http_defer_run(d, finish_on_worker);
}

/* GET /block: holds its worker until the test lets go. */
static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int open, waiting;
} gate = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void block_handler(struct request *rq)
{
	pthread_mutex_lock(&gate.mu);
	gate.waiting++;
	while (!gate.open)
		pthread_cond_wait(&gate.cv, &gate.mu);
	gate.waiting--;
	pthread_mutex_unlock(&gate.mu);
	http_reply(rq, 200, json_pack("{s:s}", "answer", "block"));
}

static void inline_handler(struct request *rq)
{
	http_reply(rq, 200, json_pack("{s:s}", "answer", "inline"));
}

static const struct route routes[] = {
	{"GET", "/block", block_handler, ROUTE_PUBLIC, NULL, NULL, NULL},
	{"GET", "/inline", inline_handler, ROUTE_PUBLIC | ROUTE_INLINE, NULL, NULL, NULL},
	{"GET", "/defer", defer_handler, ROUTE_PUBLIC, NULL, NULL, NULL},
	{"GET", "/sync", sync_handler, ROUTE_PUBLIC, NULL, NULL, NULL},
	{"GET", "/defer-run", defer_run_handler, ROUTE_PUBLIC, NULL, NULL, NULL},
};

static struct config cfg;
static struct app app;

static unsigned free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);
	int s = socket(AF_INET, SOCK_STREAM, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
	close(s);
	return ntohs(a.sin_port);
}

static int start(void **state)
{
	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	snprintf(cfg.listen_host, sizeof(cfg.listen_host), "127.0.0.1");
	cfg.listen_port = (uint16_t)free_port();
	cfg.http_max_body_bytes = 65536;
	cfg.http_max_connections = 256;
	cfg.http_timeout_s = 30;
	cfg.http_header_timeout_s = 10;
	cfg.http_worker_threads = 2;
	cfg.database_pool_size = 1;
	memset(&app, 0, sizeof(app));
	app.cfg = &cfg;
	return http_server_start(&app, routes, sizeof(routes) / sizeof(*routes));
}

static int stop(void **state)
{
	(void)state;
	return http_server_stop(&app, 5000) == 0 ? 0 : -1;
}

struct fetch {
	char path[32];
	long status;
	char body[256];
	size_t len;
	char header[64]; /* the X-Finished value, if any */
	pthread_t thread;
};

static size_t on_body(char *p, size_t sz, size_t n, void *arg)
{
	struct fetch *f = arg;
	size_t k = sz * n;

	if (f->len + k < sizeof(f->body)) {
		memcpy(f->body + f->len, p, k);
		f->len += k;
		f->body[f->len] = '\0';
	}
	return k;
}

static size_t on_header(char *p, size_t sz, size_t n, void *arg)
{
	struct fetch *f = arg;
	size_t k = sz * n;

	if (k > 12 && strncasecmp(p, "X-Finished: ", 12) == 0)
		snprintf(f->header, sizeof(f->header), "%.*s", (int)strcspn(p + 12, "\r\n"),
			 p + 12);
	return k;
}

static void *fetch_main(void *arg)
{
	struct fetch *f = arg;
	char url[96];
	CURL *h = curl_easy_init();

	snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", (unsigned)cfg.listen_port, f->path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, f);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, f);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 20L);
	if (curl_easy_perform(h) == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &f->status);
	curl_easy_cleanup(h);
	return NULL;
}

static void fetch_start(struct fetch *f, const char *path)
{
	memset(f, 0, sizeof(*f));
	snprintf(f->path, sizeof(f->path), "%s", path);
	assert_int_equal(pthread_create(&f->thread, NULL, fetch_main, f), 0);
}

/* Waits (at most 10 s) until N requests are parked. */
static void wait_parked(size_t n)
{
	for (int i = 0; i < 1000 && parked_count() < n; i++) {
		struct timespec ts = {0, 10 * 1000000L};
		nanosleep(&ts, NULL);
	}
	assert_int_equal(parked_count(), n);
}

/* More deferred requests than workers wait at once, and a plain request
 * is still served meanwhile: waiting holds no worker thread. */
static void test_deferred_requests_hold_no_worker(void **state)
{
	static struct fetch f[N_DEFERRED], s;

	(void)state;
	for (int i = 0; i < N_DEFERRED; i++)
		fetch_start(&f[i], "/defer");
	wait_parked(N_DEFERRED);
	fetch_start(&s, "/sync");
	pthread_join(s.thread, NULL);
	assert_int_equal(s.status, 200);
	assert_non_null(strstr(s.body, "\"sync\""));

	/* Answered from this thread, with a header and a body of their own. */
	for (int i = 0; i < N_DEFERRED; i++) {
		struct request *d = parked_take();
		assert_non_null(d);
		http_set_header(d, "X-Finished", "test");
		http_reply(d, 202, json_pack("{s:i}", "n", i));
		http_resume(d);
	}
	for (int i = 0; i < N_DEFERRED; i++) {
		pthread_join(f[i].thread, NULL);
		assert_int_equal(f[i].status, 202);
		assert_string_equal(f[i].header, "test");
		assert_non_null(strstr(f[i].body, "\"n\""));
	}
}

/* A deferred request finished by http_defer_run() on a worker. */
static void test_defer_run_finishes_on_a_worker(void **state)
{
	struct fetch f;

	(void)state;
	fetch_start(&f, "/defer-run");
	pthread_join(f.thread, NULL);
	assert_int_equal(f.status, 201);
	assert_string_equal(f.header, "worker");
	assert_non_null(strstr(f.body, "\"worker\""));
}

/* A deferred request never answered by its handler gets a 500. */
static void test_resume_without_answer_is_500(void **state)
{
	struct fetch f;

	(void)state;
	fetch_start(&f, "/defer");
	wait_parked(1);
	http_resume(parked_take());
	pthread_join(f.thread, NULL);
	assert_int_equal(f.status, 500);
	assert_non_null(strstr(f.body, "\"internal\""));
}

/* A client that hung up while its request waited: the late answer is
 * dropped without harm (the sanitizer build checks the memory). */
static void test_client_gone_before_resume(void **state)
{
	char req[128];
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(cfg.listen_port)};
	int s = socket(AF_INET, SOCK_STREAM, 0);

	(void)state;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(s, (struct sockaddr *)&a, sizeof(a)), 0);
	int n = snprintf(req, sizeof(req), "GET /defer HTTP/1.1\r\nHost: t\r\n\r\n");
	assert_int_equal(send(s, req, (size_t)n, 0), n);
	wait_parked(1);
	close(s);
	struct request *d = parked_take();
	http_reply(d, 200, json_pack("{s:b}", "late", 1));
	http_resume(d);
	struct fetch f;
	fetch_start(&f, "/sync");
	pthread_join(f.thread, NULL);
	assert_int_equal(f.status, 200);
}

/* With every worker busy, an inline route (/healthz) still answers, and
 * the requests queued behind the workers run once they are free. */
static void test_inline_route_answers_while_workers_are_busy(void **state)
{
	struct fetch b[3], in;

	(void)state;
	for (int i = 0; i < 3; i++)
		fetch_start(&b[i], "/block");
	for (int i = 0; i < 1000; i++) { /* both workers inside /block */
		pthread_mutex_lock(&gate.mu);
		int w = gate.waiting;
		pthread_mutex_unlock(&gate.mu);
		if (w == 2)
			break;
		struct timespec ts = {0, 10 * 1000000L};
		nanosleep(&ts, NULL);
	}
	fetch_start(&in, "/inline");
	pthread_join(in.thread, NULL);
	assert_int_equal(in.status, 200);
	assert_non_null(strstr(in.body, "inline"));
	pthread_mutex_lock(&gate.mu);
	assert_int_equal(gate.waiting, 2); /* the third waits for a worker */
	gate.open = 1;
	pthread_cond_broadcast(&gate.cv);
	pthread_mutex_unlock(&gate.mu);
	for (int i = 0; i < 3; i++) {
		pthread_join(b[i].thread, NULL);
		assert_int_equal(b[i].status, 200);
	}
}

struct stopper {
	pthread_t thread;
	int rc;
	volatile int *released;
	int released_at_return;
};

static void *stop_main(void *arg)
{
	struct stopper *st = arg;

	st->rc = http_server_stop(&app, 5000);
	st->released_at_return = *st->released;
	return NULL;
}

/* SIGTERM's drain waits for a deferred request and its answer is sent. */
static void test_drain_waits_for_deferred(void **state)
{
	static volatile int released;
	struct stopper st = {.released = &released};
	struct fetch f;

	(void)state;
	fetch_start(&f, "/defer");
	wait_parked(1);
	assert_int_equal(pthread_create(&st.thread, NULL, stop_main, &st), 0);
	struct timespec ts = {0, 300 * 1000000L};
	nanosleep(&ts, NULL);
	struct request *d = parked_take();
	released = 1;
	http_reply(d, 200, json_pack("{s:s}", "answer", "drained"));
	http_resume(d);
	pthread_join(st.thread, NULL);
	pthread_join(f.thread, NULL);
	assert_int_equal(st.rc, 0);
	assert_int_equal(st.released_at_return, 1);
	assert_int_equal(f.status, 200);
	assert_non_null(strstr(f.body, "drained"));
	/* Started again for the teardown. */
	assert_int_equal(start(NULL), 0);
}

int main(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_deferred_requests_hold_no_worker),
		cmocka_unit_test(test_defer_run_finishes_on_a_worker),
		cmocka_unit_test(test_resume_without_answer_is_500),
		cmocka_unit_test(test_client_gone_before_resume),
		cmocka_unit_test(test_inline_route_answers_while_workers_are_busy),
		cmocka_unit_test(test_drain_waits_for_deferred),
	};
	int rc = cmocka_run_group_tests(tests, start, stop);
	curl_global_cleanup();
	return rc;
}
