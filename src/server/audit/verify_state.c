/*
 * verify_state.c — the verification state machine (checklist L4): rows of
 * one chain, in seq order, become breaks. It knows nothing of where rows
 * come from: verify_db.c feeds it from PostgreSQL, verify_file.c from an
 * export file. One encoding buffer and one digest context serve the whole
 * chain: nothing is allocated per row.
 */
#include "server/audit/audit_verify_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "crypto/crypto.h"
#include "server/audit/audit_checkpoint.h"

void audit_vs_break(struct audit_vstate *st, enum audit_break_kind kind, long long seq,
		    long long id, const char *fmt, ...)
{
	struct audit_report *rep = st->rep;
	va_list ap;

	rep->n_breaks++;
	rep->ok = 0;
	if (rep->n_kept >= AUDIT_MAX_BREAKS)
		return;
	if (rep->breaks == NULL) {
		rep->breaks = calloc(AUDIT_MAX_BREAKS, sizeof(*rep->breaks));
		if (rep->breaks == NULL) {
			st->err = BZ_ERR_NOMEM;
			return;
		}
	}
	struct audit_break *b = &rep->breaks[rep->n_kept++];
	b->kind = kind;
	b->seq = seq;
	b->id = id;
	va_start(ap, fmt);
	vsnprintf(b->detail, sizeof(b->detail), fmt, ap);
	va_end(ap);
}

/* Records a warning (formatted DETAIL, at most 200 bytes kept). KIND is a
 * static string. */
