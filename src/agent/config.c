#include "agent/config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "agent/yamlmap.h"
#include "common/clock.h"

static int check_stat(const struct stat *st)
{
	if (!S_ISREG(st->st_mode))
		return AGENT_PERM_NOT_REGULAR;
	if (st->st_uid != geteuid())
		return AGENT_PERM_BAD_OWNER;
	if ((st->st_mode & 077) != 0)
		return AGENT_PERM_TOO_OPEN;
	return AGENT_PERM_OK;
}

int agent_config_check_secrets(const char *path)
{
	struct stat st;

	/* lstat, not stat: a symlink could point the agent at a file whose
	 * permissions we never see. */
	if (lstat(path, &st) != 0)
		return errno == ENOENT ? AGENT_PERM_MISSING : AGENT_PERM_ERROR;
	return check_stat(&st);
}

const char *agent_config_perm_str(int perm)
{
	switch (perm) {
	case AGENT_PERM_OK:
		return "ok";
	case AGENT_PERM_MISSING:
		return "secrets file is missing (enroll first)";
	case AGENT_PERM_NOT_REGULAR:
		return "secrets file is not a regular file";
	case AGENT_PERM_TOO_OPEN:
		return "secrets file is accessible by group or others (chmod 600 it)";
	case AGENT_PERM_BAD_OWNER:
		return "secrets file is not owned by the user running the agent";
	default:
		return "secrets file cannot be inspected";
	}
}

int agent_config_path(const char *dir, const char *name, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/%s", dir, name);

	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	return 0;
}

int agent_config_ensure_dir(const char *dir)
{
	struct stat st;

	if (mkdir(dir, AGENT_CONFIG_DIR_MODE) == 0) {
		/* mkdir's mode is filtered by the umask; set it exactly. */
		if (chmod(dir, AGENT_CONFIG_DIR_MODE) != 0)
			return -errno;
		return 0;
	}
	if (errno != EEXIST)
		return -errno;
	if (stat(dir, &st) != 0)
		return -errno;
	return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

static int write_all(int fd, const unsigned char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Splits PATH into its directory, copied into DIR (DIR_LEN bytes; "." for a
 * bare name, "/" for a file in the root), and *BASE, the file name inside
 * PATH. Returns 0, -ENAMETOOLONG, or -EINVAL if PATH ends in '/'. */
static int split_path(const char *path, char *dir, size_t dir_len, const char **base)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL) {
		if (dir_len < 2)
			return -ENAMETOOLONG;
		dir[0] = '.';
		dir[1] = '\0';
		*base = path;
	} else {
		size_t dlen = (size_t)(slash - path);

		if (dlen == 0)
			dlen = 1; /* file in "/" */
		if (dlen >= dir_len)
			return -ENAMETOOLONG;
		memcpy(dir, path, dlen);
		dir[dlen] = '\0';
		*base = slash + 1;
	}
	return **base == '\0' ? -EINVAL : 0;
}

/* Creates a new temp file ".BASE.tmp-XXXXXXXX" (random hex) in DIR with
 * O_EXCL|O_NOFOLLOW and mode MODE, trying 16 names. Its path goes into TMP
 * (TMP_LEN bytes), the open descriptor into *FD. Returns 0, -EEXIST if every
 * name was taken, -EIO if getrandom failed, -ENAMETOOLONG or -errno. */
static int create_temp(const char *dir, const char *base, mode_t mode, char *tmp, size_t tmp_len,
		       int *fd)
{
	*fd = -1;
	for (int attempt = 0; attempt < 16; attempt++) {
		uint32_t r;
		int n;

		if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
			return -EIO;
		n = snprintf(tmp, tmp_len, "%s/.%s.tmp-%08x", dir, base, (unsigned)r);
		if (n < 0 || (size_t)n >= tmp_len)
			return -ENAMETOOLONG;
		/* Created with its final mode: the secret is never readable by
		 * anyone else, not even for an instant. */
		*fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
		if (*fd >= 0)
			return 0;
		if (errno != EEXIST)
			return -errno;
	}
	return -EEXIST;
}

/* Sets FD's mode to exactly MODE, writes LEN bytes of DATA, fsyncs and
 * closes FD (always, also on failure). Returns 0 or -errno. */
