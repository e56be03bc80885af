/*
 * http_internal.h — shared by the files of the HTTP layer only (server.c,
 * guard.c): the state that links libmicrohttpd, ulfius and the dispatcher.
 */
#ifndef BZ_HTTP_INTERNAL_H
#define BZ_HTTP_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>

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

/* Stops taking jobs, runs every queued one to its end, joins the threads. */
void http_workers_stop(void);

/* 1 if METHOD URL (a path, no query) is a ROUTE_INLINE route (server.c). */
int http_route_inline(const char *method, const char *url);

/* ---- Answers prepared off the event loop (guard.c) ---- */

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
 * is stalled for lack of descriptors, also the oldest idle one. Returns the
 * number closed for the two deadlines. Thread-safe. */
unsigned http_guard_sweep(int64_t header_timeout_ms, int64_t idle_timeout_ms, int close_idle);

void http_guard_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			  enum MHD_RequestTerminationCode toe);

/* After authentication, before the handler (access.c): the per-user rate
 * limit, the forced-MFA-enrolment gate (428 unless ROUTE_MFA_EXEMPT) and
 * the route's permission (403; API keys kept off ROUTE_NO_API_KEY and
 * ROUTE_SELF_SERVICE routes; a user route naming no permission and not
 * self-service is refused). Answers and returns BZ_ERR_RESPONDED, or 0. */
int http_admit_user(struct request *rq);

#endif
