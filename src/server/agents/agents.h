/*
 * agents.h — enrolment keys (G5), agent enrolment, heartbeats (G1, G7) and
 * the devices API.
 */
#ifndef BZ_AGENTS_H
#define BZ_AGENTS_H

#include <stddef.h>

#include "server/http/http.h"

#define AGENT_TOKEN_PREFIX "brz_"

extern const struct route agents_routes[];
extern const size_t agents_routes_count;

#endif
