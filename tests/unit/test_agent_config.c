/* Unit tests for src/agent/config.c and src/agent/yamlmap.c: the secrets
 * permission check, atomic writes, and YAML round trips (checklist G3). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/config.h"
#include "agent/yamlmap.h"

#define DATA(name) BZ_TEST_DATA_DIR "/agent/" name

struct fixture {
	char dir[64];
};

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/bz-agent-test-XXXXXX");
	if (mkdtemp(f->dir) == NULL) {
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	nftw(f->dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static void path_in(const struct fixture *f, const char *name, char *buf, size_t len)
{
	assert_int_equal(agent_config_path(f->dir, name, buf, len), 0);
}

static void write_file(const char *path, mode_t mode, const char *content)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static mode_t file_mode(const char *path)
{
	struct stat st;

	assert_int_equal(lstat(path, &st), 0);
	return st.st_mode & 07777;
}

/* Number of directory entries other than . and .. */
static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

/* --- permission check ------------------------------------------------- */

static const struct {
	mode_t mode;
	int want;
} perm_cases[] = {
	{0600, AGENT_PERM_OK},	     {0400, AGENT_PERM_OK},	  {0700, AGENT_PERM_OK},
	{0200, AGENT_PERM_OK},	     {0640, AGENT_PERM_TOO_OPEN}, {0644, AGENT_PERM_TOO_OPEN},
	{0604, AGENT_PERM_TOO_OPEN}, {0660, AGENT_PERM_TOO_OPEN}, {0606, AGENT_PERM_TOO_OPEN},
	{0620, AGENT_PERM_TOO_OPEN}, {0602, AGENT_PERM_TOO_OPEN}, {0610, AGENT_PERM_TOO_OPEN},
	{0601, AGENT_PERM_TOO_OPEN}, {0777, AGENT_PERM_TOO_OPEN},
};

static void test_perm_modes(void **state)
{
	struct fixture *f = *state;
	char path[256];

	path_in(f, AGENT_SECRETS_FILE, path, sizeof(path));
	for (size_t i = 0; i < sizeof(perm_cases) / sizeof(perm_cases[0]); i++) {
		write_file(path, perm_cases[i].mode, "authToken: \"x\"\n");
		assert_int_equal(file_mode(path), perm_cases[i].mode);
		if (agent_config_check_secrets(path) != perm_cases[i].want)
			fail_msg("mode %04o: got %d, want %d", (unsigned)perm_cases[i].mode,
				 agent_config_check_secrets(path), perm_cases[i].want);
		unlink(path);
	}
}

static void test_perm_missing_and_not_regular(void **state)
{
	struct fixture *f = *state;
	char path[256], target[256];

	path_in(f, AGENT_SECRETS_FILE, path, sizeof(path));
	assert_int_equal(agent_config_check_secrets(path), AGENT_PERM_MISSING);

	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(agent_config_check_secrets(path), AGENT_PERM_NOT_REGULAR);
	rmdir(path);

	/* A symlink to a perfectly good 0600 file is still refused. */
	path_in(f, "real-secrets", target, sizeof(target));
	write_file(target, 0600, "authToken: \"x\"\n");
	assert_int_equal(symlink(target, path), 0);
	assert_int_equal(agent_config_check_secrets(path), AGENT_PERM_NOT_REGULAR);
	unlink(path);

	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_equal(agent_config_check_secrets(path), AGENT_PERM_NOT_REGULAR);
	unlink(path);
}

static void test_perm_wrong_owner(void **state)
{
	struct fixture *f = *state;
	char path[256];

	if (geteuid() != 0)
		skip(); /* only root can give a file away */
	path_in(f, AGENT_SECRETS_FILE, path, sizeof(path));
	write_file(path, 0600, "authToken: \"x\"\n");
	assert_int_equal(chown(path, 65534, 65534), 0);
	assert_int_equal(agent_config_check_secrets(path), AGENT_PERM_BAD_OWNER);
}

/* --- atomic write ---------------------------------------------------------- */

