/*
 * audit_api.h — the audit module's routes: GET /api/v1/audit (query.c,
 * the caller's organizations' rows, filtered, newest first, cursor
 * paginated) and GET /api/v1/audit/verify (verify_api.c, verification of
 * one organization's chain); both need audit:read.
 */
#ifndef BZ_AUDIT_API_H
#define BZ_AUDIT_API_H

#include <stddef.h>

#include "server/http/http.h"

extern const struct route audit_query_routes[];
extern const size_t audit_query_routes_count;
extern const struct route audit_verify_routes[];
extern const size_t audit_verify_routes_count;

#endif
