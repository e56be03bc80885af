/*
 * guard.c — what stands between libmicrohttpd and ulfius: the body-size
 * guard (413 before a body byte is read), the connection tracker (header
 * deadline, closing idle connections on drain) and MHD's own log messages
 * as rate-limited JSON lines.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "crypto/crypto.h"
#include "server/http/http.h"
#include "server/http/http_internal.h"

/* A message repeated within MHD_LOG_WINDOW_MS of its last line is counted,
 * not written; its next line says how many were left out. The last
 * MHD_LOG_SLOTS distinct messages are remembered (MHD's accept failure
 * alternates two). */
#define MHD_LOG_WINDOW_MS 10000
#define MHD_LOG_SLOTS 8

static struct {
	pthread_mutex_t mu;
	struct {
		char text[512];
		int64_t last_ms; /* when it was last written; 0 = free slot */
		unsigned suppressed;
	} slot[MHD_LOG_SLOTS];
} mhd_log_state = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* 1 if MSG is to be written now; *REPEATED receives how many lines of it
 * were left out since it was last written. */
static int mhd_log_admit(const char *msg, int64_t now, unsigned *repeated)
{
	size_t i, oldest = 0;
	int emit = 1;

	*repeated = 0;
	pthread_mutex_lock(&mhd_log_state.mu);
	for (i = 0; i < MHD_LOG_SLOTS; i++) {
		if (mhd_log_state.slot[i].last_ms != 0 &&
		    strcmp(mhd_log_state.slot[i].text, msg) == 0)
			break;
		if (mhd_log_state.slot[i].last_ms < mhd_log_state.slot[oldest].last_ms)
			oldest = i;
	}
	if (i == MHD_LOG_SLOTS) {
		i = oldest;
		snprintf(mhd_log_state.slot[i].text, sizeof(mhd_log_state.slot[i].text), "%s", msg);
		mhd_log_state.slot[i].suppressed = 0;
	} else if (now - mhd_log_state.slot[i].last_ms < MHD_LOG_WINDOW_MS) {
		mhd_log_state.slot[i].suppressed++;
		emit = 0;
	}
	if (emit) {
		*repeated = mhd_log_state.slot[i].suppressed;
		mhd_log_state.slot[i].suppressed = 0;
		mhd_log_state.slot[i].last_ms = now > 0 ? now : 1;
	}
	pthread_mutex_unlock(&mhd_log_state.mu);
	return emit;
}

/*
 * libmicrohttpd's own messages (bad requests it answers itself, closed
 * connections) become JSON log lines like everything else (M4), rate-limited
 * by mhd_log_admit(): a flood of one message is one line per
 * MHD_LOG_WINDOW_MS with "repeated": N. When accept() fails for lack of file
 * descriptors, MHD's event loop takes the listening socket out of its epoll
 * set until a connection closes, so there is no busy loop — except when no
 * connection is open at all, where MHD retries at once ("at FIRST
 * connection"); the logger then pauses the loop for 100 ms. With no
 * connection open, no request waits on that pause. MHD takes the listening
 * socket back only when one of its connections closes, so while accept is
 * stalled the sweep sheds the oldest kept-alive idle connection while a
 * client waits to be accepted, one at a time: the next only once MHD has
 * closed the previous one (http_guard_sweep).
 */
static atomic_int accept_stalled;

void http_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512], rep[16];
	unsigned repeated;

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	if (mhd_log_admit(msg, bz_monotonic_ms(), &repeated)) {
		snprintf(rep, sizeof(rep), "%u", repeated);
		if (repeated > 0)
			log_warn("http.mhd", "detail", msg, "repeated", rep, NULL);
		else
			log_warn("http.mhd", "detail", msg, NULL);
	}
	if (strstr(msg, "temporarily suspending accept()") != NULL)
		atomic_store(&accept_stalled, 1);
	if (strstr(msg, "resource limit at FIRST") != NULL) {
		struct timespec ts = {0, 100 * 1000000L};
		nanosleep(&ts, NULL);
	}
}