static void test_atomic_write_mode_and_content(void **state)
{
	struct fixture *f = *state;
	static const mode_t umasks[] = {0, 022, 077, 0777};
	static const mode_t modes[] = {0600, 0640};
	char path[256], buf[64];

	path_in(f, "file.yaml", path, sizeof(path));
	for (size_t u = 0; u < sizeof(umasks) / sizeof(umasks[0]); u++) {
		for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
			mode_t old = umask(umasks[u]);
			int rc = agent_config_write_atomic(path, modes[m], "hello\n", 6);
			umask(old);
			assert_int_equal(rc, 0);
			/* Exactly the requested mode, whatever the umask. */
			assert_int_equal(file_mode(path), modes[m]);
			int fd = open(path, O_RDONLY);
			assert_true(fd >= 0);
			assert_int_equal(read(fd, buf, sizeof(buf)), 6);
			close(fd);
			assert_memory_equal(buf, "hello\n", 6);
		}
	}
	/* Replacing keeps one file and leaves no temp file behind. */
	assert_int_equal(agent_config_write_atomic(path, 0600, "second", 6), 0);
	assert_int_equal(count_entries(f->dir), 1);
}

static void test_atomic_write_failure_leaves_nothing(void **state)
{
	struct fixture *f = *state;
	char path[256];

	path_in(f, "missing-dir/file.yaml", path, sizeof(path));
	assert_int_equal(agent_config_write_atomic(path, 0600, "x", 1), -ENOENT);
	assert_int_equal(count_entries(f->dir), 0);
	assert_int_equal(agent_config_write_atomic("", 0600, "x", 1), -EINVAL);
}

/* Each step of the atomic write fails cleanly: a path naming a directory
 * is refused before anything is created, an over-long one with
 * -ENAMETOOLONG, and a rename that fails (the target is a directory) after
 * the temp file was written leaves the temp file removed. */
static void test_atomic_write_step_failures(void **state)
{
	struct fixture *f = *state;
	char path[256], longpath[5000];

	path_in(f, "sub/", path, sizeof(path));
	assert_int_equal(agent_config_write_atomic(path, 0600, "x", 1), -EINVAL);
	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	longpath[sizeof(longpath) - 10] = '/';
	assert_int_equal(agent_config_write_atomic(longpath, 0600, "x", 1), -ENAMETOOLONG);
	assert_int_equal(count_entries(f->dir), 0);

	path_in(f, "target", path, sizeof(path));
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(agent_config_write_atomic(path, 0600, "x", 1), -EISDIR);
	assert_int_equal(count_entries(f->dir), 1);
}

static void test_ensure_dir(void **state)
{
	struct fixture *f = *state;
	char path[256];
	mode_t old;

	path_in(f, "etc-breeze", path, sizeof(path));
	old = umask(077);
	assert_int_equal(agent_config_ensure_dir(path), 0);
	umask(old);
	assert_int_equal(file_mode(path), 0750);
	assert_int_equal(agent_config_ensure_dir(path), 0); /* exists: fine */
	path_in(f, "plain-file", path, sizeof(path));
	write_file(path, 0600, "x");
	assert_int_equal(agent_config_ensure_dir(path), -ENOTDIR);
}

/* --- YAML round trips ------------------------------------------------------ */

static const char *nasty_values[] = {
	"",
	"plain",
	"with \"double\" quotes",
	"with 'single' quotes",
	"key: value",
	"a:b",
	"line one\nline two\n",
	"\n",
	"crlf\r\nend",
	"tab\there",
	"  leading and trailing spaces  ",
	"# not a comment",
	"- not a list",
	"? not a key",
	"{not: flow}",
	"[not, flow]",
	"&anchor",
	"*alias",
	"!tag",
	"%directive",
	"@at `back` |pipe >fold",
	"---",
	"...",
	"true",
	"null",
	"~",
	"0123",
	"1e3",
	"back\\slash\\",
	"caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x94\x91",
	"\x01\x07\x1b[31mcontrol\x7f",
	"brz_Zm9vYmFy+/=_-.~",
};

