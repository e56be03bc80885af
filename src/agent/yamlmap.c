#include "agent/yamlmap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <yaml.h>

static void free_secret_string(char *s)
{
	if (s == NULL)
		return;
	OPENSSL_cleanse(s, strlen(s));
	free(s);
}

static struct agent_yaml_pair *find(const struct agent_yaml_map *m, const char *key)
{
	for (size_t i = 0; i < m->len; i++)
		if (strcmp(m->pairs[i].key, key) == 0)
			return &m->pairs[i];
	return NULL;
}

static int set_value(struct agent_yaml_map *m, const char *key, const char *value, int is_int)
{
	struct agent_yaml_pair *p = find(m, key);
	char *v = strdup(value);

	if (v == NULL)
		return -ENOMEM;
	if (p != NULL) {
		free_secret_string(p->value);
		p->value = v;
		p->is_int = is_int;
		return 0;
	}
	if (m->len == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 8;
		struct agent_yaml_pair *np = reallocarray(m->pairs, cap, sizeof(*np));

		if (np == NULL) {
			free_secret_string(v);
			return -ENOMEM;
		}
		m->pairs = np;
		m->cap = cap;
	}
	char *k = strdup(key);
	if (k == NULL) {
		free_secret_string(v);
		return -ENOMEM;
	}
	m->pairs[m->len].key = k;
	m->pairs[m->len].value = v;
	m->pairs[m->len].is_int = is_int;
	m->len++;
	return 0;
}

int agent_yaml_set(struct agent_yaml_map *m, const char *key, const char *value)
{
	return set_value(m, key, value, 0);
}

int agent_yaml_set_long(struct agent_yaml_map *m, const char *key, long value)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%ld", value);
	return set_value(m, key, buf, 1);
}

const char *agent_yaml_get(const struct agent_yaml_map *m, const char *key)
{
	struct agent_yaml_pair *p = find(m, key);

	return p ? p->value : NULL;
}

void agent_yaml_free(struct agent_yaml_map *m)
{
	for (size_t i = 0; i < m->len; i++) {
		free_secret_string(m->pairs[i].key);
		free_secret_string(m->pairs[i].value);
	}
	free(m->pairs);
	m->pairs = NULL;
	m->len = m->cap = 0;
}

/* Output buffer for the emitter. Growing copies into a fresh block and zeroes
 * the old one, so no stale copy of a token is left in freed heap memory. */
struct outbuf {
	unsigned char *data;
	size_t len;
	size_t cap;
	int too_big;
};

static int write_handler(void *ctx, unsigned char *buf, size_t size)
{
	struct outbuf *o = ctx;

	if (size > AGENT_YAML_MAX_BYTES - o->len) {
		o->too_big = 1;
		return 0;
	}
	if (o->len + size + 1 > o->cap) {
		size_t cap = o->cap ? o->cap : 256;
		while (cap < o->len + size + 1)
			cap *= 2;
		unsigned char *nd = malloc(cap);
		if (nd == NULL)
			return 0;
		if (o->data != NULL) {
			memcpy(nd, o->data, o->len);
			OPENSSL_cleanse(o->data, o->cap);
			free(o->data);
		}
		o->data = nd;
		o->cap = cap;
	}
	memcpy(o->data + o->len, buf, size);
	o->len += size;
	o->data[o->len] = '\0';
	return 1;
}

