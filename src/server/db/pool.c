/*
 * pool.c — the libpq connection pool: session settings and deadlines on
 * every connection, a check before reuse, replacement of failed
 * connections, one safe retry on a dead one, and db_error(), the one
 * classification of a failed statement (transient → 503, else 500).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "common/metrics.h"
#include "server/db/db.h"

/* Bound of a connect without a running deadline (seconds): a dead
 * database fails a connect fast. */
#define CONNECT_TIMEOUT_S 5
/* How long release's ROLLBACK may take when no deadline is running (ms). */
#define ROLLBACK_BOUND_MS 2000

struct db_pool {
	char *url;
	unsigned size;
	struct db_options opts;
	PGconn **conns;
	unsigned char *busy;
	pthread_mutex_t mu;
	pthread_cond_t cv;
};

/* What this thread's current holder of a pooled connection has done. */
static _Thread_local struct {
	PGconn *conn;		       /* the pooled connection held, or NULL */
	const struct db_options *opts; /* its pool's options */
	int64_t deadline_ms;	       /* bz_monotonic_ms() deadline; 0 = none */
	unsigned n_sent;	       /* statements sent on conn since db_acquire() */
	int abandoned;		       /* an answer never came: conn must be closed */
	int unavailable;	       /* the last failure was transient (db_error()) */
} tl;

/* SQLSTATEs meaning "try again later" rather than "this request is wrong". */
static int sqlstate_transient(const char *st)
{
	static const char *const codes[] = {"57014", "55P03", "25P03", "57P01",
					    "57P02", "57P03", "53300", NULL};

	if (st == NULL || st[0] == '\0')
		return 1; /* libpq's own error: no answer from the server */
	if (strncmp(st, "08", 2) == 0)
		return 1;
	for (size_t i = 0; codes[i]; i++)
		if (strcmp(st, codes[i]) == 0)
			return 1;
	return 0;
}

int db_error(void)
{
	return tl.unavailable ? BZ_ERR_UNAVAILABLE : BZ_ERR_DB;
}

/* libpq's message without its trailing newline, in BUF (LEN bytes). */
static const char *one_line(const char *msg, char *buf, size_t len)
{
	snprintf(buf, len, "%s", msg ? msg : "");
	buf[strcspn(buf, "\n")] = '\0';
	return buf;
}

/*
 * Sends SQL and waits for its last result until DEADLINE_MS (monotonic; 0 =
 * no limit). Returns the result (may be an error result), or NULL when the
 * connection failed or the deadline passed (*TIMED_OUT = 1; the connection
 * is then in an unknown state and must be closed).
 */
static PGresult *run_bounded(PGconn *c, const char *sql, int n, const char *const *params,
			     int64_t deadline_ms, int *timed_out)
{
	PGresult *last = NULL;

	*timed_out = 0;
	if (!PQsendQueryParams(c, sql, n, NULL, params, NULL, NULL, 0))
		return NULL;
	for (;;) {
		while (!PQisBusy(c)) {
			PGresult *r = PQgetResult(c);
			if (r == NULL)
				return last;
			PQclear(last);
			last = r;
		}
		int wait = -1;
		if (deadline_ms > 0) {
			int64_t left = deadline_ms - bz_monotonic_ms();
			if (left <= 0) {
				*timed_out = 1;
				PQclear(last);
				return NULL;
			}
			wait = left > 60000 ? 60000 : (int)left;
		}
		struct pollfd pfd = {.fd = PQsocket(c), .events = POLLIN};
		int pr = poll(&pfd, 1, wait);
		if (pr < 0 && errno != EINTR) {
			PQclear(last);
			return NULL;
		}
		if (pr > 0 && !PQconsumeInput(c)) {
			PQclear(last);
			return NULL;
		}
	}
}

/* Applies the session settings to a fresh connection, within DEADLINE_MS.
 * Returns 0 or BZ_ERR_UNAVAILABLE. */
