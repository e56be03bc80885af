/* Tests of ratelimit_check_many() against a real Redis (REDIS_URL; `make
 * test` runs this file under tests/unit/with-redis). Skipped (exit 77)
 * without REDIS_URL. The mixed set (ratelimit_many_cases.h) through one
 * pipeline gives exactly what ratelimit_check() gives one by one; 1000
 * checks of one key count in order, as 1000 EVALSHAs and no EVAL; SCRIPT
 * FLUSH before a pipeline: every check is sent again as EVAL, no outage;
 * and Redis failing mid-pipeline, made exact by a small proxy in this file
 * that forwards commands to the real Redis and drops the connection when
 * its budget of script calls is spent: the checks answered keep their
 * Redis result (counted in Redis), the rest fall back in order in local
 * mode or are BZ_ERR_UNAVAILABLE in deny mode, one outage, and the next
 * batch in the outage does not touch Redis. Keys carry a random tag per
 * run. */
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/err.h"
#include "crypto/crypto.h"
#include "server/ratelimit/ratelimit.h"
#include "server/redis/redis.h"

#include "ratelimit_many_cases.h"

#define T0 1800000000000LL

static const char *url;
static char run[17]; /* random per run: keeps keys apart from earlier runs */

static struct ratelimit_options opts(const char *to)
{
	struct ratelimit_options o;

	memset(&o, 0, sizeof(o));
	o.redis_url = to;
	o.redis_pool_size = 1;	   /* one connection: the proxy sees every command */
	o.redis_timeout_ms = 2000; /* a busy test machine is not an outage */
	o.retry_interval_ms = 60000;
	mixed_rules(&o);
	return o;
}

static redisReply *cmd(const char *fmt, const char *arg)
{
	redisContext *c = redis_connect_url(url, 2000);
	redisReply *r;

	assert_non_null(c);
	r = redisCommand(c, fmt, arg);
	redisFree(c);
	return r;
}

static long long zcard(const struct ratelimit_item *it)
{
	char key[RATELIMIT_KEY_MAX];
	redisReply *r;
	long long n;

	assert_int_equal(ratelimit_key(it, key, sizeof(key)), 0);
	r = cmd("ZCARD %s", key);
	assert_non_null(r);
	assert_int_equal(r->type, REDIS_REPLY_INTEGER);
	n = r->integer;
	freeReplyObject(r);
	return n;
}

/* calls= of NAME's line in INFO commandstats ("evalsha"), 0 if none. */
static long long calls(const char *name)
{
	redisReply *r = cmd("INFO %s", "commandstats");
	char want[64];
	long long n = 0;

	assert_non_null(r);
	assert_int_equal(r->type, REDIS_REPLY_STRING);
	snprintf(want, sizeof(want), "cmdstat_%s:calls=", name);
	const char *p = strstr(r->str, want);
	if (p != NULL)
		n = atoll(p + strlen(want));
	freeReplyObject(r);
	return n;
}

/* ---- A proxy that breaks mid-pipeline ---- */

struct proxy {
	int lfd, port;
	struct redis_target up;
	_Atomic int budget;  /* script calls still forwarded; -1: no limit */
	_Atomic int scripts; /* script calls forwarded */
	_Atomic int evals;   /* of them EVAL (the script's text), not EVALSHA */
	_Atomic int stop;
	pthread_t th;
};

