/*
 * auth_api.h — the auth module's HTTP face: its routes (login_api.c: login,
 * me; users_api.c: users, roles) and the authentication hook main.c
 * registers with the dispatcher (auth_api.c).
 */
#ifndef BZ_AUTH_API_H
#define BZ_AUTH_API_H

#include <stddef.h>

#include "server/http/http.h"

/* The dispatcher's authentication hook (struct app.authenticate): checks
 * "Authorization: Bearer <access token>" against a live session, fills
 * rq->who and computes rq->scope. Returns 0, or answers 401 (503 when the
 * database is down, 500 on other failures) and returns BZ_ERR_RESPONDED. */
int auth_api_authenticate(struct request *rq);

extern const struct route auth_routes[];
extern const size_t auth_routes_count;

extern const struct route auth_mfa_routes[];
extern const size_t auth_mfa_routes_count;

struct auth_login;

/* Answers a successful login (password, or password and MFA) on C inside
 * its open transaction: commits EV (auth.login) and replies 200 with the
 * access token, its lifetime, the user and mfaEnrollmentRequired. L stays
 * owned by the caller (auth_login_free()). */
void login_api_render_session(struct request *rq, struct auth_login *l, PGconn *c,
			      struct audit_event *ev);

extern const struct route auth_user_routes[];
extern const size_t auth_user_routes_count;

#endif