/*
 * Connection tracker. Every connection MHD accepts gets a struct
 * conn_track (MHD_OPTION_NOTIFY_CONNECTION), whose state the callbacks
 * below move along:
 *   HEADERS  accepted, or a request line received on a kept-alive
 *            connection: the request line and headers must be complete
 *            within the header deadline (measured from SINCE_MS);
 *   BUSY     headers complete, the request is being read or answered;
 *   IDLE     kept alive between requests (MHD's idle timeout applies).
 * http_guard_sweep() closes HEADERS connections past the deadline and, while
 * draining, IDLE ones. libmicrohttpd's MHD_OPTION_CONNECTION_TIMEOUT is an
 * idle timeout only: a client sending one header line every few seconds
 * would otherwise hold its connection forever. The socket is shut down, not
 * closed: MHD sees the end of stream in its own thread and closes it; the
 * tracker's mutex is held from the CLOSED notification, which MHD sends
 * before closing the descriptor, so a descriptor shut down here is never
 * one that was already reused.
 */
enum conn_state { CONN_HEADERS, CONN_BUSY, CONN_IDLE };

struct conn_track {
	struct conn_track *prev, *next;
	MHD_socket fd;
	enum conn_state state;
	int64_t since_ms; /* entered HEADERS (monotonic) */
	int shut;	  /* already shut down by the sweep */
	int shed;	  /* shut down to make room for accept() (not closed yet) */
};

static pthread_mutex_t track_mu = PTHREAD_MUTEX_INITIALIZER;
static struct conn_track *track_head;

void http_guard_notify_conn(void *cls, struct MHD_Connection *conn, void **socket_context,
			    enum MHD_ConnectionNotificationCode code)
{
	struct conn_track *t = *socket_context;

	(void)cls;
	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		t = calloc(1, sizeof(*t));
		if (t == NULL || ci == NULL) {
			free(t);
			return; /* untracked: only MHD's own timeouts apply */
		}
		t->fd = ci->connect_fd;
		t->state = CONN_HEADERS;
		t->since_ms = bz_monotonic_ms();
		atomic_store(&accept_stalled, 0); /* accept() works again */
		pthread_mutex_lock(&track_mu);
		t->next = track_head;
		if (track_head != NULL)
			track_head->prev = t;
		track_head = t;
		pthread_mutex_unlock(&track_mu);
		*socket_context = t;
		return;
	}
	if (t == NULL)
		return;
	pthread_mutex_lock(&track_mu);
	if (t->prev != NULL)
		t->prev->next = t->next;
	else
		track_head = t->next;
	if (t->next != NULL)
		t->next->prev = t->prev;
	pthread_mutex_unlock(&track_mu);
	free(t);
	*socket_context = NULL;
}

/* Moves CONN's tracker to STATE; FROM_IDLE_ONLY: only if it is IDLE. */
static void track_set(struct MHD_Connection *conn, enum conn_state state, int from_idle_only)
{
	const union MHD_ConnectionInfo *ci =
		conn ? MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT) : NULL;
	struct conn_track *t = ci ? ci->socket_context : NULL;

	if (t == NULL)
		return;
	pthread_mutex_lock(&track_mu);
	if (!from_idle_only || t->state == CONN_IDLE) {
		t->state = state;
		t->since_ms = bz_monotonic_ms();
	}
	pthread_mutex_unlock(&track_mu);
}

/* 1 if socket FD received a byte within the last MS milliseconds, or holds
 * unread ones: the next request has begun to arrive, even if MHD already
 * took its first bytes into its own buffer (Linux TCP_INFO). */
static int received_within(MHD_socket fd, int64_t ms)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	int n = 0;

	if (ioctl(fd, FIONREAD, &n) == 0 && n > 0)
		return 1;
	return getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 &&
	       (int64_t)ti.tcpi_last_data_recv < ms;
}