int agent_yaml_emit(const struct agent_yaml_map *m, char **out, size_t *out_len)
{
	yaml_emitter_t em;
	yaml_event_t ev;
	struct outbuf o = {0};
	int rc = -EINVAL;

	*out = NULL;
	*out_len = 0;
	if (!yaml_emitter_initialize(&em))
		return -ENOMEM;
	yaml_emitter_set_output(&em, write_handler, &o);
	yaml_emitter_set_unicode(&em, 1);
	/* No line folding: a token stays on one line, which keeps the file
	 * readable and greppable by an operator. */
	yaml_emitter_set_width(&em, -1);

	if (!yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING) ||
	    !yaml_emitter_emit(&em, &ev))
		goto out;
	if (!yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1) ||
	    !yaml_emitter_emit(&em, &ev))
		goto out;
	if (!yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE) ||
	    !yaml_emitter_emit(&em, &ev))
		goto out;
	for (size_t i = 0; i < m->len; i++) {
		const struct agent_yaml_pair *p = &m->pairs[i];

		if (!yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)p->key,
						  (int)strlen(p->key), 1, 1,
						  YAML_PLAIN_SCALAR_STYLE) ||
		    !yaml_emitter_emit(&em, &ev))
			goto out;
		if (!yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)p->value,
						  (int)strlen(p->value), 1, 1,
						  p->is_int ? YAML_PLAIN_SCALAR_STYLE
							    : YAML_DOUBLE_QUOTED_SCALAR_STYLE) ||
		    !yaml_emitter_emit(&em, &ev))
			goto out;
	}
	if (!yaml_mapping_end_event_initialize(&ev) || !yaml_emitter_emit(&em, &ev))
		goto out;
	if (!yaml_document_end_event_initialize(&ev, 1) || !yaml_emitter_emit(&em, &ev))
		goto out;
	if (!yaml_stream_end_event_initialize(&ev) || !yaml_emitter_emit(&em, &ev))
		goto out;
	if (!yaml_emitter_flush(&em))
		goto out;
	rc = 0;
out:
	if (rc != 0) {
		if (o.too_big)
			rc = -E2BIG;
		else if (em.error == YAML_MEMORY_ERROR)
			rc = -ENOMEM;
	}
	yaml_emitter_delete(&em);
	if (rc == 0 && o.data == NULL)
		rc = -EINVAL;
	if (rc != 0) {
		if (o.data != NULL) {
			OPENSSL_cleanse(o.data, o.cap);
			free(o.data);
		}
		return rc;
	}
	*out = (char *)o.data;
	*out_len = o.len;
	return 0;
}

static int is_plain_null(const yaml_event_t *ev)
{
	const char *v = (const char *)ev->data.scalar.value;

	if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return 0;
	return v[0] == '\0' || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
	       strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}

/* Parser states: what the next event must be. */
enum pstate { P_STREAM, P_DOC, P_MAP, P_KEY, P_VALUE, P_DOC_END, P_STREAM_END, P_DONE };

/* is_int of the placeholder a null value leaves behind (read_value). */
#define NULL_PLACEHOLDER (-1)

/* Where agent_yaml_parse() is in the document. */
struct reader {
	enum pstate st;
	char *key; /* the key whose value comes next (P_VALUE); owned */
	struct agent_yaml_map *m;
};

/* Is EV a scalar the map can hold: no anchor, no embedded NUL? */
static int usable_scalar(const yaml_event_t *ev)
{
	return ev->type == YAML_SCALAR_EVENT && ev->data.scalar.anchor == NULL &&
	       strlen((char *)ev->data.scalar.value) == ev->data.scalar.length;
}

/* The events around the one mapping: stream and document start and end, and
 * the mapping start ("---" alone is an empty document). Returns 0 or
 * -EBADMSG. */
static int read_frame(struct reader *r, const yaml_event_t *ev)
{
	int ok = 0;

	switch (r->st) {
	case P_STREAM:
		ok = ev->type == YAML_STREAM_START_EVENT;
		r->st = P_DOC;
		break;
	case P_DOC:
		if (ev->type == YAML_STREAM_END_EVENT) { /* empty file */
			ok = 1;
			r->st = P_DONE;
		} else {
			ok = ev->type == YAML_DOCUMENT_START_EVENT;
			r->st = P_MAP;
		}
		break;
	case P_MAP:
		if (ev->type == YAML_SCALAR_EVENT && is_plain_null(ev)) { /* "---" alone */
			ok = 1;
			r->st = P_DOC_END;
		} else {
			ok = ev->type == YAML_MAPPING_START_EVENT &&
			     ev->data.mapping_start.anchor == NULL;
			r->st = P_KEY;
		}
		break;
	case P_DOC_END:
		ok = ev->type == YAML_DOCUMENT_END_EVENT;
		r->st = P_STREAM_END;
		break;
	case P_STREAM_END:
		/* A second document is refused, not silently ignored. */
		ok = ev->type == YAML_STREAM_END_EVENT;
		r->st = P_DONE;
		break;
	default:
		break;
	}
	return ok ? 0 : -EBADMSG;
}

