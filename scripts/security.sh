#!/bin/bash
# security.sh - scan a fresh ternd with testssl.sh and nmap.
#
# Starts its own ternd on free loopback ports with a temporary data_dir,
# then:
#   - testssl.sh --starttls smtp against the submission listener (RFC 3207)
#     and testssl.sh against the smtps listener (RFC 8314): any finding of
#     severity HIGH or CRITICAL fails;
#   - nmap's smtp-open-relay, smtp-enum-users and smtp-commands scripts
#     against the smtp listener: an open relay or an enumerated user fails.
# The server certificate comes from a throw-away CA made here and handed to
# testssl.sh with --add-ca, so that the scan judges the TLS set-up of the
# server rather than the trust of a self-signed certificate.
#
# Usage: scripts/security.sh            (TERN_BUILD=DIR picks the build, default build/)
# Exit status: 0 clean, 1 a finding, 2 the scan could not run.
# KEEP=1 keeps the temporary directory with the reports and ternd's log.
set -u

REPO=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${TERN_BUILD:-$REPO/build}
TERND=$BUILD/ternd
TERNCTL=$BUILD/ternctl
PY=/usr/bin/python3
DOMAIN=tern.test

die() {
	echo "security.sh: $*" >&2
	exit 2
}

if [ ! -x "$TERND" ] || [ ! -x "$TERNCTL" ]; then
	die "ternd or ternctl not built in $BUILD (run make)"
fi
[ -x "$PY" ] || die "$PY is missing"

# --- tools ---------------------------------------------------------------

TESTSSL=$(command -v testssl.sh || command -v testssl || true)
NMAP=$(command -v nmap || true)
if [ -z "$TESTSSL" ] || [ -z "$NMAP" ]; then
	[ "$(id -u)" = 0 ] || die "testssl.sh and nmap are needed: apt-get install testssl.sh nmap"
	echo "== installing testssl.sh and nmap"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y testssl.sh nmap >/dev/null ||
		{ apt-get update >/dev/null && apt-get install -y testssl.sh nmap >/dev/null; } ||
		die "apt-get install testssl.sh nmap failed"
	TESTSSL=$(command -v testssl.sh || command -v testssl || true)
	NMAP=$(command -v nmap || true)
	if [ -z "$TESTSSL" ] || [ -z "$NMAP" ]; then
		die "testssl.sh or nmap still missing"
	fi
fi

# --- a fresh daemon --------------------------------------------------------

TMP=$(mktemp -d /tmp/tern-security.XXXXXX) || die "mktemp failed"
chmod 755 "$TMP" # ternd drops to nobody when started as root
PID=

# shellcheck disable=SC2317 # called by the trap
cleanup() {
	if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
		kill -TERM "$PID"
		wait "$PID" 2>/dev/null
	fi
	if [ "${KEEP:-0}" = 1 ]; then
		echo "security.sh: files kept in $TMP"
	else
		rm -rf "$TMP"
	fi
}
trap cleanup EXIT
trap 'exit 2' INT TERM

# Four distinct free ports below the ephemeral range.
read -r SMTP SUB SMTPS HTTP < <("$PY" - <<'EOF'
import random, socket
ports = []
while len(ports) < 4:
    p = random.randint(20000, 32000)
    if p in ports:
        continue
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", p))
        except OSError:
            continue
    ports.append(p)
print(*ports)
EOF
)

# A CA and a server certificate for 127.0.0.1 signed by it.
CERTS=$TMP/certs
mkdir -p "$CERTS" && chmod 755 "$CERTS"
(
	cd "$CERTS" || exit 1
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
		-subj "/CN=tern security scan CA" -keyout ca-key.pem -out ca.pem &&
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
			-subj "/CN=localhost" -keyout key.pem -out req.pem &&
		printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" \
			"basicConstraints=critical,CA:FALSE" \
			"keyUsage=critical,digitalSignature" \
			"extendedKeyUsage=serverAuth" \
			"crlDistributionPoints=URI:http://127.0.0.1:$HTTP/ca.crl" \
			"authorityInfoAccess=OCSP;URI:http://127.0.0.1:$HTTP/ocsp" >ext.cnf &&
		openssl x509 -req -in req.pem -CA ca.pem -CAkey ca-key.pem -CAcreateserial \
			-days 365 -sha256 -extfile ext.cnf -out cert.pem &&
		chmod 644 cert.pem key.pem
) >"$TMP/openssl.log" 2>&1 || die "cannot make certificates: $(cat "$TMP/openssl.log")"