unsigned http_guard_sweep(int64_t header_timeout_ms, int64_t idle_timeout_ms, int close_idle,
			  int (*client_waiting)(void))
{
	int64_t now = bz_monotonic_ms();
	unsigned n = 0;
	struct conn_track *oldest_idle = NULL;
	int shedding = 0; /* a connection shed earlier is not closed yet */

	pthread_mutex_lock(&track_mu);
	for (struct conn_track *t = track_head; t != NULL; t = t->next) {
		shedding |= t->shed;
		if (!t->shut && t->state == CONN_IDLE &&
		    (oldest_idle == NULL || t->since_ms < oldest_idle->since_ms))
			oldest_idle = t;
		int64_t waited = now - t->since_ms;
		int late = (t->state == CONN_HEADERS && waited > header_timeout_ms) ||
			   (t->state == CONN_IDLE && waited > idle_timeout_ms + header_timeout_ms);
		/* The idle timeout: only a connection with nothing arrived, so a
		 * client that reuses it just as it expires is not cut off with
		 * its request unread (MHD's own timeout, a backstop, is longer). */
		int idle_expired = t->state == CONN_IDLE && waited > idle_timeout_ms &&
				   !received_within(t->fd, idle_timeout_ms);
		if (t->shut || !(late || idle_expired || (close_idle && t->state == CONN_IDLE)))
			continue;
		shutdown(t->fd, SHUT_RDWR);
		t->shut = 1;
		n += late;
	}
	/* Out of descriptors: an idle connection makes room (see http_mhd_log). */
	if (atomic_load(&accept_stalled) && !shedding && oldest_idle != NULL &&
	    !oldest_idle->shut && client_waiting != NULL && client_waiting()) {
		shutdown(oldest_idle->fd, SHUT_RDWR);
		oldest_idle->shut = 1;
		oldest_idle->shed = 1;
	}
	pthread_mutex_unlock(&track_mu);
	return n;
}

/*
 * Body-size guard in front of ulfius's access handler.
 *
 * ulfius reads a request body in full before any callback runs (it only
 * stops storing past max_post_body_size), and libmicrohttpd answers
 * "Expect: 100-continue" before the body, so a 500 MB upload would be read
 * and acknowledged before dispatch() could say 413. The only place that sees
 * the headers before the body is the MHD access handler, which ulfius keeps
 * private (it passes its static dispatcher straight to MHD_start_daemon).
 * So MHD_start_daemon is defined below: ulfius's call resolves to it (the
 * executable's definition comes first in symbol lookup), it records
 * ulfius's handler and starts the daemon with guard_access() in its place.
 * http_server_start() refuses to run if the guard was not installed, so a
 * change in linking cannot silently remove the limit.
 *
 * Per connection, http_guard_uri_log() wraps ulfius's per-request state in a
 * struct body_guard, and http_guard_completed() unwraps it again.
 */
static struct {
	MHD_AccessHandlerCallback inner;
	void *inner_cls;
	size_t max_body;  /* HTTP_MAX_BODY_BYTES */
	int armed;	  /* set by http_server_start() just before starting */
	int logger_first; /* the JSON logger went in as MHD's first option */
} guard;

struct MHD_Daemon *MHD_start_daemon(unsigned int flags, uint16_t port, MHD_AcceptPolicyCallback apc,
				    void *apc_cls, MHD_AccessHandlerCallback dh, void *dh_cls, ...);


static enum MHD_Result guard_access(void *cls, struct MHD_Connection *conn, const char *url,
				    const char *method, const char *version,
				    const char *upload_data, size_t *upload_data_size,
				    void **con_cls);

static struct MHD_Daemon *start_daemon_shim(unsigned int flags, uint16_t port,
					    MHD_AcceptPolicyCallback apc, void *apc_cls, ...)
{
	struct MHD_Daemon *d;
	va_list ap;

	va_start(ap, apc_cls);
	d = MHD_start_daemon_va(flags, port, apc, apc_cls, guard_access, NULL, ap);
	va_end(ap);
	return d;
}

/*
 * Replaces libmicrohttpd's MHD_start_daemon for ulfius (see above); every
 * argument but the access handler is passed on unchanged. ulfius passes its
 * options as (MHD_OPTION_ARRAY, ops, MHD_OPTION_END); the JSON logger is
 * then put in front of that array, because MHD uses whatever logger is set
 * when it logs and warns unless the logger is the very first option (an
 * option inside an array is not). Without http_server_start()'s go-ahead it
 * starts MHD exactly as asked.
 */
