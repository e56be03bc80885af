/*
 * routes.h — the server's whole route table, assembled from each module's
 * table. Tests walk it (e.g. every mutating route names an audit action).
 */
#ifndef BZ_ROUTES_H
#define BZ_ROUTES_H

#include <stddef.h>

#include "server/http/http.h"

/* Returns a malloc'd array of every route (caller frees) and its length in
 * *N, or NULL on allocation failure. */
struct route *routes_all(size_t *n);

#endif