static void test_yaml_roundtrip_nasty_strings(void **state)
{
	struct agent_yaml_map m = {0}, back = {0};
	char *doc = NULL, key[16];
	size_t len = 0;
	size_t n = sizeof(nasty_values) / sizeof(nasty_values[0]);

	(void)state;
	for (size_t i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "k%zu", i);
		assert_int_equal(agent_yaml_set(&m, key, nasty_values[i]), 0);
	}
	assert_int_equal(agent_yaml_set_long(&m, "interval", 60), 0);
	assert_int_equal(agent_yaml_emit(&m, &doc, &len), 0);
	assert_int_equal(agent_yaml_parse(doc, len, &back), 0);
	assert_int_equal(back.len, n + 1);
	for (size_t i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "k%zu", i);
		const char *v = agent_yaml_get(&back, key);
		if (v == NULL || strcmp(v, nasty_values[i]) != 0)
			fail_msg("value %zu did not round-trip; document:\n%s", i, doc);
	}
	assert_string_equal(agent_yaml_get(&back, "interval"), "60");
	free(doc);
	agent_yaml_free(&m);
	agent_yaml_free(&back);
}

static void test_yaml_long_value_and_invalid_utf8(void **state)
{
	struct agent_yaml_map m = {0}, back = {0};
	char big[5000], *doc = NULL;
	size_t len;

	(void)state;
	for (size_t i = 0; i < sizeof(big) - 1; i++)
		big[i] = (char)('a' + i % 26);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(agent_yaml_set(&m, "authToken", big), 0);
	assert_int_equal(agent_yaml_emit(&m, &doc, &len), 0);
	/* No line folding: the token stays on one line. */
	assert_non_null(strchr(doc, '\n'));
	assert_ptr_equal(strchr(doc, '\n'), doc + len - 1);
	assert_int_equal(agent_yaml_parse(doc, len, &back), 0);
	assert_string_equal(agent_yaml_get(&back, "authToken"), big);
	free(doc);
	agent_yaml_free(&back);
	agent_yaml_free(&m);

	assert_int_equal(agent_yaml_set(&m, "bad", "\xff\xfe"), 0);
	assert_int_equal(agent_yaml_emit(&m, &doc, &len), -EINVAL);
	assert_null(doc);
	agent_yaml_free(&m);
}

static int parse_file(const char *path, struct agent_yaml_map *m)
{
	char buf[4096];
	FILE *fp = fopen(path, "r");
	size_t n;

	assert_non_null(fp);
	n = fread(buf, 1, sizeof(buf), fp);
	fclose(fp);
	return agent_yaml_parse(buf, n, m);
}

static void test_yaml_handwritten(void **state)
{
	struct agent_yaml_map m = {0};

	(void)state;
	assert_int_equal(parse_file(DATA("yaml-handwritten.yaml"), &m), 0);
	assert_string_equal(agent_yaml_get(&m, "serverUrl"), "https://breeze.example.com:8443/rmm");
	assert_string_equal(agent_yaml_get(&m, "agentId"), "a1b2-c3");
	assert_string_equal(agent_yaml_get(&m, "orgId"), "org with \"quotes\" and: colon");
	assert_string_equal(agent_yaml_get(&m, "siteId"), "line one\nline two\n");
	assert_string_equal(agent_yaml_get(&m, "heartbeatIntervalSeconds"), "120");
	assert_null(agent_yaml_get(&m, "emptyValue"));
	agent_yaml_free(&m);
}

/* A null value leaves no key behind but still counts for duplicates, and a
 * bare "---" is an empty document. */
