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

int agent_yaml_parse(const char *buf, size_t len, struct agent_yaml_map *m)
{
	yaml_parser_t parser;
	yaml_event_t ev;
	enum pstate st = P_STREAM;
	char *key = NULL;
	int rc = -EBADMSG;

	if (len > AGENT_YAML_MAX_BYTES)
		return -E2BIG;
	if (!yaml_parser_initialize(&parser))
		return -ENOMEM;
	yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);

	while (st != P_DONE) {
		if (!yaml_parser_parse(&parser, &ev)) {
			if (parser.error == YAML_MEMORY_ERROR)
				rc = -ENOMEM;
			goto out;
		}
		int ok = 0;
		switch (st) {
		case P_STREAM:
			ok = ev.type == YAML_STREAM_START_EVENT;
			st = P_DOC;
			break;
		case P_DOC:
			if (ev.type == YAML_STREAM_END_EVENT) { /* empty file */
				ok = 1;
				st = P_DONE;
			} else {
				ok = ev.type == YAML_DOCUMENT_START_EVENT;
				st = P_MAP;
			}
			break;
		case P_MAP:
			if (ev.type == YAML_SCALAR_EVENT && is_plain_null(&ev)) { /* "---" alone */
				ok = 1;
				st = P_DOC_END;
			} else {
				ok = ev.type == YAML_MAPPING_START_EVENT &&
				     ev.data.mapping_start.anchor == NULL;
				st = P_KEY;
			}
			break;
		case P_KEY:
			if (ev.type == YAML_MAPPING_END_EVENT) {
				ok = 1;
				st = P_DOC_END;
				break;
			}
			if (ev.type != YAML_SCALAR_EVENT || ev.data.scalar.anchor != NULL ||
			    strlen((char *)ev.data.scalar.value) != ev.data.scalar.length)
				break;
			if (find(m, (char *)ev.data.scalar.value) != NULL)
				break; /* duplicate key: refuse rather than guess which one wins */
			key = strdup((char *)ev.data.scalar.value);
			if (key == NULL) {
				rc = -ENOMEM;
				yaml_event_delete(&ev);
				goto out;
			}
			ok = 1;
			st = P_VALUE;
			break;
		case P_VALUE:
			if (ev.type != YAML_SCALAR_EVENT || ev.data.scalar.anchor != NULL ||
			    strlen((char *)ev.data.scalar.value) != ev.data.scalar.length)
				break;
			if (!is_plain_null(&ev)) {
				int r = set_value(m, key, (char *)ev.data.scalar.value,
						  ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE);
				if (r != 0) {
					rc = r;
					yaml_event_delete(&ev);
					goto out;
				}
			} else if (find(m, key) == NULL) {
				/* Remember the key with no value so a later duplicate
				 * is still caught. */
				if (set_value(m, key, "", 0) != 0) {
					rc = -ENOMEM;
					yaml_event_delete(&ev);
					goto out;
				}
				m->pairs[m->len - 1].is_int = -1;
			}
			free(key);
			key = NULL;
			ok = 1;
			st = P_KEY;
			break;
		case P_DOC_END:
			ok = ev.type == YAML_DOCUMENT_END_EVENT;
			st = P_STREAM_END;
			break;
		case P_STREAM_END:
			/* A second document is refused, not silently ignored. */
			ok = ev.type == YAML_STREAM_END_EVENT;
			st = P_DONE;
			break;
		case P_DONE:
			break;
		}
		yaml_event_delete(&ev);
		if (!ok)
			goto out;
	}
	rc = 0;
out:
	free_secret_string(key);
	yaml_parser_delete(&parser);
	if (rc != 0) {
		agent_yaml_free(m);
		return rc;
	}
	/* Drop the placeholders left for null values. */
	size_t w = 0;
	for (size_t i = 0; i < m->len; i++) {
		if (m->pairs[i].is_int == -1) {
			free_secret_string(m->pairs[i].key);
			free_secret_string(m->pairs[i].value);
			continue;
		}
		m->pairs[w++] = m->pairs[i];
	}
	m->len = w;
	return 0;
}
