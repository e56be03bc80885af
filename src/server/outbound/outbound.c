/*
 * outbound.c — outbound HTTP through libcurl with the SSRF guard on every
 * connection (see outbound.h for the rules and ssrf.h for the policy).
 */
#include "server/outbound/outbound.h"

#include <arpa/inet.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <curl/curl.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/text.h"

static _Atomic uint64_t blocked_total[SSRF_KIND_COUNT];

uint64_t outbound_blocked_total(enum ssrf_kind kind)
{
	return (unsigned)kind < SSRF_KIND_COUNT ? atomic_load(&blocked_total[kind]) : 0;
}

int outbound_global_init(void)
{
	return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : BZ_ERR_INTERNAL;
}

/* What the socket callback of one hop knows and found. */
struct hop {
	const struct ssrf_policy *policy;
	int name_allowlisted;
	int blocked;
	char address[INET6_ADDRSTRLEN];
	const char *reason;
};

/* CURLOPT_OPENSOCKETFUNCTION: the guard. Every address libcurl is about to
 * connect to comes through here, after resolution. */
static curl_socket_t open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *a)
{
	struct hop *h = clientp;
	const struct sockaddr *sa = &a->addr;

	if (purpose != CURLSOCKTYPE_IPCXN ||
	    ssrf_address_allowed(h->policy, sa, h->name_allowlisted, &h->reason) != SSRF_OK) {
		const void *bytes =
			sa->sa_family == AF_INET6
				? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
				: (const void *)&((const struct sockaddr_in *)sa)->sin_addr;
		if ((sa->sa_family != AF_INET && sa->sa_family != AF_INET6) ||
		    inet_ntop(sa->sa_family, bytes, h->address, sizeof(h->address)) == NULL)
			text_copy(h->address, sizeof(h->address), "?");
		h->blocked = 1;
		return CURL_SOCKET_BAD;
	}
	return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

/* The response body, capped. */
struct sink {
	char *buf;
	size_t len, cap, max;
	int overflow;
};

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct sink *s = userdata;
	size_t n = size * nmemb;

	if (n > s->max - s->len) {
		s->overflow = 1;
		return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
	}
	if (s->len + n + 1 > s->cap) {
		size_t cap = s->cap ? s->cap : 4096;
		while (cap < s->len + n + 1)
			cap *= 2;
		char *b = realloc(s->buf, cap);
		if (b == NULL)
			return 0;
		s->buf = b;
		s->cap = cap;
	}
	memcpy(s->buf + s->len, ptr, n);
	s->len += n;
	s->buf[s->len] = '\0';
	return n;
}

/* Refusal KIND with a message; counted for metrics. Returns the matching
 * error of outbound_request(). */
static int refuse(struct outbound_response *out, enum ssrf_kind kind, const char *msg)
{
	out->kind = kind;
	text_copy(out->error, sizeof(out->error), msg);
	atomic_fetch_add(&blocked_total[kind], 1);
	metrics_inc(METRIC_OUTBOUND_BLOCKED, ssrf_kind_name(kind));
	/* The reason only: the URL may carry a customer's path or query. */
	log_warn("outbound.blocked", "reason", ssrf_kind_name(kind), NULL);
	switch (kind) {
	case SSRF_DNS_FAILURE:
	case SSRF_TIMEOUT:
	case SSRF_RESPONSE_TOO_LARGE:
	case SSRF_CONNECT_FAILED:
		return BZ_ERR_UNAVAILABLE;
	default:
		return BZ_ERR_FORBIDDEN;
	}
}

/* Checks the parts of URL U before a hop: scheme, credentials, host. Sets
 * *ALLOWLISTED and copies the lower-cased host into HOST (HOST_LEN bytes).
 * Returns 0 or refuse()'s. */
static int check_url(const struct ssrf_policy *p, CURLU *u, int *allowlisted, char *host,
		     size_t host_len, struct outbound_response *out)
{
	char *scheme = NULL, *h = NULL, *x = NULL;
	int rc = 0;

	if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0))
		rc = refuse(out, SSRF_BAD_SCHEME, "only http and https URLs are allowed");
	else if (curl_url_get(u, CURLUPART_USER, &x, 0) == CURLUE_OK ||
		 curl_url_get(u, CURLUPART_PASSWORD, &x, 0) == CURLUE_OK)
		rc = refuse(out, SSRF_BAD_URL, "credentials in the URL are not allowed");
	else if (curl_url_get(u, CURLUPART_HOST, &h, 0) != CURLUE_OK || h[0] == '\0')
		rc = refuse(out, SSRF_BAD_URL, "URL has no host");
	else if (ssrf_host_allowed(p, h, allowlisted) != SSRF_OK)
		rc = refuse(out, SSRF_BLOCKED_HOST, "destination host is not allowed");
	if (rc == 0) {
		for (char *c = h; *c; c++)
			*c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
		text_copy(host, host_len, h);
	}
	curl_free(scheme);
	curl_free(h);
	curl_free(x);
	return rc;
}