/* Appends REP in RESP to B (LEN bytes used of CAP); 0 or -1. */
static int resp(char **b, size_t *len, size_t *cap, const redisReply *rep)
{
	char head[48];
	int h;

	switch (rep->type) {
	case REDIS_REPLY_STATUS:
	case REDIS_REPLY_ERROR:
		h = snprintf(head, sizeof(head), "%c", rep->type == REDIS_REPLY_STATUS ? '+' : '-');
		break;
	case REDIS_REPLY_INTEGER:
		h = snprintf(head, sizeof(head), ":%lld\r\n", rep->integer);
		break;
	case REDIS_REPLY_STRING:
		h = snprintf(head, sizeof(head), "$%zu\r\n", rep->len);
		break;
	case REDIS_REPLY_ARRAY:
		h = snprintf(head, sizeof(head), "*%zu\r\n", rep->elements);
		break;
	default:
		h = snprintf(head, sizeof(head), "$-1\r\n");
	}
	size_t body = rep->type == REDIS_REPLY_STRING || rep->type == REDIS_REPLY_STATUS ||
				      rep->type == REDIS_REPLY_ERROR
			      ? rep->len + 2
			      : 0;
	if (*len + (size_t)h + body > *cap) {
		size_t ncap = (*cap + (size_t)h + body) * 2;
		char *nb = realloc(*b, ncap);
		if (nb == NULL)
			return -1;
		*b = nb;
		*cap = ncap;
	}
	memcpy(*b + *len, head, (size_t)h);
	*len += (size_t)h;
	if (body > 0) {
		memcpy(*b + *len, rep->str, rep->len);
		memcpy(*b + *len + rep->len, "\r\n", 2);
		*len += body;
	}
	for (size_t i = 0; rep->type == REDIS_REPLY_ARRAY && i < rep->elements; i++)
		if (resp(b, len, cap, rep->element[i]) != 0)
			return -1;
	return 0;
}

static int write_all(int fd, const char *b, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, b, n);
		if (w <= 0)
			return -1;
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Forwards command CMD (an array of strings) to UP and its reply to FD;
 * 1 to go on, 0 when the budget is spent (CMD not forwarded). */
static int forward(struct proxy *px, redisContext *up, int fd, const redisReply *cmd)
{
	const char *argv[64];
	size_t argl[64], len = 0, cap = 0;
	char *out = NULL;
	int ok;

	/* No cmocka assertion in the proxy's thread: a failure ends the
	 * connection and the test's own checks report it. */
	if (cmd->type != REDIS_REPLY_ARRAY || cmd->elements < 1 || cmd->elements > 64)
		return 0;
	for (size_t i = 0; i < cmd->elements; i++) {
		argv[i] = cmd->element[i]->str;
		argl[i] = cmd->element[i]->len;
	}
	if (strncasecmp(argv[0], "EVAL", 4) == 0) {
		if (atomic_load(&px->budget) == 0)
			return 0;
		if (atomic_load(&px->budget) > 0)
			atomic_fetch_sub(&px->budget, 1);
		atomic_fetch_add(&px->scripts, 1);
		atomic_fetch_add(&px->evals, argl[0] == 4);
	}
	redisReply *rep = redisCommandArgv(up, (int)cmd->elements, argv, argl);
	if (rep == NULL)
		return 0;
	ok = resp(&out, &len, &cap, rep) == 0 && write_all(fd, out, len) == 0;
	freeReplyObject(rep);
	free(out);
	return ok;
}

/* Waits up to 50 ms for FD to be readable; 1 if it is. */
static int readable(int fd)
{
	struct pollfd pf = {fd, POLLIN, 0};

	return poll(&pf, 1, 50) == 1;
}

/* Serves one client connection FD until it closes or the budget is spent;
 * then sends FIN after the replies so far and drains the rest (no RST:
 * the replies already written reach the client). */
static void serve(struct proxy *px, int fd)
{
	struct timeval tv = {2, 0};
	redisContext *up = redisConnectWithTimeout(px->up.host, px->up.port, tv);
	redisReader *rd = redisReaderCreate();
	char buf[65536];
	int going = 1;

	if (up == NULL || up->err != 0 || rd == NULL)
		going = 0;
	else
		redisSetTimeout(up, tv);
	while (going && !atomic_load(&px->stop)) {
		if (!readable(fd))
			continue;
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n <= 0)
			break;
		if (redisReaderFeed(rd, buf, (size_t)n) != REDIS_OK)
			break;
		void *c = NULL;
		while (going && redisReaderGetReply(rd, &c) == REDIS_OK && c != NULL) {
			going = forward(px, up, fd, c);
			freeReplyObject(c);
			c = NULL;
		}
	}
	shutdown(fd, SHUT_WR);
	for (int i = 0; i < 40 && readable(fd) && read(fd, buf, sizeof(buf)) > 0; i++)
		;
	close(fd);
	if (rd != NULL)
		redisReaderFree(rd);
	if (up != NULL)
		redisFree(up);
}

