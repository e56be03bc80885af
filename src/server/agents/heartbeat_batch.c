/*
 * heartbeat_batch.c — group commit of heartbeats (HEARTBEAT_GROUP_COMMIT;
 * heartbeat_batch.h). One bounded queue and one committer thread. A
 * submitter links its job into the queue and returns; the committer takes
 * up to AGENTS_HB_BATCH_MAX jobs, or what arrived within AGENTS_HB_WINDOW_MS
 * of the first, and runs them as one batch:
 *
 *   1. ONE token lookup statement for every job (exact: nothing cached);
 *   2. the pure admission checks (agents_agent_admit, agents_heartbeat_plain):
 *      a job that needs the synchronous path is handed back at once;
 *   3. the device and organization limits (R3, R4) of every plain job, in
 *      one Redis round trip where ratelimit_check_many() exists;
 *   4. ONE write statement for the admitted jobs, in its own implicit
 *      transaction: when it returns, its rows are committed (durable with
 *      synchronous_commit=on) and only then are the jobs completed.
 *
 * A batch costs one WAL flush whatever its size. A device appears at most
 * once in a write (ON CONFLICT cannot touch a row twice): a second
 * heartbeat of a device in the same batch takes the synchronous path.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/metrics.h"
#include "server/agents/heartbeat_batch.h"
#include "server/db/db.h"

/* Slots of the per-batch duplicate check: a power of two above twice
 * AGENTS_HB_BATCH_MAX, so probing stays short. */
#define DUP_SLOTS 2048
/* Longest a batch waits for a pooled connection before failing (503). */
#define ACQUIRE_TIMEOUT_MS 5000

/* A job's progress through its batch. */
enum job_state { JOB_QUEUED, JOB_PLAIN, JOB_WRITE, JOB_DONE };

struct agents_hb_batch {
	struct db_pool *pool;
	struct ratelimit *rl;
	unsigned queue_max;
	pthread_mutex_t mu;
	pthread_cond_t work; /* something queued, or stop */
	struct agents_hb_job *head, *tail;
	unsigned queued;
	int stopping, started;
	pthread_t thread;
	/* The committer's own. */
	struct agents_hb_job *jobs[AGENTS_HB_BATCH_MAX];
	/* Each job's progress: a completed job may already be freed by its
	 * callback, so its state lives here, never in the job. */
	enum job_state st[AGENTS_HB_BATCH_MAX];
	const char *dup[DUP_SLOTS];
	/* Step 3's checks: the limiter pair, result and return of the i-th
	 * plain job, and that job's index in the batch. */
	struct ratelimit_item rl_items[AGENTS_HB_BATCH_MAX][2];
	struct ratelimit_result rl_out[AGENTS_HB_BATCH_MAX];
	int rl_rcs[AGENTS_HB_BATCH_MAX];
	size_t rl_job[AGENTS_HB_BATCH_MAX];
	struct ratelimit_check rl_checks[AGENTS_HB_BATCH_MAX];
};

/*
 * What agents_heartbeat_record()'s heartbeat_sql writes for one plain
 * heartbeat, for many: v unpacks the rows (one jsonb parameter, unpacked by
 * jsonb_to_recordset: no literal is built by hand), d updates the devices
 * whose status and credential version still match what the lookup read
 * (last seen at $2, the server's bz_now()), m inserts the metrics history
 * rows of the heartbeats that carried metrics (whose members the body
 * check bounded, so the casts cannot fail), h upserts the latest state.
 * Returns the index of every row written.
 */
