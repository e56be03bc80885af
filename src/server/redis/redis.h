/*
 * redis.h — Redis connections (hiredis). REDIS_URL is parsed with libcurl's
 * URL parser (curl_url), never by hand: redis://[:password@]host:port[/db].
 */
#ifndef BZ_REDIS_H
#define BZ_REDIS_H

#include <hiredis/hiredis.h>

struct redis_target {
	char host[256];
	int port;
	char password[256]; /* "" when none; wipe after use */
	int db;
};

/* Parses URL into OUT. Returns 0, or -1 if it is not a redis:// URL with a
 * host, a port in range and an optional numeric database. */
int redis_url_parse(const char *url, struct redis_target *out);

/* Connects to URL with TIMEOUT_MS for connect and each command, sends AUTH
 * and SELECT as needed. Returns a context (redisFree() it) or NULL. */
redisContext *redis_connect_url(const char *url, int timeout_ms);

/* 0 if PING answers PONG within TIMEOUT_MS, else -1. */
int redis_ping(const char *url, int timeout_ms);

#endif
