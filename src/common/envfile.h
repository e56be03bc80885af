/*
 * envfile.h — loads KEY=VALUE lines into the process environment.
 */
#ifndef BZ_ENVFILE_H
#define BZ_ENVFILE_H

#include <stddef.h>
#include <stdio.h>

/*
 * Reads PATH as an env file: one KEY=VALUE per line, blank lines and lines
 * starting with '#' ignored, an optional leading "export ", and a value
 * optionally wrapped in single or double quotes (no escapes inside). Keys
 * must match [A-Za-z_][A-Za-z0-9_]*. Variables already set in the
 * environment win over the file (so `FOO=x breeze-server …` overrides it).
 * Returns 0, or BZ_ERR_IO or BZ_ERR_INVALID with a message (line number, never a value) written to
 * ERR (ERRLEN bytes) on an unreadable file or malformed line.
 */
int envfile_load(const char *path, char *err, size_t errlen);

/* envfile_load() for command-line programs: on failure writes
 * "PROG: <message>" and a newline to OUT. Returns envfile_load()'s result. */
int envfile_load_report(const char *path, const char *prog, FILE *out);

#endif