static int configure(PGconn *c, const struct db_options *o, int64_t deadline_ms)
{
	/* Text is exchanged as UTF-8 (hashed audit fields depend on it) and
	 * times in UTC and ISO form, whatever the server's or the role's
	 * defaults say; SET has the highest precedence. The deadlines are
	 * set the same way; client_connection_check_interval lets a backend
	 * notice that an abandoned client went away during a long query. */
	char sql[512];
	int to;

	snprintf(sql, sizeof(sql), "%s",
		 "SELECT set_config('client_encoding', 'UTF8', false),"
		 " set_config('TimeZone', 'UTC', false),"
		 " set_config('DateStyle', 'ISO, YMD', false)");
	/* Without options (CLI, workers) the role's own settings stay. */
	if (o != NULL) {
		size_t n = strlen(sql);
		snprintf(sql + n, sizeof(sql) - n,
			 ", set_config('statement_timeout', '%d', false),"
			 " set_config('lock_timeout', '%d', false),"
			 " set_config('idle_in_transaction_session_timeout', '%d', false),"
			 " set_config('client_connection_check_interval', '%d', false)",
			 o->statement_timeout_ms, o->lock_timeout_ms,
			 o->idle_in_transaction_timeout_ms, o->request_deadline_ms ? 1000 : 0);
	}
	PGresult *r = run_bounded(c, sql, 0, NULL, deadline_ms, &to);
	int ok = PQresultStatus(r) == PGRES_TUPLES_OK &&
		 strcmp(pg_encoding_to_char(PQclientEncoding(c)), "UTF8") == 0;
	char buf[256];
	if (!ok)
		log_error("db.connect.failed", "error",
			  to ? "session setup timed out"
			     : one_line(r ? PQresultErrorMessage(r) : PQerrorMessage(c), buf,
					sizeof(buf)),
			  NULL);
	PQclear(r);
	return ok ? 0 : BZ_ERR_UNAVAILABLE;
}

/* Finishes connecting C (started with PQconnectStartParams, or with
 * PQresetStart when RESET) by DEADLINE_MS. Returns 1 when connected. */
static int connect_poll(PGconn *c, int64_t deadline_ms, int reset)
{
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;

	while (st != PGRES_POLLING_OK) {
		if (st == PGRES_POLLING_FAILED)
			return 0;
		int64_t left = deadline_ms - bz_monotonic_ms();
		if (left <= 0)
			return 0;
		struct pollfd pfd = {.fd = PQsocket(c),
				     .events = st == PGRES_POLLING_READING ? POLLIN : POLLOUT};
		int pr = poll(&pfd, 1, left > 60000 ? 60000 : (int)left);
		if (pr < 0 && errno != EINTR)
			return 0;
		if (pr > 0)
			st = reset ? PQresetPoll(c) : PQconnectPoll(c);
	}
	return PQstatus(c) == CONNECTION_OK;
}

/* Connects to URL by DEADLINE_MS (0 = CONNECT_TIMEOUT_S from now) and
 * configures the session. Later keywords win over the URL's (expand_dbname),
 * so the keepalive values given here apply whatever the URL says. */
static PGconn *connect_opts(const char *url, const struct db_options *o, int64_t deadline_ms)
{
	char idle[16], intvl[16], count[16], uto[16];

	if (deadline_ms <= 0)
		deadline_ms = bz_monotonic_ms() + CONNECT_TIMEOUT_S * 1000;
	snprintf(idle, sizeof(idle), "%d", o && o->keepalive_idle_s ? o->keepalive_idle_s : 30);
	snprintf(intvl, sizeof(intvl), "%d",
		 o && o->keepalive_interval_s ? o->keepalive_interval_s : 10);
	snprintf(count, sizeof(count), "%d", o && o->keepalive_count ? o->keepalive_count : 3);
	snprintf(uto, sizeof(uto), "%d", o ? o->tcp_user_timeout_ms : 0);
	/* application_name precedes the URL, so the URL may name the process. */
	const char *const keys[] = {"application_name",	   "dbname",
				    "keepalives",	   "keepalives_idle",
				    "keepalives_interval", "keepalives_count",
				    "tcp_user_timeout",	   NULL};
	const char *const vals[] = {"breeze-server", url, "1", idle, intvl, count, uto, NULL};
	PGconn *c = PQconnectStartParams(keys, vals, 1);
	char buf[256];

	if (c == NULL)
		return NULL;
	if (PQstatus(c) == CONNECTION_BAD || !connect_poll(c, deadline_ms, 0)) {
		log_error("db.connect.failed", "error",
			  PQstatus(c) == CONNECTION_OK || PQerrorMessage(c)[0] == '\0'
				  ? "connect timed out"
				  : one_line(PQerrorMessage(c), buf, sizeof(buf)),
			  NULL);
		PQfinish(c);
		return NULL;
	}
	if (configure(c, o, deadline_ms) != 0) {
		PQfinish(c);
		return NULL;
	}
	return c;
}