/* Maps a failed transfer to a refusal. */
static int transfer_failed(CURLcode cc, const struct hop *h, const struct sink *s,
			   struct outbound_response *out)
{
	if (h->blocked) {
		text_copy(out->blocked_address, sizeof(out->blocked_address), h->address);
		out->blocked_reason = h->reason;
		return refuse(out, SSRF_BLOCKED_ADDRESS, "destination address is not allowed");
	}
	if (s->overflow || cc == CURLE_FILESIZE_EXCEEDED)
		return refuse(out, SSRF_RESPONSE_TOO_LARGE, "response exceeds the size limit");
	if (cc == CURLE_COULDNT_RESOLVE_HOST)
		return refuse(out, SSRF_DNS_FAILURE, "host name does not resolve");
	if (cc == CURLE_OPERATION_TIMEDOUT)
		return refuse(out, SSRF_TIMEOUT, "request timed out");
	if (cc == CURLE_UNSUPPORTED_PROTOCOL)
		return refuse(out, SSRF_BAD_SCHEME, "only http and https URLs are allowed");
	if (cc == CURLE_OUT_OF_MEMORY)
		return BZ_ERR_NOMEM;
	return refuse(out, SSRF_CONNECT_FAILED, curl_easy_strerror(cc));
}

/* One hop's settings. */
struct hop_args {
	const char *method;
	const char *body;
	size_t body_len;
	struct curl_slist *headers; /* or NULL */
	struct curl_slist *resolve; /* tests only, or NULL */
	long connect_ms, left_ms;
	size_t max_bytes;
};

/* Sets up E for one hop to U. */
static void hop_setopt(CURL *e, CURLU *u, const struct hop_args *a, struct hop *h, struct sink *s)
{
	curl_easy_setopt(e, CURLOPT_CURLU, u);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_PROXY, ""); /* never a proxy from the environment */
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_socket);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, h);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, a->connect_ms);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, a->left_ms);
	curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)a->max_bytes);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "Breeze/" BREEZE_VERSION);
	if (a->headers != NULL)
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, a->headers);
	if (a->resolve != NULL)
		curl_easy_setopt(e, CURLOPT_RESOLVE, a->resolve);
	if (strcmp(a->method, "POST") == 0) {
		curl_easy_setopt(e, CURLOPT_POST, 1L);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, a->body ? a->body : "");
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)a->body_len);
	} else if (strcmp(a->method, "GET") != 0) {
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, a->method);
	}
}

/* Performs one hop to U. On a 3xx with a Location, *NEXT is the absolute
 * target (curl_free). Returns 0 or a refusal. */
static int one_hop(const struct ssrf_policy *p, CURLU *u, int allowlisted, const struct hop_args *a,
		   struct outbound_response *out, char **next)
{
	struct hop h = {.policy = p, .name_allowlisted = allowlisted};
	struct sink s = {.max = a->max_bytes};
	CURL *e = curl_easy_init();
	char *loc = NULL;
	CURLcode cc;
	int rc = 0;

	*next = NULL;
	if (e == NULL)
		return BZ_ERR_NOMEM;
	hop_setopt(e, u, a, &h, &s);
	cc = curl_easy_perform(e);
	if (cc != CURLE_OK) {
		rc = transfer_failed(cc, &h, &s, out);
		free(s.buf);
	} else {
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &out->status);
		free(out->body);
		out->body = s.buf;
		out->body_len = s.len;
		if (out->status >= 300 && out->status < 400 &&
		    curl_easy_getinfo(e, CURLINFO_REDIRECT_URL, &loc) == CURLE_OK && loc != NULL)
			*next = strdup(loc);
	}
	curl_easy_cleanup(e);
	return rc;
}

/* Builds the curl header list of RQ. Returns 0 or BZ_ERR_NOMEM. */
static int headers_of(const struct outbound_request *rq, struct curl_slist **hdrs,
		      struct curl_slist **resolve)
{
	struct curl_slist *t;

	*hdrs = NULL;
	*resolve = NULL;
	/* No "Expect: 100-continue" round trip on larger bodies. */
	if ((*hdrs = curl_slist_append(NULL, "Expect:")) == NULL)
		return BZ_ERR_NOMEM;
	for (size_t i = 0; rq->headers != NULL && rq->headers[i] != NULL; i++) {
		if ((t = curl_slist_append(*hdrs, rq->headers[i])) == NULL)
			return BZ_ERR_NOMEM;
		*hdrs = t;
	}
	for (size_t i = 0; rq->test_resolve != NULL && rq->test_resolve[i] != NULL; i++) {
		if ((t = curl_slist_append(*resolve, rq->test_resolve[i])) == NULL)
			return BZ_ERR_NOMEM;
		*resolve = t;
	}
	return 0;
}

/* The origin of U (RFC 6454: scheme, host, port) into OUT, given its
 * lower-cased HOST. */
