/*
 * fuzz_json_body.c — what the agent accepts back from the server
 * (src/agent/client.c): the body is parsed as agent_http_post_json parses it
 * (JSON_REJECT_DUPLICATES), then read as an enrolment response, a heartbeat
 * response and an error response. The raw bytes are also a Retry-After
 * header value.
 *
 * Accepted ids, tokens and intervals must satisfy the agent's own checks.
 */
#include "agent/client.h"
#include "agent/config.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return 0;
}

static int interval_ok(long s)
{
	return s >= AGENT_INTERVAL_MIN_S && s <= AGENT_INTERVAL_MAX_S;
}

static void parse_body(json_t *body)
{
	struct agent_enroll_result er;
	struct agent_http_result res = {0};
	char *token = NULL, desc[512];
	long interval = -1;

	if (agent_http_parse_enroll(body, &er) == 0) {
		FUZZ_ASSERT(agent_config_valid_id(er.agent_id));
		FUZZ_ASSERT(agent_config_valid_token(er.auth_token));
		FUZZ_ASSERT(interval_ok(er.heartbeat_interval_s));
	}
	agent_http_enroll_result_free(&er);

	int rotate = -1;
	int rc = agent_http_parse_heartbeat(body, &interval, &rotate);
	FUZZ_ASSERT(rc == 0 && (rotate == 0 || rotate == 1));
	FUZZ_ASSERT(interval == 0 || interval_ok(interval));
	rc = agent_http_parse_rotation(body, &token);
	if (token != NULL) {
		FUZZ_ASSERT(rc == 0 && agent_config_valid_token(token));
		agent_config_free_token(token);
	}

	res.status = 400;
	res.body = body;
	FUZZ_ASSERT(agent_http_error_code(&res) != NULL);
	memset(desc, 'x', sizeof(desc));
	agent_http_describe_error(&res, desc, sizeof(desc));
	FUZZ_ASSERT(memchr(desc, '\0', sizeof(desc)) != NULL);
	agent_http_describe_error(&res, desc, 8);
	FUZZ_ASSERT(memchr(desc, '\0', 8) != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *body = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
	char *s;

	if (body != NULL) {
		parse_body(body);
		agent_http_json_cleanse(body);
		json_decref(body);
	}
	if ((s = fuzz_cstr(data, size)) != NULL) {
		long long ra = agent_http_parse_retry_after(s, 1767225600LL);
		FUZZ_ASSERT(ra >= -1);
		free(s);
	}
	return 0;
}
