#!/usr/bin/env bash
# tests/campaign/run-campaign.sh — the meson test `crash_campaign`: runs a short crash
# campaign (scripts/crash-campaign.sh --external) with this build's binaries against the
# servers named by XATM_TEST_*. Exits 77 (skipped), saying why, when the servers are not
# given. Knobs: XATM_CAMPAIGN_TRIALS (default 24, at least 20 is the point of the test),
# XATM_CAMPAIGN_SEED (default: from the clock; printed, and each failing trial prints its
# own seed for a replay). Arguments: [PROTOCOL [TRIALS [decider]]]: 2pc (default) or 3pc
# (then the campaign also runs its two partition trials), the trials when
# XATM_CAMPAIGN_TRIALS is not set, and `decider` (or `decider-my`) for 2PC with the
# decision in a branch at pg (or my) (crash-campaign.sh --decider).
set -euo pipefail

# shellcheck disable=SC1091
. "${XATM_SOURCE_ROOT:?XATM_SOURCE_ROOT is not set (it comes from tests/meson.build test_env)}/scripts/lib.sh"
xatm_require_test_servers "crash_campaign (${1:-2pc}${3:+ $3})"
for v in XATMD XATM_TRANSFER XATM_SOURCE_ROOT; do
    if [ -z "${!v:-}" ]; then
        echo "crash_campaign: $v is not set (it comes from tests/meson.build's test_env)" >&2
        exit 1
    fi
done
if [ -z "${XATM_TEST_SERVERS_DIR:-}" ]; then
    echo "crash_campaign: XATM_TEST_SERVERS_DIR is not set: database crash faults are left out" >&2
fi

trials="${XATM_CAMPAIGN_TRIALS:-${2:-24}}"
seed="${XATM_CAMPAIGN_SEED:-$(( $(date +%s) % 1000000 ))}"
protocol="${1:-2pc}"
extra=()
case "${3:-}" in
    decider) extra=(--decider pg) ;;
    decider-my) extra=(--decider my) ;;
esac
exec "$XATM_SOURCE_ROOT/scripts/crash-campaign.sh" --external --trials "$trials" --seed "$seed" \
    --protocol "$protocol" "${extra[@]}"