CONF=$TMP/tern.conf
{
	echo "hostname localhost"
	echo "data_dir $TMP/data"
	[ "$(id -u)" = 0 ] && echo "user nobody"
	echo "listen smtp 127.0.0.1:$SMTP"
	echo "listen submission 127.0.0.1:$SUB"
	echo "listen smtps 127.0.0.1:$SMTPS"
	echo "tls_cert $CERTS/cert.pem"
	echo "tls_key $CERTS/key.pem"
	# The scanners open hundreds of connections from one address.
	echo "max_connection_rate 1000000"
	echo "max_connections_per_ip 1000"
	echo "auth_failure_delay 0"
	# Each refused recipient counts as an error; nmap's relay check makes
	# 16 attempts on one connection and must see them all answered.
	echo "max_errors 100"
} >"$CONF"

"$TERND" -t -c "$CONF" >"$TMP/check.log" 2>&1 || die "bad configuration: $(cat "$TMP/check.log")"
"$TERND" -c "$CONF" </dev/null >"$TMP/ternd.log" 2>&1 &
PID=$!

up=0
for _ in $(seq 1 200); do
	kill -0 "$PID" 2>/dev/null || die "ternd exited: $(tail -20 "$TMP/ternd.log")"
	if "$PY" -c "import socket,sys; socket.create_connection(('127.0.0.1', $SMTP), 1).close()" 2>/dev/null; then
		up=1
		break
	fi
	sleep 0.1
done
[ "$up" = 1 ] || die "ternd does not listen on $SMTP: $(tail -20 "$TMP/ternd.log")"

# Accounts named in nmap's user list, so that any disclosure would show.
ctl() { "$TERNCTL" -c "$CONF" "$@" >>"$TMP/ternctl.log" 2>&1 || die "ternctl $* failed"; }
ctl domain add "$DOMAIN"
for u in root admin test; do
	ctl user add "$u@$DOMAIN" <<<"a-long-password-$RANDOM$RANDOM"
done
ctl alias add "postmaster@$DOMAIN" "admin@$DOMAIN"

echo "== ternd $PID: smtp $SMTP, submission $SUB, smtps $SMTPS (files in $TMP)"

FAIL=0
SUMMARY=()

# --- testssl.sh ------------------------------------------------------------

# severe JSON - the HIGH and CRITICAL findings of a testssl.sh JSON report
# (one per line); exit 2 when the report is missing or says the scan failed.
severe() {
	"$PY" - "$1" <<'EOF'
import json, sys
try:
    with open(sys.argv[1]) as f:
        report = json.load(f)
except (OSError, ValueError) as e:
    print("no usable report: %s" % e)
    sys.exit(2)
found, fatal = [], []
def walk(node):
    if isinstance(node, dict):
        sev = node.get("severity")
        if isinstance(sev, str):
            line = "%s %s: %s" % (sev, node.get("id", "?"), node.get("finding", ""))
            if sev.upper() in ("HIGH", "CRITICAL"):
                found.append(line)
            elif sev.upper() == "FATAL":
                fatal.append(line)
        for v in node.values():
            walk(v)
    elif isinstance(node, list):
        for v in node:
            walk(v)
walk(report)
for line in found + fatal:
    print(line)
# With --severity HIGH a clean scan holds no results at all; that it ran
# to the end shows in its sections and its scan time.
results = report.get("scanResult") if isinstance(report, dict) else None
complete = (isinstance(results, list) and results and "scanTime" in report and
            all("targetHost" in r and "vulnerabilities" in r and "browserSimulations" in r
                for r in results))
if fatal or not complete:
    print("the scan did not complete")
    sys.exit(2)
sys.exit(1 if found else 0)
EOF
}

