/*
 * guard_suspend.c — the final call of every request, off the event loop:
 * the connection is suspended, a worker runs ulfius's dispatcher (the route
 * handler), and the answer is queued on the event loop once the connection
 * is resumed (or, for a deferred request, once http_resume() gave it).
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "server/http/http.h"
#include "server/http/http_internal.h"

/*
 * Answers prepared on a worker. ulfius's dispatcher queues its answer with
 * MHD_queue_response() before it returns, and libmicrohttpd 0.9.75 takes a
 * response from another thread only for a suspended connection, while its
 * own thread may still be on its way out of the access handler that
 * suspended it. So the answer is not queued from the worker: the two
 * functions below are defined here (like MHD_start_daemon above, ulfius's
 * calls resolve to them), and on a worker running a request's final call
 * they keep ulfius's response in the guard instead; the connection is then
 * resumed, MHD calls the access handler once more on its own thread, and
 * guard_access() queues the kept response there — the documented
 * suspend/resume pattern. Everywhere else they are libmicrohttpd's.
 */
static _Thread_local struct body_guard *capturing;
_Thread_local void *http_current_guard;

typedef enum MHD_Result (*queue_fn)(struct MHD_Connection *, unsigned int, struct MHD_Response *);
typedef void (*destroy_fn)(struct MHD_Response *);
static queue_fn real_queue;
static destroy_fn real_destroy;
static pthread_once_t real_once = PTHREAD_ONCE_INIT;

static void real_resolve(void)
{
	real_queue = (queue_fn)dlsym(RTLD_NEXT, "MHD_queue_response");
	real_destroy = (destroy_fn)dlsym(RTLD_NEXT, "MHD_destroy_response");
}

enum MHD_Result http_real_queue_response(struct MHD_Connection *conn, unsigned status,
					 struct MHD_Response *r)
{
	pthread_once(&real_once, real_resolve);
	return real_queue != NULL ? real_queue(conn, status, r) : MHD_NO;
}

void http_real_destroy_response(struct MHD_Response *r)
{
	pthread_once(&real_once, real_resolve);
	if (real_destroy != NULL)
		real_destroy(r);
}

enum MHD_Result MHD_queue_response(struct MHD_Connection *conn, unsigned int status,
				   struct MHD_Response *r)
{
	struct body_guard *g = capturing;

	if (g == NULL || conn != g->conn)
		return http_real_queue_response(conn, status, r);
	if (g->captured != NULL || r == NULL)
		return MHD_NO; /* one answer per request, as MHD's own rule */
	g->captured = r;
	g->captured_status = status;
	return MHD_YES;
}

void MHD_destroy_response(struct MHD_Response *r)
{
	struct body_guard *g = capturing;

	if (g != NULL && r != NULL && r == g->captured)
		return; /* kept: guard_run() owns it now */
	http_real_destroy_response(r);
}

/* Runs a request's final call (ulfius's dispatcher: dispatch() and the
 * route handler) on a worker, then hands its answer to the event loop. */
static void guard_run(struct http_job *job)
{
	struct body_guard *g =
		(struct body_guard *)((char *)job - offsetof(struct body_guard, job));
	size_t none = 0;
	int resume = 0;

	capturing = g;
	http_current_guard = g;
	http_current_conn = g->conn;
	http_current_path_escaped = g->path_escaped;
	enum MHD_Result rc =
		http_guard_call_inner(g, g->conn, g->url, g->method, g->version, NULL, &none);
	capturing = NULL;
	http_current_guard = NULL;
	http_current_conn = NULL;
	http_current_path_escaped = 0;

	pthread_mutex_lock(&g->mu);
	g->worker_returned = 1;
	struct MHD_Response *placeholder = NULL;
	if (g->deferred) {
		placeholder = g->captured; /* the answer comes from http_guard_answer() */
		resume = g->resume_wanted;
	} else {
		g->answer = rc == MHD_YES ? g->captured : NULL;
		g->answer_status = g->captured_status;
		if (rc != MHD_YES)
			placeholder = g->captured;
		g->stage = STAGE_ANSWERED;
		resume = 1;
	}
	g->captured = NULL;
	struct MHD_Connection *conn = g->conn;
	pthread_mutex_unlock(&g->mu);
	if (placeholder != NULL)
		http_real_destroy_response(placeholder);
	if (resume)
		MHD_resume_connection(conn); /* G may be freed from here on */
}

