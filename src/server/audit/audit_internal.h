/*
 * audit_internal.h — small helpers shared by the files of the audit module
 * (not part of its public face; only src/server/audit/ includes this).
 */
#ifndef BZ_AUDIT_INTERNAL_H
#define BZ_AUDIT_INTERNAL_H

#include <jansson.h>
#include <stddef.h>

/* Copies the id IN (a UUID as a caller typed it, at most 36 characters
 * used) into OUT[37] in lower case: ids are stored, scoped and compared as
 * PostgreSQL prints them. IN may be OUT. */
static inline void audit_id_lower(char out[37], const char *in)
{
	size_t i = 0;

	for (; i < 36 && in[i] != '\0'; i++)
		out[i] = (char)(in[i] >= 'A' && in[i] <= 'F' ? in[i] - 'A' + 'a' : in[i]);
	out[i] = '\0';
}

/* Decimal digits of V into OUT (at least 20 bytes; no NUL written).
 * Returns how many. The canonical encoder and the binary row reader call
 * this per field and per row, where snprintf would cost more than the
 * hash. */
static inline size_t audit_put_decimal(char *out, unsigned long long v)
{
	char tmp[24];
	size_t i = 0, k = 0;

	do {
		tmp[i++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	while (i > 0)
		out[k++] = tmp[--i];
	return k;
}

/* A JSON string of S, or JSON null for NULL. New reference. */
static inline json_t *audit_json_str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

/* The signing seed the checkpoint worker of `serve` runs with
 * (retention.c), or NULL when no worker records checkpoints. audit_write()
 * signs a chain's first row with it at once. */
const char *audit_first_row_seed(void);

#endif
