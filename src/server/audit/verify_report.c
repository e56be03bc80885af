/*
 * verify_report.c — a verification report as JSON (docs/audit-chain.md §9),
 * for the CLI's --json output and GET /api/v1/audit/verify.
 */
#include <jansson.h>
#include <stdlib.h>

#include "server/audit/audit_chain.h"

static json_t *breaks_json(const struct audit_report *rep)
{
	json_t *breaks = json_array();

	for (size_t i = 0; i < rep->n_kept; i++) {
		const struct audit_break *b = &rep->breaks[i];
		json_array_append_new(breaks,
				      json_pack("{s:s,s:o,s:o,s:s}", "kind",
						audit_break_kind_name(b->kind), "seq",
						b->seq >= 0 ? json_integer(b->seq) : json_null(),
						"id",
						b->id >= 0 ? json_integer(b->id) : json_null(),
						"detail", b->detail));
	}
	return breaks;
}

static json_t *warnings_json(const struct audit_report *rep)
{
	json_t *warnings = json_array();

	for (size_t i = 0; i < rep->n_warn_kept; i++) {
		const struct audit_warning *w = &rep->warnings[i];
		json_array_append_new(warnings,
				      json_pack("{s:s,s:o,s:o,s:s}", "kind", w->kind, "seq",
						w->seq >= 0 ? json_integer(w->seq) : json_null(),
						"id",
						w->id >= 0 ? json_integer(w->id) : json_null(),
						"detail", w->detail));
	}
	return warnings;
}

json_t *audit_report_json(const struct audit_report *rep)
{
	int org = !rep->system && !rep->partner;
	json_t *o = json_pack("{s:o,s:o,s:I,s:b,s:o,s:o}", "orgId",
			      org ? json_string(rep->chain_id) : json_null(), "partnerId",
			      rep->partner ? json_string(rep->chain_id) : json_null(),
			      "rowsChecked", (json_int_t)rep->rows_checked, "ok", rep->ok, "breaks",
			      breaks_json(rep), "warnings", warnings_json(rep));

	if (o != NULL && (long long)rep->n_kept < rep->n_breaks)
		json_object_set_new(o, "breaksTotal", json_integer(rep->n_breaks));
	if (o != NULL && (long long)rep->n_warn_kept < rep->n_warnings)
		json_object_set_new(o, "warningsTotal", json_integer(rep->n_warnings));
	return o;
}

void audit_report_free(struct audit_report *rep)
{
	free(rep->breaks);
	rep->breaks = NULL;
	rep->n_kept = 0;
	free(rep->warnings);
	rep->warnings = NULL;
	rep->n_warn_kept = 0;
}