struct MHD_Daemon *MHD_start_daemon(unsigned int flags, uint16_t port, MHD_AcceptPolicyCallback apc,
				    void *apc_cls, MHD_AccessHandlerCallback dh, void *dh_cls, ...)
{
	struct MHD_Daemon *d;
	va_list ap, peek;

	va_start(ap, dh_cls);
	if (guard.armed && guard.inner == NULL) {
		guard.inner = dh;
		guard.inner_cls = dh_cls;
		va_copy(peek, ap);
		int opt = va_arg(peek, int);
		if (opt == MHD_OPTION_ARRAY) {
			struct MHD_OptionItem *ops = va_arg(peek, struct MHD_OptionItem *);
			if (va_arg(peek, int) == MHD_OPTION_END) {
				va_end(peek);
				va_end(ap);
				guard.logger_first = 1;
				return start_daemon_shim(flags, port, apc, apc_cls,
							 MHD_OPTION_EXTERNAL_LOGGER, http_mhd_log,
							 NULL, MHD_OPTION_ARRAY, ops,
							 MHD_OPTION_END);
			}
		}
		va_end(peek);
		d = MHD_start_daemon_va(flags, port, apc, apc_cls, guard_access, NULL, ap);
	} else {
		d = MHD_start_daemon_va(flags, port, apc, apc_cls, dh, dh_cls, ap);
	}
	va_end(ap);
	return d;
}

void *http_guard_uri_log(void *cls, const char *uri, struct MHD_Connection *conn)
{
	struct body_guard *g = calloc(1, sizeof(*g));

	/* A request line on a kept-alive connection starts its header deadline. */
	track_set(conn, CONN_HEADERS, 1);
	if (g == NULL)
		return NULL;
	pthread_mutex_init(&g->mu, NULL);
	g->ulfius_cls = ulfius_uri_logger(cls, uri);
	g->path_escaped = memchr(uri, '%', strcspn(uri, "?")) != NULL;
	if (g->ulfius_cls == NULL) {
		pthread_mutex_destroy(&g->mu);
		free(g);
		return NULL;
	}
	return g;
}

void http_guard_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			  enum MHD_RequestTerminationCode toe)
{
	struct body_guard *g = *con_cls;

	track_set(conn, CONN_IDLE, 0);
	if (g == NULL)
		return;
	mhd_request_completed(cls, conn, &g->ulfius_cls, toe);
	if (g->counted)
		http_guard_pending_done();
	if (g->answer != NULL) /* answered, never sent (the connection closed) */
		http_real_destroy_response(g->answer);
	pthread_mutex_destroy(&g->mu);
	free(g);
	*con_cls = NULL;
}

/* What the header scan of a request's first call found. */
struct content_length_scan {
	size_t max;
	int over;	       /* a Content-Length above MAX */
	unsigned n_length;     /* Content-Length field lines */
	int transfer_encoding; /* a Transfer-Encoding field line */
};

static enum MHD_Result content_length_cb(void *cls, enum MHD_ValueKind kind, const char *key,
					 const char *value)
{
	struct content_length_scan *sc = cls;

	(void)kind;
	if (key != NULL && strcasecmp(key, "Transfer-Encoding") == 0)
		sc->transfer_encoding = 1;
	if (key == NULL || value == NULL || strcasecmp(key, "Content-Length") != 0)
		return MHD_YES;
	sc->n_length++;
	while (*value == ' ' || *value == '\t')
		value++;
	/* Only digits are a length (RFC 9110 §8.6); anything else is left to
	 * MHD and dispatch() (400). Leading zeros are skipped, so the length is
	 * "too large" once more digits remain than max has. */
	if (*value < '0' || *value > '9')
		return MHD_YES;
	while (*value == '0' && value[1] >= '0' && value[1] <= '9')
		value++;
	size_t nd = strspn(value, "0123456789");
	char maxs[32];
	int ml = snprintf(maxs, sizeof(maxs), "%zu", sc->max);
	if (nd > (size_t)ml || (nd == (size_t)ml && strncmp(value, maxs, nd) > 0))
		sc->over = 1;
	return MHD_YES;
}

/*
 * Writes RESP (LEN bytes, a complete HTTP response) straight to the
 * connection's socket and shuts its sending side, for a body cut in the
 * middle: libmicrohttpd 0.9.75 takes a response only before the body or
 * after all of it, so the 413 is written here and the access handler then
 * returns MHD_NO, which makes MHD close the connection without writing
 * anything more. This runs on the event loop, so it never waits: what the
 * socket's send buffer does not take at once (a client that stopped
 * reading) is not sent, and the connection is closed all the same. Returns
 * 0 or BZ_ERR_IO.
 */
