/* Unit tests for src/agent/files.c, the agent's refusal of a config directory
 * others could have changed, and for the same rules in the readers of
 * src/agent/config.c (checklist G3). */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pwd.h>
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
#include "agent/files.h"

#define NOBODY 65534

struct fixture {
	char root[64]; /* removed by teardown */
	char dir[96];  /* ROOT/etc-breeze: the config directory */
};

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void write_file(const char *path, mode_t mode, const char *content)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static void in_dir(const struct fixture *f, const char *name, char *buf, size_t len)
{
	assert_int_equal(agent_config_path(f->dir, name, buf, len), 0);
}

/* A good enrolled layout: DIR 0750, agent.yaml 0640, secrets.yaml 0600,
 * state.yaml 0640. */
static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char p[256];

	if (f == NULL)
		return -1;
	snprintf(f->root, sizeof(f->root), "/tmp/bz-agent-files-XXXXXX");
	if (mkdtemp(f->root) == NULL) {
		free(f);
		return -1;
	}
	snprintf(f->dir, sizeof(f->dir), "%s/etc-breeze", f->root);
	if (mkdir(f->dir, 0700) != 0 || chmod(f->dir, 0750) != 0)
		return -1;
	*state = f;
	in_dir(f, AGENT_CONFIG_FILE, p, sizeof(p));
	write_file(p, 0640, "serverUrl: \"https://rmm.example.com\"\nagentId: \"a1\"\n");
	in_dir(f, AGENT_SECRETS_FILE, p, sizeof(p));
	write_file(p, 0600, "authToken: \"brz_secret\"\n");
	in_dir(f, AGENT_STATE_FILE, p, sizeof(p));
	write_file(p, 0640, "lastHeartbeatEpoch: 1767225600\n");
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	nftw(f->root, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static mode_t mode_of(const char *path)
{
	struct stat st;

	assert_int_equal(lstat(path, &st), 0);
	return st.st_mode & 07777;
}

/* Runs the check, expecting exactly one problem ISSUE on PATH. */
static void expect_one(const struct fixture *f, enum agent_files_issue issue, const char *path)
{
	struct agent_files_report r;

	assert_int_equal(agent_files_check(f->dir, &r), -EPERM);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.problems[0].issue, issue);
	assert_string_equal(r.problems[0].path, path);
	assert_false(r.tightened);
}

static void test_good_layout_passes(void **state)
{
	struct fixture *f = *state;
	struct agent_files_report r;
	char p[256];

	assert_int_equal(agent_files_check(f->dir, &r), 0);
	assert_int_equal(r.n, 0);
	assert_false(r.tightened);
	assert_int_equal(mode_of(f->dir), 0750);
	/* Stricter is fine; missing files are the commands' business; a
	 * world-readable agent.yaml holds no secret. */
	assert_int_equal(chmod(f->dir, 0700), 0);
	in_dir(f, AGENT_CONFIG_FILE, p, sizeof(p));
	assert_int_equal(chmod(p, 0644), 0);
	in_dir(f, AGENT_STATE_FILE, p, sizeof(p));
	assert_int_equal(unlink(p), 0);
	in_dir(f, AGENT_SECRETS_FILE, p, sizeof(p));
	assert_int_equal(chmod(p, 0400), 0);
	assert_int_equal(agent_files_check(f->dir, &r), 0);
	assert_false(r.tightened);
}

static void test_missing_and_not_a_directory(void **state)
{
	struct fixture *f = *state;
	struct agent_files_report r;
	char p[256];

	snprintf(p, sizeof(p), "%s/nope", f->root);
	assert_int_equal(agent_files_check(p, &r), -ENOENT);
	assert_int_equal(r.n, 0);
	snprintf(p, sizeof(p), "%s/plain", f->root);
	write_file(p, 0600, "x");
	assert_int_equal(agent_files_check(p, &r), -EPERM);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.problems[0].issue, AGENT_FILES_NOT_DIR);
}

/* Group or others may write to the directory: refused, never repaired. */
static void test_writable_directory_is_refused(void **state)
{
	static const mode_t modes[] = {0770, 0777, 0720, 0702, 0752, 01777};
	struct fixture *f = *state;

	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		assert_int_equal(chmod(f->dir, modes[i]), 0);
		expect_one(f, AGENT_FILES_WRITABLE, f->dir);
		assert_int_equal(mode_of(f->dir), modes[i]);
	}
}

