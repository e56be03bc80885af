/*
 * register_api.c — POST /api/v1/auth/register (checklist A3). Served only
 * with ENABLE_REGISTRATION=true: otherwise routes_serve() leaves it out and
 * the path is as unknown as any other (404). The answer is the same 202
 * whether or not the address had an account (register.c says why and how).
 */
#include "server/auth/auth.h"
#include "server/auth/auth_api.h"

struct register_input {
	struct body_str email, name, password, partner_name;
};

static const struct body_field register_fields[] = {
	BODY_FIELD("email", BODY_STRING, BODY_REQUIRED, struct register_input, email, 1, 320),
	BODY_FIELD("name", BODY_TEXT, BODY_REQUIRED, struct register_input, name, 1, AUTH_NAME_MAX),
	/* A secret: only a byte bound here; the policy counts characters. */
	BODY_FIELD("password", BODY_STRING, BODY_REQUIRED, struct register_input, password, 0,
		   AUTH_REGISTER_PASSWORD_MAX * 4),
	BODY_FIELD("partnerName", BODY_TEXT, BODY_REQUIRED, struct register_input, partner_name, 1,
		   200),
	BODY_FIELDS_END,
};

static void register_account(struct request *rq)
{
	struct register_input in = {0};
	struct auth_register_result res;
	struct audit_event ev;
	struct bz_errinfo why = {0};
	PGconn *c;

	if (http_body_parse(rq, register_fields, &in) != 0 || (c = http_db(rq)) == NULL)
		return;
	const struct auth_register_input ri = {.email = in.email.v,
					       .name = in.name.v,
					       .password = in.password.v,
					       .partner_name = in.partner_name.v};
	int rc = auth_register(c, &ri, &res, &ev, &why);
	if (rc != 0) {
		http_fail_why(rq, rc, &why); /* no transaction is open */
		return;
	}
	http_commit(rq, c, 0, &why, &ev, 202,
		    json_pack("{s:s,s:s}", "status", "accepted", "message",
			      "If this address can be registered, its account is ready: sign in "
			      "with it."));
}

const struct route auth_register_routes[] = {
	{"POST", "/api/v1/auth/register", register_account, ROUTE_PUBLIC | ROUTE_JSON_BODY, NULL,
	 "auth.register", NULL},
};
const size_t auth_register_routes_count =
	sizeof(auth_register_routes) / sizeof(*auth_register_routes);
