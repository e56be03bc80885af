/*
 * fuzz.h — what every harness in tests/fuzz/ shares: the libFuzzer entry
 * points and two helpers for turning fuzz bytes into the shapes the parsers
 * take (a C string, a file).
 *
 * Harnesses are deterministic and leak-free: LeakSanitizer runs after every
 * input, and a replay of the committed corpus (`tests/fuzz/run`) must pass.
 */
#ifndef BZ_FUZZ_H
#define BZ_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A NUL-terminated copy of DATA, or NULL if DATA holds a NUL itself: a C
 * string parser can never see bytes past the first NUL, so such inputs only
 * waste fuzzing time. The caller frees it. */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
	char *s;

	if (memchr(data, '\0', size) != NULL || (s = malloc(size + 1)) == NULL)
		return NULL;
	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

/* Replaces the contents of the file open as FD with DATA. Returns 0 or -1. */
static inline int fuzz_rewrite(int fd, const uint8_t *data, size_t size)
{
	size_t off = 0;

	if (ftruncate(fd, 0) != 0)
		return -1;
	while (off < size) {
		ssize_t n = pwrite(fd, data + off, size - off, (off_t)off);
		if (n <= 0)
			return -1;
		off += (size_t)n;
	}
	return 0;
}

/* Aborts with a message: a broken invariant is a finding like a crash. */
#define FUZZ_ASSERT(cond)                                                                          \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__,       \
				#cond);                                                            \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

#endif
