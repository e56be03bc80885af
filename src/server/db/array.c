#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/text.h"
#include "server/db/db.h"

char *db_uuid_array(const char *const *ids, size_t n)
{
	size_t off = 0;
	char *s;

	if (n > (SIZE_MAX - 3) / 37)
		return NULL;
	s = malloc(n * 37 + 3);
	if (s == NULL)
		return NULL;
	s[off++] = '{';
	for (size_t i = 0; i < n; i++) {
		if (!is_uuid(ids[i])) {
			free(s);
			return NULL;
		}
		if (i > 0)
			s[off++] = ',';
		memcpy(s + off, ids[i], 36);
		off += 36;
	}
	s[off++] = '}';
	s[off] = '\0';
	return s;
}

char *db_uuid_array_json(const json_t *ids)
{
	size_t n = json_array_size(ids);
	const char **v = calloc(n ? n : 1, sizeof(*v));
	char *s;

	if (v == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		v[i] = json_string_value(json_array_get(ids, i));
		if (v[i] == NULL) {
			free(v);
			return NULL;
		}
	}
	s = db_uuid_array(v, n);
	free(v);
	return s;
}
