/*
 * files.c — the env file itself (S2: mode and owner, and the directories
 * on its path; S3: git-ignored and untracked), the shipped monitoring files (M2, M4) and the helper that
 * runs a tool without a shell.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "server/check/check_internal.h"

extern char **environ;

static long long ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int check_run(const char *const argv[], char *out, size_t outlen, int timeout_s)
{
	return check_run_env(argv, (const char *const *)environ, out, outlen, timeout_s);
}

int check_run_env(const char *const argv[], const char *const envp[], char *out, size_t outlen,
		  int timeout_s)
{
	posix_spawn_file_actions_t fa;
	int pipefd[2], status = 0;
	size_t len = 0;
	pid_t pid;

	if (outlen > 0)
		out[0] = '\0';
	if (pipe2(pipefd, O_CLOEXEC) != 0)
		return -1;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	int rc = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv, (char *const *)envp);
	posix_spawn_file_actions_destroy(&fa);
	close(pipefd[1]);
	if (rc != 0) {
		close(pipefd[0]);
		return -1;
	}
	long long deadline = ms_now() + (long long)timeout_s * 1000;
	for (;;) {
		struct pollfd p = {.fd = pipefd[0], .events = POLLIN};
		long long left = deadline - ms_now();
		if (left <= 0 || poll(&p, 1, (int)left) <= 0) {
			if (left > 0 && errno == EINTR)
				continue;
			kill(pid, SIGKILL);
			break;
		}
		char buf[4096];
		ssize_t n = read(pipefd[0], buf, sizeof(buf));
		if (n <= 0)
			break;
		size_t take = (size_t)n;
		if (outlen > 0 && len + take > outlen - 1)
			take = outlen - 1 - len;
		memcpy(out + len, buf, take);
		len += take;
		if (outlen > 0)
			out[len] = '\0';
	}
	close(pipefd[0]);
	if (waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* S2: the env file is a regular file, owner-only (no group or other bits),
 * owned by whoever runs this (the service user) or root. */
static void env_mode(struct check_ctx *ctx, const struct stat *st)
{
	const char *f = ctx->env_file;

	if (!S_ISREG(st->st_mode))
		check_add(&ctx->rep, "S2", CHECK_FAIL, "%s is not a regular file", f);
	else if ((st->st_mode & 077) != 0)
		check_add(&ctx->rep, "S2", CHECK_FAIL,
			  "%s is mode %04o: group or others may read it (chmod 600 %s)", f,
			  (unsigned)(st->st_mode & 07777), f);
	else if (st->st_uid != geteuid() && st->st_uid != 0)
		check_add(&ctx->rep, "S2", CHECK_FAIL,
			  "%s is owned by uid %u, neither this user (%u) nor root", f,
			  (unsigned)st->st_uid, (unsigned)geteuid());
	else
		check_add(&ctx->rep, "S2", CHECK_PASS, "%s is mode %04o, owned by uid %u", f,
			  (unsigned)(st->st_mode & 07777), (unsigned)st->st_uid);
}

/* S3: git ignores the env file and does not track it. The work tree is
 * --repo, else the one the file lives in; a file in no work tree passes. */
static void env_git(struct check_ctx *ctx)
{
	char dir[PATH_MAX], real[PATH_MAX], top[PATH_MAX + 1];
	const char *f = ctx->env_file;

	if (realpath(f, real) == NULL) {
		check_add(&ctx->rep, "S3", CHECK_FAIL, "%s: %s", f, strerror(errno));
		return;
	}
	snprintf(dir, sizeof(dir), "%s", real);
	const char *where = ctx->repo != NULL ? ctx->repo : dirname(dir);
	const char *toplevel[] = {"git", "-C", where, "rev-parse", "--show-toplevel", NULL};
	int rc = check_run(toplevel, top, sizeof(top), 10);
	if (rc != 0) {
		check_add(&ctx->rep, "S3", rc < 0 ? CHECK_MANUAL : CHECK_PASS,
			  rc < 0 ? "git could not be run: check by hand that %s is not committed"
				 : "%s is in no git work tree",
			  f);
		return;
	}
	top[strcspn(top, "\n")] = '\0';
	size_t n = strlen(top);
	if (strncmp(real, top, n) != 0 || real[n] != '/') {
		check_add(&ctx->rep, "S3", CHECK_PASS, "%s is outside the work tree %s", f, top);
		return;
	}
	const char *tracked[] = {"git", "-C", top, "ls-files", "--error-unmatch", "--", real, NULL};
	const char *ignored[] = {"git", "-C", top, "check-ignore", "-q", "--", real, NULL};
	char sink[256];
	if (check_run(tracked, sink, sizeof(sink), 10) == 0)
		check_add(&ctx->rep, "S3", CHECK_FAIL,
			  "%s is tracked by git in %s: remove it from the repository (git rm "
			  "--cached) and rotate every secret in it",
			  f, top);
	else if (check_run(ignored, sink, sizeof(sink), 10) != 0)
		check_add(&ctx->rep, "S3", CHECK_FAIL, "%s is not git-ignored in %s (.gitignore)",
			  f, top);
	else
		check_add(&ctx->rep, "S3", CHECK_PASS, "%s is git-ignored and untracked in %s", f,
			  top);
}

