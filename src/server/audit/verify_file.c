/*
 * verify_file.c — offline verification of an export file (docs/audit-chain.md
 * §8, §9): no database, only the file and the trusted public keys. The
 * rows go through the same state machine as verification in the database
 * (verify_state.c).
 */
#include "server/audit/audit_verify_int.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "common/err.h"
#include "common/iso8601.h"
#include "server/audit/audit_checkpoint.h"

/* "123" → 123; anything but plain decimal digits fails. */
static int parse_ll(const char *s, long long *out)
{
	char *end;

	if (s == NULL || *s < '0' || *s > '9')
		return BZ_ERR_INVALID;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return BZ_ERR_INVALID;
	*out = v;
	return 0;
}

/* String member KEY of O (NULL for JSON null). Returns BZ_ERR_INVALID if absent or of
 * another type. */
static int member_str(json_t *o, const char *key, int nullable, const char **out)
{
	json_t *v = json_object_get(o, key);

	if (nullable && json_is_null(v)) {
		*out = NULL;
		return 0;
	}
	if (!json_is_string(v))
		return BZ_ERR_INVALID;
	*out = json_string_value(v);
	return 0;
}

static int hex_field(json_t *o, const char *key, size_t len, char *out)
{
	const char *s;

	if (member_str(o, key, 0, &s) != 0 || strlen(s) != len)
		return BZ_ERR_INVALID;
	memcpy(out, s, len + 1);
	return 0;
}

/* The header line: format, chain, anchor, checkpoints. *V2 is set for a
 * breeze-audit-export-v2 file (rows carry partnerId and siteId), *PARTNER
 * when it is a partner chain's. */
static int read_header(json_t *h, struct audit_vstate *st, char chain[37], int *v2, int *partner)
{
	const char *fmt, *cid, *pid = NULL;
	json_t *a = json_object_get(h, "anchor"), *cps = json_object_get(h, "checkpoints");

	if (member_str(h, "format", 0, &fmt) || member_str(h, "chainId", 0, &cid) ||
	    strlen(cid) != 36 || !json_is_array(cps))
		return BZ_ERR_INVALID;
	if (strcmp(fmt, "breeze-audit-export-v2") == 0)
		*v2 = 1;
	else if (strcmp(fmt, "breeze-audit-export-v1") == 0)
		*v2 = 0;
	else
		return BZ_ERR_INVALID;
	if (*v2 && (member_str(h, "partnerId", 1, &pid) || (pid != NULL && strcmp(pid, cid) != 0)))
		return BZ_ERR_INVALID;
	*partner = pid != NULL;
	snprintf(chain, 37, "%s", cid);
	if (json_is_object(a)) {
		struct audit_vanchor *an = &st->anchor;
		json_t *fs = json_object_get(a, "firstSeq");
		const char *pub = NULL, *sig = NULL;
		if (!json_is_integer(fs) || hex_field(a, "prevChecksum", 64, an->prev) ||
		    member_str(a, "publicKey", 1, &pub) || member_str(a, "signature", 1, &sig))
			return BZ_ERR_INVALID;
		an->present = 1;
		an->first_seq = json_integer_value(fs);
		if (an->first_seq < 2)
			return BZ_ERR_INVALID; /* an anchor starts a chain after pruned rows */
		an->has_sig = pub != NULL && sig != NULL;
		snprintf(an->pub, sizeof(an->pub), "%s", pub ? pub : "");
		snprintf(an->sig, sizeof(an->sig), "%s", sig ? sig : "");
	} else if (!json_is_null(a)) {
		return BZ_ERR_INVALID;
	}
	size_t n = json_array_size(cps);
	if (n > 0 && (st->cps = calloc(n, sizeof(*st->cps))) == NULL)
		return BZ_ERR_INVALID;
	for (size_t i = 0; i < n; i++) {
		json_t *c = json_array_get(cps, i), *seq = json_object_get(c, "seq");
		struct audit_vcheckpoint *cp = &st->cps[i];
		const char *created;
		int64_t us;
		if (!json_is_integer(seq) || hex_field(c, "checksum", 64, cp->checksum) ||
		    hex_field(c, "publicKey", 64, cp->pub) ||
		    hex_field(c, "signature", 128, cp->sig) ||
		    member_str(c, "createdAt", 0, &created) || iso8601_parse_us(created, &us) != 0)
			return BZ_ERR_INVALID;
		cp->id = (long long)i + 1;
		cp->seq = json_integer_value(seq);
		if (cp->seq < 1)
			return BZ_ERR_INVALID;
		cp->created_at = us / 1000000;
		if (i > 0 && cp->seq < st->cps[i - 1].seq)
			return BZ_ERR_INVALID; /* the format lists checkpoints by seq */
	}
	st->ncps = n;
	return 0;
}