/* Others may only read or search the directory the agent owns: tightened. */
static void test_own_loose_directory_is_tightened(void **state)
{
	static const struct {
		mode_t from, to;
	} cases[] = {{0755, 0750}, {0751, 0750}, {0705, 0700}, {0754, 0750}, {02755, 02750}};
	struct fixture *f = *state;
	struct agent_files_report r;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(chmod(f->dir, cases[i].from), 0);
		assert_int_equal(agent_files_check(f->dir, &r), 0);
		assert_true(r.tightened);
		assert_int_equal(r.old_mode, cases[i].from);
		assert_int_equal(r.new_mode, cases[i].to);
		assert_int_equal(mode_of(f->dir), cases[i].to);
		assert_int_equal(agent_files_check(f->dir, &r), 0);
		assert_false(r.tightened);
	}
}

static void test_loose_files_are_refused(void **state)
{
	static const struct {
		const char *name;
		mode_t mode;
		enum agent_files_issue issue;
	} cases[] = {
		{AGENT_CONFIG_FILE, 0660, AGENT_FILES_WRITABLE},
		{AGENT_CONFIG_FILE, 0666, AGENT_FILES_WRITABLE},
		{AGENT_CONFIG_FILE, 0602, AGENT_FILES_WRITABLE},
		{AGENT_STATE_FILE, 0664, AGENT_FILES_WRITABLE},
		{AGENT_SECRETS_FILE, 0640, AGENT_FILES_SECRETS_OPEN},
		{AGENT_SECRETS_FILE, 0604, AGENT_FILES_SECRETS_OPEN},
		{AGENT_SECRETS_FILE, 0610, AGENT_FILES_SECRETS_OPEN},
		{AGENT_SECRETS_FILE, 0666, AGENT_FILES_SECRETS_OPEN},
	};
	struct fixture *f = *state;
	char p[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		in_dir(f, cases[i].name, p, sizeof(p));
		mode_t good = mode_of(p);
		assert_int_equal(chmod(p, cases[i].mode), 0);
		expect_one(f, cases[i].issue, p);
		assert_int_equal(chmod(p, good), 0);
	}
}

/* A symlink is refused even when it points at a perfect file. */
static void test_symlinks_and_special_files_are_refused(void **state)
{
	static const char *names[] = {AGENT_CONFIG_FILE, AGENT_SECRETS_FILE, AGENT_STATE_FILE};
	struct fixture *f = *state;
	char p[256], target[256];

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		in_dir(f, names[i], p, sizeof(p));
		snprintf(target, sizeof(target), "%s/real-%s", f->root, names[i]);
		assert_int_equal(rename(p, target), 0);
		assert_int_equal(symlink(target, p), 0);
		expect_one(f, AGENT_FILES_SYMLINK, p);
		assert_int_equal(unlink(p), 0);
		assert_int_equal(mkfifo(p, 0600), 0);
		expect_one(f, AGENT_FILES_NOT_REGULAR, p);
		assert_int_equal(unlink(p), 0);
		assert_int_equal(rename(target, p), 0);
	}
}

static void test_other_owner_is_refused(void **state)
{
	static const char *names[] = {AGENT_CONFIG_FILE, AGENT_SECRETS_FILE, AGENT_STATE_FILE};
	struct fixture *f = *state;
	struct agent_files_report r;
	char p[256];

	if (geteuid() != 0)
		skip(); /* only root can give a file away */
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		in_dir(f, names[i], p, sizeof(p));
		assert_int_equal(chown(p, NOBODY, NOBODY), 0);
		expect_one(f, AGENT_FILES_OWNER, p);
		assert_int_equal(chown(p, 0, 0), 0);
	}
	/* Another user's directory is never tightened, and a root-owned one is
	 * refused to a non-root agent in the same way. */
	assert_int_equal(chown(f->dir, NOBODY, NOBODY), 0);
	assert_int_equal(chmod(f->dir, 0755), 0);
	expect_one(f, AGENT_FILES_OWNER, f->dir);
	assert_int_equal(mode_of(f->dir), 0755);
	assert_int_equal(agent_files_check(f->dir, &r), -EPERM);
	assert_int_equal(r.problems[0].uid, NOBODY);
}

