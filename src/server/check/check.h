/*
 * check.h — `breeze-server check`: the production security checklist
 * (docs/security-checklist.md), one row per item, judged from an env file,
 * the deployment files and, with --live, the running services.
 */
#ifndef BZ_CHECK_H
#define BZ_CHECK_H

/*
 * Runs `breeze-server check` with ARGC/ARGV starting at the word "check".
 * Prints the report on stdout (a table, or JSON with --json) and problems
 * with the command itself on stderr. Never prints a secret value. Returns
 * an exit status: BZ_EXIT_OK when no row FAILs, BZ_EXIT_FAILURE when one
 * does, BZ_EXIT_USAGE for bad options.
 */
int check_cli_main(int argc, char **argv);

#endif
