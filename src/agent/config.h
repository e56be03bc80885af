/*
 * config.h — the agent's on-disk state in its config directory (checklist G3):
 *
 *   DIR/            0750  created by enroll
 *   DIR/agent.yaml  0640  serverUrl, agentId, orgId, siteId, hostname,
 *                         heartbeatIntervalSeconds
 *   DIR/secrets.yaml 0600 authToken
 *   DIR/state.yaml  0640  lastHeartbeatAt (+ its epoch seconds), written by
 *                         `run` after every accepted heartbeat; no secret
 *
 * Before reading any of them the commands check the layout (owner, modes, no
 * symlinks: files.h) and refuse one that someone else could have changed.
 *
 * Every file is replaced atomically (temp file in the same directory, created
 * with its final mode, fsync, rename, fsync of the directory), so a crash or
 * a full disk never leaves a half-written token behind.
 *
 * Functions return 0 on success and a negative errno value on failure unless
 * said otherwise.
 */
#ifndef BZ_AGENT_CONFIG_H
#define BZ_AGENT_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define AGENT_CONFIG_DEFAULT_DIR "/etc/breeze"
#define AGENT_CONFIG_FILE "agent.yaml"
#define AGENT_SECRETS_FILE "secrets.yaml"
#define AGENT_STATE_FILE "state.yaml"
#define AGENT_CONFIG_DIR_MODE 0750
#define AGENT_CONFIG_FILE_MODE 0640
#define AGENT_SECRETS_FILE_MODE 0600
#define AGENT_STATE_FILE_MODE 0640

/* Heartbeat interval bounds, in seconds. A server value outside them is
 * clamped so a bad response can neither spin the agent nor silence it. */
#define AGENT_INTERVAL_DEFAULT_S 60
#define AGENT_INTERVAL_MIN_S 5
#define AGENT_INTERVAL_MAX_S 86400

struct agent_config {
	char *server_url; /* owned; normalised http(s) base URL */
	char *agent_id;	  /* owned; [A-Za-z0-9._-], at most 128 bytes */
	char *org_id;	  /* owned; may be NULL */
	char *site_id;	  /* owned; may be NULL */
	char *hostname;	  /* owned; may be NULL; the hostname sent at enrolment */
	long heartbeat_interval_s;
};

/* Results of agent_config_check_secrets(). */
enum agent_perm {
	AGENT_PERM_OK = 0,
	AGENT_PERM_MISSING = -1,     /* no such file */
	AGENT_PERM_NOT_REGULAR = -2, /* directory, symlink, fifo, device… */
	AGENT_PERM_TOO_OPEN = -3,    /* any group/other bit set (mode & 077) */
	AGENT_PERM_BAD_OWNER = -4,   /* not owned by the effective user */
	AGENT_PERM_ERROR = -5,	     /* lstat failed for another reason */
};

/* Checks that PATH (secrets.yaml) is a regular file, not a symlink, owned by
 * the effective uid and without any group/other permission bit. Returns an
 * enum agent_perm value; only AGENT_PERM_OK (0) means the agent may start. */
int agent_config_check_secrets(const char *path);

/* Static English description of an enum agent_perm value. */
const char *agent_config_perm_str(int perm);

/* Joins DIR and NAME into BUF (LEN bytes). Returns 0 or -ENAMETOOLONG. */
int agent_config_path(const char *dir, const char *name, char *buf, size_t len);

/* Creates DIR with mode 0750 (exact, whatever the umask) if it does not
 * exist; an existing directory is left as it is. The parent must exist.
 * Returns 0, -ENOTDIR if DIR exists and is not a directory, or -errno. */
int agent_config_ensure_dir(const char *dir);

/* Writes LEN bytes of DATA to PATH atomically with permission bits MODE:
 * the temp file ".NAME.tmp-XXXXXXXX" is created in PATH's directory with
 * open(O_CREAT|O_EXCL|O_NOFOLLOW, MODE), fchmod'ed to MODE, written, fsync'ed
 * and renamed over PATH, then the directory is fsync'ed. On failure the temp
 * file is removed and PATH is unchanged (except when only the final fsync of
 * the directory fails: PATH is then replaced). Returns 0; -EINVAL if PATH
 * ends in '/'; -ENAMETOOLONG; -EEXIST if 16 random temp names were all
 * taken; -EIO if getrandom(2) failed; or the -errno of the failed call. */
