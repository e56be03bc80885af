/*
 * report.c — the rows of `breeze-server check`: every checklist item in
 * order, merged from what each part found, printed as a table or JSON.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "server/check/check_internal.h"

/* Each item and what the row says when no part judged it: PASS for what
 * this version enforces whatever the configuration (with how), MANUAL for
 * what must be looked at by hand. */
static const struct {
	const char *id;
	enum check_result res;
	const char *why;
} items[] = {
	{"S1", CHECK_MANUAL, "no env file or environment judged"},
	{"S2", CHECK_MANUAL, "no --env-file given: check that the env file is mode 0600"},
	{"S3", CHECK_MANUAL, "no --env-file given: check that it is git-ignored and untracked"},
	{"S4", CHECK_MANUAL, "no env file or environment judged"},
	{"S5", CHECK_MANUAL, "no env file or environment judged"},
	{"S6", CHECK_MANUAL, "needs --live (the database knows when the secret was first used)"},
	{"N1", CHECK_MANUAL, "needs --compose and --live: only 80/443 (and 3478) may be exposed"},
	{"N2", CHECK_MANUAL, "needs --compose or --live"},
	{"N3", CHECK_MANUAL, "needs --compose or --live"},
	{"N4", CHECK_MANUAL, "needs REDIS_URL, --compose or --live"},
	{"N5", CHECK_MANUAL, "needs --compose: Prometheus and Grafana only on 127.0.0.1 or a VPN"},
	{"N6", CHECK_MANUAL,
	 "needs --live on the host: `sshd -T` must show passwordauthentication no"},
	{"N7", CHECK_MANUAL, "needs --live on the host: a firewall allowing only SSH, 80, 443"},
	{"N8", CHECK_MANUAL, "needs --caddyfile and the env file (BREEZE_DOMAIN, ACME_EMAIL)"},
	{"N9", CHECK_MANUAL, "needs --caddyfile (the API itself sends HSTS)"},
	{"N10", CHECK_MANUAL, "needs --caddyfile or --live (the certificate served on 443)"},
	{"K1", CHECK_MANUAL, "needs --compose (or check NoNewPrivileges= in the systemd unit)"},
	{"K2", CHECK_MANUAL, "needs --compose"},
	{"K3", CHECK_MANUAL, "needs --compose"},
	{"K4", CHECK_MANUAL, "needs --compose"},
	{"K5", CHECK_MANUAL, "needs --compose (serve itself refuses to run as root)"},
	{"A1", CHECK_MANUAL, "needs --live (the database knows which admins have MFA)"},
	{"A2", CHECK_MANUAL, "needs --live (which admin roles force MFA)"},
	{"A3", CHECK_MANUAL, "no env file or environment judged"},
	{"A4", CHECK_MANUAL, "no env file or environment judged"},
	{"A5", CHECK_MANUAL, "no env file or environment judged"},
	{"A6", CHECK_PASS,
	 "enforced: every request's session is decided by PostgreSQL, Redis holds "
	 "no session state, so a revoked session stays revoked with Redis down"},
	{"A7", CHECK_MANUAL, "no env file or environment judged"},
	{"G1", CHECK_MANUAL, "needs --live (agent_tokens holds only SHA-256 hashes)"},
	{"G2", CHECK_PASS,
	 "enforced: rotate-token with a fixed 300 s grace period for the old token"},
	{"G3", CHECK_MANUAL,
	 "on each agent host run `breeze-agent status`: it refuses (exit 3) "
	 "looser modes than /etc/breeze 0750, agent.yaml 0640, secrets.yaml 0600"},
	{"G4", CHECK_MANUAL, "no env file or environment judged"},
	{"G5", CHECK_MANUAL, "needs --live (enrolment keys in the database)"},
	{"G6", CHECK_PASS,
	 "enforced: a token used for another organization's device suspends its "
	 "device and tokens until an admin reviews it"},
	{"G7", CHECK_PASS,
	 "enforced: every heartbeat records its source address; a change is "
	 "audited as agent.source.ip.changed"},
	{"G8", CHECK_MANUAL, "optional: mTLS for agent routes at the proxy (docs/deploy.md)"},
	{"O1", CHECK_MANUAL, "no env file or environment judged"},
	{"O2", CHECK_MANUAL, "needs --live (settings columns in the database)"},
	{"M1", CHECK_MANUAL, "no env file or environment judged"},
	{"M2", CHECK_MANUAL, "needs --repo: deploy/prometheus/alerts.yml, validated with promtool"},
	{"M3", CHECK_PASS, "enforced: every mutation writes its audit row in the same transaction"},
	{"M4", CHECK_MANUAL, "needs --repo: the log shipping configuration under deploy/"},
	{"L1", CHECK_PASS, "enforced: audit_log has every field, filled by the server"},
	{"L2", CHECK_PASS,
	 "enforced: the checksum and prev_checksum are computed by the database "
	 "trigger audit_log_seal"},
	{"L3", CHECK_MANUAL, "needs --live (the append-only triggers of audit_log)"},
	{"L4", CHECK_MANUAL, "needs --live, or run `breeze-server audit verify --all`"},
	{"L5", CHECK_MANUAL, "needs --live (who may prune audit_log)"},
	{"L6", CHECK_PASS, "enforced: GET /api/v1/audit with resource and action filters"},
	{"R1", CHECK_MANUAL, "no env file or environment judged"},
	{"R2", CHECK_MANUAL, "no env file or environment judged"},
	{"R3", CHECK_MANUAL, "no env file or environment judged"},
	{"R4", CHECK_MANUAL, "no env file or environment judged"},
	{"R5", CHECK_MANUAL, "no env file or environment judged"},
	{"R6", CHECK_PASS, "enforced: every limiter answers 429 with Retry-After; the agent waits"},
};

