/*
 * audit_append — chained audit appends per second (issue 3 benchmark).
 *
 *   audit_append DATABASE_URL ORGS WRITERS SECONDS [tx]
 *
 * Starts WRITERS threads, each with its own connection, writing audit rows
 * round-robin into ORGS organizations' chains for SECONDS seconds, and
 * prints appends/s. Without "tx" each append is one autocommit INSERT;
 * with "tx" each is BEGIN; INSERT; COMMIT (three round trips, the shape of
 * a real mutation whose audit row comes last). AUDIT_BENCH_TABLE=
 * bench_deferred_log measures the deferred-sealing variant instead
 * (bench/audit_deferred_variant.sql). Prints figures only; asserts nothing.
 */
#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto/crypto.h"

static const char *url;
static const char *insert_sql =
	"INSERT INTO audit_log (org_id, actor_type, action, resource, details)"
	" VALUES ($1::uuid, 'system', 'bench.append', 'bench', $2)";
static int n_orgs, n_writers, seconds, use_tx;
static char (*orgs)[37];
static atomic_long total;
static atomic_int stop;

static void *writer(void *arg)
{
	long w = (long)arg, done = 0;
	PGconn *c = PQconnectdb(url);

	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "connect: %s", PQerrorMessage(c));
		exit(1);
	}
	PQclear(PQexec(c, "SET synchronous_commit = off"));
	for (long i = 0; !atomic_load(&stop); i++) {
		const char *org = orgs[(w + i) % n_orgs];
		const char *p[2] = {org, "{\"bench\":true,\"n\":1}"};
		if (use_tx)
			PQclear(PQexec(c, "BEGIN"));
		PGresult *r = PQexecParams(c, insert_sql, 2, NULL, p, NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			fprintf(stderr, "insert: %s", PQerrorMessage(c));
			exit(1);
		}
		PQclear(r);
		if (use_tx)
			PQclear(PQexec(c, "COMMIT"));
		done++;
	}
	atomic_fetch_add(&total, done);
	PQfinish(c);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: audit_append DATABASE_URL ORGS WRITERS SECONDS [tx]\n");
		return 2;
	}
	url = argv[1];
	n_orgs = atoi(argv[2]);
	n_writers = atoi(argv[3]);
	seconds = atoi(argv[4]);
	use_tx = argc > 5 && !strcmp(argv[5], "tx");
	const char *table = getenv("AUDIT_BENCH_TABLE");
	if (table != NULL && !strcmp(table, "bench_deferred_log"))
		insert_sql =
			"INSERT INTO bench_deferred_log (org_id, actor_type, action, resource, details)"
			" VALUES ($1::uuid, 'system', 'bench.append', 'bench', $2)";
	else if (table != NULL && strcmp(table, "audit_log") != 0) {
		fprintf(stderr, "AUDIT_BENCH_TABLE must be audit_log or bench_deferred_log\n");
		return 2;
	}
	if (n_orgs < 1 || n_writers < 1 || seconds < 1)
		return 2;
	orgs = calloc((size_t)n_orgs, sizeof(*orgs));
	for (int i = 0; i < n_orgs; i++)
		crypto_random_uuid(orgs[i]);
	pthread_t *t = calloc((size_t)n_writers, sizeof(*t));
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < n_writers; i++)
		pthread_create(&t[i], NULL, writer, (void *)i);
	struct timespec d = {seconds, 0};
	nanosleep(&d, NULL);
	atomic_store(&stop, 1);
	for (int i = 0; i < n_writers; i++)
		pthread_join(t[i], NULL);
	clock_gettime(CLOCK_MONOTONIC, &b);
	double el = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
	printf("audit appends (%s): %d org(s), %d writer(s), %s: %ld rows in %.2f s = %.0f appends/s\n",
	       table ? table : "audit_log", n_orgs, n_writers,
	       use_tx ? "BEGIN;INSERT;COMMIT" : "autocommit INSERT", (long)atomic_load(&total), el,
	       (double)atomic_load(&total) / el);
	free(t);
	free(orgs);
	return 0;
}
