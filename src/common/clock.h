/*
 * clock.h — the one clock of the process: every time the server reasons about comes from here.
 */
#ifndef BZ_CLOCK_H
#define BZ_CLOCK_H

#include <stdint.h>
#include <stddef.h>

/* Wall-clock time in seconds since the Unix epoch. Tests may pin it with
 * bz_clock_set_for_test(). */
int64_t bz_now(void);

/* Wall-clock time in milliseconds since the Unix epoch, with the same test
 * adjustments as bz_now(): a pinned bz_now() gives that second times 1000,
 * and the offset file (bz_clock_use_file) shifts it by whole seconds. For
 * sub-second reasoning such as sliding rate-limit windows. */
int64_t bz_now_ms(void);

/*
 * Makes bz_now() the real time plus an offset in whole seconds (signed
 * decimal, e.g. "3600" or "-60") read from the file at PATH, re-read
 * whenever the file's size or modification time changes (checked on every
 * call); a missing or unreadable file means offset 0. Test-only: serve calls
 * it only when BREEZE_ENV=test and BREEZE_TEST_CLOCK_FILE is set, so API
 * tests can move the server's clock. PATH is copied (< 4096 bytes).
 * Returns 0 or BZ_ERR_INVALID.
 */
int bz_clock_use_file(const char *path);

/* Monotonic time in milliseconds (for durations; never pinned). */
int64_t bz_monotonic_ms(void);

/* Pins bz_now() to T seconds; T = 0 restores the real clock. Test-only. */
void bz_clock_set_for_test(int64_t t);

/* Formats epoch seconds T as ISO 8601 UTC ("2026-01-02T03:04:05Z") into BUF
 * of LEN bytes (at least 21). Returns 0, or BZ_ERR_INVALID if BUF is too small. */
int bz_format_iso8601(int64_t t, char *buf, size_t len);

#endif