static const char *const names[] = {"PASS", "MANUAL", "WARN", "FAIL"};

void check_report_init(struct check_report *rep)
{
	memset(rep, 0, sizeof(*rep));
	for (size_t i = 0; i < sizeof(items) / sizeof(items[0]) && i < CHECK_MAX_ROWS; i++) {
		snprintf(rep->rows[i].id, sizeof(rep->rows[i].id), "%s", items[i].id);
		rep->n++;
	}
}

void check_add(struct check_report *rep, const char *id, enum check_result res, const char *fmt,
	       ...)
{
	struct check_row *row = NULL;
	char part[CHECK_REASON_LEN];
	va_list ap;

	for (size_t i = 0; i < rep->n && row == NULL; i++)
		if (!strcmp(rep->rows[i].id, id))
			row = &rep->rows[i];
	if (row == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(part, sizeof(part), fmt, ap);
	va_end(ap);
	if (!row->judged || res > row->result)
		row->result = res;
	size_t len = strlen(row->reason);
	snprintf(row->reason + len, sizeof(row->reason) - len, "%s%s", len ? "; " : "", part);
	row->judged = 1;
}

void check_report_defaults(struct check_report *rep)
{
	for (size_t i = 0; i < rep->n; i++)
		if (!rep->rows[i].judged) {
			rep->rows[i].result = items[i].res;
			snprintf(rep->rows[i].reason, sizeof(rep->rows[i].reason), "%s",
				 items[i].why);
		}
}

size_t check_report_print(const struct check_report *rep, int json, const char *env_name)
{
	size_t fails = 0, counts[4] = {0};

	for (size_t i = 0; i < rep->n; i++) {
		counts[rep->rows[i].result]++;
		fails += rep->rows[i].result == CHECK_FAIL;
	}
	if (json) {
		json_t *rows = json_array();
		for (size_t i = 0; i < rep->n; i++)
			json_array_append_new(rows,
					      json_pack("{s:s,s:s,s:s}", "id", rep->rows[i].id,
							"result", names[rep->rows[i].result],
							"reason", rep->rows[i].reason));
		json_t *doc = json_pack("{s:s,s:o,s:{s:I,s:I,s:I,s:I}}", "environment", env_name,
					"items", rows, "summary", "pass", (json_int_t)counts[0],
					"manual", (json_int_t)counts[1], "warn",
					(json_int_t)counts[2], "fail", (json_int_t)counts[3]);
		if (doc != NULL)
			json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_ENSURE_ASCII);
		putchar('\n');
		json_decref(doc);
		return fails;
	}
	printf("breeze-server check (BREEZE_ENV=%s, judged as production)\n\n", env_name);
	for (size_t i = 0; i < rep->n; i++)
		printf("%-4s %-6s %s\n", rep->rows[i].id, names[rep->rows[i].result],
		       rep->rows[i].reason);
	printf("\n%zu PASS, %zu WARN, %zu FAIL, %zu MANUAL\n", counts[0], counts[2], counts[3],
	       counts[1]);
	return fails;
}