static void *proxy_main(void *arg)
{
	struct proxy *px = arg;

	while (!atomic_load(&px->stop)) {
		if (!readable(px->lfd))
			continue;
		int fd = accept(px->lfd, NULL, NULL);
		if (fd >= 0)
			serve(px, fd);
	}
	return NULL;
}

/* Starts PX in front of the real Redis; *TO gets its URL (with the real
 * password and database). */
static void proxy_start(struct proxy *px, char *to, size_t len)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);

	memset(px, 0, sizeof(*px));
	atomic_store(&px->budget, -1);
	assert_int_equal(redis_url_parse(url, &px->up), 0);
	px->lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(px->lfd >= 0);
	assert_int_equal(bind(px->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(px->lfd, 8), 0);
	assert_int_equal(getsockname(px->lfd, (struct sockaddr *)&a, &al), 0);
	px->port = ntohs(a.sin_port);
	snprintf(to, len, "redis://:%s@127.0.0.1:%d/%d", px->up.password, px->port, px->up.db);
	assert_int_equal(pthread_create(&px->th, NULL, proxy_main, px), 0);
}

static void proxy_stop(struct proxy *px)
{
	atomic_store(&px->stop, 1);
	pthread_join(px->th, NULL);
	close(px->lfd);
	crypto_wipe(px->up.password, sizeof(px->up.password));
}

/* ---- Tests ---- */

/* The mixed set through one pipeline and one by one, through Redis. */
static void test_many_redis_same_as_one_by_one(void **state)
{
	struct ratelimit_options o = opts(url);
	struct ratelimit *a, *b;
	struct ratelimit_stats st;
	char prefix[40];

	(void)state;
	o.redis_pool_size = 2;
	a = ratelimit_open(&o);
	b = ratelimit_open(&o);
	assert_non_null(a);
	assert_non_null(b);
	snprintf(prefix, sizeof(prefix), "%s-mixed", run);
	mixed_compare(a, b, prefix, T0, RATELIMIT_BACKEND_REDIS, 1);
	mixed_compare(a, b, prefix, T0 + 30000, RATELIMIT_BACKEND_REDIS, 0);
	ratelimit_stats(a, &st);
	assert_int_equal(st.outages, 0);
	assert_int_equal(st.local_checks, 0);
	ratelimit_close(a);
	ratelimit_close(b);
}

/* 1000 checks of one key (limit 600) in one call: counted in order, the
 * first 600 admitted; Redis ran 1000 EVALSHAs and not one EVAL. Then
 * SCRIPT FLUSH: the next batch is answered NOSCRIPT, sent again as EVAL,
 * and still decided by Redis without an outage. */
