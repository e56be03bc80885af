/*
 * http_internal.h — shared by the files of the HTTP layer only (server.c,
 * guard.c): the state that links libmicrohttpd, ulfius and the dispatcher.
 */
#ifndef BZ_HTTP_INTERNAL_H
#define BZ_HTTP_INTERNAL_H

#include <stdarg.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "server/http/http.h"

/* ---- The worker pool (workers.c) ---- */

/* Starts N worker threads (HTTP_WORKER_THREADS). Returns 0, BZ_ERR_NOMEM or
 * BZ_ERR_INTERNAL (a thread could not start; none is left running). */
int http_workers_start(unsigned n);

/* 1 while the pool takes jobs (between start and stop). */
int http_workers_accepting(void);

/* Queues JOB (FIFO). Only while http_workers_accepting(). */
void http_workers_submit(struct http_job *job);

/* Jobs queued or running now. */
unsigned http_workers_busy(void);

/* Takes every job still queued (none started) and calls its REFUSE on
 * this thread. Returns how many. */
unsigned http_workers_shed(void);

/* Stops taking jobs, runs every queued one to its end, joins the threads. */
void http_workers_stop(void);

/* The end of every request (server.c): the drain's Connection: close, the
 * log line, the metrics, what it held; it no longer counts as in flight. */
void http_request_end(struct request *rq);

/* 1 if METHOD URL (a path, no query) is a ROUTE_INLINE route (server.c). */
int http_route_inline(const char *method, const char *url);

/* ---- The guard's state of one request (guard.c, guard_suspend.c) ---- */

/* Where a request's final call stands (guard_access). */
enum guard_stage {
	STAGE_READING,	/* headers and body arriving on the event loop */
	STAGE_RUNNING,	/* suspended; the handler runs (or its answer waits) */
	STAGE_ANSWERED, /* the answer is ready: queue it when MHD calls again */
};

struct body_guard {
	void *ulfius_cls;    /* what ulfius_uri_logger() returned */
	int path_escaped;    /* the raw request path holds a percent escape */
	uint64_t body_bytes; /* body bytes passed to ulfius so far */
	int headers_seen;
	/* The final call, run on a worker (guard_run) while the connection is
	 * suspended; MU guards the fields below it. */
	struct http_job job;
	struct MHD_Connection *conn;
	const char *url, *method, *version; /* MHD's, valid for the request */
	pthread_mutex_t mu;
	enum guard_stage stage;
	int worker_returned;	       /* guard_run() is past ulfius's dispatcher */
	int deferred;		       /* http_defer(): the answer comes from http_guard_answer() */
	int counted;		       /* in http_guard_pending() until its completion */
	int resume_wanted;	       /* answered before the worker returned */
	struct MHD_Response *captured; /* what ulfius queued on the worker */
	unsigned captured_status;
	struct MHD_Response *answer; /* queued when MHD calls again; NULL = close */
	unsigned answer_status;
};

/* ulfius's access handler for G's request (guard.c). */
enum MHD_Result http_guard_call_inner(struct body_guard *g, struct MHD_Connection *conn,
				      const char *url, const char *method, const char *version,
				      const char *upload_data, size_t *upload_data_size);

/* The final call of G's request (guard_suspend.c): suspends the connection
 * and queues the handler on a worker; when MHD calls again after the
 * resume, queues the answer the handler left. Inline routes run here. */
enum MHD_Result http_guard_final(struct body_guard *g, struct MHD_Connection *conn, const char *url,
				 const char *method, const char *version, size_t *upload_data_size);

/* libmicrohttpd's own MHD_queue_response / MHD_destroy_response (the
 * executable's definitions interpose them for ulfius, guard_suspend.c). */
enum MHD_Result http_real_queue_response(struct MHD_Connection *conn, unsigned status,
					 struct MHD_Response *r);
void http_real_destroy_response(struct MHD_Response *r);

/* Requests suspended and not complete yet (queued, running, deferred, or
 * answered and not yet sent); the drain waits for them. */
unsigned http_guard_pending(void);
/* Called by the completion of a request counted there (guard.c). */
void http_guard_pending_done(void);

/* A refusal the guard gives itself (guard.c): {CODE, MSG} with the common
 * headers, Connection: close, X-Request-Id RID and, unless NULL,
 * Retry-After RETRY_AFTER. NULL on no memory. */
