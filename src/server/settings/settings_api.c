/*
 * settings_api.c — partner and site settings routes: parse → one
 * settings call → render. The body of a PATCH is a JSON merge patch (RFC
 * 7396) of the settings object, so it is free-form and not parsed against
 * a field table; the answers are the settings object itself. Reading needs
 * the write permission too, since settings may hold secrets.
 */
#include <string.h>

#include "server/settings/settings.h"
#include "server/settings/settings_api.h"

static const char *const not_found[] = {
	[SETTINGS_PARTNER] = "partner not found",
	[SETTINGS_SITE] = "site not found",
};

/* Answers a refusal of a settings call: undecryptable values keep their
 * own code on the 500 (the transaction, if any, is rolled back by the
 * dispatcher). */
static void fail(struct request *rq, enum settings_owner o, int rc, struct bz_errinfo *why)
{
	if (why->code != NULL && strcmp(why->code, SETTINGS_UNDECRYPTABLE) == 0) {
		http_fail(rq, 500, SETTINGS_UNDECRYPTABLE,
			  "the stored settings cannot be decrypted; see the server log");
		return;
	}
	if (rc == BZ_ERR_NOT_FOUND)
		why->msg = not_found[o];
	http_fail_why(rq, rc, why);
}

static void get_settings(struct request *rq, enum settings_owner o)
{
	struct bz_errinfo why = {0};
	json_t *out = NULL;
	char id[37];
	PGconn *c;

	if (http_path_uuid(rq, "id", id, not_found[o]) != 0 || (c = http_db(rq)) == NULL)
		return;
	int rc = settings_get(c, rq->app->cfg, &rq->scope, o, id, &out, &why);
	if (rc != 0) {
		fail(rq, o, rc, &why);
		return;
	}
	http_reply(rq, 200, out);
}

static void patch_settings(struct request *rq, enum settings_owner o)
{
	struct audit_event ev = {0};
	struct bz_errinfo why = {0};
	json_t *out = NULL;
	char id[37], org[37] = "";
	PGconn *c;

	if (http_path_uuid(rq, "id", id, not_found[o]) != 0 || (c = http_db_begin(rq)) == NULL)
		return;
	int rc = settings_patch(c, rq->app->cfg, &rq->scope, o, id, rq->body, &out, org, &ev, &why);
	if (rc != 0) {
		json_decref(ev.details);
		fail(rq, o, rc, &why);
		return;
	}
	http_commit(rq, c, 0, &why, &ev, 200, out);
}

static void get_partner(struct request *rq)
{
	get_settings(rq, SETTINGS_PARTNER);
}

static void patch_partner(struct request *rq)
{
	patch_settings(rq, SETTINGS_PARTNER);
}

static void get_site(struct request *rq)
{
	get_settings(rq, SETTINGS_SITE);
}

static void patch_site(struct request *rq)
{
	patch_settings(rq, SETTINGS_SITE);
}

const struct route settings_routes[] = {
	{"GET", "/api/v1/partners/:id/settings", get_partner, ROUTE_USER, "orgs:write", NULL, NULL},
	{"PATCH", "/api/v1/partners/:id/settings", patch_partner, ROUTE_USER | ROUTE_JSON_BODY,
	 "orgs:write", "partner.settings.update", NULL},
	{"GET", "/api/v1/sites/:id/settings", get_site, ROUTE_USER, "sites:write", NULL, NULL},
	{"PATCH", "/api/v1/sites/:id/settings", patch_site, ROUTE_USER | ROUTE_JSON_BODY,
	 "sites:write", "site.settings.update", NULL},
};
const size_t settings_routes_count = sizeof(settings_routes) / sizeof(*settings_routes);
