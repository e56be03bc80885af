/*
 * fuzz_redis_url.c — REDIS_URL parsing (redis_url_parse in
 * src/server/redis/redis.c, on top of libcurl's URL parser).
 *
 * A URL that parses must give what the header promises: a host, a port in
 * range, database 0–15. One that does not must leave no password behind.
 */
#include "fuzz.h"
#include "server/redis/redis.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *url = fuzz_cstr(data, size);
	struct redis_target t;

	if (url == NULL)
		return 0;
	if (redis_url_parse(url, &t) == 0) {
		FUZZ_ASSERT(memchr(t.host, '\0', sizeof(t.host)) != NULL && t.host[0] != '\0');
		FUZZ_ASSERT(memchr(t.password, '\0', sizeof(t.password)) != NULL);
		FUZZ_ASSERT(t.port > 0 && t.port <= 65535);
		FUZZ_ASSERT(t.db >= 0 && t.db <= 15);
	} else {
		static const char zero[sizeof(t.password)];
		FUZZ_ASSERT(memcmp(t.password, zero, sizeof(zero)) == 0);
	}
	free(url);
	return 0;
}
