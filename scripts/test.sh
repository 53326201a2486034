#!/usr/bin/env bash
# scripts/test.sh — sets everything up on a fresh Debian 12 machine and runs every test.
#
# Installs what is missing, builds twice (a warnings-as-errors build, and the same with
# AddressSanitizer + UndefinedBehaviorSanitizer that the tests run under), starts throwaway
# PostgreSQL and MariaDB servers on free loopback ports, runs the whole `meson test` suite,
# stops the servers, and ends with the line "N passed, N failed".
# A skipped test counts as failed here: this script provides everything the tests need.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$XATM_ROOT"

xatm_install_deps
xatm_build build-werror --werror
xatm_build build-san --werror -Db_sanitize=address,undefined -Db_lundef=false

SERVERS="$(xatm_tmpdir test-servers)"
cleanup() { scripts/servers.sh stop "$SERVERS" >/dev/null 2>&1 || true; rm -rf "$SERVERS"; }
trap cleanup EXIT
scripts/servers.sh start "$SERVERS"
# shellcheck disable=SC1091
. "$SERVERS/env"

xatm_log "running the test suite (sanitizer build)"
set +e
meson test -C build-san --print-errorlogs --num-processes 2 "$@"
rc=$?
# the unit tests once more without sanitizers: code compiled only there (gtx.c's cache of
# freed transaction nodes, off under ASan) is otherwise never run
rm -f build-werror/meson-logs/testlog.json
if [ $# -eq 0 ]; then
    xatm_log "running the unit tests (build without sanitizers)"
    meson test -C build-werror --print-errorlogs --num-processes 2 --suite unit || rc=1
fi
set -e

read -r passed failed skipped < <(python3 - build-san/meson-logs/testlog.json \
    build-werror/meson-logs/testlog.json <<'PY'
import json, sys
import os
p = f = s = 0
for line in (l for path in sys.argv[1:] if os.path.exists(path) for l in open(path)):
    r = json.loads(line)["result"]
    if r in ("OK", "EXPECTEDFAIL"): p += 1
    elif r == "SKIP": s += 1
    else: f += 1
print(p, f, s)
PY
)
if [ "$skipped" -gt 0 ]; then
    echo "ERROR: $skipped test(s) were skipped although this script provides their servers; counted as failed" >&2
    failed=$((failed + skipped))
fi
echo "$passed passed, $failed failed"
[ "$rc" -eq 0 ] && [ "$failed" -eq 0 ]
