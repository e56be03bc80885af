/*
 * permissions.c — the permission table (permissions.h). A permission is
 * `resource:action`: read lets a caller see a resource, write lets it
 * change it. Adding a route that needs a new kind of access means adding a
 * row here, giving it to roles in a migration, and documenting it.
 */
#include "server/auth/permissions.h"

#include <string.h>

#include "common/err.h"

#define PERM(n, d)                                                                                 \
	{                                                                                          \
		n, d, "you cannot grant '" n "': your own role lacks it"                           \
	}

/* Sorted by name (permission_find() relies on it; a unit test checks). */
const struct permission permissions_table[] = {
	PERM("api_keys:read", "list the API keys one may manage (never the keys themselves)"),
	PERM("api_keys:write", "create and revoke API keys"),
	PERM("audit:read", "read and verify the audit log of visible tenants"),
	PERM("devices:read", "list and read devices"),
	PERM("devices:write",
	     "rename, move and decommission devices; rotate or reset their agent tokens"),
	PERM("enrollment_keys:read", "list and read enrolment keys (never the raw key)"),
	PERM("enrollment_keys:write", "create and revoke enrolment keys"),
	PERM("orgs:read", "list and read organizations"),
	PERM("orgs:write", "create, rename and delete organizations"),
	PERM("roles:read", "list roles and their permissions"),
	PERM("roles:write", "create, change and delete custom roles; set forceMfa"),
	PERM("sites:read", "list and read sites"),
	PERM("sites:write", "create, rename and delete sites"),
	PERM("users:read", "list and read users"),
	PERM("users:write", "create users, change their name, role and status"),
	PERM("webhooks:read", "list and read webhooks and their delivery log (never the secret)"),
	PERM("webhooks:write", "create, change, delete and test webhooks"),
};
const size_t permissions_count = sizeof(permissions_table) / sizeof(*permissions_table);

const struct permission *permission_find(const char *name)
{
	size_t lo = 0, hi = permissions_count;

	if (name == NULL)
		return NULL;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int cmp = strcmp(name, permissions_table[mid].name);
		if (cmp == 0)
			return &permissions_table[mid];
		if (cmp < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

static int list_has(const json_t *list, const char *s, size_t upto)
{
	for (size_t i = 0; i < upto; i++) {
		const char *v = json_string_value(json_array_get(list, i));
		if (v != NULL && !strcmp(v, s))
			return 1;
	}
	return 0;
}

int permissions_check_list(const json_t *list, const char **bad)
{
	size_t i;
	json_t *v;

	if (bad != NULL)
		*bad = NULL;
	if (!json_is_array(list) || json_array_size(list) == 0 ||
	    json_array_size(list) > permissions_count)
		return BZ_ERR_INVALID;
	json_array_foreach(list, i, v) {
		const char *s = json_string_value(v);
		if (s == NULL)
			return BZ_ERR_INVALID;
		if (permission_find(s) == NULL) {
			if (bad != NULL)
				*bad = s;
			return BZ_ERR_INVALID;
		}
		if (list_has(list, s, i))
			return BZ_ERR_INVALID;
	}
	return 0;
}

int permissions_within(const json_t *want, const json_t *held, const struct permission **missing)
{
	size_t i;
	json_t *v;

	*missing = NULL;
	json_array_foreach(want, i, v) {
		const char *s = json_string_value(v);
		if (s == NULL || !list_has(held, s, json_array_size(held))) {
			*missing = permission_find(s);
			return 0;
		}
	}
	return 1;
}
