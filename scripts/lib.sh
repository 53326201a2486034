# scripts/lib.sh — shared set-up for the project's scripts (sourced, not run).
# Owns: installing the Debian packages xatm needs, building, and locating build outputs.
# Every function is idempotent: on a machine that has everything it does nothing slow.

XATM_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export XATM_ROOT

# Debian packages: toolchain, client libraries, and the servers the tests start.
XATM_PACKAGES=(gcc pkg-config meson ninja-build python3 libpq-dev libmariadb-dev libyaml-dev
               postgresql mariadb-server mariadb-client util-linux procps)

xatm_log() { printf '==> %s\n' "$*" >&2; }

# Installs whatever of XATM_PACKAGES is missing (needs root, or sudo).
xatm_install_deps() {
    local missing=()
    local p
    for p in "${XATM_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        return 0
    fi
    xatm_log "installing Debian packages: ${missing[*]}"
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
    # The Debian packages start system-wide servers on install; xatm never uses them
    # (tests start throwaway ones), so keep them from starting at all.
    local policy=/usr/sbin/policy-rc.d created_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
        "${sudo[@]}" chmod 755 "$policy"
        created_policy=1
    fi
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
    if [ "$created_policy" -eq 1 ]; then "${sudo[@]}" rm -f "$policy"; fi
}

# xatm_build DIR [meson options...]: configures (once) and builds into DIR.
xatm_build() {
    local dir="$1"
    shift
    if [ ! -f "$dir/build.ninja" ]; then
        xatm_log "configuring $dir"
        meson setup "$dir" "$XATM_ROOT" "$@" >/dev/null
    fi
    xatm_log "building $dir"
    ninja -C "$dir" >/dev/null
}

# A fresh directory that the postgres and mysql users can traverse (servers live there).
xatm_tmpdir() {
    local d
    d="$(mktemp -d "${TMPDIR:-/tmp}/xatm-$1.XXXXXX")"
    chmod 755 "$d"
    printf '%s\n' "$d"
}

# xatm_rms_yaml [SUFFIX]: the `rms:` list items for the throwaway servers named by
# XATM_TEST_* (scripts/servers.sh's env): RM `pg` (PostgreSQL) and RM `my` (MariaDB).
# SUFFIX is appended to both RM names and both database names (bench.sh --branches).
xatm_rms_yaml() {
    local s="${1:-}"
    cat <<YAML
  - name: pg$s
    type: postgresql
    host: $XATM_TEST_PG_HOST
    port: $XATM_TEST_PG_PORT
    user: $XATM_TEST_PG_USER
    password: $XATM_TEST_PG_PASSWORD
    database: $XATM_TEST_PG_DB$s
  - name: my$s
    type: mysql
    host: $XATM_TEST_MY_HOST
    port: $XATM_TEST_MY_PORT
    user: $XATM_TEST_MY_USER
    password: $XATM_TEST_MY_PASSWORD
    database: $XATM_TEST_MY_DB$s
YAML
}

# xatm_require_test_servers TEST: for the meson tests that need the database servers:
# exits 77 (meson's "skipped"), saying why, when XATM_TEST_* does not name them.
xatm_require_test_servers() {
    local missing=() v
    for v in XATM_TEST_PG_HOST XATM_TEST_PG_PORT XATM_TEST_PG_USER XATM_TEST_PG_PASSWORD \
             XATM_TEST_PG_DB XATM_TEST_MY_HOST XATM_TEST_MY_PORT XATM_TEST_MY_USER \
             XATM_TEST_MY_PASSWORD XATM_TEST_MY_DB; do
        if [ -z "${!v:-}" ]; then missing+=("$v"); fi
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "SKIPPED $1: no database servers: ${missing[*]} not set." >&2
        echo "  Run scripts/test.sh, or: scripts/servers.sh start DIR; . DIR/env; meson test ..." >&2
        exit 77
    fi
}