PGconn *db_connect(const char *url)
{
	return connect_opts(url, NULL, 0);
}

struct db_pool *db_pool_open(const char *url, unsigned size, const struct db_options *opts,
			     const char **err)
{
	struct db_pool *p = calloc(1, sizeof(*p));

	*err = NULL;
	if (p == NULL) {
		*err = "out of memory";
		return NULL;
	}
	if (opts != NULL)
		p->opts = *opts;
	p->url = strdup(url);
	p->size = size;
	p->conns = calloc(size, sizeof(*p->conns));
	p->busy = calloc(size, 1);
	if (p->url == NULL || p->conns == NULL || p->busy == NULL) {
		*err = "out of memory";
		goto fail;
	}
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	for (unsigned i = 0; i < size; i++) {
		p->conns[i] = connect_opts(url, &p->opts, 0);
		if (i == 0 && p->conns[i] == NULL) {
			*err = "cannot connect to the database (see db.connect.failed)";
			pthread_mutex_destroy(&p->mu);
			pthread_cond_destroy(&p->cv);
			goto fail;
		}
	}
	metrics_gauge_add(METRIC_DB_POOL_SIZE, (int64_t)p->size);
	return p;
fail:
	if (p->url)
		explicit_bzero(p->url, strlen(p->url));
	free(p->url);
	free(p->conns);
	free(p->busy);
	free(p);
	return NULL;
}

void db_pool_close(struct db_pool *p)
{
	if (p == NULL)
		return;
	for (unsigned i = 0; i < p->size; i++)
		if (p->conns[i])
			PQfinish(p->conns[i]);
	explicit_bzero(p->url, strlen(p->url));
	free(p->url);
	free(p->conns);
	free(p->busy);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	metrics_gauge_add(METRIC_DB_POOL_SIZE, -(int64_t)p->size);
	free(p);
}

/* 1 if idle connection C is still usable: reads, without blocking, what
 * the server may have sent while it was idle (a FATAL before a restart or
 * pg_terminate_backend, or EOF). */
static int idle_conn_ok(PGconn *c)
{
	if (PQstatus(c) != CONNECTION_OK || PQtransactionStatus(c) != PQTRANS_IDLE)
		return 0;
	struct pollfd pfd = {.fd = PQsocket(c), .events = POLLIN};
	if (poll(&pfd, 1, 0) > 0) {
		if (!PQconsumeInput(c) || PQstatus(c) != CONNECTION_OK)
			return 0;
		PGnotify *n;
		while ((n = PQnotifies(c)) != NULL)
			PQfreemem(n);
	}
	return PQstatus(c) == CONNECTION_OK && !PQisBusy(c);
}

/* Waits for a free slot until DEADLINE (CLOCK_REALTIME). Returns its index
 * (marked busy) or -1 when none came free. */
static long take_slot(struct db_pool *p, const struct timespec *deadline)
{
	long idx = -1;
	int64_t t0 = bz_monotonic_ms();

	pthread_mutex_lock(&p->mu);
	for (;;) {
		for (unsigned i = 0; i < p->size; i++) {
			if (!p->busy[i]) {
				idx = (long)i;
				break;
			}
		}
		if (idx >= 0 || pthread_cond_timedwait(&p->cv, &p->mu, deadline) == ETIMEDOUT)
			break;
	}
	if (idx >= 0) {
		p->busy[idx] = 1;
		metrics_gauge_add(METRIC_DB_POOL_IN_USE, 1);
	}
	pthread_mutex_unlock(&p->mu);
	metrics_db_wait_observe((bz_monotonic_ms() - t0) * 1000);
	return idx;
}

