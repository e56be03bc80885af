/*
 * audit_witness.h — the off-host witness of the audit chains (checklist
 * L4, M4). Every checkpoint the server signs is also written as a JSON log
 * line (AUDIT_CHECKPOINT_LOG_MSG, audit_checkpoint.h) that log shipping
 * carries off the host. `breeze-server audit verify --witness FILE` reads
 * those lines back and compares the database with them, so a superuser who
 * rewrote rows, re-sealed the chain and deleted or replaced the stored
 * checkpoints is still caught: the copies in the log say what the heads
 * were.
 */
#ifndef BZ_AUDIT_WITNESS_H
#define BZ_AUDIT_WITNESS_H

#include <stddef.h>
#include <stdio.h>

struct audit_witness_cp {
	char chain_id[37]; /* lower-case UUID */
	long long seq, created_at;
	char checksum[65], pub[65], sig[129];
	long long line; /* line of the log file, from 1 */
};

struct audit_witness {
	struct audit_witness_cp *cps; /* malloc'd, N entries */
	size_t n, cap;
	size_t n_bad; /* audit.checkpoint lines with missing or malformed fields */
};

/*
 * Reads the checkpoint lines of a log file F into W (zeroed first): every
 * line whose JSON object — from the line's first '{', so prefixes such as
 * a container runtime's timestamp are skipped — has "msg" equal to
 * "audit.checkpoint". Other lines, JSON or not, are ignored; a checkpoint
 * line with a missing or malformed field is counted in W->n_bad. Lines
 * longer than 64 KiB are ignored. Signatures are checked later, by
 * verification, against the trusted keys. Returns 0, BZ_ERR_IO or
 * BZ_ERR_NOMEM; free W with audit_witness_free() in every case.
 */
int audit_witness_read(FILE *f, struct audit_witness *w);

void audit_witness_free(struct audit_witness *w);

#endif
