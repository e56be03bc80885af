/*
 * outbound.h — the server's only way to make an outbound HTTP request
 * (webhooks; later DNS providers, SSO discovery, other integrations), with
 * the SSRF guard of ssrf.h applied to every connection (checklist O1).
 *
 * - The URL is parsed by libcurl's own parser (curl_url) and handed to the
 *   request as the parsed handle, so the guard and the request never
 *   disagree about the host. Only http and https; no credentials in the
 *   URL; no proxy, whatever the environment says.
 * - Every address libcurl is about to connect to, after DNS resolution, is
 *   judged in CURLOPT_OPENSOCKETFUNCTION: DNS rebinding, a name that
 *   resolves to a private address, and Happy Eyeballs fallbacks all meet the
 *   same check. Each hop uses a fresh handle, so no connection is reused
 *   without a check.
 * - Redirects are not followed unless the caller asks; then at most
 *   OUTBOUND_MAX_REDIRECTS, each hop parsed and checked again, and on a hop
 *   to another host the caller's headers are dropped (credentials never
 *   travel to another host).
 * - Connect and total timeouts, and a response-size cap.
 *
 * Knows nothing of HTTP handlers or the database: callers audit refusals
 * (outbound.blocked) in their own context; this module counts them per kind
 * for metrics (outbound_blocked_total()).
 */
#ifndef BZ_OUTBOUND_H
#define BZ_OUTBOUND_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

#include "server/outbound/ssrf.h"

#define OUTBOUND_MAX_REDIRECTS 5
#define OUTBOUND_CONNECT_TIMEOUT_MS 5000
#define OUTBOUND_TOTAL_TIMEOUT_MS 15000
#define OUTBOUND_MAX_RESPONSE_BYTES (256 * 1024)

struct outbound_request {
	const char *method;	    /* "GET" or "POST"; NULL = "GET" */
	const char *url;	    /* absolute http(s) URL */
	const char *const *headers; /* NULL-terminated "Name: value" lines, or NULL */
	const char *body;	    /* request body (POST), or NULL */
	size_t body_len;
	int follow_redirects;	   /* 0: a 3xx is the answer; 1: follow up to 5 */
	long connect_timeout_ms;   /* 0 = OUTBOUND_CONNECT_TIMEOUT_MS */
	long total_timeout_ms;	   /* 0 = OUTBOUND_TOTAL_TIMEOUT_MS; whole request, all hops */
	size_t max_response_bytes; /* 0 = OUTBOUND_MAX_RESPONSE_BYTES */
	/* Tests only: CURLOPT_RESOLVE entries ("host:port:addr[,addr]"), so a
	 * test can make a name resolve to chosen addresses. The connect-time
	 * check applies to them like to any DNS answer. NULL in production. */
	const char *const *test_resolve;
};

struct outbound_response {
	enum ssrf_kind kind; /* SSRF_OK when an HTTP response arrived */
	long status;	     /* HTTP status of the last hop; 0 if none */
	char *body;	     /* NUL-terminated response body (malloc'd) or NULL */
	size_t body_len;
	int redirects;				/* hops followed */
	char final_url[2048];			/* URL of the last hop requested */
	char blocked_address[INET6_ADDRSTRLEN]; /* the address refused, for blocked_address */
	const char *blocked_reason;		/* static: "loopback", "metadata", ... or NULL */
	char error[256];			/* what went wrong, for logs; no secrets */
};

/* Initialises libcurl for the process (call once before threads start).
 * Returns 0 or BZ_ERR_INTERNAL. */
int outbound_global_init(void);

/*
 * Makes request RQ under policy P. Fills OUT (zeroed first; free with
 * outbound_response_free whatever the return). Returns 0 when an HTTP
 * response arrived (any status; OUT->kind SSRF_OK); BZ_ERR_FORBIDDEN when
 * the guard refused (OUT->kind: bad_url, bad_scheme, blocked_host,
 * blocked_address, too_many_redirects); BZ_ERR_UNAVAILABLE when the
 * destination could not be reached or answered badly (dns_failure,
 * timeout, response_too_large, connect_failed); BZ_ERR_NOMEM. Blocking,
 * bounded by the total timeout.
 */
int outbound_request(const struct ssrf_policy *p, const struct outbound_request *rq,
		     struct outbound_response *out);

/* Frees OUT's body and zeroes it. NULL-safe. */
void outbound_response_free(struct outbound_response *out);

/* Requests refused with KIND since the process started (all threads). */
uint64_t outbound_blocked_total(enum ssrf_kind kind);

#endif
