#!/usr/bin/env bash
# lint.sh - static analysis of every C file under src/: clang-tidy with the
# checks chosen in .clang-tidy, then cppcheck.  Any finding of either fails.
#
# clang-tidy gets the build's own flags (C17, _GNU_SOURCE, -Isrc and the
# libraries' pkg-config flags) so it sees what the compiler sees; files are
# checked LINT_JOBS at a time (default: the number of CPUs).  cppcheck
# looks for warning, performance and portability problems with its POSIX
# library description.  A finding that is wrong in one place is silenced
# there with `// cppcheck-suppress ID` or `// NOLINT(check)` and a reason.
#
# Usage: scripts/lint.sh [FILE.c...]     (default: src/*.c src/*/*.c)
# Exit status: 0 clean, 1 findings, 2 a tool is missing.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

PKGS="libevent libevent_openssl libevent_pthreads libcares jansson libsodium sqlite3 openssl"
TIDY=${CLANG_TIDY:-clang-tidy}
JOBS=${LINT_JOBS:-$(nproc 2>/dev/null || echo 2)}
OUT=build/lint

for tool in "$TIDY" cppcheck pkg-config; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "lint: $tool is missing (make deps installs clang-tidy and cppcheck)" >&2
		exit 2
	fi
done
# shellcheck disable=SC2086 # one word per package
if ! PKG_CFLAGS=$(pkg-config --cflags $PKGS); then
	echo "lint: development packages missing (run make deps)" >&2
	exit 2
fi

if [ $# -gt 0 ]; then
	FILES=("$@")
else
	FILES=(src/*.c src/*/*.c) # the shell sorts a glob's matches
fi
rm -rf "$OUT"
mkdir -p "$OUT"
export TIDY OUT PKG_CFLAGS

# tidy_one FILE - clang-tidy on FILE; its findings into OUT/NAME.tidy.
tidy_one()
{
	local f=$1 log
	log=$OUT/$(echo "$f" | tr / _).tidy
	# shellcheck disable=SC2086 # the flags are a list
	"$TIDY" --quiet "$f" -- -std=c17 -D_GNU_SOURCE -Isrc $PKG_CFLAGS >"$log" 2>&1
	echo $? >"$log.rc"
}
export -f tidy_one

start=$(date +%s)
# shellcheck disable=SC2016 # $1 is the inner shell's, not ours
printf '%s\n' "${FILES[@]}" | xargs -P "$JOBS" -I{} bash -c 'tidy_one "$1"' _ {}
tidy_time=$(($(date +%s) - start))

# The findings, each once (a header's is reported by every file including it).
cat "$OUT"/*.tidy | grep -E '^[^ ].*: (warning|error): ' | sort -u >"$OUT/clang-tidy.txt"
failed_runs=$(grep -lv '^0$' "$OUT"/*.rc 2>/dev/null | wc -l)
tidy_n=$(wc -l <"$OUT/clang-tidy.txt")
if [ "$tidy_n" -gt 0 ]; then
	echo "== clang-tidy: $tidy_n finding(s)"
	cat "$OUT/clang-tidy.txt"
elif [ "$failed_runs" -gt 0 ]; then
	echo "== clang-tidy failed on $failed_runs file(s):"
	for rc in "$OUT"/*.rc; do
		[ "$(cat "$rc")" = 0 ] || tail -20 "${rc%.rc}"
	done
	tidy_n=$failed_runs
fi

# readdirCalled: readdir_r is deprecated (glibc 2.24, POSIX.1-2024); readdir
# on a DIR that one thread owns is safe.
start=$(date +%s)
cppcheck --enable=warning,performance,portability --error-exitcode=1 --inline-suppr \
	--std=c11 --library=posix -D_GNU_SOURCE -Isrc -j "$JOBS" --quiet \
	--suppress=readdirCalled \
	--template='{file}:{line}:{column}: {severity}: {message} [{id}]' \
	"${FILES[@]}" >"$OUT/cppcheck.log" 2>&1
cpp_rc=$?
cppcheck_time=$(($(date +%s) - start))
grep -E '^[^ ].*:[0-9]+:[0-9]+: ' "$OUT/cppcheck.log" | sort -u >"$OUT/cppcheck.txt"
cpp_n=$(wc -l <"$OUT/cppcheck.txt")
if [ "$cpp_n" -gt 0 ]; then
	echo "== cppcheck: $cpp_n finding(s)"
	cat "$OUT/cppcheck.txt"
elif [ "$cpp_rc" -ne 0 ]; then
	echo "== cppcheck failed (exit $cpp_rc):"
	tail -20 "$OUT/cppcheck.log"
	cpp_n=1
fi

echo "lint: ${#FILES[@]} files; clang-tidy $tidy_n finding(s) in ${tidy_time}s," \
	"cppcheck $cpp_n finding(s) in ${cppcheck_time}s"
[ "$tidy_n" -eq 0 ] && [ "$cpp_n" -eq 0 ]
