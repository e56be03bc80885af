/*
 * fuzz_envfile.c — the env-file reader (envfile_load in
 * src/common/envfile.c) on a file holding the input.
 *
 * The environment is emptied before each input (but for one preset
 * variable, so the "environment wins" branch is reachable) and put back
 * afterwards, so every input starts the same. glibc's setenv() keeps every
 * "NAME=VALUE" string it ever built in a private tree that nothing frees,
 * which would grow without bound over millions of inputs; so this program
 * defines its own setenv(), used by envfile.o in place of libc's, that puts
 * strings this file owns into the real environment with putenv() and frees
 * them once the environment is cleared. getenv() is libc's.
 *
 * Checked: every variable set has a valid name and a one-line value; an
 * error message is NUL-terminated and is "PATH:LINE: reason" (never a value).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>

#include "common/envfile.h"
#include "fuzz.h"

extern char **environ;

static char path[64];
static int fd = -1;
static char **saved; /* the original environment, restored after each input */
static char preset[] = "BZ_FUZZ_PRESET=from-the-environment";

static char **owned; /* strings handed to putenv() for the current input */
static size_t n_owned, cap_owned;

int setenv(const char *name, const char *value, int overwrite)
{
	size_t nl, vl;
	char *s;

	if (name == NULL || *name == '\0' || strchr(name, '=') != NULL) {
		errno = EINVAL;
		return -1;
	}
	if (!overwrite && getenv(name) != NULL)
		return 0;
	if (n_owned == cap_owned) {
		size_t cap = cap_owned ? cap_owned * 2 : 16;
		char **p = realloc(owned, cap * sizeof(*p));
		if (p == NULL)
			return -1;
		owned = p;
		cap_owned = cap;
	}
	nl = strlen(name);
	vl = strlen(value);
	if ((s = malloc(nl + vl + 2)) == NULL)
		return -1;
	memcpy(s, name, nl);
	s[nl] = '=';
	memcpy(s + nl + 1, value, vl + 1);
	owned[n_owned++] = s;
	return putenv(s);
}

static void cleanup(void)
{
	if (fd >= 0)
		close(fd);
	unlink(path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	size_t n = 0;

	(void)argc;
	(void)argv;
	snprintf(path, sizeof(path), "/tmp/bz-fuzz-envfile-XXXXXX");
	if ((fd = mkstemp(path)) < 0)
		abort();
	atexit(cleanup);
	while (environ != NULL && environ[n] != NULL)
		n++;
	if ((saved = calloc(n + 1, sizeof(*saved))) == NULL)
		abort();
	for (size_t i = 0; i < n; i++)
		if ((saved[i] = strdup(environ[i])) == NULL)
			abort();
	return 0;
}

static int valid_name(const char *s, size_t len)
{
	if (len == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
		return 0;
	for (size_t i = 1; i < len; i++)
		if (!(isalnum((unsigned char)s[i]) || s[i] == '_'))
			return 0;
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];

	if (fuzz_rewrite(fd, data, size) != 0)
		abort();
	clearenv();
	putenv(preset);
	memset(err, 'x', sizeof(err));
	if (envfile_load(path, err, sizeof(err)) != 0) {
		FUZZ_ASSERT(memchr(err, '\0', sizeof(err)) != NULL);
		FUZZ_ASSERT(strncmp(err, path, strlen(path)) == 0 && err[strlen(path)] == ':');
	}
	FUZZ_ASSERT(strcmp(getenv("BZ_FUZZ_PRESET"), "from-the-environment") == 0);
	for (size_t i = 0; i < n_owned; i++) {
		const char *eq = strchr(owned[i], '=');
		FUZZ_ASSERT(eq != NULL && valid_name(owned[i], (size_t)(eq - owned[i])));
		FUZZ_ASSERT(strchr(eq, '\n') == NULL);
	}
	clearenv();
	for (size_t i = 0; i < n_owned; i++)
		free(owned[i]);
	n_owned = 0;
	for (size_t i = 0; saved[i] != NULL; i++)
		putenv(saved[i]);
	return 0;
}
