#include "agent/files.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/config.h"
#include "common/text.h"

static void add(struct agent_files_report *r, enum agent_files_issue issue, const char *path,
		const char *name, const struct stat *st, int err)
{
	struct agent_files_problem *p;

	if (r->n >= AGENT_FILES_MAX_PROBLEMS)
		return;
	p = &r->problems[r->n++];
	p->issue = issue;
	text_copy(p->path, sizeof(p->path), path);
	p->name = name;
	if (st != NULL) {
		p->uid = st->st_uid;
		p->mode = st->st_mode & 07777;
	}
	p->err = err;
}

/* Opens DIR: O_RDONLY so that its mode can be tightened with fchmod, or
 * O_PATH when the agent may not read it, which is enough to say why. Returns
 * the descriptor or -errno. */
static int open_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0 && errno == EACCES)
		fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	return fd >= 0 ? fd : -errno;
}

/* Removes others' bits from DIR (open as FD, described by ST), which the
 * agent owns and nobody else can write: 0755 becomes 0750. */
static void tighten(int fd, const char *dir, const struct stat *st, struct agent_files_report *r)
{
	mode_t old = st->st_mode & 07777, want = old & ~(mode_t)007;

	if (fchmod(fd, want) != 0) {
		add(r, AGENT_FILES_ERROR, dir, NULL, st, errno);
		return;
	}
	r->tightened = 1;
	r->old_mode = old;
	r->new_mode = want;
}

/* Checks DIR itself. Returns an open descriptor on DIR for the checks of its
 * files (also when DIR has a problem, so that every problem is reported at
 * once), or -errno when there is none; -ENOENT with no problem recorded
 * means DIR does not exist. */
static int check_dir(const char *dir, struct agent_files_report *r)
{
	struct stat st;
	int fd = open_dir(dir);

	if (fd == -ENOENT)
		return fd;
	if (fd == -ENOTDIR && stat(dir, &st) == 0 && !S_ISDIR(st.st_mode)) {
		add(r, AGENT_FILES_NOT_DIR, dir, NULL, &st, 0);
		return fd;
	}
	if (fd < 0) {
		add(r, AGENT_FILES_ERROR, dir, NULL, NULL, -fd);
		return fd;
	}
	if (fstat(fd, &st) != 0) {
		add(r, AGENT_FILES_ERROR, dir, NULL, NULL, errno);
		close(fd);
		return -EIO;
	}
	if (st.st_uid != geteuid())
		add(r, AGENT_FILES_OWNER, dir, NULL, &st, 0);
	else if ((st.st_mode & 022) != 0)
		add(r, AGENT_FILES_WRITABLE, dir, NULL, &st, 0);
	else if ((st.st_mode & 007) != 0)
		tighten(fd, dir, &st, r);
	return fd;
}

/* Checks DIR/NAME through DFD, an open descriptor on DIR, without following
 * a symlink. SECRET: the file holds the token (no group/other bit at all).
 * A missing file is fine. */
static void check_file(int dfd, const char *dir, const char *name, int secret,
		       struct agent_files_report *r)
{
	char path[PATH_MAX];
	struct stat st;

	if (agent_config_path(dir, name, path, sizeof(path)) != 0) {
		add(r, AGENT_FILES_ERROR, dir, name, NULL, ENAMETOOLONG);
		return;
	}
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
		if (errno != ENOENT)
			add(r, AGENT_FILES_ERROR, path, name, NULL, errno);
		return;
	}
	if (S_ISLNK(st.st_mode))
		add(r, AGENT_FILES_SYMLINK, path, name, &st, 0);
	else if (!S_ISREG(st.st_mode))
		add(r, AGENT_FILES_NOT_REGULAR, path, name, &st, 0);
	else if (st.st_uid != geteuid())
		add(r, AGENT_FILES_OWNER, path, name, &st, 0);
	else if ((st.st_mode & (secret ? 077 : 022)) != 0)
		add(r, secret ? AGENT_FILES_SECRETS_OPEN : AGENT_FILES_WRITABLE, path, name, &st,
		    0);
}

int agent_files_check(const char *dir, struct agent_files_report *r)
{
	static const struct {
		const char *name;
		int secret;
	} files[] = {
		{AGENT_CONFIG_FILE, 0},
		{AGENT_SECRETS_FILE, 1},
		{AGENT_STATE_FILE, 0},
	};
	int dfd;

	memset(r, 0, sizeof(*r));
	dfd = check_dir(dir, r);
	if (dfd == -ENOENT && r->n == 0)
		return -ENOENT;
	if (dfd >= 0) {
		for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
			check_file(dfd, dir, files[i].name, files[i].secret, r);
		close(dfd);
	}
	return r->n > 0 ? -EPERM : 0;
}

