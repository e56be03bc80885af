/*
 * defer.c — deferred answers (http.h): a handler hands its request to
 * another thread and returns; the request holds no worker and no pool
 * connection meanwhile, and its connection stays suspended until
 * http_resume() gives the guard its answer (guard_suspend.c).
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "server/http/http.h"
#include "server/http/http_internal.h"

struct request *http_defer(struct request *rq)
{
	struct request *d = rq->guard != NULL ? malloc(sizeof(*d)) : NULL;
	struct _u_response *resp = d != NULL ? malloc(sizeof(*resp)) : NULL;

	if (resp == NULL || ulfius_init_response(resp) != U_OK) {
		free(resp);
		free(d);
		http_fail(rq, 503, "unavailable", "the server cannot take this request now");
		return NULL;
	}
	http_db_release(rq);
	/* The headers set so far (request id, security headers) go along. */
	for (int i = 0; i < rq->resp->map_header->nb_values; i++)
		u_map_put(resp->map_header, rq->resp->map_header->keys[i],
			  rq->resp->map_header->values[i]);
	*d = *rq;
	d->resp = resp;
	/* Ownership moved to D: the dispatcher's copy ends without freeing. */
	rq->deferred = 1;
	rq->body = NULL;
	memset(&rq->who, 0, sizeof(rq->who));
	memset(&rq->scope, 0, sizeof(rq->scope));
	http_guard_defer(rq->guard);
	return d;
}

/* libmicrohttpd's form of RESP: status, headers and body (copied). */
static struct MHD_Response *mhd_answer(const struct _u_response *resp)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(resp->binary_body_length,
								 resp->binary_body,
								 MHD_RESPMEM_MUST_COPY);

	for (int i = 0; r != NULL && i < resp->map_header->nb_values; i++)
		if (MHD_add_response_header(r, resp->map_header->keys[i],
					    resp->map_header->values[i]) != MHD_YES) {
			MHD_destroy_response(r);
			r = NULL; /* the connection is closed instead */
		}
	return r;
}

void http_resume(struct request *d)
{
	if (d->status == 0)
		http_fail(d, 500, "internal", "internal error");
	/* Everything that reads ulfius's request ends before the resume: the
	 * connection may complete (and ulfius free it) at once after it. The
	 * drain still waits for the answer (http_guard_pending). */
	http_request_end(d);
	struct MHD_Response *r = mhd_answer(d->resp);
	unsigned status = (unsigned)d->resp->status;
	void *g = d->guard;

	ulfius_clean_response(d->resp);
	free(d->resp);
	free(d);
	http_guard_answer(g, status, r);
}

static void defer_run_job(struct http_job *job)
{
	struct request *d = (struct request *)((char *)job - offsetof(struct request, job));

	http_current_conn = d->conn; /* suspended: its header lines are stable */
	d->defer_fn(d);
	http_current_conn = NULL;
}

/* The answer of a deferred request the server stops before running. */
static void shutting_down(struct request *d)
{
	http_set_header(d, "Retry-After", "1");
	http_fail(d, 503, "shutting_down", "the server is shutting down; retry shortly");
	http_resume(d);
}

static void defer_run_refuse(struct http_job *job)
{
	shutting_down((struct request *)((char *)job - offsetof(struct request, job)));
}

void http_defer_run(struct request *d, void (*fn)(struct request *d))
{
	if (!http_workers_accepting()) {
		shutting_down(d);
		return;
	}
	d->defer_fn = fn;
	d->job.run = defer_run_job;
	d->job.refuse = defer_run_refuse;
	http_workers_submit(&d->job);
}
