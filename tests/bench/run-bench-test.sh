#!/usr/bin/env bash
# tests/bench/run-bench-test.sh XATM_BENCH DECLOG_BENCH — the meson test `bench_compare`
# (tests/bench/meson.build says what it asserts). Starts its own xatmd (XATMD from
# test_env) on the servers named by XATM_TEST_*; exits 77, saying why, without them.
set -euo pipefail
XATM_BENCH="$1"
DECLOG_BENCH="$2"

# shellcheck disable=SC1091
. "${XATM_SOURCE_ROOT:?XATM_SOURCE_ROOT is not set (it comes from tests/meson.build test_env)}/scripts/lib.sh"
xatm_require_test_servers bench_compare
: "${XATMD:?XATMD is not set (it comes from tests/meson.build test_env)}"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/xatm-bench-test.XXXXXX")"
XATMD_PID=""
cleanup() {
    if [ -n "$XATMD_PID" ] && kill -0 "$XATMD_PID" 2>/dev/null; then
        kill -KILL "$XATMD_PID"; wait "$XATMD_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

{
    cat <<YAML
tm:
  id: benchci
  socket: $WORK/xatmd.sock
  admin_socket: $WORK/xatmd-admin.sock
  log_dir: $WORK/log
  transaction_timeout: 30s
rms:
YAML
    xatm_rms_yaml
} >"$WORK/xatm.yaml"

"$XATMD" -c "$WORK/xatm.yaml" >"$WORK/xatmd.log" 2>&1 &
XATMD_PID=$!
for _ in $(seq 1 300); do
    grep -q "xatmd: ready" "$WORK/xatmd.log" && break
    if ! kill -0 "$XATMD_PID" 2>/dev/null; then cat "$WORK/xatmd.log" >&2; exit 1; fi
    sleep 0.1
done
grep -q "xatmd: ready" "$WORK/xatmd.log" || { echo "xatmd did not start" >&2; cat "$WORK/xatmd.log" >&2; exit 1; }

echo "== xatm-bench --compare (1 round, ~1 s per mode)"
"$XATM_BENCH" -c "$WORK/xatm.yaml" --compare --rounds 1 --duration 1 --warmup 0.2 \
    --clients 2 --rows 200 --xatmd-pid "$XATMD_PID" --json >"$WORK/compare.json"
cat "$WORK/compare.json"
echo "== xatm-bench --mode bare-lr (~1 s: the decision-in-a-branch protocol by hand)"
"$XATM_BENCH" -c "$WORK/xatm.yaml" --mode bare-lr --duration 1 --warmup 0.2 \
    --clients 2 --rows 200 --xatmd-pid "$XATMD_PID" --json >"$WORK/lr.json"
cat "$WORK/lr.json"
echo "== xatm-bench --rss-live 20"
"$XATM_BENCH" -c "$WORK/xatm.yaml" --rss-live 20 --no-setup --xatmd-pid "$XATMD_PID" \
    --json >"$WORK/rss.json"
cat "$WORK/rss.json"
echo "== declog-bench (0.3 s per point)"
"$DECLOG_BENCH" --dir "$WORK" --writers 1,8 --duration 0.3 --warmup 0.1 --json >"$WORK/declog.json"
cat "$WORK/declog.json"

python3 - "$WORK/compare.json" "$WORK/rss.json" "$WORK/declog.json" "$WORK/lr.json" <<'PY'
import json, numbers, sys
bad = []
lr = json.load(open(sys.argv[4]))
if lr.get("totals_ok") is not True or not lr.get("modes", {}).get("bare_lr", {}).get("transactions", 0) > 0:
    bad.append(f"bare-lr: no transaction or totals not conserved: {lr!r}")
c = json.load(open(sys.argv[1]))
for k in ("ratio_xatm_bare_xa", "ratio_xatm_local"):
    if not isinstance(c.get(k), numbers.Real) or c[k] <= 0:
        bad.append(f"{k} missing or not a positive number: {c.get(k)!r}")
if c.get("totals_ok") is not True:
    bad.append("totals_ok is not true")
if c.get("totals_checks") != 3:
    bad.append(f"expected 3 totals checks, got {c.get('totals_checks')!r}")
for m in ("local", "bare_xa", "xatm"):
    x = c.get("modes", {}).get(m)
    if not x or not x.get("transactions", 0) > 0:
        bad.append(f"mode {m} ran no transaction")
        continue
    for k in ("tps", "p50_ms", "p99_ms", "p999_ms", "client_cpu_us_per_txn"):
        if not isinstance(x.get(k), numbers.Real):
            bad.append(f"mode {m}: {k} missing")
if not isinstance(c.get("modes", {}).get("xatm", {}).get("xatmd_cpu_us_per_txn"), numbers.Real):
    bad.append("xatm: xatmd_cpu_us_per_txn missing")
r = json.load(open(sys.argv[2]))
if r.get("live_transactions") != 20 or not r.get("xatmd_rss_kib", 0) > 0:
    bad.append(f"rss-live: {r!r}")
d = json.load(open(sys.argv[3]))
if not d.get("raw_fdatasync_per_s", 0) > 0:
    bad.append("declog: no raw fdatasync rate")
pts = d.get("points", [])
if [p.get("writers") for p in pts] != [1, 8] or not all(p.get("decisions_per_s", 0) > 0 for p in pts):
    bad.append(f"declog points: {pts!r}")
for b in bad:
    print("FAIL:", b)
sys.exit(1 if bad else 0)
PY

# stop_xatmd: SIGTERM, and a clean exit is required.
stop_xatmd() {
    kill -TERM "$XATMD_PID"
    local rc=0
    wait "$XATMD_PID" || rc=$?
    XATMD_PID=""
    if [ "$rc" -ne 0 ]; then echo "xatmd exited $rc at SIGTERM" >&2; cat "$WORK/xatmd.log" >&2; exit 1; fi
}
stop_xatmd

# The decision in a branch (tm.decision_rm: pg): xatmd restarted with that config, then
# xatm mode with the decider for about a second; totals conserved, transactions made.
pg_sql() {
    PGPASSWORD="$XATM_TEST_PG_PASSWORD" psql -h "$XATM_TEST_PG_HOST" -p "$XATM_TEST_PG_PORT" \
        -U "$XATM_TEST_PG_USER" -d "$XATM_TEST_PG_DB" -tAc "$1"
}
# every run is tm benchci with a fresh log (epoch 1): rows of an earlier run's gtrids
# would decide this run's transactions of the same gtrid (an abort row aborts them)
pg_sql "CREATE TABLE IF NOT EXISTS xatm_decisions (gtrid varchar(64) PRIMARY KEY, outcome char(1) NOT NULL, created timestamptz NOT NULL DEFAULT now())" >/dev/null
pg_sql "DELETE FROM xatm_decisions WHERE gtrid LIKE 'benchci.%'" >/dev/null
sed 's/^  transaction_timeout: 30s$/  transaction_timeout: 30s\n  decision_rm: pg/' \
    "$WORK/xatm.yaml" >"$WORK/xatm-decider.yaml"
grep -q '^  decision_rm: pg$' "$WORK/xatm-decider.yaml"
"$XATMD" -c "$WORK/xatm-decider.yaml" >>"$WORK/xatmd.log" 2>&1 &
XATMD_PID=$!
for _ in $(seq 1 300); do
    [ "$(grep -c "xatmd: ready" "$WORK/xatmd.log")" -ge 2 ] && break
    if ! kill -0 "$XATMD_PID" 2>/dev/null; then cat "$WORK/xatmd.log" >&2; exit 1; fi
    sleep 0.1
done
echo "== xatm-bench --mode xatm --decider pg (~1 s: decision in a branch)"
"$XATM_BENCH" -c "$WORK/xatm-decider.yaml" --mode xatm --decider pg --duration 1 \
    --warmup 0.2 --clients 2 --rows 200 --no-setup --xatmd-pid "$XATMD_PID" --json \
    >"$WORK/decider.json"
cat "$WORK/decider.json"
python3 - "$WORK/decider.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
bad = []
if d.get("decider") != "pg":
    bad.append(f"decider is {d.get('decider')!r}, expected 'pg'")
if d.get("totals_ok") is not True or not d.get("modes", {}).get("xatm", {}).get("transactions", 0) > 0:
    bad.append(f"xatm with the decider: no transaction or totals not conserved: {d!r}")
for b in bad:
    print("FAIL:", b)
sys.exit(1 if bad else 0)
PY
# every commit row is deleted by libxatm once phase 2 is done (batches, and at xatm_close)
left="$(pg_sql "SELECT count(*) FROM xatm_decisions WHERE gtrid LIKE 'benchci.%'")"
if [ "$left" != "0" ]; then echo "FAIL: $left decision rows of benchci left in xatm_decisions" >&2; exit 1; fi
stop_xatmd

# Recovery of 120 in-doubt transactions (a quarter presumed abort): enough for recovery's
# phase-2 session pool (one extra session per 16 branches of an RM), with the first
# recovering xatmd killed before its 40th COMMIT PREPARED call (inside a batch), then
# restarted. xatm-bench --recovery starts and stops its own xatmd (another TM id and
# log). It checks the totals and every transaction's rows (xatm-bench.c, check_outcomes).
echo "== xatm-bench --recovery 120 --recovery-kill tm.recovery_before_commit@40"
mkdir -p "$WORK/rec"
{
    cat <<YAML
tm:
  id: benchrec
  socket: $WORK/rec/xatmd.sock
  log_dir: $WORK/rec/log
  transaction_timeout: 3s
rms:
YAML
    xatm_rms_yaml
} >"$WORK/rec/xatm.yaml"
rec_rc=0
"$XATM_BENCH" -c "$WORK/rec/xatm.yaml" --recovery 120 --recovery-abort-percent 25 \
    --recovery-kill tm.recovery_before_commit@40 --xatmd "$XATMD" --recovery-timeout 120 \
    --json >"$WORK/rec.json" || rec_rc=$?
cat "$WORK/rec.json"
if [ "$rec_rc" -ne 0 ]; then
    echo "FAIL: xatm-bench --recovery exited $rec_rc; its xatmd's log:" >&2
    tail -50 "$WORK/rec/log/xatmd-bench-recovery.log" >&2
    exit 1
fi
python3 - "$WORK/rec.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
bad = []
if r.get("totals_ok") is not True:
    bad.append("recovery: totals or rows wrong")
if not 0 < r.get("in_doubt_at_kill", -1) < 240:
    bad.append(f"recovery: the kill did not land inside recovery: {r.get('in_doubt_at_kill')!r} of 240 branches in doubt")
if not r.get("zero_in_doubt_s", -1) > 0:
    bad.append("recovery: branches still in doubt")
for b in bad:
    print("FAIL:", b)
sys.exit(1 if bad else 0)
PY
echo "bench_compare: OK"
