#!/bin/sh
# worker/test.sh - the Worker's tests in the project's PASS/FAIL format.
#
# Installs the pinned toolchain (npm ci) when node_modules is missing, runs
# the vitest suite inside workerd (the Workers runtime) with a JSON report,
# prints "PASS name" / "FAIL name: why" per test, then checks that the
# Worker builds for deployment (wrangler deploy --dry-run, no account
# needed).  Exits non-zero when anything failed.  Called by tests/run.sh.
set -u
cd "$(dirname "$0")" || exit 1

tmp=$(mktemp -d "${TMPDIR:-/tmp}/edgemail-worker-test.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM

# No telemetry, no lookups of Cloudflare's request metadata, no user config.
export WRANGLER_SEND_METRICS=false
export WRANGLER_SEND_ERROR_REPORTS=false
export CLOUDFLARE_CF_FETCH_ENABLED=false
export XDG_CONFIG_HOME="$tmp/config"
export NO_COLOR=1
mkdir -p "$XDG_CONFIG_HOME"

failed=0

if [ ! -x node_modules/.bin/vitest ] || [ ! -x node_modules/.bin/wrangler ]; then
	echo "installing the Worker's toolchain (npm ci)"
	if ! npm ci --no-audit --no-fund >"$tmp/npm-ci.log" 2>&1; then
		cat "$tmp/npm-ci.log"
		echo "FAIL worker npm ci: see the log above"
		exit 1
	fi
fi

report="$tmp/vitest.json"
node_modules/.bin/vitest run --reporter=default --reporter=json \
    --outputFile.json="$report"
vitest_rc=$?

if [ -s "$report" ]; then
	node - "$report" <<'EOF' || failed=1
// Turn vitest's JSON report into one PASS/FAIL line per test.
const fs = require("fs");
const report = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const one_line = (s) => String(s || "").split("\n").map((l) => l.trim())
    .filter((l) => l !== "").slice(0, 2).join(" / ").slice(0, 300);
let bad = 0;
for (const file of report.testResults || []) {
	const name = file.name.replace(/^.*\/test\//, "");
	if ((file.assertionResults || []).length === 0 &&
	    file.status !== "passed") {
		console.log(`FAIL worker ${name}: ${one_line(file.message)}`);
		bad++;
	}
	for (const t of file.assertionResults || []) {
		const title = ["worker", ...t.ancestorTitles, t.title]
		    .join(" > ");
		if (t.status === "passed") {
			console.log(`PASS ${title}`);
		} else if (t.status === "failed") {
			console.log(`FAIL ${title}: ` +
			    one_line((t.failureMessages || [])[0]));
			bad++;
		}
	}
}
process.exit(bad ? 1 : 0);
EOF
	if [ "$vitest_rc" != 0 ] && [ "$failed" = 0 ]; then
		echo "FAIL worker vitest: exited $vitest_rc"
		failed=1
	fi
else
	echo "FAIL worker vitest: no JSON report (exit $vitest_rc)"
	failed=1
fi

if node_modules/.bin/wrangler deploy --dry-run --outdir "$tmp/dist" \
    >"$tmp/deploy.log" 2>&1 && [ -s "$tmp/dist/index.js" ]; then
	echo "PASS worker > wrangler deploy --dry-run"
else
	cat "$tmp/deploy.log"
	echo "FAIL worker > wrangler deploy --dry-run: see the log above"
	failed=1
fi

exit "$failed"
