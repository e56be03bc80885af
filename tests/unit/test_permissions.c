/*
 * test_permissions.c — the permission table (auth/permissions.c): names are
 * `resource:read|write`, sorted and unique; every permission a migration
 * gives a built-in role exists in it; the list checks used by custom roles
 * and API keys refuse unknown, duplicate and unheld permissions. (Every
 * user route naming a permission of the table: test_routes.c.)
 */
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "common/err.h"
#include "server/auth/permissions.h"
#include "server/db/migrate.h"

static void names_are_resource_action_sorted_unique(void **state)
{
	(void)state;
	regex_t re;

	assert_int_equal(regcomp(&re, "^[a-z_]+:(read|write)$", REG_EXTENDED | REG_NOSUB), 0);
	assert_true(permissions_count >= 10);
	for (size_t i = 0; i < permissions_count; i++) {
		const struct permission *p = &permissions_table[i];
		assert_int_equal(regexec(&re, p->name, 0, NULL, 0), 0);
		assert_non_null(p->description);
		assert_non_null(strstr(p->not_held_msg, p->name));
		if (i > 0)
			assert_true(strcmp(permissions_table[i - 1].name, p->name) < 0);
		assert_ptr_equal(permission_find(p->name), p);
	}
	regfree(&re);
	assert_null(permission_find("devices:delete"));
	assert_null(permission_find(""));
	assert_null(permission_find(NULL));
}

/* Every 'resource:action' literal in the migrations (the built-in roles'
 * ARRAY[...] lists) names a permission of the table. */
static void builtin_roles_name_known_permissions(void **state)
{
	(void)state;
	regex_t re;
	regmatch_t m[2];
	int found = 0, unknown = 0;

	assert_int_equal(regcomp(&re, "'([a-z_]+:[a-z_]+)'", REG_EXTENDED), 0);
	for (size_t i = 0; i < migrations_embedded_count; i++) {
		const char *s = migrations_embedded[i].sql;
		while (regexec(&re, s, 2, m, 0) == 0) {
			char name[64];
			int len = (int)(m[1].rm_eo - m[1].rm_so);
			snprintf(name, sizeof(name), "%.*s", len, s + m[1].rm_so);
			found++;
			if (permission_find(name) == NULL) {
				fprintf(stderr, "migration %s names unknown permission %s\n",
					migrations_embedded[i].version, name);
				unknown++;
			}
			s += m[0].rm_eo;
		}
	}
	regfree(&re);
	assert_true(found > 20);
	assert_int_equal(unknown, 0);
}

static void check_list_refuses_bad_lists(void **state)
{
	(void)state;
	const char *bad;
	json_t *ok = json_pack("[s,s]", "devices:read", "orgs:read");
	json_t *unknown = json_pack("[s,s]", "devices:read", "devices:delete");
	json_t *dup = json_pack("[s,s]", "devices:read", "devices:read");
	json_t *empty = json_array(), *notstr = json_pack("[i]", 1);

	assert_int_equal(permissions_check_list(ok, &bad), 0);
	assert_int_equal(permissions_check_list(unknown, &bad), BZ_ERR_INVALID);
	assert_string_equal(bad, "devices:delete");
	assert_int_equal(permissions_check_list(dup, &bad), BZ_ERR_INVALID);
	assert_int_equal(permissions_check_list(empty, &bad), BZ_ERR_INVALID);
	assert_int_equal(permissions_check_list(notstr, &bad), BZ_ERR_INVALID);
	assert_int_equal(permissions_check_list(NULL, &bad), BZ_ERR_INVALID);
	json_decref(ok);
	json_decref(unknown);
	json_decref(dup);
	json_decref(empty);
	json_decref(notstr);
}

static void within_names_the_missing_permission(void **state)
{
	(void)state;
	const struct permission *missing;
	json_t *held = json_pack("[s,s]", "devices:read", "orgs:read");
	json_t *sub = json_pack("[s]", "orgs:read");
	json_t *more = json_pack("[s,s]", "orgs:read", "devices:write");

	assert_true(permissions_within(sub, held, &missing));
	assert_null(missing);
	assert_false(permissions_within(more, held, &missing));
	assert_non_null(missing);
	assert_string_equal(missing->name, "devices:write");
	assert_non_null(strstr(missing->not_held_msg, "devices:write"));
	json_decref(held);
	json_decref(sub);
	json_decref(more);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(names_are_resource_action_sorted_unique),
		cmocka_unit_test(builtin_roles_name_known_permissions),
		cmocka_unit_test(check_list_refuses_bad_lists),
		cmocka_unit_test(within_names_the_missing_permission),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
