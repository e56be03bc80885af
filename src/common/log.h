/*
 * log.h — structured JSON log lines on stderr, one object per line (checklist M4).
 *
 * Every call writes exactly one line: {"ts":"…","level":"…","msg":"…",k:v,…}.
 * Fields are given as a NULL-terminated list of (const char *key,
 * const char *value) pairs; a NULL value is written as JSON null. Values are
 * escaped by jansson, so no input can break the line format. Never pass a
 * token, password or key as a value.
 *
 * Thread-safe: each line is built in memory and written with one fputs under
 * a mutex.
 */
#ifndef BZ_LOG_H
#define BZ_LOG_H

#include <jansson.h>

enum log_level { LOG_LEVEL_DEBUG = 0, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR };

/* Sets the minimum level written (default LOG_LEVEL_INFO). */
void log_set_level(enum log_level level);

/* Writes one line at LEVEL with MSG (an event name such as "agent.enrolled")
 * and key/value string pairs terminated by NULL. */
void log_kv(enum log_level level, const char *msg, ...);

#define log_debug(...) log_kv(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define log_info(...) log_kv(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_warn(...) log_kv(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_error(...) log_kv(LOG_LEVEL_ERROR, __VA_ARGS__)

/* Writes one line at LEVEL whose fields are the members of FIELDS (borrowed,
 * not modified) plus ts/level/msg. For lines with typed values (numbers). */
void log_json(enum log_level level, const char *msg, json_t *fields);

#endif
