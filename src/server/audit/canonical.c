/*
 * canonical.c — the canonical encoding of an audit row (format
 * breeze-audit-v1, and -v2 for rows with a partner or site) and its
 * checksum, byte for byte the same as audit_canonical() in
 * migrations/0002_audit_chain.sql and audit_canonical_v2() in 0004.
 * docs/audit-chain.md is the definition; tests/unit/test_audit_canonical.c holds vectors the
 * database computed.
 */
#include "server/audit/audit_chain.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "crypto/crypto.h"
#include "server/audit/audit_internal.h"

const char *audit_break_kind_name(enum audit_break_kind k)
{
	switch (k) {
	case AUDIT_BREAK_ALTERED_ROW:
		return "altered_row";
	case AUDIT_BREAK_MISSING_ROW:
		return "missing_row";
	case AUDIT_BREAK_INSERTED_ROW:
		return "inserted_row";
	case AUDIT_BREAK_BROKEN_LINK:
		return "broken_link";
	case AUDIT_BREAK_BAD_ANCHOR:
		return "bad_anchor";
	case AUDIT_BREAK_CHECKPOINT_MISMATCH:
		return "checkpoint_mismatch";
	}
	return "unknown";
}

int audit_canonical_encode(const struct audit_row *row, char **buf, size_t *cap, size_t *len)
{
	/* The order is the format: never reorder, only version. v2 is v1 with
	 * partner_id and site_id after org_id; a row that has neither keeps v1,
	 * so rows from before the v2 columns hash as they always did. */
	const char *v1[14] = {"breeze-audit-v1", row->id,	    row->org_id,   row->seq,
			      row->ts,		 row->actor_type,   row->actor_id, row->action,
			      row->resource,	 row->resource_id,  row->details,  row->ip_address,
			      row->result,	 row->prev_checksum};
	const char *v2[16] = {"breeze-audit-v2", row->id,	  row->org_id,
			      row->partner_id,	 row->site_id,	  row->seq,
			      row->ts,		 row->actor_type, row->actor_id,
			      row->action,	 row->resource,	  row->resource_id,
			      row->details,	 row->ip_address, row->result,
			      row->prev_checksum};
	int is_v2 = row->partner_id != NULL || row->site_id != NULL;
	const char *const *v = is_v2 ? v2 : v1;
	size_t nf = is_v2 ? 16 : 14, vl[16], need = 0;

	for (size_t i = 0; i < nf; i++) {
		vl[i] = v[i] ? strlen(v[i]) : 0;
		need += v[i] ? vl[i] + 23 : 1; /* "S" + up to 20 digits + ":" + "," */
	}
	if (need > *cap) {
		size_t ncap = need < 1024 ? 1024 : need + need / 2;
		char *nb = realloc(*buf, ncap);
		if (nb == NULL)
			return BZ_ERR_NOMEM;
		*buf = nb;
		*cap = ncap;
	}
	char *o = *buf;
	for (size_t i = 0; i < nf; i++) {
		if (v[i] == NULL) {
			*o++ = 'N';
			continue;
		}
		*o++ = 'S';
		o += audit_put_decimal(o, vl[i]);
		*o++ = ':';
		memcpy(o, v[i], vl[i]);
		o += vl[i];
		*o++ = ',';
	}
	*len = (size_t)(o - *buf);
	return 0;
}

int audit_row_checksum(const struct audit_row *row, char out[65])
{
	char *buf = NULL;
	size_t cap = 0, len = 0;
	int rc = audit_canonical_encode(row, &buf, &cap, &len);

	if (rc == 0)
		rc = crypto_sha256_hex(buf, len, out);
	free(buf);
	return rc;
}