static void add_warning(struct audit_vstate *st, const char *kind, long long seq, long long id,
			const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void add_warning(struct audit_vstate *st, const char *kind, long long seq, long long id,
			const char *fmt, ...)
{
	struct audit_report *rep = st->rep;
	va_list ap;

	rep->n_warnings++;
	if (rep->n_warn_kept >= AUDIT_MAX_WARNINGS)
		return;
	if (rep->warnings == NULL) {
		rep->warnings = calloc(AUDIT_MAX_WARNINGS, sizeof(*rep->warnings));
		if (rep->warnings == NULL) {
			st->err = BZ_ERR_NOMEM;
			return;
		}
	}
	struct audit_warning *w = &rep->warnings[rep->n_warn_kept++];
	w->kind = kind;
	w->seq = seq;
	w->id = id;
	va_start(ap, fmt);
	vsnprintf(w->detail, sizeof(w->detail), fmt, ap);
	va_end(ap);
}

/* First 12 characters of a checksum, for messages. */
static const char *short_sum(const char *s, char out[16])
{
	snprintf(out, 16, "%.12s", s ? s : "(null)");
	return out;
}

int audit_vs_key_trusted(const struct audit_verify_opts *o, const char *pub)
{
	for (size_t i = 0; i < o->n_public_keys; i++)
		if (strcmp(o->public_keys[i], pub) == 0)
			return 1;
	return 0;
}

int audit_vs_init(struct audit_vstate *st, struct audit_report *rep,
		  const struct audit_verify_opts *opts, const char *chain_id)
{
	memset(st, 0, sizeof(*st));
	memset(rep, 0, sizeof(*rep));
	snprintf(rep->chain_id, sizeof(rep->chain_id), "%s", chain_id);
	rep->system = strcmp(chain_id, AUDIT_SYSTEM_CHAIN) == 0;
	rep->ok = 1;
	st->rep = rep;
	st->opts = opts;
	st->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	st->md = EVP_MD_CTX_new();
	if (st->sha256 == NULL || st->md == NULL)
		return BZ_ERR_CRYPTO;
	return 0;
}

void audit_vs_free(struct audit_vstate *st)
{
	EVP_MD_CTX_free(st->md);
	EVP_MD_free(st->sha256);
	free(st->buf);
	free(st->cps);
}

/* Checks the anchor's signature and sets where the chain starts. */
void audit_vs_start_full(struct audit_vstate *st)
{
	const struct audit_vanchor *a = &st->anchor;
	const struct audit_verify_opts *o = st->opts;

	st->start_seq = 1;
	st->start_prev = AUDIT_GENESIS;
	if (!a->present)
		return;
	st->start_seq = a->first_seq;
	st->start_prev = a->prev;
	if (o->n_public_keys == 0)
		return;
	if (!a->has_sig)
		audit_vs_break(st, AUDIT_BREAK_BAD_ANCHOR, a->first_seq, NO_SEQ,
			       "anchor %lld (chain starts at seq %lld) is not signed", a->id,
			       a->first_seq);
	else if (!audit_vs_key_trusted(o, a->pub))
		audit_vs_break(st, AUDIT_BREAK_BAD_ANCHOR, a->first_seq, NO_SEQ,
			       "anchor %lld is signed by an untrusted key %.16s…", a->id, a->pub);
	else if (!audit_anchor_sig_ok(a->pub, st->rep->chain_id, a->first_seq, a->prev, a->sig))
		audit_vs_break(st, AUDIT_BREAK_BAD_ANCHOR, a->first_seq, NO_SEQ,
			       "anchor %lld has an invalid signature", a->id);
}

/* Checks checkpoint signatures and skips those before FROM_SEQ - 1 (rows
 * pruned or outside the window). Only a checkpoint validly signed by a
 * trusted key counts: breeze_app may insert checkpoints, so one by an
 * unknown key or with a bad signature proves nothing about the chain and
 * must not mark it broken for good — it is a warning and is not compared.
 * Without any trusted key no checkpoint counts. With an anchor, the
 * checkpoint exactly at first_seq - 1 must sign the anchor's
 * prev_checksum. */
void audit_vs_checkpoints_prepare(struct audit_vstate *st, long long from_seq, int use_anchor)
{
	const struct audit_verify_opts *o = st->opts;
	size_t unchecked = 0;
	char a[16], b[16], nm[40];

	for (size_t i = 0; i < st->ncps; i++) {
		struct audit_vcheckpoint *c = &st->cps[i];
		if (c->seq < from_seq - 1) {
			c->done = 1;
			continue;
		}
		if (o->n_public_keys == 0) {
			c->done = 1;
			unchecked++;
			continue;
		}
		if (!audit_vs_key_trusted(o, c->pub)) {
			add_warning(st, "untrusted_checkpoint", c->seq, c->id,
				    "%s is signed by an unknown key %.16s…: ignored",
				    audit_vs_cp_name(c, nm, sizeof(nm)), c->pub);
			c->done = 1;
			continue;
		}
		if (!audit_checkpoint_sig_ok(c->pub, st->rep->chain_id, c->seq, c->checksum,
					     c->created_at, c->sig)) {
			add_warning(st, "untrusted_checkpoint", c->seq, c->id,
				    "%s has an invalid signature: ignored",
				    audit_vs_cp_name(c, nm, sizeof(nm)));
			c->done = 1;
			continue;
		}
		st->n_signed_ok++;
		if (use_anchor && st->anchor.present && c->seq == st->anchor.first_seq - 1) {
			if (strcmp(c->checksum, st->anchor.prev) != 0)
				audit_vs_break(st, AUDIT_BREAK_CHECKPOINT_MISMATCH, c->seq, NO_SEQ,
					       "%s signs seq %lld as %s…, the anchor says %s…",
					       audit_vs_cp_name(c, nm, sizeof(nm)), c->seq,
					       short_sum(c->checksum, a),
					       short_sum(st->anchor.prev, b));
			c->done = 1;
		}
	}
	if (unchecked > 0)
		add_warning(st, "unchecked_checkpoints", NO_SEQ, NO_SEQ,
			    "no trusted public key: %zu checkpoint%s not checked", unchecked,
			    unchecked == 1 ? "" : "s");
	st->cpi = 0;
}

/* Compares the checkpoints at SEQ with the row's stored CHECKSUM; those
 * below SEQ never met their row: it is gone. */
void audit_vs_checkpoints_advance(struct audit_vstate *st, long long seq, const char *checksum)
{
	char a[16], b[16], nm[40];

	while (st->cpi < st->ncps && st->cps[st->cpi].seq <= seq) {
		struct audit_vcheckpoint *c = &st->cps[st->cpi++];
		if (c->done)
			continue;
		c->done = 1;
		if (c->seq < seq)
			audit_vs_break(st, AUDIT_BREAK_CHECKPOINT_MISMATCH, c->seq, NO_SEQ,
				       "%s signs seq %lld, which is not in the chain",
				       audit_vs_cp_name(c, nm, sizeof(nm)), c->seq);
		else if (strcmp(c->checksum, checksum) != 0)
			audit_vs_break(st, AUDIT_BREAK_CHECKPOINT_MISMATCH, c->seq, NO_SEQ,
				       "%s signs seq %lld as %s…, the row has %s…",
				       audit_vs_cp_name(c, nm, sizeof(nm)), c->seq,
				       short_sum(c->checksum, a), short_sum(checksum, b));
	}
}

/* Copies a checksum (normally 64 characters) into OUT[65], truncating. */
static void copy_sum(char out[65], const char *s)
{
	size_t n = s ? strnlen(s, 64) : 0;

	memcpy(out, s ? s : "", n);
	out[n] = '\0';
}

/* The window's predecessor: only its stored checksum matters. */
void audit_vs_feed_context(struct audit_vstate *st, long long seq, long long id,
			   const char *checksum)
{
	audit_vs_checkpoints_advance(st, seq, checksum);
	st->have_prev = 1;
	st->prev_seq = st->last_seq = seq;
	st->prev_id = id;
	copy_sum(st->prev_c, checksum);
}

static int checksum_ok(struct audit_vstate *st, const struct audit_row *r, char out[65])
{
	size_t len = 0;
	unsigned char md[32];
	unsigned int mdlen = 0;

	if (audit_canonical_encode(r, &st->buf, &st->cap, &len) != 0) {
		st->err = BZ_ERR_NOMEM;
		return 0;
	}
	if (EVP_DigestInit_ex(st->md, st->sha256, NULL) != 1 ||
	    EVP_DigestUpdate(st->md, st->buf, len) != 1 ||
	    EVP_DigestFinal_ex(st->md, md, &mdlen) != 1) {
		st->err = BZ_ERR_CRYPTO;
		return 0;
	}
	crypto_hex(md, sizeof(md), out);
	return r->checksum != NULL && strcmp(out, r->checksum) == 0;
}

static void resolve_pending(struct audit_vstate *st, const char *successor_prev)
{
	if (!st->pending)
		return;
	st->pending = 0;
	if (successor_prev != NULL && strcmp(successor_prev, st->pend_pred) == 0)
		audit_vs_break(st, AUDIT_BREAK_INSERTED_ROW, st->pend_seq, st->pend_id,
			       "row is not part of the chain: its successor links to seq %lld",
			       st->pend_seq - 1);
	else
		audit_vs_break(st, AUDIT_BREAK_BROKEN_LINK, st->pend_seq, st->pend_id,
			       "prev_checksum does not match the checksum of the preceding row");
}

/* "row 7 is" / "rows 7..9 are" */
static void gap_text(char *out, size_t len, long long a, long long b)
{
	if (a == b)
		snprintf(out, len, "row %lld is", a);
	else
		snprintf(out, len, "rows %lld..%lld are", a, b);
}

/* The first row of the verified range: does it start where the chain (its
 * anchor, genesis, or the window's predecessor) says it must? */
static void check_first(struct audit_vstate *st, const char *prev, long long seq, long long id)
{
	char a[16], b[16], gap[64];

	if (st->start_prev == NULL) {
		/* Window whose predecessor row is gone. */
		gap_text(gap, sizeof(gap), st->context_seq, seq - 1);
		audit_vs_break(st, AUDIT_BREAK_MISSING_ROW, seq, id, "%s missing before the window",
			       gap);
	} else if (seq > st->start_seq) {
		gap_text(gap, sizeof(gap), st->start_seq, seq - 1);
		if (st->anchor.present)
			audit_vs_break(st, AUDIT_BREAK_BAD_ANCHOR, seq, id,
				       "chain starts at seq %lld, its anchor at seq %lld", seq,
				       st->start_seq);
		else
			audit_vs_break(st, AUDIT_BREAK_MISSING_ROW, seq, id,
				       "%s missing at the start of the chain", gap);
	} else if (strcmp(prev, st->start_prev) != 0) {
		if (st->anchor.present)
			audit_vs_break(st, AUDIT_BREAK_BAD_ANCHOR, seq, id,
				       "prev_checksum %s… does not match the anchor's %s…",
				       short_sum(prev, a), short_sum(st->start_prev, b));
		else
			audit_vs_break(st, AUDIT_BREAK_BROKEN_LINK, seq, id,
				       "first row does not link to the genesis value");
	}
}

/* One row of the verified range, in seq order. */
void audit_vs_feed_row(struct audit_vstate *st, const struct audit_row *r, long long seq,
		       long long id)
{
	const char *prev = r->prev_checksum ? r->prev_checksum : "";
	const char *stored = r->checksum ? r->checksum : "";
	char computed[65], a[16], b[16], gap[64];
	int skipped = 0;

	if (!st->have_prev && st->start_prev != NULL && st->anchor.present &&
	    seq < st->anchor.first_seq) {
		audit_vs_break(st, AUDIT_BREAK_INSERTED_ROW, seq, id,
			       "row precedes the chain's start (anchor at seq %lld)",
			       st->anchor.first_seq);
		return;
	}
	if (st->have_prev && seq < st->prev_seq) {
		audit_vs_break(st, AUDIT_BREAK_INSERTED_ROW, seq, id,
			       "row out of order after seq %lld", st->prev_seq);
		return;
	}
	/* The previous row's failed link is decided first: if this row links
	 * past it, it was inserted. Keeps breaks in seq order. */
	if (st->have_prev && seq != st->prev_seq) {
		skipped = st->pending && strcmp(prev, st->pend_pred) == 0;
		resolve_pending(st, prev);
	}
	st->rep->rows_checked++;
	if (!checksum_ok(st, r, computed))
		audit_vs_break(st, AUDIT_BREAK_ALTERED_ROW, seq, id,
			       "stored checksum %s…, recomputed %s…", short_sum(stored, a),
			       short_sum(computed, b));
	if (st->has_head && seq > st->head_seq)
		audit_vs_break(
			st, AUDIT_BREAK_INSERTED_ROW, seq, id,
			"row lies beyond the chain head the sealing trigger recorded (seq %lld)",
			st->head_seq);

	if (!st->have_prev) {
		check_first(st, prev, seq, id);
	} else if (seq == st->prev_seq) {
		/* Two rows at one position: the one that does not link is inserted. */
		if (st->pending && st->pend_seq == seq && strcmp(prev, st->pend_pred) == 0) {
			st->pending = 0;
			audit_vs_break(st, AUDIT_BREAK_INSERTED_ROW, st->pend_seq, st->pend_id,
				       "second row at seq %lld; row %lld is the chained one", seq,
				       id);
		} else {
			audit_vs_break(st, AUDIT_BREAK_INSERTED_ROW, seq, id,
				       "second row at seq %lld (row %lld is the chained one)", seq,
				       st->prev_id);
			return;
		}
	} else if (seq > st->prev_seq + 1) {
		gap_text(gap, sizeof(gap), st->prev_seq + 1, seq - 1);
		audit_vs_break(st, AUDIT_BREAK_MISSING_ROW, seq, id, "%s missing", gap);
	} else if (!skipped && strcmp(prev, st->prev_c) != 0) {
		st->pending = 1;
		st->pend_seq = seq;
		st->pend_id = id;
		memcpy(st->pend_pred, st->prev_c, sizeof(st->pend_pred));
	}
	audit_vs_checkpoints_advance(st, seq, stored);
	st->have_prev = 1;
	st->prev_seq = st->last_seq = seq;
	st->prev_id = id;
	copy_sum(st->prev_c, stored);
}

/* After the last row: pending links, checkpoints beyond the last row
 * (newest rows deleted) and, from the database, the recorded head. */
void audit_vs_finish(struct audit_vstate *st, int check_head, int check_tail_checkpoints)
{
	char nm[40];

	resolve_pending(st, NULL);
	if (check_tail_checkpoints) {
		for (; st->cpi < st->ncps; st->cpi++) {
			struct audit_vcheckpoint *c = &st->cps[st->cpi];
			if (c->done)
				continue;
			c->done = 1;
			if (st->have_prev)
				audit_vs_break(st, AUDIT_BREAK_CHECKPOINT_MISMATCH, c->seq, NO_SEQ,
					       "chain ends at seq %lld but %s signs seq %lld:"
					       " newest rows deleted",
					       st->last_seq, audit_vs_cp_name(c, nm, sizeof(nm)),
					       c->seq);
			else
				audit_vs_break(st, AUDIT_BREAK_CHECKPOINT_MISMATCH, c->seq, NO_SEQ,
					       "chain has no rows but %s signs seq %lld",
					       audit_vs_cp_name(c, nm, sizeof(nm)), c->seq);
		}
	}
	if (check_head && st->has_head) {
		long long last = st->have_prev ? st->last_seq : st->start_seq - 1;
		if (st->head_seq > last) {
			char gap[64];
			gap_text(gap, sizeof(gap), last + 1, st->head_seq);
			audit_vs_break(
				st, AUDIT_BREAK_MISSING_ROW, last + 1, NO_SEQ,
				"%s missing at the head (audit_chain_heads records seq %lld)", gap,
				st->head_seq);
		} else if (st->head_seq == last && st->have_prev &&
			   strcmp(st->head_checksum, st->prev_c) != 0)
			audit_vs_break(
				st, AUDIT_BREAK_ALTERED_ROW, last, st->prev_id,
				"checksum differs from the head recorded by the sealing trigger");
	}
}
