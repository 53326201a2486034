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
