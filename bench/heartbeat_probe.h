/*
 * heartbeat_probe.h — what bench/heartbeat measures besides the answers:
 * CPU time of the server, PostgreSQL and Redis processes (/proc/PID/stat),
 * the server's RSS (/proc/PID/status), and PostgreSQL's own counters
 * (pg_stat_statements when loaded, pg_stat_database, pg_stat_wal and the
 * WAL insert position). Each snapshot is taken before and after a run; the
 * report is the difference.
 */
#ifndef BENCH_HEARTBEAT_PROBE_H
#define BENCH_HEARTBEAT_PROBE_H

#include <stdint.h>
#include <stdio.h>

#include <jansson.h>
#include <libpq-fe.h>

/* CPU seconds (user + system) of one process, all its threads, and the
 * children it has reaped; with TREE also of every live child (PostgreSQL:
 * the postmaster's backends). -1 when PID is 0 or unreadable. */
double probe_cpu_s(int pid, int tree);

/* Resident set (VmRSS) and its peak (VmHWM) of PID in KiB; -1 if unknown. */
void probe_rss_kib(int pid, long *rss, long *hwm);

/* PostgreSQL counters of one database and one role at one moment. */
struct probe_pg {
	int have_pgss;	     /* pg_stat_statements is loaded and readable */
	int64_t statements;  /* pg_stat_statements calls of ROLE in DB */
	int64_t xacts;	     /* pg_stat_database xact_commit + xact_rollback of DB */
	int64_t wal_bytes;   /* pg_current_wal_lsn() - '0/0' (whole cluster) */
	int64_t wal_records; /* pg_stat_wal.wal_records (whole cluster) */
	int64_t wal_syncs;   /* pg_stat_wal.wal_sync: WAL fsyncs (whole cluster) */
};

/* Connects to URL (a superuser or pg_monitor role of the cluster under
 * test; it runs no statement of the benchmarked role). Creates
 * pg_stat_statements in the connected database when the library is
 * preloaded and the extension is missing. Returns NULL (message on stderr)
 * if the connection fails. */
PGconn *probe_pg_connect(const char *url);

/* Snapshot of DB's and ROLE's counters into OUT. Resets
 * pg_stat_statements first when RESET (the run's top statements are then
 * the run's alone). Returns 0 or -1. */
int probe_pg_snapshot(PGconn *c, const char *db, const char *role, int reset, struct probe_pg *out);

/* Appends the TOP most called statements of ROLE in DB since the last
 * reset to ARR as {"perHeartbeat": calls / HEARTBEATS, "meanMs": mean
 * execution time in ms, "query": first 100 characters}. No-op without
 * pg_stat_statements. */
void probe_pg_top(PGconn *c, const char *db, const char *role, int top, double heartbeats,
		  json_t *arr);

#endif
