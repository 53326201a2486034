#!/usr/bin/env bash
# servers.sh - throwaway PostgreSQL 15 + MariaDB servers for xatm tests, demo and CI.
#
# Usage:
#   scripts/servers.sh start DIR            init (if needed) + start both servers, write DIR/env
#   scripts/servers.sh stop DIR             stop both (tolerates already-stopped servers)
#   scripts/servers.sh status DIR           print state; exit 0 iff both are running
#   scripts/servers.sh kill pg|my DIR       SIGKILL that server (crash tests)
#   scripts/servers.sh restart pg|my DIR    start it again (same port, same data) and wait
#
# Everything (data, sockets, pid files, logs) lives inside DIR:
#   DIR/env                 sourceable file with the XATM_TEST_* variables
#   DIR/pg/data             PostgreSQL cluster; DIR/pg/.s.PGSQL.<port> socket
#   DIR/pg/postgres.log     PostgreSQL server log
#   DIR/my/my.cnf           MariaDB config (also usable with mariadb --defaults-file=)
#   DIR/my/data             MariaDB datadir; DIR/my/mysqld.sock; DIR/my/mysqld.pid
#   DIR/my/error.log        MariaDB error log
# Ports are free loopback ports picked at start and kept for the life of DIR.
# Only servers whose data dir is inside DIR are ever signalled: a system cluster
# (e.g. on 5432/3306) is never touched.
#
# Environment knobs:
#   XATM_SERVERS_TIMEOUT   seconds to wait for readiness / shutdown (default 60)
#   PG_BINDIR              PostgreSQL binaries (default /usr/lib/postgresql/15/bin)

set -euo pipefail
umask 022

PG_BINDIR=${PG_BINDIR:-/usr/lib/postgresql/15/bin}
TIMEOUT=${XATM_SERVERS_TIMEOUT:-60}
PROG=${0##*/}

MARIADBD=$(command -v mariadbd 2>/dev/null || echo /usr/sbin/mariadbd)
MARIADB_INSTALL_DB=$(command -v mariadb-install-db 2>/dev/null || echo /usr/bin/mariadb-install-db)
MARIADB_CLI=$(command -v mariadb 2>/dev/null || echo /usr/bin/mariadb)
MARIADB_ADMIN=$(command -v mariadb-admin 2>/dev/null || echo /usr/bin/mariadb-admin)

IS_ROOT=0
if [[ $(id -u) -eq 0 ]]; then IS_ROOT=1; fi

die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }
note() { printf '%s: %s\n' "$PROG" "$*" >&2; }