static int fill_temp(int fd, mode_t mode, const void *data, size_t len)
{
	int rc = 0;

	/* The umask may have removed bits from MODE; set exactly MODE. */
	if (fchmod(fd, mode) != 0)
		rc = -errno;
	else if ((rc = write_all(fd, data, len)) == 0 && fsync(fd) != 0)
		rc = -errno;
	if (close(fd) != 0 && rc == 0)
		rc = -errno;
	return rc;
}

/* fsyncs the directory DIR. Returns 0 or -errno. */
static int sync_dir(const char *dir)
{
	int rc = 0;
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (dfd < 0)
		return -errno;
	if (fsync(dfd) != 0)
		rc = -errno;
	close(dfd);
	return rc;
}

int agent_config_write_atomic(const char *path, mode_t mode, const void *data, size_t len)
{
	char dir[PATH_MAX], tmp[PATH_MAX];
	const char *base;
	int fd, rc;

	if ((rc = split_path(path, dir, sizeof(dir), &base)) != 0)
		return rc;
	if ((rc = create_temp(dir, base, mode, tmp, sizeof(tmp), &fd)) != 0)
		return rc;
	if ((rc = fill_temp(fd, mode, data, len)) != 0)
		goto out;
	if (rename(tmp, path) != 0) {
		rc = -errno;
		goto out;
	}
	/* Without this the rename itself may not survive a power loss. */
	return sync_dir(dir);
out:
	unlink(tmp);
	return rc;
}

/* Reads at most AGENT_YAML_MAX_BYTES from an open descriptor into a malloc'd,
 * NUL-terminated buffer. */
static int read_fd(int fd, char **out, size_t *out_len)
{
	size_t cap = AGENT_YAML_MAX_BYTES + 1, len = 0;
	char *buf = malloc(cap + 1);

	if (buf == NULL)
		return -ENOMEM;
	for (;;) {
		ssize_t n = read(fd, buf + len, cap - len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			int e = -errno;
			OPENSSL_cleanse(buf, len);
			free(buf);
			return e;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len == cap) {
			OPENSSL_cleanse(buf, len);
			free(buf);
			return -E2BIG;
		}
	}
	buf[len] = '\0';
	*out = buf;
	*out_len = len;
	return 0;
}

/* The rules of files.h for a file that is not secret (agent.yaml,
 * state.yaml), on an open descriptor's ST: owned by the effective uid and
 * not writable by group or others. */
static int check_plain_stat(const struct stat *st)
{
	if (st->st_uid != geteuid())
		return AGENT_PERM_BAD_OWNER;
	if ((st->st_mode & 022) != 0)
		return AGENT_PERM_TOO_OPEN;
	return AGENT_PERM_OK;
}

static int load_map(const char *path, int secret, struct agent_yaml_map *m)
{
	struct stat st;
	char *buf = NULL;
	size_t len = 0;
	int rc;
	/* Never through a symlink (files.h); O_NONBLOCK so that a fifo put in
	 * a file's place cannot hang the agent in open(2). */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);

	if (fd < 0)
		return errno == ELOOP ? -EPERM : -errno;
	if (fstat(fd, &st) != 0) {
		rc = -errno;
		goto out;
	}
	/* Checked on the descriptor we read from, so the file cannot be swapped
	 * between the check and the read. */
	if (secret && check_stat(&st) != AGENT_PERM_OK) {
		rc = -EPERM;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = -EBADMSG;
		goto out;
	}
	if (!secret && check_plain_stat(&st) != AGENT_PERM_OK) {
		rc = -EPERM;
		goto out;
	}
	if ((rc = read_fd(fd, &buf, &len)) != 0)
		goto out;
	rc = agent_yaml_parse(buf, len, m);
out:
	if (buf != NULL) {
		OPENSSL_cleanse(buf, len);
		free(buf);
	}
	close(fd);
	return rc;
}

static int save_map(const char *path, mode_t mode, const struct agent_yaml_map *m)
{
	char *doc = NULL;
	size_t len = 0;
	int rc = agent_yaml_emit(m, &doc, &len);

	if (rc != 0)
		return rc;
	rc = agent_config_write_atomic(path, mode, doc, len);
	OPENSSL_cleanse(doc, len);
	free(doc);
	return rc;
}

