#include "agent/client.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "agent/config.h"
#include "common/clock.h"
#include "common/log.h"

int agent_http_global_init(void)
{
	return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -EIO;
}

void agent_http_global_cleanup(void)
{
	curl_global_cleanup();
}

static void set_err(char *err, size_t len, const char *msg)
{
	if (err != NULL && len > 0)
		snprintf(err, len, "%s", msg);
}

/* Returns 1 if part P of U is set (and not empty). */
static int has_part(CURLU *u, CURLUPart p)
{
	char *v = NULL;
	int set = curl_url_get(u, p, &v, 0) == CURLUE_OK && v != NULL && v[0] != '\0';

	curl_free(v);
	return set;
}

int agent_http_normalize_url(const char *url, char **out, char *err, size_t err_len)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *path = NULL, *full = NULL;
	int rc = -EINVAL;

	*out = NULL;
	if (u == NULL)
		return -ENOMEM;
	if (url == NULL || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK) {
		set_err(err, err_len,
			"not a valid absolute URL (expected https://host[:port][/path])");
		goto out;
	}
	if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    (strcmp(scheme, "https") != 0 && strcmp(scheme, "http") != 0)) {
		set_err(err, err_len, "scheme must be http or https");
		goto out;
	}
	if (!has_part(u, CURLUPART_HOST)) {
		set_err(err, err_len, "URL has no host");
		goto out;
	}
	/* Credentials would end up in agent.yaml and in logs; a query or
	 * fragment has no meaning for an API base. */
	if (has_part(u, CURLUPART_USER) || has_part(u, CURLUPART_PASSWORD) ||
	    has_part(u, CURLUPART_OPTIONS)) {
		set_err(err, err_len, "URL must not contain credentials");
		goto out;
	}
	if (has_part(u, CURLUPART_QUERY) || has_part(u, CURLUPART_FRAGMENT)) {
		set_err(err, err_len, "URL must not contain a query or fragment");
		goto out;
	}
	if (curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK)
		goto out;
	size_t n = strlen(path);
	while (n > 1 && path[n - 1] == '/')
		path[--n] = '\0';
	if (curl_url_set(u, CURLUPART_PATH, path, 0) != CURLUE_OK)
		goto out;
	if (curl_url_get(u, CURLUPART_URL, &full, 0) != CURLUE_OK)
		goto out;
	n = strlen(full);
	if (n > 0 && full[n - 1] == '/')
		full[n - 1] = '\0';
	*out = strdup(full);
	rc = *out ? 0 : -ENOMEM;
out:
	curl_free(scheme);
	curl_free(path);
	curl_free(full);
	curl_url_cleanup(u);
	return rc;
}

int agent_http_join(const char *base, const char *path, char **out)
{
	CURLU *u = curl_url();
	char *bpath = NULL, *full = NULL, *joined = NULL;
	int rc = -EINVAL;

	*out = NULL;
	if (u == NULL)
		return -ENOMEM;
	if (path == NULL || path[0] != '/' || curl_url_set(u, CURLUPART_URL, base, 0) != CURLUE_OK)
		goto out;
	if (curl_url_get(u, CURLUPART_PATH, &bpath, 0) != CURLUE_OK)
		goto out;
	size_t bl = strlen(bpath), pl = strlen(path);
	while (bl > 0 && bpath[bl - 1] == '/')
		bl--;
	joined = malloc(bl + pl + 1);
	if (joined == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	memcpy(joined, bpath, bl);
	memcpy(joined + bl, path, pl + 1);
	if (curl_url_set(u, CURLUPART_PATH, joined, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_URL, &full, 0) != CURLUE_OK)
		goto out;
	*out = strdup(full);
	rc = *out ? 0 : -ENOMEM;
out:
	free(joined);
	curl_free(bpath);
	curl_free(full);
	curl_url_cleanup(u);
	return rc;
}

long long agent_http_parse_retry_after(const char *value, long long now_s)
{
	const char *p = value;
	long long v = 0;

	if (value == NULL)
		return AGENT_RETRY_AFTER_NONE;
	while (*p == ' ' || *p == '\t')
		p++;
	if (isdigit((unsigned char)*p)) {
		for (; isdigit((unsigned char)*p); p++) {
			/* Saturate instead of wrapping: a huge value stays huge. */
			if (v < 1000000000LL)
				v = v * 10 + (*p - '0');
		}
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p != '\0')
			return AGENT_RETRY_AFTER_NONE;
		return v > 1000000000LL ? 1000000000LL : v;
	}
	time_t t = curl_getdate(p, NULL);
	if (t == (time_t)-1)
		return AGENT_RETRY_AFTER_NONE;
	return (long long)t > now_s ? (long long)t - now_s : 0;
}

