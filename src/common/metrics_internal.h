/*
 * metrics_internal.h — shared by metrics.c and metrics_process.c only (not
 * part of the registry's public face): the growable exposition buffer and
 * the histogram cells.
 */
#ifndef BZ_METRICS_INTERNAL_H
#define BZ_METRICS_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Number of finite buckets; every histogram shares metrics_buckets. */
#define METRICS_NB 13
extern const double metrics_buckets[METRICS_NB];

/* Per-bucket (not cumulative) counts, the last one for +Inf, and the sum
 * of observations in microseconds. */
struct metrics_hist {
	_Atomic uint64_t bucket[METRICS_NB + 1];
	_Atomic uint64_t sum_us;
};

void metrics_hist_observe(struct metrics_hist *h, int64_t us);

/* The text being built: malloc'd, grown on demand; FAILED after any
 * allocation failure (every later call is then a no-op). */
struct metrics_buf {
	char *buf;
	size_t len, cap;
	int failed;
};

/* Appends printf-formatted text. Returns 0 or -1 (out of memory). */
int metrics_buf_printf(struct metrics_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* "# HELP NAME HELP" and "# TYPE NAME TYPE". */
void metrics_put_header(struct metrics_buf *b, const char *name, const char *type,
			const char *help);

/* The _bucket, _sum and _count lines of H; LABELS is "" or the text inside
 * the braces (k="v",…) that every line carries. */
void metrics_put_hist(struct metrics_buf *b, const char *name, const char *labels,
		      const struct metrics_hist *h);

/* The process_* series of the standard Prometheus client libraries. */
void metrics_put_process(struct metrics_buf *b);

#endif
