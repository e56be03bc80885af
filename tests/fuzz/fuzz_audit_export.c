/*
 * fuzz_audit_export.c — the offline audit export verifier
 * (audit_verify_file in src/server/audit/verify_file.c): a JSON header line,
 * then one JSON row per line, checked with no database.
 *
 * Each input is verified twice: with no trusted key (signatures are not
 * checked) and with one fixed Ed25519 key trusted, which sends the anchor's
 * and checkpoints' keys and signatures through the signature code. The
 * report must stay consistent with itself either way.
 */
#include "common/err.h"
#include "fuzz.h"
#include "server/audit/audit_chain.h"
#include "server/audit/audit_checkpoint.h"

/* The corpus' checkpoints are signed with this seed (RFC 8032 test 1). */
static const char seed[] = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
static char pub[65];
static const char *keys[1] = {pub};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (audit_public_key_hex(seed, pub) != 0)
		abort();
	return 0;
}

static void verify(const uint8_t *data, size_t size, const struct audit_verify_opts *opts)
{
	static char empty[1];
	struct audit_report rep;
	char err[256];
	/* glibc's fmemopen reads binary data (NULs included) and takes size 0. */
	FILE *f = fmemopen(size > 0 ? (void *)data : empty, size, "r");

	if (f == NULL)
		abort();
	err[0] = '\0';
	int rc = audit_verify_file(f, opts, &rep, err, sizeof(err));
	fclose(f);
	FUZZ_ASSERT(rc == 0 || rc == BZ_ERR_INVALID || rc == BZ_ERR_NOMEM);
	if (rc == BZ_ERR_INVALID)
		FUZZ_ASSERT(strncmp(err, "line ", 5) == 0);
	if (rc == 0) {
		FUZZ_ASSERT(rep.n_kept <= AUDIT_MAX_BREAKS &&
			    (long long)rep.n_kept <= rep.n_breaks);
		FUZZ_ASSERT(rep.ok == (rep.n_breaks == 0));
		FUZZ_ASSERT(memchr(rep.chain_id, '\0', sizeof(rep.chain_id)) != NULL);
		json_t *j = audit_report_json(&rep);
		FUZZ_ASSERT(j != NULL);
		json_decref(j);
	}
	audit_report_free(&rep);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct audit_verify_opts none = {0}, keyed = {0};

	keyed.public_keys = keys;
	keyed.n_public_keys = 1;
	verify(data, size, &none);
	verify(data, size, &keyed);
	return 0;
}
