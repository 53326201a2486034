#!/usr/bin/env bash
# scripts/demo.sh — the main job, end to end, on a fresh Debian 12 machine.
#
# Installs what is missing, builds, starts throwaway PostgreSQL and MariaDB servers and
# xatmd, and runs the transfer example: money moves between an accounts table in
# PostgreSQL and one in MariaDB, each transfer one global transaction. It shows the totals
# before and after; then it kills xatmd (kill -9) in the middle of a second run, restarts
# it, and shows that recovery left no branch in doubt and the totals still match.
# Stops everything it started. Options: --workers N (4), --transfers N per worker (250),
# --protocol 2pc|3pc (2pc): the commit protocol of every transfer. With 3pc the kill lands
# in three-phase commits: an application that has prepared and acknowledged PreCommit
# commits on its own when xatmd vanishes (tm.participant_timeout_action: commit), and the
# restarted xatmd's termination rule finds the marker rows; the totals still match.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$XATM_ROOT"

WORKERS=4
TRANSFERS=250
PROTOCOL=2pc
while [ $# -gt 0 ]; do
    case "$1" in
        --workers) WORKERS="$2"; shift 2 ;;
        --transfers) TRANSFERS="$2"; shift 2 ;;
        --protocol)
            PROTOCOL="$2"; shift 2
            case "$PROTOCOL" in 2pc|3pc) ;; *) echo "demo.sh: --protocol 2pc|3pc" >&2; exit 2 ;; esac
            ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "demo.sh: unknown option $1" >&2; exit 2 ;;
    esac
done

xatm_install_deps
xatm_build build-demo --buildtype=release
BIN="$XATM_ROOT/build-demo"

WORK="$(xatm_tmpdir demo)"
XATMD_PID=""
cleanup() {
    if [ -n "$XATMD_PID" ] && kill -0 "$XATMD_PID" 2>/dev/null; then
        kill -TERM "$XATMD_PID"; wait "$XATMD_PID" 2>/dev/null || true
    fi
    scripts/servers.sh stop "$WORK/servers" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -m 755 "$WORK/servers"
scripts/servers.sh start "$WORK/servers"
# shellcheck disable=SC1091
. "$WORK/servers/env"

CONFIG="$WORK/xatm.yaml"
{
    cat <<YAML
tm:
  id: demo
  socket: $WORK/xatmd.sock
  admin_socket: $WORK/xatmd-admin.sock
  log_dir: $WORK/log
  transaction_timeout: 10s
  recovery_interval: 1s
  precommit_timeout: 2s
  participant_timeout: 4s
  participant_timeout_action: commit
rms:
YAML
    xatm_rms_yaml
} >"$CONFIG"

start_xatmd() {
    "$BIN/tm/xatmd" -c "$CONFIG" >>"$WORK/xatmd.log" 2>&1 &
    XATMD_PID=$!
    local i
    for i in $(seq 1 300); do
        if grep -q "xatmd: ready" <(tail -n 20 "$WORK/xatmd.log"); then return 0; fi
        if ! kill -0 "$XATMD_PID" 2>/dev/null; then break; fi
        sleep 0.1
    done
    echo "demo.sh: xatmd did not start; its log:" >&2
    cat "$WORK/xatmd.log" >&2
    return 1
}

transfer() { "$BIN/examples/xatm-transfer" -c "$CONFIG" "$@"; }

echo
echo "== 1. xatmd coordinates transfers between PostgreSQL and MariaDB ($PROTOCOL)"
start_xatmd
transfer setup --accounts 100 --balance 1000
echo "-- totals before:"
transfer check
transfer run --workers "$WORKERS" --transfers "$TRANSFERS" --abort-percent 5 --protocol "$PROTOCOL"
echo "-- totals after:"
transfer check

echo
echo "== 2. kill -9 xatmd in the middle of a run, restart it, let recovery finish"
transfer run --workers "$WORKERS" --transfers $((TRANSFERS * 8)) --reconnect-timeout 60 \
    --protocol "$PROTOCOL" >"$WORK/run2.out" 2>&1 &
RUN_PID=$!
sleep 1
echo "-- kill -9 xatmd (pid $XATMD_PID) while transfers are in flight"
kill -KILL "$XATMD_PID"
wait "$XATMD_PID" 2>/dev/null || true
sleep 1
echo "-- in doubt right now (prepared branches on the servers):"
echo "   pg: $(PGPASSWORD=$XATM_TEST_PG_PASSWORD psql -h "$XATM_TEST_PG_HOST" -p "$XATM_TEST_PG_PORT" -U "$XATM_TEST_PG_USER" -d "$XATM_TEST_PG_DB" -Atc "SELECT count(*) FROM pg_prepared_xacts WHERE gid LIKE 'xatm:%'")" \
     " my: $(mariadb -h "$XATM_TEST_MY_HOST" -P "$XATM_TEST_MY_PORT" -u "$XATM_TEST_MY_USER" -p"$XATM_TEST_MY_PASSWORD" -N -e 'XA RECOVER' | wc -l)"
echo "-- restart xatmd"
start_xatmd
wait "$RUN_PID" || true
grep -E '^transfers:' "$WORK/run2.out" || cat "$WORK/run2.out"
echo "-- waiting for recovery to leave no branch in doubt"
for i in $(seq 1 120); do
    if transfer check >"$WORK/check.out" 2>&1; then break; fi
    sleep 0.5
done
echo "-- totals after the crash:"
cat "$WORK/check.out"
# list shows each branch as recovery's latest scan saw it: ask for a fresh pass first
"$BIN/tm/xatmctl" -c "$CONFIG" recover >/dev/null
echo "-- xatmctl list (after a fresh recovery pass):"
"$BIN/tm/xatmctl" -c "$CONFIG" list
echo "-- what recovery did (xatmd log):"
grep -E "recovery" "$WORK/xatmd.log" | tail -n 12 || true
grep -q '^CONSISTENT' "$WORK/check.out"
echo
echo "demo: OK"
