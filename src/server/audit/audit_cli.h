/*
 * audit_cli.h — `breeze-server audit …` subcommands (L4, L5):
 *   audit verify [--org ID | --partner ID | --all] [--from T] [--to T] [--env-file F]
 *   audit verify --file export.jsonl --public-key HEX
 *   audit prune [--org ID | --partner ID] [--dry-run] [--env-file F]
 *   audit checkpoint [--env-file F]
 *   audit export --org ID | --partner ID [--env-file F]   (JSON lines on stdout)
 *   audit public-key [--env-file F]           (hex Ed25519 public key)
 */
#ifndef BZ_AUDIT_CLI_H
#define BZ_AUDIT_CLI_H

/* ARGV[0] is "audit". Returns the process exit status: 0 ok, 1 a chain
 * break was found or the command failed, 2 usage error. */
int audit_cli_main(int argc, char **argv);

#endif