static void test_many_redis_thousand_in_order(void **state)
{
	struct ratelimit_options o = opts(url);
	char tag[RATELIMIT_TAG_MAX];
	struct ratelimit_item it = {RL_API_USER, tag, NULL, 0};
	static struct ratelimit_check ch[RATELIMIT_MANY_MAX];
	static struct ratelimit_result out[RATELIMIT_MANY_MAX];
	static int rcs[RATELIMIT_MANY_MAX];
	struct ratelimit_result r;
	struct ratelimit_stats st;

	(void)state;
	snprintf(tag, sizeof(tag), "%s-thousand", run);
	o.rules[RL_API_USER] = (struct ratelimit_rule){600, 60};
	struct ratelimit *rl = ratelimit_open(&o);
	assert_non_null(rl);
	assert_int_equal(ratelimit_check(rl, &it, 1, T0, &r), 0); /* connects, loads */
	for (int i = 0; i < RATELIMIT_MANY_MAX; i++)
		ch[i] = (struct ratelimit_check){&it, 1};
	long long sha0 = calls("evalsha"), eval0 = calls("eval");
	assert_int_equal(ratelimit_check_many(rl, ch, RATELIMIT_MANY_MAX, T0 + 1, out, rcs), 0);
	assert_int_equal(calls("evalsha") - sha0, RATELIMIT_MANY_MAX);
	assert_int_equal(calls("eval") - eval0, 0);
	for (int i = 0; i < RATELIMIT_MANY_MAX; i++) {
		assert_int_equal(rcs[i], 0);
		assert_int_equal(out[i].backend, RATELIMIT_BACKEND_REDIS);
		assert_int_equal(out[i].admitted, i < 599);
		assert_int_equal(out[i].remaining, i < 599 ? 598 - i : 0);
	}
	assert_int_equal(zcard(&it), 600);

	snprintf(tag, sizeof(tag), "%s-flushed", run);
	freeReplyObject(cmd("SCRIPT FLUSH", NULL));
	eval0 = calls("eval");
	assert_int_equal(ratelimit_check_many(rl, ch, 50, T0 + 2, out, rcs), 0);
	assert_int_equal(calls("eval") - eval0, 50);
	for (int i = 0; i < 50; i++) {
		assert_int_equal(rcs[i], 0);
		assert_int_equal(out[i].backend, RATELIMIT_BACKEND_REDIS);
		assert_int_equal(out[i].remaining, 599 - i);
	}
	assert_int_equal(zcard(&it), 50);
	ratelimit_stats(rl, &st);
	assert_int_equal(st.outages, 0);
	assert_int_equal(st.local_checks, 0);
	ratelimit_close(rl);
}

enum { MID = 12, CUT = 5 };

/* Checks of devices of one organization under TAG, the last five (one of
 * them invalid) all on one device (limit 3). */
static void mid_checks(const char *tag, char dev[MID][8], struct ratelimit_item it[MID][2],
		       struct ratelimit_check ch[MID])
{
	for (int i = 0; i < MID; i++) {
		snprintf(dev[i], 8, "d%d", i < MID - 5 ? i : MID - 5);
		it[i][0] = (struct ratelimit_item){RL_AGENT_DEVICE, tag, dev[i], 0};
		it[i][1] = (struct ratelimit_item){RL_AGENT_ORG, tag, NULL, 0};
		ch[i] = (struct ratelimit_check){it[i], 2};
	}
	ch[2].n = 0; /* an invalid check before the cut */
	ch[9].n = 0; /* and one after it */
}

/* Redis breaks after CUT script calls of a pipeline of MID (local mode):
 * the first CUT valid checks ran in Redis and say so; the rest are decided
 * in process, in order (the repeated device: 3 admitted, 2 refused); one
 * outage; the next batch during the outage never reaches Redis. */
