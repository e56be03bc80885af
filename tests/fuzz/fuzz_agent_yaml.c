/*
 * fuzz_agent_yaml.c — the agent's YAML reader: agent_yaml_parse
 * (src/agent/yamlmap.c) on the bytes, then agent_config_load and
 * agent_config_load_token (src/agent/config.c) on the same bytes written as
 * DIR/agent.yaml and DIR/secrets.yaml.
 *
 * yamlmap.h promises that whatever the emitter writes the parser reads back
 * unchanged, so every map that parses is emitted and parsed again and the
 * two maps must be equal.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "agent/config.h"
#include "agent/yamlmap.h"
#include "fuzz.h"

static char dir[64], cfg_path[96], tok_path[96];
static int cfg_fd = -1, tok_fd = -1;

static void cleanup(void)
{
	unlink(cfg_path);
	unlink(tok_path);
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	snprintf(dir, sizeof(dir), "/tmp/bz-fuzz-yaml-XXXXXX");
	if (mkdtemp(dir) == NULL)
		abort();
	snprintf(cfg_path, sizeof(cfg_path), "%s/%s", dir, AGENT_CONFIG_FILE);
	snprintf(tok_path, sizeof(tok_path), "%s/%s", dir, AGENT_SECRETS_FILE);
	cfg_fd = open(cfg_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, AGENT_CONFIG_FILE_MODE);
	tok_fd = open(tok_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, AGENT_SECRETS_FILE_MODE);
	if (cfg_fd < 0 || tok_fd < 0 || fchmod(tok_fd, AGENT_SECRETS_FILE_MODE) != 0)
		abort();
	atexit(cleanup);
	return 0;
}

static void round_trip(const struct agent_yaml_map *m)
{
	struct agent_yaml_map m2 = {0};
	char *out;
	size_t len;

	if (agent_yaml_emit(m, &out, &len) != 0)
		return;
	FUZZ_ASSERT(strlen(out) == len);
	int rc = agent_yaml_parse(out, len, &m2);
	if (rc != 0)
		fprintf(stderr, "re-parse of the emitted document failed (%d):\n%s\n", rc, out);
	FUZZ_ASSERT(rc == 0 && m2.len == m->len);
	for (size_t i = 0; i < m->len; i++) {
		const char *v = agent_yaml_get(&m2, m->pairs[i].key);
		FUZZ_ASSERT(v != NULL && strcmp(v, m->pairs[i].value) == 0);
	}
	agent_yaml_free(&m2);
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct agent_yaml_map m = {0};
	struct agent_config cfg;
	char *token = NULL;

	int rc = agent_yaml_parse((const char *)data, size, &m);
	if (rc == 0) {
		for (size_t i = 0; i < m.len; i++)
			FUZZ_ASSERT(agent_yaml_get(&m, m.pairs[i].key) == m.pairs[i].value);
		round_trip(&m);
	} else {
		FUZZ_ASSERT(rc == -EBADMSG || rc == -E2BIG || rc == -ENOMEM);
		FUZZ_ASSERT(m.len == 0 && m.pairs == NULL);
	}
	agent_yaml_free(&m);

	if (fuzz_rewrite(cfg_fd, data, size) != 0 || fuzz_rewrite(tok_fd, data, size) != 0)
		abort();
	if (agent_config_load(dir, &cfg) == 0) {
		FUZZ_ASSERT(cfg.server_url != NULL && agent_config_valid_id(cfg.agent_id));
		FUZZ_ASSERT(cfg.heartbeat_interval_s >= AGENT_INTERVAL_MIN_S &&
			    cfg.heartbeat_interval_s <= AGENT_INTERVAL_MAX_S);
		agent_config_free(&cfg);
	}
	if (agent_config_load_token(dir, &token) == 0) {
		FUZZ_ASSERT(agent_config_valid_token(token));
		agent_config_free_token(token);
	}
	return 0;
}
