#!/usr/bin/env bash
# tests/campaign/run-campaign.sh — the meson test `crash_campaign`: runs a short crash
# campaign (scripts/crash-campaign.sh --external) with this build's binaries against the
# servers named by XATM_TEST_*. Exits 77 (skipped), saying why, when the servers are not
# given. Knobs: XATM_CAMPAIGN_TRIALS (default 24, at least 20 is the point of the test),
# XATM_CAMPAIGN_SEED (default: from the clock; printed, and each failing trial prints its
# own seed for a replay). Arguments: [PROTOCOL [TRIALS]]: 2pc (default) or 3pc (then the
# campaign also runs its two partition trials), and the trials when XATM_CAMPAIGN_TRIALS
# is not set.
set -euo pipefail

missing=()
for v in XATM_TEST_PG_HOST XATM_TEST_PG_PORT XATM_TEST_PG_USER XATM_TEST_PG_PASSWORD \
         XATM_TEST_PG_DB XATM_TEST_MY_HOST XATM_TEST_MY_PORT XATM_TEST_MY_USER \
         XATM_TEST_MY_PASSWORD XATM_TEST_MY_DB; do
    if [ -z "${!v:-}" ]; then missing+=("$v"); fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "SKIPPED crash_campaign (${1:-2pc}): no database servers: ${missing[*]} not set." >&2
    echo "  Run scripts/test.sh, or: scripts/servers.sh start DIR; . DIR/env; meson test ..." >&2
    exit 77
fi
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
exec "$XATM_SOURCE_ROOT/scripts/crash-campaign.sh" --external --trials "$trials" --seed "$seed" \
    --protocol "$protocol"
