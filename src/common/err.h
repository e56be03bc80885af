/*
 * err.h — the one error convention of breeze-server and breeze-agent.
 *
 * Functions return 0 (BZ_OK) on success and a negative enum bz_err on
 * failure; never a bare -1 (-1 is deliberately not a code, so a stray
 * `return -1` cannot pass for one). Functions that return a pointer return
 * NULL on failure and say in their comment which errors that covers.
 *
 * The HTTP layer maps each code to one status and snake_case code in one
 * table (http/reply.c). BZ_ERR_RESPONDED is the HTTP layer's way of saying
 * "the error response is already written": the caller just returns.
 *
 * breeze-agent does not use these codes: it is a small program around
 * files and system calls, and its functions return 0 or a negated errno
 * value (-ENOENT, -EACCES, -EPROTO …) that strerror() can name in its
 * messages. Process exit statuses of both programs are a separate scheme,
 * documented in the README.
 */
#ifndef BZ_ERR_H
#define BZ_ERR_H

enum bz_err {
	BZ_OK = 0,
	BZ_ERR_NOMEM = -2,	  /* allocation failed: 500 */
	BZ_ERR_INVALID = -3,	  /* bad input: 400 */
	BZ_ERR_UNAUTHORIZED = -4, /* not authenticated: 401 */
	BZ_ERR_FORBIDDEN = -5,	  /* authenticated but not allowed: 403 */
	BZ_ERR_NOT_FOUND = -6,	  /* 404, also for other tenants' objects */
	BZ_ERR_CONFLICT = -7,	  /* state conflict (duplicate, not empty): 409 */
	BZ_ERR_DB = -8,		  /* database failure: 500 */
	BZ_ERR_UNAVAILABLE = -9,  /* dependency down / pool exhausted: 503 */
	BZ_ERR_IO = -10,	  /* file or socket failure: 500 */
	BZ_ERR_CRYPTO = -11,	  /* a crypto library call failed: 500 */
	BZ_ERR_INTERNAL = -12,	  /* a broken invariant: 500 */
	BZ_ERR_TOO_LARGE = -13,	  /* input over a size limit: 413 */
	BZ_ERR_RESPONDED = -100,  /* HTTP layer only: the response is already written */
};

/*
 * Why a domain call failed, for the caller to show: CODE is the snake_case
 * error code for the client (NULL = the default code of the bz_err), MSG a
 * static sentence without secrets (NULL = a generic text), FIELD the request
 * field at fault or NULL. All three point to static strings.
 */
struct bz_errinfo {
	const char *code;
	const char *msg;
	const char *field;
};

/* Records CODE/FIELD/MSG in WHY (when non-NULL) and returns ERR, so a
 * domain function can write `return bz_fail(why, BZ_ERR_CONFLICT,
 * "conflict", NULL, "a site with that name exists");`. */
static inline int bz_fail(struct bz_errinfo *why, int err, const char *code, const char *field,
			  const char *msg)
{
	if (why != 0) {
		why->code = code;
		why->field = field;
		why->msg = msg;
	}
	return err;
}

#endif
