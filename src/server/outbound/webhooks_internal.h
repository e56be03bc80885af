/*
 * webhooks_internal.h — what webhooks.c and webhook_delivery.c share.
 */
#ifndef BZ_WEBHOOKS_INTERNAL_H
#define BZ_WEBHOOKS_INTERNAL_H

#include <stdatomic.h>

#include "server/outbound/webhooks.h"

/* Row I of R (columns of WH_COLS in webhooks.c) into W. */
void webhook_from_row(const PGresult *r, int i, struct webhook *w);

/* W's events as a new JSON array. */
json_t *webhook_events_json(const struct webhook *w);

/* BZ_ERR_FORBIDDEN (with WHY) for a site-limited scope, else 0. */
int webhook_scope_check(const struct tenancy_scope *sc, struct bz_errinfo *why);

/* webhook_deliver_due() that stops sending (and hands claimed rows back)
 * once *STOP is set (may be NULL). */
int webhook_deliver_pass(PGconn *c, const struct config *cfg, int batch, const atomic_int *stop,
			 int *sent);

#endif
