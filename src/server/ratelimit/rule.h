/*
 * rule.h — the pure parts of rate limiting: limit settings ("COUNT/SECONDS")
 * and the normalized request identities that limiter keys are built from.
 * No dependencies beyond libc, so config.c can parse the settings at start
 * and unit tests can check every rule without Redis. The limiter itself is
 * in ratelimit.h; docs/rate-limiting.md describes the design.
 */
#ifndef BZ_RATELIMIT_RULE_H
#define BZ_RATELIMIT_RULE_H

#include <stddef.h>
#include <stdint.h>

/* At most LIMIT admitted requests within any WINDOW_S seconds (sliding). */
struct ratelimit_rule {
	uint32_t limit;	   /* 1 .. RATELIMIT_MAX_LIMIT */
	uint32_t window_s; /* 1 .. RATELIMIT_MAX_WINDOW_S */
};

#define RATELIMIT_MAX_LIMIT 100000u
#define RATELIMIT_MAX_WINDOW_S 86400u

/* What to do while Redis is unreachable (RATE_LIMIT_ON_REDIS_FAILURE). */
enum ratelimit_on_failure {
	RATELIMIT_FAIL_LOCAL = 0, /* enforce the same limits in-process (default) */
	RATELIMIT_FAIL_DENY,	  /* limited routes answer 503 */
};

/*
 * Parses S as "COUNT/SECONDS" (decimal, no sign, no spaces, e.g. "5/300")
 * into OUT. COUNT must be 1..RATELIMIT_MAX_LIMIT and SECONDS
 * 1..RATELIMIT_MAX_WINDOW_S: a limit of 0 or an endless window is refused,
 * never read as "unlimited". Returns 0, or BZ_ERR_INVALID with *WHY (when
 * WHY is non-NULL) set to a static sentence naming the fault.
 */
int ratelimit_rule_parse(const char *s, struct ratelimit_rule *out, const char **why);

/* Parses "local" or "deny" (case-sensitive, as documented) into OUT.
 * Returns 0 or BZ_ERR_INVALID. */
int ratelimit_on_failure_parse(const char *s, enum ratelimit_on_failure *out);

#define RATELIMIT_EMAIL_MAX 254 /* RFC 5321 §4.5.3.1.3 path limit less the brackets */
#define RATELIMIT_IP_LEN 46	/* INET6_ADDRSTRLEN */

/*
 * The login limiter's e-mail part: IN with leading and trailing ASCII
 * whitespace removed and ASCII letters lower-cased (the same address typed
 * as " Alice@Example.COM" shares one bucket). Non-ASCII bytes are kept as
 * they are. Writes a NUL-terminated string to OUT (LEN bytes, at least
 * RATELIMIT_EMAIL_MAX + 1). Returns 0, or BZ_ERR_INVALID if the trimmed
 * value is empty, longer than RATELIMIT_EMAIL_MAX, or holds a control byte
 * (OUT is then "").
 */
int ratelimit_norm_email(const char *in, char *out, size_t len);

/*
 * The bucket address of client IP IP (a literal, as client_ip_resolve()
 * gives it): an IPv4 address as it is ("192.0.2.7"), an IPv6 address folded
 * to its /64 network in canonical form ("2001:db8:1:2::/64"), because one
 * IPv6 host usually holds a whole /64 and could otherwise pick a fresh
 * address per request. IPv4-mapped IPv6 ("::ffff:192.0.2.7") counts as the
 * IPv4 address. Parsing and printing are inet_pton()/inet_ntop(). Writes
 * OUT (LEN bytes, at least RATELIMIT_IP_LEN + 4). Returns 0, or
 * BZ_ERR_INVALID if IP is not an address literal (OUT is then "").
 */
int ratelimit_norm_ip(const char *ip, char *out, size_t len);

#endif