static void test_yaml_null_values(void **state)
{
	static const char dup[] = "a:\na: x\n", nulls[] = "a: ~\nb: x\nc: null\n";
	static const char bare[] = "---\n";
	struct agent_yaml_map m = {0};

	(void)state;
	assert_int_equal(agent_yaml_parse(dup, sizeof(dup) - 1, &m), -EBADMSG);
	assert_int_equal(m.len, 0);
	assert_int_equal(agent_yaml_parse(nulls, sizeof(nulls) - 1, &m), 0);
	assert_int_equal(m.len, 1);
	assert_string_equal(agent_yaml_get(&m, "b"), "x");
	assert_null(agent_yaml_get(&m, "a"));
	agent_yaml_free(&m);
	assert_int_equal(agent_yaml_parse(bare, sizeof(bare) - 1, &m), 0);
	assert_int_equal(m.len, 0);
}

static const struct {
	const char *file;
	int want;
} yaml_file_cases[] = {
	{"yaml-empty.yaml", 0},
	{"yaml-nested.yaml", -EBADMSG},
	{"yaml-duplicate.yaml", -EBADMSG},
	{"yaml-alias.yaml", -EBADMSG},
	{"yaml-two-docs.yaml", -EBADMSG},
	{"yaml-sequence.yaml", -EBADMSG},
	{"yaml-syntax.yaml", -EBADMSG},
	{"yaml-nul.yaml", -EBADMSG},
};

static void test_yaml_rejects(void **state)
{
	char path[512];

	(void)state;
	for (size_t i = 0; i < sizeof(yaml_file_cases) / sizeof(yaml_file_cases[0]); i++) {
		struct agent_yaml_map m = {0};

		snprintf(path, sizeof(path), "%s/agent/%s", BZ_TEST_DATA_DIR,
			 yaml_file_cases[i].file);
		int rc = parse_file(path, &m);
		if (rc != yaml_file_cases[i].want)
			fail_msg("%s: got %d, want %d", yaml_file_cases[i].file, rc,
				 yaml_file_cases[i].want);
		assert_int_equal(m.len, 0);
		agent_yaml_free(&m);
	}
}

/* --- agent.yaml and secrets.yaml ----------------------------------------- */

static void test_config_save_load(void **state)
{
	struct fixture *f = *state;
	struct agent_config in = {0}, out;
	char path[256];

	in.server_url = "https://rmm.example.com/base";
	in.agent_id = "0b9c6f1e-5d1a-4c1e-9a53-7f1f7e8d9c01";
	in.org_id = "org: \"x\"\nnewline";
	in.site_id = "site #1";
	in.hostname = "host: 'a'";
	in.heartbeat_interval_s = 90;
	assert_int_equal(agent_config_save(f->dir, &in), 0);
	path_in(f, AGENT_CONFIG_FILE, path, sizeof(path));
	assert_int_equal(file_mode(path), AGENT_CONFIG_FILE_MODE);
	assert_int_equal(agent_config_load(f->dir, &out), 0);
	assert_string_equal(out.server_url, in.server_url);
	assert_string_equal(out.agent_id, in.agent_id);
	assert_string_equal(out.org_id, in.org_id);
	assert_string_equal(out.site_id, in.site_id);
	assert_string_equal(out.hostname, in.hostname);
	assert_int_equal(out.heartbeat_interval_s, 90);
	agent_config_free(&out);

	/* hostname is optional (files written before it existed). */
	in.hostname = NULL;
	assert_int_equal(agent_config_save(f->dir, &in), 0);
	assert_int_equal(agent_config_load(f->dir, &out), 0);
	assert_null(out.hostname);
	agent_config_free(&out);

	/* An id that could walk a URL path is refused on load. */
	in.agent_id = "../../admin";
	assert_int_equal(agent_config_save(f->dir, &in), 0);
	assert_int_equal(agent_config_load(f->dir, &out), -EBADMSG);
	assert_null(out.server_url);
}

static void test_config_missing(void **state)
{
	struct fixture *f = *state;
	struct agent_config out;
	char *tok = (char *)"sentinel";

	assert_int_equal(agent_config_load(f->dir, &out), -ENOENT);
	assert_int_equal(agent_config_load_token(f->dir, &tok), -ENOENT);
	assert_null(tok);
}