/* S2's path part: every directory from the env file's up to "/" is
 * writable by its owner only (or has the sticky bit, like /tmp) and is
 * owned by root or this user; else anyone who may write it can rename the
 * file away and put their own in its place. Returns 1 (a FAIL row added)
 * on a finding. */
static int env_dirs(struct check_ctx *ctx)
{
	char dir[PATH_MAX], real[PATH_MAX];
	struct stat st;

	snprintf(dir, sizeof(dir), "%s", ctx->env_file);
	if (realpath(dirname(dir), real) == NULL) {
		check_add(&ctx->rep, "S2", CHECK_FAIL, "%s: its directory: %s", ctx->env_file,
			  strerror(errno));
		return 1;
	}
	for (;;) {
		if (stat(real, &st) != 0) {
			check_add(&ctx->rep, "S2", CHECK_FAIL, "%s: %s", real, strerror(errno));
			return 1;
		}
		if ((st.st_mode & 022) != 0 && (st.st_mode & S_ISVTX) == 0) {
			check_add(
				&ctx->rep, "S2", CHECK_FAIL,
				"%s (on the path of %s) is mode %04o: group or others may replace "
				"the env file",
				real, ctx->env_file, (unsigned)(st.st_mode & 07777));
			return 1;
		}
		if (st.st_uid != 0 && st.st_uid != geteuid()) {
			check_add(
				&ctx->rep, "S2", CHECK_FAIL,
				"%s (on the path of %s) is owned by uid %u, neither this user nor "
				"root",
				real, ctx->env_file, (unsigned)st.st_uid);
			return 1;
		}
		if (!strcmp(real, "/"))
			return 0;
		char *slash = strrchr(real, '/');
		slash[slash == real] = '\0';
	}
}

int check_env_file(struct check_ctx *ctx)
{
	struct stat st;

	if (ctx->env_file == NULL)
		return 0;
	if (lstat(ctx->env_file, &st) != 0) {
		check_add(&ctx->rep, "S2", CHECK_FAIL, "%s: %s", ctx->env_file, strerror(errno));
		return 0;
	}
	if (S_ISLNK(st.st_mode)) {
		check_add(&ctx->rep, "S2", CHECK_FAIL, "%s is a symbolic link", ctx->env_file);
		return 0;
	}
	if (env_dirs(ctx) == 0)
		env_mode(ctx, &st);
	env_git(ctx);
	return 0;
}

/* Is REPO/REL a regular file? */
static int shipped(const char *repo, const char *rel)
{
	char path[PATH_MAX];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", repo, rel);
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int check_repo_files(struct check_ctx *ctx)
{
	if (ctx->repo == NULL)
		return 0;
	if (shipped(ctx->repo, "deploy/prometheus/alerts.yml"))
		check_add(&ctx->rep, "M2", CHECK_PASS,
			  "deploy/prometheus/alerts.yml is there (its tests run promtool check "
			  "rules and promtool test rules); load it into Prometheus");
	else
		check_add(&ctx->rep, "M2", CHECK_FAIL, "deploy/prometheus/alerts.yml is missing");
	if (shipped(ctx->repo, "deploy/promtail/promtail.yml"))
		check_add(&ctx->rep, "M4", CHECK_PASS,
			  "deploy/promtail/promtail.yml ships the JSON logs to Loki");
	else
		check_add(&ctx->rep, "M4", CHECK_FAIL, "deploy/promtail/promtail.yml is missing");
	return 0;
}
