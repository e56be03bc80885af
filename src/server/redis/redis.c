#include "server/redis/redis.h"

#include <curl/curl.h>
#include <errno.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "common/err.h"
#include "crypto/crypto.h"

static int copy_part(CURLU *u, CURLUPart part, char *out, size_t outlen, int required)
{
	char *v = NULL;
	CURLUcode rc = curl_url_get(u, part, &v, CURLU_URLDECODE);

	out[0] = '\0';
	if (rc != CURLUE_OK) {
		curl_free(v);
		return required ? -1 : 0;
	}
	int ok = strlen(v) < outlen;
	if (ok)
		memcpy(out, v, strlen(v) + 1);
	crypto_wipe(v, strlen(v));
	curl_free(v);
	return ok ? 0 : -1;
}

int redis_url_parse(const char *url, struct redis_target *out)
{
	CURLU *u = curl_url();
	char scheme[16], port[8], path[32];
	int rc = BZ_ERR_INVALID;

	memset(out, 0, sizeof(*out));
	if (u == NULL)
		return BZ_ERR_NOMEM;
	/* curl would read "redis:///0" as host "0.0.0.0"; a host is required. */
	if (strncmp(url, "redis:///", 9) == 0)
		goto out;
	/* CURLU_NON_SUPPORT_SCHEME: libcurl does not speak redis:// itself. */
	if (curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK)
		goto out;
	if (copy_part(u, CURLUPART_SCHEME, scheme, sizeof(scheme), 1) || strcmp(scheme, "redis") ||
	    copy_part(u, CURLUPART_HOST, out->host, sizeof(out->host), 1) ||
	    copy_part(u, CURLUPART_PASSWORD, out->password, sizeof(out->password), 0) ||
	    copy_part(u, CURLUPART_PORT, port, sizeof(port), 0) ||
	    copy_part(u, CURLUPART_PATH, path, sizeof(path), 0))
		goto out;
	out->port = port[0] ? atoi(port) : 6379;
	if (out->port <= 0 || out->port > 65535)
		goto out;
	if (path[0] && strcmp(path, "/")) {
		char *end;
		long db = strtol(path + 1, &end, 10);
		if (*end != '\0' || db < 0 || db > 15)
			goto out;
		out->db = (int)db;
	}
	/* Strip IPv6 brackets for hiredis. */
	size_t hl = strlen(out->host);
	if (hl > 2 && out->host[0] == '[' && out->host[hl - 1] == ']') {
		memmove(out->host, out->host + 1, hl - 2);
		out->host[hl - 2] = '\0';
	}
	rc = 0;
out:
	curl_url_cleanup(u);
	if (rc != 0)
		crypto_wipe(out->password, sizeof(out->password));
	return rc;
}

redisContext *redis_connect_url(const char *url, int timeout_ms)
{
	struct redis_target t;
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
	redisContext *c = NULL;
	redisReply *rep;

	if (redis_url_parse(url, &t) != 0)
		return NULL;
	c = redisConnectWithTimeout(t.host, t.port, tv);
	if (c == NULL || c->err)
		goto fail;
	redisSetTimeout(c, tv);
	if (t.password[0]) {
		rep = redisCommand(c, "AUTH %s", t.password);
		int ok = rep && rep->type == REDIS_REPLY_STATUS;
		freeReplyObject(rep);
		if (!ok)
			goto fail;
	}
	if (t.db) {
		rep = redisCommand(c, "SELECT %d", t.db);
		int ok = rep && rep->type == REDIS_REPLY_STATUS;
		freeReplyObject(rep);
		if (!ok)
			goto fail;
	}
	crypto_wipe(&t, sizeof(t));
	return c;
fail:
	crypto_wipe(&t, sizeof(t));
	if (c)
		redisFree(c);
	return NULL;
}

int redis_ping(const char *url, int timeout_ms)
{
	redisContext *c = redis_connect_url(url, timeout_ms);
	int rc = BZ_ERR_UNAVAILABLE;

	if (c == NULL)
		return BZ_ERR_UNAVAILABLE;
	redisReply *rep = redisCommand(c, "PING");
	if (rep && rep->type == REDIS_REPLY_STATUS && !strcmp(rep->str, "PONG"))
		rc = 0;
	freeReplyObject(rep);
	redisFree(c);
	return rc;
}

/* 1 if PING over C answers PONG (C's timeouts apply). */
static int ping_ok(redisContext *c)
{
	redisReply *rep = redisCommand(c, "PING");
	int ok = rep != NULL && rep->type == REDIS_REPLY_STATUS && !strcmp(rep->str, "PONG");

	freeReplyObject(rep);
	return ok && c->err == 0;
}

int redis_shared_ping(struct redis_shared *s, const char *url, int timeout_ms)
{
	struct timespec until;
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
	int ok = 0;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	if (pthread_mutex_timedlock(&s->mu, &until) != 0)
		return BZ_ERR_UNAVAILABLE;
	if (s->c != NULL) {
		redisSetTimeout(s->c, tv);
		ok = ping_ok(s->c);
		if (!ok) {
			redisFree(s->c);
			s->c = NULL;
		}
	}
	if (!ok) {
		s->c = redis_connect_url(url, timeout_ms);
		ok = s->c != NULL && ping_ok(s->c);
		if (!ok && s->c != NULL) {
			redisFree(s->c);
			s->c = NULL;
		}
	}
	pthread_mutex_unlock(&s->mu);
	return ok ? 0 : BZ_ERR_UNAVAILABLE;
}
