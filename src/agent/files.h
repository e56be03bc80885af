/*
 * files.h — the agent refuses a config directory that someone else could have
 * changed (checklist G3). Every command that reads the configuration (enroll,
 * run, status) runs agent_files_check() on its --config-dir first and exits
 * with BZ_EXIT_CONFIG (3) when it reports a problem.
 *
 * The rules, each checked with fstat(2) on a descriptor opened for the
 * purpose (O_PATH|O_NOFOLLOW for files, so a symlink is seen as one and never
 * followed):
 *
 *   DIR           a directory owned by the effective uid and not writable by
 *                 group or others. Reaching it through a symlink is allowed:
 *                 the directory itself is what is checked. Bits for others
 *                 beyond 0750 (read, search) on a directory the agent owns
 *                 are removed and reported in AGENT_FILES_REPORT.tightened;
 *                 writable by group or others is refused, not repaired,
 *                 because the files in it may already have been replaced.
 *   agent.yaml    a regular file (not a symlink) owned by the effective uid
 *   state.yaml    and not writable by group or others.
 *   secrets.yaml  a regular file (not a symlink) owned by the effective uid
 *                 without any group or other bit (0600 or stricter).
 *
 * A missing file is not a problem here: the commands themselves say the
 * agent is not enrolled. A root-owned directory is refused for an agent
 * running as another user (the agent could not replace its own files in it,
 * and root-owned files there would be the agent's in name only). The parents
 * of DIR (/etc for the default) are not checked: every check is made on the
 * opened object itself, and nobody but the agent's user or root can create
 * objects owned by that user.
 *
 * These checks explain a refusal; the readers in config.c apply the same
 * file rules again on the descriptor they read from, so nothing can be
 * swapped in between the check and the read.
 */
#ifndef BZ_AGENT_FILES_H
#define BZ_AGENT_FILES_H

#include <limits.h>
#include <stddef.h>
#include <sys/types.h>

enum agent_files_issue {
	AGENT_FILES_NOT_DIR = 1,  /* DIR exists but is not a directory */
	AGENT_FILES_SYMLINK,	  /* a file of the agent is a symbolic link */
	AGENT_FILES_NOT_REGULAR,  /* a directory, fifo, device… */
	AGENT_FILES_OWNER,	  /* owned by another uid than the effective one */
	AGENT_FILES_WRITABLE,	  /* DIR, agent.yaml, state.yaml: mode & 022 */
	AGENT_FILES_SECRETS_OPEN, /* secrets.yaml: mode & 077 */
	AGENT_FILES_ERROR,	  /* could not be inspected (or tightened): err */
};

struct agent_files_problem {
	enum agent_files_issue issue;
	char path[PATH_MAX];
	const char *name; /* static: the file's name in DIR, NULL for DIR itself */
	uid_t uid;	  /* the owner (AGENT_FILES_OWNER) */
	mode_t mode;	  /* permission bits (& 07777) when known */
	int err;	  /* positive errno (AGENT_FILES_ERROR) */
};

/* The directory and its three files: at most one problem each. */
#define AGENT_FILES_MAX_PROBLEMS 4

struct agent_files_report {
	size_t n;
	struct agent_files_problem problems[AGENT_FILES_MAX_PROBLEMS];
	int tightened;		   /* 1 if DIR's mode was changed from old_mode */
	mode_t old_mode, new_mode; /* permission bits, & 07777 */
};

/* Checks DIR and its files against the rules above, tightening DIR's mode
 * when the agent owns it and only others' read/search bits are too loose.
 * R is zeroed first. Returns 0 when the agent may go on (R->tightened says
 * whether DIR was changed), -ENOENT if DIR does not exist (R->n == 0), or
 * -EPERM with R->n > 0 problems, which the caller reports (see
 * agent_files_describe(), agent_files_fix()) before exiting. */
int agent_files_check(const char *dir, struct agent_files_report *r);

/* Writes into BUF (LEN bytes, truncated, always NUL-terminated) what is
 * wrong with P, as a sentence starting with P's path, e.g. "/etc/breeze is
 * writable by group or others (mode 0770)". */
void agent_files_describe(const struct agent_files_problem *p, char *buf, size_t len);

/* Writes into BUF (LEN bytes, truncated, always NUL-terminated) how to fix P:
 * a shell command with the path quoted for sh, e.g. "chmod 0750 /etc/breeze"
 * or "chown breeze-agent: /etc/breeze/secrets.yaml", sometimes followed by a
 * short explanation. */
void agent_files_fix(const struct agent_files_problem *p, char *buf, size_t len);

#endif