static void free_slot(struct db_pool *p, PGconn *c, PGconn *replacement)
{
	pthread_mutex_lock(&p->mu);
	for (unsigned i = 0; i < p->size; i++) {
		if (p->conns[i] == c) {
			p->conns[i] = replacement;
			p->busy[i] = 0;
			metrics_gauge_add(METRIC_DB_POOL_IN_USE, -1);
			break;
		}
	}
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

/* db_acquire() whose holder's deadline is at most UNTIL_MS (monotonic;
 * 0 = the pool's request deadline only). */
static PGconn *acquire_until(struct db_pool *p, int timeout_ms, int64_t until_ms)
{
	int64_t now = bz_monotonic_ms();
	struct timespec deadline;

	memset(&tl, 0, sizeof(tl));
	tl.opts = &p->opts;
	if (p->opts.request_deadline_ms > 0)
		tl.deadline_ms = now + p->opts.request_deadline_ms;
	if (until_ms > 0 && (tl.deadline_ms == 0 || until_ms < tl.deadline_ms))
		tl.deadline_ms = until_ms;
	if (tl.deadline_ms > 0 && timeout_ms > tl.deadline_ms - now)
		timeout_ms = (int)(tl.deadline_ms - now);
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	long idx = take_slot(p, &deadline);
	if (idx < 0) {
		tl.unavailable = 1;
		log_warn("db.pool.exhausted", NULL);
		return NULL;
	}
	PGconn *c = p->conns[idx];
	if (c != NULL && !idle_conn_ok(c)) {
		log_info("db.conn.replaced", "reason", "dead before reuse", NULL);
		PQfinish(c);
		c = NULL;
	}
	if (c == NULL)
		c = connect_opts(p->url, &p->opts, tl.deadline_ms);
	pthread_mutex_lock(&p->mu);
	p->conns[idx] = c;
	if (c == NULL) {
		p->busy[idx] = 0;
		metrics_gauge_add(METRIC_DB_POOL_IN_USE, -1);
		pthread_cond_signal(&p->cv);
	}
	pthread_mutex_unlock(&p->mu);
	if (c == NULL)
		tl.unavailable = 1;
	tl.conn = c;
	return c;
}

PGconn *db_acquire(struct db_pool *p, int timeout_ms)
{
	return acquire_until(p, timeout_ms, 0);
}

void db_release(struct db_pool *p, PGconn *c)
{
	int drop = 0;

	if (c == NULL)
		return;
	if (c == tl.conn && tl.abandoned)
		drop = 1;
	else if (PQstatus(c) != CONNECTION_OK)
		drop = 1;
	else if (PQtransactionStatus(c) != PQTRANS_IDLE) {
		int64_t d = tl.conn == c && tl.deadline_ms > 0
				    ? tl.deadline_ms
				    : bz_monotonic_ms() + ROLLBACK_BOUND_MS;
		int to;
		if (d < bz_monotonic_ms() + 200)
			d = bz_monotonic_ms() +
			    200; /* a ROLLBACK gets a moment past the deadline */
		PGresult *r = run_bounded(c, "ROLLBACK", 0, NULL, d, &to);
		drop = PQresultStatus(r) != PGRES_COMMAND_OK;
		PQclear(r);
	}
	if (c == tl.conn)
		memset(&tl, 0, sizeof(tl));
	if (drop) {
		log_info("db.conn.replaced", "reason", "failed in use", NULL);
		PQfinish(c);
	}
	free_slot(p, c, drop ? NULL : c);
}

/* 1 when SQL cannot have had an effect if it was lost: BEGIN or SELECT. */
static int safe_to_resend(const char *sql)
{
	sql += strspn(sql, " \t\r\n");
	return strncasecmp(sql, "BEGIN", 5) == 0 || strncasecmp(sql, "SELECT", 6) == 0;
}

/* Sends one statement on CONN, bounded by the holder's deadline, and
 * retries it once on a reset connection when that is safe (see db.h). */
static PGresult *send_once_more(PGconn *conn, const char *sql, int nparams,
				const char *const *params, int *timed_out)
{
	int pooled = conn == tl.conn;
	int first = pooled && tl.n_sent == 0 && PQtransactionStatus(conn) == PQTRANS_IDLE;
	PGresult *r =
		run_bounded(conn, sql, nparams, params, pooled ? tl.deadline_ms : 0, timed_out);

	if (pooled)
		tl.n_sent++;
	if (*timed_out || !first || PQstatus(conn) != CONNECTION_BAD || !safe_to_resend(sql))
		return r;
	/* Lost (NULL, or the server's FATAL as the result): reconnect within
	 * the deadline, keeping the PGconn the holder knows, and resend. */
	log_warn("db.conn.lost", "action", "reconnect and resend once", NULL);
	PQclear(r);
	r = NULL;
	int64_t until = tl.deadline_ms ? tl.deadline_ms
				       : bz_monotonic_ms() + CONNECT_TIMEOUT_S * 1000;
	if (PQresetStart(conn) && connect_poll(conn, until, 1) &&
	    configure(conn, tl.opts, until) == 0)
		r = run_bounded(conn, sql, nparams, params, tl.deadline_ms, timed_out);
	return r;
}

PGresult *db_query(PGconn *conn, const char *sql, int nparams, const char *const *params,
		   char *sqlstate)
{
	PGresult *r = NULL;
	int timed_out = 0;
	char buf[256];

	if (sqlstate)
		sqlstate[0] = '\0';
	if (conn == tl.conn && tl.abandoned) {
		tl.unavailable = 1;
		return NULL;
	}
	r = send_once_more(conn, sql, nparams, params, &timed_out);
	ExecStatusType st = PQresultStatus(r);
	if (r != NULL && (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK))
		return r;
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	if (sqlstate && state) {
		strncpy(sqlstate, state, 5);
		sqlstate[5] = '\0';
	}
	if (timed_out) {
		tl.abandoned = conn == tl.conn;
		tl.unavailable = 1;
		log_error("db.query.failed", "sqlstate", "", "error",
			  "no answer before the request deadline; connection dropped", NULL);
		return NULL;
	}
	tl.unavailable = sqlstate_transient(state) || PQstatus(conn) != CONNECTION_OK;
	/* Constraint violations are expected outcomes the caller maps. */
	if (state == NULL || strncmp(state, "23", 2) != 0) {
		const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
		if (msg == NULL)
			msg = one_line(r ? PQresultErrorMessage(r) : PQerrorMessage(conn), buf,
				       sizeof(buf));
		if (msg[0] == '\0')
			msg = one_line(PQerrorMessage(conn), buf, sizeof(buf));
		if (msg[0] == '\0')
			msg = "connection lost";
		log_error("db.query.failed", "sqlstate", state ? state : "", "error", msg, NULL);
	}
	PQclear(r);
	return NULL;
}

int db_exec(PGconn *conn, const char *sql, int nparams, const char *const *params)
{
	PGresult *r = db_query(conn, sql, nparams, params, NULL);

	if (r == NULL)
		return db_error();
	PQclear(r);
	return 0;
}

int db_begin(PGconn *conn)
{
	return db_exec(conn, "BEGIN", 0, NULL);
}
int db_commit(PGconn *conn)
{
	return db_exec(conn, "COMMIT", 0, NULL);
}
int db_rollback(PGconn *conn)
{
	return db_exec(conn, "ROLLBACK", 0, NULL);
}

int db_ping(struct db_pool *pool, int timeout_ms)
{
	PGconn *c = acquire_until(pool, timeout_ms, bz_monotonic_ms() + timeout_ms);
	int rc = BZ_ERR_UNAVAILABLE;

	if (c == NULL)
		return rc;
	PGresult *r = db_query(c, "SELECT 1", 0, NULL, NULL);
	if (r != NULL) {
		rc = 0;
		PQclear(r);
	}
	db_release(pool, c);
	return rc;
}

const char *db_val(const PGresult *res, int r, int c)
{
	return PQgetisnull(res, r, c) ? NULL : PQgetvalue(res, r, c);
}
