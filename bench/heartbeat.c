/*
 * heartbeat — the heartbeat load generator (issue 13 §1): N simulated
 * agents send heartbeats to a running breeze-server at a constant arrival
 * rate, over K kept-alive HTTP/1.1 connections (libcurl multi, no
 * pipelining). Prints figures only; asserts nothing.
 *
 *   bench_heartbeat --url URL [--agents N] [--connections K] [--rate R]
 *                   [--duration S] [--enroll] [--agents-file F]
 *                   [--server-pid P] [--pg-pid P] [--redis-pid P] [--json]
 *
 * Open loop: heartbeat i (i = 0, 1, …) is due at start + i/R and belongs to
 * agent i mod N, so every agent sends at R/N per second. Latency is measured
 * from the moment a heartbeat was due (or, if it was sent up to 1 ms early,
 * from when it was sent), so a server that falls behind shows its queueing
 * instead of slowing the generator down (no coordinated omission). An agent
 * has at most one heartbeat in flight; a due heartbeat waits for its
 * agent's previous one and for a free connection. What is still waiting when
 * the run ends is reported as "late_unsent"; answers still missing 10 s
 * after the end as "unanswered".
 *
 * --enroll first enrols N agents through POST /api/v1/agents/enroll with
 * the key and shared secret in BENCH_ENROLLMENT_KEY and
 * BENCH_ENROLLMENT_SECRET (the environment, not the command line, which
 * `ps` shows); with --agents-file the ids and tokens are written there
 * (mode 0600) for later runs, which read them instead of enrolling.
 *
 * Process figures come from /proc of the given pids (PostgreSQL: the
 * postmaster and its children). With BENCH_STATS_DATABASE_URL (a superuser
 * or pg_monitor URL of the cluster) it also prints SQL statements
 * (pg_stat_statements, when preloaded), transactions (pg_stat_database) and
 * WAL bytes and fsyncs (WAL position, pg_stat_wal) per heartbeat.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "heartbeat_probe.h"

#define TOKEN_MAX 128
#define HOST_MAX 64
#define BODY_MAX 2048
#define RESP_MAX 4096
#define GRACE_S 10.0 /* wait for answers after the run's end */
#define LOOKAHEAD_S 0.001

struct agent {
	char id[37];
	char token[TOKEN_MAX];
	char host[HOST_MAX];
	uint32_t due;	/* heartbeats due so far */
	uint32_t sent;	/* heartbeats sent so far */
	uint8_t busy;	/* one in flight */
	uint8_t queued; /* in the ready queue */
};

/* One easy handle; the multi handle keeps at most K connections. */
struct slot {
	CURL *e;
	struct curl_slist *hdr;
	long agent;
	double due, sent;
	char url[256];
	char auth[TOKEN_MAX + 32];
	char body[BODY_MAX];
	char resp[RESP_MAX];
	size_t resp_len;
};

struct opts {
	const char *url, *agents_file, *stats_db, *stats_role, *label;
	long n, k;
	double rate, duration;
	int enroll, json, server_pid, pg_pid, redis_pid;
};

struct result {
	long status[600]; /* answers by HTTP status */
	long transport;	  /* no HTTP answer (connection, timeout) */
	char transport_msg[CURL_ERROR_SIZE];
	long late_unsent, unanswered, sent;
	long connects;	  /* connections opened (keep-alive: about K) */
	uint32_t *lat_us; /* latency of every 2xx answer */
	size_t nlat, caplat;
	double t0, t_end; /* first due time, last answer */
};

static struct agent *agents;
static struct slot *slots;
static long *ready; /* ring of agent indices waiting for a connection */
static long ready_head, ready_len;
static long *free_slots, nfree;

