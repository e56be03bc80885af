/*
 * body.c — the one strict reader of JSON request bodies: every route names
 * the members it accepts in a struct body_field table; anything else is a
 * 400 naming the field, so a typo ("maxUseage") never silently becomes a
 * default.
 */
#include <stdio.h>
#include <string.h>

#include "server/http/http.h"

/* Answers 400 validation_error "field 'NAME' WHAT" with error.field. */
static int field_error(struct request *rq, const char *name, const char *what)
{
	char msg[256];

	snprintf(msg, sizeof(msg), "field '%.64s' %s", name, what);
	/* A client's unknown key can be long; name it in the message only. */
	http_fail_why(rq, BZ_ERR_INVALID,
		      &(struct bz_errinfo){.code = "validation_error",
					   .msg = msg,
					   .field = strlen(name) <= 64 ? name : NULL});
	return BZ_ERR_RESPONDED;
}

static const struct body_field *find_field(const struct body_field *fields, const char *name)
{
	for (const struct body_field *f = fields; f->name != NULL; f++)
		if (!strcmp(f->name, name))
			return f;
	return NULL;
}

static int parse_string(struct request *rq, const struct body_field *f, json_t *v,
			struct body_str *out)
{
	char what[96];
	const char *s, *why;
	size_t len;

	if (!json_is_string(v))
		return field_error(rq, f->name, "must be a string");
	s = json_string_value(v);
	len = json_string_length(v);
	if (strlen(s) != len)
		return field_error(rq, f->name, "must not contain NUL bytes");
	switch (f->type) {
	case BODY_UUID:
		if (!is_uuid(s))
			return field_error(rq, f->name, "must be a UUID");
		break;
	case BODY_ENUM:
		for (const char *const *a = f->allowed; *a != NULL; a++)
			if (!strcmp(*a, s))
				goto ok;
		return field_error(rq, f->name, "has a value that is not allowed");
	case BODY_TEXT:
		if (len < (size_t)f->min ||
		    text_check(s, (size_t)f->max, f->min ? 0 : TEXT_ALLOW_EMPTY, &why) != 0) {
			if (len > (size_t)f->max || len < (size_t)f->min) {
				snprintf(what, sizeof(what), "must be %lld to %lld bytes long",
					 (long long)f->min, (long long)f->max);
				return field_error(rq, f->name, what);
			}
			return field_error(rq, f->name, why);
		}
		break;
	default:
		if (len > (size_t)f->max) {
			snprintf(what, sizeof(what), "must be at most %lld bytes long",
				 (long long)f->max);
			return field_error(rq, f->name, what);
		}
		break;
	}
ok:
	out->present = 1;
	out->v = s;
	return 0;
}

static int parse_uuid_array(struct request *rq, const struct body_field *f, json_t *v,
			    struct body_json *out)
{
	char what[96];
	size_t i;
	json_t *e;

	snprintf(what, sizeof(what), "must be an array of at most %lld UUIDs", (long long)f->max);
	if (!json_is_array(v) || json_array_size(v) > (size_t)f->max)
		return field_error(rq, f->name, what);
	json_array_foreach(v, i, e) {
		if (!json_is_string(e) || !is_uuid(json_string_value(e)))
			return field_error(rq, f->name, what);
	}
	out->present = 1;
	out->v = v;
	return 0;
}

/* BODY_STRING_ARRAY: at most MAX strings of at most 64 bytes each; what
 * they may say is the caller's to check. */
static int parse_string_array(struct request *rq, const struct body_field *f, json_t *v,
			      struct body_json *out)
{
	char what[96];
	size_t i;
	json_t *e;

	snprintf(what, sizeof(what), "must be an array of at most %lld short strings",
		 (long long)f->max);
	if (!json_is_array(v) || json_array_size(v) > (size_t)f->max)
		return field_error(rq, f->name, what);
	json_array_foreach(v, i, e) {
		if (!json_is_string(e) || json_string_length(e) > 64)
			return field_error(rq, f->name, what);
	}
	out->present = 1;
	out->v = v;
	return 0;
}

static int parse_member(struct request *rq, const struct body_field *f, json_t *v, char *base)
{
	void *dst = base + f->offset;

	if (json_is_null(v)) {
		if (!(f->flags & BODY_NULLABLE)) {
			if (f->flags & BODY_REQUIRED)
				return field_error(rq, f->name, "is required");
			return 0; /* null is the same as absent */
		}
		/* Every member type starts with its PRESENT flag. */
		*(int *)dst = 1;
		return 0;
	}
	switch (f->type) {
	case BODY_STRING:
	case BODY_TEXT:
	case BODY_UUID:
	case BODY_ENUM:
		return parse_string(rq, f, v, dst);
	case BODY_INT: {
		char what[96];
		struct body_int *o = dst;
		if (!json_is_integer(v) || json_integer_value(v) < f->min ||
		    json_integer_value(v) > f->max) {
			snprintf(what, sizeof(what), "must be an integer between %lld and %lld",
				 (long long)f->min, (long long)f->max);
			return field_error(rq, f->name, what);
		}
		o->present = 1;
		o->v = json_integer_value(v);
		return 0;
	}
	case BODY_BOOL: {
		struct body_bool *o = dst;
		if (!json_is_boolean(v))
			return field_error(rq, f->name, "must be true or false");
		o->present = 1;
		o->v = json_is_true(v);
		return 0;
	}
	case BODY_OBJECT: {
		struct body_json *o = dst;
		if (!json_is_object(v))
			return field_error(rq, f->name, "must be an object");
		o->present = 1;
		o->v = v;
		return 0;
	}
	case BODY_UUID_ARRAY:
		return parse_uuid_array(rq, f, v, dst);
	case BODY_STRING_ARRAY:
		return parse_string_array(rq, f, v, dst);
	}
	return field_error(rq, f->name, "has an unsupported type");
}

int http_body_parse(struct request *rq, const struct body_field *fields, void *out)
{
	const char *key;
	json_t *v;

	if (rq->body != NULL) {
		/* Unknown members first: the most useful answer to a typo. */
		json_object_foreach(rq->body, key, v) {
			if (find_field(fields, key) == NULL)
				return field_error(rq, key, "is not a known field");
		}
	}
	for (const struct body_field *f = fields; f->name != NULL; f++) {
		v = rq->body ? json_object_get(rq->body, f->name) : NULL;
		if (v == NULL) {
			if (f->flags & BODY_REQUIRED)
				return field_error(rq, f->name, "is required");
			continue;
		}
		int rc = parse_member(rq, f, v, out);
		if (rc != 0)
			return rc;
	}
	return 0;
}
