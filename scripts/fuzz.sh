#!/usr/bin/env bash
# fuzz.sh [SECONDS [TARGET...]] - build the libFuzzer targets of tests/fuzz/
# with clang (ASan + UBSan + libFuzzer) into build/fuzz/, replay each
# target's regression inputs once, then fuzz each target for SECONDS
# (default 60) on a copy of its seed corpus.  Exits non-zero when a build
# fails or any target crashes, leaks, times out or reports (libFuzzer exits
# non-zero then and leaves the input in build/fuzz/artifacts/TARGET/).
# Prints one summary line per target with its number of executions.
#
# FUZZ_JOBS=N runs N targets at a time (default: the number of CPUs).
# See docs/fuzzing.md.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

SECONDS_EACH=${1:-60}
shift || true
case $SECONDS_EACH in
'' | *[!0-9]*)
	echo "usage: scripts/fuzz.sh [SECONDS [TARGET...]]" >&2
	exit 2
	;;
esac

# Each target and the project sources it needs: that parser only.
declare -A SOURCES=(
	[command]="src/smtp/command.c src/core/address.c"
	[address]="src/core/address.c"
	[data_stream]="src/smtp/data_stream.c"
	[sasl]="src/auth/sasl.c"
	[client_reply]="src/smtp/client_reply.c"
	[config]="src/core/config.c src/core/config_values.c src/core/log.c"
	[envelope]="src/spool/envelope.c"
	[dsn]="src/queue/dsn.c src/queue/dsn_encode.c src/smtp/command.c src/core/address.c"
	[dns]="" # fuzz_dns.c includes src/deliver/mx.c for its static functions
	[mime]="src/http/mime.c src/core/address.c"
	# fuzz_api_json.c includes src/http/api_messages.c for its static parsers
	[api_json]="src/http/mime.c src/core/address.c src/core/log.c src/spool/envelope.c"
)
ALL_TARGETS="command address data_stream sasl client_reply config envelope dsn dns mime api_json"
TARGETS=${*:-$ALL_TARGETS}

PKGS=(libevent libcares libsodium jansson)
OUT=build/fuzz

if ! command -v clang >/dev/null 2>&1; then
	echo "fuzz: installing clang" >&2
	{ apt-get install -y clang || { apt-get update && apt-get install -y clang; }; } >&2 || {
		echo "fuzz: clang is missing and could not be installed" >&2
		exit 1
	}
fi
if ! pkg-config --exists "${PKGS[@]}"; then
	echo "fuzz: missing development packages for: ${PKGS[*]} (run make deps)" >&2
	exit 1
fi

CFLAGS="-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	-fno-omit-frame-pointer -g -O1 -std=c17 -D_GNU_SOURCE -Isrc \
	-Wall -Wextra -Wno-unused-parameter -Wshadow -Wformat=2 -Werror \
	$(pkg-config --cflags "${PKGS[@]}")"
LIBS="$(pkg-config --libs "${PKGS[@]}") -lm"

mkdir -p "$OUT"
status=0

# build TARGET - compile tests/fuzz/fuzz_TARGET.c with its sources.
build()
{
	local t=$1
	# shellcheck disable=SC2086 # word splitting of the flag lists is meant
	clang $CFLAGS "tests/fuzz/fuzz_$t.c" ${SOURCES[$t]} -o "$OUT/fuzz_$t" $LIBS \
		>"$OUT/$t.build.log" 2>&1
}

# run TARGET - regressions once, then SECONDS_EACH of fuzzing; the log
# goes to build/fuzz/TARGET.log, the verdict to build/fuzz/TARGET.rc.
run()
{
	local t=$1
	local bin=$OUT/fuzz_$t log=$OUT/$t.log work=$OUT/corpus/$t art=$OUT/artifacts/$t/ rc=0
	: >"$log"
	local regs=()
	if [ -d "tests/fuzz/regressions/$t" ]; then
		while IFS= read -r -d '' f; do
			regs+=("$f")
		done < <(find "tests/fuzz/regressions/$t" -type f ! -name 'README*' -print0 | sort -z)
	fi
	mkdir -p "$art"
	if [ ${#regs[@]} -gt 0 ]; then
		echo "== regressions (${#regs[@]})" >>"$log"
		"$bin" -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$art" "${regs[@]}" \
			>>"$log" 2>&1 || rc=$?
	fi
	if [ $rc -eq 0 ] && [ "$SECONDS_EACH" -gt 0 ]; then
		# A fresh copy: the checked-in seeds are never written to.
		rm -rf "$work"
		mkdir -p "$work"
		if [ -d "tests/fuzz/corpus/$t" ]; then
			cp -R "tests/fuzz/corpus/$t/." "$work/"
		fi
		echo "== fuzzing ${SECONDS_EACH}s" >>"$log"
		"$bin" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
			-print_final_stats=1 -artifact_prefix="$art" "$work" >>"$log" 2>&1 || rc=$?
	fi
	echo "$rc" >"$OUT/$t.rc"
}

for t in $TARGETS; do
	if [ -z "${SOURCES[$t]+x}" ] || [ ! -f "tests/fuzz/fuzz_$t.c" ]; then
		echo "fuzz: unknown target '$t' (targets: $ALL_TARGETS)" >&2
		exit 2
	fi
done

built=""
for t in $TARGETS; do
	if build "$t"; then
		built="$built $t"
	else
		echo "fuzz: $t: build failed:" >&2
		cat "$OUT/$t.build.log" >&2
		status=1
	fi
done

jobs_max=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}
for t in $built; do
	rm -f "$OUT/$t.rc"
	while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do
		wait -n
	done
	run "$t" &
done
wait

for t in $built; do
	rc=$(cat "$OUT/$t.rc" 2>/dev/null || echo 1)
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$OUT/$t.log" | tail -1)
	cov=$(sed -n 's/^#[0-9]*.*DONE *cov: \([0-9]*\).*/\1/p' "$OUT/$t.log" | tail -1)
	if [ "$rc" = 0 ]; then
		printf 'fuzz %-13s ok      %10s execs  cov %s\n' "$t" "${execs:-0}" "${cov:-?}"
	else
		status=1
		what="fuzzing"
		grep -q '^== fuzzing' "$OUT/$t.log" || what="a regression input"
		printf 'fuzz %-13s FAILED  %10s execs  (%s failed, exit %s; log %s, inputs in %s)\n' \
			"$t" "${execs:-0}" "$what" "$rc" "$OUT/$t.log" "$OUT/artifacts/$t/"
		# the report itself, so that CI logs show it
		grep -E -A40 '^==[0-9]+==ERROR|runtime error|^SUMMARY|deadly signal|Test unit written' \
			"$OUT/$t.log" | head -80 >&2
	fi
done
exit $status
