/* health.h — liveness and readiness routes. */
#ifndef BZ_HEALTH_H
#define BZ_HEALTH_H

#include <stddef.h>

#include "server/http/http.h"

extern const struct route health_routes[];
extern const size_t health_routes_count;

#endif