/* Response body, capped at AGENT_HTTP_MAX_RESPONSE_BYTES. */
struct rbuf {
	char *data;
	size_t len;
	int too_big;
};

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *ctx)
{
	struct rbuf *b = ctx;
	size_t n = size * nmemb;

	if (n > AGENT_HTTP_MAX_RESPONSE_BYTES - b->len) {
		b->too_big = 1;
		return 0; /* aborts the transfer */
	}
	char *nd = realloc(b->data, b->len + n + 1);
	if (nd == NULL)
		return 0;
	b->data = nd;
	memcpy(b->data + b->len, ptr, n);
	b->len += n;
	b->data[b->len] = '\0';
	return n;
}

static int progress_cb(void *ctx, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	volatile sig_atomic_t *cancel = ctx;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return cancel != NULL && *cancel ? 1 : 0;
}

static void free_secret_slist(struct curl_slist *l)
{
	for (struct curl_slist *p = l; p != NULL; p = p->next)
		OPENSSL_cleanse(p->data, strlen(p->data));
	curl_slist_free_all(l);
}

/* One POST in the making: everything agent_http_post_json() owns. The
 * payload, the Authorization line and the response can hold a secret, so
 * release_request() zeroes them. */
struct post_req {
	CURL *c;
	struct curl_slist *hdrs;
	struct rbuf rb;
	char *payload; /* json_dumps of the body */
	size_t payload_len;
	char auth[1100]; /* "Authorization: Bearer " + a token of at most 1024 bytes */
	char idem[64];	 /* "Idempotency-Key: " + AGENT_IDEMPOTENCY_KEY_LEN hex digits */
	char errbuf[CURL_ERROR_SIZE];
};

/* Appends LINE to *HDRS. Returns 0 or -ENOMEM (*HDRS unchanged). */
static int add_header(struct curl_slist **hdrs, const char *line)
{
	struct curl_slist *nh = curl_slist_append(*hdrs, line);

	if (nh == NULL)
		return -ENOMEM;
	*hdrs = nh;
	return 0;
}

/* Adds "Idempotency-Key: KEY" to R when KEY is not NULL. Returns 0, -EINVAL
 * (KEY not AGENT_IDEMPOTENCY_KEY_LEN hex digits) or -ENOMEM. */
static int add_idempotency_key(struct post_req *r, const char *key)
{
	if (key == NULL)
		return 0;
	if (strlen(key) != AGENT_IDEMPOTENCY_KEY_LEN ||
	    strspn(key, "0123456789abcdef") != AGENT_IDEMPOTENCY_KEY_LEN)
		return -EINVAL;
	snprintf(r->idem, sizeof(r->idem), "Idempotency-Key: %s", key);
	return add_header(&r->hdrs, r->idem);
}

/* Serialises BODY into R->payload, creates the handle and the header list,
 * with "Authorization: Bearer BEARER" when BEARER is not NULL. Returns 0,
 * -EINVAL if BEARER is not a valid token, or -ENOMEM. */
