/*
 * permissions.h — the one table of `resource:action` permissions.
 *
 * Every ROUTE_USER route names one of these (struct route.permission) or is
 * marked ROUTE_SELF_SERVICE (the caller's own account, no permission); the
 * dispatcher checks it in one place, for session and API-key callers alike.
 * Roles (built-in and custom) and API keys carry lists of these names;
 * tests/unit/test_permissions.c walks the route table and the built-in
 * roles against this table.
 */
#ifndef BZ_PERMISSIONS_H
#define BZ_PERMISSIONS_H

#include <stddef.h>

#include <jansson.h>

struct permission {
	const char *name;	 /* "devices:write" */
	const char *description; /* one sentence for docs and GET /roles readers */
	/* "you cannot grant devices:write: your own role lacks it" — a static
	 * sentence naming the permission, for refusals (403). */
	const char *not_held_msg;
};

/* The table and its length; names are unique and sorted. */
extern const struct permission permissions_table[];
extern const size_t permissions_count;

/* The entry named NAME, or NULL when no permission has that name. */
const struct permission *permission_find(const char *name);

/*
 * Checks that LIST (a JSON array) holds 1..permissions_count distinct
 * strings, each a permission of the table. Returns 0, or BZ_ERR_INVALID
 * with *BAD (when non-NULL) set to the first offending member's string (or
 * NULL when LIST is not an array of strings, empty or has duplicates).
 */
int permissions_check_list(const json_t *list, const char **bad);

/*
 * Checks that every permission of WANT (a JSON array of strings) is in HELD
 * (another one). Returns 1 when it is, else 0 with *MISSING set to the
 * table entry of the first one HELD lacks.
 */
int permissions_within(const json_t *want, const json_t *held, const struct permission **missing);

#endif
