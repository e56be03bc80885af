/*
 * exitcode.h — the process exit statuses of breeze-server and breeze-agent.
 *
 * One scheme for both programs, so scripts, systemd units
 * (RestartPreventExitStatus=) and operators read a status the same way
 * whichever binary returned it. The table is repeated in README.md
 * ("Exit codes"); keep the two in step. Values stay below 64 so they never
 * collide with sysexits.h, and never change once released.
 */
#ifndef BZ_EXITCODE_H
#define BZ_EXITCODE_H

enum bz_exit {
	/* Success; also a clean stop on SIGTERM/SIGINT. */
	BZ_EXIT_OK = 0,
	/* A runtime failure not covered below (a failed migration, an audit
	 * chain that does not verify, an unexpected server answer, …). */
	BZ_EXIT_FAILURE = 1,
	/* Bad command line: unknown command or option, missing or malformed
	 * argument. The usage or the problem is printed on stderr. */
	BZ_EXIT_USAGE = 2,
	/* Configuration error: invalid environment or --env-file, agent not
	 * enrolled, agent files missing, malformed or with unsafe permissions. */
	BZ_EXIT_CONFIG = 3,
	/* A dependency is unavailable: PostgreSQL, Redis, or (agent) the Breeze
	 * server unreachable, answering 5xx or rate-limiting. Retrying later may
	 * succeed. */
	BZ_EXIT_UNAVAILABLE = 4,
	/* Refused to protect existing state or by policy: already enrolled
	 * (without --force), already bootstrapped, running as root without
	 * --allow-root, migrations pending. */
	BZ_EXIT_REFUSED = 5,
	/* The server rejected the agent's credentials: the enrolment key or
	 * secret (enroll), or the agent token (run: re-enrol this host). */
	BZ_EXIT_REJECTED = 6,
	/* The device is disabled or deleted on the server (agent run, 403/404). */
	BZ_EXIT_DISABLED = 7,
};

#endif
