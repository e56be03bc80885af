#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "common/log.h"
#include "server/db/db.h"

struct db_pool {
	char *url;
	unsigned size;
	PGconn **conns;
	unsigned char *busy;
	pthread_mutex_t mu;
	pthread_cond_t cv;
};

static PGconn *connect_quiet(const char *url)
{
	/* connect_timeout keeps a dead database from hanging a request. */
	const char *const keys[] = {"dbname", "connect_timeout", "application_name", NULL};
	const char *const vals[] = {url, "5", "breeze-server", NULL};
	PGconn *c = PQconnectdbParams(keys, vals, 1);

	if (c == NULL)
		return NULL;
	if (PQstatus(c) != CONNECTION_OK) {
		log_error("db.connect.failed", "error", PQerrorMessage(c), NULL);
		PQfinish(c);
		return NULL;
	}
	/* Text is exchanged as UTF-8 (hashed audit fields depend on it) and
	 * times in UTC and ISO form, whatever the server's or the role's
	 * defaults say; SET has the highest precedence. A connection that
	 * cannot be so configured is not used. */
	PGresult *r = PQexec(c, "SET client_encoding = 'UTF8'; SET TIME ZONE 'UTC';"
				" SET DateStyle = 'ISO, YMD'");
	int ok = PQresultStatus(r) == PGRES_COMMAND_OK &&
		 strcmp(pg_encoding_to_char(PQclientEncoding(c)), "UTF8") == 0;
	PQclear(r);
	if (!ok) {
		log_error("db.connect.failed", "error", "cannot set client_encoding UTF8", NULL);
		PQfinish(c);
		return NULL;
	}
	return c;
}

PGconn *db_connect(const char *url)
{
	return connect_quiet(url);
}

struct db_pool *db_pool_open(const char *url, unsigned size, const char **err)
{
	struct db_pool *p = calloc(1, sizeof(*p));

	*err = NULL;
	if (p == NULL) {
		*err = "out of memory";
		return NULL;
	}
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
		p->conns[i] = connect_quiet(url);
		if (i == 0 && p->conns[i] == NULL) {
			*err = "cannot connect to the database (see db.connect.failed)";
			pthread_mutex_destroy(&p->mu);
			pthread_cond_destroy(&p->cv);
			goto fail;
		}
	}
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
	free(p);
}

PGconn *db_acquire(struct db_pool *p, int timeout_ms)
{
	struct timespec deadline;
	unsigned idx = 0;
	int found = 0;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&p->mu);
	for (;;) {
		for (unsigned i = 0; i < p->size; i++) {
			if (!p->busy[i]) {
				idx = i;
				found = 1;
				break;
			}
		}
		if (found)
			break;
		if (pthread_cond_timedwait(&p->cv, &p->mu, &deadline) == ETIMEDOUT)
			break;
	}
	if (!found) {
		pthread_mutex_unlock(&p->mu);
		log_warn("db.pool.exhausted", NULL);
		return NULL;
	}
	p->busy[idx] = 1;
	pthread_mutex_unlock(&p->mu);

	PGconn *c = p->conns[idx];
	if (c == NULL || PQstatus(c) != CONNECTION_OK) {
		if (c != NULL)
			PQfinish(c);
		c = p->conns[idx] = connect_quiet(p->url);
	}
	if (c == NULL) {
		pthread_mutex_lock(&p->mu);
		p->busy[idx] = 0;
		pthread_cond_signal(&p->cv);
		pthread_mutex_unlock(&p->mu);
	}
	return c;
}

void db_release(struct db_pool *p, PGconn *c)
{
	if (c == NULL)
		return;
	if (PQtransactionStatus(c) != PQTRANS_IDLE) {
		PGresult *r = PQexec(c, "ROLLBACK");
		PQclear(r);
	}
	pthread_mutex_lock(&p->mu);
	for (unsigned i = 0; i < p->size; i++) {
		if (p->conns[i] == c) {
			p->busy[i] = 0;
			break;
		}
	}
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

PGresult *db_query(PGconn *conn, const char *sql, int nparams, const char *const *params,
		   char *sqlstate)
{
	PGresult *r = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(r);

	if (sqlstate)
		sqlstate[0] = '\0';
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
		return r;
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	if (sqlstate && state) {
		strncpy(sqlstate, state, 5);
		sqlstate[5] = '\0';
	}
	/* Constraint violations are expected outcomes the caller maps. */
	if (state == NULL || strncmp(state, "23", 2) != 0)
		log_error("db.query.failed", "sqlstate", state ? state : "", "error",
			  r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : PQerrorMessage(conn),
			  NULL);
	PQclear(r);
	return NULL;
}

int db_exec(PGconn *conn, const char *sql, int nparams, const char *const *params)
{
	PGresult *r = db_query(conn, sql, nparams, params, NULL);

	if (r == NULL)
		return BZ_ERR_DB;
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
	PGconn *c = db_acquire(pool, timeout_ms);
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