static void origin_of(CURLU *u, const char *host, char *out, size_t len)
{
	char *scheme = NULL, *port = NULL;

	curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
	curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT);
	snprintf(out, len, "%s://%s:%s", scheme ? scheme : "", host, port ? port : "");
	curl_free(scheme);
	curl_free(port);
}

/* Follows the hops of RQ from U. */
static int run_hops(const struct ssrf_policy *p, const struct outbound_request *rq, CURLU *u,
		    struct hop_args *a, struct outbound_response *out)
{
	int64_t deadline = bz_monotonic_ms() + a->left_ms;
	char host[SSRF_HOST_MAX + 3], first_origin[SSRF_HOST_MAX + 32], origin[SSRF_HOST_MAX + 32];
	struct curl_slist *caller_headers = a->headers;
	int allowlisted, rc;

	for (int hop = 0;; hop++) {
		char *next = NULL, *url = NULL;

		if ((rc = check_url(p, u, &allowlisted, host, sizeof(host), out)) != 0)
			return rc;
		origin_of(u, host, origin, sizeof(origin));
		if (hop == 0)
			text_copy(first_origin, sizeof(first_origin), origin);
		/* Credentials never travel to another origin (host, port or
		 * scheme: RFC 6454), nor does a body a 307/308 would repeat. */
		int same = strcmp(origin, first_origin) == 0;
		a->headers = same ? caller_headers : NULL;
		if (!same) {
			a->body = NULL;
			a->body_len = 0;
			if (strcmp(a->method, "POST") == 0)
				a->method = "GET";
		}
		if (curl_url_get(u, CURLUPART_URL, &url, 0) == CURLUE_OK)
			text_copy(out->final_url, sizeof(out->final_url), url);
		curl_free(url);
		a->left_ms = (long)(deadline - bz_monotonic_ms());
		if (a->left_ms <= 0)
			return refuse(out, SSRF_TIMEOUT, "request timed out");
		rc = one_hop(p, u, allowlisted, a, out, &next);
		if (rc != 0 || next == NULL || !rq->follow_redirects) {
			free(next);
			return rc;
		}
		if (hop == OUTBOUND_MAX_REDIRECTS) {
			free(next);
			return refuse(out, SSRF_TOO_MANY_REDIRECTS, "too many redirects");
		}
		CURLUcode uc = curl_url_set(u, CURLUPART_URL, next, 0);
		free(next);
		if (uc != CURLUE_OK)
			return refuse(out, SSRF_BAD_URL, "redirect target is not a valid URL");
		out->redirects++;
		/* RFC 9110 §15.4: after 301/302/303 user agents repeat as GET;
		 * 307 and 308 keep the method and body. */
		if (out->status != 307 && out->status != 308) {
			a->method = "GET";
			a->body = NULL;
			a->body_len = 0;
		}
	}
}

int outbound_request(const struct ssrf_policy *p, const struct outbound_request *rq,
		     struct outbound_response *out)
{
	struct hop_args a = {
		.method = rq->method ? rq->method : "GET",
		.body = rq->body,
		.body_len = rq->body_len,
		.connect_ms = rq->connect_timeout_ms > 0 ? rq->connect_timeout_ms
							 : OUTBOUND_CONNECT_TIMEOUT_MS,
		.left_ms = rq->total_timeout_ms > 0 ? rq->total_timeout_ms
						    : OUTBOUND_TOTAL_TIMEOUT_MS,
		.max_bytes = rq->max_response_bytes > 0 ? rq->max_response_bytes
							: OUTBOUND_MAX_RESPONSE_BYTES,
	};
	struct curl_slist *hdrs = NULL, *resolve = NULL;
	CURLU *u = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	if (rq->url == NULL || (u = curl_url()) == NULL) {
		rc = u == NULL && rq->url != NULL ? BZ_ERR_NOMEM
						  : refuse(out, SSRF_BAD_URL, "no URL given");
		goto done;
	}
	/* Known schemes only; curl_url refuses others, which is bad_scheme. */
	CURLUcode uc = curl_url_set(u, CURLUPART_URL, rq->url, 0);
	if (uc == CURLUE_UNSUPPORTED_SCHEME || uc == CURLUE_BAD_SCHEME) {
		rc = refuse(out, SSRF_BAD_SCHEME, "only http and https URLs are allowed");
		goto done;
	}
	if (uc != CURLUE_OK) {
		rc = refuse(out, SSRF_BAD_URL, "not a valid absolute URL");
		goto done;
	}
	if ((rc = headers_of(rq, &hdrs, &resolve)) != 0)
		goto done;
	a.headers = hdrs;
	a.resolve = resolve;
	rc = run_hops(p, rq, u, &a, out);
done:
	curl_slist_free_all(hdrs);
	curl_slist_free_all(resolve);
	curl_url_cleanup(u);
	return rc;
}

void outbound_response_free(struct outbound_response *out)
{
	if (out == NULL)
		return;
	free(out->body);
	memset(out, 0, sizeof(*out));
}
