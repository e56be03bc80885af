/*
 * err.h — error codes returned inside the server and agent.
 * Functions return 0 on success and a negative bz_err on failure; the HTTP
 * layer maps them to a status and {"error":{"code","message"}} in one table
 * (http/server.c).
 */
#ifndef BZ_ERR_H
#define BZ_ERR_H

enum bz_err {
	BZ_OK = 0,
	BZ_ERR_NOMEM = -1,
	BZ_ERR_INVALID = -2,      /* bad input: 400 */
	BZ_ERR_UNAUTHORIZED = -3, /* 401 */
	BZ_ERR_FORBIDDEN = -4,    /* 403 */
	BZ_ERR_NOT_FOUND = -5,    /* 404, also for other tenants' objects */
	BZ_ERR_CONFLICT = -6,     /* 409 */
	BZ_ERR_DB = -7,           /* database failure: 500 */
	BZ_ERR_UNAVAILABLE = -8,  /* dependency down / pool exhausted: 503 */
	BZ_ERR_IO = -9,
	BZ_ERR_CRYPTO = -10,
	BZ_ERR_INTERNAL = -11,
};

#endif
