/*
 * test_routes.c — walks the server's whole route table (M3): every mutating
 * route (POST/PUT/PATCH/DELETE) names the audit action it writes, unless it
 * is one of the explicitly listed telemetry exemptions; every route that is
 * not public names a permission of the table (auth/permissions.c) or is
 * one of the listed self-service routes, flagged ROUTE_SELF_SERVICE;
 * no route is registered twice; `breeze-server routes` prints it faithfully.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "server/auth/permissions.h"
#include "server/routes.h"

/* Mutating routes allowed to write no audit row, with the reason. */
static const char *audit_exempt[] = {
	"POST /api/v1/agents/:agentId/heartbeat", /* telemetry; IP changes audited (G7) */
};

/* Authenticated routes that need no permission: the caller's own data
 * (ROUTE_SELF_SERVICE, closed to API keys). */
static const char *self_service[] = {
	"GET /api/v1/auth/me",
	"POST /api/v1/auth/password",	    /* own password */
	"GET /api/v1/auth/sessions",	    /* own sessions */
	"DELETE /api/v1/auth/sessions/:id", /* own session */
	/* The caller's own second factor (A1). */
	"POST /api/v1/auth/mfa/setup",
	"POST /api/v1/auth/mfa/enable",
	"POST /api/v1/auth/mfa/disable",
	"POST /api/v1/auth/mfa/recovery-codes",
};

static int listed(const char *const *list, size_t n, const struct route *r)
{
	char key[256];

	snprintf(key, sizeof(key), "%s %s", r->method, r->path);
	for (size_t i = 0; i < n; i++)
		if (!strcmp(list[i], key))
			return 1;
	return 0;
}

static int is_mutating(const char *m)
{
	return !strcmp(m, "POST") || !strcmp(m, "PUT") || !strcmp(m, "PATCH") ||
	       !strcmp(m, "DELETE");
}

static void every_mutating_route_is_audited(void **state)
{
	(void)state;
	size_t n = 0;
	struct route *all = routes_all(&n);
	int failures = 0;

	assert_non_null(all);
	assert_true(n > 10);
	for (size_t i = 0; i < n; i++) {
		const struct route *r = &all[i];
		if (!is_mutating(r->method))
			continue;
		int exempt = (r->flags & ROUTE_AUDIT_EXEMPT) != 0;
		if (exempt !=
		    listed(audit_exempt, sizeof(audit_exempt) / sizeof(*audit_exempt), r)) {
			fprintf(stderr, "%s %s: ROUTE_AUDIT_EXEMPT must match the test's list\n",
				r->method, r->path);
			failures++;
		}
		if (!exempt && (r->audit_action == NULL || strchr(r->audit_action, '.') == NULL)) {
			fprintf(stderr, "%s %s: mutating route without an audit action\n",
				r->method, r->path);
			failures++;
		}
	}
	free(all);
	assert_int_equal(failures, 0);
}

static void read_routes_write_no_audit_action(void **state)
{
	(void)state;
	size_t n = 0;
	struct route *all = routes_all(&n);

	for (size_t i = 0; i < n; i++) {
		if (!is_mutating(all[i].method)) {
			assert_null(all[i].audit_action);
			assert_false(all[i].flags & ROUTE_AUDIT_EXEMPT);
		}
	}
	free(all);
}

static void user_routes_name_a_permission(void **state)
{
	(void)state;
	size_t n = 0;
	struct route *all = routes_all(&n);
	int failures = 0;

	for (size_t i = 0; i < n; i++) {
		const struct route *r = &all[i];
		if (!(r->flags & ROUTE_USER))
			continue;
		int self = listed(self_service, sizeof(self_service) / sizeof(*self_service), r);
		if (self != ((r->flags & ROUTE_SELF_SERVICE) != 0)) {
			fprintf(stderr, "%s %s: ROUTE_SELF_SERVICE must match the test's list\n",
				r->method, r->path);
			failures++;
		}
		if (self ? r->permission != NULL : permission_find(r->permission) == NULL) {
			fprintf(stderr, "%s %s: %s\n", r->method, r->path,
				self ? "a self-service route names no permission"
				     : "user route without a permission of the table");
			failures++;
		}
	}
	free(all);
	assert_int_equal(failures, 0);
}

