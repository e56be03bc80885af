/*
 * auth_api.h — the auth module's HTTP face: its routes (login_api.c: login,
 * me; users_api.c: users; roles_api.c; api_keys_api.c; register_api.c) and the authentication hook main.c
 * registers with the dispatcher (auth_api.c).
 */
#ifndef BZ_AUTH_API_H
#define BZ_AUTH_API_H

#include <stddef.h>

#include "server/http/http.h"

/* The dispatcher's authentication hook (struct app.authenticate): checks
 * "Authorization: Bearer <access token>" against a live session, or
 * "X-API-Key: brz_key_…" against a live API key (auth_api_key_principal;
 * both headers at once are a 401), fills rq->who and computes rq->scope. Returns 0, or answers 401 (503 when the
 * database is down, 500 on other failures) and returns BZ_ERR_RESPONDED. */
int auth_api_authenticate(struct request *rq);

extern const struct route auth_routes[];
extern const size_t auth_routes_count;

extern const struct route auth_user_routes[];
extern const size_t auth_user_routes_count;

extern const struct route auth_role_routes[]; /* roles_api.c */
extern const size_t auth_role_routes_count;

extern const struct route auth_api_key_routes[]; /* api_keys_api.c */
extern const size_t auth_api_key_routes_count;

/* POST /auth/register (register_api.c): in the route table always, served
 * only with ENABLE_REGISTRATION (routes_serve()). */
extern const struct route auth_register_routes[];
extern const size_t auth_register_routes_count;

#endif