static const char *batch_sql =
	"WITH v AS ("
	"  SELECT * FROM jsonb_to_recordset($1::jsonb) AS v(i int, id uuid, cv int, ip inet,"
	"         av text, st text, up bigint, m jsonb, inv jsonb, hn text, osv text)),"
	" d AS ("
	"  UPDATE devices SET last_seen_at = to_timestamp($2::bigint), last_ip = v.ip,"
	"         agent_version = coalesce(v.av, devices.agent_version),"
	"         hostname = coalesce(v.hn, devices.hostname),"
	"         os_version = coalesce(v.osv, devices.os_version),"
	"         online = coalesce(devices.online, true)"
	"    FROM v"
	"   WHERE devices.id = v.id AND devices.status = 'active' AND"
	"         devices.credential_version = v.cv"
	"   RETURNING devices.id, devices.org_id),"
	" m AS ("
	"  INSERT INTO device_metrics (device_id, org_id, ts, cpu_percent, mem_used_bytes,"
	"         mem_total_bytes, disk_used_bytes, disk_total_bytes, load1, load5, load15)"
	"  SELECT d.id, d.org_id, to_timestamp($2::bigint), x.\"cpuPercent\"::real,"
	"         round(x.\"memoryUsedBytes\")::bigint, round(x.\"memoryTotalBytes\")::bigint,"
	"         round(x.\"diskUsedBytes\")::bigint, round(x.\"diskTotalBytes\")::bigint,"
	"         x.load1::real, x.load5::real, x.load15::real"
	"    FROM d JOIN v ON v.id = d.id CROSS JOIN LATERAL jsonb_to_record(v.m) AS"
	"         x(\"cpuPercent\" numeric, \"memoryUsedBytes\" numeric,"
	"         \"memoryTotalBytes\" numeric, \"diskUsedBytes\" numeric,"
	"         \"diskTotalBytes\" numeric, load1 numeric, load5 numeric, load15 numeric)"
	"   WHERE v.m <> '{}'::jsonb),"
	" h AS ("
	"  INSERT INTO device_heartbeats (device_id, org_id, received_at, source_ip, agent_status,"
	"         agent_version, uptime_seconds, metrics, inventory)"
	"  SELECT d.id, d.org_id, to_timestamp($2::bigint), v.ip, v.st, coalesce(v.av, ''), v.up,"
	"         v.m, v.inv"
	"    FROM d JOIN v ON v.id = d.id"
	"  ON CONFLICT (device_id) DO UPDATE SET received_at = excluded.received_at,"
	"     source_ip = excluded.source_ip, agent_status = excluded.agent_status,"
	"     agent_version = excluded.agent_version, uptime_seconds = excluded.uptime_seconds,"
	"     metrics = excluded.metrics, inventory = excluded.inventory"
	"  RETURNING device_id)"
	" SELECT v.i FROM v JOIN h ON h.device_id = v.id";

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Completes JOB with O (once): JOB may be freed by the call. */
static void job_finish(struct agents_hb_job *job, struct agents_hb_outcome *o)
{
	job->done(job->ctx, o);
}

/* Completes JOB as AGENTS_HB_FAILED with RC, explained by CODE and MSG. */
static void job_fail(struct agents_hb_job *job, int rc, const char *code, const char *msg)
{
	struct bz_errinfo why = {.code = code, .msg = msg};
	struct agents_hb_outcome o = {.verdict = AGENTS_HB_FAILED, .rc = rc, .why = &why};

	job_finish(job, &o);
}

/* A batch that could not be looked up or written: nothing of it committed,
 * so no job is answered 200 (issue 13 §2); the agent retries. */
static void job_unwritten(struct agents_hb_job *job)
{
	job_fail(job, BZ_ERR_UNAVAILABLE, "heartbeat_not_written",
		 "the heartbeat could not be written; retry later");
}

static void job_slow(struct agents_hb_job *job)
{
	struct agents_hb_outcome o = {.verdict = AGENTS_HB_SLOW};

	job_finish(job, &o);
}

static uint32_t fnv1a(const char *s)
{
	uint32_t h = 2166136261u;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h;
}

/* 1 if ID was already in SLOTS (DUP_SLOTS entries), else adds it. */
static int dup_seen(const char **slots, const char *id)
{
	for (uint32_t i = fnv1a(id) & (DUP_SLOTS - 1);; i = (i + 1) & (DUP_SLOTS - 1)) {
		if (slots[i] == NULL) {
			slots[i] = id;
			return 0;
		}
		if (strcmp(slots[i], id) == 0)
			return 1;
	}
}

/* Looks up the tokens of JOBS (N) with one statement on C. Returns 0 (each
 * job's lookup_rc and agent set) or BZ_ERR_DB / BZ_ERR_NOMEM. */