static int build_request(struct post_req *r, const char *bearer, const json_t *body)
{
	int n;

	r->payload = json_dumps(body, JSON_COMPACT);
	if (r->payload == NULL)
		return -ENOMEM;
	r->payload_len = strlen(r->payload);
	if ((r->c = curl_easy_init()) == NULL)
		return -ENOMEM;
	if (add_header(&r->hdrs, "Content-Type: application/json") != 0 ||
	    add_header(&r->hdrs, "Accept: application/json") != 0)
		return -ENOMEM;
	if (bearer == NULL)
		return 0;
	n = snprintf(r->auth, sizeof(r->auth), "Authorization: Bearer %s", bearer);
	if (n < 0 || (size_t)n >= sizeof(r->auth) || !agent_config_valid_token(bearer))
		return -EINVAL;
	return add_header(&r->hdrs, r->auth);
}

/* The transfer policy of every request (client.h): http(s) only, peers
 * verified, no redirects, bounded time, cancellable through CANCEL. */
static void set_options(struct post_req *r, const char *url, volatile sig_atomic_t *cancel)
{
	CURL *c = r->c;

	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)AGENT_HTTP_CONNECT_TIMEOUT_S);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)AGENT_HTTP_TOTAL_TIMEOUT_S);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "breeze-agent/" AGENT_VERSION);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, r->hdrs);
	curl_easy_setopt(c, CURLOPT_POST, 1L);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, r->payload);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->payload_len);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->rb);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, progress_cb);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, (void *)cancel);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, r->errbuf);
}

/* Runs the transfer. Returns 0 when a response arrived; otherwise writes
 * why into RES->error and returns -ECANCELED or -EIO. */
static int run_request(struct post_req *r, struct agent_http_result *res)
{
	CURLcode cc = curl_easy_perform(r->c);

	if (cc == CURLE_OK)
		return 0;
	if (cc == CURLE_ABORTED_BY_CALLBACK) {
		set_err(res->error, sizeof(res->error), "cancelled");
		return -ECANCELED;
	}
	if (r->rb.too_big)
		set_err(res->error, sizeof(res->error), "response too large");
	else
		set_err(res->error, sizeof(res->error),
			r->errbuf[0] ? r->errbuf : curl_easy_strerror(cc));
	return -EIO;
}

/* Fills RES from the response that arrived: status, Retry-After, and the
 * body when it is JSON (NULL otherwise; the status alone is the answer). */
static void read_response(struct post_req *r, struct agent_http_result *res)
{
	struct curl_header *h = NULL;

	curl_easy_getinfo(r->c, CURLINFO_RESPONSE_CODE, &res->status);
	if (curl_easy_header(r->c, "Retry-After", 0, CURLH_HEADER, -1, &h) == CURLHE_OK &&
	    h != NULL)
		res->retry_after_s = agent_http_parse_retry_after(h->value, (long long)bz_now());
	if (r->rb.len > 0)
		res->body = json_loadb(r->rb.data, r->rb.len, JSON_REJECT_DUPLICATES, NULL);
}

/* Zeroes and frees what build_request() and the transfer left in R. */
static void release_request(struct post_req *r)
{
	OPENSSL_cleanse(r->auth, sizeof(r->auth));
	if (r->payload != NULL) {
		OPENSSL_cleanse(r->payload, r->payload_len);
		free(r->payload);
	}
	if (r->rb.data != NULL) {
		/* A response may carry a new token. */
		OPENSSL_cleanse(r->rb.data, r->rb.len);
		free(r->rb.data);
	}
	if (r->c != NULL)
		curl_easy_cleanup(r->c);
	free_secret_slist(r->hdrs);
}

