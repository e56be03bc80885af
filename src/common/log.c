#include "common/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static enum log_level min_level = LOG_LEVEL_INFO;
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static const char *level_names[] = {"debug", "info", "warn", "error"};

void log_set_level(enum log_level level)
{
	min_level = level;
}

static void iso_now(char *buf, size_t len)
{
	struct timeval tv;
	struct tm tm;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, len - n, ".%03ldZ", (long)(tv.tv_usec / 1000));
}

static void emit(json_t *line)
{
	char *s = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);

	if (s == NULL)
		return;
	pthread_mutex_lock(&log_mu);
	fputs(s, stderr);
	fputc('\n', stderr);
	fflush(stderr);
	pthread_mutex_unlock(&log_mu);
	free(s);
}

static json_t *header(enum log_level level, const char *msg)
{
	char ts[40];
	json_t *line = json_object();

	iso_now(ts, sizeof(ts));
	json_object_set_new(line, "ts", json_string(ts));
	json_object_set_new(line, "level", json_string(level_names[level]));
	json_object_set_new(line, "msg", json_string(msg ? msg : ""));
	return line;
}

void log_kv(enum log_level level, const char *msg, ...)
{
	va_list ap;
	const char *k;

	if (level < min_level)
		return;
	json_t *line = header(level, msg);
	va_start(ap, msg);
	while ((k = va_arg(ap, const char *)) != NULL) {
		const char *v = va_arg(ap, const char *);
		json_object_set_new(line, k, v ? json_string(v) : json_null());
	}
	va_end(ap);
	emit(line);
	json_decref(line);
}

void log_json(enum log_level level, const char *msg, json_t *fields)
{
	const char *k;
	json_t *v;

	if (level < min_level)
		return;
	json_t *line = header(level, msg);
	if (fields != NULL)
		json_object_foreach(fields, k, v)
			json_object_set(line, k, v);
	emit(line);
	json_decref(line);
}