static int lookup(PGconn *c, struct agents_hb_job **jobs, size_t n)
{
	const char **hashes = calloc(n, sizeof(*hashes));
	struct agents_agent **outs = calloc(n, sizeof(*outs));
	int *rcs = calloc(n, sizeof(*rcs)), rc = BZ_ERR_NOMEM;

	if (hashes != NULL && outs != NULL && rcs != NULL) {
		for (size_t k = 0; k < n; k++) {
			hashes[k] = jobs[k]->token_hash;
			outs[k] = &jobs[k]->agent;
		}
		rc = agents_token_lookup_many(c, hashes, n, bz_now(), outs, rcs);
		for (size_t k = 0; rc == 0 && k < n; k++)
			jobs[k]->lookup_rc = rcs[k];
	}
	free(hashes);
	free(outs);
	free(rcs);
	return rc;
}

/* Step 2: hands every job that is not plain back to the synchronous path
 * (its lookup is repeated there, with retirement, probes and their audit
 * rows) and marks the others JOB_PLAIN. */
static void classify(struct agents_hb_batch *b, struct agents_hb_job **jobs, size_t n)
{
	memset(b->dup, 0, sizeof(b->dup));
	for (size_t k = 0; k < n; k++) {
		struct agents_hb_job *j = jobs[k];
		struct bz_errinfo why = {0};
		if (j->lookup_rc == 0 && agents_agent_admit(&j->agent, j->path_id, &why) == 0 &&
		    agents_heartbeat_plain(&j->agent, &j->hb) &&
		    !dup_seen(b->dup, j->agent.device_id)) {
			b->st[k] = JOB_PLAIN;
		} else {
			b->st[k] = JOB_DONE;
			job_slow(j);
		}
	}
}

/* Checks the N limiter pairs ITEMS (each a device and its organization) at
 * NOW_MS into OUT and RCS with ratelimit_check_many(): one Redis round trip
 * for the whole batch, each check exactly the one the synchronous path
 * makes, checks of one key counted in order. */
static void limit_checks(struct agents_hb_batch *b, size_t n, int64_t now_ms)
{
	if (b->rl == NULL) {
		for (size_t i = 0; i < n; i++)
			b->rl_rcs[i] = BZ_ERR_INTERNAL; /* never unlimited */
		return;
	}
	_Static_assert(AGENTS_HB_BATCH_MAX <= RATELIMIT_MANY_MAX, "a batch is one pipeline");
	for (size_t i = 0; i < n; i++)
		b->rl_checks[i] = (struct ratelimit_check){.items = b->rl_items[i], .n = 2};
	if (ratelimit_check_many(b->rl, b->rl_checks, n, now_ms, b->rl_out, b->rl_rcs) != 0)
		for (size_t i = 0; i < n; i++)
			b->rl_rcs[i] = BZ_ERR_INTERNAL; /* no memory: nothing counted */
}

/* Step 3: R3 and R4, the device and its organization in one check per
 * job, exactly as the synchronous path checks them (agent_api.c). Refused
 * jobs are completed; admitted ones marked JOB_WRITE. */
static void limit(struct agents_hb_batch *b, struct agents_hb_job **jobs, size_t n)
{
	size_t m = 0;

	for (size_t k = 0; k < n; k++) {
		if (b->st[k] != JOB_PLAIN)
			continue;
		struct agents_hb_job *j = jobs[k];
		b->rl_items[m][0] = (struct ratelimit_item){.limiter = RL_AGENT_DEVICE,
							    .tag = j->agent.org_id,
							    .subject = j->agent.device_id};
		b->rl_items[m][1] =
			(struct ratelimit_item){.limiter = RL_AGENT_ORG, .tag = j->agent.org_id};
		b->rl_job[m++] = k;
	}
	limit_checks(b, m, bz_now_ms());
	for (size_t i = 0; i < m; i++) {
		size_t k = b->rl_job[i];
		struct agents_hb_job *j = jobs[k];
		j->rl_rc = b->rl_rcs[i];
		j->rl = b->rl_out[i];
		if (j->rl_rc == 0 && j->rl.admitted) {
			b->st[k] = JOB_WRITE;
			continue;
		}
		b->st[k] = JOB_DONE;
		struct agents_hb_outcome o = {.verdict = AGENTS_HB_LIMITED,
					      .agent = &j->agent,
					      .rl_rc = j->rl_rc,
					      .rl = &j->rl};
		job_finish(j, &o);
	}
}

