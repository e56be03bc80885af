#include "server/agents/agents.h"

/* Filled in by enrollment_keys.c, enroll.c, heartbeat.c, devices.c. */
const struct route agents_routes[] = {
	{"GET", "/healthz/agents", NULL, ROUTE_PUBLIC, NULL, NULL},
};
const size_t agents_routes_count = 0;