int agent_config_write_atomic(const char *path, mode_t mode, const void *data, size_t len);

/* Reads DIR/agent.yaml into CFG (zeroed first; free with
 * agent_config_free). serverUrl and agentId are required, agentId must be
 * valid, a missing or bad interval becomes the default. The file is opened
 * with O_NOFOLLOW and must be owned by the effective uid and not writable by
 * group or others (checked on the open descriptor; files.h). Returns 0,
 * -ENOENT if the agent is not enrolled, -EPERM if the file breaks those
 * rules or is a symlink, -EBADMSG on a malformed file, or -errno. */
int agent_config_load(const char *dir, struct agent_config *cfg);

/* Writes CFG to DIR/agent.yaml (mode 0640) atomically. Returns 0, -ENOMEM,
 * or an error of agent_yaml_emit() or agent_config_write_atomic(). */
int agent_config_save(const char *dir, const struct agent_config *cfg);

/* Frees CFG's strings; CFG is zeroed afterwards. NULL-safe. */
void agent_config_free(struct agent_config *cfg);

/* Reads authToken from DIR/secrets.yaml. The file is opened with O_NOFOLLOW
 * and its mode/owner checked on the open descriptor as in
 * agent_config_check_secrets(). On success *TOKEN is malloc'd and owned by
 * the caller, who releases it with agent_config_free_token(). Returns 0,
 * -ENOENT, -EPERM (permissions), -EBADMSG (bad file or token) or -errno. */
int agent_config_load_token(const char *dir, char **token);

/* Like agent_config_load_token(), and also reads the optional pendingToken
 * (a rotated token not yet confirmed with the server) into *PENDING when
 * PENDING is not NULL: malloc'd or NULL when absent; the caller frees both
 * with agent_config_free_token(). -EBADMSG also when pendingToken is
 * present but invalid. On error both are NULL. */
int agent_config_load_tokens(const char *dir, char **token, char **pending);

/* Writes TOKEN as authToken to DIR/secrets.yaml (mode 0600) atomically.
 * Intermediate buffers holding the token are zeroed. Returns 0, -EINVAL if
 * TOKEN fails agent_config_valid_token(), or an error of
 * agent_config_write_atomic() or agent_yaml_emit(). */
int agent_config_save_token(const char *dir, const char *token);

/* Like agent_config_save_token(), with PENDING (when not NULL) written as
 * pendingToken in the same atomic replacement, so the file always holds a
 * token the server accepts: during a rotation both the current token and
 * the one being confirmed. -EINVAL if PENDING is given and invalid. */
int agent_config_save_tokens(const char *dir, const char *token, const char *pending);

/* Zeroes (OPENSSL_cleanse) and frees a token. NULL-safe. */
void agent_config_free_token(char *token);

/* Records T (epoch seconds, > 0) as the time of the last heartbeat the
 * server accepted: DIR/state.yaml, mode 0640, replaced atomically. Returns 0,
 * -EINVAL if T is out of range, or an error of agent_config_write_atomic(). */
int agent_config_save_last_heartbeat(const char *dir, int64_t t);

/* Reads the time written by agent_config_save_last_heartbeat() into *T
 * (epoch seconds). The file must pass the rules of agent_config_load().
 * Returns 0, -ENOENT if no heartbeat was ever recorded, -EPERM, -EBADMSG on
 * a malformed file, or -errno. */
int agent_config_load_last_heartbeat(const char *dir, int64_t *t);

/* Removes DIR/state.yaml (enrolment starts a new device's history). A
 * missing file is not an error. Returns 0 or -errno. */
int agent_config_remove_state(const char *dir);

/* Returns 1 if S is a usable agent id: 1..128 bytes of [A-Za-z0-9._-]. It is
 * put into URL paths, so nothing else is allowed. */
int agent_config_valid_id(const char *s);

/* Returns 1 if S is a usable bearer token: 1..1024 printable ASCII bytes
 * without spaces (it goes into an HTTP header). */
int agent_config_valid_token(const char *s);

/* Returns S clamped to [AGENT_INTERVAL_MIN_S, AGENT_INTERVAL_MAX_S], or the
 * default if S <= 0. */
long agent_config_clamp_interval(long s);

#endif
