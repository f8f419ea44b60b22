#!/bin/sh
# deps.sh - install the Debian packages tern builds and tests with.
# As root, missing packages are installed with apt-get; otherwise the
# missing ones are named and the build stops.
set -e
PKGS="build-essential pkg-config libevent-dev libssl-dev libc-ares-dev libjansson-dev
libsodium-dev libsqlite3-dev sqlite3 openssl python3 python3-pytest swaks curl dovecot-imapd
dnsmasq-base postfix clang-format clang libclang-rt-14-dev clang-tidy cppcheck prometheus"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "tern needs these Debian packages:$missing" >&2
	echo "install them with: sudo apt-get install$missing" >&2
	exit 1
fi
echo "installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# Postfix is only a test peer: never let its package start a system instance.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
apt-get install -y -qq --no-install-recommends $missing >/dev/null
