/*
 * bootstrap.h — first-run set-up: one partner, organization, site and a
 * partner administrator, all in one transaction with their audit rows.
 */
#ifndef BZ_BOOTSTRAP_H
#define BZ_BOOTSTRAP_H

#include <libpq-fe.h>

struct bootstrap_input {
	const char *email, *name, *partner, *org, *site;
	const char *password; /* plain text; hashed here, never stored */
};

struct bootstrap_result {
	char partner_id[37], org_id[37], site_id[37], user_id[37];
};

/* Creates the records on CONN. Refused with BZ_ERR_CONFLICT if any
 * partner_admin user already exists (bootstrap runs once). Returns 0,
 * BZ_ERR_INVALID (bad e-mail/name), BZ_ERR_CONFLICT, BZ_ERR_CRYPTO or
 * BZ_ERR_DB. */
int bootstrap_run(PGconn *conn, const struct bootstrap_input *in, struct bootstrap_result *out);

#endif
