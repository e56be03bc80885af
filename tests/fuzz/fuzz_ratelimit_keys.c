/*
 * fuzz_ratelimit_keys.c — the parts of rate limiting that see request
 * bytes (src/server/ratelimit/rule.c, ratelimit.c): e-mail normalization,
 * client-address folding, the COUNT/SECONDS parser and key building.
 *
 * A normalized e-mail is trimmed, lower-case ASCII, free of control bytes
 * and normalizes to itself. A folded address is IPv4 or a /64 whose host
 * half is zero, and folds to itself. A parsed rule is in range and reads
 * back from its own text. A key built from any normalized pair is always
 * accepted and never longer than RATELIMIT_KEY_MAX.
 */
#include <arpa/inet.h>

#include "fuzz.h"
#include "server/ratelimit/ratelimit.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return 0;
}

static void check_email(const char *in, char *email)
{
	char again[RATELIMIT_EMAIL_MAX + 1];
	size_t n;

	if (ratelimit_norm_email(in, email, RATELIMIT_EMAIL_MAX + 1) != 0) {
		FUZZ_ASSERT(email[0] == '\0');
		return;
	}
	n = strlen(email);
	FUZZ_ASSERT(n > 0 && n <= RATELIMIT_EMAIL_MAX);
	FUZZ_ASSERT(email[0] != ' ' && email[n - 1] != ' ');
	for (size_t i = 0; i < n; i++)
		FUZZ_ASSERT(!(email[i] >= 'A' && email[i] <= 'Z') &&
			    (unsigned char)email[i] >= 0x20 && email[i] != 0x7f);
	FUZZ_ASSERT(ratelimit_norm_email(email, again, sizeof(again)) == 0);
	FUZZ_ASSERT(strcmp(email, again) == 0);
}

static void check_ip(const char *in, char *ip)
{
	char again[RATELIMIT_IP_LEN + 4], net[RATELIMIT_IP_LEN + 4];
	struct in6_addr a6;
	struct in_addr a4;

	if (ratelimit_norm_ip(in, ip, RATELIMIT_IP_LEN + 4) != 0) {
		FUZZ_ASSERT(ip[0] == '\0');
		return;
	}
	size_t n = strlen(ip);
	if (n > 3 && strcmp(ip + n - 3, "/64") == 0) {
		memcpy(net, ip, n - 3);
		net[n - 3] = '\0';
		FUZZ_ASSERT(inet_pton(AF_INET6, net, &a6) == 1);
		for (int i = 8; i < 16; i++)
			FUZZ_ASSERT(a6.s6_addr[i] == 0);
		FUZZ_ASSERT(ratelimit_norm_ip(net, again, sizeof(again)) == 0);
	} else {
		FUZZ_ASSERT(inet_pton(AF_INET, ip, &a4) == 1);
		FUZZ_ASSERT(ratelimit_norm_ip(ip, again, sizeof(again)) == 0);
	}
	FUZZ_ASSERT(strcmp(ip, again) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstr(data, size);
	char email[RATELIMIT_EMAIL_MAX + 1], ip[RATELIMIT_IP_LEN + 4], key[RATELIMIT_KEY_MAX];
	char text[32];
	struct ratelimit_rule r, r2;
	const char *why = NULL;

	if (s == NULL)
		return 0;
	check_email(s, email);
	check_ip(s, ip);
	if (ratelimit_rule_parse(s, &r, &why) == 0) {
		FUZZ_ASSERT(r.limit >= 1 && r.limit <= RATELIMIT_MAX_LIMIT);
		FUZZ_ASSERT(r.window_s >= 1 && r.window_s <= RATELIMIT_MAX_WINDOW_S);
		snprintf(text, sizeof(text), "%u/%u", r.limit, r.window_s);
		FUZZ_ASSERT(ratelimit_rule_parse(text, &r2, NULL) == 0);
		FUZZ_ASSERT(r.limit == r2.limit && r.window_s == r2.window_s);
	} else {
		FUZZ_ASSERT(why != NULL);
	}
	if (ip[0] != '\0' && email[0] != '\0') {
		struct ratelimit_item it = {RL_LOGIN, ip, email, 0};
		FUZZ_ASSERT(ratelimit_key(&it, key, sizeof(key)) == 0);
		FUZZ_ASSERT(strlen(key) < RATELIMIT_KEY_MAX);
	}
	/* Any bytes as a tag: accepted or refused, never overrun. */
	struct ratelimit_item raw = {RL_API_USER, s, NULL, 0};
	if (ratelimit_key(&raw, key, sizeof(key)) == 0)
		FUZZ_ASSERT(strlen(s) <= RATELIMIT_TAG_MAX && strchr(s, '{') == NULL);
	free(s);
	return 0;
}
