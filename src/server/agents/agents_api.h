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

#endif