usage() {
    sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# ---------------------------------------------------------------- helpers

# Run a command as OS user $1 when we are root, else directly. cwd is DIR so
# that the target user never has to access the caller's cwd.
as_user() {
    local user=$1; shift
    if ((IS_ROOT)); then
        (cd "$DIR" && runuser -u "$user" -- "$@")
    else
        (cd "$DIR" && "$@")
    fi
}
as_pg() { as_user postgres "$@"; }
as_my() { as_user mysql "$@"; }

# resolve DIR to an absolute path; create it when $2 == create
resolve_dir() {
    local d=$1 mode=$2
    [[ -n $d ]] || die "DIR must not be empty"
    if [[ $mode == create ]]; then
        mkdir -p -- "$d" || die "cannot create $d"
    elif [[ ! -d $d ]]; then
        return 1
    fi
    DIR=$(cd -- "$d" && pwd -P)
    PGD=$DIR/pg
    PGDATA_DIR=$PGD/data
    PGLOG=$PGD/postgres.log
    MYD=$DIR/my
    MYCNF=$MYD/my.cnf
    MYDATA=$MYD/data
    MYSOCK=$MYD/mysqld.sock
    MYPID=$MYD/mysqld.pid
    MYLOG=$MYD/error.log
    return 0
}

# Unix socket paths are limited to 107 bytes.
check_socket_len() {
    local longest="$PGD/.s.PGSQL.65535.lock"
    if ((${#longest} > 100 || ${#MYSOCK} > 100)); then
        die "DIR path too long for unix sockets ($DIR); use a shorter path (e.g. under /tmp)"
    fi
}

# When root: the service users must be able to reach DIR/pg and DIR/my.
check_traversable() {
    ((IS_ROOT)) || return 0
    local u
    for u in postgres mysql; do
        id -u "$u" >/dev/null 2>&1 || die "OS user '$u' does not exist"
        if ! runuser -u "$u" -- test -x "$DIR"; then
            die "user '$u' cannot traverse $DIR: a parent directory lacks o+x" \
                "(e.g. /root is 0700). Use a directory such as /tmp/xatm-srv or chmod o+x the parents."
        fi
    done
}

# Prints N distinct free loopback ports (outside the ephemeral range).
pick_ports() {
    local n=$1
    if command -v python3 >/dev/null 2>&1; then
        python3 - "$n" <<'PY'
import random, socket, sys
n = int(sys.argv[1]); rng = random.SystemRandom(); got = []; held = []
for _ in range(5000):
    if len(got) == n:
        break
    p = rng.randrange(20000, 32000)
    if p in got:
        continue
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        s.close()
        continue
    held.append(s); got.append(p)
if len(got) != n:
    sys.exit("could not find free ports")
print(" ".join(map(str, got)))
PY
    else
        # fallback: nothing answers on 127.0.0.1:p
        local out=() p
        while ((${#out[@]} < n)); do
            p=$((20000 + RANDOM % 12000))
            [[ " ${out[*]} " == *" $p "* ]] && continue
            if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then out+=("$p"); fi
        done
        echo "${out[*]}"
    fi
}

# Port-allocation lock shared by concurrent invocations (held while servers bind).
# Uses fd 9; every daemon launch closes fd 9 so servers never inherit the lock.
LOCKED=0
take_port_lock() {
    command -v flock >/dev/null 2>&1 || return 0
    local lock="${TMPDIR:-/tmp}/xatm-servers-ports.v2.lock"
    if [[ ! -e $lock ]]; then
        : >>"$lock" 2>/dev/null || return 0
        chmod 0666 "$lock" 2>/dev/null || true
    fi
    exec 9<"$lock" || return 0
    # The lock only narrows the pick-then-bind race; bind clashes are retried
    # anyway, so never block for long on it.
    if flock -w 20 9; then
        LOCKED=1
    else
        note "warning: port lock $lock busy for 20s; going on without it"
        exec 9<&-
    fi
}
drop_port_lock() {
    if ((LOCKED)); then
        exec 9<&-
        LOCKED=0
    fi
}

# something listens on 127.0.0.1:$1 or 0.0.0.0:$1 (read from /proc: no connection made)
port_listening() {
    local hex
    hex=$(printf '%04X' "$1")
    if [[ -r /proc/net/tcp ]]; then
        awk -v p=":$hex" '$4 == "0A" && ($2 == "0100007F" p || $2 == "00000000" p) { f = 1 } END { exit !f }' /proc/net/tcp
    else
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
    fi
}

# pid $1 still has a thread that has not exited. /proc/PID/stat shows the state of the
# thread-group leader only: after a SIGKILL the leader is a zombie (Z) as soon as it has
# exited itself, while the process's other threads may still be finishing (a mariadbd
# thread in a disk write cannot exit before the write completes) and still hold its files
# and locks. Other threads vanish from /proc/PID/task when they have exited, so the
# process is dead once its leader is a zombie and no other thread is listed. Such a
# zombie holds no file; its parent (PID 1, slow or absent in some containers) may reap
# it late.
proc_alive() {
    local st t
    st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n $st ]] || return 1
    if [[ $st != Z && $st != X ]]; then return 0; fi
    for t in "/proc/$1/task/"*; do
        [[ -e $t && ${t##*/} != "$1" ]] && return 0
    done
    return 1
}

# Wait until all given pids are dead (every thread exited; an unreaped zombie counts as
# dead), then give the reaper (PID 1; slow or absent in some containers) up to 5s to
# remove them. Returns 1 if a thread is still alive after TIMEOUT seconds.
wait_dead() {
    local deadline=$((SECONDS + TIMEOUT)) p alive i
    while :; do
        alive=0
        for p in "$@"; do if proc_alive "$p"; then alive=1; fi; done
        ((alive)) || break
        ((SECONDS < deadline)) || return 1
        sleep 0.05
    done
    for ((i = 0; i < 50; i++)); do
        alive=0
        for p in "$@"; do if [[ -e /proc/$p ]]; then alive=1; fi; done
        ((alive)) || break
        sleep 0.1
    done
    return 0
}

# pid in $1 is alive and its cmdline contains $2
pid_matches() {
    local pid=$1 needle=$2 cmd
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ -r /proc/$pid/cmdline ]] || return 1
    cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ $cmd == *"$needle"* ]]
}

pg_pid() {
    local pid
    [[ -r $PGDATA_DIR/postmaster.pid ]] || return 1
    pid=$(head -n1 "$PGDATA_DIR/postmaster.pid" 2>/dev/null) || return 1
    pid_matches "$pid" "$PGDATA_DIR" || return 1
    echo "$pid"
}

my_pid() {
    local pid
    [[ -r $MYPID ]] || return 1
    pid=$(head -n1 "$MYPID" 2>/dev/null) || return 1
    pid_matches "$pid" "--defaults-file=$MYCNF" || return 1
    echo "$pid"
}

# Falls back to scanning /proc when the pid file is missing (e.g. killed early).
my_pid_scan() {
    my_pid && return 0
    local p
    for p in /proc/[0-9]*; do
        p=${p#/proc/}
        if pid_matches "$p" "--defaults-file=$MYCNF" && [[ $(readlink "/proc/$p/exe" 2>/dev/null) == *mariadbd* ]]; then
            echo "$p"; return 0
        fi
    done
    return 1
}

read_port() { # $1 = pg|my
    local f=$DIR/$1/port
    [[ -r $f ]] || die "no port recorded in $f (was '$PROG start' run on $DIR?)"
    cat "$f"
}

log_tail() { # $1 = file
    if [[ -r $1 ]]; then
        printf -- '----- last lines of %s -----\n' "$1" >&2
        tail -n 40 "$1" >&2 || true
        printf -- '-----\n' >&2
    else
        note "(no log at $1)"
    fi
}

# ---------------------------------------------------------------- PostgreSQL

pg_init() {
    mkdir -p "$PGD"
    if ((IS_ROOT)); then chown postgres: "$PGD"; fi
    if [[ -f $PGDATA_DIR/PG_VERSION ]]; then return 0; fi
    if ! as_pg "$PG_BINDIR/initdb" -D "$PGDATA_DIR" --username=postgres --auth=trust \
        --encoding=UTF8 --locale=C --no-sync --no-instructions >"$DIR/pg-initdb.log" 2>&1; then
        log_tail "$DIR/pg-initdb.log"
        die "initdb failed"
    fi
    if ! grep -q "^include_if_exists = 'xatm.conf'" "$PGDATA_DIR/postgresql.conf"; then
        echo "include_if_exists = 'xatm.conf'" >>"$PGDATA_DIR/postgresql.conf"
    fi
}

pg_write_conf() { # $1 = port
    cat >"$PGDATA_DIR/xatm.conf" <<EOF
# written by scripts/servers.sh
listen_addresses = '127.0.0.1'
port = $1
unix_socket_directories = '$PGD'
max_prepared_transactions = 200
max_connections = 300
fsync = on
shared_buffers = 128MB
logging_collector = off
EOF
    if ((IS_ROOT)); then chown postgres: "$PGDATA_DIR/xatm.conf"; fi
    echo "$1" >"$PGD/port"
}

# postgres refuses to start while the pid in postmaster.pid exists, which is
# the case for an unreaped zombie after a SIGKILL. Remove such a stale file,
# but only when the shared memory segment it names has no attached process
# (an orphaned backend would still be attached).
pg_clear_stale_pidfile() {
    local f=$PGDATA_DIR/postmaster.pid pid shmid nattch i
    [[ -f $f ]] || return 0
    pid=$(head -n1 "$f" 2>/dev/null) || return 0
    [[ $pid =~ ^[0-9]+$ ]] || return 0
    if proc_alive "$pid"; then return 0; fi
    for ((i = 0; i < 50; i++)); do
        [[ -e /proc/$pid ]] || return 0
        sleep 0.1
    done
    shmid=$(sed -n 7p "$f" | awk '{print $2}')
    nattch=0
    if [[ -n $shmid && -r /proc/sysvipc/shm ]]; then
        nattch=$(awk -v id="$shmid" '$2 == id { print $7; exit }' /proc/sysvipc/shm)
    fi
    if [[ ${nattch:-0} == 0 ]]; then
        note "removing stale $f (pid $pid is a zombie)"
        rm -f "$f"
    fi
}

pg_launch() {
    pg_clear_stale_pidfile
    if ((IS_ROOT)); then touch "$PGLOG" && chown postgres: "$PGLOG"; fi
    as_pg "$PG_BINDIR/pg_ctl" -D "$PGDATA_DIR" -l "$PGLOG" -W -s start >/dev/null 2>&1 9<&- || true
}

# wait until the server accepts connections; $1 = port; returns 1 on failure
pg_wait() {
    local port=$1 deadline=$((SECONDS + TIMEOUT)) started=$SECONDS
    while ((SECONDS < deadline)); do
        if pg_isready -q -h 127.0.0.1 -p "$port" -t 2 -d postgres -U postgres 2>/dev/null; then
            return 0
        fi
        # postmaster died (e.g. port taken)?
        if ((SECONDS - started > 2)) && ! pg_pid >/dev/null && ! pg_starting; then return 1; fi
        sleep 0.1
    done
    return 1
}

# pg_ctl -W: for a brief moment the postmaster.pid does not exist yet
pg_starting() {
    local p
    for p in $(pgrep -f -- "-D $PGDATA_DIR" 2>/dev/null || true); do
        pid_matches "$p" "$PG_BINDIR/postgres" && return 0
    done
    return 1
}

pg_bootstrap_sql() {
    as_pg "$PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h "$PGD" -p "$1" -U postgres -d postgres >/dev/null <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'xatm') THEN
    CREATE ROLE xatm SUPERUSER LOGIN PASSWORD 'xatm';
  END IF;
END $$;
SELECT 'CREATE DATABASE xatm OWNER xatm'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'xatm')\gexec
SQL
}

pg_stop() {
    local pid
    if ! pid=$(pg_pid); then return 0; fi
    if ! as_pg "$PG_BINDIR/pg_ctl" -D "$PGDATA_DIR" -m fast -w -t "$TIMEOUT" -s stop >/dev/null 2>&1; then
        note "pg_ctl stop failed; sending SIGKILL to postmaster $pid"
        pg_kill
    fi
}

pg_kill() {
    local pid kids
    if ! pid=$(pg_pid); then note "postgres in $DIR is not running"; return 0; fi
    # children first collected: once the postmaster dies they get reparented
    kids=$(pgrep -P "$pid" 2>/dev/null || true)
    # shellcheck disable=SC2086
    kill -KILL "$pid" $kids 2>/dev/null || true
    # shellcheck disable=SC2086
    wait_dead "$pid" $kids || die "postgres processes still alive after SIGKILL"
}

# ---------------------------------------------------------------- MariaDB

my_write_conf() { # $1 = port
    local userline=""
    if ((IS_ROOT)); then userline="user=mysql"; fi
    cat >"$MYCNF" <<EOF
# written by scripts/servers.sh
[mysqld]
$userline
datadir=$MYDATA
socket=$MYSOCK
pid-file=$MYPID
port=$1
bind-address=127.0.0.1
skip-name-resolve
innodb_buffer_pool_size=128M
max_connections=500
log_error=$MYLOG
tmpdir=$MYD/tmp
# No native AIO (io_uring/libaio): InnoDB's I/O threads then write with pwrite(). With
# native AIO the writes a mariadbd submitted are finished by the kernel after a kill -9
# even once the process has exited and been reaped: measured on Linux 6.18 with the
# disk slowed, the data files of a killed mariadbd kept changing for 15 s after
# 'servers.sh kill my' had returned (no change at all with this setting: a thread in a
# pwrite() cannot exit before it completes, so the process being gone means every write
# has landed). The crash campaign restarts MariaDB 0-0.6 s after the kill; a late write
# of the old server overwriting a page the new one has since written is a lost write,
# which a later crash recovery reports as corruption (CI: "Not applying
# INSERT_HEAP_DYNAMIC due to corruption", then ERROR 1034 on 'transfers').
innodb_use_native_aio=0
character-set-server=utf8mb4
collation-server=utf8mb4_general_ci

[client]
socket=$MYSOCK
port=$1
host=127.0.0.1
EOF
    chmod 0644 "$MYCNF"
    echo "$1" >"$MYD/port"
}

my_init() {
    mkdir -p "$MYD/tmp"
    if ((IS_ROOT)); then chown mysql: "$MYD" "$MYD/tmp"; fi
    [[ -f $MYCNF ]] || my_write_conf 3306   # placeholder port; rewritten before launch
    if [[ -d $MYDATA/mysql ]]; then return 0; fi
    local args=(--defaults-file="$MYCNF" --auth-root-authentication-method=normal
                --skip-test-db --skip-name-resolve)
    if ((IS_ROOT)); then args+=(--user=mysql); fi
    if ! (cd "$DIR" && "$MARIADB_INSTALL_DB" "${args[@]}") >"$DIR/my-install-db.log" 2>&1; then
        log_tail "$DIR/my-install-db.log"
        log_tail "$MYLOG"
        die "mariadb-install-db failed"
    fi
}

my_launch() {
    if ((IS_ROOT)); then touch "$MYLOG" && chown mysql: "$MYLOG"; fi
    # setsid + no inherited stdio: the daemon must not hold the caller's pipes
    (cd "$DIR" && exec setsid -f "$MARIADBD" --defaults-file="$MYCNF") </dev/null >>"$MYD/stdout.log" 2>&1 9<&-
}

my_wait() { # $1 = port
    local port=$1 deadline=$((SECONDS + TIMEOUT)) started=$SECONDS
    while ((SECONDS < deadline)); do
        if [[ -S $MYSOCK ]] && port_listening "$port" &&
            "$MARIADB_ADMIN" --defaults-file="$MYCNF" -uroot --connect-timeout=2 ping >/dev/null 2>&1; then
            return 0
        fi
        if ((SECONDS - started > 2)) && ! my_pid_scan >/dev/null; then return 1; fi
        sleep 0.1
    done
    return 1
}

my_bootstrap_sql() {
    "$MARIADB_CLI" --defaults-file="$MYCNF" -uroot --protocol=socket <<'SQL'
CREATE USER IF NOT EXISTS 'xatm'@'%' IDENTIFIED BY 'xatm';
CREATE USER IF NOT EXISTS 'xatm'@'127.0.0.1' IDENTIFIED BY 'xatm';
CREATE USER IF NOT EXISTS 'xatm'@'localhost' IDENTIFIED BY 'xatm';
GRANT ALL PRIVILEGES ON *.* TO 'xatm'@'%' WITH GRANT OPTION;
GRANT ALL PRIVILEGES ON *.* TO 'xatm'@'127.0.0.1' WITH GRANT OPTION;
GRANT ALL PRIVILEGES ON *.* TO 'xatm'@'localhost' WITH GRANT OPTION;
CREATE DATABASE IF NOT EXISTS xatm;
SQL
}

my_stop() {
    local pid
    if ! pid=$(my_pid_scan); then return 0; fi
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_dead "$pid"; then
        note "mariadbd $pid did not stop within ${TIMEOUT}s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        wait_dead "$pid" || true
    fi
}

my_kill() {
    local pid
    if ! pid=$(my_pid_scan); then note "mariadbd in $DIR is not running"; return 0; fi
    kill -KILL "$pid" 2>/dev/null || true
    wait_dead "$pid" || die "mariadbd $pid still alive after SIGKILL"
}

# ---------------------------------------------------------------- commands

write_env() {
    local pgport=$1 myport=$2 tmp
    tmp=$(mktemp "$DIR/.env.XXXXXX")
    cat >"$tmp" <<EOF
# written by scripts/servers.sh start; source me
export XATM_TEST_PG_HOST=127.0.0.1
export XATM_TEST_PG_PORT=$pgport
export XATM_TEST_PG_USER=xatm
export XATM_TEST_PG_PASSWORD=xatm
export XATM_TEST_PG_DB=xatm
export XATM_TEST_PG_SOCKET_DIR='$PGD'
export XATM_TEST_MY_HOST=127.0.0.1
export XATM_TEST_MY_PORT=$myport
export XATM_TEST_MY_USER=xatm
export XATM_TEST_MY_PASSWORD=xatm
export XATM_TEST_MY_DB=xatm
export XATM_TEST_MY_SOCKET='$MYSOCK'
export XATM_TEST_SERVERS_DIR='$DIR'
EOF
    chmod 0644 "$tmp"
    mv -f "$tmp" "$DIR/env"
}

START_OK=0
start_cleanup() {
    drop_port_lock
    if ((START_OK == 0)); then
        note "start failed; stopping whatever was started in $DIR"
        my_stop || true
        pg_stop || true
    fi
}

cmd_start() {
    resolve_dir "$1" create
    check_socket_len
    check_traversable
    if pg_pid >/dev/null || my_pid_scan >/dev/null; then
        die "servers in $DIR are already (partly) running; run '$PROG stop $DIR' first"
    fi
    if ((IS_ROOT)); then chmod go+rx "$DIR"; fi

    # slow part in parallel, outside the port lock
    local t0=$SECONDS pgi myi
    pg_init & pgi=$!
    my_init & myi=$!
    local rc_pg=0 rc_my=0
    wait "$pgi" || rc_pg=$?
    wait "$myi" || rc_my=$?
    ((rc_pg == 0 && rc_my == 0)) || die "initialisation failed"

    trap start_cleanup EXIT
    take_port_lock
    local pgport="" myport="" attempt ok_pg=0 ok_my=0 ports
    # reuse ports of an existing DIR (restart after stop)
    if [[ -r $PGD/port && -f $PGDATA_DIR/xatm.conf ]]; then pgport=$(cat "$PGD/port"); fi
    if [[ -r $MYD/port && -d $MYDATA/xatm ]]; then myport=$(cat "$MYD/port"); fi
    for attempt in 1 2 3 4 5; do
        ports=$(pick_ports 2) || die "cannot pick free ports"
        if ((!ok_pg)); then
            if [[ -z $pgport ]] || port_listening "$pgport"; then pgport=${ports% *}; fi
            pg_write_conf "$pgport"
            pg_launch
        fi
        if ((!ok_my)); then
            if [[ -z $myport ]] || port_listening "$myport" || [[ $myport == "$pgport" ]]; then myport=${ports#* }; fi
            my_write_conf "$myport"
            my_launch
        fi
        if ((!ok_pg)); then
            if pg_wait "$pgport"; then ok_pg=1; else
                note "postgres did not come up on port $pgport (attempt $attempt)"
                log_tail "$PGLOG"; pg_kill >/dev/null 2>&1 || true; pgport=""
            fi
        fi
        if ((!ok_my)); then
            if my_wait "$myport"; then ok_my=1; else
                note "mariadbd did not come up on port $myport (attempt $attempt)"
                log_tail "$MYLOG"; my_kill >/dev/null 2>&1 || true; myport=""
            fi
        fi
        if ((ok_pg && ok_my)); then break; fi
        # a port clash shows in the log; anything else is fatal
        if ! grep -qsE 'Address already in use|could not create any TCP/IP sockets|Bind on TCP/IP port' "$PGLOG" "$MYLOG"; then
            break
        fi
    done
    drop_port_lock
    ((ok_pg)) || die "PostgreSQL failed to start (log: $PGLOG)"
    ((ok_my)) || die "MariaDB failed to start (log: $MYLOG)"

    pg_bootstrap_sql "$pgport" || { log_tail "$PGLOG"; die "creating PostgreSQL role/database xatm failed"; }
    my_bootstrap_sql || { log_tail "$MYLOG"; die "creating MariaDB user/database xatm failed"; }
    write_env "$pgport" "$myport"
    START_OK=1
    trap - EXIT
    echo "xatm test servers up in $((SECONDS - t0))s: postgres 127.0.0.1:$pgport (pid $(pg_pid)), mariadb 127.0.0.1:$myport (pid $(my_pid)); env: $DIR/env"
}

cmd_stop() {
    if ! resolve_dir "$1" nocreate; then note "$1 does not exist; nothing to stop"; return 0; fi
    my_stop & local a=$!
    pg_stop & local b=$!
    local rc=0
    wait "$a" || rc=1
    wait "$b" || rc=1
    if ((rc)); then die "stop failed"; fi
    echo "xatm test servers in $DIR stopped"
}

cmd_status() {
    resolve_dir "$1" nocreate || die "$1 does not exist"
    local rc=0 pid
    if pid=$(pg_pid); then echo "pg: running pid $pid port $(cat "$PGD/port" 2>/dev/null || echo '?')"
    else echo "pg: stopped"; rc=1; fi
    if pid=$(my_pid_scan); then echo "my: running pid $pid port $(cat "$MYD/port" 2>/dev/null || echo '?')"
    else echo "my: stopped"; rc=1; fi
    return $rc
}

cmd_kill() {
    local which=$1
    resolve_dir "$2" nocreate || die "$2 does not exist"
    case $which in
        pg) pg_kill ;;
        my) my_kill ;;
        *) usage ;;
    esac
    echo "$which in $DIR killed"
}

cmd_restart() {
    local which=$1 port
    resolve_dir "$2" nocreate || die "$2 does not exist"
    case $which in
        pg)
            [[ -f $PGDATA_DIR/PG_VERSION ]] || die "no PostgreSQL cluster in $PGDATA_DIR"
            port=$(read_port pg)
            pg_stop
            pg_launch
            pg_wait "$port" || { log_tail "$PGLOG"; die "PostgreSQL did not restart on port $port"; }
            echo "pg in $DIR restarted on 127.0.0.1:$port (pid $(pg_pid))"
            ;;
        my)
            [[ -d $MYDATA/mysql ]] || die "no MariaDB datadir in $MYDATA"
            port=$(read_port my)
            my_stop
            my_launch
            my_wait "$port" || { log_tail "$MYLOG"; my_kill >/dev/null 2>&1 || true; die "MariaDB did not restart on port $port"; }
            echo "my in $DIR restarted on 127.0.0.1:$port (pid $(my_pid))"
            ;;
        *) usage ;;
    esac
}

main() {
    (($# >= 1)) || usage
    local cmd=$1; shift
    case $cmd in
        start)   (($# == 1)) || usage; cmd_start "$1" ;;
        stop)    (($# == 1)) || usage; cmd_stop "$1" ;;
        status)  (($# == 1)) || usage; cmd_status "$1" ;;
        kill)    (($# == 2)) || usage; cmd_kill "$1" "$2" ;;
        restart) (($# == 2)) || usage; cmd_restart "$1" "$2" ;;
        -h|--help|help) usage ;;
        *) usage ;;
    esac
}

main "$@"