static void test_last_heartbeat_state(void **state)
{
	struct fixture *f = *state;
	char path[256];
	int64_t t = 42;

	path_in(f, AGENT_STATE_FILE, path, sizeof(path));
	assert_int_equal(agent_config_load_last_heartbeat(f->dir, &t), -ENOENT);
	assert_int_equal(t, 0);
	assert_int_equal(agent_config_save_last_heartbeat(f->dir, 0), -EINVAL);
	assert_int_equal(agent_config_save_last_heartbeat(f->dir, -5), -EINVAL);
	assert_int_equal(access(path, F_OK), -1);

	assert_int_equal(agent_config_save_last_heartbeat(f->dir, 1767225600), 0);
	assert_int_equal(file_mode(path), AGENT_STATE_FILE_MODE);
	assert_int_equal(agent_config_load_last_heartbeat(f->dir, &t), 0);
	assert_int_equal(t, 1767225600);
	/* Human-readable too; replaced, not appended. */
	assert_int_equal(agent_config_save_last_heartbeat(f->dir, 1767225601), 0);
	struct agent_yaml_map m = {0};
	FILE *fp = fopen(path, "r");
	char buf[512];
	size_t n = fread(buf, 1, sizeof(buf), fp);
	fclose(fp);
	assert_int_equal(agent_yaml_parse(buf, n, &m), 0);
	assert_string_equal(agent_yaml_get(&m, "lastHeartbeatAt"), "2026-01-01T00:00:01Z");
	assert_int_equal(m.len, 2);
	agent_yaml_free(&m);
	assert_int_equal(count_entries(f->dir), 1); /* no temp file left */

	static const char *bad[] = {
		"lastHeartbeatAt: \"2026-01-01T00:00:00Z\"\n", /* no epoch */
		"lastHeartbeatEpoch: -1\n",
		"lastHeartbeatEpoch: 0\n",
		"lastHeartbeatEpoch: 12x\n",
		"lastHeartbeatEpoch: \" 12\"\n",
		"lastHeartbeatEpoch: 99999999999999999999999\n",
		"[1, 2]\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_file(path, 0640, bad[i]);
		t = 42;
		if (agent_config_load_last_heartbeat(f->dir, &t) != -EBADMSG)
			fail_msg("accepted state file: %s", bad[i]);
		assert_int_equal(t, 0);
	}

	assert_int_equal(agent_config_remove_state(f->dir), 0);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(agent_config_remove_state(f->dir), 0); /* already gone */
}

static void test_token_save_load(void **state)
{
	struct fixture *f = *state;
	char path[256], target[256];
	char *tok = NULL;
	const char *t = "brz_a\"b:c'd#e\\f";

	assert_int_equal(agent_config_save_token(f->dir, t), 0);
	path_in(f, AGENT_SECRETS_FILE, path, sizeof(path));
	assert_int_equal(file_mode(path), AGENT_SECRETS_FILE_MODE);
	assert_int_equal(agent_config_check_secrets(path), AGENT_PERM_OK);
	assert_int_equal(agent_config_load_token(f->dir, &tok), 0);
	assert_string_equal(tok, t);
	agent_config_free_token(tok);

	/* Tokens that would break the Authorization header are never stored. */
	assert_int_equal(agent_config_save_token(f->dir, "brz_x\r\nX-Evil: 1"), -EINVAL);
	assert_int_equal(agent_config_save_token(f->dir, ""), -EINVAL);

	/* The reader enforces the same rules as the check. */
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(agent_config_load_token(f->dir, &tok), -EPERM);
	assert_null(tok);
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(rename(path, (path_in(f, "elsewhere", target, sizeof(target)), target)),
			 0);
	assert_int_equal(symlink(target, path), 0);
	assert_int_equal(agent_config_load_token(f->dir, &tok), -EPERM);
	assert_null(tok);
}