/* "name (uid N)", or "uid N" for a uid without a passwd entry. */
static void describe_user(uid_t uid, char *buf, size_t len)
{
	const struct passwd *pw = getpwuid(uid);

	if (pw != NULL && pw->pw_name != NULL)
		snprintf(buf, len, "%s (uid %u)", pw->pw_name, (unsigned)uid);
	else
		snprintf(buf, len, "uid %u", (unsigned)uid);
}

void agent_files_describe(const struct agent_files_problem *p, char *buf, size_t len)
{
	char owner[96], me[96];

	switch (p->issue) {
	case AGENT_FILES_NOT_DIR:
		snprintf(buf, len, "%s is not a directory", p->path);
		break;
	case AGENT_FILES_SYMLINK:
		snprintf(buf, len,
			 "%s is a symbolic link; the agent never follows one to its files",
			 p->path);
		break;
	case AGENT_FILES_NOT_REGULAR:
		snprintf(buf, len, "%s is not a regular file", p->path);
		break;
	case AGENT_FILES_OWNER:
		describe_user(p->uid, owner, sizeof(owner));
		describe_user(geteuid(), me, sizeof(me));
		snprintf(buf, len, "%s is owned by %s, not by %s, the user running breeze-agent",
			 p->path, owner, me);
		break;
	case AGENT_FILES_WRITABLE:
		snprintf(buf, len, "%s is writable by group or others (mode %04o)", p->path,
			 (unsigned)p->mode);
		break;
	case AGENT_FILES_SECRETS_OPEN:
		snprintf(buf, len,
			 "%s is accessible by group or others (mode %04o); it holds the agent's "
			 "token and must be 0600",
			 p->path, (unsigned)p->mode);
		break;
	default:
		snprintf(buf, len, "%s cannot be inspected: %s", p->path, strerror(p->err));
	}
}

/* Copies S into BUF (LEN bytes) quoted for sh when it holds anything but
 * [A-Za-z0-9/._+,:@%=-]: inside single quotes, each ' written as '\''. A
 * quote that does not fit is cut to "" (never an unterminated quote). */
static void shell_quote(const char *s, char *buf, size_t len)
{
	size_t n = 0;

	if (s[0] != '\0' && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
				      "0123456789/._+,:@%=-") == strlen(s)) {
		text_copy(buf, len, s);
		return;
	}
	if (len < 3)
		goto cut;
	buf[n++] = '\'';
	for (; *s != '\0'; s++) {
		const char *piece = *s == '\'' ? "'\\''" : NULL;
		size_t plen = piece ? 4 : 1;

		if (n + plen + 2 > len)
			goto cut;
		if (piece != NULL)
			memcpy(buf + n, piece, plen);
		else
			buf[n] = *s;
		n += plen;
	}
	buf[n++] = '\'';
	buf[n] = '\0';
	return;
cut:
	text_copy(buf, len, "''");
}

void agent_files_fix(const struct agent_files_problem *p, char *buf, size_t len)
{
	char q[2 * PATH_MAX], me[96];
	const struct passwd *pw;

	shell_quote(p->path, q, sizeof(q));
	switch (p->issue) {
	case AGENT_FILES_NOT_DIR:
		snprintf(buf, len, "mv %s %s.old (enrolment creates the directory)", q, q);
		break;
	case AGENT_FILES_SYMLINK:
		snprintf(buf, len,
			 "mv -f -- \"$(readlink -f %s)\" %s (replace the link with the file it "
			 "points to)",
			 q, q);
		break;
	case AGENT_FILES_NOT_REGULAR:
		snprintf(buf, len, "rm -r -- %s%s", q,
			 p->name != NULL && strcmp(p->name, AGENT_STATE_FILE) == 0
				 ? ""
				 : ", then enrol again (breeze-agent enroll --force)");
		break;
	case AGENT_FILES_OWNER:
		pw = getpwuid(geteuid());
		if (pw != NULL && pw->pw_name != NULL)
			shell_quote(pw->pw_name, me, sizeof(me));
		else
			snprintf(me, sizeof(me), "%u", (unsigned)geteuid());
		snprintf(buf, len, "chown %s: %s (or run breeze-agent as the user who owns it)", me,
			 q);
		break;
	case AGENT_FILES_WRITABLE:
		if (p->name == NULL)
			snprintf(buf, len,
				 "chmod 0750 %s, then check that nobody replaced the files in it",
				 q);
		else
			snprintf(buf, len, "chmod 0640 %s", q);
		break;
	case AGENT_FILES_SECRETS_OPEN:
		snprintf(buf, len,
			 "chmod 0600 %s (if others could read it, treat the token as stolen and "
			 "enrol again with --force)",
			 q);
		break;
	default:
		snprintf(buf, len, "make %s reachable by the user running breeze-agent (ls -ld %s)",
			 q, q);
	}
}
