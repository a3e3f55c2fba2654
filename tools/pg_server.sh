#!/usr/bin/env bash
# A throwaway PostgreSQL 15 server for the tests (DESIGN.md §8): a fresh cluster in a new
# temporary directory, listening on 127.0.0.1 at a free port and on a private Unix socket
# directory, never on the machine's usual port or socket.
#
#   eval "$(tools/pg_server.sh start)"   starts one; prints `export` lines (below) to eval
#   tools/pg_server.sh stop DIR          stops it (-m immediate) and deletes DIR
#   tools/pg_server.sh env DIR           prints the `export` lines of a running one again
#
# The exported variables (what the [postgres] tests read):
#   CHECKPOINT_TEST_PG_URL            postgresql://postgres@127.0.0.1:PORT/postgres: the
#                                     superuser over TCP, trust authentication
#   CHECKPOINT_TEST_PG_DIR            the server's directory (data/, socket/, log); give it
#                                     to `stop`
#   CHECKPOINT_TEST_PG_BIN            the server binaries (/usr/lib/postgresql/15/bin)
#   CHECKPOINT_TEST_PG_DATA           the data directory (DIR/data)
#   CHECKPOINT_TEST_PG_SOCKET         the Unix socket directory (DIR/socket)
#   CHECKPOINT_TEST_PG_AUTH_USER      a role that must give a password over TCP
#   CHECKPOINT_TEST_PG_AUTH_PASSWORD  its password (random; holds characters that need
#                                     percent-encoding in a URI)
#
# Authentication: local (socket) connections are trusted; over TCP the role
# CHECKPOINT_TEST_PG_AUTH_USER needs its password (scram-sha-256), every other role is
# trusted. The port is picked at random and tried: on a conflict (another server took it),
# the next start tries another port, 20 times at most. CHECKPOINT_PG_FIRST_PORT, when set,
# is the first port tried (then random ones). As root the cluster runs as the
# user postgres (initdb refuses root; created when missing); otherwise as the caller.
# Settings for tests: max_connections = 200, fsync on (the default: durability is tested
# for real), the log in DIR/log.
set -Eeuo pipefail

PGBIN=${CHECKPOINT_PG_BIN:-/usr/lib/postgresql/15/bin}
auth_user=checkpoint_auth

usage() {
    echo "usage: tools/pg_server.sh start | stop DIR | env DIR" >&2
    exit 2
}

# Runs a command as the cluster's owner.
as_owner() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

print_env() {  # dir
    local dir=$1
    # shellcheck source=/dev/null
    source "$dir/env"
    local name
    for name in CHECKPOINT_TEST_PG_URL CHECKPOINT_TEST_PG_DIR CHECKPOINT_TEST_PG_BIN \
        CHECKPOINT_TEST_PG_DATA CHECKPOINT_TEST_PG_SOCKET CHECKPOINT_TEST_PG_AUTH_USER \
        CHECKPOINT_TEST_PG_AUTH_PASSWORD; do
        printf 'export %s=%q\n' "$name" "${!name}"
    done
}

