/*
 * principal.h — who is calling: the authenticated user behind a request (or
 * a CLI command acting as one). Filled by auth_session_principal(), or for
 * an API key by auth_api_key_principal() (the key's creator, with the
 * key's permissions).
 */
#ifndef BZ_PRINCIPAL_H
#define BZ_PRINCIPAL_H

#include <jansson.h>

struct principal {
	int authenticated;
	char user_id[37];
	char session_id[37]; /* "" for an API key */
	char api_key_id[37]; /* the API key the request came with, or "" */
	char partner_id[37]; /* home partner ("" for organization users) */
	char org_id[37];     /* home organization ("" for partner users) */
	char email[256];
	char name[201];
	char role_id[37];
	char role_name[64];
	int force_mfa;
	int mfa_enabled;
	/* Array of strings; owned (principal_free). For an API key: the key's
	 * permissions that its creator's role holds now. */
	json_t *permissions;
};

/* 1 if P's role grants permission PERM (e.g. "devices:write"), else 0. */
int principal_has_permission(const struct principal *p, const char *perm);

/* Releases what P owns; safe on a zeroed struct. */
void principal_free(struct principal *p);

#endif
