/*
 * tenancy_api.h — the tenancy module's routes: organizations and sites.
 */
#ifndef BZ_TENANCY_API_H
#define BZ_TENANCY_API_H

#include <stddef.h>

#include "server/http/http.h"

extern const struct route tenancy_routes[];
extern const size_t tenancy_routes_count;

#endif