struct MHD_Response *http_guard_refusal(const char *code, const char *msg, const char *rid,
					const char *retry_after);

/* The log line of a request the guard answered itself (guard.c). */
void http_guard_log_refused(struct MHD_Connection *conn, const char *method, int status,
			    const char *route, const char *rid, int responded);

/* ---- Answers prepared off the event loop (guard_suspend.c) ---- */

/* The guard's state of the request running on this thread (set around the
 * handler), for http_defer(); NULL elsewhere. */
extern _Thread_local void *http_current_guard;

/* Marks the request of guard state G deferred: the answer ulfius queues
 * when the handler returns is dropped, and the connection stays suspended
 * until http_guard_answer(). */
void http_guard_defer(void *g);

/* Gives the deferred request of G its answer R (an MHD response, owned from
 * here on; NULL closes the connection) with STATUS, and resumes its
 * connection once the worker that deferred it has returned. Any thread,
 * once per deferred request. G must not be used afterwards. */
void http_guard_answer(void *g, unsigned status, struct MHD_Response *r);

/* The running server (one per process), for callbacks that get no app. */
extern struct app *http_current_app;

/* The libmicrohttpd connection whose request this thread is running, set by
 * the guard around ulfius's dispatcher; NULL elsewhere. */
extern _Thread_local struct MHD_Connection *http_current_conn;

/* 1 while the guard runs a request whose raw path (before libmicrohttpd
 * decodes it) holds a percent escape: the static files refuse those, as
 * "%2F", "%2e%2e" or "%00" could otherwise turn into a path (static.c). */
extern _Thread_local int http_current_path_escaped;

/* Every field line of header NAME on CONN (any letter case), joined with
 * ", " in arrival order (RFC 9110 §5.3), stored in MAP, which owns the
 * returned string; NULL when absent. */
const char *http_header_combined(struct MHD_Connection *conn, struct _u_map *map, const char *name);

/* libmicrohttpd's external logger: one JSON warning line per message. */
void http_mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/* Arms the body-size guard for the next MHD_start_daemon() call (ulfius's),
 * with the body limit MAX_BODY in bytes. */
void http_guard_arm(size_t max_body);

/* Disarms the guard after the start; returns 1 if it was installed in front
 * of ulfius's handler (else the server must not run), and sets
 * *LOGGER_FIRST to whether the JSON logger went in as MHD's first option. */
int http_guard_disarm(int *logger_first);

/* MHD_OPTION_URI_LOG_CALLBACK and MHD_OPTION_NOTIFY_COMPLETED wrappers
 * around ulfius's own (guard.c). */
void *http_guard_uri_log(void *cls, const char *uri, struct MHD_Connection *conn);
/* MHD_OPTION_NOTIFY_CONNECTION: tracks each connection (guard.c). */
void http_guard_notify_conn(void *cls, struct MHD_Connection *conn, void **socket_context,
			    enum MHD_ConnectionNotificationCode code);

/* Shuts down every tracked connection that has waited more than
 * HEADER_TIMEOUT_MS milliseconds for a complete request line and headers
 * (since accept, or since a kept-alive connection's next request line),
 * every kept-alive connection whose next request line has not been
 * completed IDLE_TIMEOUT_MS + HEADER_TIMEOUT_MS after the previous answer
 * (a client trickling that line byte by byte keeps MHD's idle timer
 * running forever; a silent one MHD closes at IDLE_TIMEOUT_MS), and with
 * CLOSE_IDLE every kept-alive connection between requests; while accept()
 * is stalled for lack of descriptors and CLIENT_WAITING() says a client is
 * queued, also the oldest idle one. Returns the
 * number closed for the two deadlines. Thread-safe. */
unsigned http_guard_sweep(int64_t header_timeout_ms, int64_t idle_timeout_ms, int close_idle,
			  int (*client_waiting)(void));

void http_guard_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			  enum MHD_RequestTerminationCode toe);

/* After authentication, before the handler (access.c): the per-user rate
 * limit, the forced-MFA-enrolment gate (428 unless ROUTE_MFA_EXEMPT) and
 * the route's permission (403; API keys kept off ROUTE_NO_API_KEY and
 * ROUTE_SELF_SERVICE routes; a user route naming no permission and not
 * self-service is refused). Answers and returns BZ_ERR_RESPONDED, or 0. */
int http_admit_user(struct request *rq);

#endif