/* One row line into R (pointing into O). Returns BZ_ERR_INVALID if malformed. Rows
 * of a v2 export carry partnerId and siteId (null when absent). */
static int read_row(json_t *o, int v2, struct audit_row *r, long long *seq, long long *id)
{
	memset(r, 0, sizeof(*r));
	if (!json_is_object(o) || member_str(o, "id", 0, &r->id) ||
	    member_str(o, "orgId", 1, &r->org_id) || member_str(o, "seq", 0, &r->seq) ||
	    member_str(o, "ts", 0, &r->ts) || member_str(o, "actorType", 0, &r->actor_type) ||
	    member_str(o, "actorId", 1, &r->actor_id) || member_str(o, "action", 0, &r->action) ||
	    member_str(o, "resource", 0, &r->resource) ||
	    member_str(o, "resourceId", 1, &r->resource_id) ||
	    member_str(o, "details", 0, &r->details) ||
	    member_str(o, "ipAddress", 1, &r->ip_address) ||
	    member_str(o, "result", 0, &r->result) ||
	    member_str(o, "prevChecksum", 0, &r->prev_checksum) ||
	    member_str(o, "checksum", 0, &r->checksum) || parse_ll(r->seq, seq) ||
	    parse_ll(r->id, id))
		return BZ_ERR_INVALID;
	if (v2 && (member_str(o, "partnerId", 1, &r->partner_id) ||
		   member_str(o, "siteId", 1, &r->site_id)))
		return BZ_ERR_INVALID;
	return 0;
}

/* 1 if row R belongs to chain CHAIN (its chain id is coalesce(orgId,
 * partnerId, nil), as the sealing trigger computes it). */
static int row_in_chain(const struct audit_row *r, const char *chain)
{
	const char *c = r->org_id ? r->org_id : r->partner_id ? r->partner_id : AUDIT_SYSTEM_CHAIN;

	return strcmp(c, chain) == 0 && !(r->org_id != NULL && r->partner_id != NULL);
}

/* The export seal must be present, signed by a trusted key, and name this
 * chain, its last row and its row count: what stops an export being cut
 * short or re-sealed after rows were dropped. */
static void check_seal(struct audit_vstate *st, const struct audit_verify_opts *opts, json_t *seal,
		       const char *chain, long long last_seq, const char *last_sum, long long rows)
{
	const char *cid = NULL, *sum = NULL, *pub = NULL, *sig = NULL;
	json_t *ls = json_object_get(seal, "lastSeq"), *nr = json_object_get(seal, "rows"),
	       *at = json_object_get(seal, "exportedAt");

	/* Without a trusted key a seal proves nothing (anyone can make one);
	 * the CLI refuses to verify an export without a key. */
	if (opts->n_public_keys == 0)
		return;
	if (seal == NULL) {
		audit_vs_break(st, AUDIT_BREAK_MISSING_ROW, NO_SEQ, NO_SEQ,
			       "the export has no seal line: it may have been cut short");
		return;
	}
	if (member_str(seal, "chainId", 0, &cid) || member_str(seal, "lastChecksum", 0, &sum) ||
	    member_str(seal, "publicKey", 0, &pub) || member_str(seal, "signature", 0, &sig) ||
	    !json_is_integer(ls) || !json_is_integer(nr) || !json_is_integer(at)) {
		audit_vs_break(st, AUDIT_BREAK_ALTERED_ROW, NO_SEQ, NO_SEQ,
			       "the export seal is malformed");
		return;
	}
	if (strcmp(cid, chain) != 0 || json_integer_value(ls) != last_seq ||
	    strcmp(sum, last_sum) != 0 || json_integer_value(nr) != rows) {
		audit_vs_break(
			st, AUDIT_BREAK_MISSING_ROW, NO_SEQ, NO_SEQ,
			"the export seal names %lld rows ending at seq %lld; the file holds %lld "
			"ending at seq %lld",
			(long long)json_integer_value(nr), (long long)json_integer_value(ls), rows,
			last_seq);
		return;
	}
	if (audit_vs_key_trusted(opts, pub) &&
	    audit_export_seal_ok(pub, cid, last_seq, sum, rows, json_integer_value(at), sig))
		return;
	audit_vs_break(st, AUDIT_BREAK_CHECKPOINT_MISMATCH, NO_SEQ, NO_SEQ,
		       "the export seal is not signed by a trusted key");
}

