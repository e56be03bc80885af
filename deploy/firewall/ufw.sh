#!/bin/sh
# Breeze host firewall with ufw (checklist N1, N7; docs/deploy.md).
# Inbound: SSH, HTTP (80, ACME and the redirect to HTTPS), HTTPS (443 over
# TCP, and UDP for HTTP/3); with --turn also TURN on 3478. Everything else
# inbound is denied; outbound is allowed (ACME, webhooks, updates).
#
#   deploy/firewall/ufw.sh [--turn] [--ssh-port PORT] [--dry-run]
#
# --dry-run passes ufw's own --dry-run: prints the rules, changes nothing.
# Run it as root, from a console or with SSH already allowed: the SSH rule
# is added before the firewall is enabled. Note that Docker's published
# ports bypass ufw: the compose file publishes only the proxy's 80/443.
set -eu

turn=0
ssh_port=22
dry=""

usage() {
	echo "usage: $0 [--turn] [--ssh-port PORT] [--dry-run]" >&2
	exit 2
}

while [ $# -gt 0 ]; do
	case "$1" in
	--turn) turn=1 ;;
	--ssh-port)
		[ $# -ge 2 ] || usage
		ssh_port=$2
		shift
		;;
	--dry-run) dry="--dry-run" ;;
	*) usage ;;
	esac
	shift
done

case "$ssh_port" in
'' | *[!0-9]*) usage ;;
esac
if [ "$ssh_port" -lt 1 ] || [ "$ssh_port" -gt 65535 ]; then
	usage
fi

command -v ufw >/dev/null 2>&1 || {
	echo "$0: ufw is not installed (apt-get install ufw)" >&2
	exit 1
}

u() {
	# $dry is empty or one word: split on purpose.
	# shellcheck disable=SC2086
	ufw $dry "$@"
}

u default deny incoming
u default allow outgoing
# SSH first, rate-limited (ufw limit: 6 new connections in 30 s per source).
u limit "$ssh_port/tcp" comment 'SSH'
u allow 80/tcp comment 'HTTP: ACME and redirect to HTTPS'
u allow 443/tcp comment 'HTTPS'
u allow 443/udp comment 'HTTPS (HTTP/3)'
if [ "$turn" -eq 1 ]; then
	u allow 3478/tcp comment 'TURN'
	u allow 3478/udp comment 'TURN'
fi
u --force enable
u status verbose