static double mono(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void die(const char *msg)
{
	fprintf(stderr, "heartbeat: %s\n", msg);
	exit(1);
}

static size_t on_data(char *p, size_t sz, size_t n, void *ud)
{
	struct slot *s = ud;
	size_t len = sz * n, room = sizeof(s->resp) - 1 - s->resp_len;

	memcpy(s->resp + s->resp_len, p, len < room ? len : room);
	s->resp_len += len < room ? len : room;
	s->resp[s->resp_len] = '\0';
	return len;
}

static void slots_init(CURLM **m, const struct opts *o)
{
	*m = curl_multi_init();
	/* K kept-alive connections, one request at a time on each. */
	curl_multi_setopt(*m, CURLMOPT_MAX_TOTAL_CONNECTIONS, o->k);
	curl_multi_setopt(*m, CURLMOPT_MAX_HOST_CONNECTIONS, o->k);
	curl_multi_setopt(*m, CURLMOPT_MAXCONNECTS, o->k);
	curl_multi_setopt(*m, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING);
	slots = calloc((size_t)o->k, sizeof(*slots));
	free_slots = calloc((size_t)o->k, sizeof(*free_slots));
	if (slots == NULL || free_slots == NULL)
		die("out of memory");
	for (long i = 0; i < o->k; i++) {
		struct slot *s = &slots[i];
		s->e = curl_easy_init();
		curl_easy_setopt(s->e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
		curl_easy_setopt(s->e, CURLOPT_WRITEFUNCTION, on_data);
		curl_easy_setopt(s->e, CURLOPT_WRITEDATA, s);
		curl_easy_setopt(s->e, CURLOPT_PRIVATE, s);
		curl_easy_setopt(s->e, CURLOPT_TCP_NODELAY, 1L);
		curl_easy_setopt(s->e, CURLOPT_TIMEOUT_MS, (long)(GRACE_S * 1000));
		curl_easy_setopt(s->e, CURLOPT_NOSIGNAL, 1L);
		free_slots[nfree++] = i;
	}
}

/* Frees what slots_init() made; transfers still running are dropped. */
static void slots_free(CURLM *m, long k)
{
	for (long i = 0; i < k; i++) {
		curl_multi_remove_handle(m, slots[i].e);
		curl_easy_cleanup(slots[i].e);
		curl_slist_free_all(slots[i].hdr);
	}
	curl_multi_cleanup(m);
	free(slots);
	free(free_slots);
}

/* Starts a POST of S->body (LEN bytes) to PATH, with TOKEN if not NULL. */
static void slot_post(CURLM *m, struct slot *s, const struct opts *o, const char *path, size_t len,
		      const char *token)
{
	snprintf(s->url, sizeof(s->url), "%s%s", o->url, path);
	curl_slist_free_all(s->hdr);
	/* No "Expect: 100-continue": curl sends it for bodies over 1 KiB, and
	 * the round trip it costs is not an agent's. */
	s->hdr = curl_slist_append(NULL, "Content-Type: application/json");
	s->hdr = curl_slist_append(s->hdr, "Expect:");
	if (token != NULL) {
		snprintf(s->auth, sizeof(s->auth), "Authorization: Bearer %s", token);
		s->hdr = curl_slist_append(s->hdr, s->auth);
	}
	curl_easy_setopt(s->e, CURLOPT_URL, s->url);
	curl_easy_setopt(s->e, CURLOPT_HTTPHEADER, s->hdr);
	curl_easy_setopt(s->e, CURLOPT_POSTFIELDS, s->body);
	curl_easy_setopt(s->e, CURLOPT_POSTFIELDSIZE, (long)len);
	s->resp_len = 0;
	s->resp[0] = '\0';
	curl_multi_add_handle(m, s->e);
}

/* A realistic heartbeat of agent A (~1.2 KB): the members breeze-agent
 * sends, cpuModel and cpuCount, and the wider metric set a fleet agent
 * reports; all metrics are numbers (the server's strict body). SEQ varies
 * the figures from one heartbeat to the next. Returns the length. */
static size_t heartbeat_body(char *buf, size_t n, const struct agent *a, long idx, uint32_t seq)
{
	unsigned x = (unsigned)(idx * 2654435761u) ^ (seq * 40503u);
	double cpu = (double)(x % 10000) / 100.0;
	int len = snprintf(
		buf, n,
		"{\"status\":\"online\",\"agentVersion\":\"0.1.0\",\"uptimeSeconds\":%u,"
		"\"hostname\":\"%s\",\"osType\":\"linux\","
		"\"osVersion\":\"Debian GNU/Linux 12 (bookworm)\",\"kernel\":\"6.1.0-28-amd64\","
		"\"architecture\":\"x86_64\",\"cpuModel\":\"Intel(R) Xeon(R) Gold 6248R CPU @ 3.00GHz\","
		"\"cpuCount\":4,\"metrics\":{\"cpuPercent\":%.2f,\"cpuUserPercent\":%.2f,"
		"\"cpuSystemPercent\":%.2f,\"cpuIowaitPercent\":%.2f,\"cpuStealPercent\":0.1,"
		"\"memoryUsedBytes\":%u,\"memoryTotalBytes\":8589934592,"
		"\"memoryAvailableBytes\":%u,\"memoryCachedBytes\":1610612736,"
		"\"swapUsedBytes\":%u,\"swapTotalBytes\":2147483648,"
		"\"diskUsedBytes\":%u,\"diskTotalBytes\":107374182400,"
		"\"diskReadBytes\":%u,\"diskWriteBytes\":%u,\"diskReadOps\":%u,\"diskWriteOps\":%u,"
		"\"netRxBytes\":%u,\"netTxBytes\":%u,\"netRxPackets\":%u,\"netTxPackets\":%u,"
		"\"netRxErrors\":0,\"netTxErrors\":0,\"load1\":%.2f,\"load5\":%.2f,\"load15\":%.2f,"
		"\"processCount\":%u,\"threadCount\":%u,\"openFiles\":%u,\"tcpConnections\":%u,"
		"\"loggedInUsers\":1,\"cpuCount\":4,\"bootTime\":1764547200,"
		"\"temperatureCelsius\":%.1f,\"cpu0Percent\":%.2f,\"cpu1Percent\":%.2f,"
		"\"cpu2Percent\":%.2f,\"cpu3Percent\":%.2f,\"inodesUsed\":%u,"
		"\"inodesTotal\":6553600,\"contextSwitches\":%u,\"interrupts\":%u}}",
		1000000u + seq * 60u, a->host, cpu, cpu * 0.7, cpu * 0.2, cpu * 0.05,
		2000000000u + x % 1000000000u, 4000000000u - x % 1000000000u, x % 100000000u,
		3000000000u + x % 100000u, x % 900000000u, x % 800000000u, x % 90000u, x % 80000u,
		x % 700000000u, x % 600000000u, x % 7000000u, x % 6000000u, cpu / 25.0, cpu / 30.0,
		cpu / 35.0, 150u + x % 100u, 600u + x % 400u, 2000u + x % 1000u, 20u + x % 80u,
		40.0 + (double)(x % 300) / 10.0, cpu * 1.1, cpu * 0.9, cpu * 1.05, cpu * 0.95,
		200000u + x % 100000u, x % 900000000u, x % 500000000u);
	if (len < 0 || (size_t)len >= n)
		die("heartbeat body too long");
	return (size_t)len;
}

/* Runs the transfers of M once and hands each finished one to DONE. */
static void harvest(CURLM *m, void (*done)(struct slot *, CURLcode, long, double, void *), void *ud)
{
	struct CURLMsg *msg;
	int running, left;

	curl_multi_perform(m, &running);
	double now = mono();
	while ((msg = curl_multi_info_read(m, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		struct slot *s;
		long code = 0;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
		curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &code);
		CURLcode rc = msg->data.result;
		curl_multi_remove_handle(m, msg->easy_handle);
		free_slots[nfree++] = s - slots;
		done(s, rc, code, now, ud);
	}
}

static void count_answer(struct result *r, CURLcode rc, long code)
{
	if (rc != CURLE_OK) {
		r->transport++;
		snprintf(r->transport_msg, sizeof(r->transport_msg), "%s", curl_easy_strerror(rc));
	} else if (code >= 0 && code < 600) {
		r->status[code]++;
	}
}

/* ---------------------------------------------------------------- enrolment */

struct enroll_state {
	struct result *r;
	long failed;
};

static void enroll_done(struct slot *s, CURLcode rc, long code, double now, void *ud)
{
	struct enroll_state *st = ud;
	struct agent *a = &agents[s->agent];
	json_t *j = rc == CURLE_OK && code == 201 ? json_loads(s->resp, 0, NULL) : NULL;
	const char *id = json_string_value(json_object_get(j, "agentId"));
	const char *tok = json_string_value(json_object_get(j, "authToken"));

	(void)now;
	count_answer(st->r, rc, code);
	if (id != NULL && tok != NULL && strlen(id) < sizeof(a->id) &&
	    strlen(tok) < sizeof(a->token)) {
		snprintf(a->id, sizeof(a->id), "%s", id);
		snprintf(a->token, sizeof(a->token), "%s", tok);
	} else {
		if (st->failed++ == 0)
			fprintf(stderr, "heartbeat: enrolment answered %ld: %.300s\n", code,
				rc == CURLE_OK ? s->resp : curl_easy_strerror(rc));
	}
	json_decref(j);
}

/* Enrols every agent, K at a time, as fast as the server answers. */
static void enroll_all(CURLM *m, const struct opts *o, const char *run_tag)
{
	const char *key = getenv("BENCH_ENROLLMENT_KEY"),
		   *secret = getenv("BENCH_ENROLLMENT_SECRET");
	struct result r = {0};
	struct enroll_state st = {.r = &r};
	long next = 0;

	if (key == NULL || secret == NULL)
		die("--enroll needs BENCH_ENROLLMENT_KEY and BENCH_ENROLLMENT_SECRET");
	double t0 = mono();
	while (next < o->n || nfree < o->k) {
		while (next < o->n && nfree > 0) {
			struct slot *s = &slots[free_slots[--nfree]];
			struct agent *a = &agents[next];
			snprintf(a->host, sizeof(a->host), "hb-%s-%06ld.fleet.example", run_tag,
				 next);
			json_t *b =
				json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:{s:i,s:I,s:I,s:s,s:s}}",
					  "enrollmentKey", key, "enrollmentSecret", secret,
					  "hostname", a->host, "osType", "linux", "osVersion",
					  "Debian GNU/Linux 12 (bookworm)", "architecture",
					  "x86_64", "agentVersion", "0.1.0", "hardware", "cpuCount",
					  4, "memoryTotalBytes", (json_int_t)8589934592LL,
					  "diskTotalBytes", (json_int_t)107374182400LL, "kernel",
					  "6.1.0-28-amd64", "cpuModel",
					  "Intel(R) Xeon(R) Gold 6248R CPU @ 3.00GHz");
			size_t len = json_dumpb(b, s->body, sizeof(s->body), JSON_COMPACT);
			json_decref(b);
			if (len == 0 || len >= sizeof(s->body))
				die("enrolment body too long");
			s->agent = next++;
			slot_post(m, s, o, "/api/v1/agents/enroll", len, NULL);
		}
		curl_multi_poll(m, NULL, 0, 100, NULL);
		harvest(m, enroll_done, &st);
	}
	double el = mono() - t0;
	if (!o->json)
		printf("enrolled: %ld agents in %.2f s (%.0f/s)\n", o->n - st.failed, el,
		       (double)(o->n - st.failed) / el);
	if (st.failed > 0)
		die("enrolment failed (see above)");
}

static void agents_save(const char *path, long n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	FILE *f;

	/* The file holds agent tokens. */
	if (fd < 0 || fchmod(fd, 0600) != 0 || (f = fdopen(fd, "w")) == NULL)
		die("cannot write the agents file");
	for (long i = 0; i < n; i++)
		fprintf(f, "%s %s %s\n", agents[i].id, agents[i].token, agents[i].host);
	if (fclose(f) != 0)
		die("cannot write the agents file");
}

/* Reads up to N agents from PATH; returns how many. */
static long agents_load(const char *path, long n)
{
	FILE *f = fopen(path, "r");
	char line[TOKEN_MAX + HOST_MAX + 64];
	long i = 0;

	if (f == NULL)
		die("cannot read the agents file (enrol first: --enroll)");
	while (i < n && fgets(line, sizeof(line), f) != NULL) {
		struct agent *a = &agents[i];
		if (sscanf(line, "%36s %127s %63s", a->id, a->token, a->host) == 3)
			i++;
	}
	fclose(f);
	return i;
}

/* ---------------------------------------------------------------- the load */

struct load_state {
	struct result *r;
	const struct opts *o;
};

static void ready_push(long a, long n)
{
	ready[(ready_head + ready_len++) % n] = a;
	agents[a].queued = 1;
}

static void load_done(struct slot *s, CURLcode rc, long code, double now, void *ud)
{
	struct load_state *st = ud;
	struct result *r = st->r;
	struct agent *a = &agents[s->agent];

	long nc = 0;
	curl_easy_getinfo(s->e, CURLINFO_NUM_CONNECTS, &nc);
	r->connects += nc;
	count_answer(r, rc, code);
	if (rc == CURLE_OK && code >= 200 && code < 300) {
		if (r->nlat == r->caplat) {
			r->caplat = r->caplat ? r->caplat * 2 : 65536;
			r->lat_us = realloc(r->lat_us, r->caplat * sizeof(*r->lat_us));
			if (r->lat_us == NULL)
				die("out of memory");
		}
		/* From the due time; from the send time for one sent early. */
		double from = s->due < s->sent ? s->due : s->sent;
		double us = (now - from) * 1e6;
		r->lat_us[r->nlat++] = us <= 0 ? 0 : us > 4e9 ? 4000000000u : (uint32_t)us;
	}
	r->t_end = now;
	a->busy = 0;
	if (a->sent < a->due)
		ready_push(s->agent, st->o->n);
}

/* Makes due every heartbeat whose time (start T0, rate R) is before NOW. */
static void make_due(uint64_t *issued, uint64_t total, double t0, const struct opts *o, double now)
{
	double upto = floor((now + LOOKAHEAD_S - t0) * o->rate) + 1;
	uint64_t due = upto < 0 ? 0 : (uint64_t)upto;

	if (due > total)
		due = total;
	for (; *issued < due; (*issued)++) {
		long a = (long)(*issued % (uint64_t)o->n);
		agents[a].due++;
		if (!agents[a].busy && !agents[a].queued)
			ready_push(a, o->n);
	}
}

/* Runs the constant-rate load into R. */
static void run_load(CURLM *m, const struct opts *o, struct result *r)
{
	uint64_t total = (uint64_t)llround(o->rate * o->duration), issued = 0;
	struct load_state st = {.r = r, .o = o};
	char path[128];

	r->t0 = mono() + 0.01;
	r->t_end = r->t0;
	double stop = r->t0 + o->duration;
	for (;;) {
		double now = mono();
		if (now < stop || issued < total)
			make_due(&issued, total, r->t0, o, now);
		/* After the end, nothing more is sent: what still waits is late. */
		while (ready_len > 0 && nfree > 0 && now < stop + LOOKAHEAD_S) {
			long ai = ready[ready_head];
			ready_head = (ready_head + 1) % o->n;
			ready_len--;
			struct agent *a = &agents[ai];
			struct slot *s = &slots[free_slots[--nfree]];
			a->queued = 0;
			a->busy = 1;
			s->agent = ai;
			s->due = r->t0 + ((double)ai + (double)a->sent * (double)o->n) / o->rate;
			s->sent = now;
			size_t len = heartbeat_body(s->body, sizeof(s->body), a, ai, a->sent);
			a->sent++;
			r->sent++;
			snprintf(path, sizeof(path), "/api/v1/agents/%s/heartbeat", a->id);
			slot_post(m, s, o, path, len, a->token);
		}
		if (nfree == o->k && (issued >= total || now >= stop))
			break;
		if (now > stop + GRACE_S)
			break;
		/* Wake for the next due heartbeat (rounded up: it is sent at most
		 * LOOKAHEAD_S early, never spun for) or any transfer. */
		double next = r->t0 + (double)issued / o->rate - LOOKAHEAD_S - now;
		int ms = issued >= total || ready_len > 0 ? 100 : (int)ceil(next * 1000);
		curl_multi_poll(m, NULL, 0, ms < 0 ? 0 : ms > 100 ? 100 : ms, NULL);
		harvest(m, load_done, &st);
	}
	r->unanswered = o->k - nfree;
	for (long i = 0; i < o->n; i++)
		r->late_unsent += agents[i].due - agents[i].sent;
	r->late_unsent += (long)(total - issued);
}

/* ---------------------------------------------------------------- the report */

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* The Q-quantile (0..1) of the sorted latencies in ms (nearest rank). */
static double quantile_ms(const struct result *r, double q)
{
	if (r->nlat == 0)
		return -1;
	size_t i = (size_t)ceil(q * (double)r->nlat);
	return (double)r->lat_us[i == 0 ? 0 : i - 1] / 1000.0;
}

struct usage {
	double server, pg, redis, self;
	struct probe_pg db;
	int have_db;
};

static void usage_snapshot(const struct opts *o, PGconn *db, int reset, struct usage *u)
{
	struct rusage ru;

	u->server = probe_cpu_s(o->server_pid, 0);
	u->pg = probe_cpu_s(o->pg_pid, 1);
	u->redis = probe_cpu_s(o->redis_pid, 0);
	getrusage(RUSAGE_SELF, &ru);
	u->self = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
		  (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
	u->have_db = db != NULL &&
		     probe_pg_snapshot(db, "breeze", o->stats_role, reset, &u->db) == 0;
}

/* Sets KEY in J to V, or to null when V is negative (not measured). */
static void set_num(json_t *j, const char *key, double v)
{
	json_object_set_new(j, key, v < 0 ? json_null() : json_real(v));
}

static double per(double a, double b, double n)
{
	return a < 0 || b < 0 || n <= 0 ? -1 : (a - b) / n;
}

/* The figures of a run as one JSON object (printed as is with --json, or
 * one "name: value" line per member). */
static json_t *report(const struct opts *o, const struct result *r, const struct usage *a,
		      const struct usage *b, PGconn *db)
{
	json_t *j = json_object(), *st = json_object();
	double el = r->t_end - r->t0 > o->duration ? r->t_end - r->t0 : o->duration;
	long ok = 0;

	for (int c = 200; c < 300; c++)
		ok += r->status[c];
	double hb = (double)ok;
	json_object_set_new(j, "label", json_string(o->label ? o->label : ""));
	json_object_set_new(j, "agents", json_integer(o->n));
	json_object_set_new(j, "connections", json_integer(o->k));
	set_num(j, "duration_s", o->duration);
	set_num(j, "offered_rate_per_s", o->rate);
	set_num(j, "achieved_rate_per_s", hb / el);
	json_object_set_new(j, "sent", json_integer(r->sent));
	for (int c = 0; c < 600; c++) {
		char k[16];
		snprintf(k, sizeof(k), "status_%d", c);
		if (r->status[c] > 0)
			json_object_set_new(st, k, json_integer(r->status[c]));
	}
	json_object_update(j, st);
	json_decref(st);
	json_object_set_new(j, "transport_errors", json_integer(r->transport));
	if (r->transport > 0)
		json_object_set_new(j, "transport_error_last", json_string(r->transport_msg));
	json_object_set_new(j, "late_unsent", json_integer(r->late_unsent));
	json_object_set_new(j, "unanswered", json_integer(r->unanswered));
	json_object_set_new(j, "connections_opened", json_integer(r->connects));
	set_num(j, "latency_p50_ms", quantile_ms(r, 0.50));
	set_num(j, "latency_p90_ms", quantile_ms(r, 0.90));
	set_num(j, "latency_p99_ms", quantile_ms(r, 0.99));
	set_num(j, "latency_p999_ms", quantile_ms(r, 0.999));
	set_num(j, "latency_max_ms", r->nlat ? (double)r->lat_us[r->nlat - 1] / 1000.0 : -1);
	set_num(j, "cpu_server_s", per(b->server, a->server, 1));
	set_num(j, "cpu_postgres_s", per(b->pg, a->pg, 1));
	set_num(j, "cpu_redis_s", per(b->redis, a->redis, 1));
	set_num(j, "cpu_generator_s", per(b->self, a->self, 1));
	set_num(j, "cpu_server_ms_per_heartbeat", per(b->server, a->server, hb / 1000));
	set_num(j, "cpu_postgres_ms_per_heartbeat", per(b->pg, a->pg, hb / 1000));
	long rss, hwm;
	probe_rss_kib(o->server_pid, &rss, &hwm);
	set_num(j, "server_rss_kib", (double)rss);
	set_num(j, "server_rss_peak_kib", (double)hwm);
	if (a->have_db && b->have_db) {
		const struct probe_pg *x = &a->db, *y = &b->db;
		json_object_set_new(j, "sql_source",
				    json_string(y->have_pgss
							? "pg_stat_statements"
							: "none (pg_stat_statements not loaded)"));
		set_num(j, "sql_statements_per_heartbeat",
			y->have_pgss ? per((double)y->statements, (double)x->statements, hb) : -1);
		set_num(j, "transactions_per_heartbeat",
			per((double)y->xacts, (double)x->xacts, hb));
		set_num(j, "wal_bytes_per_heartbeat",
			per((double)y->wal_bytes, (double)x->wal_bytes, hb));
		set_num(j, "wal_records_per_heartbeat",
			per((double)y->wal_records, (double)x->wal_records, hb));
		set_num(j, "wal_fsyncs_per_heartbeat",
			per((double)y->wal_syncs, (double)x->wal_syncs, hb));
		json_t *top = json_array();
		if (y->have_pgss)
			probe_pg_top(db, "breeze", o->stats_role, 6, hb, top);
		json_object_set_new(j, "sql_top", top);
	}
	return j;
}

static void print_text(json_t *j)
{
	const char *k;
	json_t *v;
	size_t i;

	json_object_foreach(j, k, v) {
		if (json_is_array(v)) {
			json_t *e;
			json_array_foreach(v, i, e)
				printf("%s: %.3f/heartbeat %.3f ms %s\n", k,
				       json_real_value(json_object_get(e, "perHeartbeat")),
				       json_real_value(json_object_get(e, "meanMs")),
				       json_string_value(json_object_get(e, "query")));
		} else if (json_is_real(v)) {
			double d = json_real_value(v);
			printf(fabs(d) >= 100 ? "%s: %.0f\n" : "%s: %.3f\n", k, d);
		} else if (json_is_integer(v)) {
			printf("%s: %lld\n", k, (long long)json_integer_value(v));
		} else if (json_is_string(v)) {
			printf("%s: %s\n", k, json_string_value(v));
		} else {
			printf("%s: n/a\n", k);
		}
	}
}

/* ---------------------------------------------------------------- main */

static void usage_exit(void)
{
	fprintf(stderr,
		"usage: bench_heartbeat --url URL [--agents N] [--connections K] [--rate R]\n"
		"         [--duration S] [--enroll] [--agents-file F] [--server-pid P]\n"
		"         [--pg-pid P] [--redis-pid P] [--stats-role ROLE] [--label L] [--json]\n"
		"  environment: BENCH_ENROLLMENT_KEY, BENCH_ENROLLMENT_SECRET (--enroll),\n"
		"               BENCH_STATS_DATABASE_URL (PostgreSQL counters)\n");
	exit(2);
}

static void parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{"url", 1, NULL, 'u'},	       {"agents", 1, NULL, 'n'},
		{"connections", 1, NULL, 'k'}, {"rate", 1, NULL, 'r'},
		{"duration", 1, NULL, 'd'},    {"enroll", 0, NULL, 'e'},
		{"agents-file", 1, NULL, 'f'}, {"server-pid", 1, NULL, 'S'},
		{"pg-pid", 1, NULL, 'P'},      {"redis-pid", 1, NULL, 'R'},
		{"stats-role", 1, NULL, 'o'},  {"label", 1, NULL, 'l'},
		{"json", 0, NULL, 'j'},	       {NULL, 0, NULL, 0}};
	int c;

	*o = (struct opts){
		.n = 100, .k = 16, .rate = 200, .duration = 10, .stats_role = "breeze_app"};
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'u':
			o->url = optarg;
			break;
		case 'n':
			o->n = atol(optarg);
			break;
		case 'k':
			o->k = atol(optarg);
			break;
		case 'r':
			o->rate = atof(optarg);
			break;
		case 'd':
			o->duration = atof(optarg);
			break;
		case 'e':
			o->enroll = 1;
			break;
		case 'f':
			o->agents_file = optarg;
			break;
		case 'S':
			o->server_pid = atoi(optarg);
			break;
		case 'P':
			o->pg_pid = atoi(optarg);
			break;
		case 'R':
			o->redis_pid = atoi(optarg);
			break;
		case 'o':
			o->stats_role = optarg;
			break;
		case 'l':
			o->label = optarg;
			break;
		case 'j':
			o->json = 1;
			break;
		default:
			usage_exit();
		}
	}
	if (o->url == NULL || optind != argc || o->n < 1 || o->n > 10000000 || o->k < 1 ||
	    o->k > 4096 || !(o->rate > 0) || !(o->duration > 0))
		usage_exit();
	o->stats_db = getenv("BENCH_STATS_DATABASE_URL");
}

