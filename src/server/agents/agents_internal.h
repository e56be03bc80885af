/*
 * agents_internal.h — shared by the files of the agents module only.
 */
#ifndef BZ_AGENTS_INTERNAL_H
#define BZ_AGENTS_INTERNAL_H

#include <stddef.h>
#include <strings.h>

#include "server/agents/agents.h"
#include "server/agents/agents_api.h"

/* SQL expression rendering timestamptz COL as ISO 8601 UTC with seconds. */
#define AGENTS_TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

/* HMAC-SHA-256 of enrolment KEY under PEPPER as hex into OUT[65] (G5).
 * Returns 0 or BZ_ERR_CRYPTO. */
int enrollment_key_hash(const char *pepper, const char *key, char out[65]);


#endif
