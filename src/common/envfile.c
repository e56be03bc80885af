#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/envfile.h"
#include "common/err.h"
#include "common/text.h"

static int valid_key(const char *k)
{
	if (!(isalpha((unsigned char)*k) || *k == '_'))
		return 0;
	for (; *k; k++)
		if (!(isalnum((unsigned char)*k) || *k == '_'))
			return 0;
	return 1;
}

int envfile_load(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	int lineno = 0, rc = 0;

	if (f == NULL) {
		snprintf(err, errlen, "cannot open env file %s", path);
		return BZ_ERR_IO;
	}
	while (getline(&line, &cap, f) >= 0) {
		lineno++;
		char *s = text_trim(line);
		if (*s == '\0' || *s == '#')
			continue;
		if (strncmp(s, "export ", 7) == 0)
			s = text_trim(s + 7);
		char *eq = strchr(s, '=');
		if (eq == NULL) {
			snprintf(err, errlen, "%s:%d: expected KEY=VALUE", path, lineno);
			rc = BZ_ERR_INVALID;
			break;
		}
		*eq = '\0';
		char *key = text_trim(s), *val = text_trim(eq + 1);
		size_t vl = strlen(val);
		if (!valid_key(key)) {
			snprintf(err, errlen, "%s:%d: invalid variable name", path, lineno);
			rc = BZ_ERR_INVALID;
			break;
		}
		if (vl >= 2 && (val[0] == '"' || val[0] == '\'') && val[vl - 1] == val[0]) {
			val[vl - 1] = '\0';
			val++;
		}
		if (getenv(key) == NULL && setenv(key, val, 0) != 0) {
			snprintf(err, errlen, "%s:%d: setenv failed", path, lineno);
			rc = BZ_ERR_NOMEM;
			break;
		}
	}
	if (line != NULL) {
		explicit_bzero(line, cap);
		free(line);
	}
	fclose(f);
	return rc;
}

int envfile_load_report(const char *path, const char *prog, FILE *out)
{
	char err[256];
	int rc = envfile_load(path, err, sizeof(err));

	if (rc != 0)
		fprintf(out, "%s: %s\n", prog, err);
	return rc;
}
