/*
 * agents.h — enrolment keys (G5), agent enrolment, heartbeats (G1, G7) and
 * devices. The routes are in agents_api.h.
 */
#ifndef BZ_AGENTS_H
#define BZ_AGENTS_H

#include <stddef.h>


/* Agent tokens are "brz_" + 32 random bytes in hex; only their SHA-256 is
 * stored (G1). */
#define AGENT_TOKEN_PREFIX "brz_"

#endif