int agent_http_idempotency_key(char out[AGENT_IDEMPOTENCY_KEY_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char b[AGENT_IDEMPOTENCY_KEY_LEN / 2];

	if (RAND_bytes(b, (int)sizeof(b)) != 1)
		return -EIO;
	for (size_t i = 0; i < sizeof(b); i++) {
		out[2 * i] = hex[b[i] >> 4];
		out[2 * i + 1] = hex[b[i] & 15];
	}
	out[AGENT_IDEMPOTENCY_KEY_LEN] = '\0';
	return 0;
}

int agent_http_post_json(const char *url, const char *bearer, const json_t *body,
			 volatile sig_atomic_t *cancel, struct agent_http_result *res)
{
	return agent_http_post_json_keyed(url, bearer, NULL, body, cancel, res);
}

int agent_http_post_json_keyed(const char *url, const char *bearer, const char *key,
			       const json_t *body, volatile sig_atomic_t *cancel,
			       struct agent_http_result *res)
{
	struct post_req r = {0};
	int rc;

	memset(res, 0, sizeof(*res));
	res->retry_after_s = AGENT_RETRY_AFTER_NONE;
	if ((rc = build_request(&r, bearer, body)) != 0 || (rc = add_idempotency_key(&r, key)) != 0)
		goto out;
	set_options(&r, url, cancel);
	if ((rc = run_request(&r, res)) != 0)
		goto out;
	read_response(&r, res);
out:
	release_request(&r);
	return rc;
}

void agent_http_json_cleanse(json_t *j)
{
	const char *k;
	json_t *v;
	size_t i;

	if (json_is_string(j)) {
		/* jansson owns the buffer and frees it without zeroing. */
		OPENSSL_cleanse((void *)json_string_value(j), json_string_length(j));
	} else if (json_is_object(j)) {
		json_object_foreach(j, k, v)
			agent_http_json_cleanse(v);
	} else if (json_is_array(j)) {
		json_array_foreach(j, i, v)
			agent_http_json_cleanse(v);
	}
}

void agent_http_result_free(struct agent_http_result *res)
{
	if (res == NULL)
		return;
	/* Enrolment and heartbeat responses may carry a token. */
	agent_http_json_cleanse(res->body);
	json_decref(res->body);
	memset(res, 0, sizeof(*res));
	res->retry_after_s = AGENT_RETRY_AFTER_NONE;
}

json_t *agent_http_enroll_body(const char *key, const char *secret, const struct agent_host *h)
{
	json_t *hw = json_pack("{s:I, s:I, s:I, s:s, s:s}", "cpuCount", (json_int_t)h->cpu_count,
			       "memoryTotalBytes", (json_int_t)h->mem_total_bytes, "diskTotalBytes",
			       (json_int_t)h->disk_total_bytes, "kernel", h->kernel, "cpuModel",
			       h->cpu_model);
	if (hw == NULL)
		return NULL;
	if (h->machine_id[0] != '\0' &&
	    json_object_set_new(hw, "machineId", json_string(h->machine_id)) != 0) {
		json_decref(hw);
		return NULL;
	}
	json_t *b = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:o}", "enrollmentKey", key,
			      "hostname", h->hostname, "osType", h->os_type, "osVersion",
			      h->os_version, "architecture", h->arch, "agentVersion", AGENT_VERSION,
			      "hardware", hw);
	if (b == NULL)
		return NULL;
	if (secret != NULL &&
	    json_object_set_new(b, "enrollmentSecret", json_string(secret)) != 0) {
		json_decref(b);
		return NULL;
	}
	return b;
}

json_t *agent_http_heartbeat_body(const struct agent_host *h, const struct agent_metrics *m)
{
	json_t *mx = json_pack("{s:f, s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:I}", "cpuPercent",
			       m->cpu_percent, "memoryUsedBytes", (json_int_t)m->mem_used_bytes,
			       "memoryTotalBytes", (json_int_t)m->mem_total_bytes, "diskUsedBytes",
			       (json_int_t)m->disk_used_bytes, "diskTotalBytes",
			       (json_int_t)m->disk_total_bytes, "load1", m->load1, "load5",
			       m->load5, "load15", m->load15, "cpuCount", (json_int_t)m->cpu_count);
	if (mx == NULL)
		return NULL;
	return json_pack("{s:s, s:s, s:I, s:s, s:s, s:s, s:s, s:s, s:o}", "status", "online",
			 "agentVersion", AGENT_VERSION, "uptimeSeconds", (json_int_t)m->uptime_s,
			 "hostname", h->hostname, "osType", h->os_type, "osVersion", h->os_version,
			 "kernel", h->kernel, "architecture", h->arch, "metrics", mx);
}