/* A rotation keeps both tokens in one file until the new one is confirmed. */
static void test_pending_token_save_load(void **state)
{
	struct fixture *f = *state;
	char path[256];
	char *tok = NULL, *pend = NULL;

	assert_int_equal(agent_config_save_tokens(f->dir, "brz_old", "brz_new"), 0);
	path_in(f, AGENT_SECRETS_FILE, path, sizeof(path));
	assert_int_equal(file_mode(path), AGENT_SECRETS_FILE_MODE);
	assert_int_equal(agent_config_load_tokens(f->dir, &tok, &pend), 0);
	assert_string_equal(tok, "brz_old");
	assert_string_equal(pend, "brz_new");
	agent_config_free_token(tok);
	agent_config_free_token(pend);
	/* Readers that know nothing of rotation see the current token. */
	assert_int_equal(agent_config_load_token(f->dir, &tok), 0);
	assert_string_equal(tok, "brz_old");
	agent_config_free_token(tok);

	/* Saving the token alone drops the pending one. */
	assert_int_equal(agent_config_save_token(f->dir, "brz_new"), 0);
	assert_int_equal(agent_config_load_tokens(f->dir, &tok, &pend), 0);
	assert_string_equal(tok, "brz_new");
	assert_null(pend);
	agent_config_free_token(tok);

	assert_int_equal(agent_config_save_tokens(f->dir, "brz_new", "brz_x\r\nX-Evil: 1"),
			 -EINVAL);
	assert_int_equal(agent_config_save_tokens(f->dir, "", "brz_new"), -EINVAL);
	/* A malformed pending token makes the file unreadable, not half-read. */
	FILE *fp = fopen(path, "a");
	assert_non_null(fp);
	fputs("pendingToken: \"\"\n", fp);
	fclose(fp);
	assert_int_equal(agent_config_load_tokens(f->dir, &tok, &pend), -EBADMSG);
	assert_null(tok);
	assert_null(pend);
}

static void test_validators(void **state)
{
	(void)state;
	assert_true(agent_config_valid_id("0b9c6f1e-5d1a-4c1e-9a53-7f1f7e8d9c01"));
	assert_true(agent_config_valid_id("a.b_c-D"));
	assert_false(agent_config_valid_id(""));
	assert_false(agent_config_valid_id(NULL));
	assert_false(agent_config_valid_id(".."));
	assert_false(agent_config_valid_id("a/b"));
	assert_false(agent_config_valid_id("a?b"));
	assert_false(agent_config_valid_id("a%2fb"));
	assert_true(agent_config_valid_token("brz_abc"));
	assert_false(agent_config_valid_token("brz abc"));
	assert_false(agent_config_valid_token("brz\nabc"));
	assert_false(agent_config_valid_token("caf\xc3\xa9"));
	assert_int_equal(agent_config_clamp_interval(0), AGENT_INTERVAL_DEFAULT_S);
	assert_int_equal(agent_config_clamp_interval(-5), AGENT_INTERVAL_DEFAULT_S);
	assert_int_equal(agent_config_clamp_interval(1), AGENT_INTERVAL_MIN_S);
	assert_int_equal(agent_config_clamp_interval(30), 30);
	assert_int_equal(agent_config_clamp_interval(10000000), AGENT_INTERVAL_MAX_S);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_perm_modes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_perm_missing_and_not_regular, setup, teardown),
		cmocka_unit_test_setup_teardown(test_perm_wrong_owner, setup, teardown),
		cmocka_unit_test_setup_teardown(test_atomic_write_mode_and_content, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_atomic_write_failure_leaves_nothing, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_atomic_write_step_failures, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ensure_dir, setup, teardown),
		cmocka_unit_test(test_yaml_roundtrip_nasty_strings),
		cmocka_unit_test(test_yaml_long_value_and_invalid_utf8),
		cmocka_unit_test(test_yaml_handwritten),
		cmocka_unit_test(test_yaml_null_values),
		cmocka_unit_test(test_yaml_rejects),
		cmocka_unit_test_setup_teardown(test_config_save_load, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_missing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_token_save_load, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pending_token_save_load, setup, teardown),
		cmocka_unit_test_setup_teardown(test_last_heartbeat_state, setup, teardown),
		cmocka_unit_test(test_validators),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
