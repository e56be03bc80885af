/*
 * yamlmap.h — the agent's YAML files as a flat map of string keys to string
 * values, read and written with libyaml's parser and emitter.
 *
 * agent.yaml and secrets.yaml are one mapping each, with scalar values only.
 * Nothing here builds YAML by hand: the emitter writes string values in
 * double-quoted style, so any UTF-8 string (quotes, colons, '#', newlines,
 * leading spaces, "true", "0123") comes back unchanged from the parser.
 *
 * Values are zeroed when the map is freed, because secrets.yaml goes through
 * this module too.
 */
#ifndef BZ_AGENT_YAMLMAP_H
#define BZ_AGENT_YAMLMAP_H

#include <stddef.h>

/* Largest file or emitted document accepted, in bytes. */
#define AGENT_YAML_MAX_BYTES (64 * 1024)

struct agent_yaml_pair {
	char *key;
	char *value;
	int is_int; /* emit as a plain scalar (numbers); otherwise double-quoted */
};

/* Zero-initialise before use: struct agent_yaml_map m = {0}. */
struct agent_yaml_map {
	struct agent_yaml_pair *pairs;
	size_t len;
	size_t cap;
};

/* Sets KEY to a copy of VALUE (both NUL-terminated, neither may be NULL),
 * replacing any earlier value. Returns 0, or -ENOMEM. */
int agent_yaml_set(struct agent_yaml_map *m, const char *key, const char *value);

/* Sets KEY to the decimal form of VALUE, emitted as a plain YAML integer.
 * Returns 0, or -ENOMEM. */
int agent_yaml_set_long(struct agent_yaml_map *m, const char *key, long value);

/* Returns the value of KEY (borrowed from M, valid until M changes), or NULL
 * if KEY is absent. */
const char *agent_yaml_get(const struct agent_yaml_map *m, const char *key);

/* Serialises M as one YAML document. On success *OUT is a NUL-terminated
 * malloc'd buffer of *OUT_LEN bytes that the caller owns (zero it before
 * freeing if it holds a secret). Returns 0, -EINVAL if libyaml refuses a
 * value (e.g. invalid UTF-8), -E2BIG past AGENT_YAML_MAX_BYTES, or -ENOMEM. */
int agent_yaml_emit(const struct agent_yaml_map *m, char **out, size_t *out_len);

/* Parses BUF (LEN bytes, need not be NUL-terminated) into M, which must be
 * empty. The document must be a single mapping of scalar keys to scalar
 * values; an empty file gives an empty map. Plain null values (`key:`,
 * `~`, `null`) are left out. Returns 0; -EBADMSG on a syntax error, nested
 * structure, alias, duplicate key, embedded NUL or second document; -E2BIG
 * past AGENT_YAML_MAX_BYTES; -ENOMEM. On error M is left empty. */
int agent_yaml_parse(const char *buf, size_t len, struct agent_yaml_map *m);

/* Zeroes and frees every key and value; M is empty afterwards. */
void agent_yaml_free(struct agent_yaml_map *m);

#endif
