/* metrics_api.h — GET /metrics (checklist M1; docs/monitoring.md). */
#ifndef BZ_METRICS_API_H
#define BZ_METRICS_API_H

#include <stddef.h>

#include "server/http/http.h"

extern const struct route metrics_routes[];
extern const size_t metrics_routes_count;

#endif