/* Everything wrong is reported at once, so one round of fixes is enough. */
static void test_every_problem_is_reported(void **state)
{
	struct fixture *f = *state;
	struct agent_files_report r;
	char p[256];

	assert_int_equal(chmod(f->dir, 0777), 0);
	in_dir(f, AGENT_CONFIG_FILE, p, sizeof(p));
	assert_int_equal(chmod(p, 0666), 0);
	in_dir(f, AGENT_SECRETS_FILE, p, sizeof(p));
	assert_int_equal(chmod(p, 0644), 0);
	in_dir(f, AGENT_STATE_FILE, p, sizeof(p));
	assert_int_equal(unlink(p), 0);
	assert_int_equal(symlink("/etc/hostname", p), 0);
	assert_int_equal(agent_files_check(f->dir, &r), -EPERM);
	assert_int_equal(r.n, 4);
	assert_int_equal(r.problems[0].issue, AGENT_FILES_WRITABLE);
	assert_null(r.problems[0].name);
	assert_int_equal(r.problems[1].issue, AGENT_FILES_WRITABLE);
	assert_int_equal(r.problems[2].issue, AGENT_FILES_SECRETS_OPEN);
	assert_int_equal(r.problems[3].issue, AGENT_FILES_SYMLINK);
}

static void expect_text(const struct agent_files_problem *p, const char *what, const char *fix)
{
	char buf[8192];

	agent_files_describe(p, buf, sizeof(buf));
	if (strstr(buf, what) == NULL)
		fail_msg("description \"%s\" lacks \"%s\"", buf, what);
	agent_files_fix(p, buf, sizeof(buf));
	if (strstr(buf, fix) == NULL)
		fail_msg("fix \"%s\" lacks \"%s\"", buf, fix);
}

/* The message says what is wrong and gives the command that fixes it, with
 * the path quoted for the shell. */
static void test_messages_and_fixes(void **state)
{
	struct agent_files_problem p = {0};
	const struct passwd *pw = getpwuid(geteuid());
	char chown_cmd[256];

	(void)state;
	snprintf(p.path, sizeof(p.path), "/etc/breeze");
	p.issue = AGENT_FILES_WRITABLE;
	p.mode = 0770;
	expect_text(&p, "/etc/breeze is writable by group or others (mode 0770)",
		    "chmod 0750 /etc/breeze");
	p.issue = AGENT_FILES_OWNER;
	p.uid = NOBODY;
	snprintf(chown_cmd, sizeof(chown_cmd), "chown %s: /etc/breeze", pw ? pw->pw_name : "?");
	expect_text(&p, "is owned by ", chown_cmd);
	expect_text(&p, "uid 65534", "run breeze-agent as the user who owns it");

	snprintf(p.path, sizeof(p.path), "/etc/breeze/agent.yaml");
	p.name = AGENT_CONFIG_FILE;
	p.issue = AGENT_FILES_WRITABLE;
	p.mode = 0664;
	expect_text(&p, "(mode 0664)", "chmod 0640 /etc/breeze/agent.yaml");
	p.issue = AGENT_FILES_SYMLINK;
	expect_text(&p, "/etc/breeze/agent.yaml is a symbolic link",
		    "mv -f -- \"$(readlink -f /etc/breeze/agent.yaml)\" /etc/breeze/agent.yaml");
	p.issue = AGENT_FILES_NOT_REGULAR;
	expect_text(&p, "is not a regular file", "rm -r -- /etc/breeze/agent.yaml, then enrol");

	snprintf(p.path, sizeof(p.path), "/etc/breeze/secrets.yaml");
	p.name = AGENT_SECRETS_FILE;
	p.issue = AGENT_FILES_SECRETS_OPEN;
	p.mode = 0644;
	expect_text(&p, "accessible by group or others (mode 0644)",
		    "chmod 0600 /etc/breeze/secrets.yaml");
	p.issue = AGENT_FILES_ERROR;
	p.err = EACCES;
	expect_text(&p, "cannot be inspected: Permission denied", "ls -ld");

	/* Spaces and quotes in a path are quoted for sh. */
	snprintf(p.path, sizeof(p.path), "/srv/my agent's dir");
	p.name = NULL;
	p.issue = AGENT_FILES_WRITABLE;
	expect_text(&p, "/srv/my agent's dir is writable", "chmod 0750 '/srv/my agent'\\''s dir'");

	/* A buffer too small is cut, never overrun. */
	char tiny[8];
	agent_files_fix(&p, tiny, sizeof(tiny));
	assert_int_equal(strlen(tiny), sizeof(tiny) - 1);
}

