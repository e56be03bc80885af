/*
 * agents_api.h — the agents module's routes: enrolment keys, the endpoints
 * agents call (enrol, heartbeat), and the devices API.
 */
#ifndef BZ_AGENTS_API_H
#define BZ_AGENTS_API_H

#include <stddef.h>

#include "server/http/http.h"

extern const struct route enrollment_key_routes[];
extern const size_t enrollment_key_routes_count;
extern const struct route agent_routes[];
extern const size_t agent_routes_count;
extern const struct route device_routes[];
extern const size_t device_routes_count;
extern const struct route device_metrics_routes[]; /* metrics_api.c */
extern const size_t device_metrics_routes_count;

/* Starts what the agent routes run beside the server: the heartbeat group
 * committer when CFG->heartbeat_group_commit (on connections of POOL,
 * limits checked with RL; both must outlive it). Call before the server
 * listens. Returns 0 or BZ_ERR_NOMEM / BZ_ERR_INTERNAL. */
int agents_api_start(const struct config *cfg, struct db_pool *pool, struct ratelimit *rl);

/* After the server drained (which waits for every deferred heartbeat):
 * writes and answers whatever is still queued, then stops the committer.
 * Safe without agents_api_start(). */
void agents_api_stop(void);

#endif
