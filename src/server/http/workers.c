/*
 * workers.c — the fixed pool of threads that run route handlers.
 *
 * libmicrohttpd runs one event loop thread that only moves bytes: when a
 * request has arrived in full, its connection is suspended and the request
 * is queued here (guard.c); a worker runs ulfius's dispatcher for it, and
 * the connection is resumed when its answer is ready. A handler that waits
 * on PostgreSQL therefore holds one worker, never the event loop, and a
 * handler that defers its answer (http_defer) holds none while it waits.
 * The queue is an intrusive FIFO: a job lives in its request's own state,
 * so queueing never allocates and never fails.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "common/err.h"
#include "server/http/http_internal.h"

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct http_job *head, *tail;
	pthread_t *threads;
	unsigned n_threads;
	int stopping;	  /* no new job is taken; the queue is run to its end */
	atomic_uint busy; /* jobs queued or running */
	atomic_int accepting;
} pool = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void *worker_main(void *arg)
{
	(void)arg;
	for (;;) {
		pthread_mutex_lock(&pool.mu);
		while (pool.head == NULL && !pool.stopping)
			pthread_cond_wait(&pool.cv, &pool.mu);
		struct http_job *j = pool.head;
		if (j == NULL) { /* stopping, and nothing left */
			pthread_mutex_unlock(&pool.mu);
			return NULL;
		}
		pool.head = j->next;
		if (pool.head == NULL)
			pool.tail = NULL;
		pthread_mutex_unlock(&pool.mu);
		j->next = NULL;
		j->run(j);
		atomic_fetch_sub(&pool.busy, 1);
	}
}

int http_workers_start(unsigned n)
{
	pool.threads = calloc(n, sizeof(*pool.threads));
	if (pool.threads == NULL)
		return BZ_ERR_NOMEM;
	pool.stopping = 0;
	pool.n_threads = 0;
	for (unsigned i = 0; i < n; i++) {
		if (pthread_create(&pool.threads[i], NULL, worker_main, NULL) != 0) {
			http_workers_stop();
			return BZ_ERR_INTERNAL;
		}
		pool.n_threads++;
	}
	atomic_store(&pool.accepting, 1);
	return 0;
}

int http_workers_accepting(void)
{
	return atomic_load(&pool.accepting);
}

void http_workers_submit(struct http_job *j)
{
	j->next = NULL;
	atomic_fetch_add(&pool.busy, 1);
	pthread_mutex_lock(&pool.mu);
	if (pool.tail != NULL)
		pool.tail->next = j;
	else
		pool.head = j;
	pool.tail = j;
	pthread_cond_signal(&pool.cv);
	pthread_mutex_unlock(&pool.mu);
}

unsigned http_workers_busy(void)
{
	return atomic_load(&pool.busy);
}

unsigned http_workers_shed(void)
{
	struct http_job *list;
	unsigned n = 0;

	pthread_mutex_lock(&pool.mu);
	list = pool.head;
	pool.head = pool.tail = NULL;
	pthread_mutex_unlock(&pool.mu);
	while (list != NULL) {
		struct http_job *j = list;
		list = j->next;
		j->next = NULL;
		j->refuse(j);
		atomic_fetch_sub(&pool.busy, 1);
		n++;
	}
	return n;
}

void http_workers_stop(void)
{
	atomic_store(&pool.accepting, 0);
	pthread_mutex_lock(&pool.mu);
	pool.stopping = 1;
	pthread_cond_broadcast(&pool.cv);
	pthread_mutex_unlock(&pool.mu);
	for (unsigned i = 0; i < pool.n_threads; i++)
		pthread_join(pool.threads[i], NULL);
	free(pool.threads);
	pool.threads = NULL;
	pool.n_threads = 0;
}
