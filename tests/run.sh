#!/bin/sh
# tests/run.sh - run every test suite and print one summary line.
#
# Each suite prints "PASS name" / "FAIL name: why" lines; this script runs
# the suites (C unit tests, Python scenario tests against real daemons, the
# Worker's vitest suite), keeps each suite's full output in tests/out/, and
# ends with "N passed, M failed".  A suite that exits non-zero without a
# FAIL line counts as one failure.
#
#   tests/run.sh                 everything
#   tests/run.sh unit            only suites whose name contains "unit"
#   EDGEMAIL_BIN=bin-san tests/run.sh    the same on the sanitizer build
set -u
cd "$(dirname "$0")/.."
top=$(pwd)
out=$top/tests/out
mkdir -p "$out"
filter=${1:-}
PY=/usr/bin/python3		# Debian's python: python3-dkim, aiosmtpd, dnspython
export EDGEMAIL_TOP="$top"

passed=0
failed=0
failures=""

run_suite() {	# name, command...
	name=$1; shift
	case "$name" in *"$filter"*) ;; *) return ;; esac
	log="$out/$name.log"
	start=$(date +%s)
	"$@" >"$log" 2>&1 </dev/null
	rc=$?
	p=$(grep -ac '^PASS ' "$log")
	f=$(grep -ac '^FAIL ' "$log")
	if [ "$rc" != 0 ] && [ "$f" = 0 ]; then
		echo "FAIL $name: exited $rc without a FAIL line" >>"$log"
		f=1
	fi
	passed=$((passed + p))
	failed=$((failed + f))
	printf '%-40s %4d passed %3d failed  %3ss\n' "$name" "$p" "$f" $(( $(date +%s) - start ))
	if [ "$f" != 0 ]; then
		failures="$failures$(grep -a '^FAIL ' "$log" | sed "s|^|  [$name] |")
"
	fi
}

BIN=${EDGEMAIL_BIN:-bin}		# bin-san: the sanitizer build
case "$BIN" in /*) ;; *) BIN=$top/$BIN ;; esac
export EDGEMAIL_BIN="$BIN"
for t in "$BIN"/tests/*; do
	[ -x "$t" ] || continue
	run_suite "unit-$(basename "$t")" "$t"
done
for t in tests/scenario/test_*.py; do
	[ -f "$t" ] || continue
	run_suite "scenario-$(basename "$t" .py)" "$PY" "$t"
done
for t in tests/scenario/test_*.sh; do
	[ -f "$t" ] || continue
	run_suite "scenario-$(basename "$t" .sh)" sh "$t"
done
if [ -f worker/package.json ]; then
	run_suite "worker-vitest" sh worker/test.sh
fi

if [ -n "$failures" ]; then
	echo
	echo "Failures (full logs in tests/out/):"
	printf '%s' "$failures"
fi
echo
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
