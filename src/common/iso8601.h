/*
 * iso8601.h — the one ISO 8601 (RFC 3339) formatter and parser for times
 * with microseconds: the API's query parameters and request fields
 * (audit from/to, enrolment-key expiresAt), the audit log's canonical
 * timestamps and export files. Proleptic Gregorian calendar, years
 * 0001–9999, UTC.
 */
#ifndef BZ_ISO8601_H
#define BZ_ISO8601_H

#include <stdint.h>

/* Length of "2026-01-02T03:04:05.000006Z". */
#define ISO8601_US_LEN 27

/* Formats EPOCH_US (microseconds since 1970-01-01T00:00:00Z) as
 * "YYYY-MM-DDTHH:MM:SS.ffffffZ" (UTC, always 6 fractional digits, the audit
 * log's canonical form) into OUT[32]. Returns 0, or BZ_ERR_INVALID outside
 * years 0001–9999. */
int iso8601_format_us(int64_t epoch_us, char out[32]);

/* Parses "YYYY-MM-DD", or "YYYY-MM-DDTHH:MM[:SS[.f…]]" followed by "Z",
 * "±HH:MM", "±HHMM" or nothing (UTC), into microseconds since the epoch
 * (digits beyond microseconds are truncated). Returns 0 or BZ_ERR_INVALID
 * (also for S NULL, impossible dates and trailing bytes). */
int iso8601_parse_us(const char *s, int64_t *epoch_us);

#endif