static int write_raw_response(struct MHD_Connection *conn, const char *resp, size_t len)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	size_t off = 0;

	if (ci == NULL || ci->connect_fd == MHD_INVALID_SOCKET)
		return BZ_ERR_IO;
	while (off < len) {
		ssize_t w =
			send(ci->connect_fd, resp + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w > 0) {
			off += (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		return BZ_ERR_IO;
	}
	shutdown(ci->connect_fd, SHUT_WR);
	return 0;
}

/* The headers of every answer the guard gives itself. */
static const char *const refusal_headers[][2] = {
	{"Content-Type", "application/json"},
	{"Cache-Control", "no-store"},
	{"X-Content-Type-Options", "nosniff"},
	{"Content-Security-Policy", HTTP_API_CSP},
	{"Strict-Transport-Security", "max-age=31536000; includeSubDomains; preload"},
	{"Connection", "close"},
};

/* Formats the JSON error body {CODE, MSG} into BODY (LEN bytes). Returns
 * its length, or -1 if it does not fit. */
static int refusal_body(char *body, size_t len, const char *code, const char *msg)
{
	int bl = snprintf(body, len, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", code, msg);
	return bl < 0 || (size_t)bl >= len ? -1 : bl;
}

struct MHD_Response *http_guard_refusal(const char *code, const char *msg, const char *rid,
					const char *retry_after)
{
	char body[192];
	int bl = refusal_body(body, sizeof(body), code, msg);
	struct MHD_Response *r =
		bl < 0 ? NULL
		       : MHD_create_response_from_buffer((size_t)bl, body, MHD_RESPMEM_MUST_COPY);

	for (size_t i = 0; r != NULL && i < sizeof(refusal_headers) / sizeof(*refusal_headers); i++)
		MHD_add_response_header(r, refusal_headers[i][0], refusal_headers[i][1]);
	if (r != NULL) {
		MHD_add_response_header(r, "X-Request-Id", rid);
		if (retry_after != NULL)
			MHD_add_response_header(r, "Retry-After", retry_after);
	}
	return r;
}

void http_guard_log_refused(struct MHD_Connection *conn, const char *method, int status,
			    const char *route, const char *rid, int responded)
{
	char ip[CLIENT_IP_LEN] = "";
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct app *app = http_current_app;
	struct _u_map map;

	if (ci != NULL && app != NULL && u_map_init(&map) == U_OK) {
		client_ip_resolve(ci->client_addr,
				  http_header_combined(conn, &map, "X-Forwarded-For"),
				  &app->cfg->trusted_proxies, ip);
		u_map_clean(&map);
	}
	json_t *f = json_pack("{s:s,s:s,s:s,s:i,s:i,s:s,s:b}", "requestId", rid, "method",
			      method ? method : "", "route", route, "status", status, "durationMs",
			      0, "clientIp", ip, "responded", responded);
	log_json(LOG_LEVEL_INFO, "http.request", f);
	json_decref(f);
}

/*
 * Answers STATUS (413 or 400) with the usual JSON error body {CODE, MSG}
 * and common headers, closing the connection, and logs the request with
 * ROUTE as its route. Returns MHD_YES when MHD took the response (before the
 * body), else MHD_NO after writing it directly (a body cut midway; MHD then
 * closes the connection).
 */
static enum MHD_Result reply_refused(struct MHD_Connection *conn, const char *method, int status,
				     const char *code, const char *msg, const char *route)
{
	char rid[37];
	enum MHD_Result ok = MHD_NO;
	int written = 0;

	if (crypto_random_uuid(rid) != 0)
		snprintf(rid, sizeof(rid), "unknown");
	struct MHD_Response *r = http_guard_refusal(code, msg, rid, NULL);
	if (r == NULL)
		return MHD_NO;
	ok = MHD_queue_response(conn, (unsigned)status, r);
	MHD_destroy_response(r);
	if (ok != MHD_YES) {
		char resp[1024], body[192];
		int bl = refusal_body(body, sizeof(body), code, msg);
		size_t rl = (size_t)snprintf(resp, sizeof(resp), "HTTP/1.1 %d %s\r\n", status,
					     status == 413 ? "Content Too Large" : "Bad Request");
		for (size_t i = 0; i < sizeof(refusal_headers) / sizeof(*refusal_headers); i++)
			rl += (size_t)snprintf(resp + rl, sizeof(resp) - rl, "%s: %s\r\n",
					       refusal_headers[i][0], refusal_headers[i][1]);
		rl += (size_t)snprintf(resp + rl, sizeof(resp) - rl,
				       "X-Request-Id: %s\r\nContent-Length: %d\r\n\r\n%s", rid, bl,
				       body);
		written = rl < sizeof(resp) && write_raw_response(conn, resp, rl) == 0;
	}
	http_guard_log_refused(conn, method, status, route, rid, ok == MHD_YES || written);
	return ok;
}

static enum MHD_Result reply_too_large(struct MHD_Connection *conn, const char *method)
{
	char msg[64];

	snprintf(msg, sizeof(msg), "request body exceeds %zu bytes", guard.max_body);
	return reply_refused(conn, method, 413, "payload_too_large", msg, "(body too large)");
}

/*
 * Answers 400 and closes the connection for a request whose body length is
 * ambiguous: several Content-Length lines (libmicrohttpd 0.9.75 frames by one
 * of them and would read the rest as the next request), or Content-Length
 * together with Transfer-Encoding. RFC 9112 §6.3: a recipient treats
 * differing lengths as an unrecoverable error, and a server that answers a
 * message with both fields must close the connection afterwards (§6.1), so
 * a proxy that framed it differently cannot smuggle a second request in.
 */
static enum MHD_Result reply_bad_framing(struct MHD_Connection *conn, const char *method)
{
	return reply_refused(conn, method, 400, "invalid_request",
			     "ambiguous message length: more than one Content-Length, or "
			     "Content-Length with Transfer-Encoding",
			     "(bad framing)");
}

/*
 * The access handler MHD calls (see above): refuses a declared
 * Content-Length above HTTP_MAX_BODY_BYTES on the first call, before any
 * body byte is read and before MHD would send "100 Continue"; cuts a body
 * without a length (chunked) as soon as it passes the limit; refuses an
 * ambiguous length (reply_bad_framing). The first call and the body go to
 * ulfius on the event loop (they only copy); the final call, which runs the
 * route, goes to a worker (guard_final), with http_current_conn set so
 * http_header() can read the raw field lines.
 */
static enum MHD_Result guard_access(void *cls, struct MHD_Connection *conn, const char *url,
				    const char *method, const char *version,
				    const char *upload_data, size_t *upload_data_size,
				    void **con_cls)
{
	struct body_guard *g = *con_cls;
	enum MHD_Result rc;

	(void)cls;
	if (g == NULL)
		return MHD_NO;
	if (!g->headers_seen) {
		struct content_length_scan sc = {.max = guard.max_body};
		g->headers_seen = 1;
		track_set(conn, CONN_BUSY, 0);
		MHD_get_connection_values(conn, MHD_HEADER_KIND, content_length_cb, &sc);
		if (sc.n_length > 1 || (sc.n_length > 0 && sc.transfer_encoding))
			return reply_bad_framing(conn, method);
		if (sc.over)
			return reply_too_large(conn, method);
	} else if (*upload_data_size > 0) {
		if (*upload_data_size > guard.max_body - g->body_bytes)
			return reply_too_large(conn, method);
		g->body_bytes += *upload_data_size;
	} else {
		return http_guard_final(g, conn, url, method, version, upload_data_size);
	}
	http_current_conn = conn;
	http_current_path_escaped = g->path_escaped;
	rc = guard.inner(guard.inner_cls, conn, url, method, version, upload_data, upload_data_size,
			 &g->ulfius_cls);
	http_current_conn = NULL;
	http_current_path_escaped = 0;
	return rc;
}


_Thread_local int http_current_path_escaped;

enum MHD_Result http_guard_call_inner(struct body_guard *g, struct MHD_Connection *conn,
				      const char *url, const char *method, const char *version,
				      const char *upload_data, size_t *upload_data_size)
{
	return guard.inner(guard.inner_cls, conn, url, method, version, upload_data,
			   upload_data_size, &g->ulfius_cls);
}

void http_guard_arm(size_t max_body)
{
	guard.max_body = max_body;
	guard.inner = NULL;
	guard.logger_first = 0;
	guard.armed = 1;
}

int http_guard_disarm(int *logger_first)
{
	guard.armed = 0;
	*logger_first = guard.logger_first;
	return guard.inner != NULL;
}