static void test_many_redis_fails_midway_local(void **state)
{
	struct proxy px;
	char to[512], tag[RATELIMIT_TAG_MAX], dev[MID][8];
	struct ratelimit_item it[MID][2];
	struct ratelimit_check ch[MID];
	struct ratelimit_result out[MID];
	struct ratelimit_stats st;
	int rcs[MID], valid = 0;

	(void)state;
	proxy_start(&px, to, sizeof(to));
	snprintf(tag, sizeof(tag), "%s-midway", run);
	mid_checks(tag, dev, it, ch);
	struct ratelimit_options o = opts(to);
	o.rules[RL_AGENT_ORG] = (struct ratelimit_rule){100, 60};
	struct ratelimit *rl = ratelimit_open(&o);
	assert_non_null(rl);
	atomic_store(&px.budget, CUT);
	assert_int_equal(ratelimit_check_many(rl, ch, MID, T0, out, rcs), 0);
	assert_int_equal(atomic_load(&px.scripts), CUT);
	/* A fresh limiter: the first check went alone and loaded the script,
	 * the rest of the pipeline as EVALSHA. */
	assert_int_equal(atomic_load(&px.evals), 1);
	for (int i = 0; i < MID; i++) {
		if (i == 2 || i == 9) {
			assert_int_equal(rcs[i], BZ_ERR_INVALID);
			continue;
		}
		assert_int_equal(rcs[i], 0);
		valid++;
		assert_int_equal(out[i].backend,
				 valid <= CUT ? RATELIMIT_BACKEND_REDIS : RATELIMIT_BACKEND_LOCAL);
		/* d7 from index 7 on (9 invalid): 7, 8, 10 admitted, 11 refused. */
		assert_int_equal(out[i].admitted, i < 11);
		if (valid <= CUT)
			assert_int_equal(zcard(&it[i][0]), 1);
		else
			assert_int_equal(zcard(&it[i][0]), 0);
	}
	assert_int_equal(zcard(&it[0][1]), CUT);	      /* the organization: Redis saw CUT */
	assert_int_equal(out[6].items[1].remaining, 100 - 1); /* first in process */
	ratelimit_stats(rl, &st);
	assert_int_equal(st.outages, 1);
	assert_int_equal(st.redis_checks, CUT);
	assert_int_equal(st.local_checks, 10 - CUT);

	/* Still in the outage (retry in 60 s): in process, Redis untouched. */
	atomic_store(&px.budget, -1);
	assert_int_equal(ratelimit_check_many(rl, ch, 2, T0 + 1, out, rcs), 0);
	assert_int_equal(out[0].backend, RATELIMIT_BACKEND_LOCAL);
	assert_int_equal(out[1].backend, RATELIMIT_BACKEND_LOCAL);
	assert_int_equal(atomic_load(&px.scripts), CUT);
	ratelimit_close(rl);
	proxy_stop(&px);
}

/* The same break in deny mode: the checks Redis answered stand, the rest
 * are BZ_ERR_UNAVAILABLE (answer 503), nothing counted for them anywhere. */
static void test_many_redis_fails_midway_deny(void **state)
{
	struct proxy px;
	char to[512], tag[RATELIMIT_TAG_MAX], dev[MID][8];
	struct ratelimit_item it[MID][2];
	struct ratelimit_check ch[MID];
	struct ratelimit_result out[MID];
	struct ratelimit_stats st;
	int rcs[MID], valid = 0;

	(void)state;
	proxy_start(&px, to, sizeof(to));
	snprintf(tag, sizeof(tag), "%s-midway-deny", run);
	mid_checks(tag, dev, it, ch);
	struct ratelimit_options o = opts(to);
	o.on_failure = RATELIMIT_FAIL_DENY;
	o.rules[RL_AGENT_ORG] = (struct ratelimit_rule){100, 60};
	struct ratelimit *rl = ratelimit_open(&o);
	assert_non_null(rl);
	atomic_store(&px.budget, CUT);
	assert_int_equal(ratelimit_check_many(rl, ch, MID, T0, out, rcs), 0);
	for (int i = 0; i < MID; i++) {
		if (i == 2 || i == 9) {
			assert_int_equal(rcs[i], BZ_ERR_INVALID);
			continue;
		}
		valid++;
		assert_int_equal(rcs[i], valid <= CUT ? 0 : BZ_ERR_UNAVAILABLE);
		assert_int_equal(out[i].admitted, valid <= CUT);
		if (valid <= CUT)
			assert_int_equal(out[i].backend, RATELIMIT_BACKEND_REDIS);
	}
	assert_int_equal(zcard(&it[0][1]), CUT);
	ratelimit_stats(rl, &st);
	assert_int_equal(st.outages, 1);
	assert_int_equal(st.denied_unavailable, 10 - CUT);
	assert_int_equal(st.local_checks, 0);
	ratelimit_close(rl);
	proxy_stop(&px);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_many_redis_same_as_one_by_one),
		cmocka_unit_test(test_many_redis_thousand_in_order),
		cmocka_unit_test(test_many_redis_fails_midway_local),
		cmocka_unit_test(test_many_redis_fails_midway_deny),
	};

	url = getenv("REDIS_URL");
	if (url == NULL || url[0] == '\0') {
		printf("test_ratelimit_many_redis: REDIS_URL not set; skipped\n");
		return 77;
	}
	if (crypto_random_hex(8, run) != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
