/*
 * settings_api.h — the settings routes (settings_api.c):
 * GET/PATCH /api/v1/partners/:id/settings and /api/v1/sites/:id/settings.
 */
#ifndef BZ_SETTINGS_API_H
#define BZ_SETTINGS_API_H

#include <stddef.h>

#include "server/http/http.h"

extern const struct route settings_routes[];
extern const size_t settings_routes_count;

#endif