start() {
    [[ -x $PGBIN/initdb ]] ||
        { echo "pg_server.sh: no PostgreSQL 15 server in $PGBIN: run tools/deps.sh (postgresql-15)" >&2; exit 1; }
    if [[ $(id -u) -eq 0 ]] && ! getent passwd postgres >/dev/null; then
        useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash postgres
    fi
    # In TMPDIR, unless the cluster's owner cannot reach it or the socket's path would be
    # too long for a Unix socket (107 bytes): then in /tmp.
    local base=${TMPDIR:-/tmp} dir
    if ((${#base} > 60)) || { [[ $(id -u) -eq 0 ]] && ! runuser -u postgres -- test -x "$base"; }; then
        base=/tmp
    fi
    dir=$(mktemp -d "$base/checkpoint-pg-XXXXXX")
    chmod 0700 "$dir"
    mkdir "$dir/socket"
    [[ $(id -u) -eq 0 ]] && chown -R postgres: "$dir"
    # Any failure from here on: stop what was started, delete the directory.
    trap 'as_owner "$PGBIN/pg_ctl" -D "$dir/data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true; rm -rf "$dir"' ERR

    as_owner "$PGBIN/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
        --no-sync >"$dir/initdb.log" 2>&1 ||
        { cat "$dir/initdb.log" >&2; echo "pg_server.sh: initdb failed" >&2; false; }
    cat >>"$dir/data/postgresql.conf" <<EOF

# tools/pg_server.sh: a throwaway server for the tests
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir/socket'
max_connections = 200
fsync = on
synchronous_commit = on
password_encryption = 'scram-sha-256'
logging_collector = off
log_min_messages = warning
EOF
    cat >"$dir/data/pg_hba.conf" <<EOF
# tools/pg_server.sh: trusted, but for $auth_user over TCP (the authentication tests)
local all all                  trust
host  all $auth_user 127.0.0.1/32 scram-sha-256
host  all all        127.0.0.1/32 trust
EOF

    local port="" attempt
    for attempt in $(seq 1 20); do
        port=$((20000 + RANDOM % 40000))
        ((attempt == 1)) && [[ -n ${CHECKPOINT_PG_FIRST_PORT:-} ]] && port=$CHECKPOINT_PG_FIRST_PORT
        rm -f "$dir/log"
        if as_owner "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 60 -o "-p $port" start \
            >"$dir/pg_ctl.log" 2>&1; then
            break
        fi
        if grep -q "could not bind\|Address already in use\|could not create any TCP/IP sockets" \
            "$dir/log" 2>/dev/null; then
            port=""  # taken: try another
            continue
        fi
        cat "$dir/pg_ctl.log" "$dir/log" >&2 || true
        echo "pg_server.sh: the server did not start" >&2
        false
    done
    [[ -n $port ]] || { echo "pg_server.sh: no free port found in 20 tries" >&2; false; }

    # pg_ctl -w waited for the server to accept connections; check it over TCP too (bounded).
    local ready=0
    for attempt in $(seq 1 100); do
        if "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$port" -t 5; then
            ready=1
            break
        fi
        sleep 0.1
    done
    ((ready)) || { cat "$dir/log" >&2; echo "pg_server.sh: not ready on 127.0.0.1:$port" >&2; false; }

    # A password with characters that a URI must percent-encode.
    local password
    password="pw-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')-@:/%?&=#"
    as_owner "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir/socket" -p "$port" -U postgres \
        -d postgres -v "password=$password" >/dev/null <<EOF
CREATE ROLE $auth_user LOGIN CREATEDB PASSWORD :'password';
EOF
    trap - ERR

    cat >"$dir/env" <<EOF
CHECKPOINT_TEST_PG_URL=$(printf '%q' "postgresql://postgres@127.0.0.1:$port/postgres")
CHECKPOINT_TEST_PG_DIR=$(printf '%q' "$dir")
CHECKPOINT_TEST_PG_BIN=$(printf '%q' "$PGBIN")
CHECKPOINT_TEST_PG_DATA=$(printf '%q' "$dir/data")
CHECKPOINT_TEST_PG_SOCKET=$(printf '%q' "$dir/socket")
CHECKPOINT_TEST_PG_AUTH_USER=$auth_user
CHECKPOINT_TEST_PG_AUTH_PASSWORD=$(printf '%q' "$password")
EOF
    chmod 0600 "$dir/env"
    echo "pg_server.sh: PostgreSQL 15 running on 127.0.0.1:$port (socket $dir/socket, log $dir/log)" >&2
    print_env "$dir"
}

stop() {  # dir
    local dir=$1
    [[ -d $dir ]] || { echo "pg_server.sh: no server directory $dir" >&2; return 0; }
    if [[ -f $dir/data/postmaster.pid ]]; then
        as_owner "$PGBIN/pg_ctl" -D "$dir/data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
}

case "${1:-}" in
    start)
        [[ $# -eq 1 ]] || usage
        start
        ;;
    stop)
        [[ $# -eq 2 ]] || usage
        stop "$2"
        ;;
    env)
        [[ $# -eq 2 ]] || usage
        print_env "$2"
        ;;
    *) usage ;;
esac
