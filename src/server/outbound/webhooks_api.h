/*
 * webhooks_api.h — the webhook routes (webhooks_api.c).
 */
#ifndef BZ_WEBHOOKS_API_H
#define BZ_WEBHOOKS_API_H

#include <stddef.h>

#include "server/http/http.h"

extern const struct route webhook_routes[];
extern const size_t webhook_routes_count;

#endif