/* The row of job J (index I) as batch_sql's v reads it, or NULL on OOM.
 * The metrics and inventory objects are shared, not copied: their owner
 * waits, untouched, until the job is completed. */
static json_t *row_json(const struct agents_hb_job *j, size_t i)
{
	const struct agents_heartbeat *hb = &j->hb;
	json_t *m = hb->metrics ? json_incref((json_t *)hb->metrics) : json_object();
	json_t *inv = hb->inventory ? json_incref((json_t *)hb->inventory) : json_object();
	json_t *row = json_pack("{s:I,s:s,s:i,s:s*,s:s*,s:s,s:o,s:o,s:s*,s:s*}", "i", (json_int_t)i,
				"id", j->agent.device_id, "cv", j->agent.credential_version, "ip",
				hb->client_ip, "av", hb->agent_version, "st",
				hb->status ? hb->status : "online", "m", m, "inv", inv, "hn",
				hb->hostname, "osv", hb->os_version);

	if (row != NULL && hb->uptime_s >= 0 &&
	    json_object_set_new(row, "up", json_integer(hb->uptime_s)) != 0) {
		json_decref(row);
		return NULL;
	}
	return row;
}

/* The JOB_WRITE jobs of JOBS as batch_sql's $1 (malloc'd text), or NULL on
 * OOM. */
static char *rows_param(const enum job_state *st, struct agents_hb_job **jobs, size_t n)
{
	json_t *rows = json_array();
	char *s = NULL;

	for (size_t k = 0; rows != NULL && k < n; k++)
		if (st[k] == JOB_WRITE && json_array_append_new(rows, row_json(jobs[k], k)) != 0)
			goto out;
	if (rows != NULL)
		s = json_dumps(rows, AGENTS_JSON_FLAGS);
out:
	json_decref(rows);
	return s;
}

/* Step 4: writes the JOB_WRITE jobs with one statement on C and completes
 * them: written, or 401 when the device row changed since the lookup
 * (reset, suspended or decommissioned meanwhile: nothing written, as
 * agents_heartbeat_record() answers), or every one unwritten when the
 * statement failed. */
static void write_batch(struct agents_hb_batch *b, PGconn *c, struct agents_hb_job **jobs, size_t n)
{
	char now_s[24], *param;
	PGresult *r = NULL;
	size_t w = 0;

	for (size_t k = 0; k < n; k++)
		w += b->st[k] == JOB_WRITE;
	if (w == 0)
		return;
	param = rows_param(b->st, jobs, n);
	snprintf(now_s, sizeof(now_s), "%lld", (long long)bz_now());
	const char *p[2] = {param, now_s};
	if (param != NULL && (r = db_query(c, batch_sql, 2, p, NULL)) == NULL)
		log_error("agent.heartbeat.batch_failed", NULL);
	free(param);
	for (int t = 0; r != NULL && t < PQntuples(r); t++) {
		long i = strtol(PQgetvalue(r, t, 0), NULL, 10);
		if (i < 0 || (size_t)i >= n || b->st[i] != JOB_WRITE)
			continue;
		struct agents_hb_job *j = jobs[i];
		struct agents_hb_outcome o = {.verdict = AGENTS_HB_WRITTEN,
					      .agent = &j->agent,
					      .rl = &j->rl};
		metrics_inc(METRIC_HEARTBEATS, NULL);
		b->st[i] = JOB_DONE;
		job_finish(j, &o);
	}
	for (size_t k = 0; k < n; k++) {
		if (b->st[k] != JOB_WRITE)
			continue;
		b->st[k] = JOB_DONE;
		if (r == NULL)
			job_unwritten(jobs[k]);
		else
			job_fail(jobs[k], BZ_ERR_UNAUTHORIZED, "unauthorized",
				 "invalid agent token");
	}
	PQclear(r);
}

