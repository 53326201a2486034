#!/usr/bin/env bash
# scripts/crash-campaign.sh — the crash campaign that proves xatm's atomicity.
#
#   scripts/crash-campaign.sh [--trials N] [--seed S] [--replay SEED] [--protocol 2pc|3pc]
#                             [--no-partition] [--keep-dir DIR] [--transfers T] [--external]
#                             [--decider [pg|my]]
#
# Each trial runs transfers between PostgreSQL and MariaDB from 3 concurrent
# `xatm-transfer run` processes (2 workers each), injects ONE fault chosen from the trial's
# seed (kill -9 of xatmd at a protocol or recovery fault point or at a random time; of an
# AP likewise; of PostgreSQL or MariaDB, then a restart; the decision log's disk filling
# up or its last write torn; SIGSTOP of an AP or of xatmd for longer than the transaction
# timeout), restarts what was killed, waits for no branch to be left in doubt, and checks
# with plain SQL that no money was created or lost, that every transfer is on both sides or
# on neither, and that every commit an AP saw succeed is there. One line per trial; the
# last line is "trials: N, violations: V, max convergence: X s"; exit status 1 when V > 0.
# With --protocol 3pc every trial runs three-phase commit (participant_timeout_action wait;
# the faults include every 3PC step) and the campaign ends with two partition trials (the
# path between an AP and xatmd cut right after PreCommit), whose printed result must match
# docs/protocols.md: a reported divergence with action commit, none with wait.
# With --decider every trial runs with the decision in a branch (tm.decision_rm: pg, or my):
# two APs in 2PC, decided in the decider's branch, and AP 0 in 3PC, through xatmd's log, so
# the log's faults stay in play; the fault points include ap.decider.before_commit and
# ap.decider.after_commit and the 3PC ones.
# A failing trial names its seed (replay it alone with --replay SEED) and the directory
# where its xatmd log and outputs are kept. Trial k has seed S + k - 1.
#
# By default it sets up what it needs like the other scripts: installs what is missing,
# builds a release build into build-campaign, starts throwaway servers, and stops them at
# the end. With --external it uses what the environment names instead (how the meson test
# `crash_campaign` runs it): the binaries in XATMD, XATMCTL and XATM_TRANSFER and the
# servers in XATM_TEST_* (XATM_TEST_SERVERS_DIR, from scripts/servers.sh, enables the
# database crash faults). scripts/crash_campaign.py is the orchestrator; this script only
# prepares its environment.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$XATM_ROOT"

EXTERNAL=0
ARGS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --external) EXTERNAL=1; shift ;;
        -h|--help) sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) ARGS+=("$1"); shift ;;
    esac
done

WORK=""
SERVERS_STARTED=0
cleanup() {
    if [ "$SERVERS_STARTED" -eq 1 ]; then
        scripts/servers.sh stop "$WORK/servers" >/dev/null 2>&1 || true
    fi
    if [ -n "$WORK" ]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT
# Ctrl-C / SIGTERM reach the orchestrator too (same process group), which stops its APs
# and xatmd and prints its summary; this script then cleans up through the EXIT trap.
trap 'exit 130' INT TERM

if [ "$EXTERNAL" -eq 0 ]; then
    xatm_install_deps
    xatm_build build-campaign --buildtype=release
    export XATMD="$XATM_ROOT/build-campaign/tm/xatmd"
    export XATMCTL="$XATM_ROOT/build-campaign/tm/xatmctl"
    export XATM_TRANSFER="$XATM_ROOT/build-campaign/examples/xatm-transfer"
    WORK="$(xatm_tmpdir campaign)"
    mkdir -m 755 "$WORK/servers"
    SERVERS_STARTED=1
    scripts/servers.sh start "$WORK/servers" >&2
    # shellcheck disable=SC1091
    . "$WORK/servers/env"
else
    for v in XATMD XATM_TRANSFER XATM_TEST_PG_HOST XATM_TEST_PG_PORT XATM_TEST_MY_HOST \
             XATM_TEST_MY_PORT; do
        if [ -z "${!v:-}" ]; then
            echo "crash-campaign.sh: --external needs $v in the environment" >&2
            exit 2
        fi
    done
    WORK="$(xatm_tmpdir campaign)"
fi

set +e
python3 scripts/crash_campaign.py --work-dir "$WORK/run" "${ARGS[@]}"
rc=$?
set -e
exit "$rc"