int main(int argc, char **argv)
{
	struct opts o;
	struct result r = {0};
	struct usage before, after;
	char tag[16];
	CURLM *m;

	parse_opts(argc, argv, &o);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
		die("curl_global_init failed");
	agents = calloc((size_t)o.n, sizeof(*agents));
	ready = calloc((size_t)o.n, sizeof(*ready));
	if (agents == NULL || ready == NULL)
		die("out of memory");
	slots_init(&m, &o);
	snprintf(tag, sizeof(tag), "%06lx", (unsigned long)(time(NULL) ^ getpid()) & 0xffffff);
	if (o.enroll) {
		enroll_all(m, &o, tag);
		if (o.agents_file != NULL)
			agents_save(o.agents_file, o.n);
	} else if (o.agents_file != NULL) {
		if (agents_load(o.agents_file, o.n) != o.n)
			die("the agents file holds fewer than --agents agents");
	} else {
		die("give --enroll or --agents-file");
	}
	PGconn *db = o.stats_db != NULL ? probe_pg_connect(o.stats_db) : NULL;
	usage_snapshot(&o, db, 1, &before);
	run_load(m, &o, &r);
	/* No 2xx answer leaves lat_us NULL, which qsort() may not be given. */
	if (r.nlat > 1)
		qsort(r.lat_us, r.nlat, sizeof(*r.lat_us), cmp_u32);
	/* Backends publish pg_stat_database and pg_stat_wal counters at most
	 * once a second; process CPU is read at once. */
	double cpu_server = probe_cpu_s(o.server_pid, 0), cpu_pg = probe_cpu_s(o.pg_pid, 1),
	       cpu_redis = probe_cpu_s(o.redis_pid, 0);
	if (db != NULL)
		usleep(1500000);
	usage_snapshot(&o, db, 0, &after);
	after.server = cpu_server;
	after.pg = cpu_pg;
	after.redis = cpu_redis;
	json_t *j = report(&o, &r, &before, &after, db);
	if (o.json) {
		json_dumpf(j, stdout, JSON_COMPACT);
		putchar('\n');
	} else {
		print_text(j);
	}
	json_decref(j);
	PQfinish(db);
	free(r.lat_us);
	slots_free(m, o.k);
	curl_global_cleanup();
	free(agents);
	free(ready);
	return 0;
}