/* Requests suspended and not yet complete: queued, running, deferred, or
 * answered and not yet sent. The drain waits for them all. */
static atomic_uint pending_answers;

unsigned http_guard_pending(void)
{
	return atomic_load(&pending_answers);
}

void http_guard_pending_done(void)
{
	atomic_fetch_sub(&pending_answers, 1);
}

/* A request still queued when the drain's cancel phase begins: answered
 * 503 with Retry-After and Connection: close, its handler never run. */
static void guard_refuse(struct http_job *job)
{
	struct body_guard *g =
		(struct body_guard *)((char *)job - offsetof(struct body_guard, job));
	char rid[37];

	if (crypto_random_uuid(rid) != 0)
		snprintf(rid, sizeof(rid), "unknown");
	struct MHD_Response *r = http_guard_refusal("shutting_down",
						    "the server is shutting down; retry shortly",
						    rid, "1");
	http_guard_log_refused(g->conn, g->method, 503, "(shutting down)", rid, r != NULL);
	pthread_mutex_lock(&g->mu);
	g->worker_returned = 1; /* no worker will run it */
	pthread_mutex_unlock(&g->mu);
	http_guard_answer(g, 503, r);
}

void http_guard_defer(void *gp)
{
	struct body_guard *g = gp;

	pthread_mutex_lock(&g->mu);
	g->deferred = 1;
	pthread_mutex_unlock(&g->mu);
}

void http_guard_answer(void *gp, unsigned status, struct MHD_Response *r)
{
	struct body_guard *g = gp;

	pthread_mutex_lock(&g->mu);
	g->answer = r;
	g->answer_status = status;
	g->stage = STAGE_ANSWERED;
	int resume = g->worker_returned;
	if (!resume)
		g->resume_wanted = 1; /* guard_run() resumes when it returns */
	struct MHD_Connection *conn = g->conn;
	pthread_mutex_unlock(&g->mu);
	if (resume)
		MHD_resume_connection(conn);
}

/* The final call of a request: on a worker while the connection is
 * suspended (first time), or queueing the answer it left (after resume).
 * A ROUTE_INLINE route, or any without a running pool (never while
 * serving), ulfius runs here on the event loop. */
enum MHD_Result http_guard_final(struct body_guard *g, struct MHD_Connection *conn, const char *url,
				 const char *method, const char *version, size_t *upload_data_size)
{
	pthread_mutex_lock(&g->mu);
	enum guard_stage stage = g->stage;
	struct MHD_Response *r = g->answer;
	unsigned status = g->answer_status;
	if (stage == STAGE_ANSWERED)
		g->answer = NULL;
	pthread_mutex_unlock(&g->mu);
	if (stage == STAGE_ANSWERED) {
		if (r == NULL)
			return MHD_NO; /* the handler failed hard: close */
		enum MHD_Result ok = http_real_queue_response(conn, status, r);
		http_real_destroy_response(r);
		return ok;
	}
	if (stage == STAGE_RUNNING)
		return MHD_YES; /* cannot happen: a suspended connection gets no call */
	if (!http_workers_accepting() || http_route_inline(method, url)) {
		http_current_conn = conn;
		http_current_path_escaped = g->path_escaped;
		enum MHD_Result rc = http_guard_call_inner(g, conn, url, method, version, NULL,
							   upload_data_size);
		http_current_conn = NULL;
		http_current_path_escaped = 0;
		return rc;
	}
	g->stage = STAGE_RUNNING;
	g->conn = conn;
	g->url = url;
	g->method = method;
	g->version = version;
	g->job.run = guard_run;
	g->job.refuse = guard_refuse;
	g->counted = 1;
	atomic_fetch_add(&pending_answers, 1);
	MHD_suspend_connection(conn);
	http_workers_submit(&g->job);
	return MHD_YES;
}