/* Public routes take neither a permission nor the user-only flags. */
static void public_routes_name_no_permission(void **state)
{
	(void)state;
	size_t n = 0;
	struct route *all = routes_all(&n);

	for (size_t i = 0; i < n; i++) {
		if (all[i].flags & ROUTE_USER)
			continue;
		assert_null(all[i].permission);
		assert_false(all[i].flags & (ROUTE_SELF_SERVICE | ROUTE_NO_API_KEY));
	}
	free(all);
}

static void no_duplicate_routes(void **state)
{
	(void)state;
	size_t n = 0;
	struct route *all = routes_all(&n);

	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			assert_false(!strcmp(all[i].method, all[j].method) &&
				     !strcmp(all[i].path, all[j].path));
	free(all);
}

/* `breeze-server routes` (routes_print_json): one JSON object per route, in
 * table order, with the flags spelled out, read back with jansson. */
static void routes_print_json_lists_every_route(void **state)
{
	(void)state;
	size_t n = 0;
	struct route *all = routes_all(&n);
	char line[1024];
	FILE *f = tmpfile();
	size_t i = 0;

	assert_non_null(all);
	assert_non_null(f);
	assert_int_equal(routes_print_json(f), 0);
	rewind(f);
	while (fgets(line, sizeof(line), f) != NULL) {
		json_error_t err;
		json_t *j = json_loads(line, 0, &err);
		assert_non_null(j);
		assert_true(i < n);
		const struct route *r = &all[i++];
		assert_string_equal(json_string_value(json_object_get(j, "method")), r->method);
		assert_string_equal(json_string_value(json_object_get(j, "path")), r->path);
		assert_int_equal(json_is_true(json_object_get(j, "user")),
				 (r->flags & ROUTE_USER) != 0);
		assert_int_equal(json_is_true(json_object_get(j, "public")),
				 !(r->flags & ROUTE_USER));
		assert_int_equal(json_is_true(json_object_get(j, "jsonBody")),
				 (r->flags & ROUTE_JSON_BODY) != 0);
		assert_int_equal(json_is_true(json_object_get(j, "auditExempt")),
				 (r->flags & ROUTE_AUDIT_EXEMPT) != 0);
		assert_int_equal(json_is_true(json_object_get(j, "mfaExempt")),
				 (r->flags & ROUTE_MFA_EXEMPT) != 0);
		json_t *perm = json_object_get(j, "permission");
		if (r->permission == NULL)
			assert_true(json_is_null(perm));
		else
			assert_string_equal(json_string_value(perm), r->permission);
		assert_int_equal(json_is_true(json_object_get(j, "selfService")),
				 (r->flags & ROUTE_SELF_SERVICE) != 0);
		assert_int_equal(json_is_true(json_object_get(j, "apiKey")),
				 (r->flags & ROUTE_USER) &&
					 !(r->flags & (ROUTE_SELF_SERVICE | ROUTE_NO_API_KEY)));
		json_t *act = json_object_get(j, "auditAction");
		if (r->audit_action == NULL)
			assert_true(json_is_null(act));
		else
			assert_string_equal(json_string_value(act), r->audit_action);
		json_decref(j);
	}
	assert_int_equal(i, n);
	fclose(f);
	free(all);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_mutating_route_is_audited),
		cmocka_unit_test(read_routes_write_no_audit_action),
		cmocka_unit_test(user_routes_name_a_permission),
		cmocka_unit_test(public_routes_name_no_permission),
		cmocka_unit_test(no_duplicate_routes),
		cmocka_unit_test(routes_print_json_lists_every_route),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