/* P_KEY: a new key (kept in R->key) or the end of the mapping. Returns 0,
 * -EBADMSG (not a usable scalar, or a duplicate key) or -ENOMEM. */
static int read_key(struct reader *r, const yaml_event_t *ev)
{
	if (ev->type == YAML_MAPPING_END_EVENT) {
		r->st = P_DOC_END;
		return 0;
	}
	if (!usable_scalar(ev))
		return -EBADMSG;
	/* A duplicate key is refused rather than guessing which one wins. */
	if (find(r->m, (char *)ev->data.scalar.value) != NULL)
		return -EBADMSG;
	r->key = strdup((char *)ev->data.scalar.value);
	if (r->key == NULL)
		return -ENOMEM;
	r->st = P_VALUE;
	return 0;
}

/* P_VALUE: the value of R->key, stored in the map. Returns 0, -EBADMSG (not
 * a usable scalar) or -ENOMEM. */
static int read_value(struct reader *r, const yaml_event_t *ev)
{
	int rc;

	if (!usable_scalar(ev))
		return -EBADMSG;
	if (!is_plain_null(ev)) {
		rc = set_value(r->m, r->key, (char *)ev->data.scalar.value,
			       ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE);
		if (rc != 0)
			return rc;
	} else if (find(r->m, r->key) == NULL) {
		/* Remember the key with no value so a later duplicate is still
		 * caught; drop_null_placeholders() removes it at the end. */
		if (set_value(r->m, r->key, "", 0) != 0)
			return -ENOMEM;
		r->m->pairs[r->m->len - 1].is_int = NULL_PLACEHOLDER;
	}
	free(r->key);
	r->key = NULL;
	r->st = P_KEY;
	return 0;
}

/* Removes the keys read_value() kept for null values. */
static void drop_null_placeholders(struct agent_yaml_map *m)
{
	size_t w = 0;

	for (size_t i = 0; i < m->len; i++) {
		if (m->pairs[i].is_int == NULL_PLACEHOLDER) {
			free_secret_string(m->pairs[i].key);
			free_secret_string(m->pairs[i].value);
			continue;
		}
		m->pairs[w++] = m->pairs[i];
	}
	m->len = w;
}

int agent_yaml_parse(const char *buf, size_t len, struct agent_yaml_map *m)
{
	yaml_parser_t parser;
	yaml_event_t ev;
	struct reader r = {.st = P_STREAM, .key = NULL, .m = m};
	int rc = 0;

	if (len > AGENT_YAML_MAX_BYTES)
		return -E2BIG;
	if (!yaml_parser_initialize(&parser))
		return -ENOMEM;
	yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);

	while (r.st != P_DONE) {
		if (!yaml_parser_parse(&parser, &ev)) {
			rc = parser.error == YAML_MEMORY_ERROR ? -ENOMEM : -EBADMSG;
			goto out;
		}
		if (r.st == P_KEY)
			rc = read_key(&r, &ev);
		else if (r.st == P_VALUE)
			rc = read_value(&r, &ev);
		else
			rc = read_frame(&r, &ev);
		yaml_event_delete(&ev);
		if (rc != 0)
			goto out;
	}
out:
	free_secret_string(r.key);
	yaml_parser_delete(&parser);
	if (rc != 0) {
		agent_yaml_free(m);
		return rc;
	}
	drop_null_placeholders(m);
	return 0;
}