/* The readers apply the file rules on the descriptor they read from. */
static void test_readers_enforce_the_rules(void **state)
{
	struct fixture *f = *state;
	struct agent_config cfg;
	char p[256], target[256];
	int64_t t;

	in_dir(f, AGENT_CONFIG_FILE, p, sizeof(p));
	assert_int_equal(agent_config_load(f->dir, &cfg), 0);
	agent_config_free(&cfg);
	assert_int_equal(chmod(p, 0660), 0);
	assert_int_equal(agent_config_load(f->dir, &cfg), -EPERM);
	assert_int_equal(chmod(p, 0640), 0);
	snprintf(target, sizeof(target), "%s/real-agent.yaml", f->root);
	assert_int_equal(rename(p, target), 0);
	assert_int_equal(symlink(target, p), 0);
	assert_int_equal(agent_config_load(f->dir, &cfg), -EPERM);
	assert_int_equal(unlink(p), 0);
	/* A fifo in the file's place is not waited on. */
	assert_int_equal(mkfifo(p, 0640), 0);
	assert_int_equal(agent_config_load(f->dir, &cfg), -EBADMSG);

	in_dir(f, AGENT_STATE_FILE, p, sizeof(p));
	assert_int_equal(agent_config_load_last_heartbeat(f->dir, &t), 0);
	assert_int_equal(chmod(p, 0646), 0);
	assert_int_equal(agent_config_load_last_heartbeat(f->dir, &t), -EPERM);
	assert_int_equal(chmod(p, 0640), 0);
	if (geteuid() == 0) {
		assert_int_equal(chown(p, NOBODY, NOBODY), 0);
		assert_int_equal(agent_config_load_last_heartbeat(f->dir, &t), -EPERM);
		in_dir(f, AGENT_SECRETS_FILE, p, sizeof(p));
		char *tok = NULL;
		assert_int_equal(chown(p, NOBODY, NOBODY), 0);
		assert_int_equal(agent_config_load_token(f->dir, &tok), -EPERM);
		assert_null(tok);
	}
}

/* Writing the token replaces a symlink in secrets.yaml's place; the file it
 * pointed to is never written. */
static void test_token_write_never_follows_a_symlink(void **state)
{
	struct fixture *f = *state;
	char p[256], target[256], buf[64];
	char *tok = NULL;
	struct stat st;

	in_dir(f, AGENT_SECRETS_FILE, p, sizeof(p));
	snprintf(target, sizeof(target), "%s/victim", f->root);
	write_file(target, 0644, "untouched\n");
	assert_int_equal(unlink(p), 0);
	assert_int_equal(symlink(target, p), 0);
	assert_int_equal(agent_config_save_token(f->dir, "brz_new"), 0);
	assert_int_equal(lstat(p, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(agent_config_load_token(f->dir, &tok), 0);
	assert_string_equal(tok, "brz_new");
	agent_config_free_token(tok);
	FILE *fp = fopen(target, "r");
	assert_non_null(fp);
	size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	assert_string_equal(buf, "untouched\n");
	assert_int_equal(mode_of(target), 0644);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_good_layout_passes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_and_not_a_directory, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writable_directory_is_refused, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_own_loose_directory_is_tightened, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_loose_files_are_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_symlinks_and_special_files_are_refused, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_other_owner_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_every_problem_is_reported, setup, teardown),
		cmocka_unit_test(test_messages_and_fixes),
		cmocka_unit_test_setup_teardown(test_readers_enforce_the_rules, setup, teardown),
		cmocka_unit_test_setup_teardown(test_token_write_never_follows_a_symlink, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