/* Runs one batch of JOBS (N ≥ 1), completing every job. */
static void run_batch(struct agents_hb_batch *b, struct agents_hb_job **jobs, size_t n)
{
	PGconn *c = db_acquire(b->pool, ACQUIRE_TIMEOUT_MS);

	if (c == NULL || lookup(c, jobs, n) != 0) {
		for (size_t k = 0; k < n; k++)
			job_unwritten(jobs[k]);
	} else {
		classify(b, jobs, n);
		limit(b, jobs, n);
		write_batch(b, c, jobs, n);
	}
	if (c != NULL)
		db_release(b->pool, c);
}

/* Waits, with B->mu held, until the head job's window has passed, a full
 * batch is queued, or the batcher stops. */
static void wait_window(struct agents_hb_batch *b)
{
	int64_t until = b->head->enqueued_ms + AGENTS_HB_WINDOW_MS;

	while (!b->stopping && b->queued < AGENTS_HB_BATCH_MAX) {
		int64_t left = until - mono_ms();
		if (left <= 0)
			break;
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += (long)left * 1000000L;
		ts.tv_sec += ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&b->work, &b->mu, &ts);
	}
}

/* Unlinks up to AGENTS_HB_BATCH_MAX queued jobs, in arrival order, into
 * B->jobs and returns how many. Called with B->mu held. */
static size_t take_batch(struct agents_hb_batch *b)
{
	size_t n = 0;

	while (b->head != NULL && n < AGENTS_HB_BATCH_MAX) {
		b->jobs[n++] = b->head;
		b->head = b->head->next;
		b->queued--;
	}
	if (b->head == NULL)
		b->tail = NULL;
	return n;
}

static void *committer_main(void *arg)
{
	struct agents_hb_batch *b = arg;

	pthread_mutex_lock(&b->mu);
	for (;;) {
		while (b->head == NULL && !b->stopping)
			pthread_cond_wait(&b->work, &b->mu);
		if (b->head == NULL)
			break; /* stopping, and nothing left to run */
		wait_window(b);
		size_t n = take_batch(b);
		pthread_mutex_unlock(&b->mu);
		run_batch(b, b->jobs, n);
		pthread_mutex_lock(&b->mu);
	}
	pthread_mutex_unlock(&b->mu);
	return NULL;
}

int agents_hb_batch_start(struct agents_hb_batch **out, struct db_pool *pool, struct ratelimit *rl,
			  unsigned queue_max)
{
	struct agents_hb_batch *b = calloc(1, sizeof(*b));
	pthread_condattr_t ca;

	*out = NULL;
	if (b == NULL)
		return BZ_ERR_NOMEM;
	b->pool = pool;
	b->rl = rl;
	b->queue_max = queue_max;
	pthread_mutex_init(&b->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&b->work, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&b->thread, NULL, committer_main, b) != 0) {
		agents_hb_batch_stop(b);
		return BZ_ERR_INTERNAL;
	}
	b->started = 1;
	*out = b;
	return 0;
}

int agents_hb_batch_submit(struct agents_hb_batch *b, struct agents_hb_job *job)
{
	job->next = NULL;
	job->lookup_rc = BZ_ERR_NOT_FOUND;
	job->rl_rc = 0;
	pthread_mutex_lock(&b->mu);
	if (b->stopping || b->queued >= b->queue_max) {
		pthread_mutex_unlock(&b->mu);
		return BZ_ERR_UNAVAILABLE;
	}
	job->enqueued_ms = mono_ms();
	if (b->tail != NULL)
		b->tail->next = job;
	else
		b->head = job;
	b->tail = job;
	b->queued++;
	pthread_cond_signal(&b->work);
	pthread_mutex_unlock(&b->mu);
	return 0;
}

unsigned agents_hb_batch_queued(struct agents_hb_batch *b)
{
	unsigned n;

	pthread_mutex_lock(&b->mu);
	n = b->queued;
	pthread_mutex_unlock(&b->mu);
	return n;
}

void agents_hb_batch_stop(struct agents_hb_batch *b)
{
	if (b == NULL)
		return;
	if (b->started) {
		pthread_mutex_lock(&b->mu);
		b->stopping = 1;
		pthread_cond_signal(&b->work);
		pthread_mutex_unlock(&b->mu);
		pthread_join(b->thread, NULL);
	}
	pthread_cond_destroy(&b->work);
	pthread_mutex_destroy(&b->mu);
	free(b);
}
