/*
 * client.h — the agent's side of the server API: URL handling, the JSON it
 * sends (enroll, heartbeat), what it accepts back, and one POST function over
 * libcurl.
 *
 * URLs are parsed and joined with curl_url, the same parser that makes the
 * request. Only http and https are allowed; TLS peers are always verified;
 * redirects are never followed (a redirect would carry the token elsewhere).
 * Tokens and enrolment secrets are zeroed in every buffer this module owns.
 */
#ifndef BZ_AGENT_CLIENT_H
#define BZ_AGENT_CLIENT_H

#include <signal.h>
#include <stddef.h>

#include <jansson.h>

#include "agent/inventory.h"

/* The version reported to the server (from the VERSION file via CMake). */
#ifdef BREEZE_VERSION
#define AGENT_VERSION BREEZE_VERSION
#else
#define AGENT_VERSION "0.0.0-dev"
#endif

#define AGENT_HTTP_CONNECT_TIMEOUT_S 10
#define AGENT_HTTP_TOTAL_TIMEOUT_S 30
#define AGENT_HTTP_MAX_RESPONSE_BYTES (1024 * 1024)

/* "No usable Retry-After". The value is a duration, not a status, so the
 * sentinel is one no duration can take rather than a negated errno. */
#define AGENT_RETRY_AFTER_NONE (-1LL)

struct agent_http_result {
	long status;		 /* HTTP status; 0 if no response arrived */
	long long retry_after_s; /* Retry-After in seconds; AGENT_RETRY_AFTER_NONE if absent
				  * or unparseable */
	json_t *body;		 /* parsed JSON response, or NULL; owned */
	char error[256];	 /* transport error text when status is 0 */
};

struct agent_enroll_result {
	char *agent_id;		   /* owned, valid per agent_config_valid_id */
	char *auth_token;	   /* owned secret: free with agent_config_free_token */
	char *org_id;		   /* owned, may be NULL */
	char *site_id;		   /* owned, may be NULL */
	long heartbeat_interval_s; /* clamped; default if the server sent none */
};

/* Initialises libcurl once per process (call before any thread starts).
 * Returns 0 or -EIO. */
int agent_http_global_init(void);

/* Releases what agent_http_global_init() set up. */
void agent_http_global_cleanup(void);

/* Validates and normalises a server base URL: scheme http or https, a host,
 * no credentials, query or fragment; a trailing '/' is dropped. On success
 * *OUT is malloc'd (caller frees). Returns 0, -EINVAL (bad URL or scheme,
 * with a reason in ERR of ERR_LEN bytes) or -ENOMEM. */
int agent_http_normalize_url(const char *url, char **out, char *err, size_t err_len);

/* Appends PATH (starting with '/') to the base URL BASE's path. *OUT is
 * malloc'd (caller frees). Returns 0, -EINVAL or -ENOMEM. */
int agent_http_join(const char *base, const char *path, char **out);

/* POSTs BODY (serialised compact, Content-Type: application/json) to URL,
 * with "Authorization: Bearer BEARER" if BEARER is not NULL. CANCEL, if not
 * NULL, is polled during the transfer and aborts it when non-zero. Fills RES
 * (free with agent_http_result_free, whatever the return). Returns 0 when
 * an HTTP response arrived, whatever its status; -EIO on a transport error
 * (connect, TLS, timeout, oversized response; RES->error says which),
 * -ECANCELED if cancelled, -EINVAL if BEARER is not a valid token
 * (agent_config_valid_token; nothing is sent), -ENOMEM. */
int agent_http_post_json(const char *url, const char *bearer, const json_t *body,
			 volatile sig_atomic_t *cancel, struct agent_http_result *res);

/* Length of an Idempotency-Key made by agent_http_idempotency_key(). */
#define AGENT_IDEMPOTENCY_KEY_LEN 32

/* A new Idempotency-Key (the IETF draft "The Idempotency-Key HTTP Header
 * Field"): 16 bytes from OpenSSL's CSPRNG as 32 lower-case hex digits in
 * OUT[AGENT_IDEMPOTENCY_KEY_LEN + 1]. Returns 0 or -EIO. */
int agent_http_idempotency_key(char out[AGENT_IDEMPOTENCY_KEY_LEN + 1]);

/* Like agent_http_post_json, with "Idempotency-Key: KEY" when KEY is not
 * NULL (a key of agent_http_idempotency_key(); else -EINVAL, nothing sent),
 * so the server answers a retry of a request it already carried out from
 * its first answer instead of doing it twice. */
int agent_http_post_json_keyed(const char *url, const char *bearer, const char *key,
			       const json_t *body, volatile sig_atomic_t *cancel,
			       struct agent_http_result *res);

/* Zeroes, in place, every string value in J (recursively): used before
 * freeing JSON that held a key, secret or token. NULL-safe. */
void agent_http_json_cleanse(json_t *j);

/* Zeroes the strings of RES->body, frees it and resets RES. NULL-safe. */
void agent_http_result_free(struct agent_http_result *res);

/* Parses a Retry-After value (RFC 9110 §10.2.3): delta-seconds, or an HTTP
 * date (seconds from NOW_S, at least 0). Returns the seconds, 0 to 10^9
 * (larger values saturate), or AGENT_RETRY_AFTER_NONE if VALUE is NULL or
 * neither form. */
long long agent_http_parse_retry_after(const char *value, long long now_s);

/* Builds the enrolment request body. SECRET may be NULL (field left out).
 * Returns a new reference, or NULL on allocation failure; the caller must
 * json_decref it (json_dumps of it holds the key: zero that buffer). */
json_t *agent_http_enroll_body(const char *key, const char *secret, const struct agent_host *h);

/* Builds a heartbeat request body. Returns a new reference or NULL. */
json_t *agent_http_heartbeat_body(const struct agent_host *h, const struct agent_metrics *m);

/* Extracts and validates a 201 enrolment response. OUT is zeroed first;
 * free with agent_http_enroll_result_free. Returns 0; -EBADMSG if BODY is
 * not an object, a field has the wrong type or agentId/authToken is missing
 * or invalid (OUT is empty then); -ENOMEM. */
int agent_http_parse_enroll(const json_t *body, struct agent_enroll_result *out);

/* Frees OUT's strings, zeroing the token. NULL-safe. */
void agent_http_enroll_result_free(struct agent_enroll_result *out);

/* Reads a 200 heartbeat response. *INTERVAL_S is set to the clamped
 * config.heartbeatIntervalSeconds, or 0 if absent. *ROTATE is set to 1 when
 * the server asks for a token rotation ("rotateToken": true), else 0.
 * Returns 0 (a response without these members is not an error). */
int agent_http_parse_heartbeat(const json_t *body, long *interval_s, int *rotate);

/* Reads the authToken of a 200 rotate-token response into *TOKEN (malloc'd;
 * the caller frees it with agent_config_free_token). Returns 0; -EBADMSG if
 * BODY is not an object or authToken is missing or fails
 * agent_config_valid_token() (*TOKEN is NULL then); -ENOMEM. */
int agent_http_parse_rotation(const json_t *body, char **token);

/* The error.code of an error response (borrowed from RES->body), or "" when
 * there is none. */
const char *agent_http_error_code(const struct agent_http_result *res);

/* Writes a one-line description of an error response into BUF: the
 * server's error.code, error.message and reason, when present. */
void agent_http_describe_error(const struct agent_http_result *res, char *buf, size_t len);

#endif