run_testssl() { # NAME TARGET [OPTIONS...]
	local name=$1 target=$2 json=$TMP/testssl-$1.json start rc
	shift 2
	echo "== testssl.sh $* $target ($name)"
	start=$(date +%s)
	"$TESTSSL" --quiet --color 0 --warnings off --add-ca "$CERTS/ca.pem" "$@" \
		--severity HIGH --jsonfile-pretty "$json" "$target" >"$TMP/testssl-$name.txt" 2>&1
	rc=$?
	local out
	out=$(severe "$json")
	case $? in
	0) SUMMARY+=("testssl $name: no HIGH or CRITICAL finding ($(($(date +%s) - start)) s)") ;;
	1)
		FAIL=1
		SUMMARY+=("testssl $name: FINDINGS")
		printf '%s\n' "$out" | sed 's/^/   /'
		;;
	*)
		FAIL=1
		SUMMARY+=("testssl $name: SCAN FAILED (exit $rc)")
		printf '%s\n' "$out" | sed 's/^/   /'
		tail -20 "$TMP/testssl-$name.txt" | sed 's/^/   /'
		;;
	esac
}

run_testssl submission "127.0.0.1:$SUB" --starttls smtp
run_testssl smtps "127.0.0.1:$SMTPS"

# --- nmap ------------------------------------------------------------------

echo "== nmap smtp-open-relay,smtp-enum-users,smtp-commands on $SMTP"
# -sV names the service smtp (the scripts only run on SMTP ports); RCPT is
# left out of the enumeration: refusing an unknown local recipient at RCPT
# (550 5.1.1) is what a mail server must do, VRFY and EXPN must not tell.
"$NMAP" -n -Pn -sT -sV --version-light -p "$SMTP" \
	--script smtp-open-relay,smtp-enum-users,smtp-commands \
	--script-args "smtp-open-relay.domain=$DOMAIN,smtp-enum-users.domain=$DOMAIN,smtp-enum-users.methods={VRFY,EXPN}" \
	127.0.0.1 >"$TMP/nmap.txt" 2>&1
rc=$?
sed 's/^/   /' "$TMP/nmap.txt"
if [ $rc -ne 0 ] || ! grep -q "smtp-commands" "$TMP/nmap.txt"; then
	FAIL=1
	SUMMARY+=("nmap: SCAN FAILED (exit $rc or the SMTP scripts did not run)")
else
	if grep -qi "server is an open relay" "$TMP/nmap.txt"; then
		FAIL=1
		SUMMARY+=("nmap smtp-open-relay: OPEN RELAY")
	elif grep -qi "doesn't seem to be an open relay" "$TMP/nmap.txt"; then
		SUMMARY+=("nmap smtp-open-relay: not an open relay")
	else
		FAIL=1
		SUMMARY+=("nmap smtp-open-relay: no verdict")
	fi
	# Found users are listed one per line under the script's header.
	users=$(sed -n '/smtp-enum-users:/,/^[^|]/p' "$TMP/nmap.txt" |
		grep -E '^\|[_ ]  *(root|admin|administrator|webadmin|sysadmin|netadmin|guest|user|web|test)$' || true)
	if [ -n "$users" ]; then
		FAIL=1
		SUMMARY+=("nmap smtp-enum-users: USERS ENUMERATED: $(echo "$users" | tr -s ' |_\n' ' ')")
	else
		SUMMARY+=("nmap smtp-enum-users: no user enumerated")
	fi
fi

if ! kill -0 "$PID" 2>/dev/null; then
	FAIL=1
	SUMMARY+=("ternd died during the scans")
fi
if grep -qE "ERROR: AddressSanitizer|runtime error:|LeakSanitizer" "$TMP/ternd.log"; then
	FAIL=1
	SUMMARY+=("sanitizer report in ternd's log")
fi

echo "== summary"
printf '   %s\n' "${SUMMARY[@]}"
if [ $FAIL -ne 0 ]; then
	echo "security.sh: FAILED"
	exit 1
fi
echo "security.sh: clean"
exit 0
