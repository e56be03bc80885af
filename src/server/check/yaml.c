/*
 * yaml.c — a YAML file as a JSON value, through libyaml's document API,
 * so the compose checks can walk it with jansson. Aliases are expanded
 * (libyaml resolves them to their anchored node) and the merge key "<<"
 * (YAML 1.1, used by compose files for shared settings) merges its
 * mapping or mappings under the keys written beside it. The expansion is
 * bounded (YAML_MAX_NODES) so alias bombs fail instead of eating memory.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <yaml.h>

#include "common/err.h"
#include "server/check/check_internal.h"

#define YAML_MAX_DEPTH 64
#define YAML_MAX_NODES 100000

struct conv {
	yaml_document_t *doc;
	size_t nodes;
};

static json_t *node_json(struct conv *cv, yaml_node_t *n, int depth);

/* Merges the "<<" value E (a mapping or a sequence of mappings) into V
 * without replacing keys V already has. Steals E. */
static int merge_key(json_t *v, json_t *e)
{
	int rc = 0;

	if (json_is_object(e))
		rc = json_object_update_missing(v, e);
	else if (json_is_array(e))
		for (size_t i = 0; i < json_array_size(e) && rc == 0; i++)
			rc = json_is_object(json_array_get(e, i))
				     ? json_object_update_missing(v, json_array_get(e, i))
				     : -1;
	else
		rc = -1;
	json_decref(e);
	return rc;
}

static json_t *node_json(struct conv *cv, yaml_node_t *n, int depth)
{
	yaml_document_t *doc = cv->doc;
	json_t *v = NULL;

	if (n == NULL || depth > YAML_MAX_DEPTH || ++cv->nodes > YAML_MAX_NODES)
		return NULL;
	switch (n->type) {
	case YAML_SCALAR_NODE:
		return json_stringn((const char *)n->data.scalar.value, n->data.scalar.length);
	case YAML_SEQUENCE_NODE:
		v = json_array();
		for (yaml_node_item_t *i = n->data.sequence.items.start;
		     v != NULL && i < n->data.sequence.items.top; i++) {
			json_t *e = node_json(cv, yaml_document_get_node(doc, *i), depth + 1);
			if (e == NULL || json_array_append_new(v, e) != 0) {
				json_decref(v);
				v = NULL;
			}
		}
		return v;
	case YAML_MAPPING_NODE:
		if ((v = json_object()) == NULL)
			return NULL;
		for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
		     p < n->data.mapping.pairs.top; p++) {
			yaml_node_t *k = yaml_document_get_node(doc, p->key);
			if (k == NULL || k->type != YAML_SCALAR_NODE)
				goto bad;
			json_t *e = node_json(cv, yaml_document_get_node(doc, p->value), depth + 1);
			if (e == NULL)
				goto bad;
			const char *key = (const char *)k->data.scalar.value;
			size_t len = k->data.scalar.length;
			/* both steal E */
			int rc = len == 2 && !memcmp(key, "<<", 2)
					 ? merge_key(v, e)
					 : json_object_setn_new(v, key, len, e);
			if (rc != 0)
				goto bad;
		}
		return v;
	default:
		return NULL;
	}
bad:
	json_decref(v);
	return NULL;
}

int check_yaml_load(const char *path, json_t **out, char *err, size_t errlen)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	FILE *f = fopen(path, "rb");
	int rc = BZ_ERR_INVALID;

	*out = NULL;
	if (f == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return BZ_ERR_IO;
	}
	if (!yaml_parser_initialize(&parser)) {
		fclose(f);
		snprintf(err, errlen, "%s: out of memory", path);
		return BZ_ERR_NOMEM;
	}
	yaml_parser_set_input_file(&parser, f);
	if (!yaml_parser_load(&parser, &doc)) {
		snprintf(err, errlen, "%s: line %zu: %s", path, parser.problem_mark.line + 1,
			 parser.problem ? parser.problem : "not YAML");
	} else {
		yaml_node_t *root = yaml_document_get_root_node(&doc);
		struct conv cv = {.doc = &doc};
		*out = root ? node_json(&cv, root, 0) : NULL;
		if (*out == NULL)
			snprintf(err, errlen,
				 "%s: empty, too deep or too large, a mapping key "
				 "that is not a plain scalar, or a bad merge key",
				 path);
		else
			rc = 0;
		yaml_document_delete(&doc);
	}
	yaml_parser_delete(&parser);
	fclose(f);
	return rc;
}