int agent_config_valid_id(const char *s)
{
	size_t n = 0;

	if (s == NULL)
		return 0;
	for (; s[n] != '\0'; n++) {
		char c = s[n];

		if (n >= 128)
			return 0;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.'))
			return 0;
	}
	/* "." and ".." would be path segments, not ids. */
	return n > 0 && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

int agent_config_valid_token(const char *s)
{
	size_t n = 0;

	if (s == NULL)
		return 0;
	for (; s[n] != '\0'; n++)
		if (n >= 1024 || (unsigned char)s[n] <= 0x20 || (unsigned char)s[n] >= 0x7f)
			return 0;
	return n > 0;
}

long agent_config_clamp_interval(long s)
{
	if (s <= 0)
		return AGENT_INTERVAL_DEFAULT_S;
	if (s < AGENT_INTERVAL_MIN_S)
		return AGENT_INTERVAL_MIN_S;
	if (s > AGENT_INTERVAL_MAX_S)
		return AGENT_INTERVAL_MAX_S;
	return s;
}

static int dup_opt(const struct agent_yaml_map *m, const char *key, char **out)
{
	const char *v = agent_yaml_get(m, key);

	*out = NULL;
	if (v == NULL)
		return 0;
	*out = strdup(v);
	return *out ? 0 : -ENOMEM;
}

int agent_config_load(const char *dir, struct agent_config *cfg)
{
	char path[PATH_MAX];
	struct agent_yaml_map m = {0};
	int rc;

	memset(cfg, 0, sizeof(*cfg));
	if ((rc = agent_config_path(dir, AGENT_CONFIG_FILE, path, sizeof(path))) != 0)
		return rc;
	if ((rc = load_map(path, 0, &m)) != 0)
		return rc;
	if ((rc = dup_opt(&m, "serverUrl", &cfg->server_url)) != 0 ||
	    (rc = dup_opt(&m, "agentId", &cfg->agent_id)) != 0 ||
	    (rc = dup_opt(&m, "orgId", &cfg->org_id)) != 0 ||
	    (rc = dup_opt(&m, "siteId", &cfg->site_id)) != 0 ||
	    (rc = dup_opt(&m, "hostname", &cfg->hostname)) != 0)
		goto out;
	if (cfg->server_url == NULL || cfg->server_url[0] == '\0' ||
	    !agent_config_valid_id(cfg->agent_id)) {
		rc = -EBADMSG;
		goto out;
	}
	cfg->heartbeat_interval_s = AGENT_INTERVAL_DEFAULT_S;
	const char *iv = agent_yaml_get(&m, "heartbeatIntervalSeconds");
	if (iv != NULL) {
		char *end;
		errno = 0;
		long v = strtol(iv, &end, 10);
		if (errno == 0 && end != iv && *end == '\0')
			cfg->heartbeat_interval_s = agent_config_clamp_interval(v);
	}
out:
	agent_yaml_free(&m);
	if (rc != 0)
		agent_config_free(cfg);
	return rc;
}

int agent_config_save(const char *dir, const struct agent_config *cfg)
{
	char path[PATH_MAX];
	struct agent_yaml_map m = {0};
	int rc;

	if ((rc = agent_config_path(dir, AGENT_CONFIG_FILE, path, sizeof(path))) != 0)
		return rc;
	if ((rc = agent_yaml_set(&m, "serverUrl", cfg->server_url ? cfg->server_url : "")) != 0 ||
	    (rc = agent_yaml_set(&m, "agentId", cfg->agent_id ? cfg->agent_id : "")) != 0 ||
	    (rc = agent_yaml_set(&m, "orgId", cfg->org_id ? cfg->org_id : "")) != 0 ||
	    (rc = agent_yaml_set(&m, "siteId", cfg->site_id ? cfg->site_id : "")) != 0 ||
	    (cfg->hostname != NULL && (rc = agent_yaml_set(&m, "hostname", cfg->hostname)) != 0) ||
	    (rc = agent_yaml_set_long(&m, "heartbeatIntervalSeconds", cfg->heartbeat_interval_s)) !=
		    0)
		goto out;
	rc = save_map(path, AGENT_CONFIG_FILE_MODE, &m);
out:
	agent_yaml_free(&m);
	return rc;
}

void agent_config_free(struct agent_config *cfg)
{
	if (cfg == NULL)
		return;
	free(cfg->server_url);
	free(cfg->agent_id);
	free(cfg->org_id);
	free(cfg->site_id);
	free(cfg->hostname);
	memset(cfg, 0, sizeof(*cfg));
}

int agent_config_load_tokens(const char *dir, char **token, char **pending)
{
	char path[PATH_MAX];
	struct agent_yaml_map m = {0};
	int rc;

	*token = NULL;
	if (pending != NULL)
		*pending = NULL;
	if ((rc = agent_config_path(dir, AGENT_SECRETS_FILE, path, sizeof(path))) != 0)
		return rc;
	if ((rc = load_map(path, 1, &m)) != 0)
		return rc;
	const char *t = agent_yaml_get(&m, "authToken");
	const char *p = agent_yaml_get(&m, "pendingToken");
	if (!agent_config_valid_token(t) || (p != NULL && !agent_config_valid_token(p))) {
		rc = -EBADMSG;
		goto out;
	}
	if ((*token = strdup(t)) == NULL)
		rc = -ENOMEM;
	else if (pending != NULL && p != NULL && (*pending = strdup(p)) == NULL)
		rc = -ENOMEM;
	if (rc != 0) {
		agent_config_free_token(*token);
		*token = NULL;
	}
out:
	agent_yaml_free(&m);
	return rc;
}

int agent_config_load_token(const char *dir, char **token)
{
	return agent_config_load_tokens(dir, token, NULL);
}

int agent_config_save_tokens(const char *dir, const char *token, const char *pending)
{
	char path[PATH_MAX];
	struct agent_yaml_map m = {0};
	int rc;

	if (!agent_config_valid_token(token) ||
	    (pending != NULL && !agent_config_valid_token(pending)))
		return -EINVAL;
	if ((rc = agent_config_path(dir, AGENT_SECRETS_FILE, path, sizeof(path))) != 0)
		return rc;
	if ((rc = agent_yaml_set(&m, "authToken", token)) != 0 ||
	    (pending != NULL && (rc = agent_yaml_set(&m, "pendingToken", pending)) != 0))
		goto out;
	rc = save_map(path, AGENT_SECRETS_FILE_MODE, &m);
out:
	agent_yaml_free(&m);
	return rc;
}

int agent_config_save_token(const char *dir, const char *token)
{
	return agent_config_save_tokens(dir, token, NULL);
}

void agent_config_free_token(char *token)
{
	if (token == NULL)
		return;
	OPENSSL_cleanse(token, strlen(token));
	free(token);
}

int agent_config_save_last_heartbeat(const char *dir, int64_t t)
{
	char path[PATH_MAX], iso[32];
	struct agent_yaml_map m = {0};
	int rc;

	if (t <= 0 || t > (int64_t)LONG_MAX || bz_format_iso8601(t, iso, sizeof(iso)) != 0)
		return -EINVAL;
	if ((rc = agent_config_path(dir, AGENT_STATE_FILE, path, sizeof(path))) != 0)
		return rc;
	/* The ISO form is for people reading the file; the epoch is what is
	 * read back, so no date parsing is needed. */
	if ((rc = agent_yaml_set(&m, "lastHeartbeatAt", iso)) != 0 ||
	    (rc = agent_yaml_set_long(&m, "lastHeartbeatEpoch", (long)t)) != 0)
		goto out;
	rc = save_map(path, AGENT_STATE_FILE_MODE, &m);
out:
	agent_yaml_free(&m);
	return rc;
}

int agent_config_load_last_heartbeat(const char *dir, int64_t *t)
{
	char path[PATH_MAX];
	struct agent_yaml_map m = {0};
	const char *v;
	char *end;
	long long n;
	int rc;

	*t = 0;
	if ((rc = agent_config_path(dir, AGENT_STATE_FILE, path, sizeof(path))) != 0)
		return rc;
	if ((rc = load_map(path, 0, &m)) != 0)
		return rc;
	v = agent_yaml_get(&m, "lastHeartbeatEpoch");
	rc = -EBADMSG;
	if (v == NULL || v[0] < '0' || v[0] > '9')
		goto out;
	errno = 0;
	n = strtoll(v, &end, 10);
	if (errno != 0 || *end != '\0' || n <= 0)
		goto out;
	*t = (int64_t)n;
	rc = 0;
out:
	agent_yaml_free(&m);
	return rc;
}

int agent_config_remove_state(const char *dir)
{
	char path[PATH_MAX];
	int rc;

	if ((rc = agent_config_path(dir, AGENT_STATE_FILE, path, sizeof(path))) != 0)
		return rc;
	if (unlink(path) != 0 && errno != ENOENT)
		return -errno;
	return 0;
}
