/*
 * defer_shim.c — a stand-in for the deferred-answer API of http.h
 * (http_defer, http_resume, http_defer_run) on the thread-per-connection
 * server: the dispatcher's thread waits for the answer. It keeps the
 * handlers that defer correct until the event loop's own implementation
 * replaces this file; it does not free the thread.
 */
#include <pthread.h>
#include <stdlib.h>

#include "server/http/http.h"

struct waiter {
	struct request *rq;
	pthread_cond_t cv;
	int resumed;
	void (*run)(struct request *d);
	struct waiter *next;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct waiter *waiters;
static _Thread_local struct waiter *mine;

/* The waiter of D, with MU held. */
static struct waiter *find(struct request *d)
{
	for (struct waiter *w = waiters; w != NULL; w = w->next)
		if (w->rq == d)
			return w;
	return NULL;
}

struct request *http_defer(struct request *rq)
{
	struct waiter *w = calloc(1, sizeof(*w));

	if (w == NULL) {
		http_fail(rq, 503, "service_unavailable", "out of memory");
		return NULL;
	}
	http_db_drop(rq);
	w->rq = rq;
	pthread_cond_init(&w->cv, NULL);
	pthread_mutex_lock(&mu);
	w->next = waiters;
	waiters = w;
	pthread_mutex_unlock(&mu);
	mine = w;
	return rq;
}

void http_resume(struct request *d)
{
	pthread_mutex_lock(&mu);
	struct waiter *w = find(d);
	if (w != NULL) {
		w->resumed = 1;
		pthread_cond_signal(&w->cv);
	}
	pthread_mutex_unlock(&mu);
}

void http_defer_run(struct request *d, void (*fn)(struct request *d))
{
	pthread_mutex_lock(&mu);
	struct waiter *w = find(d);
	if (w != NULL) {
		w->run = fn;
		pthread_cond_signal(&w->cv);
	}
	pthread_mutex_unlock(&mu);
}

void http_defer_wait(struct request *rq)
{
	struct waiter *w = mine, **pp;

	if (w == NULL || w->rq != rq)
		return;
	mine = NULL;
	pthread_mutex_lock(&mu);
	for (;;) {
		while (!w->resumed && w->run == NULL)
			pthread_cond_wait(&w->cv, &mu);
		if (w->resumed)
			break;
		void (*fn)(struct request *) = w->run;
		w->run = NULL;
		pthread_mutex_unlock(&mu);
		fn(rq);
		pthread_mutex_lock(&mu);
	}
	for (pp = &waiters; *pp != w; pp = &(*pp)->next)
		;
	*pp = w->next;
	pthread_mutex_unlock(&mu);
	pthread_cond_destroy(&w->cv);
	free(w);
}
