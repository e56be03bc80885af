/*
 * redis.h — Redis connections (hiredis). REDIS_URL is parsed with libcurl's
 * URL parser (curl_url), never by hand: redis://[:password@]host:port[/db].
 */
#ifndef BZ_REDIS_H
#define BZ_REDIS_H

#include <hiredis/hiredis.h>
#include <pthread.h>

struct redis_target {
	char host[256];
	int port;
	char password[256]; /* "" when none; wipe after use */
	int db;
};

/* Parses URL into OUT. Returns 0, or BZ_ERR_INVALID if it is not a redis:// URL with a
 * host, a port in range and an optional numeric database. */
int redis_url_parse(const char *url, struct redis_target *out);

/* Connects to URL with TIMEOUT_MS for connect and each command, sends AUTH
 * and SELECT as needed. Returns a context (redisFree() it) or NULL. */
redisContext *redis_connect_url(const char *url, int timeout_ms);

/* 0 if PING answers PONG within TIMEOUT_MS, else BZ_ERR_UNAVAILABLE. Opens and closes a
 * connection of its own (for one-off CLI use; probes use redis_shared). */
int redis_ping(const char *url, int timeout_ms);

/*
 * One Redis connection shared by many threads (e.g. the readiness probe
 * under MHD's thread pool): made on first use, kept, and made again when it
 * breaks, so a probe costs one PING instead of connect + AUTH + PING.
 * Define it with REDIS_SHARED_INIT; every use holds its mutex.
 */
struct redis_shared {
	pthread_mutex_t mu;
	redisContext *c; /* NULL until connected or after a failure */
};

#define REDIS_SHARED_INIT                                                                          \
	{                                                                                          \
		PTHREAD_MUTEX_INITIALIZER, NULL                                                    \
	}

/*
 * PINGs Redis at URL over S's connection, reconnecting once if the kept
 * connection is broken (e.g. Redis restarted). TIMEOUT_MS bounds the wait
 * for the mutex (a probe still waiting on a slow Redis counts as down) and
 * each network step (connect, AUTH, SELECT, PING). Returns 0 on PONG, else
 * BZ_ERR_UNAVAILABLE (the connection is then dropped).
 */
int redis_shared_ping(struct redis_shared *s, const char *url, int timeout_ms);

#endif
