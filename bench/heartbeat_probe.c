/*
 * heartbeat_probe.c — process and PostgreSQL counters for bench/heartbeat
 * (see heartbeat_probe.h).
 */
#include "heartbeat_probe.h"

#include <ctype.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Fields 4 (ppid) and 14–17 (utime, stime, cutime, cstime; clock ticks)
 * of /proc/PID/stat (proc(5)). The command name may hold spaces and
 * parentheses, so fields are counted from the last ')'. Returns 0 or -1. */
static int read_stat(int pid, int *ppid, double *ticks)
{
	char path[64], buf[1024];
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	if (p == NULL)
		return -1;
	/* After ')': field 3 (state) is the first token. */
	unsigned long long v[15] = {0};
	char state;
	int got =
		sscanf(p + 1,
		       " %c %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu",
		       &state, &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9],
		       &v[10], &v[11], &v[12], &v[13]);
	if (got < 15)
		return -1;
	*ppid = (int)v[0];
	/* v[0] is field 4; fields 14..17 are v[10..13]. */
	*ticks = (double)(v[10] + v[11] + v[12] + v[13]);
	return 0;
}

double probe_cpu_s(int pid, int tree)
{
	double hz = (double)sysconf(_SC_CLK_TCK), total, t;
	int ppid;

	if (pid <= 0 || read_stat(pid, &ppid, &total) != 0)
		return -1;
	if (tree) {
		DIR *d = opendir("/proc");
		struct dirent *e;
		while (d != NULL && (e = readdir(d)) != NULL) {
			if (!isdigit((unsigned char)e->d_name[0]))
				continue;
			if (read_stat(atoi(e->d_name), &ppid, &t) == 0 && ppid == pid)
				total += t;
		}
		if (d != NULL)
			closedir(d);
	}
	return total / hz;
}

void probe_rss_kib(int pid, long *rss, long *hwm)
{
	char path[64], line[256];
	FILE *f;

	*rss = *hwm = -1;
	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	if (pid <= 0 || (f = fopen(path, "r")) == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, "VmRSS:", 6) == 0)
			*rss = strtol(line + 6, NULL, 10);
		else if (strncmp(line, "VmHWM:", 6) == 0)
			*hwm = strtol(line + 6, NULL, 10);
	}
	fclose(f);
}

/* The single bigint of SQL with text parameters A and B (NULL when
 * absent), or -1. */
static int64_t scalar(PGconn *c, const char *sql, const char *a, const char *b)
{
	const char *p[2] = {a, b};
	int np = b ? 2 : a ? 1 : 0;
	PGresult *r = PQexecParams(c, sql, np, NULL, p, NULL, NULL, 0);
	int64_t v = -1;

	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
		v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	else if (PQresultStatus(r) != PGRES_TUPLES_OK)
		fprintf(stderr, "heartbeat: stats query failed: %s", PQerrorMessage(c));
	PQclear(r);
	return v;
}

PGconn *probe_pg_connect(const char *url)
{
	PGconn *c = PQconnectdb(url);

	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "heartbeat: stats connection failed: %s", PQerrorMessage(c));
		PQfinish(c);
		return NULL;
	}
	PQclear(PQexec(c, "SET client_min_messages = warning"));
	/* Only when the library is preloaded: CREATE EXTENSION would succeed
	 * without it, and every read of the view would then fail. */
	if (scalar(c,
		   "SELECT count(*) FROM pg_settings WHERE name = 'shared_preload_libraries'"
		   " AND setting ~ '(^|[ ,])pg_stat_statements($|[ ,])'",
		   NULL, NULL) == 1)
		PQclear(PQexec(c, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"));
	return c;
}

static const char *pgss_calls_sql =
	"SELECT coalesce(sum(s.calls), 0)::bigint FROM pg_stat_statements s"
	" JOIN pg_database d ON d.oid = s.dbid JOIN pg_roles r ON r.oid = s.userid"
	" WHERE d.datname = $1 AND r.rolname = $2";

int probe_pg_snapshot(PGconn *c, const char *db, const char *role, int reset, struct probe_pg *out)
{
	memset(out, 0, sizeof(*out));
	out->have_pgss =
		scalar(c, "SELECT count(*) FROM pg_extension WHERE extname = 'pg_stat_statements'",
		       NULL, NULL) == 1;
	if (out->have_pgss && reset)
		PQclear(PQexec(c, "SELECT pg_stat_statements_reset()"));
	out->statements = out->have_pgss ? scalar(c, pgss_calls_sql, db, role) : -1;
	out->xacts = scalar(c,
			    "SELECT (xact_commit + xact_rollback)::bigint FROM pg_stat_database"
			    " WHERE datname = $1",
			    db, NULL);
	out->wal_bytes = scalar(c, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint",
				NULL, NULL);
	out->wal_records = scalar(c, "SELECT wal_records FROM pg_stat_wal", NULL, NULL);
	out->wal_syncs = scalar(c, "SELECT wal_sync FROM pg_stat_wal", NULL, NULL);
	return out->xacts < 0 || out->wal_bytes < 0 ? -1 : 0;
}

void probe_pg_top(PGconn *c, const char *db, const char *role, int top, double heartbeats,
		  json_t *arr)
{
	static const char *sql =
		"SELECT s.calls, s.mean_exec_time, left(regexp_replace(s.query, '\\s+', ' ', 'g'), 100)"
		"  FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid"
		"  JOIN pg_roles r ON r.oid = s.userid"
		" WHERE d.datname = $1 AND r.rolname = $2 ORDER BY s.calls DESC LIMIT $3";
	char n[16];
	const char *p[3] = {db, role, n};

	if (heartbeats <= 0)
		return;
	snprintf(n, sizeof(n), "%d", top);
	PGresult *r = PQexecParams(c, sql, 3, NULL, p, NULL, NULL, 0);
	for (int i = 0; PQresultStatus(r) == PGRES_TUPLES_OK && i < PQntuples(r); i++)
		json_array_append_new(arr, json_pack("{s:f,s:f,s:s}", "perHeartbeat",
						     strtod(PQgetvalue(r, i, 0), NULL) / heartbeats,
						     "meanMs", strtod(PQgetvalue(r, i, 1), NULL),
						     "query", PQgetvalue(r, i, 2)));
	PQclear(r);
}
