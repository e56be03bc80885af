/*
 * routes.h — the server's whole route table, assembled from each module's
 * table. Tests walk it (e.g. every mutating route names an audit action).
 */
#ifndef BZ_ROUTES_H
#define BZ_ROUTES_H

#include <stddef.h>
#include <stdio.h>

#include "server/http/http.h"

/* Returns a malloc'd array of every route (caller frees) and its length in
 * *N, or NULL on allocation failure. */
struct route *routes_all(size_t *n);

/* routes_all() less the routes CFG switches off (POST /auth/register while
 * ENABLE_REGISTRATION is false): what `serve` registers. */
struct route *routes_serve(const struct config *cfg, size_t *n);

/* Writes the whole route table to OUT as JSON lines, one route per line in
 * table order: {"method","path","public","user","jsonBody","auditExempt",
 * "permission","selfService","apiKey","auditAction"} (apiKey: an API key
 * may call it) with PATH the ulfius template as registered
 * (":id"), and permission/auditAction null when the route has none. This
 * is `breeze-server routes`, which tests/api/test_openapi_contract.py
 * compares with docs/openapi.yaml. Returns 0, BZ_ERR_NOMEM or BZ_ERR_IO. */
int routes_print_json(FILE *out);

#endif