/* Where the row lines stand while they are read. */
struct file_pass {
	const char *chain;
	int v2;
	json_t *seal; /* the seal line's object, once seen */
	long long last_seq;
	char last_sum[65];
};

/* One line after the header: a row, the seal, or something malformed. */
static void file_line(struct audit_vstate *st, struct file_pass *fp, const char *line, size_t n,
		      long long lineno)
{
	struct audit_row r;
	long long seq, id;
	json_t *o = json_loadb(line, n, JSON_REJECT_DUPLICATES, NULL);

	if (fp->seal != NULL) {
		audit_vs_break(st, AUDIT_BREAK_INSERTED_ROW, NO_SEQ, NO_SEQ,
			       "line %lld follows the export seal", lineno);
	} else if (json_is_object(o) && json_object_size(o) == 1 &&
		   json_is_object(json_object_get(o, "exportSeal"))) {
		fp->seal = json_incref(json_object_get(o, "exportSeal"));
	} else if (read_row(o, fp->v2, &r, &seq, &id) != 0) {
		audit_vs_break(st, AUDIT_BREAK_ALTERED_ROW, NO_SEQ, NO_SEQ,
			       "line %lld is not a valid export row", lineno);
	} else if (!row_in_chain(&r, fp->chain)) {
		audit_vs_break(st, AUDIT_BREAK_INSERTED_ROW, seq, id,
			       "row belongs to another chain (%s)",
			       r.org_id	      ? r.org_id
			       : r.partner_id ? r.partner_id
					      : "system");
	} else {
		audit_vs_feed_row(st, &r, seq, id);
		fp->last_seq = seq;
		snprintf(fp->last_sum, sizeof(fp->last_sum), "%s", r.checksum);
	}
	json_decref(o);
}

int audit_verify_file(FILE *f, const struct audit_verify_opts *opts, struct audit_report *rep,
		      char *err, size_t errlen)
{
	struct audit_vstate st;
	struct file_pass fp = {.last_sum = AUDIT_GENESIS};
	char *line = NULL, chain[37] = "";
	size_t cap = 0;
	long long lineno = 0;
	ssize_t n;
	int rc, partner = 0;

	if ((rc = audit_vs_init(&st, rep, opts, AUDIT_SYSTEM_CHAIN)) != 0)
		goto out;
	rc = BZ_ERR_INVALID;
	if ((n = getline(&line, &cap, f)) <= 0) {
		snprintf(err, errlen, "line 1: empty file, expected the export header");
		goto out;
	}
	lineno = 1;
	json_t *h = json_loadb(line, (size_t)n, 0, NULL);
	int bad = h == NULL || read_header(h, &st, chain, &fp.v2, &partner) != 0;
	json_decref(h);
	if (bad) {
		snprintf(err, errlen, "line 1: not a breeze-audit-export-v1 or -v2 header");
		goto out;
	}
	snprintf(rep->chain_id, sizeof(rep->chain_id), "%s", chain);
	rep->system = strcmp(chain, AUDIT_SYSTEM_CHAIN) == 0;
	rep->partner = partner;
	fp.chain = chain;
	audit_vs_start_full(&st);
	audit_vs_checkpoints_prepare(&st, st.start_seq, 1);
	while ((n = getline(&line, &cap, f)) > 0 && st.err == 0) {
		lineno++;
		if (n == 1 && line[0] == '\n')
			continue;
		file_line(&st, &fp, line, (size_t)n, lineno);
	}
	audit_vs_finish(&st, 0, 1);
	check_seal(&st, opts, fp.seal, chain, fp.last_seq, fp.last_sum,
		   (long long)rep->rows_checked);
	json_decref(fp.seal);
	/* With a trusted key, an export none of whose checkpoints it signed is
	 * only self-consistent: anyone can re-seal rows. */
	if (opts->n_public_keys > 0 && st.n_signed_ok == 0 && rep->rows_checked > 0)
		audit_vs_break(&st, AUDIT_BREAK_CHECKPOINT_MISMATCH, NO_SEQ, NO_SEQ,
			       "the export holds no checkpoint signed by a trusted key: nothing "
			       "vouches for its rows (run `audit checkpoint` before exporting)");
	rc = st.err;
out:
	free(line);
	audit_vs_free(&st);
	return rc;
}