/* Copies an optional string member; a present non-string is an error. */
static int opt_string(const json_t *obj, const char *key, char **out)
{
	json_t *v = json_object_get(obj, key);

	*out = NULL;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return -EBADMSG;
	*out = strdup(json_string_value(v));
	return *out ? 0 : -ENOMEM;
}

static long interval_from(const json_t *body)
{
	json_t *cfg = json_object_get(body, "config");
	json_t *iv = json_is_object(cfg) ? json_object_get(cfg, "heartbeatIntervalSeconds") : NULL;

	if (!json_is_integer(iv))
		return 0;
	json_int_t v = json_integer_value(iv);
	if (v > AGENT_INTERVAL_MAX_S)
		v = AGENT_INTERVAL_MAX_S;
	return agent_config_clamp_interval((long)v);
}

int agent_http_parse_enroll(const json_t *body, struct agent_enroll_result *out)
{
	int rc;

	memset(out, 0, sizeof(*out));
	if (!json_is_object(body))
		return -EBADMSG;
	if ((rc = opt_string(body, "agentId", &out->agent_id)) != 0 ||
	    (rc = opt_string(body, "authToken", &out->auth_token)) != 0 ||
	    (rc = opt_string(body, "orgId", &out->org_id)) != 0 ||
	    (rc = opt_string(body, "siteId", &out->site_id)) != 0)
		goto out;
	if (!agent_config_valid_id(out->agent_id) || !agent_config_valid_token(out->auth_token)) {
		rc = -EBADMSG;
		goto out;
	}
	out->heartbeat_interval_s = interval_from(body);
	if (out->heartbeat_interval_s == 0)
		out->heartbeat_interval_s = AGENT_INTERVAL_DEFAULT_S;
out:
	if (rc != 0)
		agent_http_enroll_result_free(out);
	return rc;
}

void agent_http_enroll_result_free(struct agent_enroll_result *out)
{
	if (out == NULL)
		return;
	free(out->agent_id);
	agent_config_free_token(out->auth_token);
	free(out->org_id);
	free(out->site_id);
	memset(out, 0, sizeof(*out));
}

int agent_http_parse_heartbeat(const json_t *body, long *interval_s, int *rotate)
{
	*interval_s = 0;
	*rotate = 0;
	if (!json_is_object(body))
		return 0;
	*interval_s = interval_from(body);
	*rotate = json_is_true(json_object_get(body, "rotateToken"));
	return 0;
}

int agent_http_parse_rotation(const json_t *body, char **token)
{
	json_t *t = json_is_object(body) ? json_object_get(body, "authToken") : NULL;

	*token = NULL;
	if (!json_is_string(t) || !agent_config_valid_token(json_string_value(t)))
		return -EBADMSG;
	*token = strdup(json_string_value(t));
	return *token ? 0 : -ENOMEM;
}

const char *agent_http_error_code(const struct agent_http_result *res)
{
	json_t *err = json_is_object(res->body) ? json_object_get(res->body, "error") : NULL;
	const char *code = json_is_object(err) ? json_string_value(json_object_get(err, "code"))
					       : NULL;

	return code != NULL ? code : "";
}

void agent_http_describe_error(const struct agent_http_result *res, char *buf, size_t len)
{
	const char *code = NULL, *msg = NULL, *reason = NULL;
	json_t *err = json_is_object(res->body) ? json_object_get(res->body, "error") : NULL;

	if (json_is_object(err)) {
		code = json_string_value(json_object_get(err, "code"));
		msg = json_string_value(json_object_get(err, "message"));
	}
	if (json_is_object(res->body))
		reason = json_string_value(json_object_get(res->body, "reason"));
	snprintf(buf, len, "HTTP %ld%s%s%s%s%s%s", res->status, code ? " " : "", code ? code : "",
		 msg ? ": " : "", msg ? msg : "", reason ? " (reason: " : "", reason ? reason : "");
	if (reason != NULL) {
		size_t n = strlen(buf);
		if (n + 1 < len) {
			buf[n] = ')';
			buf[n + 1] = '\0';
		}
	}
}
