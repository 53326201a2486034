#!/usr/bin/env bash
# scripts/bench.sh — xatm's benchmarks on a fresh Debian 12 machine (docs/performance.md).
#
#   scripts/bench.sh [xatm-bench options]     e.g. --compare --clients 16 --duration 10
#   scripts/bench.sh declog [declog-bench options]
#
# Installs what is missing, makes a release build (build-bench), starts throwaway
# PostgreSQL and MariaDB servers, writes a config, starts xatmd (xatm-bench --recovery
# restarts xatmd itself, so there it is only given the binary), runs the benchmark with the
# options given, and stops everything it started. Without options: --compare.
#   --branches K   configures K/2 PostgreSQL and K/2 MariaDB RMs, each on its own database
#                  of the same two servers (pg, pg2, ... and my, my2, ...)
#   --recovery N   raises PostgreSQL's max_prepared_transactions above N first (restart)
#   --decider RM   writes tm.decision_rm: RM into the config (xatmd and libxatm both read
#                  it): xatm mode decides in RM's branch (docs/protocols.md)
# declog runs declog-bench with its log directory in the same temporary directory as the
# servers' data (the same disk), unless --dir is given.
# BENCH_BUILD=DIR uses another build directory; BENCH_KEEP=1 keeps the servers' directory.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$XATM_ROOT"

BUILD="${BENCH_BUILD:-build-bench}"
xatm_install_deps
xatm_build "$BUILD" --buildtype=release
BIN="$(cd "$BUILD" && pwd)"

WORK="$(xatm_tmpdir bench)"
XATMD_PID=""
cleanup() {
    if [ -n "$XATMD_PID" ] && kill -0 "$XATMD_PID" 2>/dev/null; then
        kill -TERM "$XATMD_PID"; wait "$XATMD_PID" 2>/dev/null || true
    fi
    if [ -d "$WORK/servers" ]; then
        scripts/servers.sh stop "$WORK/servers" >/dev/null 2>&1 || true
    fi
    if [ "${BENCH_KEEP:-0}" = 1 ]; then
        echo "bench.sh: kept $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

if [ "${1:-}" = declog ]; then
    shift
    have_dir=0
    for a in "$@"; do [ "$a" = --dir ] && have_dir=1; done
    if [ "$have_dir" = 1 ]; then
        "$BIN/bench/declog-bench" "$@"
    else
        "$BIN/bench/declog-bench" --dir "$WORK" "$@"
    fi
    exit $?
fi

ARGS=("$@")
[ "${#ARGS[@]}" -gt 0 ] || ARGS=(--compare)
BRANCHES=2
RECOVERY=0
DECIDER=""
HAVE_RMS=0
for ((i = 0; i < ${#ARGS[@]}; i++)); do
    case "${ARGS[$i]}" in
        --branches) BRANCHES="${ARGS[$((i + 1))]}" ;;
        --recovery) RECOVERY="${ARGS[$((i + 1))]}" ;;
        --decider) DECIDER="${ARGS[$((i + 1))]}" ;;
        --pg|--my) HAVE_RMS=1 ;;
    esac
done
NRM=$((BRANCHES / 2))
[ "$NRM" -ge 1 ] || NRM=1

mkdir -m 755 "$WORK/servers"
scripts/servers.sh start "$WORK/servers" >&2
# shellcheck disable=SC1091
. "$WORK/servers/env"
export PGPASSWORD="$XATM_TEST_PG_PASSWORD"
pgsql() { psql -X -q -h "$XATM_TEST_PG_HOST" -p "$XATM_TEST_PG_PORT" -U "$XATM_TEST_PG_USER" -d "$XATM_TEST_PG_DB" "$@"; }
mysql_() { mariadb -h "$XATM_TEST_MY_HOST" -P "$XATM_TEST_MY_PORT" -u "$XATM_TEST_MY_USER" -p"$XATM_TEST_MY_PASSWORD" "$@"; }

if [ "$RECOVERY" -gt 0 ]; then
    xatm_log "PostgreSQL: max_prepared_transactions = $((RECOVERY + 300)) (restart)"
    pgsql -c "ALTER SYSTEM SET max_prepared_transactions = $((RECOVERY + 300))"
    scripts/servers.sh restart pg "$WORK/servers" >&2
fi

# RM k (k >= 2) lives in database <db>k on the same server.
PG_RMS=pg MY_RMS=my
for ((k = 2; k <= NRM; k++)); do
    pgsql -c "CREATE DATABASE ${XATM_TEST_PG_DB}$k" >/dev/null
    mysql_ -e "CREATE DATABASE IF NOT EXISTS ${XATM_TEST_MY_DB}$k"
    PG_RMS="$PG_RMS,pg$k" MY_RMS="$MY_RMS,my$k"
done

CONFIG="$WORK/xatm.yaml"
{
    cat <<YAML
tm:
  id: bench
  socket: $WORK/xatmd.sock
  admin_socket: $WORK/xatmd-admin.sock
  log_dir: $WORK/log
  transaction_timeout: 30s
  recovery_interval: 10s
YAML
    [ -z "$DECIDER" ] || echo "  decision_rm: $DECIDER"
    echo "rms:"
    for ((k = 1; k <= NRM; k++)); do
        s=""; [ "$k" -gt 1 ] && s="$k"
        xatm_rms_yaml "$s"
    done
} >"$CONFIG"
RMARGS=()
[ "$HAVE_RMS" = 1 ] || RMARGS=(--pg "$PG_RMS" --my "$MY_RMS")

# many clients: a socket each
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

if [ "$RECOVERY" -gt 0 ]; then
    set +e
    "$BIN/bench/xatm-bench" -c "$CONFIG" "${RMARGS[@]}" --xatmd "$BIN/tm/xatmd" "${ARGS[@]}"
    rc=$?
    exit $rc
fi

"$BIN/tm/xatmd" -c "$CONFIG" >>"$WORK/xatmd.log" 2>&1 &
XATMD_PID=$!
for _ in $(seq 1 300); do
    if grep -q "xatmd: ready" "$WORK/xatmd.log"; then break; fi
    if ! kill -0 "$XATMD_PID" 2>/dev/null; then
        echo "bench.sh: xatmd did not start; its log:" >&2
        cat "$WORK/xatmd.log" >&2
        exit 1
    fi
    sleep 0.1
done
set +e
"$BIN/bench/xatm-bench" -c "$CONFIG" "${RMARGS[@]}" --xatmd-pid "$XATMD_PID" \
    --xatmctl "$BIN/tm/xatmctl" "${ARGS[@]}"
rc=$?
set -e
if [ "$rc" -ne 0 ]; then
    echo "bench.sh: xatm-bench exited $rc; the last lines of xatmd's log:" >&2
    tail -n 20 "$WORK/xatmd.log" >&2
fi
exit $rc
