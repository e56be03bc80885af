/*
 * witness.c — reading the audit.checkpoint lines of a server log back
 * (audit_witness.h) and adding them to a chain's verification.
 */
#include "server/audit/audit_witness.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/text.h"
#include "server/audit/audit_checkpoint.h"
#include "server/audit/audit_internal.h"
#include "server/audit/audit_verify_int.h"

#define LINE_MAX_BYTES (64 * 1024)

/* 1 if S is exactly LEN lower-case hex digits. */
static int is_hex(const char *s, size_t len)
{
	return s != NULL && strlen(s) == len && strspn(s, "0123456789abcdef") == len;
}

/* Fills CP from the checkpoint line object O. Returns 0 or BZ_ERR_INVALID. */
static int parse_cp(json_t *o, struct audit_witness_cp *cp)
{
	const char *chain = json_string_value(json_object_get(o, "chainId"));
	const char *sum = json_string_value(json_object_get(o, "checksum"));
	const char *pub = json_string_value(json_object_get(o, "publicKey"));
	const char *sig = json_string_value(json_object_get(o, "signature"));
	json_t *seq = json_object_get(o, "seq"), *at = json_object_get(o, "createdAt");

	if (chain == NULL || !is_uuid(chain) || !json_is_integer(seq) ||
	    json_integer_value(seq) < 1 || !json_is_integer(at) || !is_hex(sum, 64) ||
	    !is_hex(pub, 64) || !is_hex(sig, 128))
		return BZ_ERR_INVALID;
	audit_id_lower(cp->chain_id, chain);
	cp->seq = json_integer_value(seq);
	cp->created_at = json_integer_value(at);
	memcpy(cp->checksum, sum, 65);
	memcpy(cp->pub, pub, 65);
	memcpy(cp->sig, sig, 129);
	return 0;
}

/* Looks at one log line (LINENO from 1): a checkpoint line is added to W. */
static int take_line(struct audit_witness *w, const char *line, long long lineno)
{
	const char *brace = strchr(line, '{');
	json_t *o;
	int rc = 0;

	if (brace == NULL ||
	    (o = json_loads(brace, JSON_DISABLE_EOF_CHECK | JSON_REJECT_DUPLICATES, NULL)) == NULL)
		return 0;
	const char *msg = json_string_value(json_object_get(o, "msg"));
	if (msg == NULL || strcmp(msg, AUDIT_CHECKPOINT_LOG_MSG) != 0)
		goto out;
	if (w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 64;
		struct audit_witness_cp *n = realloc(w->cps, cap * sizeof(*n));
		if (n == NULL) {
			rc = BZ_ERR_NOMEM;
			goto out;
		}
		w->cps = n;
		w->cap = cap;
	}
	struct audit_witness_cp *cp = &w->cps[w->n];
	memset(cp, 0, sizeof(*cp));
	if (parse_cp(o, cp) != 0) {
		w->n_bad++;
		goto out;
	}
	cp->line = lineno;
	w->n++;
out:
	json_decref(o);
	return rc;
}

int audit_witness_read(FILE *f, struct audit_witness *w)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	long long lineno = 0;
	int rc = 0;

	memset(w, 0, sizeof(*w));
	while (rc == 0 && (len = getline(&line, &cap, f)) != -1) {
		lineno++;
		if (len > LINE_MAX_BYTES)
			continue;
		rc = take_line(w, line, lineno);
	}
	if (rc == 0 && ferror(f))
		rc = BZ_ERR_IO;
	free(line);
	return rc;
}

void audit_witness_free(struct audit_witness *w)
{
	free(w->cps);
	memset(w, 0, sizeof(*w));
}

const char *audit_vs_cp_name(const struct audit_vcheckpoint *c, char *buf, size_t len)
{
	if (c->witness_line > 0)
		snprintf(buf, len, "witness line %lld", c->witness_line);
	else
		snprintf(buf, len, "checkpoint %lld", c->id);
	return buf;
}

/* 1 if WC is a copy of one of ST's first N stored checkpoints. */
static int stored_copy(const struct audit_vstate *st, size_t n, const struct audit_witness_cp *wc)
{
	for (size_t i = 0; i < n; i++) {
		const struct audit_vcheckpoint *c = &st->cps[i];
		/* The key too: a stored row whose key was swapped for an
		 * unknown one is ignored by verification (a warning), so it
		 * must not stand in for the witness's trusted line. */
		if (c->seq == wc->seq && !strcmp(c->checksum, wc->checksum) &&
		    !strcmp(c->sig, wc->sig) && !strcmp(c->pub, wc->pub) &&
		    c->created_at == wc->created_at)
			return 1;
	}
	return 0;
}

static int by_seq(const void *a, const void *b)
{
	const struct audit_vcheckpoint *x = a, *y = b;

	if (x->seq != y->seq)
		return x->seq < y->seq ? -1 : 1;
	if (x->witness_line != y->witness_line)
		return x->witness_line < y->witness_line ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

int audit_witness_merge(struct audit_vstate *st)
{
	const struct audit_witness *w = st->opts->witness;
	size_t stored = st->ncps, extra = 0;

	if (w == NULL)
		return 0;
	for (size_t i = 0; i < w->n; i++)
		extra += !strcmp(w->cps[i].chain_id, st->rep->chain_id);
	if (extra == 0)
		return 0;
	struct audit_vcheckpoint *cps = realloc(st->cps, (stored + extra) * sizeof(*cps));
	if (cps == NULL)
		return BZ_ERR_NOMEM;
	st->cps = cps;
	for (size_t i = 0; i < w->n; i++) {
		const struct audit_witness_cp *wc = &w->cps[i];
		if (strcmp(wc->chain_id, st->rep->chain_id) != 0 || stored_copy(st, stored, wc))
			continue;
		struct audit_vcheckpoint *c = &st->cps[st->ncps++];
		memset(c, 0, sizeof(*c));
		c->id = -1;
		c->seq = wc->seq;
		c->created_at = wc->created_at;
		c->witness_line = wc->line;
		memcpy(c->checksum, wc->checksum, sizeof(c->checksum));
		memcpy(c->pub, wc->pub, sizeof(c->pub));
		memcpy(c->sig, wc->sig, sizeof(c->sig));
	}
	qsort(st->cps, st->ncps, sizeof(*st->cps), by_seq);
	return 0;
}
