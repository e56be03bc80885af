#include "server/auth/principal.h"

#include <string.h>

int principal_has_permission(const struct principal *p, const char *perm)
{
	size_t i;
	json_t *v;

	if (p->permissions == NULL)
		return 0;
	json_array_foreach(p->permissions, i, v) {
		if (json_is_string(v) && !strcmp(json_string_value(v), perm))
			return 1;
	}
	return 0;
}

void principal_free(struct principal *p)
{
	json_decref(p->permissions);
	p->permissions = NULL;
}
