#!/bin/sh
# run.sh - `make bench`: tern and a private Postfix side by side, relaying to
# Postfix's smtp-sink, then tern's HTTP API against its SMTP submission
# (bench/api.py).  Installs what the benchmark needs (Postfix for
# smtp-source, smtp-sink and the comparison; dnsmasq for tern's MX lookups),
# then hands over to bench.py, which starts everything in a temporary
# directory, measures, prints the table and writes docs/performance.md.
#
# A full run takes about a quarter of an hour on a 2-core machine and should
# have the machine to itself.  Environment (details in bench.py): BENCH_N
# (messages per run), BENCH_REPS (repetitions, medians reported),
# BENCH_QUICK=1 (a smoke run of a minute or two), BENCH_IDLE (idle sessions
# for the memory test), BENCH_ONLY (disk,memory,throughput,api), BENCH_API_N,
# BENCH_API_C, BENCH_API_ROUNDS (the API part, see api.py), BENCH_OUT
# (report path), BENCH_TMPDIR, BENCH_KEEP=1, TERN_BUILD.
set -eu
cd "$(dirname "$0")/.."
# smtp-source, smtp-sink, postfix and dnsmasq live in /usr/sbin.
PATH=$PATH:/usr/sbin:/sbin
export PATH

PKGS="postfix dnsmasq-base"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "bench: needs the Debian packages:$missing" >&2
		echo "bench: install them with: sudo apt-get install$missing" >&2
		exit 1
	fi
	echo "bench: installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	# Postfix is only a peer here: the package must not configure or start
	# a system instance (nothing of the benchmark uses port 25).
	echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
	apt-get update -qq
	# shellcheck disable=SC2086 # one word per package
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

if [ "$(id -u)" != 0 ]; then
	# A private Postfix instance runs its daemons as the user postfix, which
	# only root can arrange.
	echo "bench: must run as root (the private Postfix instance needs it)" >&2
	exit 1
fi

BUILD=${TERN_BUILD:-build}
if [ ! -x "$BUILD/ternd" ]; then
	echo "bench: $BUILD/ternd is not built; run make first" >&2
	exit 1
fi
TERN_BUILD=$(cd "$BUILD" && pwd)
export TERN_BUILD
exec /usr/bin/python3 -B bench/bench.py "$@"
