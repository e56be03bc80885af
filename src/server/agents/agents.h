/*
 * agents.h — enrolment keys (G5), agent enrolment, heartbeats (G1, G7) and
 * the devices API: the route tables this module contributes.
 */
#ifndef BZ_AGENTS_H
#define BZ_AGENTS_H

#include <stddef.h>

#include "server/http/http.h"

/* Agent tokens are "brz_" + 32 random bytes in hex; only their SHA-256 is
 * stored (G1). */
#define AGENT_TOKEN_PREFIX "brz_"

extern const struct route enrollment_key_routes[];
extern const size_t enrollment_key_routes_count;
extern const struct route agent_routes[];
extern const size_t agent_routes_count;
extern const struct route device_routes[];
extern const size_t device_routes_count;

#endif
